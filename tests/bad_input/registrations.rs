//! Register: native sources with bad names, arguments and limits, and declarative
//! definitions that are empty, cyclic, oversized, NaN-valued or out of range.

use prost_types::value::Kind as ValueKind;
use serde_json::json;
use tonic::Code;
use wfm::proto;

use super::{Matrix, common::*, deep_list};

fn native_request(
    name: &str,
    type_name: &str,
    arguments: serde_json::Value,
) -> proto::RegisterRequest {
    proto::RegisterRequest {
        name: name.into(),
        source: native(type_name, arguments),
        ..Default::default()
    }
}

/// A Struct `{ "x": <kind> }` that JSON cannot express.
fn struct_with(kind: ValueKind) -> prost_types::Struct {
    prost_types::Struct {
        fields: [("x".to_string(), prost_types::Value { kind: Some(kind) })].into(),
    }
}

fn native_raw_args(arguments: prost_types::Struct) -> proto::RegisterRequest {
    proto::RegisterRequest {
        name: "x".into(),
        source: Some(proto::register_request::Source::Native(
            proto::NativeSource {
                r#type: "echo".into(),
                arguments: Some(arguments),
            },
        )),
        ..Default::default()
    }
}

fn definition_request(definition: proto::WorkflowDefinition) -> proto::RegisterRequest {
    proto::RegisterRequest {
        name: "d".into(),
        source: Some(proto::register_request::Source::Definition(definition)),
        ..Default::default()
    }
}

fn tool_step(id: &str, tool: &str) -> proto::Step {
    proto::Step {
        id: id.into(),
        action: Some(proto::step::Action::Tool(proto::ToolAction {
            name: tool.into(),
            arguments: None,
        })),
        ..Default::default()
    }
}

fn steps(steps: Vec<proto::Step>) -> proto::RegisterRequest {
    definition_request(proto::WorkflowDefinition {
        steps,
        ..Default::default()
    })
}

#[tokio::test]
async fn bad_native_registrations_register_nothing() {
    let server = Server::start().await;
    let mut c = server.client().await;
    // One workflow already there: nothing below may add a version of it or change it.
    register(&mut c, "kept", "echo", json!({})).await;
    let mut m = Matrix::new(&server).await;
    let cases: Vec<(&str, proto::RegisterRequest, Code, &str)> = vec![
        (
            "unknown type",
            native_request("x", "no_such_type", json!({})),
            Code::InvalidArgument,
            "unknown workflow type 'no_such_type'; known types: data_analysis",
        ),
        (
            "empty type",
            native_request("x", "", json!({})),
            Code::InvalidArgument,
            "native.type: is required",
        ),
        (
            "empty request",
            proto::RegisterRequest::default(),
            Code::InvalidArgument,
            "source: is required",
        ),
        (
            "argument of the wrong type",
            native_request("x", "data_analysis", json!({"max_dataset_size": "big"})),
            Code::InvalidArgument,
            "arguments: type 'data_analysis': invalid type: string \"big\"",
        ),
        (
            "zero argument",
            native_request("x", "data_analysis", json!({"max_dataset_size": 0})),
            Code::InvalidArgument,
            "max_dataset_size must be at least 1",
        ),
        (
            "negative argument",
            native_request("x", "data_analysis", json!({"max_dataset_size": -5})),
            Code::InvalidArgument,
            "invalid value: integer `-5`",
        ),
        (
            "enormous argument",
            native_request("x", "data_analysis", json!({"max_dataset_size": 1e300})),
            Code::InvalidArgument,
            "invalid type: floating point",
        ),
        (
            "unknown argument",
            native_request("x", "echo", json!({"surprise": 1})),
            Code::InvalidArgument,
            "unknown field `surprise`",
        ),
        (
            "bad name",
            native_request("bad name!", "echo", json!({})),
            Code::InvalidArgument,
            "name: 'bad name!' is not a valid name",
        ),
        (
            "name too long",
            native_request(&"n".repeat(129), "echo", json!({})),
            Code::InvalidArgument,
            "name: is 129 characters; the maximum is 128",
        ),
        (
            "name starting with -",
            native_request("-leading", "echo", json!({})),
            Code::InvalidArgument,
            "starting with a letter or digit",
        ),
        (
            "NUL in the name",
            native_request("zero\u{0}byte", "echo", json!({})),
            Code::InvalidArgument,
            "is not a valid name",
        ),
        (
            "non-ASCII name",
            native_request("wörk", "echo", json!({})),
            Code::InvalidArgument,
            "is not a valid name",
        ),
        (
            "negative max_concurrency",
            proto::RegisterRequest {
                max_concurrency: -1,
                ..native_request("x", "echo", json!({}))
            },
            Code::InvalidArgument,
            "max_concurrency: -1 is negative",
        ),
        (
            "enormous max_concurrency",
            proto::RegisterRequest {
                max_concurrency: i32::MAX,
                ..native_request("x", "echo", json!({}))
            },
            Code::InvalidArgument,
            "limits.max_concurrent_executions",
        ),
        (
            "huge description",
            proto::RegisterRequest {
                description: "d".repeat(5000),
                ..native_request("x", "echo", json!({}))
            },
            Code::InvalidArgument,
            "description: is 5000 bytes; the maximum is 4096",
        ),
        (
            "bad label key",
            proto::RegisterRequest {
                labels: [("bad key".to_string(), "v".to_string())].into(),
                ..native_request("x", "echo", json!({}))
            },
            Code::InvalidArgument,
            "label key 'bad key'",
        ),
        (
            "huge label value",
            proto::RegisterRequest {
                labels: [("k".to_string(), "v".repeat(300))].into(),
                ..native_request("x", "echo", json!({}))
            },
            Code::InvalidArgument,
            "label 'k' value is 300 bytes; the maximum is 256",
        ),
        (
            "too many labels",
            proto::RegisterRequest {
                labels: (0..65)
                    .map(|i| (format!("k{i}"), "v".to_string()))
                    .collect(),
                ..native_request("x", "echo", json!({}))
            },
            Code::InvalidArgument,
            "has 65 labels; the maximum is 64",
        ),
        (
            "a change to an existing workflow with a bad label",
            proto::RegisterRequest {
                labels: [("".to_string(), "v".to_string())].into(),
                ..native_request("kept", "echo", json!({}))
            },
            Code::InvalidArgument,
            "label key ''",
        ),
        (
            "deeply nested arguments",
            native_request("x", "echo", json!({"deep": deep_list(70)})),
            Code::InvalidArgument,
            "may nest at most 33 levels of objects and arrays",
        ),
        (
            "NaN in arguments",
            native_raw_args(struct_with(ValueKind::NumberValue(f64::NAN))),
            Code::InvalidArgument,
            "native.arguments.x: NaN is not a JSON number",
        ),
        (
            "infinity in arguments",
            native_raw_args(struct_with(ValueKind::NumberValue(f64::INFINITY))),
            Code::InvalidArgument,
            "native.arguments.x: inf is not a JSON number",
        ),
        (
            "unknown NullValue enum in arguments",
            native_raw_args(struct_with(ValueKind::NullValue(7))),
            Code::InvalidArgument,
            "native.arguments.x: null_value 7 is not a NullValue",
        ),
    ];
    for (case, request, code, says) in cases {
        m.check(case, c.register(request).await, code, says).await;
    }
    assert_eq!(m.cases, 24);
}

#[tokio::test]
async fn bad_definitions_register_nothing() {
    let server = Server::start().await;
    let mut c = server.client().await;
    let mut m = Matrix::new(&server).await;
    let nan_output = proto::WorkflowDefinition {
        steps: vec![tool_step("a", "json_transform")],
        output: Some(prost_types::Value {
            kind: Some(ValueKind::NumberValue(f64::NAN)),
        }),
        ..Default::default()
    };
    let with = |f: fn(&mut proto::Step)| {
        let mut step = tool_step("a", "sleep");
        f(&mut step);
        steps(vec![step])
    };
    let cases: Vec<(&str, proto::RegisterRequest, Code, &str)> = vec![
        (
            "no name",
            proto::RegisterRequest {
                name: String::new(),
                ..steps(vec![tool_step("a", "sleep")])
            },
            Code::InvalidArgument,
            "name: is required for a workflow definition",
        ),
        (
            "no steps",
            steps(vec![]),
            Code::InvalidArgument,
            "a definition needs at least one step",
        ),
        (
            "duplicated step ids",
            steps(vec![tool_step("a", "sleep"), tool_step("a", "sleep")]),
            Code::InvalidArgument,
            "duplicate step id",
        ),
        (
            "step id with a space",
            steps(vec![tool_step("a b", "sleep")]),
            Code::InvalidArgument,
            "id 'a b' must be 1 to 64 letters",
        ),
        (
            "huge step id",
            steps(vec![tool_step(&"s".repeat(100_000), "sleep")]),
            Code::InvalidArgument,
            "must be 1 to 64 letters",
        ),
        (
            "more steps than limits.max_steps_per_workflow",
            steps(
                (0..1001)
                    .map(|i| tool_step(&format!("s{i}"), "sleep"))
                    .collect(),
            ),
            Code::InvalidArgument,
            "1001 steps is over limits.max_steps_per_workflow, which is 1000",
        ),
        (
            "a step without an action",
            steps(vec![proto::Step {
                id: "a".into(),
                ..Default::default()
            }]),
            Code::InvalidArgument,
            "has no action",
        ),
        (
            "a dependency cycle",
            steps(vec![
                proto::Step {
                    depends_on: vec!["b".into()],
                    ..tool_step("a", "sleep")
                },
                proto::Step {
                    depends_on: vec!["a".into()],
                    ..tool_step("b", "sleep")
                },
            ]),
            Code::InvalidArgument,
            "depends_on forms a cycle",
        ),
        (
            "an unknown dependency",
            with(|s| s.depends_on = vec!["ghost".into()]),
            Code::InvalidArgument,
            "depends_on 'ghost' is not a step of this workflow",
        ),
        (
            "a template that does not parse",
            with(|s| s.when = "input.n >".into()),
            Code::InvalidArgument,
            "when does not parse",
        ),
        // Once a panic in the template engine (found by the fuzzer).
        (
            "a condition containing '}}'",
            with(|s| s.when = "input.n }}".into()),
            Code::InvalidArgument,
            "when does not parse: expression 'input.n }}': an expression cannot contain '}}'",
        ),
        (
            "negative max_parallel",
            with(|s| {
                s.for_each = "[1]".into();
                s.max_parallel = -1
            }),
            Code::InvalidArgument,
            "max_parallel: -1 is negative",
        ),
        (
            "enormous max_parallel",
            with(|s| {
                s.for_each = "[1]".into();
                s.max_parallel = i32::MAX
            }),
            Code::InvalidArgument,
            "max_parallel 2147483647 is over the maximum of 1000",
        ),
        (
            "negative timeout",
            with(|s| {
                s.timeout = Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                })
            }),
            Code::InvalidArgument,
            "timeout: -1s is negative; give a duration of 0 or more",
        ),
        (
            "NaN backoff",
            with(|s| {
                s.retry = Some(proto::RetryPolicy {
                    backoff_coefficient: f64::NAN,
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "retry.backoff_coefficient NaN must be between 1 and 100",
        ),
        (
            "enormous maximum_attempts",
            with(|s| {
                s.retry = Some(proto::RetryPolicy {
                    maximum_attempts: i32::MAX,
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "retry.maximum_attempts 2147483647 is over the maximum of 100",
        ),
        (
            "negative maximum_attempts",
            with(|s| {
                s.retry = Some(proto::RetryPolicy {
                    maximum_attempts: -3,
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "retry.maximum_attempts: -3 is negative",
        ),
        (
            "negative child version",
            steps(vec![proto::Step {
                id: "a".into(),
                action: Some(proto::step::Action::Workflow(proto::WorkflowAction {
                    name: "other".into(),
                    version: -1,
                    input: None,
                })),
                ..Default::default()
            }]),
            Code::InvalidArgument,
            "workflow.version: -1 is negative",
        ),
        (
            "NaN output",
            definition_request(nan_output),
            Code::InvalidArgument,
            "definition.output: NaN is not a JSON number",
        ),
        (
            "an input_schema that is not a schema",
            definition_request(proto::WorkflowDefinition {
                steps: vec![tool_step("a", "sleep")],
                input_schema: Some(json_struct(json!({"type": 12})).unwrap()),
                ..Default::default()
            }),
            Code::InvalidArgument,
            "input_schema",
        ),
        (
            "an unknown tool",
            steps(vec![tool_step("a", "no_such_tool")]),
            Code::FailedPrecondition,
            "unknown tool 'no_such_tool'",
        ),
    ];
    for (case, request, code, says) in cases {
        m.check(case, c.register(request).await, code, says).await;
    }
    assert_eq!(m.cases, 21);
}
