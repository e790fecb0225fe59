//! The numbers behind GetStats, kept in memory per workflow name: counts since the server
//! started, and the durations of the last [`WINDOW`] executions that ended, for p50/p99.
//! Nothing here survives a restart: the store keeps every execution for ListExecutions;
//! these are for a quick look without Prometheus.

use std::{
    collections::VecDeque,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

/// Executions per workflow whose durations the percentiles are computed over.
pub const WINDOW: usize = 1000;

static SINCE: OnceLock<SystemTime> = OnceLock::new();

/// Marks the server's start, from which the counts run.
pub fn start_counting() {
    SINCE.get_or_init(SystemTime::now);
}

/// When counting started (the server's start).
pub fn since() -> SystemTime {
    *SINCE.get_or_init(SystemTime::now)
}

/// One workflow's counters and recent durations.
#[derive(Default)]
pub(super) struct Counts {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub running: AtomicU64,
    /// Seconds, oldest first.
    pub recent: std::sync::Mutex<VecDeque<f64>>,
}

impl Counts {
    pub fn push_duration(&self, took: Duration) {
        let mut recent = self.recent.lock().expect("stats window lock");
        if recent.len() == WINDOW {
            recent.pop_front();
        }
        recent.push_back(took.as_secs_f64());
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut durations: Vec<f64> = self
            .recent
            .lock()
            .expect("stats window lock")
            .iter()
            .copied()
            .collect();
        durations.sort_by(f64::total_cmp);
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Snapshot {
            started: load(&self.started),
            completed: load(&self.completed),
            failed: load(&self.failed),
            cancelled: load(&self.cancelled),
            running: load(&self.running),
            p50: percentile(&durations, 0.50),
            p99: percentile(&durations, 0.99),
            window: durations.len(),
        }
    }
}

/// A workflow's numbers at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Accepted (or resumed) since the server started.
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Accepted and not ended: running or queued.
    pub running: u64,
    /// Over the last `window` executions that ended; None when none has.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub window: usize,
}

/// Nearest-rank percentile of sorted seconds.
fn percentile(sorted: &[f64], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let seconds = sorted[rank.clamp(1, sorted.len()) - 1];
    Some(Duration::from_secs_f64(seconds))
}

/// The numbers of `workflow` now (zeros when it has not run since the server started).
pub fn snapshot(workflow: &str) -> Snapshot {
    super::executions::snapshot(workflow).unwrap_or_default()
}

/// Drops the numbers of an unregistered workflow, so churning names does not grow memory.
pub fn forget(workflow: &str) {
    super::executions::forget(workflow);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank_over_the_last_window() {
        let counts = Counts::default();
        assert_eq!(counts.snapshot().p50, None);
        for ms in 1..=100 {
            counts.push_duration(Duration::from_millis(ms));
        }
        let s = counts.snapshot();
        assert_eq!(s.p50, Some(Duration::from_millis(50)));
        assert_eq!(s.p99, Some(Duration::from_millis(99)));
        assert_eq!(s.window, 100);
        for _ in 0..WINDOW {
            counts.push_duration(Duration::from_secs(2));
        }
        let s = counts.snapshot();
        assert_eq!(s.window, WINDOW);
        assert_eq!(
            s.p50,
            Some(Duration::from_secs(2)),
            "old durations left the window"
        );
    }
}
