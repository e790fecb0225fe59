//! In-process store: everything is lost when the process exits.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{
    ExecutionFilter, ExecutionRecord, Store, StoreError, StoreResult, StoreWrite, WorkflowRecord,
};
use crate::engine::Event;

#[derive(Default)]
struct Inner {
    workflows: BTreeMap<(String, u32), WorkflowRecord>,
    /// Keyed by id; UUIDv7 ids make this creation order.
    executions: BTreeMap<String, ExecutionRecord>,
    request_ids: HashMap<String, String>,
    events: HashMap<String, Vec<Arc<Event>>>,
}

/// The writes, applied under the caller's lock; owned so nothing is copied twice.
impl Inner {
    fn create(&mut self, execution: ExecutionRecord) {
        if let Some(request_id) = &execution.request_id {
            self.request_ids
                .insert(request_id.clone(), execution.id.clone());
        }
        self.events.insert(execution.id.clone(), Vec::new());
        self.executions.insert(execution.id.clone(), execution);
    }

    fn update(&mut self, execution: ExecutionRecord) -> StoreResult<()> {
        let existing = self
            .executions
            .get_mut(&execution.id)
            .ok_or_else(|| StoreError::ExecutionNotFound(execution.id.clone()))?;
        let last_sequence = existing.last_sequence.max(execution.last_sequence);
        *existing = execution;
        existing.last_sequence = last_sequence;
        Ok(())
    }

    fn append(&mut self, event: Arc<Event>) -> StoreResult<()> {
        let events = self
            .events
            .get_mut(&event.execution_id)
            .ok_or_else(|| StoreError::ExecutionNotFound(event.execution_id.clone()))?;
        let last = events.last().map_or(0, |e| e.sequence);
        if event.sequence != last + 1 {
            return Err(StoreError::OutOfOrder {
                execution_id: event.execution_id.clone(),
                sequence: event.sequence,
                last,
            });
        }
        if let Some(e) = self.executions.get_mut(&event.execution_id) {
            e.last_sequence = event.sequence;
        }
        events.push(event);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory store lock")
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn save_workflow(&self, workflow: &WorkflowRecord) -> StoreResult<()> {
        self.lock()
            .workflows
            .insert((workflow.name.clone(), workflow.version), workflow.clone());
        Ok(())
    }

    async fn delete_workflow(&self, name: &str) -> StoreResult<usize> {
        let mut inner = self.lock();
        let before = inner.workflows.len();
        inner.workflows.retain(|(n, _), _| n != name);
        Ok(before - inner.workflows.len())
    }

    async fn load_workflows(&self) -> StoreResult<Vec<WorkflowRecord>> {
        Ok(self.lock().workflows.values().cloned().collect())
    }

    async fn create_execution(&self, execution: &ExecutionRecord) -> StoreResult<()> {
        self.lock().create(execution.clone());
        Ok(())
    }

    async fn update_execution(&self, execution: &ExecutionRecord) -> StoreResult<()> {
        self.lock().update(execution.clone())
    }

    async fn write_batch(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        self.apply_now(writes)
    }

    fn applies_now(&self) -> bool {
        true
    }

    fn apply_now(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        let mut inner = self.lock();
        for write in writes {
            match write {
                StoreWrite::CreateExecution(e) => inner.create(*e),
                StoreWrite::UpdateExecution(e) => inner.update(*e)?,
                StoreWrite::AppendEvent(event) => inner.append(event)?,
            }
        }
        Ok(())
    }

    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        Ok(self.lock().executions.get(id).cloned())
    }

    async fn find_by_request_id(&self, request_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let inner = self.lock();
        Ok(inner
            .request_ids
            .get(request_id)
            .and_then(|id| inner.executions.get(id))
            .cloned())
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let inner = self.lock();
        use std::ops::Bound;
        let upper = before.map_or(Bound::Unbounded, Bound::Excluded);
        let range = inner.executions.range::<str, _>((Bound::Unbounded, upper));
        Ok(range
            .rev()
            .map(|(_, e)| e)
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        self.lock().append(Arc::new(event.clone()))
    }

    async fn unfinished_executions(&self) -> StoreResult<Vec<ExecutionRecord>> {
        Ok(self
            .lock()
            .executions
            .values()
            .filter(|e| !e.status.is_terminal())
            .cloned()
            .collect())
    }

    async fn purge_ended_before(&self, before: std::time::SystemTime) -> StoreResult<usize> {
        let mut inner = self.lock();
        let old: Vec<String> = inner
            .executions
            .values()
            .filter(|e| e.end_time.is_some_and(|t| t < before))
            .map(|e| e.id.clone())
            .collect();
        for id in &old {
            if let Some(e) = inner.executions.remove(id)
                && let Some(r) = e.request_id
            {
                inner.request_ids.remove(&r);
            }
            inner.events.remove(id);
        }
        Ok(old.len())
    }

    async fn events_after(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let inner = self.lock();
        let events = inner
            .events
            .get(execution_id)
            .ok_or_else(|| StoreError::ExecutionNotFound(execution_id.to_string()))?;
        // Sequence n sits at index n - 1.
        let start = (after as usize).min(events.len());
        Ok(events[start..]
            .iter()
            .take(limit)
            .map(|e| Event::clone(e))
            .collect())
    }
}
