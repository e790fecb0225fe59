//! Graceful shutdown: stop accepting, drain within the grace period, cancel what is left
//! (or leave it for the next server), run every workflow's shutdown hook, close the tools.

use std::time::Duration;

use tokio::time::Instant;

use super::WorkflowManager;

/// Waiting for cancelled executions to end, after the grace period.
const CANCEL_DRAIN: Duration = Duration::from_secs(10);

/// What a shutdown does with the executions still running when its grace period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unfinished {
    /// Cancelled; their events say so, and they end there.
    #[default]
    Cancel,
    /// Stopped where they are, as a crash stops them, for the next server started on the
    /// same data directory to resume (an upgrade that keeps in-flight work). The in-memory
    /// store keeps nothing for a next server: there they are cancelled.
    Resume,
}

/// How to shut down: the grace period, and what becomes of what outlasts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPlan {
    pub grace: Duration,
    pub unfinished: Unfinished,
}

impl From<&crate::config::Config> for ShutdownPlan {
    /// The configured plan, for SIGTERM and a Shutdown that leaves both unset.
    fn from(config: &crate::config::Config) -> Self {
        ShutdownPlan {
            grace: config.shutdown_grace,
            unfinished: match config.shutdown_unfinished {
                crate::config::ShutdownUnfinished::Cancel => Unfinished::Cancel,
                crate::config::ShutdownUnfinished::Resume => Unfinished::Resume,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    pub finished_during_grace: usize,
    pub cancelled: usize,
    pub left_to_resume: usize,
}

/// Every shutdown asked of one manager so far, merged: when the drain ends (the earliest
/// deadline asked) and the plan in force then. `None` until the first request (the
/// Shutdown RPC, SIGTERM or Ctrl-C).
pub type ShutdownAsked = tokio::sync::watch::Sender<Option<(Instant, ShutdownPlan)>>;

/// `plan`, asked now with the drain ending at `deadline`, merged into what was asked before:
/// the earlier deadline wins, with its grace period (the one named when executions are
/// cancelled); and what outlasts it is left to resume if any request asked for that, since
/// an execution left to resume can still be cancelled later, while a cancelled one is gone.
fn merge(
    asked: Option<(Instant, ShutdownPlan)>,
    deadline: Instant,
    plan: ShutdownPlan,
) -> (Instant, ShutdownPlan) {
    let Some((earlier_deadline, earlier)) = asked else {
        return (deadline, plan);
    };
    let (deadline, grace) = if deadline < earlier_deadline {
        (deadline, plan.grace)
    } else {
        (earlier_deadline, earlier.grace)
    };
    let unfinished = if plan.unfinished == Unfinished::Resume {
        Unfinished::Resume
    } else {
        earlier.unfinished
    };
    (deadline, ShutdownPlan { grace, unfinished })
}

impl WorkflowManager {
    /// Shuts down once. The first call drains; a later one (another Shutdown, a signal)
    /// joins it and may only tighten it (see `merge`): a shorter grace period ends the
    /// drain sooner, and `Resume` applies. Every call gets the same report.
    /// Once the server has stopped: the store leaves what it holds complete in its main
    /// file (see `Store::close`), for a backup that copies a stopped server's files.
    pub async fn close_store(&self) {
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e, "the store could not fold its write-ahead log into the database: back up wfm.db-wal with wfm.db");
        }
    }

    pub async fn shutdown(&self, plan: ShutdownPlan) -> ShutdownReport {
        let deadline = Instant::now() + plan.grace;
        let asked = &self.shutdown_asked;
        asked.send_if_modified(|current| {
            let merged = Some(merge(*current, deadline, plan));
            let changed = merged != *current;
            *current = merged;
            changed
        });
        *self
            .shutdown_report
            .get_or_init(|| self.drain(asked.subscribe()))
            .await
    }

    async fn drain(
        &self,
        mut asked: tokio::sync::watch::Receiver<Option<(Instant, ShutdownPlan)>>,
    ) -> ShutdownReport {
        self.accepting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let running_at_start = self.live_executions().len();
        let (_, first) = (*asked.borrow_and_update()).expect("a shutdown was asked");
        tracing::info!(running = running_at_start, grace = ?first.grace, "shutting down: draining executions");
        self.tasks.close();
        let (mut cancelled, mut left_to_resume) = (0, 0);
        if let Some(plan) = self.wait_within_grace(&mut asked).await {
            (cancelled, left_to_resume) = self.end_what_is_left(plan.grace, plan.unfinished);
            if tokio::time::timeout(CANCEL_DRAIN, self.tasks.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    "some executions did not stop within {CANCEL_DRAIN:?} of the grace period's end"
                );
            }
        }
        for workflow in self.registry.all() {
            if let Err(e) = workflow.instance.shutdown().await {
                tracing::warn!(workflow = %workflow.record.name, version = workflow.record.version, error = %e, "shutdown hook failed");
            }
        }
        self.tools.close().await;
        self.stopped.cancel();
        let started = self
            .started_while_draining
            .load(std::sync::atomic::Ordering::SeqCst);
        let report = ShutdownReport {
            finished_during_grace: (running_at_start + started)
                .saturating_sub(cancelled + left_to_resume),
            cancelled,
            left_to_resume,
        };
        tracing::info!(
            finished = report.finished_during_grace,
            cancelled = report.cancelled,
            left_to_resume = report.left_to_resume,
            "manager stopped"
        );
        report
    }

    /// Waits for the executions to end until the deadline asked, which a later request
    /// may bring forward. `None` when they all ended; else the plan in force at the deadline.
    async fn wait_within_grace(
        &self,
        asked: &mut tokio::sync::watch::Receiver<Option<(Instant, ShutdownPlan)>>,
    ) -> Option<ShutdownPlan> {
        loop {
            let (deadline, _) = (*asked.borrow_and_update()).expect("a shutdown was asked");
            tokio::select! {
                _ = self.tasks.wait() => return None,
                _ = tokio::time::sleep_until(deadline) => {
                    return asked.borrow().map(|(_, plan)| plan);
                }
                Ok(()) = asked.changed() => {
                    let (deadline, plan) = (*asked.borrow()).expect("a shutdown was asked");
                    tracing::warn!(
                        grace = ?plan.grace,
                        ends_in = ?deadline.saturating_duration_since(Instant::now()),
                        unfinished = ?plan.unfinished,
                        "shutdown asked again: draining as the requests so far ask together"
                    );
                }
            }
        }
    }

    /// Cancels the executions still live after the grace period, or, for `Resume` on a
    /// store that outlives the process, stops them where they are. Returns how many were
    /// cancelled and how many were left to resume.
    fn end_what_is_left(&self, grace: Duration, unfinished: Unfinished) -> (usize, usize) {
        let left = self.live_executions();
        if unfinished == Unfinished::Resume {
            if self.store.survives_restart() {
                tracing::warn!(
                    executions = left.len(),
                    "grace period over: stopping what is left where it is, for the next server on this data directory to resume"
                );
                for live in &left {
                    live.suspend();
                }
                return (0, left.len());
            }
            tracing::warn!(
                "the in-memory store keeps nothing for the next server: cancelling instead of leaving executions to resume"
            );
        }
        tracing::warn!(
            executions = left.len(),
            "grace period over: cancelling what is left"
        );
        for live in &left {
            live.cancel_with(format!(
                "wfm is shutting down: the grace period of {grace:?} ran out"
            ));
        }
        (left.len(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(secs: u64, unfinished: Unfinished) -> ShutdownPlan {
        ShutdownPlan {
            grace: Duration::from_secs(secs),
            unfinished,
        }
    }

    #[test]
    fn a_later_request_only_tightens_the_shutdown() {
        let t0 = Instant::now();
        let first = merge(
            None,
            t0 + Duration::from_secs(30),
            plan(30, Unfinished::Cancel),
        );
        assert_eq!(
            first,
            (t0 + Duration::from_secs(30), plan(30, Unfinished::Cancel))
        );
        // Sooner: its deadline and grace win.
        let sooner = merge(
            Some(first),
            t0 + Duration::from_secs(2),
            plan(1, Unfinished::Cancel),
        );
        assert_eq!(
            sooner,
            (t0 + Duration::from_secs(2), plan(1, Unfinished::Cancel))
        );
        // Later: the deadline stays, but asking to resume applies.
        let resume = merge(
            Some(sooner),
            t0 + Duration::from_secs(90),
            plan(60, Unfinished::Resume),
        );
        assert_eq!(
            resume,
            (t0 + Duration::from_secs(2), plan(1, Unfinished::Resume))
        );
        // Once asked, resume is not undone by a request that does not ask for it.
        let cancel = merge(
            Some(resume),
            t0 + Duration::from_secs(1),
            plan(0, Unfinished::Cancel),
        );
        assert_eq!(
            cancel,
            (t0 + Duration::from_secs(1), plan(0, Unfinished::Resume))
        );
    }
}
