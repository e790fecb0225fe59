//! Declarative workflows end to end against the real `wfm` binary, with built-in tools
//! only: fan-out with for_each, joins, conditions, retries, timeouts, composition,
//! cancellation reaching a child, input schemas, and bad definitions refused.

mod decl_harness;

use std::time::Duration;

use decl_harness::*;
use serde_json::json;
use tonic::Code;
use wfm::api::convert::value_to_json_lossy;
use wfm::proto;

#[tokio::test]
async fn fans_out_joins_and_skips() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "fan",
        r#"
input_schema:
  type: object
  required: [items]
  properties:
    items: {type: array, items: {type: integer}}
steps:
  - id: double
    for_each: "{{ input.items }}"
    max_parallel: 2
    tool:
      name: json_transform
      arguments: {data: "{{ item }}", expression: "data * 2"}
  - id: total
    depends_on: [double]
    tool:
      name: json_transform
      arguments: {data: "{{ steps.double.output }}", expression: "data | sum"}
  - id: big
    depends_on: [total]
    when: "steps.total.output > 1000"
    tool: {name: sleep, arguments: {duration_ms: 1}}
  - id: after_big
    depends_on: [big]
    tool: {name: sleep, arguments: {duration_ms: 1}}
output:
  doubled: "{{ steps.double.output }}"
  total: "{{ steps.total.output }}"
  count: "{{ steps.double.output | length }}"
  summary: "total={{ steps.total.output }}"
  big: "{{ steps.big.status }}"
"#,
    )
    .await
    .expect("registers");
    let events = execute(&mut c, "fan", json!({"items": [1, 2, 3, 4]}))
        .await
        .expect("runs");
    assert_eq!(
        output(&events),
        json!({"doubled": [2, 4, 6, 8], "total": 20, "count": 4, "summary": "total=20", "big": "skipped"}),
        "{:#?}",
        lines(&events)
    );
    let double = step_lines(&events, "double");
    assert_eq!(double.first().map(String::as_str), Some("started double 1"));
    assert_eq!(double.last().map(String::as_str), Some("completed double"));
    assert_eq!(
        double
            .iter()
            .filter(|l| l.starts_with("progress double: item "))
            .count(),
        4,
        "{double:#?}"
    );
    assert!(double.iter().any(|l| l.ends_with("(4/4)")), "{double:#?}");
    assert_eq!(
        step_lines(&events, "total"),
        ["started total 1", "completed total"]
    );
    assert_eq!(
        step_lines(&events, "big"),
        ["skipped big: when 'steps.total.output > 1000' is false"]
    );
    assert_eq!(
        step_lines(&events, "after_big"),
        ["skipped after_big: every step it depends on was skipped"]
    );
    // The join starts only after the fan-out completed.
    let all = lines(&events);
    let pos = |l: &str| all.iter().position(|x| x == l).unwrap();
    assert!(pos("completed double") < pos("started total 1"));
    let r = result(&events);
    assert!(r.success);
    assert_eq!(
        (r.steps_completed, r.steps_skipped, r.steps_failed),
        (2, 2, 0)
    );

    // Get returns the definition as registered; registering it again changes nothing.
    let got = c
        .get(proto::GetRequest {
            name: "fan".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .workflow
        .unwrap();
    let Some(proto::workflow::Source::Definition(d)) = got.source.clone() else {
        panic!("no definition: {got:?}");
    };
    let ids: Vec<&str> = d.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["double", "total", "big", "after_big"]);
    assert_eq!(d.steps[0].max_parallel, 2);
    let again = register_proto(&mut c, "fan", d).await.unwrap();
    assert_eq!(again.version, 1);
}

#[tokio::test]
async fn independent_steps_run_in_parallel() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "par",
        r#"
steps:
  - {id: a, tool: {name: sleep, arguments: {duration_ms: 600}}}
  - {id: b, tool: {name: sleep, arguments: {duration_ms: 600}}}
  - {id: c, tool: {name: sleep, arguments: {duration_ms: 600}}}
"#,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let events = execute(&mut c, "par", json!({})).await.unwrap();
    assert!(result(&events).success);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        output(&events),
        json!({"a": {"slept_ms": 600}, "b": {"slept_ms": 600}, "c": {"slept_ms": 600}})
    );
}

#[tokio::test]
async fn retries_a_flaky_step_with_backoff() {
    let (url, requests) = flaky_http(2).await;
    let server = Server::start("");
    let mut c = server.client().await;
    let yaml = format!(
        r#"
steps:
  - id: fetch
    tool: {{name: http_request, arguments: {{url: "{url}"}}}}
    retry: {{maximum_attempts: 4, initial_interval: 50ms, backoff_coefficient: 2}}
"#
    );
    register(&mut c, "flaky", &yaml).await.unwrap();
    let events = execute(&mut c, "flaky", json!({})).await.unwrap();
    let fetch = step_lines(&events, "fetch");
    assert_eq!(fetch.len(), 6, "{fetch:#?}");
    assert_eq!(fetch[0], "started fetch 1");
    assert!(
        fetch[1].starts_with("failed fetch 1 retry: ToolFailed:"),
        "{}",
        fetch[1]
    );
    assert_eq!(fetch[2], "started fetch 2");
    assert!(
        fetch[3].starts_with("failed fetch 2 retry: "),
        "{}",
        fetch[3]
    );
    assert_eq!(fetch[4], "started fetch 3");
    assert_eq!(fetch[5], "completed fetch");
    let r = result(&events);
    assert_eq!(step_result(&r, "fetch").attempts, 3);
    assert_eq!(
        output(&events)["fetch"]["body"],
        json!({"ok": true, "request": 3})
    );
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// `http_request` speaks HTTPS, trusting the system's roots plus the CA an operator names
/// in `SSL_CERT_FILE`; an untrusted certificate fails the step with the reason.
#[tokio::test]
async fn http_request_speaks_https_with_the_trusted_roots() {
    let (url, _) = flaky_http(0).await;
    let plain = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (front, tls) = https_front(plain);
    let yaml = format!(
        "steps:\n  - id: fetch\n    tool: {{name: http_request, arguments: {{url: \"https://{front}/\"}}}}\n"
    );

    let trusting = Server::start_with_env("", &[("SSL_CERT_FILE", tls.ca())]);
    let mut c = trusting.client().await;
    register(&mut c, "secure", &yaml).await.unwrap();
    let events = execute(&mut c, "secure", json!({})).await.unwrap();
    assert_eq!(
        output(&events)["fetch"]["status"],
        json!(200),
        "{:#?}",
        lines(&events)
    );
    assert_eq!(output(&events)["fetch"]["body"]["ok"], json!(true));

    let untrusting = Server::start("");
    let mut c = untrusting.client().await;
    register(&mut c, "secure", &yaml).await.unwrap();
    let events = execute(&mut c, "secure", json!({})).await.unwrap();
    assert!(!result(&events).success);
    let fetch = step_lines(&events, "fetch");
    assert!(
        fetch.iter().any(|l| l.contains(&format!(
            "https://{front}/: error sending request: invalid peer certificate: UnknownIssuer"
        ))),
        "{fetch:#?}"
    );
}

#[tokio::test]
async fn non_retryable_errors_are_not_retried() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "nr",
        r#"
steps:
  - id: bad
    tool: {name: http_request, arguments: {url: "http://127.0.0.1:1/", method: "NOT A METHOD"}}
    retry: {maximum_attempts: 5, initial_interval: 10ms, non_retryable_error_types: [InvalidArguments]}
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "nr", json!({})).await.unwrap();
    let bad = step_lines(&events, "bad");
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(
        bad[1].starts_with("failed bad 1: InvalidArguments"),
        "{}",
        bad[1]
    );
    assert!(
        lines(&events)
            .last()
            .unwrap()
            .starts_with("run failed: step 'bad' failed")
    );
}

/// A step cut short because a step beside it failed is cancelled, not failed, and says why.
#[tokio::test]
async fn a_failing_step_cancels_the_steps_beside_it() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "fail-fast",
        r#"
steps:
  - {id: slow, tool: {name: sleep, arguments: {duration_ms: 60000}}}
  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 50}}}
  - id: bad
    depends_on: [nap]
    tool: {name: http_request, arguments: {url: "http://127.0.0.1:1/", method: "NOT A METHOD"}}
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "fail-fast", json!({})).await.unwrap();
    assert_eq!(
        step_lines(&events, "slow"),
        [
            "started slow 1",
            "cancelled slow 1: another step failed and ended the run while this one ran"
        ]
    );
    let r = result(&events);
    assert_eq!(
        proto::StepStatus::try_from(step_result(&r, "slow").status),
        Ok(proto::StepStatus::Cancelled)
    );
    assert_eq!((r.steps_completed, r.steps_failed), (1, 1));
    assert!(
        lines(&events)
            .last()
            .unwrap()
            .starts_with("run failed: step 'bad' failed")
    );
}

#[tokio::test]
async fn times_out_a_slow_step() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "slow",
        r#"
steps:
  - id: slow
    tool: {name: sleep, arguments: {duration_ms: 30000}}
    timeout: 200ms
    continue_on_error: true
  - id: next
    depends_on: [slow]
    tool:
      name: json_transform
      arguments: {data: "{{ steps.slow.status }}", expression: "data"}
"#,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let events = execute(&mut c, "slow", json!({})).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let slow = step_lines(&events, "slow");
    assert_eq!(slow[0], "started slow 1");
    assert!(
        slow[1].starts_with(
            "failed slow 1: Timeout: the attempt took longer than its timeout of 200ms"
        ),
        "{}",
        slow[1]
    );
    let r = result(&events);
    assert!(r.success, "continue_on_error keeps the run going");
    assert_eq!(output(&events), json!({"next": "failed"}));
    assert_eq!(
        step_result(&r, "slow").status,
        proto::StepStatus::Failed as i32
    );

    // Without continue_on_error the run fails and names the step.
    register(
        &mut c,
        "slow2",
        "steps:\n  - {id: slow, timeout: 100ms, tool: {name: sleep, arguments: {duration_ms: 30000}}}\n  - {id: after, depends_on: [slow], tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .unwrap();
    let events = execute(&mut c, "slow2", json!({})).await.unwrap();
    let last = lines(&events).pop().unwrap();
    assert!(
        last.starts_with("run failed: step 'slow' failed: Timeout"),
        "{last}"
    );
    assert!(step_lines(&events, "after").is_empty());
}

#[tokio::test]
async fn composes_a_child_workflow() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "child",
        r#"
input_schema: {type: object, required: [n], properties: {n: {type: integer}}}
steps:
  - id: square
    tool: {name: json_transform, arguments: {data: "{{ input.n }}", expression: "data * data"}}
output: {squared: "{{ steps.square.output }}"}
"#,
    )
    .await
    .unwrap();
    register(
        &mut c,
        "parent",
        r#"
steps:
  - id: each
    for_each: "{{ input.ns }}"
    workflow: {name: child, input: {n: "{{ item }}"}}
  - id: one
    workflow: {name: child, input: {n: 7}}
output: {all: "{{ steps.each.output | map(attribute='squared') | list }}", one: "{{ steps.one.output.squared }}"}
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "parent", json!({"ns": [2, 3]}))
        .await
        .unwrap();
    assert_eq!(
        output(&events),
        json!({"all": [4, 9], "one": 49}),
        "{:#?}",
        lines(&events)
    );
    let one = step_lines(&events, "one");
    assert_eq!(one[0], "started one 1");
    assert!(
        one[1].starts_with("progress one: child execution "),
        "{one:#?}"
    );
    assert!(
        one.iter().any(|l| l.contains("step square completed")),
        "{one:#?}"
    );
    assert!(one.iter().any(|l| l.ends_with(": completed")), "{one:#?}");
    assert_eq!(one.last().unwrap(), "completed one");

    // The children are executions of their own, linked to the parent.
    let parent_id = events[0].execution_id.clone();
    let children = c
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "child".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .executions;
    assert_eq!(children.len(), 3);
    assert!(children.iter().all(|e| e.parent_execution_id == parent_id));

    // A child's input failing its schema fails the step with the violation.
    let events = execute(&mut c, "parent", json!({"ns": ["x"]}))
        .await
        .unwrap();
    let last = lines(&events).pop().unwrap();
    assert!(last.starts_with("run failed: step 'each' failed: ChildWorkflowFailed: item 0: child workflow 'child' could not start: input:"), "{last}");
}

/// A cancelled run's result says what happened to each step: the one that was running
/// is CANCELLED (not FAILED: nothing failed), the ones after it are PENDING.
#[tokio::test]
async fn a_cancelled_run_reports_its_steps_cancelled_and_pending() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "chain",
        r#"
steps:
  - {id: a, tool: {name: sleep, arguments: {duration_ms: 10}}}
  - {id: b, depends_on: [a], tool: {name: sleep, arguments: {duration_ms: 60000}}}
  - {id: c, depends_on: [b], tool: {name: sleep, arguments: {duration_ms: 10}}}
"#,
    )
    .await
    .unwrap();
    let mut stream = c
        .execute(proto::ExecuteRequest {
            name: "chain".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        let event = r.event.unwrap();
        let b_started = lines(std::slice::from_ref(&event)) == ["started b 1"];
        let id = event.execution_id.clone();
        events.push(event);
        if b_started {
            c.cancel_execution(proto::CancelExecutionRequest {
                execution_id: id,
                reason: "enough".into(),
            })
            .await
            .unwrap();
        }
    }
    let r = result(&events);
    let status = |step| proto::StepStatus::try_from(step_result(&r, step).status).unwrap();
    assert_eq!(
        [status("a"), status("b"), status("c")],
        [
            proto::StepStatus::Completed,
            proto::StepStatus::Cancelled,
            proto::StepStatus::Pending
        ],
        "{:#?}",
        lines(&events)
    );
    assert_eq!((r.steps_completed, r.steps_failed), (1, 0));
    assert_eq!(
        step_lines(&events, "b"),
        [
            "started b 1",
            "cancelled b 1: the execution was cancelled while the step ran"
        ],
        "the stream says the step was cut short, not that it failed"
    );
}

/// A workflow another one runs cannot be unregistered from under it: at the next start
/// the caller could not be restored. Once the caller is gone, it can.
#[tokio::test]
async fn a_workflow_another_runs_is_not_unregistered_from_under_it() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "leaf",
        "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .unwrap();
    register(
        &mut c,
        "caller",
        "steps:\n  - {id: run, workflow: {name: leaf}}\n",
    )
    .await
    .unwrap();
    let unregister = |name: &str| proto::UnregisterRequest { name: name.into() };
    let refused = c.unregister(unregister("leaf")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains(
            "workflow 'caller' version 1 (step 'run') runs workflow 'leaf': unregister it first"
        ),
        "{}",
        refused.message()
    );
    let events = execute(&mut c, "caller", json!({})).await.unwrap();
    assert!(result(&events).success, "leaf is still there");

    c.unregister(unregister("caller")).await.unwrap();
    assert_eq!(
        c.unregister(unregister("leaf"))
            .await
            .unwrap()
            .into_inner()
            .versions_removed,
        1
    );
}

#[tokio::test]
async fn cancelling_the_parent_cancels_the_child() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "sleepy",
        "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 60000}}}\n",
    )
    .await
    .unwrap();
    register(
        &mut c,
        "outer",
        "steps:\n  - {id: run, workflow: {name: sleepy}}\n",
    )
    .await
    .unwrap();
    let parent = c
        .start_execution(proto::StartExecutionRequest {
            name: "outer".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    let child = wait_for_running_child(&mut c, "sleepy").await;
    assert_eq!(child.parent_execution_id, parent);
    let status = c
        .cancel_execution(proto::CancelExecutionRequest {
            execution_id: parent.clone(),
            reason: "test".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, proto::ExecutionStatus::Cancelled as i32);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = c
            .get_execution(proto::GetExecutionRequest {
                execution_id: child.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .execution
            .unwrap();
        if e.status == proto::ExecutionStatus::Cancelled as i32 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child still {:?}",
            e.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_running_child(c: &mut Client, name: &str) -> proto::Execution {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = c
            .list_executions(proto::ListExecutionsRequest {
                workflow_name: name.into(),
                status: proto::ExecutionStatus::Running as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .executions;
        if let Some(e) = list.into_iter().next() {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "no running {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn input_failing_the_schema_lists_every_violation() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "typed",
        r#"
input_schema:
  type: object
  required: [dataset_id, limit]
  properties:
    dataset_id: {type: string}
    limit: {type: integer, minimum: 1}
    tags: {type: array, items: {type: string}}
steps:
  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}
"#,
    )
    .await
    .unwrap();
    let err = execute(&mut c, "typed", json!({"limit": 0, "tags": ["x", 3]}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let m = err.message();
    assert!(m.contains("3 violation(s)"), "{m}");
    assert!(m.contains("dataset_id"), "{m}");
    assert!(m.contains("/limit"), "{m}");
    assert!(m.contains("/tags/1"), "{m}");
    // A valid input runs.
    let events = execute(&mut c, "typed", json!({"dataset_id": "d", "limit": 2}))
        .await
        .unwrap();
    assert!(result(&events).success);
}

/// `{{-` / `-}}` only trim the text around a tag: a whole value keeps its JSON type.
#[tokio::test]
async fn a_whole_value_with_whitespace_control_keeps_its_type() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "trim",
        r#"
steps:
  - id: a
    tool: {name: json_transform, arguments: {data: {f: [1, 2]}, expression: data}}
  - id: b
    depends_on: [a]
    when: "{{- steps.a.output.f | length > 1 -}}"
    tool: {name: json_transform, arguments: {data: "{{- steps.a.output.f -}}", expression: "data | length"}}
output: {f: "{{- steps.a.output.f -}}", n: "{{ steps.b.output }}"}
"#,
    )
    .await
    .expect("registers");
    let events = execute(&mut c, "trim", json!({})).await.unwrap();
    assert_eq!(
        output(&events),
        json!({"f": [1, 2], "n": 2}),
        "{:#?}",
        lines(&events)
    );
}

#[tokio::test]
async fn for_each_over_a_non_list_fails_the_step_at_run_time() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "fe",
        "steps:\n  - {id: each, for_each: input.items, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .unwrap();
    let events = execute(&mut c, "fe", json!({"items": "abc"}))
        .await
        .unwrap();
    let each = step_lines(&events, "each");
    assert!(
        each[1].starts_with("failed each 1: ForEachNotList: for_each 'input.items' gave a string"),
        "{each:#?}"
    );
}

/// A for_each item that fails for good reports the attempts it used, as a plain step does.
#[tokio::test]
async fn a_for_each_item_failing_for_good_reports_its_attempts() {
    let (url, requests) = flaky_http(100).await;
    let server = Server::start("");
    let mut c = server.client().await;
    let yaml = format!(
        r#"
steps:
  - id: each
    for_each: "{{{{ input.items }}}}"
    tool: {{name: http_request, arguments: {{url: "{url}"}}}}
    retry: {{maximum_attempts: 3, initial_interval: 10ms}}
"#
    );
    register(&mut c, "fe-retry", &yaml).await.unwrap();
    let events = execute(&mut c, "fe-retry", json!({"items": [1]}))
        .await
        .unwrap();
    let each = step_lines(&events, "each");
    assert_eq!(each.len(), 4, "{each:#?}");
    assert!(
        each[1].starts_with("progress each: item 0: attempt 1 failed"),
        "{each:#?}"
    );
    assert!(
        each[2].starts_with("progress each: item 0: attempt 2 failed"),
        "{each:#?}"
    );
    assert!(
        each[3].starts_with("failed each 3: ToolFailed: item 0: "),
        "{each:#?}"
    );
    assert_eq!(step_result(&result(&events), "each").attempts, 3);
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
}

// ---- bad definitions: each refused with the right code, naming the step and problem ----

async fn refused(yaml: &str) -> tonic::Status {
    let server = Server::start("");
    let mut c = server.client().await;
    register(&mut c, "bad", yaml).await.expect_err("refused")
}

#[tokio::test]
async fn refuses_cycles() {
    let s = refused(
        "steps:\n  - {id: a, depends_on: [c], tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: b, depends_on: [a], tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: c, depends_on: [b], tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("depends_on forms a cycle: "),
        "{}",
        s.message()
    );
    assert!(
        s.message().contains("a → b → c → a")
            || s.message().contains("c → a → b → c")
            || s.message().contains("b → c → a → b"),
        "{}",
        s.message()
    );
}

#[tokio::test]
async fn refuses_unknown_dependencies_and_duplicates_all_at_once() {
    let s = refused(
        "steps:\n  - {id: a, depends_on: [nope], tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: b, tool: {name: no_such_tool}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("step 'a': depends_on 'nope' is not a step of this workflow"),
        "{m}"
    );
    assert!(m.contains("step 'a': duplicate step id"), "{m}");
    assert!(m.contains("step 'b': unknown tool 'no_such_tool'"), "{m}");
}

#[tokio::test]
async fn refuses_unknown_tools_as_a_failed_precondition() {
    let s = refused("steps:\n  - {id: fetch, tool: {name: warehouse.query}}\n").await;
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(
        s.message()
            .contains("step 'fetch': unknown tool 'warehouse.query'"),
        "{}",
        s.message()
    );
}

#[tokio::test]
async fn refuses_bad_templates() {
    let s = refused(
        "steps:\n  - {id: t, tool: {name: sleep, arguments: {duration_ms: \"{{ input.ms + }}\"}}}\n  - {id: w, when: \"input.(\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("step 't': tool.arguments: template does not parse"),
        "{m}"
    );
    assert!(m.contains("step 'w': when does not parse"), "{m}");
}

/// Text around `{{ }}` renders to a string: as a condition it was always true.
#[tokio::test]
async fn refuses_a_when_or_for_each_with_text_around_its_braces() {
    let s = refused(
        "steps:\n  - {id: gate, when: \"{{ input.count }} > 3\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: each, for_each: \"[{{ input.items }}]\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("step 'gate': when '{{ input.count }} > 3' has text around its {{ }}"),
        "{m}"
    );
    assert!(
        m.contains(r#"write the whole condition inside one {{ }}, like "{{ input.count > 3 }}", or as a bare expression"#),
        "{m}"
    );
    assert!(
        m.contains("step 'each': for_each '[{{ input.items }}]' has text around its {{ }}"),
        "{m}"
    );
    assert!(
        m.contains(r#"write the whole list expression inside one {{ }}, like "{{ input.items }}""#),
        "{m}"
    );
}

/// A definition stored before registration refused such a `when` still loads at start,
/// and its step fails rather than running on a condition that is always true.
#[tokio::test]
async fn a_stored_when_with_text_around_its_braces_loads_and_fails_its_step() {
    let mut server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "old",
        "steps:\n  - {id: gate, when: \"{{ input.count > 3 }}\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .unwrap();
    server.kill_edit_and_restart(|data| {
        let db = rusqlite::Connection::open(data.join("wfm.db")).unwrap();
        let changed = db
            .execute(
                "UPDATE workflows SET record = replace(record, '{{ input.count > 3 }}', '{{ input.count }} > 3')",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
    });
    let mut c = server.client().await;
    let events = execute(&mut c, "old", json!({"count": 1})).await.unwrap();
    let gate = step_lines(&events, "gate");
    assert_eq!(gate.len(), 1, "{gate:#?}");
    assert!(
        gate[0].starts_with("failed gate 0: when: TemplateError: expression '{{ input.count }} > 3': text around {{ }} renders to a string"),
        "{gate:#?}"
    );
    assert!(!result(&events).success);
}

/// A for_each step's `when` and `for_each` are evaluated once, before any item exists, and
/// the output after every step: `item` and `index` would always fail there.
#[tokio::test]
async fn refuses_item_and_index_where_there_is_no_item() {
    let s = refused(
        "steps:\n  - {id: each, for_each: \"{{ input.lists[index] }}\", when: \"item.go\", tool: {name: json_transform, arguments: {data: \"{{ item }}\", expression: data}}}\noutput: {first: \"{{ item }}\"}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("step 'each': when is evaluated once for the step, before its items; item is not defined there"),
        "{m}"
    );
    assert!(
        m.contains("step 'each': for_each is evaluated once for the step, to give its items; index is not defined there"),
        "{m}"
    );
    assert!(
        m.contains(
            "output: reads item, which is defined only in the action of a step with for_each"
        ),
        "{m}"
    );
    assert!(m.contains("3 problems"), "{m}");
}

#[tokio::test]
async fn refuses_templates_reading_steps_they_do_not_depend_on() {
    let s = refused(
        "steps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: b, tool: {name: json_transform, arguments: {data: \"{{ steps.a.output }}\", expression: data}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("step 'b': reads steps.a but does not depend on it"),
        "{}",
        s.message()
    );
}

/// `steps['a']` is not tracked as a read of step a, so it would race with a.
#[tokio::test]
async fn refuses_reading_steps_by_subscript() {
    let s = refused(
        "steps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: b, tool: {name: json_transform, arguments: {data: \"{{ steps['a'].output }}\", expression: data}}}\n  - {id: c, depends_on: [a], when: \"steps[input.which]\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    for step in ["b", "c"] {
        assert!(
            m.contains(&format!("step '{step}': reads steps by subscript or as a whole (like steps['a'] or steps[name]), so which steps it needs cannot be checked: write steps.<id>")),
            "{m}"
        );
    }
    // Dotted reads, and a subscript below steps.<id>, are checked as before.
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "dotted",
        "steps:\n  - {id: a, tool: {name: json_transform, arguments: {data: {f: 1}, expression: data}}}\n  - {id: b, depends_on: [a], tool: {name: json_transform, arguments: {data: \"{{ steps.a['output']['f'] }}\", expression: data}}}\noutput: \"{{ steps['b'].output }}\"\n",
    )
    .await
    .expect("registers");
    let events = execute(&mut c, "dotted", json!({})).await.unwrap();
    assert_eq!(output(&events), json!(1), "{:#?}", lines(&events));
}

#[tokio::test]
async fn refuses_a_bad_schema() {
    let s =
        refused("input_schema: {type: objekt}\nsteps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n").await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("input_schema: is not a valid JSON Schema"),
        "{}",
        s.message()
    );
}

/// Inputs are JSON objects: a schema refusing every object would refuse every execution.
#[tokio::test]
async fn refuses_an_input_schema_no_input_can_satisfy() {
    for (schema, declared) in [
        ("{type: array}", r#"declares type "array""#),
        ("{type: string}", r#"declares type "string""#),
        (
            "{type: [array, 'null']}",
            r#"declares type ["array","null"]"#,
        ),
    ] {
        let s = refused(&format!(
            "input_schema: {schema}\nsteps:\n  - {{id: a, tool: {{name: sleep}}}}\n"
        ))
        .await;
        assert_eq!(s.code(), Code::InvalidArgument, "{schema}");
        assert!(
            s.message().contains(&format!(
                "input_schema: must accept an object (inputs are JSON objects); it {declared}"
            )),
            "{}",
            s.message()
        );
    }
    // What may accept an object is left alone.
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "maybe",
        "input_schema: {type: [object, array]}\nsteps:\n  - {id: a, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .expect("registers");
}

#[tokio::test]
async fn refuses_for_each_over_a_non_list() {
    let s = refused(
        "input_schema: {type: object, properties: {name: {type: string}}}\nsteps:\n  - {id: each, for_each: input.name, tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: konst, for_each: \"{{ 42 }}\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: trimmed, for_each: \"{{- input.name -}}\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(m.contains("step 'each': for_each 'input.name' is not a list: input_schema declares it as \"string\""), "{m}");
    assert!(
        m.contains("step 'konst': for_each '{{ 42 }}' gives 42, not a list"),
        "{m}"
    );
    assert!(
        m.contains("step 'trimmed': for_each '{{- input.name -}}' is not a list"),
        "{m}"
    );
}

#[tokio::test]
async fn refuses_a_missing_child_workflow() {
    let s = refused("steps:\n  - {id: sub, workflow: {name: ghost}}\n").await;
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(
        s.message()
            .contains("step 'sub': child workflow 'ghost' is not registered"),
        "{}",
        s.message()
    );
}

#[tokio::test]
async fn refuses_composition_cycles() {
    let server = Server::start("");
    let mut c = server.client().await;
    // A workflow running itself.
    let s = register(
        &mut c,
        "selfish",
        "steps:\n  - {id: again, workflow: {name: selfish}}\n",
    )
    .await
    .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("step 'again': runs a workflow that runs this one again: selfish → selfish"),
        "{}",
        s.message()
    );
    // b → a, then a new version of b running a: b → a → b.
    register(
        &mut c,
        "b",
        "steps:\n  - {id: x, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .unwrap();
    register(
        &mut c,
        "a",
        "steps:\n  - {id: call_b, workflow: {name: b}}\n",
    )
    .await
    .unwrap();
    let s = register(
        &mut c,
        "b",
        "steps:\n  - {id: call_a, workflow: {name: a}}\n",
    )
    .await
    .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("step 'call_a': runs a workflow that runs this one again: b → a → b"),
        "{}",
        s.message()
    );
}

#[tokio::test]
async fn refuses_nesting_deeper_than_the_limit() {
    let server = Server::start("[limits]\nmax_workflow_depth = 3\n");
    let mut c = server.client().await;
    register(
        &mut c,
        "l1",
        "steps:\n  - {id: x, tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await
    .unwrap();
    register(&mut c, "l2", "steps:\n  - {id: x, workflow: {name: l1}}\n")
        .await
        .unwrap();
    register(&mut c, "l3", "steps:\n  - {id: x, workflow: {name: l2}}\n")
        .await
        .unwrap();
    let s = register(&mut c, "l4", "steps:\n  - {id: x, workflow: {name: l3}}\n")
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("nest 4 levels deep; limits.max_workflow_depth is 3"),
        "{}",
        s.message()
    );
}

#[tokio::test]
async fn refuses_ten_thousand_steps_naming_the_limit() {
    let server = Server::start("");
    let mut c = server.client().await;
    let steps = (0..10_000)
        .map(|i| proto::Step {
            id: format!("s{i}"),
            depends_on: if i == 0 {
                vec![]
            } else {
                vec![format!("s{}", i - 1)]
            },
            action: Some(proto::step::Action::Tool(proto::ToolAction {
                name: "sleep".into(),
                arguments: None,
            })),
            ..Default::default()
        })
        .collect();
    let s = register_proto(
        &mut c,
        "huge",
        proto::WorkflowDefinition {
            steps,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("10000 steps is over limits.max_steps_per_workflow, which is 1000"),
        "{}",
        s.message()
    );
}

/// Two parents fill both slots, then each waits for three children: without lending its
/// slot while it waits, neither parent's children could ever start.
#[tokio::test]
async fn parents_waiting_on_children_lend_them_their_slots() {
    let server = Server::start("[limits]\nmax_concurrent_executions = 2\n");
    let mut c = server.client().await;
    register(
        &mut c,
        "leaf",
        "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: 100}}}\n",
    )
    .await
    .unwrap();
    register(
        &mut c,
        "fan",
        "steps:\n  - {id: each, for_each: \"{{ input.ns }}\", workflow: {name: leaf}}\n  - {id: after, depends_on: [each], tool: {name: json_transform, arguments: {data: 1, expression: data}}}\n",
    )
    .await
    .unwrap();
    let runs = (0..2).map(|_| {
        let mut c = c.clone();
        tokio::spawn(async move { execute(&mut c, "fan", json!({"ns": [1, 2, 3]})).await })
    });
    for run in futures_util::future::join_all(runs).await {
        let events = run.unwrap().unwrap();
        let lines = lines(&events);
        assert_eq!(lines.last().unwrap(), "run completed", "{lines:#?}");
        assert!(lines.contains(&"completed after".to_string()), "{lines:#?}");
    }

    // The limit still holds: the six children ran two at a time at most.
    let leaves = c
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "leaf".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .executions;
    assert_eq!(leaves.len(), 6);
    let micros = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().expect("a time");
        t.seconds as i128 * 1_000_000 + t.nanos as i128 / 1000
    };
    let spans: Vec<(i128, i128)> = leaves
        .iter()
        .map(|e| (micros(&e.start_time), micros(&e.end_time)))
        .collect();
    for &(start, _) in &spans {
        let running = spans
            .iter()
            .filter(|&&(s, e)| s <= start && start < e)
            .count();
        assert!(running <= 2, "{running} children ran at once: {spans:?}");
    }
}

/// A running execution read with GetExecution or ListExecutions carries its steps so far as
/// its result (the proto: "present once the execution has started"), for a caller polling
/// for progress; it is not a success until it ends.
#[tokio::test]
async fn a_running_execution_shows_its_steps_so_far() {
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "progress",
        r#"
steps:
  - {id: a, tool: {name: json_transform, arguments: {data: 7, expression: data}}}
  - {id: b, depends_on: [a], tool: {name: sleep, arguments: {duration_ms: 30000}}}
"#,
    )
    .await
    .unwrap();
    let id = start(&mut c, "progress", json!({})).await;
    let mut events = c
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(r) = events.message().await.unwrap() {
        if matches!(
            r.event.and_then(|e| e.kind),
            Some(proto::execution_event::Kind::StepStarted(s)) if s.step_id == "b"
        ) {
            break;
        }
    }

    let got = c
        .get_execution(proto::GetExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let listed = c
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "progress".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .executions
        .remove(0);
    for execution in [got, listed] {
        assert_eq!(execution.status, proto::ExecutionStatus::Running as i32);
        let so_far = execution.result.expect("a result once started");
        assert!(!so_far.success, "not a success before it ends");
        assert_eq!(so_far.steps_completed, 1);
        let a = step_result(&so_far, "a");
        assert_eq!(a.status, proto::StepStatus::Completed as i32);
        assert_eq!(value_to_json_lossy(a.output.as_ref().unwrap()), json!(7));
        let b = step_result(&so_far, "b");
        assert_eq!(
            (b.status, b.attempts),
            (proto::StepStatus::Running as i32, 1)
        );
        let output = so_far.output.unwrap_or_default();
        assert_eq!(value_to_json_lossy(&output), serde_json::Value::Null);
    }
    c.cancel_execution(proto::CancelExecutionRequest {
        execution_id: id,
        reason: String::new(),
    })
    .await
    .unwrap();
}

/// A tool's literal arguments are checked against the schema it publishes (ListTools) when
/// the definition is registered, not first when a step runs; a value a template fills is
/// left to run time, while its object's keys are still checked.
#[tokio::test]
async fn refuses_literal_tool_arguments_the_tool_schema_does_not_allow() {
    let s = refused(
        r#"
steps:
  - {id: word, tool: {name: sleep, arguments: {duration_ms: "abc"}}}
  - {id: negative, tool: {name: sleep, arguments: {duration_ms: -5}}}
  - {id: missing, tool: {name: sleep, arguments: {}}}
  - {id: no_url, tool: {name: http_request, arguments: {method: "{{ input.method }}"}}}
"#,
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    for (step, says) in [
        (
            "word",
            "tool.arguments/duration_ms \"abc\" is not of type \"integer\"",
        ),
        (
            "negative",
            "tool.arguments/duration_ms -5 is less than the minimum of 0",
        ),
        (
            "missing",
            "tool.arguments \"duration_ms\" is a required property",
        ),
        ("no_url", "tool.arguments \"url\" is a required property"),
    ] {
        assert!(m.contains(&format!("step '{step}': {says}")), "{step}: {m}");
    }
    assert!(
        m.contains("(tool 'sleep' takes what its input_schema in ListTools allows)"),
        "{m}"
    );

    // Values filled at run time are not judged now.
    let server = Server::start("");
    let mut c = server.client().await;
    register(
        &mut c,
        "later",
        "steps:\n  - {id: nap, tool: {name: sleep, arguments: {duration_ms: \"{{ input.ms }}\"}}}\n",
    )
    .await
    .expect("a templated value is checked when the step runs");
}

/// A `for_each` or `when` that does not parse says so, with the parser's message, rather
/// than that it has text around its `{{ }}`.
#[tokio::test]
async fn refuses_an_unclosed_for_each_or_when_as_not_parsing() {
    let s = refused(
        "steps:\n  - {id: each, for_each: \"{{ input.items\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: gate, when: \"{{ input.x > \", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("step 'each': for_each does not parse: expression '{{ input.items': "),
        "{m}"
    );
    assert!(
        m.contains("step 'gate': when does not parse: expression '{{ input.x > ': "),
        "{m}"
    );
    assert!(!m.contains("text around"), "{m}");
    assert!(m.contains("2 problems"), "{m}");
}

/// A `{% %}` block has no `{{ }}` to have text around: it is named as what it is.
#[tokio::test]
async fn refuses_a_when_or_for_each_that_is_a_block() {
    let s = refused(
        "steps:\n  - {id: gate, when: \"{% if input.x %}true{% endif %}\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: each, for_each: \"{% for i in input.items %}{{ i }}{% endfor %}\", tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("step 'gate': when '{% if input.x %}true{% endif %}' is a {% %} block, which renders to a string rather than a value: a when is one expression, like `input.count > 3` or `{{ input.count > 3 }}`"),
        "{m}"
    );
    assert!(
        m.contains("step 'each': for_each '{% for i in input.items %}{{ i }}{% endfor %}' is a {% %} block, which renders to a string rather than a value: a for_each is one expression, like `input.items` or `{{ input.items }}`"),
        "{m}"
    );
    assert!(!m.contains("text around"), "{m}");
}

/// A step listing itself twice: one problem for the repeat, one for depending on itself,
/// and no cycle of the step onto itself.
#[tokio::test]
async fn refuses_a_repeated_self_dependency_once_each() {
    let s = refused(
        "steps:\n  - {id: a, depends_on: [a, a], tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: b, depends_on: [nope, a, nope, a, a], tool: {name: sleep, arguments: {duration_ms: 1}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert_eq!(
        m.matches("step 'a': depends_on lists 'a' twice").count(),
        1,
        "{m}"
    );
    assert_eq!(m.matches("step 'a': depends on itself").count(), 1, "{m}");
    assert_eq!(
        m.matches("step 'b': depends_on lists 'nope' twice").count(),
        1,
        "{m}"
    );
    assert_eq!(
        m.matches("step 'b': depends_on 'nope' is not a step of this workflow")
            .count(),
        1,
        "{m}"
    );
    assert!(m.contains("step 'b': depends_on lists 'a' 3 times"), "{m}");
    assert!(!m.contains("cycle"), "{m}");
    assert!(m.contains("5 problems"), "{m}");
}

/// A cycle does not hide the definition's other problems: every one is reported at once.
#[tokio::test]
async fn refuses_a_cycle_and_the_other_problems_at_once() {
    let s = refused(
        "steps:\n  - {id: a, depends_on: [c], tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: c, depends_on: [a], tool: {name: sleep, arguments: {duration_ms: 1}}}\n  - {id: f, tool: {name: json_transform, arguments: {data: \"{{ item }}\", expression: data}}}\n  - {id: g, tool: {name: json_transform, arguments: {data: \"{{ steps.f.output }}\", expression: data}}}\n",
    )
    .await;
    assert_eq!(s.code(), Code::InvalidArgument);
    let m = s.message();
    assert!(
        m.contains("depends_on forms a cycle: a → c → a")
            || m.contains("depends_on forms a cycle: c → a → c"),
        "{m}"
    );
    assert!(
        m.contains("step 'f': reads 'item', which only exists in a step with for_each"),
        "{m}"
    );
    assert!(
        m.contains("step 'g': reads steps.f but does not depend on it"),
        "{m}"
    );
    assert!(m.contains("3 problems"), "{m}");
}

/// An execution stopped by `limits.max_events_per_execution` ends with a result that
/// agrees with its history: the step whose event was refused failed with the limit, and
/// no step counts as completed without its `step_completed` event.
#[tokio::test]
async fn the_event_limit_ends_a_run_with_a_result_that_agrees_with_its_history() {
    let server = Server::start("[limits]\nmax_events_per_execution = 30\n");
    let mut c = server.client().await;
    register(
        &mut c,
        "many",
        r#"
steps:
  - id: c
    for_each: "range(40)"
    max_parallel: 1
    tool: {name: json_transform, arguments: {data: "{{ item }}", expression: "data"}}
  - {id: d, depends_on: [c], tool: {name: json_transform, arguments: {data: 1, expression: "data"}}}
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "many", json!({})).await.unwrap();
    assert_eq!(
        events.len(),
        31,
        "the limit, then the terminal event: {:#?}",
        lines(&events)
    );
    let r = result(&events);
    let c_result = step_result(&r, "c");
    assert_eq!(
        proto::StepStatus::try_from(c_result.status),
        Ok(proto::StepStatus::Failed),
        "{r:#?}"
    );
    assert!(
        c_result
            .error
            .contains("limits.max_events_per_execution is 30"),
        "{}",
        c_result.error
    );
    assert_eq!((r.steps_completed, r.steps_failed), (0, 1), "{r:#?}");

    // A native workflow's steps: completed in the result only with their event.
    let mut n = server.client().await;
    n.register(proto::RegisterRequest {
        name: "naps".into(),
        source: Some(proto::register_request::Source::Native(
            proto::NativeSource {
                r#type: "sleep".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    let events = execute(&mut n, "naps", json!({"duration_ms": 1, "steps": 20}))
        .await
        .unwrap();
    let completed_events = lines(&events)
        .iter()
        .filter(|l| l.starts_with("completed "))
        .count();
    let r = result(&events);
    assert_eq!(r.steps_completed as usize, completed_events, "{r:#?}");
    assert_eq!(r.steps_failed, 1, "{r:#?}");
}
