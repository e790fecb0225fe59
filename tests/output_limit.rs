//! `limits.max_output_bytes` against a real server: a step whose output is over it fails
//! naming the limit, an execution whose result adds up past it fails too, and in both cases
//! nothing over the limit is stored or streamed.

mod decl_harness;

use decl_harness::*;
use prost::Message;
use serde_json::json;
use wfm::proto::{self, execution_event::Kind};

const LIMIT: usize = 1000;

fn server() -> Server {
    Server::start(&format!("[limits]\nmax_output_bytes = {LIMIT}\n"))
}

/// No event, and no execution record, is anywhere near the size the limit keeps out.
async fn assert_nothing_big_kept(client: &mut Client, events: &[proto::ExecutionEvent]) {
    for e in events {
        assert!(e.encoded_len() < 2 * LIMIT, "event too big: {e:?}");
    }
    let id = events[0].execution_id.clone();
    let record = client
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(record.status, proto::ExecutionStatus::Failed as i32);
    assert!(record.result.as_ref().unwrap().encoded_len() < LIMIT);
}

#[tokio::test]
async fn a_step_output_over_the_limit_fails_the_step() {
    let server = server();
    let mut c = server.client().await;
    register(
        &mut c,
        "big",
        r#"
steps:
  - id: blow_up
    tool:
      name: json_transform
      arguments: {data: "{{ input.n }}", expression: "'x' * data"}
"#,
    )
    .await
    .unwrap();

    // Under the limit: fine.
    let events = execute(&mut c, "big", json!({"n": 10})).await.unwrap();
    assert_eq!(output(&events), json!({"blow_up": "xxxxxxxxxx"}));

    let events = execute(&mut c, "big", json!({"n": 5000})).await.unwrap();
    let lines = lines(&events);
    // Typed like every other step error, in the event and in the step's result.
    let error = format!(
        "OutputTooLarge: step 'blow_up' output is 5002 bytes as JSON; limits.max_output_bytes is {LIMIT}"
    );
    let failed = format!("failed blow_up 1: {error}");
    assert!(lines.contains(&failed), "{lines:#?}");
    assert_eq!(step_result(&result(&events), "blow_up").error, error);
    assert!(
        !lines.contains(&"completed blow_up".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("run failed: step 'blow_up' failed: OutputTooLarge"),
        "{lines:#?}"
    );
    assert_nothing_big_kept(&mut c, &events).await;
}

#[tokio::test]
async fn a_native_workflow_output_over_the_limit_fails() {
    let server = server();
    let mut c = server.client().await;
    c.register(proto::RegisterRequest {
        name: "echo".into(),
        source: Some(proto::register_request::Source::Native(
            proto::NativeSource {
                r#type: "echo".into(),
                arguments: None,
            },
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    let events = execute(&mut c, "echo", json!({"blob": "y".repeat(3 * LIMIT)}))
        .await
        .unwrap();
    match events.last().unwrap().kind.as_ref().unwrap() {
        Kind::Failed(f) => assert!(
            f.error.contains("limits.max_output_bytes is 1000"),
            "{}",
            f.error
        ),
        other => panic!("expected failed, got {other:?}"),
    }
    assert_nothing_big_kept(&mut c, &events).await;
}

#[tokio::test]
async fn a_result_adding_up_past_the_limit_fails_the_execution() {
    let server = server();
    let mut c = server.client().await;
    // Each step's output is under the limit; the result (both outputs and the final one
    // repeating them) is not.
    register(
        &mut c,
        "adds_up",
        r#"
steps:
  - id: a
    tool: {name: json_transform, arguments: {expression: "'a' * 400"}}
  - id: b
    tool: {name: json_transform, arguments: {expression: "'b' * 400"}}
output:
  both: "{{ steps.a.output ~ steps.b.output }}"
"#,
    )
    .await
    .unwrap();
    let events = execute(&mut c, "adds_up", json!({})).await.unwrap();
    let lines = lines(&events);
    assert!(lines.contains(&"completed a".to_string()), "{lines:#?}");
    assert!(lines.contains(&"completed b".to_string()), "{lines:#?}");
    assert_eq!(
        lines.last().unwrap(),
        &format!(
            "run failed: the execution's result (its output and step outputs) is 1615 bytes as JSON; limits.max_output_bytes is {LIMIT}"
        ),
        "{lines:#?}"
    );
    let r = result(&events);
    assert!(!r.success);
    assert_eq!(r.steps_completed, 2, "the steps' statuses are kept");
    assert_nothing_big_kept(&mut c, &events).await;
}
