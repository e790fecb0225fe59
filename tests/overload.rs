//! Hard to break under load: ten times the concurrency limit of clients at once. Every
//! request is answered, memory stays bounded, and the server serves normally right after.
//! (Garbage instead of a message is in tests/bad_input/wire.rs.)

mod common;

use common::*;
use serde_json::json;
use tonic::Code;
use wfm::proto;

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
