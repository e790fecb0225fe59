//! Graceful shutdown: stop accepting, drain within the grace period, cancel what is left,
//! run every workflow's shutdown hook, close the tools.

use std::time::Duration;

use super::WorkflowManager;

/// Waiting for cancelled executions to end, after the grace period.
const CANCEL_DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    pub finished_during_grace: usize,
    pub cancelled: usize,
}

impl WorkflowManager {
    /// Shuts down once; later calls wait for the first and get the same report.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        *self.shutdown_report.get_or_init(|| self.drain(grace)).await
    }

    async fn drain(&self, grace: Duration) -> ShutdownReport {
        self.accepting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let running_at_start = self.live_executions().len();
        tracing::info!(running = running_at_start, grace = ?grace, "shutting down: draining executions");
        self.tasks.close();
        let mut cancelled = 0;
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            let left = self.live_executions();
            cancelled = left.len();
            tracing::warn!(
                executions = cancelled,
                "grace period over: cancelling what is left"
            );
            for live in left {
                live.cancel_with(format!(
                    "wfm is shutting down: the grace period of {grace:?} ran out"
                ));
            }
            if tokio::time::timeout(CANCEL_DRAIN, self.tasks.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    "some executions did not end within {CANCEL_DRAIN:?} of their cancellation"
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
            finished_during_grace: running_at_start.saturating_sub(cancelled),
            cancelled,
        };
        tracing::info!(
            finished = report.finished_during_grace,
            cancelled = report.cancelled,
            "manager stopped"
        );
        report
    }
}
