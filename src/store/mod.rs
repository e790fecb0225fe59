//! The store: the source of truth for the registry, executions and their events.
//! `memory` keeps them in process; the durable store sits behind the same trait.

mod error;
#[cfg(test)]
mod fixtures;
mod memory;
mod records;
mod sqlite;

use std::time::SystemTime;

use async_trait::async_trait;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use records::{
    ExecutionFilter, ExecutionRecord, ExecutionStatus, WorkflowRecord, WorkflowSource,
};
pub use sqlite::SqliteStore;

use crate::engine::Event;

pub type StoreResult<T> = Result<T, StoreError>;

/// One write of an execution's history, for [`Store::write_batch`]. Records are boxed so a
/// queue of writes stays small: every live execution keeps one.
#[derive(Debug, Clone)]
pub enum StoreWrite {
    CreateExecution(Box<ExecutionRecord>),
    UpdateExecution(Box<ExecutionRecord>),
    AppendEvent(std::sync::Arc<Event>),
}

/// Called once a batch given to [`Store::write_batch_then`] is durable, or failed.
pub type BatchDone = Box<dyn FnOnce(StoreResult<()>) + Send>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Saves one workflow version.
    async fn save_workflow(&self, workflow: &WorkflowRecord) -> StoreResult<()>;
    /// Removes every version of a workflow; returns how many there were.
    async fn delete_workflow(&self, name: &str) -> StoreResult<usize>;
    /// Every workflow version, by name then version.
    async fn load_workflows(&self) -> StoreResult<Vec<WorkflowRecord>>;

    async fn create_execution(&self, execution: &ExecutionRecord) -> StoreResult<()>;
    /// Replaces an execution's record (status, timings, result).
    async fn update_execution(&self, execution: &ExecutionRecord) -> StoreResult<()>;
    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>>;
    async fn find_by_request_id(&self, request_id: &str) -> StoreResult<Option<ExecutionRecord>>;
    /// Executions matching the filter, newest first, at most `limit`, strictly older
    /// than the `before` id when given (the page cursor).
    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ExecutionRecord>>;

    /// Appends an event; it is durable when this returns.
    async fn append_event(&self, event: &Event) -> StoreResult<()>;
    /// Applies writes in order, durable together when this returns: one commit for what one
    /// execution did since its last commit. Stops at the first write that fails.
    async fn write_batch(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        for write in writes {
            match write {
                StoreWrite::CreateExecution(e) => self.create_execution(&e).await?,
                StoreWrite::UpdateExecution(e) => self.update_execution(&e).await?,
                StoreWrite::AppendEvent(event) => self.append_event(&event).await?,
            }
        }
        Ok(())
    }
    /// [`Store::write_batch`] without waiting for it: `done` is called with the result, on
    /// whichever thread finished the commit (it must be quick and must not block).
    fn write_batch_then(self: std::sync::Arc<Self>, writes: Vec<StoreWrite>, done: BatchDone) {
        tokio::spawn(async move { done(self.write_batch(writes).await) });
    }
    /// Whether what it holds is there for the next process (on disk): only then can a
    /// shutdown leave executions unfinished for the next server to resume.
    fn survives_restart(&self) -> bool {
        true
    }
    /// Whether this store applies writes without waiting for anything (it keeps them in
    /// memory): then an execution applies its writes with [`Store::apply_now`] as it makes
    /// them and publishes its events at once, with no commit task in between.
    fn applies_now(&self) -> bool {
        false
    }
    /// Applies writes in order without waiting; only called when [`Store::applies_now`].
    fn apply_now(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        let _ = writes;
        Err(StoreError::Backend(
            "this store cannot apply writes without waiting".into(),
        ))
    }
    /// Events with a sequence number greater than `after`, in order, at most `limit`.
    async fn events_after(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;

    /// Executions that were queued or running: after a restart, the ones to resume.
    async fn unfinished_executions(&self) -> StoreResult<Vec<ExecutionRecord>>;
    /// The unfinished executions with their events, to rebuild their state after a restart.
    /// A durable store answers in one read rather than one per execution.
    async fn unfinished_with_events(&self) -> StoreResult<Vec<(ExecutionRecord, Vec<Event>)>> {
        let mut all = Vec::new();
        for execution in self.unfinished_executions().await? {
            let events = self.events_after(&execution.id, 0, usize::MAX).await?;
            all.push((execution, events));
        }
        Ok(all)
    }
    /// Deletes executions (with their events) that ended before `before`; returns how many.
    async fn purge_ended_before(&self, before: SystemTime) -> StoreResult<usize>;
    /// The highest workflow version any stored execution of `workflow` ran (0: none), so
    /// a name registered again after Unregister does not reuse a number its executions name.
    async fn latest_execution_version(&self, workflow: &str) -> StoreResult<u32> {
        let filter = ExecutionFilter {
            workflow_name: Some(workflow.to_string()),
            ..Default::default()
        };
        let executions = self.list_executions(&filter, None, usize::MAX).await?;
        Ok(executions
            .iter()
            .map(|e| e.workflow_version)
            .max()
            .unwrap_or(0))
    }
    /// Called once the server has stopped: leaves what was written complete in its main
    /// file (the durable store empties its WAL into the database), so a copy of a stopped
    /// server's database file alone holds everything.
    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}
