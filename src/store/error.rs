use thiserror::Error;

/// Errors of the store layer.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("execution '{0}' does not exist")]
    ExecutionNotFound(String),
    #[error("event {sequence} of execution '{execution_id}' is out of order (last is {last})")]
    OutOfOrder {
        execution_id: String,
        sequence: u64,
        last: u64,
    },
    /// The store cannot be opened; the message says why and what to do.
    #[error("{0}")]
    Open(String),
    #[error("storage failure: {0}")]
    Backend(String),
}
