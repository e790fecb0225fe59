//! Start-up: the registry and the executions come back from the store. Workflows are built
//! and initialized again; executions that were queued or running when the process died are
//! resumed as a new attempt that reuses the outputs of the steps they had completed.

use std::{sync::Arc, time::SystemTime};

use tokio::sync::Semaphore;

use super::{ManagerError, WorkflowManager, executions::Resume, registry::RegisteredWorkflow};
use crate::engine::{Event, EventKind, StepResult, StepStatus, progress};
use crate::store::{ExecutionRecord, WorkflowRecord, WorkflowSource};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub workflows: usize,
    pub workflows_failed: usize,
    pub executions_resumed: usize,
}

impl WorkflowManager {
    /// Loads every workflow version and resumes every unfinished execution.
    pub async fn recover(self: &Arc<Self>) -> Result<RecoveryReport, ManagerError> {
        let mut report = RecoveryReport::default();
        // Resumed executions run once they are all live, however this ends.
        let _all_live = self.recovered.clone().drop_guard();
        // A declarative workflow validates against the workflows it runs, which may come
        // later in the store's order: retry what failed until a pass restores nothing more.
        let mut pending = self.store.load_workflows().await?;
        loop {
            let mut failed = Vec::new();
            let restored_before = report.workflows;
            for record in pending {
                match self.rebuild(record.clone()).await {
                    Ok(workflow) => {
                        crate::telemetry::executions::workflow_known(&workflow.record.name);
                        self.registry.publish(workflow);
                        report.workflows += 1;
                    }
                    Err(e) => failed.push((record, e)),
                }
            }
            if failed.is_empty() || report.workflows == restored_before {
                for (record, e) in &failed {
                    report.workflows_failed += 1;
                    self.not_restored(&record.name, record.version, e.clone());
                    tracing::error!(workflow = %record.name, version = record.version, error = %e, "workflow could not be restored; its executions will fail");
                }
                break;
            }
            pending = failed.into_iter().map(|(record, _)| record).collect();
        }
        for (execution, events) in self.store.unfinished_with_events().await? {
            self.resume(execution, events);
            report.executions_resumed += 1;
        }
        if report.workflows + report.executions_resumed > 0 {
            tracing::info!(
                workflows = report.workflows,
                failed = report.workflows_failed,
                resumed = report.executions_resumed,
                "recovered from the store"
            );
        }
        Ok(report)
    }

    async fn rebuild(&self, record: WorkflowRecord) -> Result<RegisteredWorkflow, String> {
        let instance = match &record.source {
            WorkflowSource::Native {
                type_name,
                arguments,
            } => {
                let workflow_type = self
                    .catalog
                    .get(type_name)
                    .ok_or_else(|| format!("this server has no workflow type '{type_name}'"))?;
                (workflow_type.factory)(self.tools.clone(), arguments).map_err(|e| e.to_string())?
            }
            WorkflowSource::Declarative { definition } => self
                .build_declarative(&record.name, record.version, definition.clone(), true)
                .map_err(|e| e.to_string())?,
        };
        instance.initialize().await.map_err(|e| e.to_string())?;
        Ok(RegisteredWorkflow {
            slots: (record.max_concurrency > 0)
                .then(|| Arc::new(Semaphore::new(record.max_concurrency as usize))),
            record,
            instance,
        })
    }

    fn resume(self: &Arc<Self>, execution: ExecutionRecord, events: Vec<Event>) {
        let resume_points = progress::resume_points(&events);
        let (accepted, attempts, completed_steps) = replay(events);
        let workflow = self
            .registry
            .get(&execution.workflow_name, execution.workflow_version);
        let slots = workflow.as_ref().and_then(|w| {
            w.slots
                .as_ref()
                .map(|s| (s, w.record.name.as_str(), w.record.max_concurrency))
        });
        // Already accepted once: it waits for a slot however long the queue is.
        let admission = self.gate.admit_recovered(slots);
        tracing::debug!(id = %execution.id, attempt = attempts + 1, reused_steps = completed_steps.len(), "resuming execution");
        self.spawn_execution(
            execution,
            workflow,
            admission,
            Resume {
                attempt: attempts + 1,
                accepted,
                completed_steps,
                resume_points,
            },
            false,
        );
    }

    /// Deletes executions that ended more than `retention` ago.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<usize, ManagerError> {
        let before = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(self.store.purge_ended_before(before).await?)
    }
}

/// Whether the execution was accepted, how many times it started, and the steps it
/// completed, from its events.
fn replay(events: Vec<Event>) -> (bool, u32, Vec<StepResult>) {
    let accepted = events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Accepted { .. }));
    let attempts = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Started { .. }))
        .count() as u32;
    let completed = progress::steps_so_far(&events)
        .into_iter()
        .filter(|s| s.status == StepStatus::Completed)
        .collect();
    (accepted, attempts, completed)
}
