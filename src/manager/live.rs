//! A live execution's history on its way to the store. Every record change and event is
//! numbered and queued to the execution's writer, which commits what has accumulated in one
//! store batch and only then hands the events to followers. Nobody waits for a commit
//! except where a promise depends on it:
//! - a new execution is acknowledged once its record and first event are durable;
//! - a step starts only once everything before it is durable, so a step that completed is
//!   never run again after a crash (its completion was on disk before anything else began);
//! - the terminal event is durable before anyone sees it, and the record with it.
//!
//! A one-step execution thus costs two commit rounds, however many events it has.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, watch};
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

/// Numbering, under one lock so the writer receives writes in order.
struct Order {
    last_sequence: u64,
    last_ticket: u64,
}

struct Pending {
    ticket: u64,
    write: StoreWrite,
}

/// A running (or queued) execution: its cancellation, its event numbering and its followers.
pub(crate) struct LiveExecution {
    pub id: String,
    pub cancel: CancellationToken,
    cancel_reason: Mutex<Option<String>>,
    /// Cancelled when the execution has reached its terminal state.
    pub finished: CancellationToken,
    pub events: broadcast::Sender<Arc<Event>>,
    order: Mutex<Order>,
    writer: mpsc::UnboundedSender<Pending>,
    durable: watch::Receiver<Durable>,
    max_events: u64,
}

impl LiveExecution {
    /// A live execution whose events continue after `last_sequence`, with its writer task.
    /// Also returns a follower subscribed before any event can be published.
    pub fn start(
        id: String,
        last_sequence: u64,
        max_events: u64,
        store: Arc<dyn Store>,
    ) -> (Arc<LiveExecution>, broadcast::Receiver<Arc<Event>>) {
        let (events, first_follower) = broadcast::channel(LIVE_EVENT_BUFFER);
        let (writer, queue) = mpsc::unbounded_channel();
        let (durable_tx, durable) = watch::channel(Durable::default());
        tokio::spawn(write(store, events.clone(), queue, durable_tx));
        let live = Arc::new(LiveExecution {
            id,
            cancel: CancellationToken::new(),
            cancel_reason: Mutex::new(None),
            finished: CancellationToken::new(),
            events,
            order: Mutex::new(Order {
                last_sequence,
                last_ticket: 0,
            }),
            writer,
            durable,
            max_events,
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
        self.queue(|_| Ok(write))
    }

    /// Waits until every write up to `ticket` is committed.
    pub async fn durable(&self, ticket: u64) -> Result<(), String> {
        let mut durable = self.durable.clone();
        let state = durable
            .wait_for(|d| d.error.is_some() || d.through >= ticket)
            .await
            .map_err(|_| "the execution's event writer has stopped".to_string())?;
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

    fn queue(
        &self,
        make: impl FnOnce(&mut Order) -> Result<StoreWrite, String>,
    ) -> Result<u64, String> {
        let mut order = self.order.lock().expect("execution order lock");
        let write = make(&mut order)?;
        order.last_ticket += 1;
        let ticket = order.last_ticket;
        // Sent under the lock: the writer receives writes in ticket order.
        self.writer
            .send(Pending { ticket, write })
            .map_err(|_| "the execution's event writer has stopped".to_string())?;
        Ok(ticket)
    }
}

#[async_trait]
impl EventSink for LiveExecution {
    /// Numbers the event and queues it; waits for the store only where a promise needs it
    /// (see the module's documentation).
    async fn emit(&self, kind: EventKind) -> Result<(), String> {
        let terminal = kind.is_terminal();
        let step_starts = matches!(kind, EventKind::StepStarted { .. });
        let (id, max) = (self.id.clone(), self.max_events);
        let ticket = self.queue(|order| {
            if order.last_sequence >= max && !terminal {
                return Err(format!(
                    "the execution emitted {} events; limits.max_events_per_execution is {max}",
                    order.last_sequence
                ));
            }
            order.last_sequence += 1;
            Ok(StoreWrite::AppendEvent(Arc::new(Event {
                execution_id: id,
                sequence: order.last_sequence,
                time: SystemTime::now(),
                kind,
            })))
        })?;
        if terminal {
            self.durable(ticket).await
        } else if step_starts {
            self.durable(ticket - 1).await
        } else {
            self.failure()
        }
    }
}

/// Commits one execution's writes, each time everything queued since the last commit, then
/// publishes the committed events to followers.
async fn write(
    store: Arc<dyn Store>,
    followers: broadcast::Sender<Arc<Event>>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    durable: watch::Sender<Durable>,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_WRITE_BATCH).await > 0 {
        let through = batch.last().map_or(0, |p: &Pending| p.ticket);
        let writes: Vec<StoreWrite> = batch.drain(..).map(|p| p.write).collect();
        let events: Vec<Arc<Event>> = writes
            .iter()
            .filter_map(|w| match w {
                StoreWrite::AppendEvent(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        match store.write_batch(writes).await {
            Ok(()) => {
                for event in events {
                    // No follower is fine: the event is in the store.
                    let _ = followers.send(event);
                }
                durable.send_modify(|d| d.through = through);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record the execution's history");
                durable.send_modify(|d| {
                    d.error.get_or_insert(e.to_string());
                });
            }
        }
    }
}
