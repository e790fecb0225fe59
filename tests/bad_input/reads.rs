//! Get, List, Unregister, GetExecution, ListExecutions, WatchExecution, CancelExecution and
//! Shutdown with empty, unknown, negative, enormous and huge values.

use serde_json::json;
use tonic::Code;
use wfm::proto;

use super::{Matrix, SOME_ID, common::*};

fn get(name: &str, version: i32) -> proto::GetRequest {
    proto::GetRequest {
        name: name.into(),
        version,
    }
}

fn list(page_size: i32, page_token: &str) -> proto::ListRequest {
    proto::ListRequest {
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    }
}

fn get_exec(id: &str) -> proto::GetExecutionRequest {
    proto::GetExecutionRequest {
        execution_id: id.into(),
    }
}

fn watch(id: &str, after: i64) -> proto::WatchExecutionRequest {
    proto::WatchExecutionRequest {
        execution_id: id.into(),
        after_sequence: after,
    }
}

fn cancel(id: &str, reason: &str) -> proto::CancelExecutionRequest {
    proto::CancelExecutionRequest {
        execution_id: id.into(),
        reason: reason.into(),
    }
}

fn list_exec(f: impl FnOnce(&mut proto::ListExecutionsRequest)) -> proto::ListExecutionsRequest {
    let mut r = proto::ListExecutionsRequest::default();
    f(&mut r);
    r
}

fn at(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

fn grace(seconds: i64, nanos: i32) -> proto::ShutdownRequest {
    proto::ShutdownRequest {
        grace_period: Some(prost_types::Duration { seconds, nanos }),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_reads_and_removals_name_the_problem_and_change_nothing() {
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let done = execute(&mut c, "echo", json!({"a": 1})).await;
    let id = done[0].execution_id.clone();
    let last = done.last().unwrap().sequence;
    let mut m = Matrix::new(&server).await;

    // Get
    m.check(
        "Get unknown",
        c.get(get("nope", 0)).await,
        Code::NotFound,
        "workflow 'nope' is not registered",
    )
    .await;
    m.check(
        "Get unknown version",
        c.get(get("echo", 7)).await,
        Code::NotFound,
        "workflow 'echo' has no version 7 (versions: [1])",
    )
    .await;
    m.check(
        "Get enormous version",
        c.get(get("echo", i32::MAX)).await,
        Code::NotFound,
        "has no version 2147483647",
    )
    .await;
    m.check(
        "Get negative version",
        c.get(get("echo", -1)).await,
        Code::InvalidArgument,
        "version: -1 is negative",
    )
    .await;
    m.check(
        "Get empty name",
        c.get(get("", 0)).await,
        Code::InvalidArgument,
        "name: must not be empty",
    )
    .await;
    m.check(
        "Get huge name",
        c.get(get(&"n".repeat(1 << 20), 0)).await,
        Code::InvalidArgument,
        "name: is 1048576 characters; the maximum is 128",
    )
    .await;

    // List
    m.check(
        "List negative page",
        c.list(list(-1, "")).await,
        Code::InvalidArgument,
        "page_size: -1 is negative",
    )
    .await;
    // A page size over limits.max_page_size is lowered to it (AIP-158; see
    // `a_page_size_over_the_maximum_gives_full_pages_of_the_maximum`), however large.
    for size in [5000, i32::MAX] {
        let page = c.list(list(size, "")).await.expect("served").into_inner();
        assert_eq!(page.workflows.len(), 1, "page_size {size}");
    }
    m.check(
        "List filter on a key no label can have",
        c.list(proto::ListRequest {
            label_filter: [("Bad Key".to_string(), "1".to_string())].into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "label_filter: label key 'Bad Key' must be",
    )
    .await;
    m.check(
        "List foreign token",
        c.list(list(1, "zz-not-a-token")).await,
        Code::InvalidArgument,
        "page_token: is not a token this server returned",
    )
    .await;
    m.check(
        "List huge token",
        c.list(list(1, &"ab".repeat(500_000))).await,
        Code::InvalidArgument,
        "page_token: is not a token this server returned",
    )
    .await;

    // Unregister
    m.check(
        "Unregister empty name",
        c.unregister(proto::UnregisterRequest {
            name: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "name: must not be empty",
    )
    .await;
    m.check(
        "Unregister unknown",
        c.unregister(proto::UnregisterRequest {
            name: "nope".into(),
        })
        .await,
        Code::NotFound,
        "workflow 'nope' is not registered",
    )
    .await;
    m.check(
        "Unregister bad name",
        c.unregister(proto::UnregisterRequest {
            name: "../echo".into(),
        })
        .await,
        Code::InvalidArgument,
        "is not a valid name",
    )
    .await;

    // GetExecution
    m.check(
        "GetExecution empty id",
        c.get_execution(get_exec("")).await,
        Code::InvalidArgument,
        "execution_id: must not be empty",
    )
    .await;
    m.check(
        "GetExecution not an id",
        c.get_execution(get_exec("not-a-uuid")).await,
        Code::InvalidArgument,
        "is not an execution id",
    )
    .await;
    m.check(
        "GetExecution unknown",
        c.get_execution(get_exec(SOME_ID)).await,
        Code::NotFound,
        &format!("execution '{SOME_ID}' does not exist"),
    )
    .await;
    // A huge id is refused with a message short enough to travel in a header.
    m.check(
        "GetExecution huge id",
        c.get_execution(get_exec(&"x".repeat(1 << 20))).await,
        Code::InvalidArgument,
        "is not an execution id",
    )
    .await;

    // ListExecutions
    m.check(
        "ListExecutions unknown status",
        c.list_executions(list_exec(|r| r.status = 99)).await,
        Code::InvalidArgument,
        "status: 99 is not an ExecutionStatus",
    )
    .await;
    m.check(
        "ListExecutions negative status",
        c.list_executions(list_exec(|r| r.status = -1)).await,
        Code::InvalidArgument,
        "status: -1 is not an ExecutionStatus",
    )
    .await;
    m.check(
        "ListExecutions foreign token",
        c.list_executions(list_exec(|r| r.page_token = "garbage".into()))
            .await,
        Code::InvalidArgument,
        "page_token",
    )
    .await;
    m.check(
        "ListExecutions negative page",
        c.list_executions(list_exec(|r| r.page_size = -5)).await,
        Code::InvalidArgument,
        "page_size: -5 is negative",
    )
    .await;
    m.check(
        "ListExecutions bad workflow name",
        c.list_executions(list_exec(|r| r.workflow_name = "a b".into()))
            .await,
        Code::InvalidArgument,
        "workflow_name: 'a b' is not a valid name",
    )
    .await;
    m.check(
        "ListExecutions enormous time",
        c.list_executions(list_exec(|r| r.create_time_start = at(i64::MAX, 0)))
            .await,
        Code::InvalidArgument,
        "create_time_start: is not a valid timestamp",
    )
    .await;
    m.check(
        "ListExecutions enormous negative time",
        c.list_executions(list_exec(|r| r.create_time_end = at(i64::MIN, -1)))
            .await,
        Code::InvalidArgument,
        "create_time_end: is not a valid timestamp",
    )
    .await;
    m.check(
        "ListExecutions empty range",
        c.list_executions(list_exec(|r| {
            r.create_time_start = at(2_000_000_000, 0);
            r.create_time_end = at(1_000_000_000, 0);
        }))
        .await,
        Code::InvalidArgument,
        "create_time_end: is before create_time_start",
    )
    .await;

    // WatchExecution
    m.check(
        "Watch unknown",
        c.watch_execution(watch(SOME_ID, 0)).await,
        Code::NotFound,
        "does not exist",
    )
    .await;
    m.check(
        "Watch empty id",
        c.watch_execution(watch("", 0)).await,
        Code::InvalidArgument,
        "execution_id: must not be empty",
    )
    .await;
    m.check(
        "Watch negative sequence",
        c.watch_execution(watch(&id, -3)).await,
        Code::InvalidArgument,
        "after_sequence: -3 is negative",
    )
    .await;
    m.check(
        "Watch past the end",
        c.watch_execution(watch(&id, last + 1)).await,
        Code::InvalidArgument,
        &format!(
            "after_sequence: {} is past the last event of execution {id}, which has ended at {last}",
            last + 1
        ),
    )
    .await;
    m.check(
        "Watch enormous sequence",
        c.watch_execution(watch(&id, i64::MAX)).await,
        Code::InvalidArgument,
        "is past the last event",
    )
    .await;

    // CancelExecution
    m.check(
        "Cancel not an id",
        c.cancel_execution(cancel("x", "")).await,
        Code::InvalidArgument,
        "is not an execution id",
    )
    .await;
    m.check(
        "Cancel unknown",
        c.cancel_execution(cancel(SOME_ID, "")).await,
        Code::NotFound,
        "does not exist",
    )
    .await;
    m.check(
        "Cancel with a huge reason",
        c.cancel_execution(cancel(&id, &"r".repeat(1 << 20))).await,
        Code::InvalidArgument,
        "reason: is 1048576 bytes; the maximum is 1024",
    )
    .await;

    // Shutdown: a bad grace period stops nothing.
    m.check(
        "Shutdown negative grace",
        c.shutdown(grace(-5, 0)).await,
        Code::InvalidArgument,
        "grace_period",
    )
    .await;
    m.check(
        "Shutdown negative nanos",
        c.shutdown(grace(0, -1)).await,
        Code::InvalidArgument,
        "grace_period: 0s -1ns is negative; give a duration of 0 or more",
    )
    .await;
    m.check(
        "Shutdown enormous grace",
        c.shutdown(grace(i64::MAX, 999_999_999)).await,
        Code::InvalidArgument,
        "is over the maximum of 1day",
    )
    .await;
    assert_eq!(m.cases, 36);

    // Still serving after all of that.
    assert_eq!(
        labels(&execute(&mut c, "echo", json!({})).await)
            .last()
            .unwrap(),
        "completed"
    );
}
