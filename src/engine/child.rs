//! Child executions for composition. The engine does not know the manager: a declarative
//! step asks this trait to run another registered workflow, and the manager implements it
//! (start with the parent's id, follow the child's events, cancel it with the parent).

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a step asks to run.
#[derive(Debug, Clone)]
pub struct ChildRequest {
    pub name: String,
    /// 0: the latest version.
    pub version: u32,
    pub input: Value,
    /// The execution running the step, recorded as the child's parent.
    pub parent_execution_id: String,
    pub step_id: String,
    /// The for_each item the step runs for, if any.
    pub item_index: Option<u64>,
    /// The step's attempt (from 1), so a retry starts a new child and a rerun of the same
    /// attempt after a restart finds the child it started before.
    pub attempt: u32,
}

/// Runs child executions on behalf of declarative steps.
#[async_trait]
pub trait ChildRunner: Send + Sync {
    /// Starts the child and waits for its end, returning its output or why it did not
    /// complete. Each of the child's events is described on `progress`, which the step
    /// reports as its progress. Cancelling `cancel` cancels the child execution, even when
    /// this future has been dropped.
    async fn run_child(
        &self,
        request: ChildRequest,
        cancel: CancellationToken,
        progress: mpsc::Sender<String>,
    ) -> Result<Value, String>;
}
