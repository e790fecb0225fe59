//! In-process store: everything is lost when the process exits.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ops::Bound,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{
    ExecutionFilter, ExecutionRecord, Store, StoreError, StoreResult, StoreWrite, WorkflowRecord,
};
use crate::engine::Event;

/// An execution id as a map key: a UUID as its 128 bits, which hash and compare in a few
/// instructions and sort as their text does (UUIDv7: creation order); any other id as its
/// text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Uuid(u128),
    Text(String),
}

impl Key {
    fn of(id: &str) -> Key {
        // Only the canonical text (36 characters: hyphenated, lowercase) maps to the number,
        // so that numeric order stays the ids' text order.
        let canonical = id.len() == 36 && !id.bytes().any(|b| b.is_ascii_uppercase());
        match uuid::Uuid::try_parse(id) {
            Ok(u) if canonical => Key::Uuid(u.as_u128()),
            _ => Key::Text(id.to_string()),
        }
    }
}

/// An execution and its events, under one key.
struct Stored {
    record: ExecutionRecord,
    events: Vec<Arc<Event>>,
}

#[derive(Default)]
struct Inner {
    workflows: BTreeMap<(String, u32), WorkflowRecord>,
    /// Looked up by every write of a running execution. Boxed: the map moves its entries
    /// when it grows, and a pointer is cheaper to move than a record.
    executions: HashMap<Key, Box<Stored>>,
    /// The same keys in id order, for lists: UUIDv7 ids make this creation order.
    order: BTreeSet<Key>,
    request_ids: HashMap<String, String>,
}

/// The writes, applied under the caller's lock; owned so nothing is copied twice.
impl Inner {
    fn get_mut(&mut self, id: &str) -> StoreResult<&mut Stored> {
        self.executions
            .get_mut(&Key::of(id))
            .map(|s| &mut **s)
            .ok_or_else(|| StoreError::ExecutionNotFound(id.to_string()))
    }

    fn get(&self, id: &str) -> Option<&Stored> {
        self.executions.get(&Key::of(id)).map(|s| &**s)
    }

    fn create(&mut self, record: ExecutionRecord) {
        if let Some(request_id) = &record.request_id {
            self.request_ids
                .insert(request_id.clone(), record.id.clone());
        }
        let stored = Box::new(Stored {
            record,
            events: Vec::with_capacity(8),
        });
        let key = Key::of(&stored.record.id);
        self.order.insert(key.clone());
        self.executions.insert(key, stored);
    }

    fn update(&mut self, execution: ExecutionRecord) -> StoreResult<()> {
        let existing = &mut self.get_mut(&execution.id)?.record;
        let last_sequence = existing.last_sequence.max(execution.last_sequence);
        *existing = execution;
        existing.last_sequence = last_sequence;
        Ok(())
    }

    fn append(&mut self, event: Arc<Event>) -> StoreResult<()> {
        let stored = self.get_mut(&event.execution_id)?;
        let last = stored.events.last().map_or(0, |e| e.sequence);
        if event.sequence != last + 1 {
            return Err(StoreError::OutOfOrder {
                execution_id: event.execution_id.clone(),
                sequence: event.sequence,
                last,
            });
        }
        stored.record.last_sequence = event.sequence;
        stored.events.push(event);
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
        Ok(self.lock().get(id).map(|s| s.record.clone()))
    }

    async fn find_by_request_id(&self, request_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let inner = self.lock();
        Ok(inner
            .request_ids
            .get(request_id)
            .and_then(|id| inner.get(id))
            .map(|s| s.record.clone()))
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let inner = self.lock();
        let upper = before.map_or(Bound::Unbounded, |id| Bound::Excluded(Key::of(id)));
        let range = inner.order.range((Bound::Unbounded, upper));
        Ok(range
            .rev()
            .filter_map(|key| inner.executions.get(key))
            .map(|s| &s.record)
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        self.lock().append(Arc::new(event.clone()))
    }

    async fn unfinished_executions(&self) -> StoreResult<Vec<ExecutionRecord>> {
        let inner = self.lock();
        Ok(inner
            .order
            .iter()
            .filter_map(|key| inner.executions.get(key))
            .map(|s| &s.record)
            .filter(|e| !e.status.is_terminal())
            .cloned()
            .collect())
    }

    async fn purge_ended_before(&self, before: std::time::SystemTime) -> StoreResult<usize> {
        let mut inner = self.lock();
        let old: Vec<Key> = inner
            .executions
            .iter()
            .filter(|(_, s)| s.record.end_time.is_some_and(|t| t < before))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &old {
            inner.order.remove(key);
            if let Some(s) = inner.executions.remove(key)
                && let Some(r) = s.record.request_id
            {
                inner.request_ids.remove(&r);
            }
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
        let events = &inner
            .get(execution_id)
            .ok_or_else(|| StoreError::ExecutionNotFound(execution_id.to_string()))?
            .events;
        // Sequence n sits at index n - 1.
        let start = (after as usize).min(events.len());
        Ok(events[start..]
            .iter()
            .take(limit)
            .map(|e| Event::clone(e))
            .collect())
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
