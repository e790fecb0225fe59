//! Graceful shutdown: stop accepting, drain within the grace period, cancel what is left
//! (or leave it for the next server), run every workflow's shutdown hook, close the tools.

use std::time::Duration;

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

impl WorkflowManager {
    /// Shuts down once; later calls wait for the first and get the same report.
    pub async fn shutdown(&self, plan: ShutdownPlan) -> ShutdownReport {
        *self.shutdown_report.get_or_init(|| self.drain(plan)).await
    }

    async fn drain(&self, ShutdownPlan { grace, unfinished }: ShutdownPlan) -> ShutdownReport {
        self.accepting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let running_at_start = self.live_executions().len();
        tracing::info!(running = running_at_start, grace = ?grace, "shutting down: draining executions");
        self.tasks.close();
        let (mut cancelled, mut left_to_resume) = (0, 0);
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            (cancelled, left_to_resume) = self.end_what_is_left(grace, unfinished);
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
        let report = ShutdownReport {
            finished_during_grace: running_at_start.saturating_sub(cancelled + left_to_resume),
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
