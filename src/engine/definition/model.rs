//! The declarative workflow definition as a domain type. It is what the store keeps, what
//! `wfm register -f` reads from YAML or JSON, and what the gRPC layer converts from and to
//! the `WorkflowDefinition` message. Field names follow the protobuf contract.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow defined as a graph of steps rather than compiled into the server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The steps; each runs as soon as everything it depends on is done.
    pub steps: Vec<Step>,
    /// JSON Schema the input of an execution must satisfy; none accepts any object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Template of the output, over `input` and `steps`; none means the outputs of the
    /// steps nothing depends on, by step id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the definition; templates reach the step's output as `steps.<id>.output`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Call a tool. Exactly one of `tool` and `workflow` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolAction>,
    /// Run another registered workflow as a child execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowAction>,
    /// Condition; when it is false the step is skipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub when: String,
    /// Expression giving a list: the action runs once per item (`item`, `index`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub for_each: String,
    /// Items of a `for_each` running at once; 0 means the default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_parallel: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Longest one attempt may take.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// A failure of this step does not fail the run; dependents still run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
}

/// What a step runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    Tool(&'a ToolAction),
    Workflow(&'a WorkflowAction),
}

impl Step {
    /// The step's action, when exactly one is set.
    pub fn action(&self) -> Option<Action<'_>> {
        match (&self.tool, &self.workflow) {
            (Some(t), None) => Some(Action::Tool(t)),
            (None, Some(w)) => Some(Action::Workflow(w)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolAction {
    /// A tool of ListTools: `sleep`, or `server.tool` for an MCP tool.
    pub name: String,
    /// Arguments; string values may be templates.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowAction {
    pub name: String,
    /// 0: the latest version when the step runs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u32,
    /// The child's input; string values may be templates.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub input: Value,
}

/// Retries of a step, with the fields of Temporal's RetryPolicy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before the first retry; none means 1s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_interval: Option<Duration>,
    /// Each delay is the previous one times this; 0 means 2.0.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub backoff_coefficient: f64,
    /// Cap of the delay; none means 100 × initial_interval.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum_interval: Option<Duration>,
    /// Attempts in all, the first included; 0 means 3. Unlike Temporal, never unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub maximum_attempts: u32,
    /// Error types (see `StepErrorKind`) or message fragments that are not retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable_error_types: Vec<String>,
}

/// Attempts of a retry policy whose `maximum_attempts` is 0.
pub const DEFAULT_MAXIMUM_ATTEMPTS: u32 = 3;
const DEFAULT_INITIAL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF: f64 = 2.0;

impl RetryPolicy {
    pub fn attempts(&self) -> u32 {
        if self.maximum_attempts == 0 {
            DEFAULT_MAXIMUM_ATTEMPTS
        } else {
            self.maximum_attempts
        }
    }

    /// The delay after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let initial = self.initial_interval.unwrap_or(DEFAULT_INITIAL_INTERVAL);
        let coefficient = if self.backoff_coefficient == 0.0 {
            DEFAULT_BACKOFF
        } else {
            self.backoff_coefficient
        };
        let cap = self.maximum_interval.unwrap_or(initial.saturating_mul(100));
        let factor = coefficient.powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (initial.as_secs_f64() * factor).min(cap.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(cap)
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            initial_interval: Some(Duration::from_millis(100)),
            backoff_coefficient: 2.0,
            maximum_interval: Some(Duration::from_millis(300)),
            ..Default::default()
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(300));
        assert_eq!(p.attempts(), DEFAULT_MAXIMUM_ATTEMPTS);
    }

    #[test]
    fn reads_yaml() {
        let d: Definition = serde_norway::from_str(
            "steps:\n  - id: a\n    tool: {name: sleep, arguments: {duration_ms: 1}}\n    timeout: 2s\n    retry: {maximum_attempts: 2, initial_interval: 10ms}\n",
        )
        .unwrap();
        assert_eq!(d.steps[0].timeout, Some(Duration::from_secs(2)));
        assert_eq!(d.steps[0].retry.as_ref().unwrap().attempts(), 2);
        assert!(matches!(d.steps[0].action(), Some(Action::Tool(_))));
    }
}
