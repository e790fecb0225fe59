//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};

use crate::manager::ManagerError;

impl From<ManagerError> for Status {
    fn from(e: ManagerError) -> Status {
        let code = match &e {
            ManagerError::NotFound(_) => Code::NotFound,
            ManagerError::InvalidArgument { .. } => Code::InvalidArgument,
            ManagerError::AlreadyExists(_) => Code::AlreadyExists,
            ManagerError::FailedPrecondition(_) => Code::FailedPrecondition,
            ManagerError::ResourceExhausted { .. } => Code::ResourceExhausted,
            ManagerError::Unavailable(_) => Code::Unavailable,
            ManagerError::Internal(_) => Code::Internal,
        };
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        Status::new(code, e.to_string())
    }
}
