//! The execution context a workflow runs with: call tools, report steps and progress,
//! and see cancellation. Step results are kept here to build the final summary.

use std::{collections::HashMap, future::Future, sync::Arc, sync::Mutex, time::Instant};

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::progress::ResumePoint;
use super::{ChildRunner, EventKind, StepResult, StepStatus, WorkflowError};
use crate::tools::ToolManager;

/// Where an execution's events go. The manager's implementation numbers them, makes
/// them durable and only then hands them to watchers.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn emit(&self, kind: EventKind) -> Result<(), String>;
}

/// What one execution of a workflow sees.
pub struct ExecutionContext {
    execution_id: String,
    tools: Arc<ToolManager>,
    cancel: CancellationToken,
    sink: Arc<dyn EventSink>,
    steps: Mutex<Vec<StepResult>>,
    completed_before: Vec<StepResult>,
    /// Steps an earlier attempt of this execution left unfinished: where each picks up.
    resume_points: HashMap<String, ResumePoint>,
    children: Option<Arc<dyn ChildRunner>>,
    /// The workflow's name, labelling the step metrics; None records none.
    workflow: Option<Arc<str>>,
    /// Largest step output, as JSON; None: unbounded.
    max_output_bytes: Option<usize>,
}

impl ExecutionContext {
    pub fn new(
        execution_id: String,
        tools: Arc<ToolManager>,
        cancel: CancellationToken,
        sink: Arc<dyn EventSink>,
    ) -> Self {
        ExecutionContext {
            execution_id,
            tools,
            cancel,
            sink,
            steps: Mutex::new(Vec::new()),
            completed_before: Vec::new(),
            resume_points: HashMap::new(),
            children: None,
            workflow: None,
            max_output_bytes: None,
        }
    }

    /// Names the workflow, for the step duration metrics.
    pub fn with_workflow(mut self, name: &str) -> Self {
        self.workflow = Some(Arc::from(name));
        self
    }

    /// Bounds every step's output (`limits.max_output_bytes`): a larger one fails the step
    /// instead of being stored and streamed.
    pub fn with_output_limit(mut self, max_output_bytes: usize) -> Self {
        self.max_output_bytes = Some(max_output_bytes);
        self
    }

    /// Lets the workflow start child executions (composition).
    pub fn with_children(mut self, children: Arc<dyn ChildRunner>) -> Self {
        self.children = Some(children);
        self
    }

    /// Starts child executions; None where composition is not available.
    pub fn children(&self) -> Option<&Arc<dyn ChildRunner>> {
        self.children.as_ref()
    }

    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    pub fn tools(&self) -> &Arc<ToolManager> {
        &self.tools
    }

    /// Cancelled when the execution is cancelled or the service shuts down.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Emits an event, turning a failure to record it into a workflow error.
    pub async fn emit(&self, kind: EventKind) -> Result<(), WorkflowError> {
        self.sink
            .emit(kind)
            .await
            .map_err(|e| WorkflowError::Failed(format!("could not record event: {e}")))
    }

    /// Calls a tool on behalf of a step; cancellation ends the call at once.
    pub async fn call_tool(
        &self,
        step_id: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, WorkflowError> {
        tokio::select! {
            result = self.tools.call(tool, arguments) => result.map_err(|source| WorkflowError::Tool {
                step: step_id.to_string(),
                source,
            }),
            _ = self.cancel.cancelled() => Err(WorkflowError::Cancelled(format!("step '{step_id}' was running"))),
        }
    }

    /// Runs one step: reports its start, its completion with output and duration, or its
    /// failure, and records its result. Cancellation ends the step's future at once.
    /// A step that completed in an earlier attempt of this execution is not run again: its
    /// recorded output is returned.
    pub async fn run_step<T, F>(&self, step_id: &str, work: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, WorkflowError>>,
    {
        self.run_step_traced(step_id, work)
            .instrument(crate::telemetry::trace::step_span(step_id))
            .await
    }

    async fn run_step_traced<T, F>(&self, step_id: &str, work: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, WorkflowError>>,
    {
        if self.cancel.is_cancelled() {
            return Err(WorkflowError::Cancelled(format!("before step '{step_id}'")));
        }
        if let Some(value) = self.reuse_completed(step_id)? {
            return Ok(value);
        }
        self.step_started(step_id, 1).await?;
        let started = Instant::now();
        let outcome = tokio::select! {
            r = work => r,
            _ = self.cancel.cancelled() => Err(WorkflowError::Cancelled(format!("step '{step_id}' was running"))),
        };
        let duration = started.elapsed();
        match outcome {
            Ok(value) => {
                let output = serde_json::to_value(&value).map_err(|e| {
                    WorkflowError::Failed(format!("step '{step_id}' output is not JSON: {e}"))
                })?;
                self.step_completed(step_id, output, duration, 1).await?;
                Ok(value)
            }
            Err(error) => {
                if matches!(error, WorkflowError::Cancelled(_)) {
                    self.step_cancelled(step_id, duration, 1).await?;
                } else {
                    self.step_failed(step_id, error.to_string(), duration, 1, false)
                        .await?;
                }
                Err(error)
            }
        }
    }

    /// Steps completed by an earlier attempt, as recorded in the execution's events.
    pub fn with_completed_steps(mut self, steps: Vec<StepResult>) -> Self {
        self.completed_before = steps;
        self
    }

    /// Steps an earlier attempt left unfinished, as recorded in the execution's events.
    pub fn with_resume_points(mut self, points: HashMap<String, ResumePoint>) -> Self {
        self.resume_points = points;
        self
    }

    /// Where a step an earlier attempt left unfinished picks up; None for a fresh start.
    pub fn resume_point(&self, step_id: &str) -> Option<ResumePoint> {
        self.resume_points.get(step_id).copied()
    }

    /// The recorded output of a step an earlier attempt of this execution completed, now
    /// counted as completed again; None when the step has to run.
    pub fn reuse_completed<T: DeserializeOwned>(
        &self,
        step_id: &str,
    ) -> Result<Option<T>, WorkflowError> {
        let Some(done) = self
            .completed_before
            .iter()
            .find(|s| s.step_id == step_id)
            .cloned()
        else {
            return Ok(None);
        };
        let value = serde_json::from_value(done.output.clone()).map_err(|e| {
            WorkflowError::Failed(format!(
                "step '{step_id}' recorded output cannot be reused: {e}"
            ))
        })?;
        self.steps.lock().expect("step results lock").push(done);
        Ok(Some(value))
    }

    /// Reports a step cut short by cancellation (of the execution, or of a run another
    /// step failed) in its `attempt`: it did not fail. Its reason says which.
    pub async fn step_cancelled(
        &self,
        step_id: &str,
        duration: std::time::Duration,
        attempt: u32,
    ) -> Result<(), WorkflowError> {
        let reason = if self.cancel.is_cancelled() {
            "the execution was cancelled while the step ran"
        } else {
            "another step failed and ended the run while this one ran"
        };
        self.step_ended(step_id, duration);
        self.emit(EventKind::StepCancelled {
            step_id: step_id.to_string(),
            reason: reason.to_string(),
            attempt,
        })
        .await?;
        self.record(
            step_id,
            StepStatus::Cancelled,
            Value::Null,
            Some(reason.to_string()),
            duration.as_secs_f64(),
            attempt,
        );
        Ok(())
    }

    /// Records a step the run ended before starting, so the result lists every step.
    pub fn step_not_started(&self, step_id: &str) {
        self.record(step_id, StepStatus::Pending, Value::Null, None, 0.0, 0);
    }

    /// Reports the start of an attempt of a step (attempts count from 1).
    pub async fn step_started(&self, step_id: &str, attempt: u32) -> Result<(), WorkflowError> {
        self.emit(EventKind::StepStarted {
            step_id: step_id.to_string(),
            attempt,
        })
        .await?;
        self.record(
            step_id,
            StepStatus::Running,
            Value::Null,
            None,
            0.0,
            attempt,
        );
        Ok(())
    }

    /// Reports a step's completion after `attempts` attempts; an output over the limit
    /// reports the step failed instead, naming the limit.
    pub async fn step_completed(
        &self,
        step_id: &str,
        output: Value,
        duration: std::time::Duration,
        attempts: u32,
    ) -> Result<(), WorkflowError> {
        if let Some(max) = self.max_output_bytes {
            let size = super::json_size(&output);
            if size > max {
                let error = format!(
                    "step '{step_id}' output is {size} bytes as JSON; limits.max_output_bytes is {max}"
                );
                // The event and the step's result carry the error type, as every other step
                // error does (a retry policy names it); the error returned gets it from the
                // declarative step, which adds the type itself.
                let typed = format!(
                    "{}: {error}",
                    super::declarative::StepErrorKind::OutputTooLarge.name()
                );
                self.step_failed(step_id, typed, duration, attempts, false)
                    .await?;
                return Err(WorkflowError::OutputTooLarge(error));
            }
        }
        self.step_ended(step_id, duration);
        self.emit(EventKind::StepCompleted {
            step_id: step_id.to_string(),
            output: output.clone(),
            duration,
        })
        .await?;
        self.record(
            step_id,
            StepStatus::Completed,
            output,
            None,
            duration.as_secs_f64(),
            attempts,
        );
        Ok(())
    }

    /// Reports a failed attempt; with `will_retry` the step stays running.
    pub async fn step_failed(
        &self,
        step_id: &str,
        error: String,
        duration: std::time::Duration,
        attempt: u32,
        will_retry: bool,
    ) -> Result<(), WorkflowError> {
        let status = if will_retry {
            StepStatus::Running
        } else {
            self.step_ended(step_id, duration);
            StepStatus::Failed
        };
        self.emit(EventKind::StepFailed {
            step_id: step_id.to_string(),
            error: error.clone(),
            attempt,
            will_retry,
        })
        .await?;
        self.record(
            step_id,
            status,
            Value::Null,
            Some(error),
            duration.as_secs_f64(),
            attempt,
        );
        Ok(())
    }

    /// Reports progress of a running step; `fraction` is between 0 and 1 when known.
    pub async fn progress(
        &self,
        step_id: &str,
        message: impl Into<String>,
        fraction: Option<f64>,
    ) -> Result<(), WorkflowError> {
        self.emit(EventKind::StepProgress {
            step_id: step_id.to_string(),
            message: message.into(),
            fraction: fraction.map(|f| f.clamp(0.0, 1.0)),
        })
        .await
    }

    /// Marks a step as skipped, with the reason.
    pub async fn skip_step(
        &self,
        step_id: &str,
        reason: impl Into<String>,
    ) -> Result<(), WorkflowError> {
        self.emit(EventKind::StepSkipped {
            step_id: step_id.to_string(),
            reason: reason.into(),
        })
        .await?;
        self.record(step_id, StepStatus::Skipped, Value::Null, None, 0.0, 0);
        Ok(())
    }

    /// The results of every step reported so far, in the order they started.
    pub fn step_results(&self) -> Vec<StepResult> {
        self.steps.lock().expect("step results lock").clone()
    }

    fn step_ended(&self, step_id: &str, took: std::time::Duration) {
        if let Some(workflow) = &self.workflow {
            crate::telemetry::executions::step_ended(workflow, step_id, took);
        }
    }

    /// Sets a step's result. Called once its event is recorded (an event over
    /// `max_events_per_execution` is refused), so the result agrees with the history.
    fn record(
        &self,
        step_id: &str,
        status: StepStatus,
        output: Value,
        error: Option<String>,
        seconds: f64,
        attempts: u32,
    ) {
        let result = StepResult {
            step_id: step_id.to_string(),
            status,
            output,
            error,
            duration: std::time::Duration::from_secs_f64(seconds),
            attempts,
        };
        let mut steps = self.steps.lock().expect("step results lock");
        match steps.iter_mut().find(|s| s.step_id == step_id) {
            Some(existing) => *existing = result,
            None => steps.push(result),
        }
    }
}
