//! Protobuf <-> domain conversions. Only this layer knows protobuf types.

use std::time::{Duration, SystemTime};

use prost_types::{ListValue, Struct, Timestamp, value::Kind};
use serde_json::{Map, Number, Value};

use crate::engine::{self, EventKind};
use crate::manager::ManagerError;
use crate::proto::{self, execution_event as pe};
use crate::store::{ExecutionRecord, ExecutionStatus, WorkflowRecord, WorkflowSource};

/// Deepest JSON accepted in input, metadata and native arguments, in levels of objects and
/// arrays (`{"a": [1]}` is two): what prost decodes there. It decodes at most 100 nested
/// messages, and each JSON object costs three (Struct, its map entry, Value), each array
/// two (ListValue, Value); input is one message down, so 1 + 3 × 33 − 1 = 99 fits, 34
/// objects do not. Deeper objects stop at prost's limit, whose error `decode_errors.rs`
/// rewrites to name this one; this check refuses the rest (arrays, which cost less).
/// The tests below pin both numbers to prost's limit.
pub const MAX_JSON_DEPTH: usize = 33;
/// The same in a definition (step arguments, a child's input, input_schema, output): a
/// step's arguments sit three messages deeper (WorkflowDefinition, Step, ToolAction), which
/// costs one JSON level, and a GetResponse reading them back (4 + 1 + 3 × 32 − 1 = 100)
/// still decodes.
pub const MAX_DEFINITION_JSON_DEPTH: usize = 32;

/// A Struct to a JSON object (input, metadata, native arguments); NaN and infinities and
/// nesting past `MAX_JSON_DEPTH` are refused, naming the path.
pub fn struct_to_json(field: &str, s: Option<Struct>) -> Result<Value, ManagerError> {
    struct_to_json_within(field, s, MAX_JSON_DEPTH)
}

/// `struct_to_json` with another nesting limit (`MAX_DEFINITION_JSON_DEPTH`).
pub fn struct_to_json_within(
    field: &str,
    s: Option<Struct>,
    max_depth: usize,
) -> Result<Value, ManagerError> {
    match s {
        None => Ok(Value::Object(Map::new())),
        Some(s) => struct_fields(field, s, Nesting::top(max_depth).inside()),
    }
}

/// Where a conversion is: the level of the object or array it is in (0: none), and the
/// deepest level allowed.
#[derive(Clone, Copy)]
struct Nesting {
    depth: usize,
    max: usize,
}

impl Nesting {
    fn top(max: usize) -> Self {
        Nesting { depth: 0, max }
    }

    fn inside(self) -> Self {
        Nesting {
            depth: self.depth + 1,
            ..self
        }
    }

    fn check(self, path: &str) -> Result<(), ManagerError> {
        if self.depth > self.max {
            return Err(ManagerError::invalid(
                path,
                format!(
                    "nests deeper than {} levels of objects and arrays, the JSON nesting limit; flatten it",
                    self.max
                ),
            ));
        }
        Ok(())
    }
}

/// `at`: this object's level.
fn struct_fields(path: &str, s: Struct, at: Nesting) -> Result<Value, ManagerError> {
    at.check(path)?;
    let mut map = Map::new();
    for (k, v) in s.fields {
        let child = format!("{path}.{k}");
        let value = value_to_json(&child, v, at)?;
        map.insert(k, value);
    }
    Ok(Value::Object(map))
}

/// A protobuf Value to JSON; NaN and infinities and nesting past `max_depth` are refused,
/// naming the path.
pub fn value_to_json_checked(
    path: &str,
    v: prost_types::Value,
    max_depth: usize,
) -> Result<Value, ManagerError> {
    value_to_json(path, v, Nesting::top(max_depth))
}

/// `at`: the level of the object or array holding the value.
fn value_to_json(path: &str, v: prost_types::Value, at: Nesting) -> Result<Value, ManagerError> {
    Ok(match v.kind {
        None | Some(Kind::NullValue(0)) => Value::Null,
        Some(Kind::NullValue(n)) => {
            return Err(ManagerError::invalid(
                path,
                format!("null_value {n} is not a NullValue (the only one is NULL_VALUE = 0)"),
            ));
        }
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::NumberValue(n)) => json_number(n).ok_or_else(|| {
            ManagerError::invalid(
                path,
                format!("{n} is not a JSON number (NaN and infinities are not allowed)"),
            )
        })?,
        Some(Kind::StructValue(s)) => struct_fields(path, s, at.inside())?,
        Some(Kind::ListValue(l)) => {
            let at = at.inside();
            at.check(path)?;
            Value::Array(
                l.values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| value_to_json(&format!("{path}[{i}]"), v, at))
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

/// Whole numbers stay integers, so `3` reads back as `3`, not `3.0`.
fn json_number(n: f64) -> Option<Value> {
    if !n.is_finite() {
        return None;
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        return Some(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n).map(Value::Number)
}

/// A protobuf Value to JSON for display; NaN and infinities become null.
pub fn value_to_json_lossy(v: &prost_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => json_number(*n).unwrap_or(Value::Null),
        Some(Kind::StructValue(s)) => struct_to_json_lossy(s),
        Some(Kind::ListValue(l)) => {
            Value::Array(l.values.iter().map(value_to_json_lossy).collect())
        }
    }
}

/// A Struct to a JSON object for display.
pub fn struct_to_json_lossy(s: &Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json_lossy(v)))
            .collect(),
    )
}

pub fn json_to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(json_object_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn json_object_to_struct(o: &Map<String, Value>) -> Struct {
    Struct {
        fields: o
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// A JSON value as a Struct; a non-object becomes `{"value": v}`.
pub fn json_to_struct(v: &Value) -> Struct {
    match v {
        Value::Object(o) => json_object_to_struct(o),
        Value::Null => Struct::default(),
        other => json_object_to_struct(&Map::from_iter([("value".to_string(), other.clone())])),
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}

/// A protobuf Duration to std, refusing negative ones.
pub fn std_duration(field: &str, d: &prost_types::Duration) -> Result<Duration, ManagerError> {
    Duration::try_from(*d).map_err(|_| {
        let reason = if d.seconds < 0 || d.nanos < 0 {
            "is negative; give a duration of 0 or more".to_string()
        } else {
            "is not a valid duration (nanos must be under 1,000,000,000)".to_string()
        };
        ManagerError::invalid(field, format!("{} {reason}", prost_duration_text(d)))
    })
}

/// A protobuf Duration as its JSON form ("-5s", "1.5s"), the way grpcurl users write it.
fn prost_duration_text(d: &prost_types::Duration) -> String {
    match d.nanos {
        0 => format!("{}s", d.seconds),
        n => format!("{}s {}ns", d.seconds, n),
    }
}

/// The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A protobuf Timestamp to SystemTime, refusing what the Timestamp type does not allow
/// (nanos out of 0..1e9, seconds outside years 1 to 9999), which would otherwise overflow
/// further down.
pub fn system_time(field: &str, t: &Timestamp) -> Result<SystemTime, ManagerError> {
    let invalid = || {
        ManagerError::invalid(
            field,
            format!(
                "is not a valid timestamp ({}s {}ns): use a time between years 1 and 9999",
                t.seconds, t.nanos
            ),
        )
    };
    if !TIMESTAMP_SECONDS.contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(invalid());
    }
    SystemTime::try_from(*t).map_err(|_| invalid())
}

pub fn workflow(r: &WorkflowRecord) -> proto::Workflow {
    proto::Workflow {
        name: r.name.clone(),
        version: r.version as i32,
        description: r.description.clone(),
        labels: r.labels.clone().into_iter().collect(),
        max_concurrency: r.max_concurrency as i32,
        create_time: Some(timestamp(r.create_time)),
        source: Some(match &r.source {
            WorkflowSource::Native {
                type_name,
                arguments,
            } => proto::workflow::Source::Native(proto::NativeSource {
                r#type: type_name.clone(),
                arguments: Some(json_to_struct(arguments)),
            }),
            WorkflowSource::Declarative { definition } => proto::workflow::Source::Definition(
                super::convert_definition::definition_to_proto(definition),
            ),
        }),
    }
}

pub fn execution_status(s: ExecutionStatus) -> proto::ExecutionStatus {
    match s {
        ExecutionStatus::Queued => proto::ExecutionStatus::Queued,
        ExecutionStatus::Running => proto::ExecutionStatus::Running,
        ExecutionStatus::Completed => proto::ExecutionStatus::Completed,
        ExecutionStatus::Failed => proto::ExecutionStatus::Failed,
        ExecutionStatus::Cancelled => proto::ExecutionStatus::Cancelled,
    }
}

/// A status filter: unspecified means any; an unknown number is refused.
pub fn status_filter(value: i32) -> Result<Option<ExecutionStatus>, ManagerError> {
    let status = proto::ExecutionStatus::try_from(value).map_err(|_| {
        ManagerError::invalid("status", format!("{value} is not an ExecutionStatus"))
    })?;
    Ok(match status {
        proto::ExecutionStatus::Unspecified => None,
        proto::ExecutionStatus::Queued => Some(ExecutionStatus::Queued),
        proto::ExecutionStatus::Running => Some(ExecutionStatus::Running),
        proto::ExecutionStatus::Completed => Some(ExecutionStatus::Completed),
        proto::ExecutionStatus::Failed => Some(ExecutionStatus::Failed),
        proto::ExecutionStatus::Cancelled => Some(ExecutionStatus::Cancelled),
    })
}

pub fn execution(r: &ExecutionRecord) -> proto::Execution {
    proto::Execution {
        id: r.id.clone(),
        workflow_name: r.workflow_name.clone(),
        workflow_version: r.workflow_version as i32,
        status: execution_status(r.status) as i32,
        input: Some(json_to_struct(&r.input)),
        metadata: Some(json_to_struct(&r.metadata)),
        create_time: Some(timestamp(r.create_time)),
        start_time: r.start_time.map(timestamp),
        end_time: r.end_time.map(timestamp),
        result: r.result.as_deref().map(result),
        parent_execution_id: r.parent_execution_id.clone().unwrap_or_default(),
        request_id: r.request_id.clone().unwrap_or_default(),
        last_sequence: r.last_sequence as i64,
    }
}

fn step_status(s: engine::StepStatus) -> proto::StepStatus {
    match s {
        engine::StepStatus::Pending => proto::StepStatus::Pending,
        engine::StepStatus::Running => proto::StepStatus::Running,
        engine::StepStatus::Completed => proto::StepStatus::Completed,
        engine::StepStatus::Failed => proto::StepStatus::Failed,
        engine::StepStatus::Skipped => proto::StepStatus::Skipped,
        engine::StepStatus::Cancelled => proto::StepStatus::Cancelled,
    }
}

pub fn result(r: &engine::ExecutionResult) -> proto::ExecutionResult {
    proto::ExecutionResult {
        success: r.success,
        execution_time: Some(duration(r.execution_time)),
        steps_completed: r.steps_completed as i32,
        steps_failed: r.steps_failed as i32,
        steps_skipped: r.steps_skipped as i32,
        steps: r
            .steps
            .iter()
            .map(|s| proto::StepResult {
                step_id: s.step_id.clone(),
                status: step_status(s.status) as i32,
                output: Some(json_to_value(&s.output)),
                error: s.error.clone().unwrap_or_default(),
                duration: Some(duration(s.duration)),
                attempts: s.attempts as i32,
            })
            .collect(),
        output: Some(json_to_value(&r.output)),
        error: r.error.clone().unwrap_or_default(),
    }
}

pub fn event(e: &engine::Event) -> proto::ExecutionEvent {
    let kind = match &e.kind {
        EventKind::Accepted {
            workflow_name,
            workflow_version,
        } => pe::Kind::Accepted(pe::Accepted {
            workflow_name: workflow_name.clone(),
            workflow_version: *workflow_version as i32,
        }),
        EventKind::Queued { reason } => pe::Kind::Queued(pe::Queued {
            reason: reason.clone(),
        }),
        EventKind::Started { attempt } => pe::Kind::Started(pe::Started {
            attempt: *attempt as i32,
        }),
        EventKind::StepStarted { step_id, attempt } => pe::Kind::StepStarted(pe::StepStarted {
            step_id: step_id.clone(),
            attempt: *attempt as i32,
        }),
        EventKind::StepProgress {
            step_id,
            message,
            fraction,
        } => pe::Kind::StepProgress(pe::StepProgress {
            step_id: step_id.clone(),
            message: message.clone(),
            fraction: *fraction,
        }),
        EventKind::StepCompleted {
            step_id,
            output,
            duration: d,
        } => pe::Kind::StepCompleted(pe::StepCompleted {
            step_id: step_id.clone(),
            output: Some(json_to_value(output)),
            duration: Some(duration(*d)),
        }),
        EventKind::StepFailed {
            step_id,
            error,
            attempt,
            will_retry,
        } => pe::Kind::StepFailed(pe::StepFailed {
            step_id: step_id.clone(),
            error: error.clone(),
            attempt: *attempt as i32,
            will_retry: *will_retry,
        }),
        EventKind::StepSkipped { step_id, reason } => pe::Kind::StepSkipped(pe::StepSkipped {
            step_id: step_id.clone(),
            reason: reason.clone(),
        }),
        EventKind::StepCancelled {
            step_id,
            reason,
            attempt,
        } => pe::Kind::StepCancelled(pe::StepCancelled {
            step_id: step_id.clone(),
            reason: reason.clone(),
            attempt: *attempt as i32,
        }),
        EventKind::Completed { result: r } => pe::Kind::Completed(pe::Completed {
            result: Some(result(r)),
        }),
        EventKind::Failed { error, result: r } => pe::Kind::Failed(pe::Failed {
            error: error.clone(),
            result: Some(result(r)),
        }),
        EventKind::Cancelled { reason, result: r } => pe::Kind::Cancelled(pe::Cancelled {
            reason: reason.clone(),
            result: Some(result(r)),
        }),
    };
    proto::ExecutionEvent {
        execution_id: e.execution_id.to_string(),
        sequence: e.sequence as i64,
        time: Some(timestamp(e.time)),
        kind: Some(kind),
    }
}

pub fn workflow_stats(name: &str, s: &crate::telemetry::stats::Snapshot) -> proto::WorkflowStats {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    proto::WorkflowStats {
        workflow_name: name.to_string(),
        started: count(s.started),
        succeeded: count(s.completed),
        failed: count(s.failed),
        cancelled: count(s.cancelled),
        running: count(s.running),
        p50_duration: s.p50.map(duration),
        p99_duration: s.p99.map(duration),
        window_size: s.window as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json() {
        let v = json!({"a": 1, "b": [true, null, "x", 2.5], "c": {"d": -3}});
        let back = struct_to_json("input", Some(json_to_struct(&v))).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn refuses_nan_and_deep_nesting() {
        let nan = Struct {
            fields: [(
                "x".to_string(),
                prost_types::Value {
                    kind: Some(Kind::NumberValue(f64::NAN)),
                },
            )]
            .into(),
        };
        let err = struct_to_json("input", Some(nan)).unwrap_err().to_string();
        assert!(err.starts_with("input.x:"), "{err}");
    }

    /// `levels` objects, one inside the other, around a number.
    fn deep_object(levels: usize) -> Value {
        let mut deep = json!(1);
        for _ in 0..levels {
            deep = json!({ "n": deep });
        }
        deep
    }

    #[test]
    fn nesting_is_counted_in_levels_of_objects_and_arrays() {
        let at_limit = deep_object(MAX_JSON_DEPTH);
        assert!(struct_to_json("input", Some(json_to_struct(&at_limit))).is_ok());
        let err = struct_to_json(
            "input",
            Some(json_to_struct(&deep_object(MAX_JSON_DEPTH + 1))),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("nests deeper than 33 levels of objects and arrays"),
            "{err}"
        );
        // Arrays count as levels too: an object holding 32 arrays is 33 levels.
        let mut arrays = json!(1);
        for _ in 0..MAX_JSON_DEPTH - 1 {
            arrays = json!([arrays]);
        }
        assert!(struct_to_json("input", Some(json_to_struct(&json!({ "a": arrays })))).is_ok());
        let err = struct_to_json("input", Some(json_to_struct(&json!({ "a": [arrays] }))))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("input.a[0]"), "{err}");
        // A definition allows one level less; a bare Value (a definition's output) starts
        // counting at its first object or array.
        let definition = deep_object(MAX_DEFINITION_JSON_DEPTH);
        let within = |v: &Value| {
            struct_to_json_within(
                "arguments",
                Some(json_to_struct(v)),
                MAX_DEFINITION_JSON_DEPTH,
            )
        };
        assert!(within(&definition).is_ok());
        assert!(within(&json!({ "n": definition })).is_err());
        let output = |v: &Value| {
            value_to_json_checked("output", json_to_value(v), MAX_DEFINITION_JSON_DEPTH)
        };
        assert!(output(&definition).is_ok());
        assert!(output(&json!([definition])).is_err());
    }

    /// The limits are prost's, where the JSON is sent: objects at the limit decode (and a
    /// definition's read back in a GetResponse too), one level deeper they do not.
    #[test]
    fn the_limits_are_what_prost_decodes() {
        use prost::Message;
        fn decodes<M: Message + Default>(m: &M) -> bool {
            M::decode(m.encode_to_vec().as_slice()).is_ok()
        }
        let input = |v: &Value| {
            decodes(&proto::StartExecutionRequest {
                metadata: Some(json_to_struct(v)),
                ..Default::default()
            })
        };
        let native = |v: &Value| {
            decodes(&proto::RegisterRequest {
                source: Some(proto::register_request::Source::Native(
                    proto::NativeSource {
                        r#type: "t".into(),
                        arguments: Some(json_to_struct(v)),
                    },
                )),
                ..Default::default()
            })
        };
        let definition = |v: &Value| proto::WorkflowDefinition {
            steps: vec![proto::Step {
                action: Some(proto::step::Action::Tool(proto::ToolAction {
                    name: "t".into(),
                    arguments: Some(json_to_struct(v)),
                })),
                ..Default::default()
            }],
            ..Default::default()
        };
        let registered = |v: &Value| {
            decodes(&proto::RegisterRequest {
                source: Some(proto::register_request::Source::Definition(definition(v))),
                ..Default::default()
            })
        };
        let read_back = |v: &Value| {
            decodes(&proto::GetResponse {
                workflow: Some(proto::Workflow {
                    source: Some(proto::workflow::Source::Definition(definition(v))),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let (at, past) = (deep_object(MAX_JSON_DEPTH), deep_object(MAX_JSON_DEPTH + 1));
        assert!(input(&at) && native(&at));
        assert!(!input(&past) && !native(&past));
        let (at, past) = (
            deep_object(MAX_DEFINITION_JSON_DEPTH),
            deep_object(MAX_DEFINITION_JSON_DEPTH + 1),
        );
        assert!(registered(&at) && read_back(&at));
        assert!(!registered(&past));
    }
}
