//! Per-workflow execution metrics and stats. A workflow's handles are looked up once per
//! execution (an [`ExecutionObserver`]), not per event.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock, atomic::Ordering},
    time::{Duration, Instant},
};

use metrics::{Counter, Histogram, SharedString};

use super::metrics::{EXECUTION_DURATION, EXECUTIONS_FINISHED, EXECUTIONS_STARTED, STEP_DURATION};
use super::stats::Counts;
use crate::store::ExecutionStatus;

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    Cancelled,
}

impl From<ExecutionStatus> for Outcome {
    fn from(status: ExecutionStatus) -> Self {
        match status {
            ExecutionStatus::Completed => Outcome::Completed,
            ExecutionStatus::Cancelled => Outcome::Cancelled,
            _ => Outcome::Failed,
        }
    }
}

/// One workflow name's handles and numbers.
struct Workflow {
    started: Counter,
    completed: Counter,
    failed: Counter,
    cancelled: Counter,
    duration: Histogram,
    counts: Counts,
}

impl Workflow {
    fn new(name: &Arc<str>) -> Self {
        let label = || SharedString::from(name.clone());
        let finished = |outcome: &'static str| metrics::counter!(EXECUTIONS_FINISHED, "workflow" => label(), "outcome" => outcome);
        Workflow {
            started: metrics::counter!(EXECUTIONS_STARTED, "workflow" => label()),
            completed: finished("completed"),
            failed: finished("failed"),
            cancelled: finished("cancelled"),
            duration: metrics::histogram!(EXECUTION_DURATION, "workflow" => label()),
            counts: Counts::default(),
        }
    }
}

static WORKFLOWS: LazyLock<RwLock<HashMap<Arc<str>, Arc<Workflow>>>> =
    LazyLock::new(Default::default);

fn workflow(name: &str) -> Arc<Workflow> {
    if let Some(w) = WORKFLOWS.read().expect("workflow metrics lock").get(name) {
        return w.clone();
    }
    let mut all = WORKFLOWS.write().expect("workflow metrics lock");
    all.entry(Arc::from(name))
        .or_insert_with_key(|name| Arc::new(Workflow::new(name)))
        .clone()
}

/// A workflow was registered (or restored): its execution counters exist from now, at 0,
/// so the first failure after a start is an increase a `rate()` sees, not a new series.
pub fn workflow_known(name: &str) {
    workflow(name);
}

pub(super) fn snapshot(name: &str) -> Option<super::stats::Snapshot> {
    let workflow = WORKFLOWS
        .read()
        .expect("workflow metrics lock")
        .get(name)
        .cloned()?;
    Some(workflow.counts.snapshot())
}

pub(super) fn forget(name: &str) {
    WORKFLOWS
        .write()
        .expect("workflow metrics lock")
        .remove(name);
}

/// Counts one execution from its acceptance to its end.
pub struct ExecutionObserver {
    workflow: Arc<Workflow>,
    since: Instant,
    ended: bool,
}

impl ExecutionObserver {
    /// An execution of `workflow` accepted at `accepted` runs (new, or resumed after a
    /// restart: its duration still counts from its acceptance).
    pub fn started(workflow: &str, accepted: std::time::SystemTime) -> Self {
        let waited = accepted.elapsed().unwrap_or_default();
        let workflow = self::workflow(workflow);
        workflow.started.increment(1);
        workflow.counts.started.fetch_add(1, Ordering::Relaxed);
        workflow.counts.running.fetch_add(1, Ordering::Relaxed);
        ExecutionObserver {
            workflow,
            since: Instant::now()
                .checked_sub(waited)
                .unwrap_or_else(Instant::now),
            ended: false,
        }
    }

    /// The execution ended; returns how long it took since it was accepted. A failed
    /// execution's span is marked failed for the trace.
    pub fn finished(&mut self, outcome: Outcome) -> Duration {
        let took = self.since.elapsed();
        let w = &self.workflow;
        let (counter, count) = match outcome {
            Outcome::Completed => (&w.completed, &w.counts.completed),
            Outcome::Failed => (&w.failed, &w.counts.failed),
            Outcome::Cancelled => (&w.cancelled, &w.counts.cancelled),
        };
        counter.increment(1);
        w.duration.record(took);
        w.counts.push_duration(took);
        // The ended count before `running` drops, so a reader never sees an execution
        // in neither.
        count.fetch_add(1, Ordering::Relaxed);
        if !self.ended {
            w.counts.running.fetch_sub(1, Ordering::Relaxed);
        }
        self.ended = true;
        if outcome == Outcome::Failed {
            super::trace::mark_failed(&tracing::Span::current());
        }
        took
    }
}

impl Drop for ExecutionObserver {
    fn drop(&mut self) {
        if !self.ended {
            self.workflow.counts.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A step of `workflow` ended after `took` (all its attempts).
pub fn step_ended(workflow: &Arc<str>, step: &str, took: Duration) {
    if !super::metrics::enabled() {
        return;
    }
    metrics::histogram!(
        STEP_DURATION,
        "workflow" => SharedString::from(workflow.clone()),
        "step" => step.to_string()
    )
    .record(took);
}
