//! An admitted execution's slots, lent while it waits for a child execution. A parent that
//! kept its slots while waiting would starve its own children: with every slot held by a
//! parent whose child waits in the queue behind them, nobody would ever run again. So an
//! execution holds no slot while one of its steps waits for a child, and takes its slots
//! back (waiting in line for them like any execution) once no child is waited for.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinHandle;

use super::gate::{Permits, SlotSource};

/// The slots of one execution, from its admission to its end.
#[derive(Default)]
pub struct Slots {
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// What the execution holds now: none while queued, lent or ended.
    permits: Option<Permits>,
    /// The semaphores to take lent slots back from (known from the admission on).
    source: Option<SlotSource>,
    /// Children being waited for: the slots are lent while this is above zero.
    lent_to: usize,
    /// The execution has ended: slots taken back late are let go at once.
    ended: bool,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.state.lock().expect("execution slots lock")
    }

    /// The execution is admitted: it holds these slots until it ends or lends them.
    pub fn hold(&self, permits: Permits) {
        let mut held = self.lock();
        if held.ended {
            return;
        }
        held.source = Some(permits.source());
        if held.lent_to == 0 {
            held.permits = Some(permits);
        }
    }

    /// The execution has ended: its slots go now and are never taken back.
    pub fn release(&self) {
        let mut held = self.lock();
        held.ended = true;
        held.permits = None;
    }

    /// Whether the execution holds its slots now (not queued, lent or ended).
    #[cfg(test)]
    pub fn held(&self) -> bool {
        self.lock().permits.is_some()
    }

    /// Lends the slots for as long as the returned loan lives (or until [`Loan::end`]).
    pub fn lend(self: &Arc<Self>) -> Loan {
        let mut held = self.lock();
        held.lent_to += 1;
        // Dropped here: the slots are free for the child (or whoever is first in line).
        held.permits = None;
        Loan {
            slots: self.clone(),
            open: true,
        }
    }

    /// One loan less; when it was the last, what it takes to get the slots back.
    fn repay(&self) -> Option<SlotSource> {
        let mut held = self.lock();
        held.lent_to -= 1;
        if held.lent_to > 0 || held.ended || held.permits.is_some() {
            return None;
        }
        held.source.clone()
    }

    /// Takes the slots back, waiting for them in line, unless the execution lent them
    /// again or ended meanwhile.
    async fn take_back(&self, source: SlotSource) {
        let permits = source.acquire().await;
        let mut held = self.lock();
        if held.lent_to == 0 && !held.ended && held.permits.is_none() {
            held.permits = Some(permits);
        }
    }
}

/// Slots lent to a child while a step waits for it.
pub struct Loan {
    slots: Arc<Slots>,
    open: bool,
}

impl Loan {
    /// The child is done: takes the slots back once no other child is waited for, waiting
    /// for free ones when others took them meanwhile.
    pub async fn end(mut self) {
        self.open = false;
        if let Some(source) = self.slots.repay() {
            // On a task of its own: a step cut short while it waits in line leaves the
            // wait going on, and its execution gets its slots back all the same.
            if let Some(task) = take_back_later(&self.slots, source) {
                let _ = task.await;
            }
        }
    }
}

impl Drop for Loan {
    /// A wait cut short (the step timed out or was cancelled): the slots are taken back in
    /// the background, so the execution's next steps run on them as soon as they are free.
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        if let Some(source) = self.slots.repay() {
            take_back_later(&self.slots, source);
        }
    }
}

/// Takes the slots back on a task of their own (none outside a runtime: nothing runs there).
fn take_back_later(slots: &Arc<Slots>, source: SlotSource) -> Option<JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let slots = slots.clone();
    Some(runtime.spawn(async move { slots.take_back(source).await }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::gate::{Admission, Gate};

    fn admitted(gate: &Gate) -> Permits {
        match gate.admit(None).unwrap() {
            Admission::Now(permits) => permits,
            Admission::Queued(_) => panic!("a free slot"),
        }
    }

    /// A gate of `slots` slots, and a parent execution holding one of them.
    fn parent_admitted(slots: usize) -> (Gate, Arc<Slots>) {
        let gate = Gate::new(slots, 10);
        let parent = Arc::new(Slots::default());
        parent.hold(admitted(&gate));
        (gate, parent)
    }

    #[tokio::test]
    async fn a_parent_lends_its_slot_to_its_child_and_gets_it_back_after() {
        let (gate, parent) = parent_admitted(1);
        assert_eq!(gate.running(), 1);

        let loan = parent.lend();
        assert!(!parent.held());
        let child = admitted(&gate);
        assert_eq!(gate.running(), 1, "the child runs on the lent slot");

        // The parent waits in line for its slot while the child holds it.
        let back = tokio::spawn(loan.end());
        tokio::task::yield_now().await;
        assert!(!back.is_finished() && !parent.held());
        drop(child);
        back.await.unwrap();
        assert!(parent.held());
        assert_eq!(gate.running(), 1);

        parent.release();
        assert_eq!(gate.running(), 0);
    }

    #[tokio::test]
    async fn the_slot_comes_back_once_the_last_child_is_done() {
        let (_gate, parent) = parent_admitted(2);
        let (first, second) = (parent.lend(), parent.lend());
        first.end().await;
        assert!(!parent.held(), "a child is still waited for");
        second.end().await;
        assert!(parent.held());
    }

    #[tokio::test]
    async fn a_wait_cut_short_takes_the_slot_back_in_the_background() {
        let (gate, parent) = parent_admitted(1);
        drop(parent.lend());
        for _ in 0..100 {
            if parent.held() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(parent.held());
        assert_eq!(gate.running(), 1);
    }

    #[tokio::test]
    async fn an_ended_execution_takes_nothing_back() {
        let (gate, parent) = parent_admitted(1);
        let loan = parent.lend();
        parent.release();
        loan.end().await;
        assert!(!parent.held());
        assert_eq!(gate.running(), 0);
    }
}
