//! `echo` returns its input; `noop` does nothing. One step each: the cheapest real
//! executions, used by the benchmark to measure the engine's own overhead.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::engine::{ExecutionContext, Workflow, WorkflowError, WorkflowType};
use crate::tools::ToolManager;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

struct Echo;

#[async_trait]
impl Workflow for Echo {
    async fn execute(&self, ctx: &ExecutionContext, input: Value) -> Result<Value, WorkflowError> {
        ctx.run_step("echo", async { Ok(input) }).await
    }
}

struct Noop;

#[async_trait]
impl Workflow for Noop {
    async fn execute(&self, ctx: &ExecutionContext, _input: Value) -> Result<Value, WorkflowError> {
        ctx.run_step("noop", async { Ok(json!({})) }).await
    }
}

pub fn echo_type() -> WorkflowType {
    WorkflowType {
        name: "echo",
        description: "Returns its input as output, in one step named 'echo'.",
        arguments_schema: json!({"type": "object", "additionalProperties": false}),
        factory: |_tools: Arc<ToolManager>, args: &Value| {
            super::parse_arguments::<NoArguments>(args)?;
            Ok(Arc::new(Echo))
        },
    }
}

pub fn noop_type() -> WorkflowType {
    WorkflowType {
        name: "noop",
        description: "Does nothing in one step named 'noop' and returns {}.",
        arguments_schema: json!({"type": "object", "additionalProperties": false}),
        factory: |_tools: Arc<ToolManager>, args: &Value| {
            super::parse_arguments::<NoArguments>(args)?;
            Ok(Arc::new(Noop))
        },
    }
}
