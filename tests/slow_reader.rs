//! Slow and stuck stream readers against a real server: a reader that takes nothing while
//! events wait is cut off after `limits.slow_reader_timeout` with RESOURCE_EXHAUSTED, resumes
//! with WatchExecution without missing or repeating an event, and many stuck readers do not
//! make the server's memory grow; a reader of a quiet execution is left alone.

mod decl_harness;

use std::time::{Duration, Instant};

use decl_harness::*;
use serde_json::json;
use tonic::{Code, transport::Endpoint};
use wfm::proto::{self, workflow_service_client::WorkflowServiceClient};

/// Events of the chatty execution: accepted, started, a step, one progress per item...
const ITEMS: usize = 10_000;

const CHATTY: &str = r#"
steps:
  - id: chatter
    for_each: "{{ range(input.n) | list }}"
    max_parallel: 16
    tool: {name: json_transform, arguments: {data: "{{ item }}", expression: "data"}}
"#;

fn server() -> Server {
    Server::start("store = \"memory\"\n[limits]\nslow_reader_timeout = \"1s\"\n")
}

/// A client with a small HTTP/2 stream window, so a reader that does not read stops the
/// flow soon. The connection window stays large: h2 clients allow unread small DATA frames
/// up to half of it, and past that close their own connection (ENHANCE_YOUR_CALM).
async fn small_window_client(server: &Server) -> Client {
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(64 << 20)
        .connect()
        .await
        .unwrap();
    WorkflowServiceClient::new(channel).max_decoding_message_size(64 << 20)
}

async fn wait_until_ended(c: &mut Client, id: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = c
            .get_execution(proto::GetExecutionRequest {
                execution_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .execution
            .unwrap();
        if e.end_time.is_some() {
            return e.last_sequence;
        }
        assert!(Instant::now() < deadline, "the execution did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn watch(
    c: &mut Client,
    id: &str,
    after: i64,
) -> tonic::Streaming<proto::WatchExecutionResponse> {
    c.watch_execution(proto::WatchExecutionRequest {
        execution_id: id.into(),
        after_sequence: after,
    })
    .await
    .unwrap()
    .into_inner()
}

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_stuck_reader_is_cut_off_and_resumes_without_a_gap() {
    let server = server();
    let mut c = server.client().await;
    register(&mut c, "chatty", CHATTY).await.unwrap();
    let mut reader = small_window_client(&server).await;
    let id = start(&mut c, "chatty", json!({"n": ITEMS})).await;
    let mut stuck = watch(&mut reader, &id, 0).await;

    // The reader takes nothing while the execution runs to its end and past the timeout.
    let last = wait_until_ended(&mut c, &id).await;
    assert!(last as usize > ITEMS, "one progress event per item: {last}");
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut seen = Vec::new();
    let cut = loop {
        match stuck.message().await {
            Ok(Some(r)) => seen.push(r.event.unwrap().sequence),
            Ok(None) => panic!(
                "the stream ended without a status after {} events",
                seen.len()
            ),
            Err(status) => break status,
        }
    };
    assert_eq!(cut.code(), Code::ResourceExhausted, "{cut:?}");
    assert!(
        cut.message()
            .starts_with("limits.slow_reader_timeout is 1s: the reader of execution"),
        "{}",
        cut.message()
    );
    assert!(
        cut.message()
            .contains("resume with WatchExecution after the last sequence you received"),
        "{}",
        cut.message()
    );
    let received = *seen.last().expect("some events arrived before the cut");
    assert!(
        (received as usize) < last as usize,
        "cut off before the end: {received} of {last}"
    );
    assert_eq!(
        seen,
        (1..=received).collect::<Vec<_>>(),
        "no gap before the cut"
    );

    // Resuming from the last sequence received gives the rest, each event once.
    let mut rest = watch(&mut reader, &id, received).await;
    let mut next = received;
    while let Some(r) = rest
        .message()
        .await
        .unwrap_or_else(|e| panic!("resuming after {next}: {e:?}"))
    {
        next += 1;
        assert_eq!(r.event.unwrap().sequence, next);
    }
    assert_eq!(next, last, "resumed to the terminal event");
}

#[tokio::test]
async fn many_stuck_readers_do_not_grow_memory() {
    let server = server();
    let mut c = server.client().await;
    register(&mut c, "chatty", CHATTY).await.unwrap();
    let id = start(&mut c, "chatty", json!({"n": ITEMS})).await;
    wait_until_ended(&mut c, &id).await;
    let before = resident_kib(server.pid());

    // Twenty readers on their own connections replay every event and read none.
    let mut stuck = Vec::new();
    for _ in 0..20 {
        let mut reader = small_window_client(&server).await;
        let stream = watch(&mut reader, &id, 0).await;
        stuck.push((reader, stream));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = resident_kib(server.pid());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let after = resident_kib(server.pid());
    eprintln!(
        "resident KiB: before {before}, 20 stuck readers {during}, after the cut-off {after}"
    );
    assert!(
        during < before + 64 * 1024,
        "20 stuck readers took {} KiB",
        during - before
    );

    // Every one was cut off with the status, and the server serves normally.
    for (_, mut stream) in stuck {
        let status = loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .starts_with("limits.slow_reader_timeout is 1s"),
            "{}",
            status.message()
        );
    }
    let events = execute(&mut c, "chatty", json!({"n": 3})).await.unwrap();
    assert_eq!(lines(&events).last().unwrap(), "run completed");
}

#[tokio::test]
async fn a_reader_of_a_quiet_execution_is_left_alone() {
    let server = server();
    let mut c = server.client().await;
    register(
        &mut c,
        "quiet",
        "steps:\n  - id: nap\n    tool: {name: sleep, arguments: {duration_ms: 2500}}\n",
    )
    .await
    .unwrap();
    let id = start(&mut c, "quiet", json!({})).await;
    let mut reader = small_window_client(&server).await;
    let mut stream = watch(&mut reader, &id, 0).await;
    // Not reading for twice the timeout: nothing was waiting, so nothing is cut off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut events = Vec::new();
    while let Some(r) = stream.message().await.expect("not cut off") {
        events.push(r.event.unwrap());
    }
    assert_eq!(lines(&events).last().unwrap(), "run completed");
}
