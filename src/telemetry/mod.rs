//! Observability: Prometheus metrics, OpenTelemetry traces, structured logs and the
//! in-memory execution stats behind GetStats. Metric names, spans and recording functions
//! all live here, so the observed layers (manager, engine, tools, store, api) only call
//! one-line hooks. It depends on none of them.

pub mod executions;
mod http;
pub mod metrics;
pub mod rpc;
pub mod stats;
pub mod trace;

use tracing_subscriber::{
    EnvFilter, Layer, Registry, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{Config, LogFormat};

/// What has to be flushed at exit: the batch of spans not yet exported.
pub struct Telemetry {
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered; call once the server has stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("wfm: exporting the last traces failed: {e}");
        }
    }
}

/// The MCP library logs an ERROR of its own for every failed connection attempt, next to
/// wfm's warning that says which server failed and when it is tried again: while a server
/// is down that is a duplicate, alarming line per retry. It stays off unless the level
/// names `rmcp` itself (or `RUST_LOG` is set).
const QUIET_LIBRARY_TARGETS: &str = "rmcp::transport::worker=off";

fn default_filter(level: &str) -> String {
    if level.contains("rmcp") {
        level.to_string()
    } else {
        format!("{level},{QUIET_LIBRARY_TARGETS}")
    }
}

/// Installs the log subscriber (stderr, human or JSON, filtered by `RUST_LOG` or
/// `log.level`) and, with `telemetry.otlp_endpoint`, the OpenTelemetry layer. Must run
/// inside the Tokio runtime: the OTLP exporter's gRPC channel lives there.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    if let Ok(rust_log) = std::env::var(EnvFilter::DEFAULT_ENV) {
        crate::config::check_log_filter(EnvFilter::DEFAULT_ENV, &rust_log)?;
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(&config.log.level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match config.log.format {
        // Every span of the line, not only the innermost: a tool call's line carries its
        // execution's id and trace id too.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![logs];
    let mut traces = None;
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        let (layer, provider) = trace::otlp_layer(endpoint)?;
        layers.push(layer);
        traces = Some(provider);
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(Telemetry { traces })
}
