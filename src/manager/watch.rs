//! Following an execution: replay its events from the store after a sequence number, then
//! follow live ones. A follower that falls behind the live buffer catches up from the store,
//! so the server never buffers without bound and nobody misses or repeats an event.

use std::{collections::VecDeque, sync::Arc};

use tokio::sync::broadcast::{self, error::RecvError};

use super::ManagerError;
use crate::engine::Event;
use crate::store::Store;

/// Events read from the store at a time.
const REPLAY_BATCH: usize = 256;

pub struct Watcher {
    store: Arc<dyn Store>,
    id: String,
    last: u64,
    live: Option<broadcast::Receiver<Arc<Event>>>,
    pending: VecDeque<Arc<Event>>,
    refill: bool,
    done: bool,
}

impl Watcher {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        id: String,
        after: u64,
        live: Option<broadcast::Receiver<Arc<Event>>>,
    ) -> Self {
        Watcher {
            store,
            id,
            last: after,
            live,
            pending: VecDeque::new(),
            refill: true,
            done: false,
        }
    }

    /// A follower of a new execution subscribed before its first event was published: it
    /// needs no replay unless it falls behind.
    pub(crate) fn from_start(
        store: Arc<dyn Store>,
        id: String,
        live: broadcast::Receiver<Arc<Event>>,
    ) -> Self {
        Watcher {
            refill: false,
            ..Watcher::new(store, id, 0, Some(live))
        }
    }

    pub fn execution_id(&self) -> &str {
        &self.id
    }

    /// The next event in sequence, or None after the terminal one.
    pub async fn next(&mut self) -> Result<Option<Arc<Event>>, ManagerError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(event) = self.pending.pop_front() {
                self.last = event.sequence;
                self.done = event.is_terminal();
                return Ok(Some(event));
            }
            if self.refill {
                let events = self
                    .store
                    .events_after(&self.id, self.last, REPLAY_BATCH)
                    .await?;
                if !events.is_empty() {
                    self.pending.extend(events.into_iter().map(Arc::new));
                    continue;
                }
                self.refill = false;
            }
            let Some(live) = self.live.as_mut() else {
                // Not running and nothing more stored: the execution has no more events.
                self.done = true;
                return Ok(None);
            };
            match live.recv().await {
                // Its end, before the sequence asked for: say so rather than end the
                // stream with nothing (a terminal event already delivered ended it above).
                Ok(event) if event.sequence <= self.last && event.is_terminal() => {
                    self.done = true;
                    return Err(ManagerError::invalid(
                        "after_sequence",
                        format!(
                            "{} is past the last event of execution {}, which has ended at {}",
                            self.last, self.id, event.sequence
                        ),
                    ));
                }
                Ok(event) if event.sequence <= self.last => {}
                Ok(event) if event.sequence == self.last + 1 => self.pending.push_back(event),
                Ok(_) | Err(RecvError::Lagged(_)) => self.refill = true,
                Err(RecvError::Closed) => {
                    self.live = None;
                    self.refill = true;
                }
            }
        }
    }
}
