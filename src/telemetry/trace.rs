//! OpenTelemetry traces: one trace per execution, a span per step and per tool call.
//!
//! The spans are `tracing` spans, exported through tracing-opentelemetry when
//! `telemetry.otlp_endpoint` is set; the same spans give every log line of an execution
//! its id (and trace id). They are at ERROR level so that they are enabled whatever the
//! log level: a span is context, and a warning inside an execution must still name it.
//!
//! An execution started by Execute or StartExecution continues the caller's trace when the
//! call carried a W3C `traceparent`; a child execution is part of its parent's trace (its
//! span is a child of the step that started it); an execution resumed after a restart
//! starts a new trace.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::{Level, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, Registry, filter::Targets};

/// Set once the OTLP exporter is installed: no trace context is extracted or looked up before.
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The tracing layer exporting wfm's spans (and the events inside them) to `endpoint` over
/// OTLP/gRPC, in batches (`OTEL_BSP_*` variables tune the batching).
pub(super) fn otlp_layer(
    endpoint: &str,
) -> Result<(Box<dyn Layer<Registry> + Send + Sync>, SdkTracerProvider), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint {endpoint}: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("wfm").build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("wfm");
    ENABLED.store(true, Ordering::Relaxed);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("wfm", Level::INFO))
        .boxed();
    Ok((layer, provider))
}

/// The root span of an execution: its parent is the caller's trace context when the RPC
/// that started it carried one, otherwise the current span (a parent execution's step).
/// Info level, like the step and tool spans: recorded when traces are exported or logs
/// are at info (the default), and free at warn, where making and formatting it for every
/// execution was ~4% of the server's CPU; wfm's warnings and errors about an execution
/// name it themselves.
pub fn execution_span(id: &str, workflow: &str, version: u32) -> Span {
    let span = tracing::info_span!(
        "execution",
        id = %id,
        workflow = %workflow,
        version,
        trace_id = Empty,
        otel.status_code = Empty,
    );
    if enabled() {
        if let Some(parent) = super::rpc::remote_parent() {
            let _ = span.set_parent(parent);
        }
        let trace_id = span.context().span().span_context().trace_id();
        if trace_id != opentelemetry::trace::TraceId::INVALID {
            span.record("trace_id", tracing::field::display(trace_id));
        }
    }
    span
}

/// One step of an execution (all its attempts, or all its for_each items). Info level,
/// unlike the execution's span: enabled when traces are exported or logs are at info, and
/// free otherwise (a sleeping execution holds its step and tool spans).
pub fn step_span(step_id: &str) -> Span {
    tracing::info_span!("step", step = %step_id)
}

/// One tool call; `server` is `builtin` or the MCP server's name.
pub fn tool_span(tool: &str, server: &str) -> Span {
    tracing::info_span!("tool", tool = %tool, server = %server, otel.status_code = Empty)
}

/// Marks a span (a tool call, an execution) as failed in the exported trace.
pub fn mark_failed(span: &Span) {
    span.record("otel.status_code", "ERROR");
}

/// The trace context a caller sent in `traceparent` / `tracestate` headers.
pub fn extract(headers: &tonic::codegen::http::HeaderMap) -> Option<opentelemetry::Context> {
    if !enabled() || !headers.contains_key("traceparent") {
        return None;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    cx.span().span_context().is_valid().then_some(cx)
}

/// gRPC metadata (HTTP/2 headers) as an OpenTelemetry extractor.
struct Headers<'a>(&'a tonic::codegen::http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
