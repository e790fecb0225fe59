//! Admission of executions: a global and a per-workflow concurrency limit, and a bounded
//! queue in front of them. Past the queue, admission is refused: never an unbounded backlog.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Waker},
};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::ManagerError;

pub struct Gate {
    global: Arc<Semaphore>,
    max_running: usize,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// Held while an execution runs; dropping it frees the slots.
pub struct Permits {
    workflow: Option<OwnedSemaphorePermit>,
    global: OwnedSemaphorePermit,
}

impl Permits {
    /// Where these slots came from, to take them again once lent (see `slots.rs`).
    pub fn source(&self) -> SlotSource {
        SlotSource {
            global: self.global.semaphore().clone(),
            workflow: self.workflow.as_ref().map(|p| p.semaphore().clone()),
        }
    }
}

/// The semaphores an execution's slots come from: the global one and its workflow's.
#[derive(Clone)]
pub struct SlotSource {
    global: Arc<Semaphore>,
    workflow: Option<Arc<Semaphore>>,
}

impl SlotSource {
    /// Waits for the slots: the workflow's first, then the global one, so a waiting
    /// execution never holds a global slot while its workflow is full.
    pub async fn acquire(&self) -> Permits {
        let workflow = match &self.workflow {
            Some(s) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .expect("workflow semaphore is never closed"),
            ),
            None => None,
        };
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("global semaphore is never closed");
        Permits { workflow, global }
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A place in the queue; dropping it leaves the queue.
pub struct Ticket {
    source: SlotSource,
    /// The wait for the first slot (the workflow's, else the global one), polled once when
    /// the ticket was made: that takes its place in the semaphore's line then, so queued
    /// executions start in the order they were admitted, not in the order their tasks
    /// first run (after a restart, that order is close to the reverse).
    in_line: Acquire,
    waiting: Arc<AtomicUsize>,
    pub reason: String,
}

pub enum Admission {
    Now(Permits),
    Queued(Ticket),
}

impl Gate {
    pub fn new(max_running: usize, max_waiting: usize) -> Self {
        Gate {
            global: Arc::new(Semaphore::new(max_running)),
            max_running,
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        }
    }

    /// Slots now, or a place in the queue, or RESOURCE_EXHAUSTED when the queue is full.
    pub fn admit(
        &self,
        workflow: Option<(&Arc<Semaphore>, &str, u32)>,
    ) -> Result<Admission, ManagerError> {
        let workflow_permit = match workflow {
            Some((slots, _, _)) => slots.clone().try_acquire_owned().ok(),
            None => None,
        };
        let workflow_ok = workflow.is_none() || workflow_permit.is_some();
        if workflow_ok && let Ok(global) = self.global.clone().try_acquire_owned() {
            return Ok(Admission::Now(Permits {
                workflow: workflow_permit,
                global,
            }));
        }
        drop(workflow_permit);
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        if queued >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ManagerError::ResourceExhausted {
                limit: "limits.max_queued_executions",
                value: self.max_waiting.to_string(),
                detail: format!(
                    "{} executions are running and {queued} are queued; retry later",
                    self.running()
                ),
            });
        }
        let reason = match workflow {
            Some((_, name, max)) if !workflow_ok => {
                format!(
                    "waiting for a slot: workflow '{name}' runs at most {max} at once (max_concurrency)"
                )
            }
            _ => format!(
                "waiting for a slot: {} executions run at once at most (limits.max_concurrent_executions)",
                self.max_running
            ),
        };
        Ok(Admission::Queued(Ticket::new(
            self.source(workflow),
            self.waiting.clone(),
            reason,
        )))
    }

    /// Admission for an execution accepted before a restart: it is never refused, and
    /// waits in the queue when there is no slot.
    pub fn admit_recovered(&self, workflow: Option<(&Arc<Semaphore>, &str, u32)>) -> Admission {
        match self.admit(workflow) {
            Ok(admission) => admission,
            Err(_) => {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                Admission::Queued(Ticket::new(
                    self.source(workflow),
                    self.waiting.clone(),
                    "resumed after a restart: waiting for a slot".into(),
                ))
            }
        }
    }

    fn source(&self, workflow: Option<(&Arc<Semaphore>, &str, u32)>) -> SlotSource {
        SlotSource {
            global: self.global.clone(),
            workflow: workflow.map(|(s, _, _)| s.clone()),
        }
    }

    pub fn running(&self) -> usize {
        self.max_running - self.global.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl Ticket {
    fn new(source: SlotSource, waiting: Arc<AtomicUsize>, reason: String) -> Ticket {
        let first = source.workflow.as_ref().unwrap_or(&source.global).clone();
        let mut in_line: Acquire = Box::pin(first.acquire_owned());
        // Polled once to join the line now; a permit free already is kept in the future.
        let _ = in_line
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        Ticket {
            source,
            in_line,
            waiting,
            reason,
        }
    }

    /// Waits in line for the slots: the workflow's first, then the global one.
    pub async fn wait(mut self) -> Permits {
        let first = (&mut self.in_line)
            .await
            .expect("semaphores are never closed");
        match &self.source.workflow {
            Some(_) => Permits {
                workflow: Some(first),
                global: self
                    .source
                    .global
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("global semaphore is never closed"),
            },
            None => Permits {
                workflow: None,
                global: first,
            },
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queues_then_refuses() {
        let gate = Gate::new(1, 1);
        let Admission::Now(first) = gate.admit(None).unwrap() else {
            panic!("first runs")
        };
        let Admission::Queued(ticket) = gate.admit(None).unwrap() else {
            panic!("second queues")
        };
        let err = gate.admit(None).err().expect("third is refused");
        assert!(
            err.to_string().contains("limits.max_queued_executions"),
            "{err}"
        );
        drop(first);
        let _second = ticket.wait().await;
        assert_eq!((gate.running(), gate.queued()), (1, 0));
    }

    /// Queued executions get their slots in the order they were admitted, whatever order
    /// their tasks first wait in (after a restart, close to the reverse).
    #[tokio::test]
    async fn the_queue_is_first_in_first_out_whatever_order_tasks_wait_in() {
        for workflow in [None, Some(Arc::new(Semaphore::new(1)))] {
            let gate = Gate::new(1, 10);
            let slots = workflow.as_ref().map(|s| (s, "w", 1));
            let Admission::Now(running) = gate.admit(slots).unwrap() else {
                panic!("first runs")
            };
            let tickets: Vec<Ticket> = (0..3)
                .map(|_| match gate.admit_recovered(slots) {
                    Admission::Queued(t) => t,
                    Admission::Now(_) => panic!("queued"),
                })
                .collect();
            let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
            for (i, ticket) in tickets.into_iter().enumerate().rev() {
                let order_tx = order_tx.clone();
                tokio::spawn(async move {
                    let permits = ticket.wait().await;
                    order_tx.send(i).unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    drop(permits);
                });
                tokio::task::yield_now().await;
            }
            drop(running);
            let order: Vec<usize> = [
                order_rx.recv().await,
                order_rx.recv().await,
                order_rx.recv().await,
            ]
            .into_iter()
            .flatten()
            .collect();
            assert_eq!(order, [0, 1, 2], "workflow slots: {}", workflow.is_some());
        }
    }

    #[tokio::test]
    async fn per_workflow_limit_names_the_workflow() {
        let gate = Gate::new(10, 10);
        let slots = Arc::new(Semaphore::new(1));
        let _a = gate.admit(Some((&slots, "w", 1))).unwrap();
        let Admission::Queued(t) = gate.admit(Some((&slots, "w", 1))).unwrap() else {
            panic!()
        };
        assert!(t.reason.contains("workflow 'w'"), "{}", t.reason);
    }
}
