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
    /// Levels of executions from the root down to `id`, `id` included. Live executions
    /// answer first: a child starting its own child at once is not in the store yet.
    async fn depth_of(&self, id: &str) -> usize {
        let mut depth = 1;
        let mut current = id.to_string();
        while depth <= self.limits.max_workflow_depth {
            let live_parent = self
                .live
                .lock()
                .expect("live executions lock")
                .get(current.as_str())
                .map(|live| live.parent.clone());
            let parent = match live_parent {
                Some(parent) => parent.map(|p| p.to_string()),
                None => match self.store.get_execution(&current).await {
                    Ok(Some(record)) => record.parent_execution_id,
                    _ => None,
                },
            };
            match parent {
                Some(parent) => {
                    depth += 1;
                    current = parent;
                }
                None => break,
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
        // The step's attempt names its child: the same attempt run again after a restart
        // finds the child it started and follows it, instead of starting a second one.
        let request_id = child_request_id(&request);
        let existing = manager
            .store
            .find_by_request_id(&request_id)
            .await
            .map_err(|e| format!("child workflow '{name}' could not start: {e}"))?;
        let (id, seen_through) = match existing {
            Some(child) => {
                // Resumed by recovery if it was running: cancelled with this step from now.
                let live = manager
                    .live
                    .lock()
                    .expect("live executions lock")
                    .get(child.id.as_str())
                    .cloned();
                if let Some(live) = live {
                    cancel_with_step(cancel, &live);
                }
                let _ = progress
                    .send(format!(
                        "child execution {} of workflow '{name}' started before the restart; following it",
                        child.id
                    ))
                    .await;
                (child.id, child.last_sequence)
            }
            None => {
                let spec = StartSpec {
                    name: name.clone(),
                    version: i32::try_from(request.version).unwrap_or(i32::MAX),
                    input: request.input,
                    metadata: json!({
                        "parent_execution_id": request.parent_execution_id,
                        "parent_step_id": request.step_id,
                    }),
                    request_id,
                    parent_execution_id: Some(request.parent_execution_id),
                };
                let (id, _) = manager
                    .start_child(spec, cancel)
                    .await
                    .map_err(|e| format!("child workflow '{name}' could not start: {e}"))?;
                let _ = progress
                    .send(format!("child execution {id} of workflow '{name}' started"))
                    .await;
                (id, 0)
            }
        };
        let mut watcher = manager
            .watch(&id, 0)
            .await
            .map_err(|e| format!("child execution {id} cannot be followed: {e}"))?;
        loop {
            let event = match watcher.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(format!("child execution {id} ended without a result")),
                Err(e) => return Err(format!("child execution {id} cannot be followed: {e}")),
            };
            // Events the parent reported before a restart are not reported twice.
            if event.sequence > seen_through
                && let Some(text) = describe(&event.kind)
            {
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
        EventKind::StepCancelled {
            step_id, reason, ..
        } => format!("step {step_id} cancelled: {reason}"),
        EventKind::Completed { .. } => "completed".into(),
        EventKind::Failed { error, .. } => format!("failed: {error}"),
        EventKind::Cancelled { reason, .. } => format!("cancelled: {reason}"),
    })
}

/// The idempotency key of the child a step's attempt starts (at most 116 bytes: a step id
/// has at most 64).
fn child_request_id(request: &ChildRequest) -> String {
    let item = request
        .item_index
        .map_or_else(|| "-".to_string(), |i| i.to_string());
    format!(
        "child/{}/{}/{item}/{}",
        request.parent_execution_id, request.step_id, request.attempt
    )
}

/// A child execution is cancelled when the step that runs it is cancelled, fails or times
/// out, even once that step's future is gone; the link ends with the child.
pub(super) fn cancel_with_step(step: CancellationToken, child: &Arc<LiveExecution>) {
    let child = child.clone();
    tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = child.finished.cancelled() => {}
            _ = step.cancelled() => child.cancel_with("its parent step was cancelled".into()),
        }
    });
}

/// A child execution is cancelled with its parent execution, and does not outlive it: a
/// child resumed after a restart before its parent has no step linked to it yet.
pub(super) fn cancel_with_parent(parent: &LiveExecution, child: &Arc<LiveExecution>) {
    let (cancelled, ended) = (parent.cancel.clone(), parent.finished.clone());
    let child = child.clone();
    tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = child.finished.cancelled() => {}
            _ = cancelled.cancelled() => child.cancel_with("its parent execution was cancelled".into()),
            _ = ended.cancelled() => child.cancel_with("its parent execution ended".into()),
        }
    });
}
