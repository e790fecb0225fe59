use thiserror::Error;

use crate::tools::ToolError;

/// Errors of the engine layer: building, initializing and running a workflow.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum WorkflowError {
    /// The custom arguments given at registration do not fit the type.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The input of an execution does not fit the workflow.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// `initialize` refused: the workflow cannot run as configured.
    #[error("initialize failed: {0}")]
    Initialize(String),
    #[error("step '{step}' failed: {source}")]
    Tool {
        step: String,
        #[source]
        source: ToolError,
    },
    #[error("{0}")]
    Failed(String),
    /// A step's output or the execution's result is over `limits.max_output_bytes`.
    #[error("{0}")]
    OutputTooLarge(String),
    #[error("cancelled: {0}")]
    Cancelled(String),
}
