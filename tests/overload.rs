//! Hard to break: garbage instead of a message, and ten times the concurrency limit of
//! clients at once. Every request is answered, memory stays bounded, and the server serves
//! normally right after.

mod common;

use bytes::{Buf, BufMut};
use common::*;
use serde_json::json;
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};
use wfm::proto;

/// Sends raw bytes as the message and reads raw bytes back.
#[derive(Clone, Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test]
async fn garbage_bytes_are_invalid_argument_and_change_nothing() {
    let server = Server::start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    let garbage: &[&[u8]] = &[
        &[0xff, 0xff, 0xff, 0xff, 0xff], // a varint that never ends
        &[0x0a, 0x64, b'x'],             // a field longer than the message
        &[0x12, 0x02, 0xc3, 0x28],       // invalid UTF-8 in a string field
        &[0x07],                         // a wire type that does not exist
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        for path in ["Register", "Execute", "Get"] {
            grpc.ready().await.unwrap();
            let path = format!("/workflow.v1.WorkflowService/{path}")
                .parse()
                .unwrap();
            let answer = if path_is_stream(&path) {
                grpc.server_streaming(tonic::Request::new(bytes.to_vec()), path, RawBytes)
                    .await
                    .map(|_| ())
            } else {
                grpc.unary(tonic::Request::new(bytes.to_vec()), path, RawBytes)
                    .await
                    .map(|_| ())
            };
            let status = answer.expect_err("garbage is refused");
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "case {i}: {}",
                status.message()
            );
            assert!(
                status.message().contains("not a valid message"),
                "case {i}: {}",
                status.message()
            );
        }
    }
    let mut client = server.client().await;
    let list = client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.workflows.is_empty());
    let executions = client
        .list_executions(proto::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(executions.executions.is_empty());
}

fn path_is_stream(path: &tonic::codegen::http::uri::PathAndQuery) -> bool {
    path.path().ends_with("/Execute")
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Resident memory the server may reach under this overload (documented in docs/configuration.md).
const MEMORY_BOUND_KIB: u64 = 256 * 1024;

#[tokio::test]
async fn ten_times_the_concurrency_limit_is_answered_and_then_served_normally() {
    const LIMIT: usize = 4;
    const QUEUE: usize = 8;
    let server = Server::start_with(
        &[
            ("WFM_LIMITS__MAX_CONCURRENT_EXECUTIONS", "4"),
            ("WFM_LIMITS__MAX_QUEUED_EXECUTIONS", "8"),
        ],
        &[],
    )
    .await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;

    let clients = LIMIT * 10;
    let calls = (0..clients).map(|_| {
        let mut c = client.clone();
        tokio::spawn(async move {
            match c
                .execute(execute_request("nap", json!({"duration_ms": 300})))
                .await
            {
                Err(status) => Err(status.code()),
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut last = None;
                    while let Some(r) = stream.message().await.expect("the stream ends cleanly") {
                        last = r.event;
                    }
                    Ok(label(&last.expect("a terminal event")))
                }
            }
        })
    });
    let answers: Vec<_> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let completed = answers
        .iter()
        .filter(|a| matches!(a, Ok(l) if l == "completed"))
        .count();
    let exhausted = answers
        .iter()
        .filter(|a| **a == Err(Code::ResourceExhausted))
        .count();
    assert_eq!(
        completed + exhausted,
        clients,
        "every request is answered: {answers:?}"
    );
    assert!(
        completed >= LIMIT + QUEUE,
        "at least the running and queued ones complete: {completed}"
    );
    assert!(
        exhausted > 0,
        "the rest are refused, not queued without bound"
    );
    let rss = resident_kib(server.pid());
    assert!(
        rss < MEMORY_BOUND_KIB,
        "resident memory {rss} KiB is over the {MEMORY_BOUND_KIB} KiB bound"
    );

    // Right after, it serves normally.
    let events = execute(&mut client, "nap", json!({"duration_ms": 1})).await;
    assert_eq!(labels(&events).last().unwrap(), "completed");
    let listed = client
        .list_executions(proto::ListExecutionsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.executions.len(),
        completed + 1,
        "refused calls left no execution behind"
    );
}
