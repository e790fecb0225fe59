//! `sleep`: waits in one step through the shared `sleep` tool, reporting progress.
//! Stands in for long-running work (drain, cancellation and concurrency behaviour).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{ExecutionContext, Workflow, WorkflowError, WorkflowType};
use crate::tools::ToolManager;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    /// Used when the input gives no duration_ms.
    #[serde(default = "default_duration_ms")]
    default_duration_ms: u64,
}

fn default_duration_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    duration_ms: Option<u64>,
}

struct SleepWorkflow {
    tools: Arc<ToolManager>,
    default_duration_ms: u64,
}

#[async_trait]
impl Workflow for SleepWorkflow {
    async fn initialize(&self) -> Result<(), WorkflowError> {
        if !self.tools.contains("sleep") {
            return Err(WorkflowError::Initialize(
                "the 'sleep' tool is not available".into(),
            ));
        }
        Ok(())
    }

    fn validate_input(&self, input: &Value) -> Result<(), WorkflowError> {
        super::parse_input::<Input>(input.clone()).map(|_| ())
    }

    async fn execute(&self, ctx: &ExecutionContext, input: Value) -> Result<Value, WorkflowError> {
        let input: Input = super::parse_input(input)?;
        let ms = input.duration_ms.unwrap_or(self.default_duration_ms);
        ctx.run_step("sleep", async {
            ctx.progress("sleep", format!("sleeping {ms} ms"), Some(0.0))
                .await?;
            ctx.call_tool("sleep", "sleep", json!({ "duration_ms": ms }))
                .await
        })
        .await
    }
}

pub fn workflow_type() -> WorkflowType {
    WorkflowType {
        name: "sleep",
        description: "Waits input.duration_ms milliseconds (or the default_duration_ms argument) in one step named 'sleep'.",
        arguments_schema: json!({"type": "object", "additionalProperties": false,
            "properties": {"default_duration_ms": {"type": "integer", "minimum": 0, "default": 1000}}}),
        factory: |tools: Arc<ToolManager>, args: &Value| {
            let args: Arguments = super::parse_arguments(args)?;
            Ok(Arc::new(SleepWorkflow {
                tools,
                default_duration_ms: args.default_duration_ms,
            }))
        },
    }
}
