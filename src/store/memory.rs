//! In-process store: everything is lost when the process exits.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::{BuildHasher, RandomState},
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard},
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

/// The executions whose keys hash to one shard. A running execution's writes (its events,
/// its record's updates) lock only its shard, so executions running on other threads do
/// not wait for each other.
#[derive(Default)]
struct Shard {
    /// Boxed: the map moves its entries when it grows, and a pointer is cheaper to move
    /// than a record.
    executions: HashMap<Key, Box<Stored>>,
}

/// The writes of a running execution, given its key (parsed once per write).
impl Shard {
    fn get_mut(&mut self, key: &Key, id: &str) -> StoreResult<&mut Stored> {
        self.executions
            .get_mut(key)
            .map(|s| &mut **s)
            .ok_or_else(|| StoreError::ExecutionNotFound(id.to_string()))
    }

    fn update(&mut self, key: &Key, execution: ExecutionRecord) -> StoreResult<()> {
        let existing = &mut self.get_mut(key, &execution.id)?.record;
        let last_sequence = existing.last_sequence.max(execution.last_sequence);
        *existing = execution;
        existing.last_sequence = last_sequence;
        Ok(())
    }

    fn append(&mut self, key: &Key, event: Arc<Event>) -> StoreResult<()> {
        let stored = self.get_mut(key, &event.execution_id)?;
        let last = stored.events.last().map_or(0, |e| e.sequence);
        if event.sequence != last + 1 {
            return Err(StoreError::OutOfOrder {
                execution_id: event.execution_id.to_string(),
                sequence: event.sequence,
                last,
            });
        }
        stored.record.last_sequence = event.sequence;
        stored.events.push(event);
        Ok(())
    }
}

/// What spans the shards, changed only when executions are created or purged.
#[derive(Default)]
struct Index {
    /// Every key in id order, for lists: UUIDv7 ids make this creation order.
    order: BTreeSet<Key>,
    request_ids: HashMap<String, String>,
}

/// Shards: a power of two well above the worker threads of a small server.
const SHARDS: usize = 16;

/// Locks are taken index first, then a shard, never the other way round.
pub struct MemoryStore {
    workflows: Mutex<BTreeMap<(String, u32), WorkflowRecord>>,
    index: Mutex<Index>,
    shards: [Mutex<Shard>; SHARDS],
    hasher: RandomState,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            workflows: Mutex::default(),
            index: Mutex::default(),
            shards: std::array::from_fn(|_| Mutex::default()),
            hasher: RandomState::new(),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().expect("memory store index lock")
    }

    fn shard_of(&self, key: &Key) -> MutexGuard<'_, Shard> {
        let n = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[n].lock().expect("memory store shard lock")
    }

    fn update(&self, execution: ExecutionRecord) -> StoreResult<()> {
        let key = Key::of(&execution.id);
        self.shard_of(&key).update(&key, execution)
    }

    fn append(&self, event: Arc<Event>) -> StoreResult<()> {
        let key = Key::of(&event.execution_id);
        self.shard_of(&key).append(&key, event)
    }

    /// Under the index's lock, so a list or a request-id lookup sees all of it or none.
    fn create(&self, record: ExecutionRecord) {
        let key = Key::of(&record.id);
        let mut index = self.index();
        if let Some(request_id) = &record.request_id {
            index
                .request_ids
                .insert(request_id.clone(), record.id.clone());
        }
        index.order.insert(key.clone());
        let stored = Box::new(Stored {
            record,
            events: Vec::with_capacity(8),
        });
        self.shard_of(&key).executions.insert(key, stored);
    }

    fn record(&self, id: &str) -> Option<ExecutionRecord> {
        let key = Key::of(id);
        let shard = self.shard_of(&key);
        shard.executions.get(&key).map(|s| s.record.clone())
    }

    /// The records of `keys` (in that order) that pass `keep`, up to `limit`.
    fn records<'k>(
        &self,
        keys: impl Iterator<Item = &'k Key>,
        keep: impl Fn(&ExecutionRecord) -> bool,
        limit: usize,
    ) -> Vec<ExecutionRecord> {
        keys.filter_map(|key| {
            let shard = self.shard_of(key);
            let record = &shard.executions.get(key)?.record;
            keep(record).then(|| record.clone())
        })
        .take(limit)
        .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn save_workflow(&self, workflow: &WorkflowRecord) -> StoreResult<()> {
        self.workflows
            .lock()
            .expect("memory store workflows lock")
            .insert((workflow.name.clone(), workflow.version), workflow.clone());
        Ok(())
    }

    async fn delete_workflow(&self, name: &str) -> StoreResult<usize> {
        let mut workflows = self.workflows.lock().expect("memory store workflows lock");
        let before = workflows.len();
        workflows.retain(|(n, _), _| n != name);
        Ok(before - workflows.len())
    }

    async fn load_workflows(&self) -> StoreResult<Vec<WorkflowRecord>> {
        let workflows = self.workflows.lock().expect("memory store workflows lock");
        Ok(workflows.values().cloned().collect())
    }

    async fn create_execution(&self, execution: &ExecutionRecord) -> StoreResult<()> {
        self.create(execution.clone());
        Ok(())
    }

    async fn update_execution(&self, execution: &ExecutionRecord) -> StoreResult<()> {
        self.update(execution.clone())
    }

    async fn write_batch(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        self.apply_now(writes)
    }

    fn applies_now(&self) -> bool {
        true
    }

    fn survives_restart(&self) -> bool {
        false
    }

    fn apply_now(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        for write in writes {
            match write {
                StoreWrite::CreateExecution(e) => self.create(*e),
                StoreWrite::UpdateExecution(e) => self.update(*e)?,
                StoreWrite::AppendEvent(event) => self.append(event)?,
            }
        }
        Ok(())
    }

    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        Ok(self.record(id))
    }

    async fn find_by_request_id(&self, request_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let index = self.index();
        Ok(index
            .request_ids
            .get(request_id)
            .and_then(|id| self.record(id)))
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let index = self.index();
        let upper = before.map_or(Bound::Unbounded, |id| Bound::Excluded(Key::of(id)));
        let newest_first = index.order.range((Bound::Unbounded, upper)).rev();
        Ok(self.records(newest_first, |e| filter.matches(e), limit))
    }

    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        self.append(Arc::new(event.clone()))
    }

    async fn unfinished_executions(&self) -> StoreResult<Vec<ExecutionRecord>> {
        let index = self.index();
        Ok(self.records(index.order.iter(), |e| !e.status.is_terminal(), usize::MAX))
    }

    async fn purge_ended_before(&self, before: std::time::SystemTime) -> StoreResult<usize> {
        let mut index = self.index();
        let mut purged = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().expect("memory store shard lock");
            let old: Vec<Key> = shard
                .executions
                .iter()
                .filter(|(_, s)| s.record.end_time.is_some_and(|t| t < before))
                .map(|(key, _)| key.clone())
                .collect();
            for key in old {
                index.order.remove(&key);
                if let Some(s) = shard.executions.remove(&key)
                    && let Some(r) = s.record.request_id
                {
                    index.request_ids.remove(&r);
                }
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn events_after(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let key = Key::of(execution_id);
        let shard = self.shard_of(&key);
        let events = &shard
            .executions
            .get(&key)
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
