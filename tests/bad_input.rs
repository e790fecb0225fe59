//! Bad input gets the right gRPC code and a message that says what to fix, and changes nothing.

mod common;

use common::*;
use prost_types::value::Kind as ValueKind;
use serde_json::json;
use tonic::Code;
use wfm::proto;

fn expect(err: tonic::Status, code: Code, says: &str) {
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(
        err.message().contains(says),
        "message {:?} should say {says:?}",
        err.message()
    );
}

fn register_request(
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

#[tokio::test]
async fn bad_registrations_register_nothing() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let cases: Vec<(proto::RegisterRequest, Code, &str)> = vec![
        (
            register_request("x", "no_such_type", json!({})),
            Code::InvalidArgument,
            "unknown workflow type 'no_such_type'; known types: data_analysis",
        ),
        (
            register_request("x", "", json!({})),
            Code::InvalidArgument,
            "native.type: is required",
        ),
        (
            proto::RegisterRequest {
                name: "x".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "source: is required",
        ),
        (
            register_request("x", "data_analysis", json!({"max_dataset_size": "big"})),
            Code::InvalidArgument,
            "arguments: type 'data_analysis': invalid type: string \"big\"",
        ),
        (
            register_request("x", "data_analysis", json!({"max_dataset_size": 0})),
            Code::InvalidArgument,
            "max_dataset_size must be at least 1",
        ),
        (
            register_request("x", "data_analysis", json!({"max_dataset_size": -5})),
            Code::InvalidArgument,
            "invalid value: integer `-5`",
        ),
        (
            register_request("x", "echo", json!({"surprise": 1})),
            Code::InvalidArgument,
            "unknown field `surprise`",
        ),
        (
            register_request("bad name!", "echo", json!({})),
            Code::InvalidArgument,
            "name: 'bad name!' is not a valid name",
        ),
        (
            register_request(&"n".repeat(129), "echo", json!({})),
            Code::InvalidArgument,
            "name: is 129 characters; the maximum is 128",
        ),
        (
            register_request("-leading", "echo", json!({})),
            Code::InvalidArgument,
            "starting with a letter or digit",
        ),
        (
            register_request("zero\u{0}byte", "echo", json!({})),
            Code::InvalidArgument,
            "is not a valid name",
        ),
        (
            proto::RegisterRequest {
                name: "x".into(),
                max_concurrency: -1,
                source: native("echo", json!({})),
                ..Default::default()
            },
            Code::InvalidArgument,
            "max_concurrency: -1 is negative",
        ),
        (
            proto::RegisterRequest {
                name: "x".into(),
                max_concurrency: 1_000_000,
                source: native("echo", json!({})),
                ..Default::default()
            },
            Code::InvalidArgument,
            "limits.max_concurrent_executions",
        ),
        (
            proto::RegisterRequest {
                name: "x".into(),
                description: "d".repeat(5000),
                source: native("echo", json!({})),
                ..Default::default()
            },
            Code::InvalidArgument,
            "description: is 5000 bytes; the maximum is 4096",
        ),
        (
            proto::RegisterRequest {
                name: "x".into(),
                labels: [("bad key".to_string(), "v".to_string())].into(),
                source: native("echo", json!({})),
                ..Default::default()
            },
            Code::InvalidArgument,
            "label key 'bad key'",
        ),
    ];
    let count = cases.len();
    for (request, code, says) in cases {
        let err = client.register(request).await.unwrap_err();
        expect(err, code, says);
    }
    assert!(count >= 15);
    let list = client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        list.workflows.is_empty(),
        "nothing was registered: {:?}",
        list.workflows
    );
}

#[tokio::test]
async fn bad_reads_name_the_problem() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;

    let get = |name: &str, version: i32| proto::GetRequest {
        name: name.into(),
        version,
    };
    expect(
        client.get(get("nope", 0)).await.unwrap_err(),
        Code::NotFound,
        "workflow 'nope' is not registered",
    );
    expect(
        client.get(get("echo", 7)).await.unwrap_err(),
        Code::NotFound,
        "workflow 'echo' has no version 7 (versions: [1])",
    );
    expect(
        client.get(get("echo", -1)).await.unwrap_err(),
        Code::InvalidArgument,
        "version: -1 is negative",
    );
    expect(
        client.get(get("", 0)).await.unwrap_err(),
        Code::InvalidArgument,
        "name: must not be empty",
    );

    let list = |page_size: i32, page_token: &str| proto::ListRequest {
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    };
    expect(
        client.list(list(-1, "")).await.unwrap_err(),
        Code::InvalidArgument,
        "page_size: -1 is negative",
    );
    expect(
        client.list(list(5000, "")).await.unwrap_err(),
        Code::InvalidArgument,
        "over the maximum of 1000",
    );
    expect(
        client.list(list(1, "zz-not-a-token")).await.unwrap_err(),
        Code::InvalidArgument,
        "page_token: is not a token this server returned",
    );

    let get_exec = |id: &str| proto::GetExecutionRequest {
        execution_id: id.into(),
    };
    expect(
        client.get_execution(get_exec("")).await.unwrap_err(),
        Code::InvalidArgument,
        "execution_id: must not be empty",
    );
    expect(
        client
            .get_execution(get_exec("not-a-uuid"))
            .await
            .unwrap_err(),
        Code::InvalidArgument,
        "is not an execution id",
    );
    expect(
        client
            .get_execution(get_exec("01a20fc6-47b6-731f-bc39-9d945e4990e6"))
            .await
            .unwrap_err(),
        Code::NotFound,
        "execution '01a20fc6-47b6-731f-bc39-9d945e4990e6' does not exist",
    );
    let watch = |id: &str, after: i64| proto::WatchExecutionRequest {
        execution_id: id.into(),
        after_sequence: after,
    };
    expect(
        client
            .watch_execution(watch("01a20fc6-47b6-731f-bc39-9d945e4990e6", 0))
            .await
            .unwrap_err(),
        Code::NotFound,
        "does not exist",
    );
    let id = execute(&mut client, "echo", json!({})).await[0]
        .execution_id
        .clone();
    expect(
        client.watch_execution(watch(&id, -3)).await.unwrap_err(),
        Code::InvalidArgument,
        "after_sequence: -3 is negative",
    );
    expect(
        client
            .cancel_execution(proto::CancelExecutionRequest {
                execution_id: "x".into(),
                reason: String::new(),
            })
            .await
            .unwrap_err(),
        Code::InvalidArgument,
        "is not an execution id",
    );
    expect(
        client
            .list_executions(proto::ListExecutionsRequest {
                status: 99,
                ..Default::default()
            })
            .await
            .unwrap_err(),
        Code::InvalidArgument,
        "status: 99 is not an ExecutionStatus",
    );
    expect(
        client
            .list_executions(proto::ListExecutionsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        Code::InvalidArgument,
        "page_token",
    );
    expect(
        client
            .shutdown(proto::ShutdownRequest {
                grace_period: Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                }),
            })
            .await
            .unwrap_err(),
        Code::InvalidArgument,
        "grace_period",
    );
    // Still serving after all of that.
    assert_eq!(
        labels(&execute(&mut client, "echo", json!({})).await)
            .last()
            .unwrap(),
        "completed"
    );
}

fn deep_list(levels: usize) -> serde_json::Value {
    let mut deep = json!("bottom");
    for _ in 0..levels {
        deep = json!([deep]);
    }
    deep
}

/// The message stays short enough to read.
fn err_len_ok(err: &tonic::Status) -> bool {
    err.message().len() < 200
}

#[tokio::test]
async fn bad_executions_start_nothing() {
    let server = Server::start_with(&[("WFM_LIMITS__MAX_INPUT_BYTES", "1000")], &[]).await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;

    let err = client
        .execute(execute_request("nope", json!({})))
        .await
        .unwrap_err();
    expect(err, Code::NotFound, "workflow 'nope' is not registered");
    let err = client
        .execute(execute_request("echo", json!({"blob": "x".repeat(2000)})))
        .await
        .unwrap_err();
    expect(err, Code::InvalidArgument, "limits.max_input_bytes is 1000");
    let err = client
        .execute(proto::ExecuteRequest {
            name: "echo".into(),
            version: -2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect(err, Code::InvalidArgument, "version: -2 is negative");

    let nan = prost_types::Struct {
        fields: [(
            "x".to_string(),
            prost_types::Value {
                kind: Some(ValueKind::NumberValue(f64::NAN)),
            },
        )]
        .into(),
    };
    let err = client
        .execute(proto::ExecuteRequest {
            name: "echo".into(),
            input: Some(nan),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect(
        err,
        Code::InvalidArgument,
        "input.x: NaN is not a JSON number",
    );

    let err = client
        .execute(execute_request("echo", json!({"deep": deep_list(70)})))
        .await
        .unwrap_err();
    // prost's decoder stops it (recursion limit 100) before the server's own depth check.
    expect(
        err,
        Code::InvalidArgument,
        "ExecuteRequest.input: recursion limit reached",
    );
    assert!(err_len_ok(
        &client
            .execute(execute_request("echo", json!({"deep": deep_list(70)})))
            .await
            .unwrap_err()
    ));

    let err = client
        .start_execution(proto::StartExecutionRequest {
            name: "echo".into(),
            request_id: "r".repeat(200),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect(
        err,
        Code::InvalidArgument,
        "request_id: must be at most 128 bytes",
    );

    // Input the workflow cannot take is refused before anything runs.
    register(&mut client, "nap", "sleep", json!({})).await;
    let err = client
        .execute(execute_request("nap", json!({"duration_ms": "soon"})))
        .await
        .unwrap_err();
    expect(
        err,
        Code::InvalidArgument,
        "input: invalid type: string \"soon\", expected u64",
    );
    let err = client
        .execute(execute_request("nap", json!({"duration_ms": -5})))
        .await
        .unwrap_err();
    expect(
        err,
        Code::InvalidArgument,
        "input: invalid value: integer `-5`",
    );
    let err = client
        .execute(execute_request("nap", json!({"seconds": 5})))
        .await
        .unwrap_err();
    expect(err, Code::InvalidArgument, "unknown field `seconds`");

    let all = client
        .list_executions(proto::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        all.executions.is_empty(),
        "no execution was started: {:?}",
        all.executions
    );
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let server = Server::start_with(&[("WFM_LIMITS__MAX_MESSAGE_BYTES", "2048")], &[]).await;
    let mut client = server.client().await;
    let err = client
        .register(proto::RegisterRequest {
            name: "x".into(),
            description: "d".repeat(4000),
            source: native("echo", json!({})),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    let list = client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.workflows.is_empty());
}
