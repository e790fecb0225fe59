//! Runs one step to its end: its attempts under the retry policy, or, with `for_each`, its
//! items in parallel up to `max_parallel`, reporting events through the context.

use std::time::Instant;

use futures_util::{StreamExt, stream};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::action;
use super::error::{StepError, StepErrorKind};
use crate::engine::definition::{RetryPolicy, Step};
use crate::engine::{ExecutionContext, WorkflowError};
use crate::template;

/// Items of a for_each running at once when the step does not say.
pub const DEFAULT_MAX_PARALLEL: usize = 8;
/// Most items a for_each may give.
pub const MAX_FOR_EACH_ITEMS: usize = 10_000;

/// Runs the step and reports it; returns its output.
pub(super) async fn run(
    step: &Step,
    ctx: &ExecutionContext,
    context: Value,
    cancel: CancellationToken,
) -> Result<Value, StepError> {
    traced(step, ctx, context, cancel)
        .instrument(crate::telemetry::trace::step_span(&step.id))
        .await
}

async fn traced(
    step: &Step,
    ctx: &ExecutionContext,
    context: Value,
    cancel: CancellationToken,
) -> Result<Value, StepError> {
    // Completed by an earlier attempt of this execution (before a restart): not run again.
    if let Some(output) = ctx.reuse_completed::<Value>(&step.id)? {
        return Ok(output);
    }
    if step.for_each.is_empty() {
        single(step, ctx, &context, &cancel).await
    } else {
        for_each(step, ctx, context, &cancel).await
    }
}

fn policy(step: &Step) -> (u32, Option<&RetryPolicy>) {
    match &step.retry {
        Some(p) => (p.attempts(), Some(p)),
        None => (1, None),
    }
}

/// Waits between attempts; false when cancelled meanwhile.
async fn back_off(policy: Option<&RetryPolicy>, attempt: u32, cancel: &CancellationToken) -> bool {
    let delay = policy.map(|p| p.delay(attempt)).unwrap_or_default();
    wait(delay, cancel).await
}

/// Waits `delay`; false when cancelled meanwhile.
async fn wait(delay: std::time::Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = cancel.cancelled() => false,
    }
}

fn will_retry(error: &StepError, attempt: u32, max: u32, policy: Option<&RetryPolicy>) -> bool {
    attempt < max && error.retryable(policy.map_or(&[][..], |p| &p.non_retryable_error_types[..]))
}

/// A step without for_each: each attempt is reported (StepStarted / StepFailed with
/// will_retry), then its completion or final failure.
async fn single(
    step: &Step,
    ctx: &ExecutionContext,
    context: &Value,
    cancel: &CancellationToken,
) -> Result<Value, StepError> {
    let (max, policy) = policy(step);
    let started = Instant::now();
    let mut attempt = 1;
    // Resumed after a restart: on from the attempts its history records, after what is
    // left of the backoff a recorded failure started.
    if let Some(point) = ctx.resume_point(&step.id) {
        attempt = point.attempt.clamp(1, max);
        if let Some(failed_at) = point.failed_at {
            let delay = policy.map(|p| p.delay(attempt - 1)).unwrap_or_default();
            let waited = failed_at.elapsed().unwrap_or_default();
            if !wait(delay.saturating_sub(waited), cancel).await {
                let error = StepError::cancelled();
                report_failure(ctx, &step.id, &error, started.elapsed(), attempt - 1, false)
                    .await?;
                return Err(error);
            }
        }
    }
    loop {
        ctx.step_started(&step.id, attempt).await?;
        match action::attempt(step, ctx, context, attempt, cancel).await {
            Ok(output) => {
                ctx.step_completed(&step.id, output.clone(), started.elapsed(), attempt)
                    .await?;
                return Ok(output);
            }
            Err(error) => {
                let retry = will_retry(&error, attempt, max, policy) && !cancel.is_cancelled();
                report_failure(ctx, &step.id, &error, started.elapsed(), attempt, retry).await?;
                if !retry {
                    return Err(error);
                }
                if !back_off(policy, attempt, cancel).await {
                    let error = StepError::cancelled();
                    report_failure(ctx, &step.id, &error, started.elapsed(), attempt, false)
                        .await?;
                    return Err(error);
                }
                attempt += 1;
            }
        }
    }
}

/// A step with for_each: one StepStarted, progress per finished item (and per retried
/// item), then one StepCompleted with the results in item order, or one StepFailed with
/// the first item that failed for good; the other items are then cancelled.
async fn for_each(
    step: &Step,
    ctx: &ExecutionContext,
    context: Value,
    cancel: &CancellationToken,
) -> Result<Value, StepError> {
    let started = Instant::now();
    ctx.step_started(&step.id, 1).await?;
    let items = match items(step, &context) {
        Ok(items) => items,
        Err(error) => {
            ctx.step_failed(&step.id, error.to_string(), started.elapsed(), 1, false)
                .await?;
            return Err(error);
        }
    };
    let total = items.len();
    let parallel = match step.max_parallel {
        0 => DEFAULT_MAX_PARALLEL,
        n => n as usize,
    };
    let items_cancel = cancel.child_token();
    let _cancel_on_exit = items_cancel.clone().drop_guard();
    let mut results = vec![Value::Null; total];
    let mut attempts_used = 1;
    let mut done = 0;
    let mut failure = None;
    {
        let context = &context;
        let items_cancel = &items_cancel;
        let mut running = stream::iter(items.into_iter().enumerate())
            .map(|(index, item)| async move {
                let mut item_context = context.clone();
                if let Value::Object(map) = &mut item_context {
                    map.insert("item".into(), item);
                    map.insert("index".into(), index.into());
                }
                (
                    index,
                    one_item(step, ctx, &item_context, index, items_cancel).await,
                )
            })
            .buffer_unordered(parallel);
        while let Some((index, outcome)) = running.next().await {
            match outcome {
                Ok((output, attempts)) => {
                    results[index] = output;
                    attempts_used = attempts_used.max(attempts);
                    done += 1;
                    ctx.progress(
                        &step.id,
                        format!("item {index} done ({done}/{total})"),
                        Some(done as f64 / total as f64),
                    )
                    .await?;
                }
                Err((error, attempts)) => {
                    items_cancel.cancel();
                    attempts_used = attempts_used.max(attempts);
                    failure = Some(StepError::new(
                        error.kind,
                        format!("item {index}: {}", error.message),
                    ));
                    break;
                }
            }
        }
    }
    match failure {
        None => {
            let output = Value::Array(results);
            ctx.step_completed(&step.id, output.clone(), started.elapsed(), attempts_used)
                .await?;
            Ok(output)
        }
        Some(error) => {
            report_failure(
                ctx,
                &step.id,
                &error,
                started.elapsed(),
                attempts_used,
                false,
            )
            .await?;
            Err(error)
        }
    }
}

/// A failed attempt, or the step cut short by cancellation: reported as cancelled, not
/// failed, since the step itself did not fail.
async fn report_failure(
    ctx: &ExecutionContext,
    step_id: &str,
    error: &StepError,
    elapsed: std::time::Duration,
    attempt: u32,
    will_retry: bool,
) -> Result<(), WorkflowError> {
    if error.kind == StepErrorKind::Cancelled && !will_retry {
        ctx.step_cancelled(step_id, elapsed, attempt).await
    } else {
        ctx.step_failed(step_id, error.to_string(), elapsed, attempt, will_retry)
            .await
    }
}

fn items(step: &Step, context: &Value) -> Result<Vec<Value>, StepError> {
    match template::eval(&step.for_each, context)? {
        Value::Array(items) if items.len() > MAX_FOR_EACH_ITEMS => Err(StepError::new(
            StepErrorKind::ForEachNotList,
            format!(
                "for_each gave {} items; the maximum is {MAX_FOR_EACH_ITEMS}",
                items.len()
            ),
        )),
        Value::Array(items) => Ok(items),
        other => Err(StepError::new(
            StepErrorKind::ForEachNotList,
            format!(
                "for_each '{}' gave {}, not a list",
                step.for_each,
                kind_of(&other)
            ),
        )),
    }
}

fn kind_of(v: &Value) -> String {
    let text = v.to_string();
    let shown: String = text.chars().take(60).collect();
    let what = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    format!("{what} ({shown})")
}

/// One item with its own attempts; retries show as progress of the step.
async fn one_item(
    step: &Step,
    ctx: &ExecutionContext,
    context: &Value,
    index: usize,
    cancel: &CancellationToken,
) -> Result<(Value, u32), (StepError, u32)> {
    let (max, policy) = policy(step);
    let mut attempt = 1;
    loop {
        match action::attempt(step, ctx, context, attempt, cancel).await {
            Ok(output) => return Ok((output, attempt)),
            Err(error) => {
                if !will_retry(&error, attempt, max, policy) || cancel.is_cancelled() {
                    return Err((error, attempt));
                }
                ctx.progress(
                    &step.id,
                    format!("item {index}: attempt {attempt} failed ({error}); retrying"),
                    None,
                )
                .await
                .map_err(|e| (e.into(), attempt))?;
                if !back_off(policy, attempt, cancel).await {
                    return Err((StepError::cancelled(), attempt));
                }
                attempt += 1;
            }
        }
    }
}
