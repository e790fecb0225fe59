//! Bytes a generated client cannot send: invalid UTF-8 in names and keys, enum numbers out
//! of range, wrong wire types, empty messages, and garbage to every RPC.

use serde_json::json;
use tonic::Code;

use super::{Matrix, common::raw::*, common::*};

const RPCS: [&str; 13] = [
    "Register",
    "Unregister",
    "List",
    "Get",
    "Execute",
    "StartExecution",
    "GetExecution",
    "ListExecutions",
    "WatchExecution",
    "CancelExecution",
    "ListWorkflowTypes",
    "ListTools",
    "Shutdown",
];

/// Not a protobuf message, whatever the schema.
const GARBAGE: [&[u8]; 4] = [
    &[0xff, 0xff, 0xff, 0xff, 0xff], // a varint that never ends
    &[0x0a, 0x64, b'x'],             // a field longer than the message
    &[0x07],                         // a wire type that does not exist
    &[0x0b],                         // a group that never ends
];

const NOT_UTF8: &[u8] = &[b'a', 0xff, 0xfe];

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A NativeSource for `echo`, as field 5 of RegisterRequest.
fn echo_source() -> Vec<u8> {
    len_field(5, &len_field(1, b"echo"))
}

#[tokio::test]
async fn raw_bytes_are_refused_and_change_nothing() {
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let id = execute(&mut c, "echo", json!({}))
        .await
        .remove(0)
        .execution_id;
    let channel = server.channel().await;
    let mut m = Matrix::new(&server).await;
    let invalid = "the request is not a valid message";

    // Invalid UTF-8 in a string: in a name, an id, a reason, a label key, an input key.
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "Register",
            "name",
            concat(&[len_field(1, NOT_UTF8), echo_source()]),
        ),
        ("Get", "name", len_field(1, NOT_UTF8)),
        ("Unregister", "name", len_field(1, NOT_UTF8)),
        ("Execute", "name", len_field(1, NOT_UTF8)),
        (
            "StartExecution",
            "request_id",
            concat(&[len_field(1, b"echo"), len_field(5, NOT_UTF8)]),
        ),
        ("GetExecution", "execution_id", len_field(1, NOT_UTF8)),
        ("WatchExecution", "execution_id", len_field(1, NOT_UTF8)),
        (
            "CancelExecution",
            "reason",
            concat(&[len_field(1, id.as_bytes()), len_field(2, NOT_UTF8)]),
        ),
        (
            "Register",
            "label key",
            concat(&[
                len_field(1, b"x"),
                len_field(3, &concat(&[len_field(1, NOT_UTF8), len_field(2, b"v")])),
                echo_source(),
            ]),
        ),
        (
            "Execute",
            "input key",
            concat(&[
                len_field(1, b"echo"),
                // input: Struct { fields: { NOT_UTF8: Value { string_value: "v" } } }
                len_field(
                    3,
                    &len_field(
                        1,
                        &concat(&[len_field(1, NOT_UTF8), len_field(2, &len_field(3, b"v"))]),
                    ),
                ),
            ]),
        ),
    ];
    for (rpc, what, bytes) in cases {
        let case = format!("{rpc}: invalid UTF-8 in {what}");
        let answer = call(&channel, rpc, bytes).await;
        m.check(
            &case,
            answer,
            Code::InvalidArgument,
            "invalid string value: data is not UTF-8 encoded",
        )
        .await;
    }

    // Enum numbers that are not an ExecutionStatus.
    m.check(
        "ListExecutions status 2^31-1",
        call(&channel, "ListExecutions", varint_field(2, i32::MAX as u64)).await,
        Code::InvalidArgument,
        "status: 2147483647 is not an ExecutionStatus",
    )
    .await;
    m.check(
        "ListExecutions status -2",
        call(&channel, "ListExecutions", varint_field(2, -2i64 as u64)).await,
        Code::InvalidArgument,
        "status: -2 is not an ExecutionStatus",
    )
    .await;
    m.check(
        "ListExecutions status 6",
        call(&channel, "ListExecutions", varint_field(2, 6)).await,
        Code::InvalidArgument,
        "status: 6 is not an ExecutionStatus",
    )
    .await;

    // Wrong wire types for known fields.
    m.check(
        "Register name as a number",
        call(
            &channel,
            "Register",
            concat(&[varint_field(1, 7), echo_source()]),
        )
        .await,
        Code::InvalidArgument,
        invalid,
    )
    .await;
    // Past limits.max_message_bytes (4 MiB by default): the error names the setting.
    m.check(
        "Register over the message size limit",
        call(
            &channel,
            "Register",
            len_field(3, &vec![b'x'; (4 << 20) + 16]),
        )
        .await,
        Code::OutOfRange,
        "limits.max_message_bytes is 4194304",
    )
    .await;
    m.check(
        "List page_size as bytes",
        call(&channel, "List", len_field(1, b"ten")).await,
        Code::InvalidArgument,
        invalid,
    )
    .await;
    m.check(
        "Execute input as a number",
        call(
            &channel,
            "Execute",
            concat(&[len_field(1, b"echo"), varint_field(3, 1)]),
        )
        .await,
        Code::InvalidArgument,
        invalid,
    )
    .await;
    m.check(
        "WatchExecution after_sequence as bytes",
        call(
            &channel,
            "WatchExecution",
            concat(&[len_field(1, id.as_bytes()), len_field(2, b"1")]),
        )
        .await,
        Code::InvalidArgument,
        invalid,
    )
    .await;

    // Empty messages: every required field is missing.
    for (rpc, says) in [
        ("Register", "source: is required"),
        ("Unregister", "name: must not be empty"),
        ("Get", "name: must not be empty"),
        ("Execute", "name: must not be empty"),
        ("StartExecution", "name: must not be empty"),
        ("GetExecution", "execution_id: must not be empty"),
        ("WatchExecution", "execution_id: must not be empty"),
        ("CancelExecution", "execution_id: must not be empty"),
    ] {
        m.check(
            &format!("{rpc}: empty message"),
            call(&channel, rpc, Vec::new()).await,
            Code::InvalidArgument,
            says,
        )
        .await;
    }

    // Garbage to every RPC, Shutdown included: refused before anything runs.
    for rpc in RPCS {
        for (i, bytes) in GARBAGE.iter().enumerate() {
            let answer = call(&channel, rpc, bytes.to_vec()).await;
            m.check(
                &format!("{rpc}: garbage {i}"),
                answer,
                Code::InvalidArgument,
                invalid,
            )
            .await;
        }
    }
    assert_eq!(m.cases, 10 + 1 + 3 + 4 + 8 + RPCS.len() * GARBAGE.len());

    // Still serving, the same execution still there.
    let again = execute(&mut c, "echo", json!({})).await;
    assert_eq!(labels(&again).last().unwrap(), "completed");
}
