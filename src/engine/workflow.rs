use async_trait::async_trait;
use serde_json::Value;

use super::{ExecutionContext, WorkflowError};

/// A workflow compiled into the server (the seed's workflow class).
/// Instances are built by a [`super::WorkflowType`]'s factory, which injects the shared
/// ToolManager; one instance serves every execution of its registered version.
#[async_trait]
pub trait Workflow: Send + Sync {
    /// Checks the workflow can run (its tools and resources exist). A workflow whose
    /// initialize fails is not registered.
    async fn initialize(&self) -> Result<(), WorkflowError> {
        Ok(())
    }

    /// Checks an execution's input before the execution is created, so a bad input is
    /// answered at once (INVALID_ARGUMENT) instead of by a failed execution.
    fn validate_input(&self, _input: &Value) -> Result<(), WorkflowError> {
        Ok(())
    }

    /// Runs one execution. Report steps through `ctx`; return the output data.
    async fn execute(&self, ctx: &ExecutionContext, input: Value) -> Result<Value, WorkflowError>;

    /// Releases what the workflow holds, at service shutdown or unregistration.
    async fn shutdown(&self) -> Result<(), WorkflowError> {
        Ok(())
    }
}
