//! OpenTelemetry export of the real `wfm` binary to an OTLP/gRPC collector running in this
//! test: the span tree of an execution (execution → steps → tool calls), the caller's W3C
//! `traceparent` continued, failures marked, and the execution's id and trace id in its
//! JSON log lines, next to the one log line per call.

mod common;
mod decl_harness;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use wfm::proto;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Spans received, with their resource's service.name.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received, or fails after 20 s.
    async fn wait_for(&self, what: &str, done: impl Fn(&[(String, Span)]) -> bool) {
        for _ in 0..400 {
            if done(&self.spans()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} within 20 s; received {:#?}", self.spans());
    }
}

fn text(v: Option<&any_value::Value>) -> String {
    match v {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attr(span: &Span, key: &str) -> String {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn failed(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

fn execution_span<'a>(spans: &'a [(String, Span)], id: &str) -> Option<&'a Span> {
    spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "execution" && attr(s, "id") == id)
}

fn children<'a>(spans: &'a [(String, Span)], parent: &Span, name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == name && s.parent_span_id == parent.span_id)
        .collect()
}

const TRACED: &str = r#"
steps:
  - id: first
    tool: {name: json_transform, arguments: {data: 1, expression: "data + 1"}}
  - id: second
    depends_on: [first]
    tool: {name: sleep, arguments: {duration_ms: 1}}
"#;

const BROKEN: &str = r#"
steps:
  - id: only
    tool: {name: json_transform, arguments: {data: 1, expression: "data and nonsense("}}
"#;

async fn register(client: &mut Client, name: &str, yaml: &str) {
    client
        .register(proto::RegisterRequest {
            name: name.into(),
            source: Some(proto::register_request::Source::Definition(
                decl_harness::definition(yaml),
            )),
            ..Default::default()
        })
        .await
        .expect("registers");
}

async fn run(client: &mut Client, name: &str, traceparent: Option<&str>) -> String {
    let mut request = tonic::Request::new(execute_request(name, json!({})));
    if let Some(tp) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
    }
    let mut stream = client.execute(request).await.unwrap().into_inner();
    let mut id = String::new();
    while let Some(r) = stream.message().await.unwrap() {
        id = r.event.unwrap().execution_id;
    }
    id
}

#[tokio::test]
async fn an_execution_is_one_trace_continuing_the_callers() {
    let collector = Collector::default();
    let otlp = collector.start().await;
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("wfm.toml");
    std::fs::write(
        &path,
        format!("[telemetry]\notlp_endpoint = \"http://{otlp}\"\n[log]\nformat = \"json\"\n"),
    )
    .unwrap();
    let server = Server::start_logged(
        &[("RUST_LOG", "info"), ("OTEL_BSP_SCHEDULE_DELAY", "100")],
        &["--config", path.to_str().unwrap()],
    );
    let mut client = server.client().await;
    register(&mut client, "traced", TRACED).await;
    register(&mut client, "broken", BROKEN).await;

    let continued = run(
        &mut client,
        "traced",
        Some(&format!("00-{TRACE_ID}-{CALLER_SPAN}-01")),
    )
    .await;
    let fresh = run(&mut client, "traced", None).await;
    let broken = run(&mut client, "broken", None).await;

    collector
        .wait_for("span tree of three executions", |spans| {
            [&continued, &fresh, &broken].iter().all(|id| {
                execution_span(spans, id).is_some_and(|e| {
                    let steps = children(spans, e, "step");
                    !steps.is_empty() && steps.iter().all(|s| children(spans, s, "tool").len() == 1)
                })
            })
        })
        .await;
    let spans = collector.spans();

    // The caller's trace goes on: the execution span's parent is the caller's span.
    let root = execution_span(&spans, &continued).unwrap();
    assert_eq!(hex(&root.trace_id), TRACE_ID);
    assert_eq!(hex(&root.parent_span_id), CALLER_SPAN);
    assert_eq!(attr(root, "workflow"), "traced");
    assert_eq!(attr(root, "version"), "1");
    assert!(!failed(root));
    let mut steps = children(&spans, root, "step");
    steps.sort_by_key(|s| attr(s, "step"));
    let step_ids: Vec<String> = steps.iter().map(|s| attr(s, "step")).collect();
    assert_eq!(step_ids, ["first", "second"]);
    for (step, tool) in steps.iter().zip(["json_transform", "sleep"]) {
        assert_eq!(hex(&step.trace_id), TRACE_ID);
        let calls = children(&spans, step, "tool");
        assert_eq!(calls.len(), 1, "one call in step {}", attr(step, "step"));
        assert_eq!(attr(calls[0], "tool"), tool);
        assert_eq!(attr(calls[0], "server"), "builtin");
        assert_eq!(hex(&calls[0].trace_id), TRACE_ID);
        assert!(calls[0].start_time_unix_nano >= step.start_time_unix_nano);
        assert!(calls[0].end_time_unix_nano <= step.end_time_unix_nano);
    }
    let in_trace = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == TRACE_ID)
        .count();
    assert_eq!(in_trace, 5, "execution, two steps, two tool calls");
    assert!(spans.iter().all(|(service, _)| service == "wfm"));

    // Without a traceparent an execution is the root of a trace of its own.
    let own = execution_span(&spans, &fresh).unwrap();
    assert!(own.parent_span_id.is_empty());
    assert_ne!(hex(&own.trace_id), TRACE_ID);
    assert_eq!(children(&spans, own, "step").len(), 2);

    // A failing tool call fails its span and the execution's.
    let broken_root = execution_span(&spans, &broken).unwrap();
    assert!(failed(broken_root));
    let step = children(&spans, broken_root, "step")[0];
    assert!(failed(children(&spans, step, "tool")[0]));

    // The log: every line inside the execution carries its id and trace id, and the call
    // has its own line with method, workflow, execution id, code and duration.
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of_execution: Vec<&Value> = lines
        .iter()
        .filter(|l| l["spans"][0]["id"] == json!(continued))
        .collect();
    assert!(
        of_execution
            .iter()
            .any(|l| l["fields"]["message"] == "execution ended"),
        "{log}"
    );
    for line in &of_execution {
        assert_eq!(line["spans"][0]["trace_id"], json!(TRACE_ID), "{line}");
    }
    let call = lines
        .iter()
        .find(|l| l["target"] == "wfm::rpc" && l["fields"]["execution_id"] == json!(continued))
        .unwrap_or_else(|| panic!("no call line in {log}"));
    let fields = &call["fields"];
    assert_eq!(fields["method"], "Execute");
    assert_eq!(fields["workflow"], "traced");
    assert_eq!(fields["code"], "OK");
    assert!(fields["duration_ms"].as_f64().unwrap() > 0.0, "{call}");
    let broken_call = lines
        .iter()
        .find(|l| l["target"] == "wfm::rpc" && l["fields"]["execution_id"] == json!(broken))
        .unwrap();
    assert_eq!(
        broken_call["fields"]["code"], "OK",
        "the call succeeded; the execution failed"
    );
}

/// At `warn`, the level operators run busy servers at, a failed execution still has its line,
/// naming the execution; statuses are written as stored (`failed`, not `Failed`).
#[tokio::test]
async fn a_failed_execution_is_logged_at_warn_naming_it() {
    let server = Server::start_logged(&[("RUST_LOG", "warn")], &["--log-format", "json"]);
    let mut client = server.client().await;
    register(&mut client, "broken", BROKEN).await;
    let events = execute(&mut client, "broken", json!({})).await;
    let id = events[0].execution_id.clone();
    assert_eq!(labels(&events).last().unwrap(), "failed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let ended = log.lines().find_map(|l| {
            let line: Value = serde_json::from_str(l).ok()?;
            (line["fields"]["message"] == "execution ended").then_some(line)
        });
        if let Some(line) = ended {
            assert_eq!(line["level"], "WARN", "{line}");
            assert_eq!(line["fields"]["execution"], json!(id), "{line}");
            assert_eq!(line["fields"]["status"], "failed", "{line}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no line: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
