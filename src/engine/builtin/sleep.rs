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
    /// Sleeps in this many sequential steps `sleep-1`..`sleep-N` instead of one `sleep`.
    steps: Option<u32>,
}

/// Most steps one execution of `sleep` may ask for.
const MAX_STEPS: u32 = 100;

struct SleepWorkflow {
    tools: Arc<ToolManager>,
    default_duration_ms: u64,
}

impl SleepWorkflow {
    async fn nap(
        &self,
        ctx: &ExecutionContext,
        step: &str,
        ms: u64,
    ) -> Result<Value, WorkflowError> {
        ctx.run_step(step, async {
            ctx.progress(step, format!("sleeping {ms} ms"), Some(0.0))
                .await?;
            ctx.call_tool(step, "sleep", json!({ "duration_ms": ms }))
                .await
        })
        .await
    }
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
        let input: Input = super::parse_input(input.clone())?;
        match input.steps {
            Some(n) if n == 0 || n > MAX_STEPS => Err(WorkflowError::InvalidInput(format!(
                "steps must be between 1 and {MAX_STEPS}, not {n}"
            ))),
            _ => Ok(()),
        }
    }

    async fn execute(&self, ctx: &ExecutionContext, input: Value) -> Result<Value, WorkflowError> {
        let input: Input = super::parse_input(input)?;
        let ms = input.duration_ms.unwrap_or(self.default_duration_ms);
        let Some(steps) = input.steps else {
            return self.nap(ctx, "sleep", ms).await;
        };
        let mut outputs = Vec::new();
        for n in 1..=steps {
            outputs.push(self.nap(ctx, &format!("sleep-{n}"), ms).await?);
        }
        Ok(Value::Array(outputs))
    }
}

pub fn workflow_type() -> WorkflowType {
    WorkflowType {
        name: "sleep",
        description: "Waits input.duration_ms milliseconds (or the default_duration_ms argument) in one step named 'sleep'; with input.steps, in that many sequential steps named 'sleep-1'..'sleep-N', each waiting that long.",
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
