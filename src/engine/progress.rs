//! The steps of an execution as its events tell them so far: what a running execution's
//! result shows, and what a resumed one reuses.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use serde_json::Value;

use super::{Event, EventKind, ExecutionResult, StepResult, StepStatus};

/// Every step an event has named, in the order they first started, each in its latest
/// state. A step completed by an earlier attempt of the execution stays completed.
pub fn steps_so_far<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<StepResult> {
    let mut steps: Vec<StepResult> = Vec::new();
    for event in events {
        let (step_id, status, output, error, duration, attempt) = match &event.kind {
            EventKind::StepStarted { step_id, attempt } => (
                step_id,
                StepStatus::Running,
                Value::Null,
                None,
                Duration::ZERO,
                Some(*attempt),
            ),
            EventKind::StepCompleted {
                step_id,
                output,
                duration,
            } => (
                step_id,
                StepStatus::Completed,
                output.clone(),
                None,
                *duration,
                None,
            ),
            EventKind::StepFailed {
                step_id,
                error,
                attempt,
                will_retry,
            } => (
                step_id,
                if *will_retry {
                    StepStatus::Running
                } else {
                    StepStatus::Failed
                },
                Value::Null,
                Some(error.clone()),
                Duration::ZERO,
                Some(*attempt),
            ),
            EventKind::StepCancelled {
                step_id,
                reason,
                attempt,
            } => (
                step_id,
                StepStatus::Cancelled,
                Value::Null,
                Some(reason.clone()),
                Duration::ZERO,
                Some(*attempt),
            ),
            EventKind::StepSkipped { step_id, .. } => (
                step_id,
                StepStatus::Skipped,
                Value::Null,
                None,
                Duration::ZERO,
                Some(0),
            ),
            _ => continue,
        };
        let index = match steps.iter().position(|s| &s.step_id == step_id) {
            Some(index) => index,
            None => {
                steps.push(StepResult {
                    step_id: step_id.clone(),
                    status,
                    output: Value::Null,
                    error: None,
                    duration: Duration::ZERO,
                    attempts: 0,
                });
                steps.len() - 1
            }
        };
        let step = &mut steps[index];
        step.status = status;
        step.output = output;
        step.error = error;
        step.duration = duration;
        if let Some(attempt) = attempt {
            step.attempts = attempt;
        }
    }
    steps
}

/// Where a step that had not ended picks up when its execution resumes: the attempt to
/// run, and, when the attempt before it failed and was to be retried, when that failure
/// was (so the retry still waits out what is left of its backoff).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumePoint {
    pub attempt: u32,
    pub failed_at: Option<SystemTime>,
}

/// The resume point of every step that started and had not ended. An attempt cut short
/// by the restart runs again under its own number (the restart is not the step's failure);
/// one that failed to be retried is followed by the next, so the attempts in all stay
/// within the step's retry policy.
pub fn resume_points<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> HashMap<String, ResumePoint> {
    let mut points = HashMap::new();
    for event in events {
        match &event.kind {
            EventKind::StepStarted { step_id, attempt } => {
                points.insert(
                    step_id.clone(),
                    ResumePoint {
                        attempt: *attempt,
                        failed_at: None,
                    },
                );
            }
            EventKind::StepFailed {
                step_id,
                attempt,
                will_retry: true,
                ..
            } => {
                points.insert(
                    step_id.clone(),
                    ResumePoint {
                        attempt: attempt + 1,
                        failed_at: Some(event.time),
                    },
                );
            }
            EventKind::StepCompleted { step_id, .. }
            | EventKind::StepFailed { step_id, .. }
            | EventKind::StepSkipped { step_id, .. }
            | EventKind::StepCancelled { step_id, .. } => {
                points.remove(step_id);
            }
            _ => {}
        }
    }
    points
}

/// The result of an execution that has not ended: its steps so far, not a success (yet),
/// no output.
pub fn result_so_far<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    execution_time: Duration,
) -> ExecutionResult {
    let summary =
        ExecutionResult::summarize(steps_so_far(events), execution_time, Value::Null, None);
    let mut result = std::sync::Arc::unwrap_or_clone(summary);
    result.success = false;
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn events(kinds: Vec<EventKind>) -> Vec<Event> {
        let id: Arc<str> = "e".into();
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                execution_id: id.clone(),
                sequence: i as u64 + 1,
                time: SystemTime::now(),
                kind,
            })
            .collect()
    }

    fn started(step: &str, attempt: u32) -> EventKind {
        EventKind::StepStarted {
            step_id: step.into(),
            attempt,
        }
    }

    #[test]
    fn each_step_in_its_latest_state_in_the_order_they_started() {
        let history = events(vec![
            EventKind::Started { attempt: 1 },
            started("a", 1),
            started("b", 1),
            EventKind::StepCompleted {
                step_id: "b".into(),
                output: json!({"n": 2}),
                duration: Duration::from_millis(5),
            },
            EventKind::StepFailed {
                step_id: "a".into(),
                error: "Timeout: slow".into(),
                attempt: 1,
                will_retry: true,
            },
            started("a", 2),
            EventKind::StepSkipped {
                step_id: "c".into(),
                reason: "when was false".into(),
            },
        ]);
        let steps = steps_so_far(&history);
        let brief: Vec<_> = steps
            .iter()
            .map(|s| (s.step_id.as_str(), s.status, s.attempts))
            .collect();
        assert_eq!(
            brief,
            [
                ("a", StepStatus::Running, 2),
                ("b", StepStatus::Completed, 1),
                ("c", StepStatus::Skipped, 0)
            ]
        );
        assert_eq!(steps[1].output, json!({"n": 2}));
        assert_eq!(steps[1].duration, Duration::from_millis(5));
        assert_eq!(steps[0].error, None, "a retried step's old error is gone");

        let result = result_so_far(&history, Duration::from_secs(1));
        assert!(!result.success, "not ended: not a success yet");
        assert_eq!((result.steps_completed, result.steps_skipped), (1, 1));
        assert_eq!(result.output, Value::Null);
    }

    #[test]
    fn a_retrying_step_resumes_at_its_next_attempt_and_an_interrupted_one_at_its_own() {
        let history = events(vec![
            started("retrying", 1),
            EventKind::StepFailed {
                step_id: "retrying".into(),
                error: "boom".into(),
                attempt: 1,
                will_retry: true,
            },
            started("retrying", 2),
            EventKind::StepFailed {
                step_id: "retrying".into(),
                error: "boom".into(),
                attempt: 2,
                will_retry: true,
            },
            started("cut", 1),
            started("done", 1),
            EventKind::StepCompleted {
                step_id: "done".into(),
                output: json!(1),
                duration: Duration::ZERO,
            },
        ]);
        let points = resume_points(&history);
        assert_eq!(points.len(), 2, "{points:?}");
        assert_eq!(points["retrying"].attempt, 3);
        assert_eq!(points["retrying"].failed_at, Some(history[3].time));
        assert_eq!(
            points["cut"],
            ResumePoint {
                attempt: 1,
                failed_at: None
            }
        );
    }

    #[test]
    fn a_step_cut_short_is_cancelled_with_its_reason() {
        let history = events(vec![
            started("a", 2),
            EventKind::StepCancelled {
                step_id: "a".into(),
                reason: "the execution was cancelled while the step ran".into(),
                attempt: 2,
            },
        ]);
        let steps = steps_so_far(&history);
        assert_eq!(
            (steps[0].status, steps[0].attempts),
            (StepStatus::Cancelled, 2)
        );
        assert_eq!(
            steps[0].error.as_deref(),
            Some("the execution was cancelled while the step ran")
        );
    }

    #[test]
    fn a_step_that_failed_for_good_keeps_its_error() {
        let history = events(vec![
            started("a", 3),
            EventKind::StepFailed {
                step_id: "a".into(),
                error: "boom".into(),
                attempt: 3,
                will_retry: false,
            },
        ]);
        let steps = steps_so_far(&history);
        assert_eq!(steps[0].status, StepStatus::Failed);
        assert_eq!(steps[0].error.as_deref(), Some("boom"));
        assert_eq!(steps[0].attempts, 3);
    }
}
