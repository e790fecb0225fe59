//! The manager's side of composition: a declarative step's child workflow runs as an
//! execution of its own, linked to its parent, followed event by event, and cancelled with
//! the parent.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{StartSpec, WorkflowManager, live::LiveExecution};
use crate::engine::{ChildRequest, ChildRunner, EventKind};

/// Starts child executions for the executions of one manager.
pub(crate) struct Children {
    pub manager: Arc<WorkflowManager>,
}

impl WorkflowManager {
    /// Levels of executions from the root down to `id`, `id` included.
    async fn depth_of(&self, id: &str) -> usize {
        let mut depth = 1;
        let mut current = id.to_string();
        while depth <= self.limits.max_workflow_depth {
            match self.store.get_execution(&current).await {
                Ok(Some(record)) => match record.parent_execution_id {
                    Some(parent) => {
                        depth += 1;
                        current = parent;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        depth
    }
}

#[async_trait]
impl ChildRunner for Children {
    /// The parent lends its slots to the child while it waits (see `slots.rs`), and takes
    /// them back before its step goes on.
    async fn run_child(
        &self,
        request: ChildRequest,
        cancel: CancellationToken,
        progress: mpsc::Sender<String>,
    ) -> Result<Value, String> {
        let parent = self
            .manager
            .live
            .lock()
            .expect("live executions lock")
            .get(request.parent_execution_id.as_str())
            .map(|live| live.slots.clone());
        let loan = parent.map(|slots| slots.lend());
        let outcome = self.start_and_follow(request, cancel, progress).await;
        if let Some(loan) = loan {
            loan.end().await;
        }
        outcome
    }
}

impl Children {
    async fn start_and_follow(
        &self,
        request: ChildRequest,
        cancel: CancellationToken,
        progress: mpsc::Sender<String>,
    ) -> Result<Value, String> {
        let manager = &self.manager;
        let name = request.name.clone();
        let depth = manager.depth_of(&request.parent_execution_id).await + 1;
        let max = manager.limits.max_workflow_depth;
        if depth > max {
            return Err(format!(
                "child workflow '{name}' would run {depth} levels deep; limits.max_workflow_depth is {max}"
            ));
        }
        let spec = StartSpec {
            name: name.clone(),
            version: i32::try_from(request.version).unwrap_or(i32::MAX),
            input: request.input,
            metadata: json!({
                "parent_execution_id": request.parent_execution_id,
                "parent_step_id": request.step_id,
            }),
            request_id: String::new(),
            parent_execution_id: Some(request.parent_execution_id),
        };
        let (id, _) = manager
            .start(spec)
            .await
            .map_err(|e| format!("child workflow '{name}' could not start: {e}"))?;
        // Follow the child before anything else can happen to it.
        let mut watcher = manager
            .watch(&id, 0)
            .await
            .map_err(|e| format!("child execution {id} cannot be followed: {e}"))?;
        let finished = manager
            .live
            .lock()
            .expect("live executions lock")
            .get(id.as_str())
            .map(|l| l.finished.clone());
        if let Some(finished) = finished {
            // Cancels the child when the step is cancelled, fails or times out, even once
            // this future is gone; ends with the child.
            let manager = manager.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        if !finished.is_cancelled() {
                            let _ = manager.cancel(&id, "its parent step was cancelled").await;
                        }
                    }
                    _ = finished.cancelled() => {}
                }
            });
        }
        let _ = progress
            .send(format!("child execution {id} of workflow '{name}' started"))
            .await;
        loop {
            let event = match watcher.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(format!("child execution {id} ended without a result")),
                Err(e) => return Err(format!("child execution {id} cannot be followed: {e}")),
            };
            if let Some(text) = describe(&event.kind) {
                let _ = progress.send(format!("child {name} ({id}): {text}")).await;
            }
            match &event.kind {
                EventKind::Completed { result } => return Ok(result.output.clone()),
                EventKind::Failed { error, .. } => {
                    return Err(format!("child execution {id} of '{name}' failed: {error}"));
                }
                EventKind::Cancelled { reason, .. } => {
                    return Err(format!(
                        "child execution {id} of '{name}' was cancelled: {reason}"
                    ));
                }
                _ => {}
            }
        }
    }
}

/// A child's event as a line of the parent step's progress.
fn describe(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Accepted { .. } => return None,
        EventKind::Queued { reason } => format!("queued: {reason}"),
        EventKind::Started { .. } => "running".into(),
        EventKind::StepStarted { step_id, attempt } => {
            format!("step {step_id} started (attempt {attempt})")
        }
        EventKind::StepProgress {
            step_id, message, ..
        } => format!("step {step_id}: {message}"),
        EventKind::StepCompleted { step_id, .. } => format!("step {step_id} completed"),
        EventKind::StepFailed {
            step_id,
            error,
            will_retry,
            ..
        } => format!(
            "step {step_id} failed{}: {error}",
            if *will_retry { " (will retry)" } else { "" }
        ),
        EventKind::StepSkipped { step_id, reason } => format!("step {step_id} skipped: {reason}"),
        EventKind::Completed { .. } => "completed".into(),
        EventKind::Failed { error, .. } => format!("failed: {error}"),
        EventKind::Cancelled { reason, .. } => format!("cancelled: {reason}"),
    })
}

/// A child execution is cancelled with its parent execution, whatever the parent's step was
/// doing when that came: its own link (above) is made only once the step follows the child,
/// and a step cancelled while it waited for the child's start to be durable never makes it.
pub(super) fn cancel_with_parent(parent: &LiveExecution, child: &Arc<LiveExecution>) {
    let (parent, child) = (parent.cancel.clone(), child.clone());
    tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = child.finished.cancelled() => {}
            _ = parent.cancelled() => child.cancel_with("its parent execution was cancelled".into()),
        }
    });
}
