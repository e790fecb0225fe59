//! Domain status events of an execution and its result summary.
//! The gRPC layer converts these to protobuf; the store persists them as they are.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One status event. Sequence numbers start at 1 and have no gaps within an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Shared by every event of the execution: one allocation, not one per event.
    pub execution_id: std::sync::Arc<str>,
    pub sequence: u64,
    #[serde(with = "crate::stored_time::time")]
    pub time: SystemTime,
    pub kind: EventKind,
}

impl Event {
    /// A terminal event is the last one of its execution.
    pub fn is_terminal(&self) -> bool {
        self.kind.is_terminal()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Accepted {
        workflow_name: String,
        workflow_version: u32,
    },
    Queued {
        reason: String,
    },
    Started {
        attempt: u32,
    },
    StepStarted {
        step_id: String,
        attempt: u32,
    },
    StepProgress {
        step_id: String,
        message: String,
        fraction: Option<f64>,
    },
    StepCompleted {
        step_id: String,
        output: Value,
        #[serde(with = "crate::stored_time::duration")]
        duration: Duration,
    },
    StepFailed {
        step_id: String,
        error: String,
        attempt: u32,
        will_retry: bool,
    },
    StepSkipped {
        step_id: String,
        reason: String,
    },
    /// Cut short by cancellation (of the execution, or of a run another step failed):
    /// the step did not fail.
    StepCancelled {
        step_id: String,
        reason: String,
        attempt: u32,
    },
    // The terminal results are shared: an event is moved, queued and kept many times, the
    // result is by far its largest variant (the other events stay under 128 bytes), and the
    // execution's record holds the same result.
    Completed {
        result: Arc<ExecutionResult>,
    },
    Failed {
        error: String,
        result: Arc<ExecutionResult>,
    },
    Cancelled {
        reason: String,
        result: Arc<ExecutionResult>,
    },
}

impl EventKind {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::Completed { .. } | EventKind::Failed { .. } | EventKind::Cancelled { .. }
        )
    }

    /// The result carried by a terminal event.
    pub fn result(&self) -> Option<&Arc<ExecutionResult>> {
        match self {
            EventKind::Completed { result }
            | EventKind::Failed { result, .. }
            | EventKind::Cancelled { result, .. } => Some(result),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
    /// Running when the execution was cancelled.
    Cancelled,
}

/// The outcome of one step, as in the seed's `AgentContext.summarize_results()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub step_id: String,
    pub status: StepStatus,
    pub output: Value,
    pub error: Option<String>,
    #[serde(with = "crate::stored_time::duration")]
    pub duration: Duration,
    pub attempts: u32,
}

/// Summary of an execution: success, timing, step counts, per-step results and output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub success: bool,
    #[serde(with = "crate::stored_time::duration")]
    pub execution_time: Duration,
    pub steps_completed: u32,
    pub steps_failed: u32,
    pub steps_skipped: u32,
    pub steps: Vec<StepResult>,
    pub output: Value,
    pub error: Option<String>,
}

impl ExecutionResult {
    /// Builds the summary from the step results, counting each status; shared, as the
    /// terminal event and the execution's record both hold it.
    pub fn summarize(
        steps: Vec<StepResult>,
        execution_time: Duration,
        output: Value,
        error: Option<String>,
    ) -> Arc<Self> {
        let count = |s: StepStatus| steps.iter().filter(|r| r.status == s).count() as u32;
        Arc::new(ExecutionResult {
            success: error.is_none(),
            execution_time,
            steps_completed: count(StepStatus::Completed),
            steps_failed: count(StepStatus::Failed),
            steps_skipped: count(StepStatus::Skipped),
            steps,
            output,
            error,
        })
    }
}

/// The size of a value as compact JSON, counted without building the text.
pub fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

impl ExecutionResult {
    /// The bytes of output the result carries: its output and every step's output.
    pub fn output_size(&self) -> usize {
        json_size(&self.output)
            + self
                .steps
                .iter()
                .map(|s| json_size(&s.output))
                .sum::<usize>()
    }

    /// Drops every output, keeping the statuses, errors and timings.
    pub fn without_outputs(self: Arc<Self>) -> ExecutionResult {
        let mut result = Arc::unwrap_or_clone(self);
        result.output = Value::Null;
        for step in &mut result.steps {
            step.output = Value::Null;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events are moved through channels and kept by every live execution and the memory
    /// store: a terminal result inline would make every event three times its size.
    #[test]
    fn an_event_stays_small() {
        let size = std::mem::size_of::<Event>();
        assert!(size <= 128, "an Event is {size} bytes");
    }
}
