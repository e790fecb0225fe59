//! Where the writer's answers run: on the async runtime, reached through its I/O driver.
//!
//! An answer publishes events and wakes the tasks that wait for them. Woken from the writer
//! thread, each such task goes through the runtime's shared queue: the worker woken for it
//! wakes a second worker to look for more work (tokio's "relay"), which on this 2-core
//! machine preempts the first and finds nothing (~20 µs of every one-client Execute,
//! BENCHMARKS.md, session 19). Here the writer queues its answers and signals an eventfd
//! the runtime polls: the worker that wakes for it is woken by I/O, runs the answers, and
//! the tasks they wake start on that worker at once.
//!
//! A store opened outside a runtime answers on the writer thread, as before.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

use super::writer::Reply;
use crate::store::StoreResult;

/// A job's answer, ready to run.
pub type Answer = (Reply, StoreResult<usize>);

/// The writer's side. Dropped with the writer thread, which ends the runtime's side.
pub struct Answers {
    to_runtime: Option<Arc<Shared>>,
}

struct Shared {
    queue: Mutex<Vec<Answer>>,
    /// The eventfd was written and the runtime's side has not yet taken the queue: later
    /// answers need no other write.
    signalled: AtomicBool,
    /// The writer is gone: the runtime's side ends once the queue is empty.
    closed: AtomicBool,
    event: File,
}

impl Answers {
    /// Answers on the current runtime, when there is one (and it can poll an eventfd).
    pub fn start() -> Answers {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Answers { to_runtime: None };
        };
        match Self::spawn_on(&runtime) {
            Ok(shared) => Answers {
                to_runtime: Some(shared),
            },
            Err(e) => {
                tracing::warn!(error = %e, "store answers run on the writer thread");
                Answers { to_runtime: None }
            }
        }
    }

    fn spawn_on(runtime: &tokio::runtime::Handle) -> std::io::Result<Arc<Shared>> {
        // SAFETY: eventfd takes no pointer; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let event = unsafe { File::from_raw_fd(fd) };
        let _entered = runtime.enter();
        // SAFETY: a File stays open, on the same description, until the AsyncFd drops it.
        let readable = unsafe {
            AsyncFd::register_with_interest(event.try_clone()?, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            signalled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            event,
        });
        runtime.spawn(run(shared.clone(), readable));
        Ok(shared)
    }

    /// Runs the answers of one commit, in order: on the runtime, or here without one.
    pub fn send(&self, answers: impl IntoIterator<Item = Answer>) {
        let Some(shared) = &self.to_runtime else {
            for (reply, result) in answers {
                reply(result);
            }
            return;
        };
        shared.queue.lock().expect("answers lock").extend(answers);
        shared.signal();
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        if let Some(shared) = &self.to_runtime {
            shared.closed.store(true, Ordering::SeqCst);
            shared.signalled.store(true, Ordering::SeqCst);
            shared.write_event();
        }
    }
}

impl Shared {
    fn signal(&self) {
        if !self.signalled.swap(true, Ordering::SeqCst) {
            self.write_event();
        }
    }

    fn write_event(&self) {
        // An eventfd write fails only when its counter would overflow, which a reader that
        // resets it at each wake-up never lets happen.
        let _ = (&self.event).write(&1u64.to_ne_bytes());
    }
}

/// The runtime's side: waits for the eventfd, then runs what the writer queued.
async fn run(shared: Arc<Shared>, readable: AsyncFd<File>) {
    loop {
        let Ok(mut ready) = readable.readable().await else {
            tracing::error!("store answers: the eventfd failed; answers now stop");
            return;
        };
        let _ = ready.get_inner().read(&mut [0u8; 8]);
        // Edge-triggered: a write after the read above is a new event, which this keeps.
        ready.clear_ready();
        shared.signalled.store(false, Ordering::SeqCst);
        // Read before the queue is taken: once the writer is gone, this take holds the rest.
        let closed = shared.closed.load(Ordering::SeqCst);
        let answers = std::mem::take(&mut *shared.queue.lock().expect("answers lock"));
        for (reply, result) in answers {
            // One answer's bug must not stop every later one (each would wait for ever).
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reply(result))).is_err() {
                tracing::error!("a store answer panicked; the next ones still run");
            }
        }
        if closed {
            return;
        }
    }
}
