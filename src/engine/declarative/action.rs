//! One attempt of a step's action: render its templates, then call the tool or run the
//! child workflow, within the step's timeout and cancellation.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::{StepError, StepErrorKind};
use crate::engine::definition::{Action, Step};
use crate::engine::{ChildRequest, ExecutionContext};
use crate::template;

/// Child events buffered before the step reports them as progress.
const CHILD_PROGRESS_BUFFER: usize = 64;

/// Runs one attempt. `context` is what templates see.
pub(super) async fn attempt(
    step: &Step,
    ctx: &ExecutionContext,
    context: &Value,
    attempt: u32,
    cancel: &CancellationToken,
) -> Result<Value, StepError> {
    let work = perform(step, ctx, context, attempt, cancel);
    let timed = async {
        match step.timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(timeout(limit))),
            None => work.await,
        }
    };
    tokio::select! {
        r = timed => r,
        _ = cancel.cancelled() => Err(StepError::cancelled()),
    }
}

async fn perform(
    step: &Step,
    ctx: &ExecutionContext,
    context: &Value,
    attempt: u32,
    cancel: &CancellationToken,
) -> Result<Value, StepError> {
    match step.action() {
        Some(Action::Tool(tool)) => {
            let arguments = object(template::render_value(&tool.arguments, context)?);
            Ok(ctx.tools().call(&tool.name, arguments).await?)
        }
        Some(Action::Workflow(w)) => {
            let input = object(template::render_value(&w.input, context)?);
            let request = ChildRequest {
                name: w.name.clone(),
                version: w.version,
                input,
                parent_execution_id: ctx.execution_id().to_string(),
                step_id: step.id.clone(),
                item_index: (!step.for_each.is_empty())
                    .then(|| context.get("index").and_then(Value::as_u64))
                    .flatten(),
                attempt,
            };
            child(step, ctx, request, cancel).await
        }
        None => Err(StepError::new(
            StepErrorKind::Internal,
            "the step has no action",
        )),
    }
}

fn timeout(limit: Duration) -> StepError {
    StepError::new(
        StepErrorKind::Timeout,
        format!("the attempt took longer than its timeout of {limit:?}"),
    )
}

/// Null arguments mean none; anything else was checked to be an object at registration,
/// but a template may still have produced something else, which the tool then refuses.
fn object(value: Value) -> Value {
    match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    }
}

/// Runs a child execution, reporting its events as this step's progress. The child is
/// cancelled when this attempt is dropped (timeout) or cancelled.
async fn child(
    step: &Step,
    ctx: &ExecutionContext,
    request: ChildRequest,
    cancel: &CancellationToken,
) -> Result<Value, StepError> {
    let Some(runner) = ctx.children() else {
        return Err(StepError::new(
            StepErrorKind::Internal,
            "child workflows cannot run in this context",
        ));
    };
    let child_cancel = cancel.child_token();
    let _cancel_on_drop = child_cancel.clone().drop_guard();
    let (tx, mut rx) = mpsc::channel(CHILD_PROGRESS_BUFFER);
    let run = runner.run_child(request, child_cancel, tx);
    tokio::pin!(run);
    loop {
        tokio::select! {
            result = &mut run => {
                while let Ok(message) = rx.try_recv() {
                    ctx.progress(&step.id, message, None).await?;
                }
                return result.map_err(|e| StepError::new(StepErrorKind::ChildWorkflowFailed, e));
            }
            Some(message) = rx.recv() => ctx.progress(&step.id, message, None).await?,
        }
    }
}
