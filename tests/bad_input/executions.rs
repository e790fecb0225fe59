//! Execute and StartExecution with unknown workflows, oversized, NaN, unknown-enum and
//! deeply nested input and metadata, bad request ids and input the workflow cannot take.

use prost_types::value::Kind as ValueKind;
use serde_json::json;
use tonic::Code;
use wfm::proto;

use super::{Matrix, common::*, deep_list};

fn struct_with(kind: ValueKind) -> Option<prost_types::Struct> {
    Some(prost_types::Struct {
        fields: [("x".to_string(), prost_types::Value { kind: Some(kind) })].into(),
    })
}

fn start(f: impl FnOnce(&mut proto::StartExecutionRequest)) -> proto::StartExecutionRequest {
    let mut r = proto::StartExecutionRequest {
        name: "echo".into(),
        ..Default::default()
    };
    f(&mut r);
    r
}

#[tokio::test]
async fn bad_executions_start_nothing() {
    let server = Server::start_with(&[("WFM_LIMITS__MAX_INPUT_BYTES", "1000")], &[]).await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    register(&mut c, "nap", "sleep", json!({})).await;
    let mut m = Matrix::new(&server).await;

    let cases: Vec<(&str, proto::ExecuteRequest, Code, &str)> = vec![
        (
            "empty request",
            proto::ExecuteRequest::default(),
            Code::InvalidArgument,
            "name: must not be empty",
        ),
        (
            "unknown workflow",
            execute_request("nope", json!({})),
            Code::NotFound,
            "workflow 'nope' is not registered",
        ),
        (
            "input over limits.max_input_bytes",
            execute_request("echo", json!({"blob": "x".repeat(2000)})),
            Code::InvalidArgument,
            "input: is 2011 bytes as JSON; limits.max_input_bytes is 1000",
        ),
        (
            "negative version",
            proto::ExecuteRequest {
                version: -2,
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "version: -2 is negative",
        ),
        (
            "enormous version",
            proto::ExecuteRequest {
                version: i32::MAX,
                ..execute_request("echo", json!({}))
            },
            Code::NotFound,
            "has no version 2147483647",
        ),
        (
            "NaN input",
            proto::ExecuteRequest {
                input: struct_with(ValueKind::NumberValue(f64::NAN)),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "input.x: NaN is not a JSON number",
        ),
        (
            "negative infinity input",
            proto::ExecuteRequest {
                input: struct_with(ValueKind::NumberValue(f64::NEG_INFINITY)),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "input.x: -inf is not a JSON number",
        ),
        (
            "unknown NullValue enum in input",
            proto::ExecuteRequest {
                input: struct_with(ValueKind::NullValue(3)),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "input.x: null_value 3 is not a NullValue",
        ),
        (
            "NaN metadata",
            proto::ExecuteRequest {
                metadata: struct_with(ValueKind::NumberValue(f64::NAN)),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "metadata.x: NaN is not a JSON number",
        ),
        (
            "metadata over limits.max_input_bytes",
            proto::ExecuteRequest {
                metadata: json_struct(json!({"m": "y".repeat(2000)})),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "metadata: is 2008 bytes as JSON; limits.max_input_bytes is 1000",
        ),
        (
            "input nested past prost's limit",
            execute_request("echo", json!({"deep": deep_list(70)})),
            Code::InvalidArgument,
            "the request nests too deeply to decode (ExecuteRequest.input: protobuf's recursion limit): JSON may nest at most 33 levels",
        ),
        (
            "request_id too long",
            proto::ExecuteRequest {
                request_id: "r".repeat(200),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "request_id: must be at most 128 bytes",
        ),
        (
            "control character in request_id",
            proto::ExecuteRequest {
                request_id: "a\nb".into(),
                ..execute_request("echo", json!({}))
            },
            Code::InvalidArgument,
            "without control characters",
        ),
        (
            "input of the wrong type",
            execute_request("nap", json!({"duration_ms": "soon"})),
            Code::InvalidArgument,
            "input: invalid type: string \"soon\", expected u64",
        ),
        (
            "negative input",
            execute_request("nap", json!({"duration_ms": -5})),
            Code::InvalidArgument,
            "input: invalid value: integer `-5`",
        ),
        (
            "enormous input",
            execute_request("nap", json!({"duration_ms": 1e300})),
            Code::InvalidArgument,
            "input: invalid type: floating point",
        ),
        (
            "unknown input field",
            execute_request("nap", json!({"seconds": 5})),
            Code::InvalidArgument,
            "unknown field `seconds`",
        ),
    ];
    for (case, request, code, says) in cases {
        m.check(case, c.execute(request).await, code, says).await;
    }

    m.check(
        "StartExecution empty name",
        c.start_execution(start(|r| r.name.clear())).await,
        Code::InvalidArgument,
        "name: must not be empty",
    )
    .await;
    m.check(
        "StartExecution NaN input",
        c.start_execution(start(|r| {
            r.input = struct_with(ValueKind::NumberValue(f64::NAN))
        }))
        .await,
        Code::InvalidArgument,
        "input.x: NaN",
    )
    .await;
    m.check(
        "StartExecution bad name",
        c.start_execution(start(|r| r.name = "x\u{7f}".into()))
            .await,
        Code::InvalidArgument,
        "is not a valid name",
    )
    .await;
    m.check(
        "StartExecution huge request_id",
        c.start_execution(start(|r| r.request_id = "r".repeat(1 << 20)))
            .await,
        Code::InvalidArgument,
        "request_id: must be at most 128 bytes",
    )
    .await;
    assert_eq!(m.cases, 21);
}

/// `levels` objects, one inside the other, around a string.
fn deep_object(levels: usize) -> serde_json::Value {
    let mut deep = json!("bottom");
    for _ in 0..levels {
        deep = json!({ "n": deep });
    }
    deep
}

/// The JSON nesting limits docs/configuration.md states (33 levels in input, metadata and
/// native arguments, 32 in a definition) are the ones that apply. JSON at the limit is
/// taken and reads back (GetExecution, Get); past it, it is refused naming the limit,
/// whether the server's check or protobuf decoding stops it. Decoding used to answer only
/// "recursion limit reached", from 34 levels, while the documented limit was 64.
#[tokio::test]
async fn the_json_nesting_limit_is_the_documented_one() {
    let server = Server::start().await;
    let mut c = server.client().await;
    // noop: an echo's deep output would travel deeper still in its events.
    register(&mut c, "noop", "noop", json!({})).await;

    let at_limit = deep_object(33);
    let id = c
        .start_execution(proto::StartExecutionRequest {
            name: "noop".into(),
            input: json_struct(at_limit.clone()),
            metadata: json_struct(at_limit.clone()),
            ..Default::default()
        })
        .await
        .expect("input at the limit")
        .into_inner()
        .execution_id;
    let execution = c
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(
        wfm::api::convert::struct_to_json_lossy(execution.input.as_ref().unwrap()),
        at_limit
    );
    let tool_step = |data: serde_json::Value| proto::RegisterRequest {
        name: "deep-arguments".into(),
        source: Some(proto::register_request::Source::Definition(
            proto::WorkflowDefinition {
                steps: vec![proto::Step {
                    id: "a".into(),
                    action: Some(proto::step::Action::Tool(proto::ToolAction {
                        name: "json_transform".into(),
                        arguments: json_struct(json!({"expression": "data", "data": data})),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    // The arguments object is a level of its own: 32 in all.
    c.register(tool_step(deep_object(31))).await.unwrap();
    c.get(proto::GetRequest {
        name: "deep-arguments".into(),
        version: 0,
    })
    .await
    .expect("a definition at the limit reads back");

    let refused = [
        (
            "input past what protobuf decodes",
            c.start_execution(proto::StartExecutionRequest {
                name: "noop".into(),
                input: json_struct(deep_object(34)),
                ..Default::default()
            })
            .await
            .map(|_| ()),
            "the request nests too deeply to decode (StartExecutionRequest.input: protobuf's recursion limit): JSON may nest at most 33 levels of objects and arrays in input, metadata and native arguments, 32 in a definition; flatten it",
        ),
        (
            "arrays in metadata past the limit",
            c.start_execution(proto::StartExecutionRequest {
                name: "noop".into(),
                metadata: json_struct(json!({ "a": super::deep_list(33) })),
                ..Default::default()
            })
            .await
            .map(|_| ()),
            "metadata.a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nests deeper than 33 levels of objects and arrays, the JSON nesting limit; flatten it",
        ),
        (
            "step arguments past what protobuf decodes",
            c.register(tool_step(deep_object(32))).await.map(|_| ()),
            "ToolAction.arguments: protobuf's recursion limit): JSON may nest at most 33 levels of objects and arrays in input, metadata and native arguments, 32 in a definition",
        ),
        (
            "arrays in step arguments past the limit",
            c.register(tool_step(super::deep_list(32)))
                .await
                .map(|_| ()),
            "(step 'a').tool.arguments.data[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nests deeper than 32 levels of objects and arrays, the JSON nesting limit; flatten it",
        ),
    ];
    for (case, answer, says) in refused {
        let err = answer.expect_err(case);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{case}: {}",
            err.message()
        );
        assert!(
            err.message().contains(says),
            "{case}: {:?} should say {says:?}",
            err.message()
        );
    }
}
