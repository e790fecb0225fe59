use thiserror::Error;

/// Errors of the tools layer.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ToolError {
    #[error("unknown tool '{0}'")]
    NotFound(String),
    #[error("tool '{tool}': invalid arguments: {reason}")]
    InvalidArguments { tool: String, reason: String },
    #[error("tool '{tool}' failed: {message}")]
    Failed { tool: String, message: String },
    /// The tool's provider cannot be reached (an MCP server died or does not answer);
    /// a retry may succeed once it is back.
    #[error("tool '{tool}' is unavailable: {message}")]
    Unavailable { tool: String, message: String },
}

impl ToolError {
    pub(crate) fn failed(tool: &str, message: impl std::fmt::Display) -> Self {
        ToolError::Failed {
            tool: tool.to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn invalid(tool: &str, reason: impl std::fmt::Display) -> Self {
        ToolError::InvalidArguments {
            tool: tool.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// An error's innermost cause. The layers above it name a library's step ("error sending
/// request for url …"); the cause says what to fix ("invalid peer certificate:
/// UnknownIssuer", "Connection refused (os error 111)").
pub(crate) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The error, then its innermost cause when that is not the error itself.
pub(crate) fn with_cause(error: &(dyn std::error::Error + 'static)) -> String {
    match innermost_cause(error) {
        cause if cause == error.to_string() => cause,
        cause => format!("{error}: {cause}"),
    }
}
