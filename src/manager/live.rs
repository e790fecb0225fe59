//! A live execution's history on its way to the store. Every record change and event is
//! numbered and queued to the execution's writer, which commits what has accumulated in one
//! store batch and only then hands the events to followers. Nobody waits for a commit
//! except where a promise depends on it:
//! - a new execution is acknowledged once its record and first event are durable;
//! - a step starts only once every step completed before it is durable, so after a crash
//!   only the steps that were running run again, never one whose completion was reported;
//! - the terminal event is durable before anyone sees it, and the record with it.
//!
//! The first step of an execution has no completion to wait for: it starts at once, and
//! what its execution wrote up to the task's first yield is one commit. A one-step
//! execution whose step finishes without yielding (a `noop`, a `json_transform`) thus costs
//! one commit round, and its record is written once. If the process dies before that
//! commit, the execution was never acknowledged: the client's call fails and it retries
//! (with its `request_id`, which nothing recorded yet); the step ran at most once more,
//! which its at-least-once guarantee allows. A store that applies writes at once (in
//! memory) has no rounds: each write is applied and its event published as it is made.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::engine::{Event, EventKind, EventSink};
use crate::store::{ExecutionRecord, Store, StoreWrite};

/// Live events kept for followers; a follower that falls further behind catches up from the store.
const LIVE_EVENT_BUFFER: usize = 16;
/// Most writes of one execution in one commit.
const MAX_WRITE_BATCH: usize = 1024;

/// How far the execution's writes are on disk.
#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every write with a ticket up to this one is committed.
    through: u64,
    /// The store failed: later writes are not known to be durable.
    error: Option<String>,
}

/// Writes waiting for the next commit, numbered under one lock so they commit in order.
#[derive(Default)]
struct Queue {
    pending: Vec<StoreWrite>,
    last_sequence: u64,
    last_ticket: u64,
    /// The ticket of the latest `step_completed`: the next step starts once it is durable.
    last_completion: u64,
    /// A commit is in flight; its answer commits what was queued meanwhile.
    committing: bool,
}

/// A running (or queued) execution: its cancellation, its event numbering and its followers.
pub(crate) struct LiveExecution {
    /// Shared with each of its events.
    pub id: Arc<str>,
    /// The execution that started it as a step's child, if any.
    pub parent: Option<Arc<str>>,
    /// Its workflow's name: an unregister refuses while it is live.
    pub workflow: Arc<str>,
    pub cancel: CancellationToken,
    cancel_reason: Mutex<Option<String>>,
    /// Cancelled when the execution has reached its terminal state.
    pub finished: CancellationToken,
    pub events: broadcast::Sender<Arc<Event>>,
    /// Its concurrency slots once admitted, lent while it waits for a child execution.
    pub slots: Arc<super::slots::Slots>,
    /// Its task, to stop it where it is (a shutdown that leaves it for the next server).
    pub task: std::sync::OnceLock<tokio::task::AbortHandle>,
    queue: Mutex<Queue>,
    durable: watch::Sender<Durable>,
    store: Arc<dyn Store>,
    /// Itself, for the store's answer to a commit: nothing is kept per execution while it waits.
    me: Weak<LiveExecution>,
    /// The store applies writes at once (in memory): each is applied and published as it is
    /// made, and nothing waits.
    applies_now: bool,
    max_events: u64,
    /// What ends the execution everywhere (its slots released, the live set left), run once
    /// its terminal event is durable and before anyone sees that event: whoever sees it may
    /// start the next execution at once and must find it admitted. Set by the execution's
    /// task before it emits the terminal event (see [`Self::end_with`]).
    on_terminal: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl LiveExecution {
    /// A live execution whose events continue after `last_sequence`. Also returns a
    /// follower subscribed before any event can be published.
    pub fn start(
        id: Arc<str>,
        parent: Option<Arc<str>>,
        workflow: Arc<str>,
        last_sequence: u64,
        max_events: u64,
        store: Arc<dyn Store>,
    ) -> (Arc<LiveExecution>, broadcast::Receiver<Arc<Event>>) {
        let (events, first_follower) = broadcast::channel(LIVE_EVENT_BUFFER);
        let live = Arc::new_cyclic(|me| LiveExecution {
            id,
            parent,
            workflow,
            cancel: CancellationToken::new(),
            cancel_reason: Mutex::new(None),
            finished: CancellationToken::new(),
            events,
            slots: Arc::default(),
            task: std::sync::OnceLock::new(),
            queue: Mutex::new(Queue {
                last_sequence,
                ..Queue::default()
            }),
            durable: watch::Sender::new(Durable::default()),
            applies_now: store.applies_now(),
            store,
            me: me.clone(),
            max_events,
            on_terminal: Mutex::new(None),
        });
        (live, first_follower)
    }

    /// Cancels the execution; the first reason given is the one reported.
    pub fn cancel_with(&self, reason: String) {
        self.cancel_reason
            .lock()
            .expect("cancel reason lock")
            .get_or_insert(reason);
        self.cancel.cancel();
    }

    /// Stops its task where it is, writing nothing more: what is in the store stays as a
    /// crash would leave it, for the next server to resume.
    pub fn suspend(&self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }

    pub fn cancel_reason(&self) -> String {
        self.cancel_reason
            .lock()
            .expect("cancel reason lock")
            .clone()
            .unwrap_or_else(|| "cancelled".into())
    }

    /// Queues the record (created when `create`); returns its ticket for [`Self::durable`].
    pub fn save(&self, record: &ExecutionRecord, create: bool) -> Result<u64, String> {
        let write = if create {
            StoreWrite::CreateExecution(Box::new(record.clone()))
        } else {
            StoreWrite::UpdateExecution(Box::new(record.clone()))
        };
        self.queue(None, |_| Ok(write), create)
    }

    /// Waits until every write up to `ticket` is committed.
    pub async fn durable(&self, ticket: u64) -> Result<(), String> {
        let mut durable = self.durable.subscribe();
        let state = durable
            .wait_for(|d| d.error.is_some() || d.through >= ticket)
            .await
            .map_err(|_| "the execution's history is no longer written".to_string())?;
        match &state.error {
            Some(e) => Err(format!("the store failed: {e}")),
            None => Ok(()),
        }
    }

    fn failure(&self) -> Result<(), String> {
        match &self.durable.borrow().error {
            Some(e) => Err(format!("the store failed: {e}")),
            None => Ok(()),
        }
    }

    /// Queues a write, after `record` when given (under the same lock, so no commit takes
    /// one without the other). Made by the execution's own task, it is committed once that
    /// task yields (see [`CommitOnYield`]); made elsewhere, a commit starts now unless
    /// `later` (the record of a new execution, whose task is about to start).
    fn queue(
        &self,
        record: Option<StoreWrite>,
        make: impl FnOnce(&mut Queue) -> Result<StoreWrite, String>,
        later: bool,
    ) -> Result<u64, String> {
        let mut queue = self.queue.lock().expect("execution queue lock");
        if let Some(record) = record {
            self.push(&mut queue, record);
        }
        let write = make(&mut queue)?;
        self.push(&mut queue, write);
        if self.applies_now {
            return Ok(queue.last_ticket);
        }
        let own_task = POLLING.with(|p| std::ptr::eq(p.get(), self));
        let ticket = queue.last_ticket;
        if !later && !own_task {
            self.start_commit(queue);
        }
        Ok(ticket)
    }

    /// Numbers a write and queues it; a store that needs no waiting applies it at once, under
    /// the queue's lock, so writes are applied and published in order.
    fn push(&self, queue: &mut Queue, write: StoreWrite) {
        queue.last_ticket += 1;
        if self.applies_now {
            self.apply_now(write, queue.last_ticket);
        } else {
            queue.pending.push(write);
        }
    }

    /// Starts a commit unless one is in flight or nothing waits to be committed.
    fn start_commit(&self, mut queue: std::sync::MutexGuard<'_, Queue>) {
        if queue.committing || queue.pending.is_empty() {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        queue.committing = true;
        let batch = take_batch(&mut queue);
        drop(queue);
        me.send_batch(batch);
    }

    /// Applies one write in a store that needs no waiting, and publishes its event.
    fn apply_now(&self, write: StoreWrite, ticket: u64) {
        let event = match &write {
            StoreWrite::AppendEvent(e) => Some(e.clone()),
            _ => None,
        };
        match self.store.apply_now(vec![write]) {
            Ok(()) => {
                if let Some(event) = event {
                    self.publish(event);
                }
                self.advance_durable(ticket);
            }
            Err(e) => self.failed(&e.to_string(), event.iter()),
        }
    }

    /// Hands a durable event to followers; the terminal one once the execution has ended
    /// everywhere, so the commit that makes it durable also delivers it.
    fn publish(&self, event: Arc<Event>) {
        if event.is_terminal() {
            self.run_on_terminal();
        }
        // No follower is fine: the event is in the store.
        let _ = self.events.send(event);
    }

    /// Sets what ends the execution everywhere once its terminal event is durable.
    pub fn end_with(&self, end: impl FnOnce() + Send + 'static) {
        *self.on_terminal.lock().expect("terminal hook lock") = Some(Box::new(end));
    }

    /// Ends the execution everywhere unless that is done: the terminal event's commit does
    /// it, and the execution's task after a commit that failed.
    pub fn run_on_terminal(&self) {
        let end = self.on_terminal.lock().expect("terminal hook lock").take();
        if let Some(end) = end {
            end();
        }
    }

    /// Marks every write up to `through` durable, waking whoever waits for one. Mostly
    /// nobody does, and then nothing is woken: a wake-up costs eight locks.
    fn advance_durable(&self, through: u64) {
        self.durable.send_if_modified(|d| {
            d.through = through;
            // Under the channel's write lock: a waiter counted after this read reads the
            // value only once the lock is released, so it finds `through` already there.
            self.durable.receiver_count() > 0
        });
    }

    /// The store could not record `events`: later writes are not known to be durable. If
    /// the terminal event is among them, the execution ends everywhere all the same (its
    /// task does not wait for that commit).
    fn failed<'e>(&self, error: &str, mut events: impl Iterator<Item = &'e Arc<Event>>) {
        tracing::error!(execution = %self.id, error, "could not record the execution's history");
        self.durable.send_modify(|d| {
            d.error.get_or_insert(error.to_string());
        });
        if events.any(|event| event.is_terminal()) {
            self.run_on_terminal();
        }
    }

    /// Commits what is queued: hands it to the store, whose answer publishes the committed
    /// events to followers and commits what was queued meanwhile. One commit at most is in
    /// flight per execution, so commits and publication keep the order of the queue; no task
    /// waits for it (the durable store runs its answers itself, see store/sqlite/answers.rs).
    fn commit_next(self: Arc<Self>) {
        let batch = {
            let mut queue = self.queue.lock().expect("execution queue lock");
            if queue.pending.is_empty() {
                queue.committing = false;
                // A sleeping execution keeps no buffer.
                queue.pending = Vec::new();
                return;
            }
            take_batch(&mut queue)
        };
        self.send_batch(batch);
    }

    /// Hands a batch to the store; its answer publishes and goes on with the next one.
    fn send_batch(self: Arc<Self>, (writes, through): (Vec<StoreWrite>, u64)) {
        let events: Vec<Arc<Event>> = writes
            .iter()
            .filter_map(|w| match w {
                StoreWrite::AppendEvent(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let store = self.store.clone();
        store.write_batch_then(
            writes,
            Box::new(move |result| {
                match result {
                    Ok(()) => {
                        for event in events {
                            self.publish(event);
                        }
                        self.advance_durable(through);
                    }
                    Err(e) => self.failed(&e.to_string(), events.iter()),
                }
                self.commit_next();
            }),
        );
    }
}

thread_local! {
    /// The execution whose task this thread is polling, if any.
    static POLLING: Cell<*const LiveExecution> = const { Cell::new(std::ptr::null()) };
}

pin_project_lite::pin_project! {
    /// An execution's task, run so that what it writes during one poll is committed
    /// together when the poll ends: a new execution's record and its first events up to its
    /// first yield are one commit (the whole execution, when its step does not yield).
    /// (A struct, not an async fn: it adds no copy of the task to its size.)
    pub(crate) struct CommitOnYield<F> {
        #[pin]
        task: F,
        live: Arc<LiveExecution>,
    }
}

impl<F: Future> CommitOnYield<F> {
    pub(crate) fn new(live: Arc<LiveExecution>, task: F) -> Self {
        CommitOnYield { task, live }
    }
}

impl<F: Future> Future for CommitOnYield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let outer = POLLING.replace(Arc::as_ptr(this.live));
        let poll = this.task.poll(cx);
        POLLING.set(outer);
        if !this.live.applies_now {
            this.live
                .start_commit(this.live.queue.lock().expect("execution queue lock"));
        }
        poll
    }
}

#[async_trait]
impl EventSink for LiveExecution {
    /// Numbers the event and queues it; waits for the store only where a promise needs it
    /// (see the module's documentation).
    async fn emit(&self, kind: EventKind) -> Result<(), String> {
        self.emit_after(None, kind).await
    }
}

impl LiveExecution {
    /// Queues the execution's terminal record and its terminal event together: whoever
    /// reads the record as ended finds the terminal event stored too.
    pub async fn end(&self, record: &ExecutionRecord, terminal: EventKind) -> Result<(), String> {
        let record = StoreWrite::UpdateExecution(Box::new(record.clone()));
        self.emit_after(Some(record), terminal).await
    }

    /// [`EventSink::emit`], after `record` when given.
    async fn emit_after(&self, record: Option<StoreWrite>, kind: EventKind) -> Result<(), String> {
        let terminal = kind.is_terminal();
        let step_starts = matches!(kind, EventKind::StepStarted { .. });
        let completes = matches!(kind, EventKind::StepCompleted { .. });
        let mut wait_for_completion = 0;
        let (id, max) = (self.id.clone(), self.max_events);
        self.queue(
            record,
            |queue| {
                wait_for_completion = queue.last_completion;
                if queue.last_sequence >= max && !terminal {
                    return Err(format!(
                        "the execution emitted {} events; limits.max_events_per_execution is {max}",
                        queue.last_sequence
                    ));
                }
                queue.last_sequence += 1;
                if completes {
                    queue.last_completion = queue.last_ticket + 1;
                }
                Ok(StoreWrite::AppendEvent(Arc::new(Event {
                    execution_id: id,
                    sequence: queue.last_sequence,
                    time: SystemTime::now(),
                    kind,
                })))
            },
            false,
        )?;
        if step_starts && wait_for_completion > 0 && !self.applies_now {
            self.durable(wait_for_completion).await
        } else {
            // The terminal event too: the commit that makes it durable ends the execution
            // (see `end_with`), and nothing left in the task needs to wait for it.
            self.failure()
        }
    }
}

/// Takes the next commit's writes from the queue, with the ticket they are durable through.
fn take_batch(queue: &mut Queue) -> (Vec<StoreWrite>, u64) {
    let mut batch = queue.pending.len().min(MAX_WRITE_BATCH);
    // A record goes with the write queued after it (the terminal event after the last one).
    if batch < queue.pending.len()
        && matches!(
            queue.pending[batch - 1],
            StoreWrite::CreateExecution(_) | StoreWrite::UpdateExecution(_)
        )
    {
        batch += 1;
    }
    let writes = merge_records(queue.pending.drain(..batch));
    (writes, queue.last_ticket - queue.pending.len() as u64)
}

/// The writes of one commit, with the execution's record written once: its latest state
/// replaces an earlier create or update in the same batch (one transaction, so nobody can
/// see the states in between), and the store serializes and stores one record, not three.
fn merge_records(writes: impl Iterator<Item = StoreWrite>) -> Vec<StoreWrite> {
    let mut merged: Vec<StoreWrite> = Vec::new();
    let mut record_at: Option<usize> = None;
    for write in writes {
        match (write, record_at) {
            (StoreWrite::UpdateExecution(latest), Some(at)) => {
                merged[at] = match &merged[at] {
                    StoreWrite::CreateExecution(_) => StoreWrite::CreateExecution(latest),
                    _ => StoreWrite::UpdateExecution(latest),
                };
            }
            (write @ (StoreWrite::CreateExecution(_) | StoreWrite::UpdateExecution(_)), _) => {
                record_at = Some(merged.len());
                merged.push(write);
            }
            (event, _) => merged.push(event),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EventKind;
    use crate::store::ExecutionStatus;

    fn record(status: ExecutionStatus) -> Box<ExecutionRecord> {
        Box::new(ExecutionRecord {
            id: "e".into(),
            workflow_name: "w".into(),
            workflow_version: 1,
            status,
            input: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
            create_time: SystemTime::UNIX_EPOCH,
            start_time: None,
            end_time: None,
            result: None,
            parent_execution_id: None,
            request_id: None,
            last_sequence: 0,
        })
    }

    fn event(sequence: u64) -> StoreWrite {
        StoreWrite::AppendEvent(Arc::new(Event {
            execution_id: "e".into(),
            sequence,
            time: SystemTime::UNIX_EPOCH,
            kind: EventKind::Started { attempt: 1 },
        }))
    }

    fn shape(writes: &[StoreWrite]) -> Vec<String> {
        writes
            .iter()
            .map(|w| match w {
                StoreWrite::CreateExecution(r) => format!("create {:?}", r.status),
                StoreWrite::UpdateExecution(r) => format!("update {:?}", r.status),
                StoreWrite::AppendEvent(e) => format!("event {}", e.sequence),
            })
            .collect()
    }

    #[test]
    fn a_batch_writes_the_record_once_in_its_latest_state() {
        let batch = vec![
            StoreWrite::CreateExecution(record(ExecutionStatus::Queued)),
            event(1),
            StoreWrite::UpdateExecution(record(ExecutionStatus::Running)),
            event(2),
            StoreWrite::UpdateExecution(record(ExecutionStatus::Completed)),
            event(3),
        ];
        assert_eq!(
            shape(&merge_records(batch.into_iter())),
            ["create Completed", "event 1", "event 2", "event 3"]
        );
        let later = vec![
            event(4),
            StoreWrite::UpdateExecution(record(ExecutionStatus::Running)),
            StoreWrite::UpdateExecution(record(ExecutionStatus::Failed)),
            event(5),
        ];
        assert_eq!(
            shape(&merge_records(later.into_iter())),
            ["event 4", "update Failed", "event 5"]
        );
    }
}
