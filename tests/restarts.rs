//! What a restart must not change, against the real `wfm` binary killed with SIGKILL: a
//! parent's step finds the child it started instead of starting a second one, a stored
//! workflow version the server cannot restore is neither lost nor its number reused, and a
//! resumed execution keeps its first start and its single Accepted event. Also: children
//! never outlive the step that started them nor a parent that cannot resume, and the depth
//! limit holds whatever the timing.

mod decl_harness;

use std::time::{Duration, Instant};

use decl_harness::*;
use serde_json::json;
use tonic::Code;
use wfm::proto::{self, execution_event::Kind};

async fn executions_of(c: &mut Client, workflow: &str) -> Vec<proto::Execution> {
    c.list_executions(proto::ListExecutionsRequest {
        workflow_name: workflow.into(),
        page_size: 100,
        ..Default::default()
    })
    .await
    .expect("list executions")
    .into_inner()
    .executions
}

async fn get(c: &mut Client, id: &str) -> proto::Execution {
    c.get_execution(proto::GetExecutionRequest {
        execution_id: id.into(),
    })
    .await
    .expect("get execution")
    .into_inner()
    .execution
    .expect("execution")
}

/// Waits until `check` holds for the execution, or panics after 30 s.
async fn wait_for(
    c: &mut Client,
    id: &str,
    check: impl Fn(&proto::Execution) -> bool,
) -> proto::Execution {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let execution = get(c, id).await;
        if check(&execution) {
            return execution;
        }
        assert!(Instant::now() < deadline, "waited 30 s: {execution:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events_of(c: &mut Client, id: &str) -> Vec<proto::ExecutionEvent> {
    let mut stream = c
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.into(),
            after_sequence: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut events = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("ended within 60 s")
        .expect("stream")
    {
        events.push(r.event.expect("event"));
    }
    events
}

/// Kills the server and starts it again with `limits.max_steps_per_workflow = 2`, so no
/// stored definition of 3 steps is restored; returns the config file and what it held.
fn kill_and_restart_with_two_steps_at_most(server: &mut Server) -> (std::path::PathBuf, String) {
    let config = server.dir.path().join("wfm.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[limits]\nmax_steps_per_workflow = 2\n{original}"),
    )
    .unwrap();
    server.kill_and_restart();
    (config, original)
}

fn ended(e: &proto::Execution) -> bool {
    e.status >= proto::ExecutionStatus::Completed as i32
}

#[tokio::test]
async fn a_resumed_parent_follows_the_child_it_started_instead_of_starting_another() {
    let mut server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "kid",
        "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 1500}}}\n",
    )
    .await
    .unwrap();
    register(
        &mut c,
        "mom",
        "steps:\n  - {id: kid, workflow: {name: kid}}\noutput: \"{{ steps.kid.output }}\"\n",
    )
    .await
    .unwrap();
    let parent = start(&mut c, "mom", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while executions_of(&mut c, "kid").await.is_empty() {
        assert!(Instant::now() < deadline, "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_and_restart();
    let mut c = server.client().await;
    let done = wait_for(&mut c, &parent, ended).await;
    assert_eq!(
        done.status,
        proto::ExecutionStatus::Completed as i32,
        "{done:?}"
    );

    let children = executions_of(&mut c, "kid").await;
    assert_eq!(
        children.len(),
        1,
        "one child, resumed, not a second one: {children:#?}"
    );
    assert_eq!(children[0].parent_execution_id, parent);
    assert_eq!(children[0].status, proto::ExecutionStatus::Completed as i32);
    let progress = lines(&events_of(&mut c, &parent).await);
    let follows = format!(
        "progress kid: child execution {} of workflow 'kid' started before the restart; following it",
        children[0].id
    );
    assert!(progress.contains(&follows), "{progress:#?}");
}

#[tokio::test]
async fn children_still_starting_when_a_sibling_item_fails_are_cancelled() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "child",
        "input_schema: {type: object, required: [n], properties: {n: {type: integer}}}\nsteps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 3000}}}\n",
    )
    .await
    .unwrap();
    register(
        &mut c,
        "parent",
        "steps:\n  - {id: kids, for_each: \"{{ input.ns }}\", workflow: {name: child, input: {n: \"{{ item }}\"}}}\n",
    )
    .await
    .unwrap();
    // The last item fails at once, while the others are on their way to start (or not yet:
    // runs repeat until some child had started).
    let mut seen = 0;
    for _ in 0..20 {
        let events = execute(&mut c, "parent", json!({"ns": [1, 2, 3, 4, 5, 6, 7, "x"]}))
            .await
            .unwrap();
        let parent = events[0].execution_id.clone();
        assert!(
            lines(&events).last().unwrap().starts_with("run failed: "),
            "{:#?}",
            lines(&events)
        );
        // Every child that started ends cancelled with the step, well before its 3 s nap.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let children: Vec<_> = executions_of(&mut c, "child")
                .await
                .into_iter()
                .filter(|child| child.parent_execution_id == parent)
                .collect();
            if children.iter().all(ended) {
                for child in &children {
                    assert_eq!(
                        child.status,
                        proto::ExecutionStatus::Cancelled as i32,
                        "{children:#?}"
                    );
                }
                seen += children.len();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "children outlived their failed parent step: {children:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if seen > 0 {
            return;
        }
    }
    panic!("no child started in 20 runs: the test shows nothing");
}

#[tokio::test]
async fn the_depth_limit_holds_when_each_child_starts_its_child_at_once() {
    let server = Server::start("[limits]\nmax_workflow_depth = 2\n");
    let mut c = server.client().await;
    let leaf = "steps:\n  - {id: s, tool: {name: sleep, arguments: {duration_ms: 1}}}\n";
    register(&mut c, "middle", leaf).await.unwrap();
    register(
        &mut c,
        "top",
        "steps:\n  - {id: s, workflow: {name: middle}}\n",
    )
    .await
    .unwrap();
    // Each registration alone is within 2 levels; together, top runs 3 levels deep.
    register(&mut c, "bottom", leaf).await.unwrap();
    register(
        &mut c,
        "middle",
        "steps:\n  - {id: s, workflow: {name: bottom}}\n",
    )
    .await
    .unwrap();
    let events = execute(&mut c, "top", json!({})).await.unwrap();
    let last = lines(&events).last().unwrap().clone();
    assert!(
        last.starts_with("run failed: ")
            && last.contains(
                "child workflow 'bottom' would run 3 levels deep; limits.max_workflow_depth is 2"
            ),
        "{:#?}",
        lines(&events)
    );
    assert!(executions_of(&mut c, "bottom").await.is_empty());
}

#[tokio::test]
async fn a_version_the_server_cannot_restore_is_kept_and_its_number_not_reused() {
    let mut server = Server::start("");
    let mut c = server.client().await;
    let three = "steps:\n  - {id: a, tool: {name: json_transform, arguments: {data: 1, expression: data}}}\n  - {id: b, tool: {name: json_transform, arguments: {data: 2, expression: data}}}\n  - {id: c, tool: {name: json_transform, arguments: {data: 3, expression: data}}}\n";
    register(&mut c, "three", three).await.unwrap();
    register(&mut c, "gone", three).await.unwrap();
    // A lower limit on restart: the stored 3-step definitions no longer validate.
    let (config, original) = kill_and_restart_with_two_steps_at_most(&mut server);
    let mut c = server.client().await;

    let get = |version: i32| proto::GetRequest {
        name: "three".into(),
        version,
    };
    let refused = c.get(get(0)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("workflow 'three' version 1 is stored but this server could not restore it")
            && refused.message().contains("max_steps_per_workflow"),
        "{}",
        refused.message()
    );
    let refused = execute(&mut c, "three", json!({})).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // A new definition under the same name is the next version: version 1 stays as stored.
    let one = "steps:\n  - {id: a, tool: {name: json_transform, arguments: {data: 1, expression: data}}}\n";
    let registered = register(&mut c, "three", one).await.unwrap();
    assert_eq!(registered.version, 2);
    assert_eq!(
        c.get(get(0))
            .await
            .unwrap()
            .into_inner()
            .workflow
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        c.get(get(1)).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // A workflow with no version restored can still be removed.
    let removed = c
        .unregister(proto::UnregisterRequest {
            name: "gone".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.versions_removed, 1);

    std::fs::write(&config, original).unwrap();
    server.kill_and_restart();
    let mut c = server.client().await;
    let got = c.get(get(1)).await.unwrap().into_inner();
    assert_eq!(got.versions, vec![1, 2]);
    let steps = match got.workflow.unwrap().source {
        Some(proto::workflow::Source::Definition(d)) => d.steps.len(),
        other => panic!("not a definition: {other:?}"),
    };
    assert_eq!(steps, 3, "version 1 is the definition first registered");
    let gone = c
        .get(proto::GetRequest {
            name: "gone".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn a_resumed_execution_keeps_its_first_start_and_one_accepted_event() {
    let mut server = Server::start("[limits]\nmax_concurrent_executions = 1\n");
    let mut c = server.client().await;
    register(
        &mut c,
        "naps",
        "steps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 700}}}\n  - {id: b, depends_on: [a], tool: {name: sleep, arguments: {duration_ms: 700}}}\n",
    )
    .await
    .unwrap();
    let first = start(&mut c, "naps", json!({})).await;
    let queued = start(&mut c, "naps", json!({})).await;
    let before = wait_for(&mut c, &first, |e| e.last_sequence >= 5).await;
    let started = before.start_time.expect("started");
    assert_eq!(
        get(&mut c, &queued).await.status,
        proto::ExecutionStatus::Queued as i32
    );
    server.kill_and_restart();
    let mut c = server.client().await;
    let after = wait_for(&mut c, &first, ended).await;
    assert_eq!(after.start_time, Some(started), "the first start is kept");
    let took = after.result.expect("result").execution_time.expect("time");
    let end = after.end_time.expect("ended");
    let since_start =
        (end.seconds - started.seconds) as f64 + f64::from(end.nanos - started.nanos) / 1e9;
    let took = took.seconds as f64 + f64::from(took.nanos) / 1e9;
    assert!(
        (took - since_start).abs() < 0.05,
        "execution_time {took} s counts from the first start: {since_start} s"
    );

    wait_for(&mut c, &queued, ended).await;
    let accepted = events_of(&mut c, &queued)
        .await
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::Accepted(_))))
        .count();
    assert_eq!(
        accepted, 1,
        "a queued execution resumed is not accepted twice"
    );
}

#[tokio::test]
async fn a_resumed_child_is_cancelled_when_its_parent_cannot_resume() {
    let mut server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "kid",
        "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 20000}}}\n",
    )
    .await
    .unwrap();
    // Three steps: a restart with max_steps_per_workflow = 2 cannot restore it.
    register(
        &mut c,
        "mom",
        "steps:\n  - {id: kid, workflow: {name: kid}}\n  - {id: b, depends_on: [kid], tool: {name: json_transform, arguments: {data: 1, expression: data}}}\n  - {id: c, depends_on: [b], tool: {name: json_transform, arguments: {data: 2, expression: data}}}\n",
    )
    .await
    .unwrap();
    let parent = start(&mut c, "mom", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let child = loop {
        if let Some(child) = executions_of(&mut c, "kid").await.pop() {
            break child.id;
        }
        assert!(Instant::now() < deadline, "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    kill_and_restart_with_two_steps_at_most(&mut server);
    let mut c = server.client().await;

    let mom = wait_for(&mut c, &parent, ended).await;
    assert_eq!(mom.status, proto::ExecutionStatus::Failed as i32, "{mom:?}");
    // The child does not sleep its 20 s for a parent that is gone.
    let began = Instant::now();
    let kid = wait_for(&mut c, &child, ended).await;
    assert_eq!(
        kid.status,
        proto::ExecutionStatus::Cancelled as i32,
        "after {:?}: {kid:?}",
        began.elapsed()
    );
    let error = kid.result.as_ref().map(|r| r.error.as_str()).unwrap_or("");
    assert!(error.contains("its parent execution ended"), "{kid:?}");
}

/// A parent that reaches its child step during a shutdown's grace period starts the child:
/// it is part of work accepted before the shutdown. Within the grace period both finish;
/// past it, with `resume_unfinished`, both are left for the next server, which ends them.
#[tokio::test]
async fn a_parent_reaching_its_child_step_during_a_shutdown_starts_it() {
    for (grace_secs, resume) in [(30, false), (1, true)] {
        let mut server = Server::start("");
        let mut c = server.client().await;
        register(
            &mut c,
            "kid",
            "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 1500}}}\n",
        )
        .await
        .unwrap();
        register(
            &mut c,
            "mom",
            r#"
steps:
  - {id: pre, tool: {name: sleep, arguments: {duration_ms: 300}}}
  - {id: kid, depends_on: [pre], workflow: {name: kid}}
output: "{{ steps.kid.output }}"
"#,
        )
        .await
        .unwrap();
        let parent = start(&mut c, "mom", json!({})).await;
        let report = c
            .shutdown(proto::ShutdownRequest {
                grace_period: Some(prost_types::Duration {
                    seconds: grace_secs,
                    nanos: 0,
                }),
                resume_unfinished: Some(resume),
            })
            .await
            .unwrap()
            .into_inner();
        let case = format!("grace {grace_secs}s, resume {resume}: {report:?}");
        if resume {
            assert_eq!(report.left_to_resume, 2, "{case}");
        } else {
            assert_eq!(
                (
                    report.finished_during_grace,
                    report.cancelled,
                    report.left_to_resume
                ),
                (2, 0, 0),
                "{case}"
            );
        }
        server.kill_and_restart();
        let mut c = server.client().await;
        let done = wait_for(&mut c, &parent, ended).await;
        assert_eq!(
            done.status,
            proto::ExecutionStatus::Completed as i32,
            "{case}: {done:?}"
        );
        let children = executions_of(&mut c, "kid").await;
        assert_eq!(children.len(), 1, "{case}: {children:#?}");
        assert_eq!(
            children[0].status,
            proto::ExecutionStatus::Completed as i32,
            "{case}"
        );
    }
}

/// A step retrying when the server is killed goes on from the attempts its history
/// records, after what is left of its backoff: the retry policy's attempts hold in all,
/// and the step's result counts the attempts that ran.
#[tokio::test]
async fn a_retrying_step_keeps_its_attempts_across_a_restart() {
    let mut server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "flaky",
        r#"
steps:
  - id: call
    tool: {name: http_request, arguments: {url: "http://127.0.0.1:1/", method: GET}}
    retry: {maximum_attempts: 4, initial_interval: 1500ms, backoff_coefficient: 1}
"#,
    )
    .await
    .unwrap();
    let id = start(&mut c, "flaky", json!({})).await;
    let second_failed = |e: &proto::Execution| {
        ended(e)
            || e.result.as_ref().is_some_and(|r| {
                r.steps
                    .iter()
                    .any(|s| s.step_id == "call" && s.attempts == 2 && !s.error.is_empty())
            })
    };
    // Attempt 2 recorded as failed: the step waits to retry.
    let waiting = wait_for(&mut c, &id, second_failed).await;
    assert!(!ended(&waiting), "{waiting:?}");
    server.kill_and_restart();
    let mut c = server.client().await;
    let done = wait_for(&mut c, &id, ended).await;
    let events = events_of(&mut c, &id).await;
    let step_lines = step_lines(&events, "call");
    let attempts: Vec<i32> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::StepStarted(s)) => Some(s.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4], "{step_lines:#?}");
    let result = done.result.expect("result");
    assert_eq!(result.steps[0].attempts, 4, "{step_lines:#?}");
    // The third attempt waited out its backoff from the second's failure, restart or not.
    let time_of = |wanted: &str| {
        let e = events
            .iter()
            .find(|e| {
                lines(std::slice::from_ref(e))
                    .first()
                    .is_some_and(|l| l.starts_with(wanted))
            })
            .unwrap_or_else(|| panic!("no '{wanted}': {step_lines:#?}"));
        let t = e.time.as_ref().unwrap();
        Duration::new(t.seconds as u64, t.nanos as u32)
    };
    let gap = time_of("started call 3") - time_of("failed call 2");
    assert!(gap >= Duration::from_millis(1400), "{gap:?}");
}

/// An execution whose version the restarted server could not restore fails with that
/// reason (not "no longer registered"), keeping the steps it completed and its time since
/// its first start.
#[tokio::test]
async fn an_execution_of_a_version_not_restored_fails_with_the_reason_and_keeps_its_steps() {
    let mut server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "three",
        r#"
steps:
  - {id: a, tool: {name: json_transform, arguments: {data: 1, expression: data}}}
  - {id: b, depends_on: [a], tool: {name: sleep, arguments: {duration_ms: 60000}}}
  - {id: c, depends_on: [b], tool: {name: json_transform, arguments: {data: 3, expression: data}}}
"#,
    )
    .await
    .unwrap();
    let id = start(&mut c, "three", json!({})).await;
    wait_for(&mut c, &id, |e| {
        e.result
            .as_ref()
            .is_some_and(|r| r.steps.iter().any(|s| s.step_id == "b"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill_and_restart_with_two_steps_at_most(&mut server);
    let mut c = server.client().await;
    let done = wait_for(&mut c, &id, ended).await;
    let result = done.result.expect("result");
    assert_eq!(done.status, proto::ExecutionStatus::Failed as i32);
    assert!(
        result.error.starts_with(
            "workflow 'three' version 1 is stored but this server could not restore it when it started:"
        ) && result.error.contains("max_steps_per_workflow")
            && result.error.ends_with("; the execution cannot resume"),
        "{}",
        result.error
    );
    let completed: Vec<&str> = result
        .steps
        .iter()
        .filter(|s| s.status == proto::StepStatus::Completed as i32)
        .map(|s| s.step_id.as_str())
        .collect();
    assert_eq!(completed, ["a"], "{result:#?}");
    let took = result.execution_time.expect("execution time");
    assert!(
        took.seconds > 0 || took.nanos >= 300_000_000,
        "counted from its first start: {took:?}"
    );
}
