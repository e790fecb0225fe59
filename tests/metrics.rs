//! The Prometheus endpoint and GetStats against the real `wfm` binary: run a few workflows
//! (one failing), scrape `/metrics` with a plain HTTP GET and check the exact counts of
//! this run, as an operator's dashboard would read them.

mod common;
mod decl_harness;

use std::{collections::HashMap, time::Duration};

use common::*;
use serde_json::json;
use tonic::Code;
use wfm::proto;

/// Two tools in a row; the second fails when `input.fail` is true.
const PIPELINE: &str = r#"
steps:
  - id: double
    tool:
      name: json_transform
      arguments: {data: "{{ input.n }}", expression: "data * 2"}
  - id: check
    depends_on: [double]
    tool:
      name: json_transform
      arguments: {data: "{{ input.fail }}", expression: "data and nonsense("}
"#;

const FINE: &str = r#"
steps:
  - id: double
    tool:
      name: json_transform
      arguments: {data: "{{ input.n }}", expression: "data * 2"}
"#;

const SLOW: &str = r#"
steps:
  - id: nap
    tool: {name: sleep, arguments: {duration_ms: 60000}}
"#;

async fn register(client: &mut Client, name: &str, yaml: &str, max_concurrency: i32) {
    client
        .register(proto::RegisterRequest {
            name: name.into(),
            max_concurrency,
            source: Some(proto::register_request::Source::Definition(
                decl_harness::definition(yaml),
            )),
            ..Default::default()
        })
        .await
        .expect("registers");
}

/// A GET over plain HTTP. reqwest sets up TLS even for http://, on the process's rustls
/// provider: `wfm` installs ring's, and so must this test process.
async fn get(url: &str) -> reqwest::Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(url).await.expect("GET")
}

/// The server's metrics: `name{labels}` → value, for every sample line.
async fn scrape(url: &str) -> HashMap<String, f64> {
    let response = get(url).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// A server with its Prometheus endpoint on a free port, and that endpoint's URL.
async fn start_with_metrics() -> (Server, String) {
    start_with_metrics_in(tempfile::tempdir().unwrap(), &[])
}

/// The same on a data directory of its own (a restart), with extra environment.
fn start_with_metrics_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> (Server, String) {
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("wfm.toml");
    std::fs::write(&path, "[metrics]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let server = Server::start_in(dir, env, &["--config", path.to_str().unwrap()]);
    let line = server.next_stdout_line();
    let url = line
        .strip_prefix("wfm metrics on ")
        .unwrap_or_else(|| panic!("unexpected line {line}"))
        .to_string();
    (server, url)
}

#[track_caller]
fn assert_metric(metrics: &HashMap<String, f64>, series: &str, expected: f64) {
    let mut near: Vec<_> = metrics
        .keys()
        .filter(|k| k.starts_with(series.split('{').next().unwrap()))
        .collect();
    near.sort();
    assert_eq!(
        metrics.get(series).copied(),
        Some(expected),
        "{series}; the server has {near:#?}"
    );
}

const WFS: &str = "service=\"workflow.v1.WorkflowService\"";

#[tokio::test]
async fn scrape_counts_executions_steps_tools_and_calls() {
    let (server, url) = start_with_metrics().await;
    let mut client = server.client().await;

    register(&mut client, "pipeline", PIPELINE, 0).await;
    register(&mut client, "fine", FINE, 0).await;
    // A registered workflow's counters exist at 0 before its first execution, so the
    // first failure is an increase `rate()` sees, not a series appearing at 1.
    let before = scrape(&url).await;
    for outcome in ["completed", "failed", "cancelled"] {
        assert_metric(
            &before,
            &format!("wfm_executions_total{{workflow=\"pipeline\",outcome=\"{outcome}\"}}"),
            0.0,
        );
    }
    for (name, input) in [
        ("fine", json!({"n": 1})),
        ("fine", json!({"n": 2})),
        ("pipeline", json!({"n": 3, "fail": true})),
    ] {
        let events = execute(&mut client, name, input).await;
        let last = label(events.last().unwrap());
        let expected = if name == "pipeline" {
            "failed"
        } else {
            "completed"
        };
        assert_eq!(last, expected, "{name}: {:?}", labels(&events));
    }
    let missing = client
        .get_execution(proto::GetExecutionRequest {
            execution_id: "01a20fc6-47b6-731f-bc39-9d945e4990e6".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let m = scrape(&url).await;
    assert_metric(&m, r#"wfm_executions_started_total{workflow="fine"}"#, 2.0);
    assert_metric(
        &m,
        r#"wfm_executions_started_total{workflow="pipeline"}"#,
        1.0,
    );
    assert_metric(
        &m,
        r#"wfm_executions_total{workflow="fine",outcome="completed"}"#,
        2.0,
    );
    assert_metric(
        &m,
        r#"wfm_executions_total{workflow="fine",outcome="failed"}"#,
        0.0,
    );
    assert_metric(
        &m,
        r#"wfm_executions_total{workflow="pipeline",outcome="failed"}"#,
        1.0,
    );
    assert_metric(
        &m,
        r#"wfm_executions_total{workflow="pipeline",outcome="completed"}"#,
        0.0,
    );
    assert_metric(
        &m,
        r#"wfm_execution_duration_seconds_count{workflow="fine"}"#,
        2.0,
    );
    assert_metric(
        &m,
        r#"wfm_execution_duration_seconds_count{workflow="pipeline"}"#,
        1.0,
    );
    assert_metric(
        &m,
        r#"wfm_execution_duration_seconds_bucket{workflow="fine",le="+Inf"}"#,
        2.0,
    );
    assert_metric(
        &m,
        r#"wfm_step_duration_seconds_count{workflow="fine",step="double"}"#,
        2.0,
    );
    assert_metric(
        &m,
        r#"wfm_step_duration_seconds_count{workflow="pipeline",step="double"}"#,
        1.0,
    );
    assert_metric(
        &m,
        r#"wfm_step_duration_seconds_count{workflow="pipeline",step="check"}"#,
        1.0,
    );
    let transform = r#"{tool="json_transform",server="builtin"}"#;
    assert_metric(&m, &format!("wfm_tool_calls_total{transform}"), 4.0);
    assert_metric(&m, &format!("wfm_tool_errors_total{transform}"), 1.0);
    assert_metric(
        &m,
        &format!("wfm_tool_call_duration_seconds_count{transform}"),
        4.0,
    );
    assert_metric(
        &m,
        r#"wfm_tool_calls_total{tool="sleep",server="builtin"}"#,
        0.0,
    );
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_requests_total{{{WFS},method="Register",code="OK"}}"#),
        2.0,
    );
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_requests_total{{{WFS},method="Execute",code="OK"}}"#),
        3.0,
    );
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_requests_total{{{WFS},method="GetExecution",code="NOT_FOUND"}}"#),
        1.0,
    );
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_request_duration_seconds_count{{{WFS},method="Execute"}}"#),
        3.0,
    );
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_streams_open{{{WFS},method="Execute"}}"#),
        0.0,
    );
    assert_metric(&m, "wfm_executions_running", 0.0);
    assert_metric(&m, "wfm_executions_queued", 0.0);
    assert_metric(&m, "wfm_workflows_registered", 2.0);
    // Every event and state change went through the SQLite group commit.
    let commits = m["wfm_store_commit_duration_seconds_count"];
    assert!(commits >= 1.0, "{commits}");
    assert_eq!(m["wfm_store_commit_writes_count"], commits);
    assert!(m["wfm_store_commit_writes_sum"] >= 3.0 * 6.0, "{m:#?}");
    assert_metric(&m, "wfm_store_commit_failures_total", 0.0);
    assert!(
        !m.keys().any(|k| k.contains("01a2")),
        "no execution id is a label value"
    );

    // GetStats has the same counts, and the CLI shows them.
    let stats = client
        .get_stats(proto::GetStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = stats
        .workflows
        .iter()
        .map(|w| w.workflow_name.as_str())
        .collect();
    assert_eq!(names, ["fine", "pipeline"]);
    let fine = &stats.workflows[0];
    assert_eq!(
        (
            fine.started,
            fine.succeeded,
            fine.failed,
            fine.cancelled,
            fine.running
        ),
        (2, 2, 0, 0, 0)
    );
    assert_eq!(fine.window_size, 2);
    let (p50, p99) = (fine.p50_duration.unwrap(), fine.p99_duration.unwrap());
    assert!(
        (p50.seconds, p50.nanos) <= (p99.seconds, p99.nanos),
        "{p50:?} {p99:?}"
    );
    assert!(p99.seconds < 10, "{p99:?}");
    let pipeline = &stats.workflows[1];
    assert_eq!(
        (pipeline.started, pipeline.failed, pipeline.running),
        (1, 1, 0)
    );
    assert!(stats.since.is_some());
    let one = client
        .get_stats(proto::GetStatsRequest {
            workflow_name: "fine".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.workflows.len(), 1);
    let unknown = client
        .get_stats(proto::GetStatsRequest {
            workflow_name: "nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "stats"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("pipeline "))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[..6], ["pipeline", "1", "0", "1", "0", "0"], "{text}");
}

#[tokio::test]
async fn gauges_show_running_queued_and_open_streams() {
    let server = Server::start_with(&[], &["--metrics-listen", "127.0.0.1:0"]).await;
    let url = server
        .next_stdout_line()
        .strip_prefix("wfm metrics on ")
        .expect("the metrics line")
        .to_string();
    let mut client = server.client().await;
    register(&mut client, "slow", SLOW, 1).await;
    let mut stream = client
        .execute(execute_request("slow", json!({})))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().event.unwrap();
    let queued = client
        .start_execution(proto::StartExecutionRequest {
            name: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;

    // The gauges are sampled at each scrape: wait for the first execution to run.
    let mut m = scrape(&url).await;
    for _ in 0..100 {
        if m["wfm_executions_running"] == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape(&url).await;
    }
    assert_metric(&m, "wfm_executions_running", 1.0);
    assert_metric(&m, "wfm_executions_queued", 1.0);
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_streams_open{{{WFS},method="Execute"}}"#),
        1.0,
    );
    // A stream is counted when it ends, with its final status.
    assert!(
        !m.keys()
            .any(|k| k.starts_with("wfm_grpc_requests_total") && k.contains("\"Execute\"")),
        "{m:#?}"
    );

    // The queued one first, so it never gets the slot.
    for id in [queued, first.execution_id.clone()] {
        client
            .cancel_execution(proto::CancelExecutionRequest {
                execution_id: id,
                reason: "test".into(),
            })
            .await
            .unwrap();
    }
    while stream.message().await.unwrap().is_some() {}
    let m = scrape(&url).await;
    assert_metric(
        &m,
        r#"wfm_executions_total{workflow="slow",outcome="cancelled"}"#,
        2.0,
    );
    assert_metric(&m, "wfm_executions_running", 0.0);
    assert_metric(&m, "wfm_executions_queued", 0.0);
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_streams_open{{{WFS},method="Execute"}}"#),
        0.0,
    );
    assert_metric(
        &m,
        &format!(r#"wfm_grpc_requests_total{{{WFS},method="Execute",code="OK"}}"#),
        1.0,
    );
    assert_metric(
        &m,
        r#"wfm_tool_calls_total{tool="sleep",server="builtin"}"#,
        1.0,
    );
    // A cancelled call is no error of the tool: it never returned.
    assert_metric(
        &m,
        r#"wfm_tool_errors_total{tool="sleep",server="builtin"}"#,
        0.0,
    );
    let other = get(&url.replace("/metrics", "/other")).await;
    assert_eq!(other.status(), 404);
}

/// Two steps, the second after the first.
const TWO_STEPS: &str = r#"
steps:
  - id: first
    tool:
      name: json_transform
      arguments: {data: "{{ input.n }}", expression: "data + 1"}
  - id: second
    depends_on: [first]
    tool:
      name: json_transform
      arguments: {data: "{{ steps.first.output }}", expression: "data * 2"}
"#;

/// What an execution costs the disk, read from the store's own metrics as an operator
/// would: a one-step execution whose step does not wait (`noop`) is exactly one group
/// commit, its record and five events together, and its record is written once; a step
/// that follows a completed one starts only after that completion is committed, so two
/// steps in a row take a second commit.
#[tokio::test]
async fn a_one_step_execution_is_one_commit_and_a_completion_is_committed_before_the_next_step() {
    let (server, url) = start_with_metrics().await;
    let mut client = server.client().await;
    client
        .register(proto::RegisterRequest {
            name: "nothing".into(),
            source: native("noop", json!({})),
            ..Default::default()
        })
        .await
        .expect("registers noop");
    register(&mut client, "two-steps", TWO_STEPS, 0).await;

    let commits = |m: &HashMap<String, f64>| {
        (
            m["wfm_store_commit_writes_count"],
            m["wfm_store_commit_writes_sum"],
        )
    };
    let (before, writes_before) = commits(&scrape(&url).await);
    for _ in 0..3 {
        let events = execute(&mut client, "nothing", json!({})).await;
        assert_eq!(
            labels(&events),
            [
                "accepted",
                "started",
                "step_started:noop",
                "step_completed:noop",
                "completed"
            ]
        );
    }
    let (after, writes_after) = commits(&scrape(&url).await);
    assert_eq!(after - before, 3.0, "one commit per one-step execution");
    assert_eq!(
        writes_after - writes_before,
        3.0 * 6.0,
        "each commit: the record once and the five events"
    );

    let events = execute(&mut client, "two-steps", json!({"n": 20})).await;
    assert_eq!(label(events.last().unwrap()), "completed");
    let (two_steps, _) = commits(&scrape(&url).await);
    assert!(
        two_steps - after >= 2.0,
        "the second step waited for the first one's completion to be committed: {} commits",
        two_steps - after
    );
}

/// A stored version the server could not restore is out of List: the gauge says how many
/// there are, for an alert, and Get by name says why.
#[tokio::test]
async fn versions_the_server_could_not_restore_are_counted() {
    let (server, url) = start_with_metrics().await;
    let mut client = server.client().await;
    register(&mut client, "pipeline", PIPELINE, 0).await;
    register(&mut client, "fine", FINE, 0).await;
    assert_metric(&scrape(&url).await, "wfm_workflow_versions_unrestored", 0.0);
    drop(client);
    // PIPELINE has 2 steps: with at most 1, it is not restored; FINE is.
    let (_server, url) = start_with_metrics_in(
        server.kill_keep_dir(),
        &[("WFM_LIMITS__MAX_STEPS_PER_WORKFLOW", "1")],
    );
    assert_metric(&scrape(&url).await, "wfm_workflow_versions_unrestored", 1.0);
    assert_metric(&scrape(&url).await, "wfm_workflows_registered", 1.0);
}
