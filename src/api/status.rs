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
            ManagerError::OutOfRange { .. } => Code::OutOfRange,
            ManagerError::Unavailable(_) => Code::Unavailable,
            ManagerError::Internal(_) => Code::Internal,
        };
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        Status::new(code, bounded(e.to_string()))
    }
}

/// Longest status message sent. It travels in an HTTP/2 header, which clients limit (often
/// to 16 KiB for all headers), and a message echoing a huge field would lose the answer.
const MAX_MESSAGE_BYTES: usize = 4096;

fn bounded(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let total = message.len();
    let mut cut = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("… (cut; {total} bytes in all)"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let status = Status::from(ManagerError::invalid("execution_id", "é".repeat(10_000)));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().len() < MAX_MESSAGE_BYTES + 64);
        assert!(
            status.message().ends_with("(cut; 20014 bytes in all)"),
            "{}",
            status.message()
        );
    }
}
