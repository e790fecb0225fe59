use thiserror::Error;

use crate::store::StoreError;

/// Errors of the manager layer; the gRPC layer maps each variant to one status code.
#[derive(Debug, Error)]
pub enum ManagerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{limit} is {value}: {detail}")]
    ResourceExhausted {
        limit: &'static str,
        /// The limit's configured value, as written in the configuration.
        value: String,
        detail: String,
    },
    /// An answer would be over a size limit (`limits.max_message_bytes`).
    #[error("{limit} is {value}: {detail}")]
    OutOfRange {
        limit: &'static str,
        value: String,
        detail: String,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ManagerError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ManagerError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for ManagerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ExecutionNotFound(id) => {
                ManagerError::NotFound(format!("execution '{id}' does not exist"))
            }
            other => ManagerError::Internal(other.to_string()),
        }
    }
}
