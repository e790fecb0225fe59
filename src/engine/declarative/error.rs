//! Why a step (or one attempt of it) failed, with the error type retry policies match.

use std::fmt;

use crate::engine::WorkflowError;
use crate::template::TemplateError;
use crate::tools::ToolError;

/// The error types a retry policy's `non_retryable_error_types` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepErrorKind {
    /// A template or condition could not be evaluated. Never retried: it would fail again.
    Template,
    /// `for_each` did not give a list. Never retried.
    ForEachNotList,
    /// The tool refused its arguments.
    InvalidArguments,
    /// The tool does not exist (any more).
    NotFound,
    /// The tool ran and reported an error.
    ToolFailed,
    /// The tool's server could not be reached.
    Unavailable,
    /// The attempt took longer than the step's timeout.
    Timeout,
    /// The child workflow did not complete.
    ChildWorkflowFailed,
    /// The run or the step was cancelled. Never retried.
    Cancelled,
    /// The output is over `limits.max_output_bytes`. Never retried.
    OutputTooLarge,
    /// The engine could not record an event. Never retried.
    Internal,
}

impl StepErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Template => "TemplateError",
            Self::ForEachNotList => "ForEachNotList",
            Self::InvalidArguments => "InvalidArguments",
            Self::NotFound => "NotFound",
            Self::ToolFailed => "ToolFailed",
            Self::Unavailable => "Unavailable",
            Self::Timeout => "Timeout",
            Self::ChildWorkflowFailed => "ChildWorkflowFailed",
            Self::Cancelled => "Cancelled",
            Self::OutputTooLarge => "OutputTooLarge",
            Self::Internal => "Internal",
        }
    }

    fn always_final(self) -> bool {
        matches!(
            self,
            Self::Template
                | Self::ForEachNotList
                | Self::Cancelled
                | Self::OutputTooLarge
                | Self::Internal
        )
    }
}

#[derive(Debug, Clone)]
pub struct StepError {
    pub kind: StepErrorKind,
    pub message: String,
}

impl StepError {
    pub fn new(kind: StepErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: message.into(),
        }
    }

    pub fn cancelled() -> Self {
        Self::new(StepErrorKind::Cancelled, "cancelled")
    }

    /// Whether a retry policy listing `non_retryable` may retry this error: a listed entry
    /// matches the error type's name or a fragment of the message.
    pub fn retryable(&self, non_retryable: &[String]) -> bool {
        !self.kind.always_final()
            && !non_retryable.iter().any(|n| {
                n == self.kind.name() || (!n.is_empty() && self.message.contains(n.as_str()))
            })
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl From<TemplateError> for StepError {
    fn from(e: TemplateError) -> Self {
        StepError::new(StepErrorKind::Template, e.to_string())
    }
}

impl From<ToolError> for StepError {
    fn from(e: ToolError) -> Self {
        let kind = match &e {
            ToolError::NotFound(_) => StepErrorKind::NotFound,
            ToolError::InvalidArguments { .. } => StepErrorKind::InvalidArguments,
            ToolError::Failed { .. } => StepErrorKind::ToolFailed,
            ToolError::Unavailable { .. } => StepErrorKind::Unavailable,
        };
        StepError::new(kind, e.to_string())
    }
}

impl From<WorkflowError> for StepError {
    fn from(e: WorkflowError) -> Self {
        let kind = match e {
            WorkflowError::Cancelled(_) => StepErrorKind::Cancelled,
            WorkflowError::OutputTooLarge(_) => StepErrorKind::OutputTooLarge,
            _ => StepErrorKind::Internal,
        };
        StepError::new(kind, e.to_string())
    }
}
