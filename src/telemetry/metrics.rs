//! Prometheus metrics through the `metrics` facade: every name, its help text and its
//! buckets, the recorder, and the handles of the hot paths. Label values are bounded by
//! the registry (workflow names, step ids, tool and MCP server names, gRPC methods of the
//! served services); execution ids never become labels.
//!
//! The recorder is installed first thing in `serve`, before any handle is taken: a handle
//! taken earlier would record nowhere. Without `metrics.listen` no recorder is installed
//! and every hook is a no-op.

use std::{
    net::SocketAddr,
    sync::{
        LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use metrics::{Counter, Histogram, Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const EXECUTIONS_STARTED: &str = "wfm_executions_started_total";
pub const EXECUTIONS_FINISHED: &str = "wfm_executions_total";
pub const EXECUTION_DURATION: &str = "wfm_execution_duration_seconds";
pub const EXECUTIONS_RUNNING: &str = "wfm_executions_running";
pub const EXECUTIONS_QUEUED: &str = "wfm_executions_queued";
pub const STEP_DURATION: &str = "wfm_step_duration_seconds";
pub const TOOL_CALLS: &str = "wfm_tool_calls_total";
pub const TOOL_ERRORS: &str = "wfm_tool_errors_total";
pub const TOOL_DURATION: &str = "wfm_tool_call_duration_seconds";
pub const GRPC_REQUESTS: &str = "wfm_grpc_requests_total";
pub const GRPC_DURATION: &str = "wfm_grpc_request_duration_seconds";
pub const GRPC_STREAMS_OPEN: &str = "wfm_grpc_streams_open";
pub const STORE_COMMIT_DURATION: &str = "wfm_store_commit_duration_seconds";
pub const STORE_COMMIT_WRITES: &str = "wfm_store_commit_writes";
pub const STORE_COMMIT_FAILURES: &str = "wfm_store_commit_failures_total";
pub const WORKFLOWS_REGISTERED: &str = "wfm_workflows_registered";
pub const WORKFLOW_VERSIONS_UNRESTORED: &str = "wfm_workflow_versions_unrestored";

/// Seconds, for executions, steps, tool calls and RPCs: from a millisecond to an hour.
const SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];
/// A store commit is one fsync: from 100 µs to a second.
const COMMIT_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Writes in one transaction, up to the writer's batch limit of 4096.
const COMMIT_WRITES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Set once the recorder is installed: hooks whose labels are built per call skip the
/// work when nothing records.
static INSTALLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The installed recorder and its bound `/metrics` listener, not yet serving.
pub struct Exporter {
    handle: PrometheusHandle,
    listener: TcpListener,
}

/// What is sampled at each scrape instead of being tracked on the hot path.
pub struct Sample {
    pub running: usize,
    pub queued: usize,
    pub workflows: usize,
    /// Stored workflow versions this server could not restore (see `wfm get NAME`).
    pub unrestored: usize,
}

/// Binds `listen` and installs the global recorder; `None` when metrics are off.
pub async fn install(listen: Option<SocketAddr>) -> Result<Option<Exporter>, String> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} (metrics.listen): {e}"))?;
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (EXECUTION_DURATION, SECONDS),
        (STEP_DURATION, SECONDS),
        (TOOL_DURATION, SECONDS),
        (GRPC_DURATION, SECONDS),
        (STORE_COMMIT_DURATION, COMMIT_SECONDS),
        (STORE_COMMIT_WRITES, COMMIT_WRITES),
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            .expect("buckets are not empty");
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| "a metrics recorder is already installed in this process".to_string())?;
    INSTALLED.store(true, Ordering::Relaxed);
    describe();
    Ok(Some(Exporter { handle, listener }))
}

impl Exporter {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `GET /metrics` until `stop`; `sample` runs before each rendering.
    pub fn serve(
        self,
        sample: impl Fn() -> Sample + Send + Sync + 'static,
        stop: CancellationToken,
    ) {
        let running = metrics::gauge!(EXECUTIONS_RUNNING);
        let queued = metrics::gauge!(EXECUTIONS_QUEUED);
        let workflows = metrics::gauge!(WORKFLOWS_REGISTERED);
        let unrestored = metrics::gauge!(WORKFLOW_VERSIONS_UNRESTORED);
        let handle = self.handle.clone();
        let render = move || {
            let s = sample();
            running.set(s.running as f64);
            queued.set(s.queued as f64);
            workflows.set(s.workflows as f64);
            unrestored.set(s.unrestored as f64);
            handle.render()
        };
        tokio::spawn(super::http::serve(self.listener, render, stop.clone()));
        // Histogram samples are folded into their buckets here as well as at each scrape,
        // so memory stays flat when nobody scrapes.
        let handle = self.handle;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = every.tick() => handle.run_upkeep(),
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
}

fn describe() {
    describe_counter!(
        EXECUTIONS_STARTED,
        "Executions accepted (or resumed after a restart), by workflow."
    );
    describe_counter!(
        EXECUTIONS_FINISHED,
        "Executions that ended, by workflow and outcome (completed, failed, cancelled)."
    );
    describe_histogram!(
        EXECUTION_DURATION,
        Unit::Seconds,
        "Time from acceptance to the terminal state (queueing included), by workflow."
    );
    describe_gauge!(EXECUTIONS_RUNNING, "Executions running now.");
    describe_gauge!(EXECUTIONS_QUEUED, "Executions waiting for a slot now.");
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Duration of steps that ended (all attempts), by workflow and step."
    );
    describe_counter!(
        TOOL_CALLS,
        "Tool calls, by tool and server (builtin or the MCP server)."
    );
    describe_counter!(
        TOOL_ERRORS,
        "Tool calls that returned an error, by tool and server."
    );
    describe_histogram!(
        TOOL_DURATION,
        Unit::Seconds,
        "Duration of tool calls that returned, by tool and server."
    );
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC calls by service, method and final status code (streams count when they end)."
    );
    describe_histogram!(
        GRPC_DURATION,
        Unit::Seconds,
        "gRPC call duration, to the end of the response stream, by service and method."
    );
    describe_gauge!(
        GRPC_STREAMS_OPEN,
        "gRPC calls in progress (HTTP/2 streams open), by service and method."
    );
    describe_histogram!(
        STORE_COMMIT_DURATION,
        Unit::Seconds,
        "Duration of one group commit of the SQLite store: its writes and the fsync."
    );
    describe_histogram!(
        STORE_COMMIT_WRITES,
        "Writes in one group commit of the SQLite store."
    );
    describe_counter!(
        STORE_COMMIT_FAILURES,
        "Group commits of the SQLite store that failed."
    );
    describe_gauge!(WORKFLOWS_REGISTERED, "Workflow names registered now.");
    describe_gauge!(
        WORKFLOW_VERSIONS_UNRESTORED,
        "Stored workflow versions this server could not restore at start (its log says why; Get names the reason)."
    );
}

/// The handles of one tool, taken when the tool is added: its labels never change.
pub struct ToolMetrics {
    calls: Counter,
    errors: Counter,
    duration: Histogram,
}

impl ToolMetrics {
    pub fn new(tool: &str, server: &str) -> Self {
        let labels = [("tool", tool.to_string()), ("server", server.to_string())];
        ToolMetrics {
            calls: metrics::counter!(TOOL_CALLS, &labels),
            errors: metrics::counter!(TOOL_ERRORS, &labels),
            duration: metrics::histogram!(TOOL_DURATION, &labels),
        }
    }

    pub fn called(&self) {
        self.calls.increment(1);
    }

    pub fn returned(&self, took: Duration, ok: bool) {
        self.duration.record(took);
        if !ok {
            self.errors.increment(1);
        }
    }
}

struct StoreMetrics {
    duration: Histogram,
    writes: Histogram,
    failures: Counter,
}

static STORE: LazyLock<StoreMetrics> = LazyLock::new(|| StoreMetrics {
    duration: metrics::histogram!(STORE_COMMIT_DURATION),
    writes: metrics::histogram!(STORE_COMMIT_WRITES),
    failures: metrics::counter!(STORE_COMMIT_FAILURES),
});

/// One group commit of the store: how many writes and how long until durable.
pub fn store_committed(writes: usize, took: Duration) {
    STORE.duration.record(took);
    STORE.writes.record(writes as f64);
}

pub fn store_commit_failed() {
    STORE.failures.increment(1);
}
