//! One stream's bounded outbox: the events waiting for a client that has not read them yet.
//!
//! The server never buffers more than [`Outbox::CAPACITY`] messages per stream; the
//! execution's events stay in the store, where the stream's follower reads them once the
//! client takes what is waiting. A reader that takes nothing for `limits.slow_reader_timeout`
//! while messages wait is cut off: the waiting messages are dropped at once (freeing their
//! memory even if the client never reads again) and the stream's next and last item is the
//! status that says why and how to resume.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll},
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::Status;

type Item<T> = Result<T, Status>;

struct Shared<T> {
    queue: mpsc::Receiver<Item<T>>,
    /// Set when the stream is cut off: given to the client before anything else.
    cut_off: Option<Status>,
    ended: bool,
}

/// The producer's side.
pub struct Outbox<T> {
    tx: mpsc::Sender<Item<T>>,
    /// Weak, so the client going away (the stream dropped) closes the channel.
    shared: Weak<Mutex<Shared<T>>>,
}

/// The client's side, handed to tonic as the response stream.
pub struct OutboxStream<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// What became of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The client went away.
    ReaderGone,
    /// The client took nothing for the whole timeout; the message was not queued.
    Stalled,
}

impl<T> Outbox<T> {
    /// Messages waiting per stream (besides what HTTP/2 flow control holds).
    pub const CAPACITY: usize = 16;

    pub fn channel() -> (Outbox<T>, OutboxStream<T>) {
        let (tx, queue) = mpsc::channel(Self::CAPACITY);
        let shared = Arc::new(Mutex::new(Shared {
            queue,
            cut_off: None,
            ended: false,
        }));
        (
            Outbox {
                tx,
                shared: Arc::downgrade(&shared),
            },
            OutboxStream { shared },
        )
    }

    /// Queues a message, waiting up to `timeout` for the reader to make room.
    pub async fn send(&self, item: Item<T>, timeout: Duration) -> Sent {
        match tokio::time::timeout(timeout, self.tx.send(item)).await {
            Ok(Ok(())) => Sent::Queued,
            Ok(Err(_)) => Sent::ReaderGone,
            Err(_) => Sent::Stalled,
        }
    }

    /// Queues a message if there is room, without waiting.
    pub fn try_send(&self, item: Item<T>) -> Result<(), Item<T>> {
        self.tx.try_send(item).map_err(|e| e.into_inner())
    }

    /// Queues a message, waiting as long as it takes (the stream's last status).
    pub async fn send_last(&self, item: Item<T>) {
        let _ = self.tx.send(item).await;
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Drops every waiting message and ends the stream with the status `why` makes from
    /// the number of messages dropped.
    pub fn cut_off(self, why: impl FnOnce(usize) -> Status) {
        let Some(shared) = self.shared.upgrade() else {
            return; // the client is gone already
        };
        let mut shared = shared.lock().expect("outbox lock");
        let mut dropped = 0;
        while shared.queue.try_recv().is_ok() {
            dropped += 1;
        }
        shared.cut_off = Some(why(dropped));
        // Dropping `self.tx` on return closes the channel, which wakes a waiting reader.
    }
}

impl<T> Stream for OutboxStream<T> {
    type Item = Item<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut shared = self.shared.lock().expect("outbox lock");
        if shared.ended {
            return Poll::Ready(None);
        }
        if let Some(status) = shared.cut_off.take() {
            shared.ended = true;
            return Poll::Ready(Some(Err(status)));
        }
        match shared.queue.poll_recv(cx) {
            Poll::Ready(None) => {
                shared.ended = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_stalled_reader_is_cut_off_and_its_messages_dropped() {
        let (outbox, mut stream) = Outbox::<u32>::channel();
        for i in 0..Outbox::<u32>::CAPACITY as u32 {
            assert_eq!(
                outbox.send(Ok(i), Duration::from_secs(1)).await,
                Sent::Queued
            );
        }
        assert_eq!(
            outbox.send(Ok(99), Duration::from_millis(20)).await,
            Sent::Stalled
        );
        outbox.cut_off(|dropped| {
            assert_eq!(dropped, Outbox::<u32>::CAPACITY);
            Status::resource_exhausted("too slow")
        });
        let first = stream.next().await.unwrap().unwrap_err();
        assert_eq!(first.message(), "too slow");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn the_reader_going_away_is_seen() {
        let (outbox, stream) = Outbox::<u32>::channel();
        drop(stream);
        outbox.closed().await;
        assert_eq!(
            outbox.send(Ok(1), Duration::from_secs(1)).await,
            Sent::ReaderGone
        );
    }
}
