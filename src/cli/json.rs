//! Protobuf messages as JSON for `--json` output and display, snake_case like the proto.

use prost_types::{Duration, Timestamp};
use serde_json::{Value, json};

use crate::api::convert::{struct_to_json_lossy, value_to_json_lossy};
use crate::proto::{self, execution_event::Kind};

fn time(t: &Option<Timestamp>) -> Value {
    match t {
        Some(t) => json!(t.to_string()),
        None => Value::Null,
    }
}

fn seconds(d: &Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        json!(d.seconds as f64 + d.nanos as f64 / 1e9)
    })
}

fn opt_value(v: &Option<prost_types::Value>) -> Value {
    v.as_ref().map_or(Value::Null, value_to_json_lossy)
}

fn opt_struct(s: &Option<prost_types::Struct>) -> Value {
    s.as_ref().map_or(json!({}), struct_to_json_lossy)
}

pub fn status_name(status: i32) -> String {
    proto::ExecutionStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("EXECUTION_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown({status})"))
}

fn step_status_name(status: i32) -> String {
    proto::StepStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("STEP_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown({status})"))
}

pub fn workflow(w: &proto::Workflow) -> Value {
    let (type_name, what, arguments) = match &w.source {
        Some(proto::workflow::Source::Native(n)) => {
            (json!(n.r#type), "arguments", opt_struct(&n.arguments))
        }
        // The whole definition, in the shape of a definition file (`wfm register -f`).
        Some(proto::workflow::Source::Definition(d)) => (
            json!("definition"),
            "definition",
            crate::api::convert_definition::definition_from_proto(d.clone())
                .ok()
                .and_then(|d| serde_json::to_value(d).ok())
                .unwrap_or_else(
                    || json!({"steps": d.steps.iter().map(|s| &s.id).collect::<Vec<_>>()}),
                ),
        ),
        None => (Value::Null, "arguments", Value::Null),
    };
    let mut value = json!({
        "name": w.name,
        "version": w.version,
        "type": type_name,
        "description": w.description,
        "labels": w.labels,
        "max_concurrency": w.max_concurrency,
        "create_time": time(&w.create_time),
    });
    value[what] = arguments;
    value
}

pub fn result(r: &proto::ExecutionResult) -> Value {
    json!({
        "success": r.success,
        "execution_time_seconds": seconds(&r.execution_time),
        "steps_completed": r.steps_completed,
        "steps_failed": r.steps_failed,
        "steps_skipped": r.steps_skipped,
        "steps": r.steps.iter().map(|s| json!({
            "step_id": s.step_id,
            "status": step_status_name(s.status),
            "output": opt_value(&s.output),
            "error": s.error,
            "duration_seconds": seconds(&s.duration),
            "attempts": s.attempts,
        })).collect::<Vec<_>>(),
        "output": opt_value(&r.output),
        "error": r.error,
    })
}

pub fn execution(e: &proto::Execution) -> Value {
    json!({
        "id": e.id,
        "workflow_name": e.workflow_name,
        "workflow_version": e.workflow_version,
        "status": status_name(e.status),
        "input": opt_struct(&e.input),
        "metadata": opt_struct(&e.metadata),
        "create_time": time(&e.create_time),
        "start_time": time(&e.start_time),
        "end_time": time(&e.end_time),
        "result": e.result.as_ref().map_or(Value::Null, result),
        "parent_execution_id": e.parent_execution_id,
        "request_id": e.request_id,
        "last_sequence": e.last_sequence,
    })
}

pub fn event(e: &proto::ExecutionEvent) -> Value {
    let (kind, body) = match &e.kind {
        Some(Kind::Accepted(a)) => (
            "accepted",
            json!({"workflow_name": a.workflow_name, "workflow_version": a.workflow_version}),
        ),
        Some(Kind::Queued(q)) => ("queued", json!({"reason": q.reason})),
        Some(Kind::Started(s)) => ("started", json!({"attempt": s.attempt})),
        Some(Kind::StepStarted(s)) => (
            "step_started",
            json!({"step_id": s.step_id, "attempt": s.attempt}),
        ),
        Some(Kind::StepProgress(p)) => (
            "step_progress",
            json!({"step_id": p.step_id, "message": p.message, "fraction": p.fraction}),
        ),
        Some(Kind::StepCompleted(s)) => (
            "step_completed",
            json!({"step_id": s.step_id, "output": opt_value(&s.output), "duration_seconds": seconds(&s.duration)}),
        ),
        Some(Kind::StepFailed(s)) => (
            "step_failed",
            json!({"step_id": s.step_id, "error": s.error, "attempt": s.attempt, "will_retry": s.will_retry}),
        ),
        Some(Kind::StepSkipped(s)) => (
            "step_skipped",
            json!({"step_id": s.step_id, "reason": s.reason}),
        ),
        Some(Kind::StepCancelled(s)) => (
            "step_cancelled",
            json!({"step_id": s.step_id, "reason": s.reason, "attempt": s.attempt}),
        ),
        Some(Kind::Completed(c)) => (
            "completed",
            json!({"result": c.result.as_ref().map(result)}),
        ),
        Some(Kind::Failed(f)) => (
            "failed",
            json!({"error": f.error, "result": f.result.as_ref().map(result)}),
        ),
        Some(Kind::Cancelled(c)) => (
            "cancelled",
            json!({"reason": c.reason, "result": c.result.as_ref().map(result)}),
        ),
        None => ("unknown", json!({})),
    };
    json!({
        "execution_id": e.execution_id,
        "sequence": e.sequence,
        "time": time(&e.time),
        "type": kind,
        kind: body,
    })
}

pub fn stats(r: &proto::GetStatsResponse) -> Value {
    json!({
        "since": time(&r.since),
        "workflows": r.workflows.iter().map(|w| json!({
            "workflow_name": w.workflow_name,
            "started": w.started,
            "succeeded": w.succeeded,
            "failed": w.failed,
            "cancelled": w.cancelled,
            "running": w.running,
            "p50_duration": seconds(&w.p50_duration),
            "p99_duration": seconds(&w.p99_duration),
            "window_size": w.window_size,
        })).collect::<Vec<_>>(),
    })
}
