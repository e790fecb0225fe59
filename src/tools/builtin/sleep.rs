use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::tools::{Tool, ToolError, ToolSpec, required_arg};

/// Waits for a duration; cancelling the call ends the wait at once.
pub struct Sleep {
    spec: ToolSpec,
}

/// Longest sleep one call may ask for (one hour).
const MAX_SLEEP_MS: u64 = 3_600_000;

impl Sleep {
    pub fn new() -> Self {
        Sleep {
            spec: super::spec(
                "sleep",
                "Waits for duration_ms milliseconds (at most one hour) and returns {slept_ms}.",
                json!({"type": "object", "required": ["duration_ms"],
                       "properties": {"duration_ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS}}}),
            ),
        }
    }
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for Sleep {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        let ms: u64 = required_arg("sleep", &arguments, "duration_ms")?;
        if ms > MAX_SLEEP_MS {
            return Err(ToolError::invalid(
                "sleep",
                format!("duration_ms {ms} is over the maximum of {MAX_SLEEP_MS}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({ "slept_ms": ms }))
    }
}
