//! The service end to end over a real loopback connection to a real `wfm serve` process.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tonic::Code;
use wfm::proto::{self, execution_event::Kind};

fn write_dataset(server: &Server, name: &str, csv: &str) {
    std::fs::write(
        server
            .data_dir()
            .join("datasets")
            .join(format!("{name}.csv")),
        csv,
    )
    .unwrap();
}

#[tokio::test]
async fn data_analysis_streams_every_step_in_order() {
    let server = Server::start().await;
    write_dataset(
        &server,
        "sales",
        "region,amount\neu,10\nus,20\neu,30\nasia,40\n",
    );
    let mut client = server.client().await;
    register(
        &mut client,
        "sales",
        "data_analysis",
        json!({"include_advanced_metrics": true, "required_datasets": ["sales"]}),
    )
    .await;

    let events = execute(&mut client, "sales", json!({"dataset": "sales"})).await;
    assert_gap_free(&events);
    let kinds: Vec<String> = labels(&events)
        .into_iter()
        .filter(|l| !l.starts_with("step_progress"))
        .collect();
    assert_eq!(
        kinds,
        [
            "accepted",
            "started",
            "step_started:load",
            "step_completed:load",
            "step_started:validate",
            "step_completed:validate",
            "step_started:analyze",
            "step_completed:analyze",
            "step_started:report",
            "step_completed:report",
            "completed"
        ]
    );
    let result = result_of(events.last().unwrap());
    assert!(result.success);
    assert_eq!(
        (
            result.steps_completed,
            result.steps_failed,
            result.steps_skipped
        ),
        (4, 0, 0)
    );
    assert!(
        result
            .steps
            .iter()
            .all(|s| s.status == proto::StepStatus::Completed as i32)
    );
    let output = output_json(&result.output);
    assert_eq!(output["rows"], json!(4));
    let amount = &output["columns"]["amount"];
    assert_eq!(
        (amount["count"].clone(), amount["mean"].clone()),
        (json!(4), json!(25))
    );
    assert_eq!(
        (amount["min"].clone(), amount["max"].clone()),
        (json!(10), json!(40))
    );
    assert_eq!(amount["advanced"]["p50"], json!(25));
    assert_eq!(output["non_numeric_columns"], json!(["region"]));
}

#[tokio::test]
async fn arguments_are_honoured_and_a_failing_step_fails_the_run() {
    let server = Server::start().await;
    write_dataset(&server, "big", "x\n1\n2\n3\n");
    let mut client = server.client().await;
    register(
        &mut client,
        "small-only",
        "data_analysis",
        json!({"max_dataset_size": 2}),
    )
    .await;

    let events = execute(&mut client, "small-only", json!({"dataset": "big"})).await;
    assert_gap_free(&events);
    let Some(Kind::Failed(failed)) = &events.last().unwrap().kind else {
        panic!("{:?}", labels(&events))
    };
    assert!(
        failed.error.contains("has 3 rows; max_dataset_size is 2"),
        "{}",
        failed.error
    );
    assert!(labels(&events).contains(&"step_failed:validate".to_string()));
    let result = failed.result.as_ref().unwrap();
    assert!(!result.success);
    assert_eq!((result.steps_completed, result.steps_failed), (1, 1));
    // No advanced metrics unless asked for.
    write_dataset(&server, "ok", "x\n1\n2\n");
    let events = execute(&mut client, "small-only", json!({"dataset": "ok"})).await;
    let output = output_json(&result_of(events.last().unwrap()).output);
    assert!(output["columns"]["x"].get("advanced").is_none(), "{output}");

    // A dataset that does not exist fails the load step with the server's reason.
    let events = execute(&mut client, "small-only", json!({"dataset": "nope"})).await;
    let Some(Kind::Failed(failed)) = &events.last().unwrap().kind else {
        panic!()
    };
    assert!(
        failed.error.contains("dataset 'nope' is not configured"),
        "{}",
        failed.error
    );
}

#[tokio::test]
async fn register_versions_and_is_idempotent() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let request = |args: serde_json::Value| proto::RegisterRequest {
        name: "slow".into(),
        description: "sleeps".into(),
        labels: [("team".to_string(), "data".to_string())].into(),
        source: native("sleep", args),
        ..Default::default()
    };
    let first = client
        .register(request(json!({})))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    assert_eq!(first.workflow.as_ref().unwrap().version, 1);
    let again = client
        .register(request(json!({})))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.workflow.as_ref().unwrap().version, 1);
    let second = client
        .register(request(json!({"default_duration_ms": 5})))
        .await
        .unwrap()
        .into_inner();
    assert!(second.created);
    assert_eq!(second.workflow.as_ref().unwrap().version, 2);

    let got = client
        .get(proto::GetRequest {
            name: "slow".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.versions, vec![1, 2]);
    let latest = got.workflow.unwrap();
    assert_eq!((latest.version, latest.description.as_str()), (2, "sleeps"));
    assert_eq!(latest.labels.get("team").map(String::as_str), Some("data"));
    assert!(latest.create_time.is_some());
    let Some(proto::workflow::Source::Native(n)) = latest.source else {
        panic!()
    };
    assert_eq!(n.r#type, "sleep");
    assert_eq!(
        wfm::api::convert::struct_to_json_lossy(&n.arguments.unwrap()),
        json!({"default_duration_ms": 5})
    );
    let v1 = client
        .get(proto::GetRequest {
            name: "slow".into(),
            version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v1.workflow.unwrap().version, 1);

    // The name defaults to the type's.
    let r = client
        .register(proto::RegisterRequest {
            source: native("echo", json!({})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.workflow.unwrap().name, "echo");
}

#[tokio::test]
async fn list_paginates_and_filters_by_label() {
    let server = Server::start().await;
    let mut client = server.client().await;
    for i in 0..5 {
        client
            .register(proto::RegisterRequest {
                name: format!("wf-{i}"),
                labels: [(
                    "parity".to_string(),
                    if i % 2 == 0 { "even" } else { "odd" }.to_string(),
                )]
                .into(),
                source: native("echo", json!({})),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list(proto::ListRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.workflows.len() <= 2);
        names.extend(page.workflows.into_iter().map(|w| w.name));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["wf-0", "wf-1", "wf-2", "wf-3", "wf-4"]);

    let odd = client
        .list(proto::ListRequest {
            label_filter: [("parity".to_string(), "odd".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let odd: Vec<_> = odd.workflows.into_iter().map(|w| w.name).collect();
    assert_eq!(odd, ["wf-1", "wf-3"]);

    // A token continues the listing it came from, not one with another label filter.
    let even = |page_token: String| proto::ListRequest {
        page_size: 1,
        page_token,
        label_filter: [("parity".to_string(), "even".to_string())].into(),
    };
    let first = client.list(even(String::new())).await.unwrap().into_inner();
    assert_eq!(first.workflows[0].name, "wf-0");
    let other = client
        .list(proto::ListRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);
    assert!(
        other
            .message()
            .contains("page_token: was returned for another label_filter"),
        "{}",
        other.message()
    );
    let second = client
        .list(even(first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    let second: Vec<_> = second.workflows.into_iter().map(|w| w.name).collect();
    assert_eq!(second, ["wf-2"]);
}

#[tokio::test]
async fn initialize_failure_registers_nothing() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let err = client
        .register(proto::RegisterRequest {
            name: "needs-data".into(),
            source: native("data_analysis", json!({"required_datasets": ["missing"]})),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("required datasets not configured: missing"),
        "{}",
        err.message()
    );
    let err = client
        .get(proto::GetRequest {
            name: "needs-data".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let list = client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.workflows.is_empty());
}

#[tokio::test]
async fn executions_run_in_parallel() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let runs = (0..8).map(|_| {
        let mut c = client.clone();
        tokio::spawn(async move { execute(&mut c, "nap", json!({"duration_ms": 400})).await })
    });
    let all = futures_util::future::join_all(runs).await;
    let time = |e: &proto::ExecutionEvent| {
        let t = e.time.unwrap();
        t.seconds as f64 + t.nanos as f64 / 1e9
    };
    let mut latest_start = 0f64;
    let mut earliest_end = f64::MAX;
    for events in all {
        let events = events.unwrap();
        assert_eq!(labels(&events).last().unwrap(), "completed");
        latest_start = latest_start.max(time(&events[1]));
        earliest_end = earliest_end.min(time(events.last().unwrap()));
    }
    // Every execution had started before the first one ended: they overlapped.
    assert!(
        latest_start < earliest_end,
        "started {latest_start}, first end {earliest_end}"
    );
}

#[tokio::test]
async fn per_workflow_limit_queues_and_global_queue_refuses() {
    let server = Server::start_with(
        &[
            ("WFM_LIMITS__MAX_CONCURRENT_EXECUTIONS", "2"),
            ("WFM_LIMITS__MAX_QUEUED_EXECUTIONS", "1"),
        ],
        &[],
    )
    .await;
    let mut client = server.client().await;
    client
        .register(proto::RegisterRequest {
            name: "single".into(),
            max_concurrency: 1,
            source: native("sleep", json!({})),
            ..Default::default()
        })
        .await
        .unwrap();
    let start = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            c.start_execution(proto::StartExecutionRequest {
                name: "single".into(),
                input: json_struct(json!({"duration_ms": 300})),
                ..Default::default()
            })
            .await
        }
    };
    let first = start(&mut client).await.unwrap().into_inner().execution_id;
    let second = start(&mut client).await.unwrap().into_inner().execution_id;
    // The queue holds one: a third is refused with the limit named.
    let err = start(&mut client).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("limits.max_queued_executions"),
        "{}",
        err.message()
    );

    let second_events = watch_all(&mut client, &second, 0).await;
    assert_gap_free(&second_events);
    let Some(Kind::Queued(q)) = &second_events[1].kind else {
        panic!("{:?}", labels(&second_events))
    };
    assert!(
        q.reason.contains("workflow 'single' runs at most 1"),
        "{}",
        q.reason
    );
    assert_eq!(labels(&second_events).last().unwrap(), "completed");
    let first_events = watch_all(&mut client, &first, 0).await;
    // The second started only after the first ended.
    let t = |e: &proto::ExecutionEvent| e.time.unwrap();
    let first_end = t(first_events.last().unwrap());
    let second_start = t(second_events
        .iter()
        .find(|e| label(e) == "started")
        .unwrap());
    assert!((second_start.seconds, second_start.nanos) >= (first_end.seconds, first_end.nanos));
    // Once drained, new executions are accepted again.
    assert!(start(&mut client).await.is_ok());
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_lose_the_run() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let mut stream = client
        .execute(execute_request("nap", json!({"duration_ms": 300})))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().event.unwrap();
    let id = first.execution_id.clone();
    drop(stream);
    drop(client);

    let mut client = server.client().await;
    let events = watch_all(&mut client, &id, 0).await;
    assert_gap_free(&events);
    assert_eq!(labels(&events).last().unwrap(), "completed");
    let exec = client
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(exec.status, proto::ExecutionStatus::Completed as i32);
    assert_eq!(exec.last_sequence, events.len() as i64);
    assert!(exec.end_time.is_some() && exec.start_time.is_some());
}

#[tokio::test]
async fn watch_replays_from_any_sequence_and_lists_executions() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;
    let events = execute(&mut client, "echo", json!({"greeting": "hi"})).await;
    assert_eq!(
        labels(&events),
        [
            "accepted",
            "started",
            "step_started:echo",
            "step_completed:echo",
            "completed"
        ]
    );
    assert_eq!(
        output_json(&result_of(&events[4]).output),
        json!({"greeting": "hi"})
    );
    let id = events[0].execution_id.clone();

    let mut from_middle = client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 3,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(r) = from_middle.message().await.unwrap() {
        seqs.push(r.event.unwrap().sequence);
    }
    assert_eq!(seqs, [4, 5]);
    let mut after_end = client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after_end.message().await.unwrap().is_none());

    execute(&mut client, "echo", json!({"n": 2})).await;
    let listed = client
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "echo".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.executions.len(), 1);
    assert_ne!(listed.executions[0].id, id, "newest first");
    // A token continues the listing it came from, not one with other filters.
    let other = client
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "other".into(),
            page_size: 1,
            page_token: listed.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);
    assert!(
        other
            .message()
            .contains("page_token: was returned for other filters"),
        "{}",
        other.message()
    );
    let next = client
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "echo".into(),
            page_size: 1,
            page_token: listed.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.executions[0].id, id);
    let failed = client
        .list_executions(proto::ListExecutionsRequest {
            status: proto::ExecutionStatus::Failed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(failed.executions.is_empty());
}

#[tokio::test]
async fn cancel_ends_a_running_execution_and_is_idempotent() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let id = client
        .start_execution(proto::StartExecutionRequest {
            name: "nap".into(),
            input: json_struct(json!({"duration_ms": 60000})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    let mut watch = client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // Wait until the step runs.
    loop {
        let e = watch.message().await.unwrap().unwrap().event.unwrap();
        if label(&e) == "step_started:sleep" {
            break;
        }
    }
    let cancel = |c: &mut Client| {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            c.cancel_execution(proto::CancelExecutionRequest {
                execution_id: id,
                reason: "test says stop".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
        }
    };
    assert_eq!(
        cancel(&mut client).await,
        proto::ExecutionStatus::Cancelled as i32
    );
    assert_eq!(
        cancel(&mut client).await,
        proto::ExecutionStatus::Cancelled as i32
    );
    let mut rest = Vec::new();
    while let Some(r) = watch.message().await.unwrap() {
        rest.push(r.event.unwrap());
    }
    let Some(Kind::Cancelled(c)) = &rest.last().unwrap().kind else {
        panic!("{:?}", labels(&rest))
    };
    assert_eq!(c.reason, "test says stop");
    // The step was cut short, not failed: so says its event, and its result.
    let cut_short = rest.iter().find_map(|e| match &e.kind {
        Some(Kind::StepCancelled(s)) => Some(s),
        _ => None,
    });
    let cut_short = cut_short.unwrap_or_else(|| panic!("no step_cancelled: {:?}", labels(&rest)));
    assert_eq!(
        (cut_short.attempt, cut_short.reason.as_str()),
        (1, "the execution was cancelled while the step ran")
    );
    assert!(!labels(&rest).iter().any(|l| l.starts_with("step_failed")));
    let result = c.result.as_ref().unwrap();
    assert_eq!(result.steps[0].status, proto::StepStatus::Cancelled as i32);
    assert_eq!((result.steps_failed, result.success), (0, false));
}

#[tokio::test]
async fn request_id_deduplicates_concurrent_retries() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let tries = (0..10).map(|_| {
        let mut c = client.clone();
        tokio::spawn(async move {
            c.start_execution(proto::StartExecutionRequest {
                name: "nap".into(),
                input: json_struct(json!({"duration_ms": 50})),
                request_id: "order-42".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        })
    });
    let answers: Vec<_> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        answers
            .iter()
            .all(|a| a.execution_id == answers[0].execution_id)
    );
    assert_eq!(answers.iter().filter(|a| a.created).count(), 1);
    let all = client
        .list_executions(proto::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.executions.len(), 1);

    // The same key for a different request is refused, not silently attached.
    let err = client
        .start_execution(proto::StartExecutionRequest {
            name: "nap".into(),
            input: json_struct(json!({"duration_ms": 51})),
            request_id: "order-42".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message().contains("with another input"),
        "{}",
        err.message()
    );
    // The same key for another workflow: the message says that is what differs.
    register(&mut client, "other", "sleep", json!({})).await;
    let err = client
        .start_execution(proto::StartExecutionRequest {
            name: "other".into(),
            input: json_struct(json!({"duration_ms": 50})),
            request_id: "order-42".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message()
            .contains("of workflow 'nap' v1, not of 'other'"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn types_tools_and_unregister() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let types = client
        .list_workflow_types(proto::ListWorkflowTypesRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = types
        .workflow_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["data_analysis", "echo", "noop", "sleep"]);
    let tools = client
        .list_tools(proto::ListToolsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tools;
    let tool_names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    for t in [
        "http_request",
        "json_transform",
        "list_datasets",
        "read_dataset",
        "sleep",
    ] {
        assert!(tool_names.contains(&t), "{t} in {tool_names:?}");
    }
    assert!(
        tools
            .iter()
            .all(|t| t.server == "builtin" && t.input_schema.is_some())
    );

    register(&mut client, "gone", "echo", json!({})).await;
    let id = execute(&mut client, "gone", json!({})).await[0]
        .execution_id
        .clone();
    let removed = client
        .unregister(proto::UnregisterRequest {
            name: "gone".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.versions_removed, 1);
    let err = client
        .get(proto::GetRequest {
            name: "gone".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Its history stays readable.
    let exec = client
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        exec.execution.unwrap().status,
        proto::ExecutionStatus::Completed as i32
    );
    let err = client
        .unregister(proto::UnregisterRequest {
            name: "gone".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = Server::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "workflow.v1.WorkflowService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("a list of services")
    };
    let services: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        services.contains(&"workflow.v1.WorkflowService".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_string()),
        "{services:?}"
    );

    // The older v1alpha protocol answers too.
    use tonic_reflection::pb::v1alpha as alpha;
    let mut reflection =
        alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "workflow.v1.WorkflowService".into(),
            ),
        ),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = responses
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    assert!(matches!(
        answer,
        alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_)
    ));
}

#[tokio::test]
async fn shutdown_cancels_after_the_grace_period_and_exits_zero() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    register(&mut client, "quick", "sleep", json!({})).await;
    let mut long = client
        .execute(execute_request("nap", json!({"duration_ms": 60000})))
        .await
        .unwrap()
        .into_inner();
    let mut short = client
        .execute(execute_request("quick", json!({"duration_ms": 300})))
        .await
        .unwrap()
        .into_inner();
    for s in [&mut long, &mut short] {
        while label(&s.message().await.unwrap().unwrap().event.unwrap()) != "step_started:sleep" {}
    }

    let mut c = client.clone();
    let shutdown = tokio::spawn(async move {
        c.shutdown(proto::ShutdownRequest {
            grace_period: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
    });
    // While draining: health says NOT_SERVING and new executions are refused.
    let mut health = HealthClient::new(server.channel().await);
    let mut saw_draining = false;
    for _ in 0..50 {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            saw_draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_draining, "health reports NOT_SERVING while draining");
    let err = client
        .execute(execute_request("quick", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let report = shutdown.await.unwrap().unwrap().into_inner();
    assert_eq!((report.finished_during_grace, report.cancelled), (1, 1));
    let mut rest = Vec::new();
    while let Ok(Some(r)) = long.message().await {
        rest.push(r.event.unwrap());
    }
    let Some(Kind::Cancelled(c)) = &rest
        .last()
        .expect("the long run's stream ends with an event")
        .kind
    else {
        panic!("{:?}", labels(&rest))
    };
    assert!(c.reason.contains("grace period"), "{}", c.reason);
    let mut short_rest = Vec::new();
    while let Ok(Some(r)) = short.message().await {
        short_rest.push(r.event.unwrap());
    }
    assert_eq!(labels(&short_rest).last().unwrap(), "completed");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
}

/// A second Shutdown joins the first and may only tighten it: asking 1 s behind a first
/// 30 s grace ends the drain after about 1 s (it used to wait out the 30 s), and asking
/// to resume applies to what outlasts it. Both calls get the same report.
#[tokio::test]
async fn a_later_shutdown_shortens_the_drain_and_can_leave_work_to_resume() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let grace = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
    let mut server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let mut long = client
        .execute(execute_request("nap", json!({"duration_ms": 60000})))
        .await
        .unwrap()
        .into_inner();
    let id = long
        .message()
        .await
        .unwrap()
        .unwrap()
        .event
        .unwrap()
        .execution_id;
    while label(&long.message().await.unwrap().unwrap().event.unwrap()) != "step_started:sleep" {}

    let mut c = client.clone();
    let first = tokio::spawn(async move {
        c.shutdown(proto::ShutdownRequest {
            grace_period: grace(30),
            ..Default::default()
        })
        .await
    });
    let mut health = HealthClient::new(server.channel().await);
    while health
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status
        != ServingStatus::NotServing as i32
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let asked = std::time::Instant::now();
    let second = client
        .shutdown(proto::ShutdownRequest {
            grace_period: grace(1),
            resume_unfinished: Some(true),
        })
        .await
        .unwrap()
        .into_inner();
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "the second Shutdown took {took:?}"
    );
    assert_eq!(
        (
            second.finished_during_grace,
            second.cancelled,
            second.left_to_resume
        ),
        (0, 0, 1)
    );
    let first = first.await.unwrap().unwrap().into_inner();
    assert_eq!(first, second, "both calls get the same report");
    assert!(server.wait_exit(Duration::from_secs(15)).success());

    // Left to resume, not cancelled: the next server on the directory takes it up.
    let server = Server::start_in(server.kill_keep_dir(), &[], &[]);
    let execution = server
        .client()
        .await
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_ne!(
        execution.status,
        proto::ExecutionStatus::Cancelled as i32,
        "{execution:?}"
    );
}

#[tokio::test]
async fn sigterm_takes_the_same_path() {
    let mut server = Server::start_with(&[("WFM_SHUTDOWN_GRACE", "200ms")], &[]).await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let mut stream = client
        .execute(execute_request("nap", json!({"duration_ms": 60000})))
        .await
        .unwrap()
        .into_inner();
    while label(&stream.message().await.unwrap().unwrap().event.unwrap()) != "step_started:sleep" {}
    server.signal("TERM");
    let mut last = None;
    while let Ok(Some(r)) = stream.message().await {
        last = r.event;
    }
    assert_eq!(label(&last.expect("a terminal event")), "cancelled");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
}

/// `wfm run … | head -1`: the CLI stops quietly when its reader goes away, as Unix tools
/// do, instead of panicking on the closed pipe.
#[tokio::test]
async fn the_cli_ends_quietly_when_its_output_pipe_closes() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "big", "echo", json!({})).await;
    // One event line (Completed, with the output) longer than a pipe holds.
    let input = json!({"text": "x".repeat(100_000)}).to_string();
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args([
            "--server",
            &server.url(),
            "run",
            "big",
            "--json",
            "--input",
            &input,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wfm runs");
    let mut first = String::new();
    BufReader::new(cli.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a first line");
    assert!(first.contains("accepted"), "{first}");
    // The reader is gone: the next write meets a closed pipe.
    let output = cli.wait_with_output().expect("wfm ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.signal(), Some(libc_sigpipe()), "{output:?}");
}

/// SIGPIPE's number on Linux (13), without a libc dependency in the tests.
fn libc_sigpipe() -> i32 {
    13
}

/// Watching a running execution after a sequence it never reaches: when it ends, the
/// stream says so (INVALID_ARGUMENT), as it does at once for one already ended, instead of
/// ending with nothing.
#[tokio::test]
async fn watching_past_the_end_of_a_running_execution_says_so_when_it_ends() {
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "nap", "sleep", json!({})).await;
    let id = c
        .start_execution(proto::StartExecutionRequest {
            name: "nap".into(),
            input: json_struct(json!({"duration_ms": 300})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    let mut stream = c
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 50,
        })
        .await
        .unwrap()
        .into_inner();
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(&format!(
            "after_sequence: 50 is past the last event of execution {id}, which has ended at"
        )),
        "{}",
        status.message()
    );
}

/// `--input @FILE` and `--input @-` (standard input): an input larger than a command line
/// may hold reaches the execution whole; a file that cannot be read is named.
#[tokio::test]
async fn the_cli_reads_a_large_input_from_a_file_or_standard_input() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    // Over the 128 KiB a single command-line argument may be on Linux.
    let input = json!({"text": "x".repeat(300_000)});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let wfm = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wfm"));
        command.args(["--server", &server.url()]);
        command
    };

    let run = wfm()
        .args(["run", "echo", "--json", "--input"])
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&run.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["completed"]["result"]["output"], input);

    let mut start = wfm()
        .args([
            "start",
            "echo",
            "--input",
            "@-",
            "--metadata",
            r#"{"from": "stdin"}"#,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    start
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let started = start.wait_with_output().unwrap();
    assert!(started.status.success(), "{started:?}");
    let id = String::from_utf8_lossy(&started.stdout).trim().to_string();
    let execution = c
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(
        output_json(&Some(prost_types::Value {
            kind: Some(prost_types::value::Kind::StructValue(
                execution.input.unwrap()
            )),
        })),
        input
    );
    assert_eq!(
        execution.metadata.unwrap().fields["from"],
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("stdin".into())),
        }
    );

    let missing = wfm()
        .args(["start", "echo", "--input", "@/no/such/input.json"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("--input @/no/such/input.json: cannot read the file"),
        "{stderr}"
    );
}

/// `wfm watch ID --after N` where N is the last event of an ended execution: nothing is
/// left to show, so the CLI says how it ended and exits as the execution did (0 when it
/// completed), instead of failing with no output.
#[tokio::test]
async fn the_cli_watching_after_the_last_event_says_how_the_execution_ended() {
    use std::process::Command;
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let events = execute(&mut c, "echo", json!({"n": 1})).await;
    let (id, last) = (
        events[0].execution_id.clone(),
        events.last().unwrap().sequence,
    );
    let watch = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "watch", &id, "--after"])
        .arg(last.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&watch.stderr);
    assert!(watch.status.success(), "{watch:?}");
    assert!(
        stderr.contains(&format!(
            "execution {id} has ended (completed); its last event is sequence {last}, so none follows --after {last}"
        )),
        "{stderr}"
    );
}

/// A page size over the server's `limits.max_page_size` is lowered to it (AIP-158): full
/// pages and a token for the rest, so a client written for one server's limit (the CLI
/// asks for 50) works against a server configured lower.
#[tokio::test]
async fn a_page_size_over_the_maximum_gives_full_pages_of_the_maximum() {
    use std::process::Command;
    let server = Server::start_with(&[("WFM_LIMITS__MAX_PAGE_SIZE", "2")], &[]).await;
    let mut c = server.client().await;
    for name in ["a", "b", "c"] {
        register(&mut c, name, "echo", json!({})).await;
        execute(&mut c, name, json!({})).await;
    }
    let page = c
        .list(proto::ListRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.workflows.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let page = c
        .list_executions(proto::ListExecutionsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.executions.len(), 2);
    assert!(!page.next_page_token.is_empty());

    let executions = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "executions", "--json"])
        .output()
        .unwrap();
    assert!(executions.status.success(), "{executions:?}");
    let listed: serde_json::Value = serde_json::from_slice(&executions.stdout).unwrap();
    let count = listed
        .as_array()
        .or_else(|| listed["executions"].as_array())
        .map(Vec::len);
    assert_eq!(count, Some(3), "{listed}");
}

/// `wfm get NAME --json` of a declarative workflow gives its whole definition, in the
/// shape of a definition file: registering it again is the same workflow (same version).
#[tokio::test]
async fn the_cli_shows_a_whole_definition_that_registers_as_the_same_workflow() {
    use std::process::Command;
    let server = Server::start().await;
    let wfm = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
            .args(["--server", &server.url()])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fan-out.yaml");
    wfm(&["register", "-f", example]);
    let shown: serde_json::Value =
        serde_json::from_str(&wfm(&["get", "fan-out", "--json"])).unwrap();
    let definition = &shown["definition"];
    assert_eq!(
        definition["steps"].as_array().map(Vec::len),
        Some(3),
        "{shown}"
    );
    assert_eq!(definition["steps"][0]["for_each"], "{{ input.numbers }}");
    assert_eq!(definition["steps"][2]["depends_on"], json!(["total"]));

    let mut file = definition.clone();
    file["name"] = shown["name"].clone();
    file["description"] = shown["description"].clone();
    file["labels"] = shown["labels"].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exported.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let again = wfm(&["register", "-f", path.to_str().unwrap()]);
    assert!(again.contains("version 1"), "{again}");
    let versions: serde_json::Value =
        serde_json::from_str(&wfm(&["get", "fan-out", "--json"])).unwrap();
    assert_eq!(versions["versions"], json!([1]));

    // `--arguments` belongs to a native type: with -f it was ignored without a word.
    let refused = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "register", "-f", example])
        .args(["--name", "fan-out-2", "--arguments", r#"{"x": 1}"#])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        stderr.contains("'--file <FILE>' cannot be used with '--arguments <ARGUMENTS>'"),
        "{stderr}"
    );
}

/// `--input @- --metadata @-`: standard input can be read once; the second flag says so
/// instead of failing as if its JSON were invalid.
#[tokio::test]
async fn the_cli_reads_standard_input_for_one_flag_only() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let mut run = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "run", "echo", "--input", "@-"])
        .args(["--metadata", "@-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    run.stdin.take().unwrap().write_all(b"{\"a\": 1}").unwrap();
    let output = run.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--metadata @-: standard input is read once, by another flag already"),
        "{stderr}"
    );
}

/// An integer a double cannot hold would arrive changed: the CLI refuses it, says where it
/// is and what to send instead, and starts nothing.
#[tokio::test]
async fn the_cli_refuses_integers_that_would_arrive_changed() {
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "start", "echo", "--input"])
        .arg(r#"{"ids": [1, 9007199254740993]}"#)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--input: 9007199254740993 at /ids/1 is beyond ±2^53")
            && stderr.contains("send it as a string"),
        "{stderr}"
    );
    let listed = c
        .list_executions(proto::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.executions.is_empty(), "{listed:?}");
}

/// A `wfm run` whose stream the server ends before the execution does (a shutdown that
/// leaves it to resume) says how to follow on: `wfm watch ID --after N`.
#[tokio::test]
async fn the_cli_says_how_to_follow_on_when_its_stream_breaks_off() {
    use std::process::{Command, Stdio};
    let mut server = Server::start_with(
        &[
            ("WFM_SHUTDOWN_GRACE", "200ms"),
            ("WFM_SHUTDOWN_UNFINISHED", "resume"),
        ],
        &[],
    )
    .await;
    let mut c = server.client().await;
    register(&mut c, "nap", "sleep", json!({})).await;
    let cli = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "run", "nap", "--input"])
        .arg(r#"{"duration_ms": 60000}"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is in its step.
    let id = loop {
        let page = c
            .list_executions(proto::ListExecutionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        if let Some(e) = page.executions.first()
            && e.last_sequence >= 3
        {
            break e.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.signal("TERM");
    let output = cli.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("to follow on from here: wfm watch {id} --after ")),
        "{stderr}"
    );
    assert!(server.wait_exit(Duration::from_secs(15)).success());
}

/// Every item the server accepted stays listable: a List or ListExecutions page stops
/// before the item that would take it past `limits.max_message_bytes` and continues with
/// a token. With the default limits, five executions of 900 kB inputs (each under
/// `limits.max_input_bytes`) used to make the default page 4.5 MB, which tonic refused
/// to send (OUT_OF_RANGE "encoded message length too large"), for the API and the CLI.
#[tokio::test]
async fn large_items_are_listed_in_pages_that_fit_the_message_limit() {
    use prost::Message;
    use std::process::Command;
    const MAX_MESSAGE: usize = 4 << 20;
    let server = Server::start().await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let big = "x".repeat(900_000);
    for i in 0..5 {
        c.start_execution(proto::StartExecutionRequest {
            name: "echo".into(),
            input: json_struct(json!({"i": i, "pad": big})),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = c
            .list_executions(proto::ListExecutionsRequest {
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("a page that fits the message limit")
            .into_inner();
        assert!(!page.executions.is_empty(), "a page holds at least one");
        assert!(page.encoded_len() <= MAX_MESSAGE);
        pages += 1;
        ids.extend(page.executions.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages > 1, "cut by size into {pages} page(s)");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (5, 5), "{ids:?}");

    let executions = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "executions", "--json"])
        .output()
        .unwrap();
    assert!(
        executions.status.success(),
        "{}",
        String::from_utf8_lossy(&executions.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&executions.stdout).unwrap();
    let count = listed
        .as_array()
        .or_else(|| listed["executions"].as_array())
        .map(Vec::len);
    assert_eq!(count, Some(5));

    // Workflows too: definitions carrying large arguments.
    for i in 0..5 {
        c.register(proto::RegisterRequest {
            name: format!("big-{i}"),
            source: Some(proto::register_request::Source::Definition(
                proto::WorkflowDefinition {
                    steps: vec![proto::Step {
                        id: "a".into(),
                        action: Some(proto::step::Action::Tool(proto::ToolAction {
                            name: "json_transform".into(),
                            arguments: json_struct(json!({"data": big, "expression": "data"})),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = c
            .list(proto::ListRequest {
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("a page that fits the message limit")
            .into_inner();
        assert!(page.encoded_len() <= MAX_MESSAGE);
        pages += 1;
        names.extend(page.workflows.into_iter().map(|w| w.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages > 1, "cut by size into {pages} page(s)");
    assert_eq!(names, ["big-0", "big-1", "big-2", "big-3", "big-4", "echo"]);
    let list = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["--server", &server.url(), "list", "--json"])
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
}

/// One execution too large for a response on its own (an echo of 45 kB: its input, output
/// and step output add up past `limits.max_message_bytes`, 100 kB here, though each was
/// under it) is refused naming the limit to raise, not with tonic's encoder message, in a
/// listing and when read alone.
#[tokio::test]
async fn an_execution_too_large_for_any_page_names_the_message_limit() {
    let server = Server::start_with(&[("WFM_LIMITS__MAX_MESSAGE_BYTES", "100000")], &[]).await;
    let mut c = server.client().await;
    register(&mut c, "echo", "echo", json!({})).await;
    let events = execute(&mut c, "echo", json!({ "pad": "x".repeat(45_000) })).await;
    assert_eq!(labels(&events).last().unwrap(), "completed");
    let id = events[0].execution_id.clone();
    let err = c
        .list_executions(proto::ListExecutionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(
        err.message().starts_with(&format!(
            "limits.max_message_bytes is 100000: execution '{id}' alone is "
        )),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("raise the limit"),
        "{}",
        err.message()
    );
    // Reading it alone is refused the same way.
    let err = c
        .get_execution(proto::GetExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(
        err.message().starts_with(&format!(
            "limits.max_message_bytes is 100000: execution '{id}' alone is "
        )) && err.message().ends_with("raise the limit to read it"),
        "{}",
        err.message()
    );
}

/// A name registered again after Unregister goes on from the versions its executions ran,
/// in either store: (name, version) keeps naming the definition an execution ran.
#[tokio::test]
async fn a_name_registered_again_after_unregister_does_not_reuse_a_version_number() {
    for store in ["sqlite", "memory"] {
        let server = Server::start_with(&[("WFM_STORE", store)], &[]).await;
        let mut client = server.client().await;
        register(&mut client, "hello", "echo", json!({})).await;
        let id = execute(&mut client, "hello", json!({})).await[0]
            .execution_id
            .clone();
        client
            .unregister(proto::UnregisterRequest {
                name: "hello".into(),
            })
            .await
            .unwrap();
        let again = register(&mut client, "hello", "noop", json!({})).await;
        assert_eq!(again.version, 2, "{store}");
        let ran = client
            .get_execution(proto::GetExecutionRequest { execution_id: id })
            .await
            .unwrap()
            .into_inner()
            .execution
            .unwrap();
        assert_eq!(ran.workflow_version, 1, "{store}");
        let old = client
            .get(proto::GetRequest {
                name: "hello".into(),
                version: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(
            old.code(),
            Code::NotFound,
            "{store}: version 1 is gone, not reused"
        );
    }
}

/// Unregister is refused while an execution of the name is unfinished: it could not
/// resume after a restart without its definition. Once the execution has ended, it is not.
#[tokio::test]
async fn a_workflow_with_an_unfinished_execution_is_not_unregistered() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let id = client
        .start_execution(proto::StartExecutionRequest {
            name: "nap".into(),
            input: json_struct(json!({"duration_ms": 60000})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    let unregister = |mut c: Client| async move {
        c.unregister(proto::UnregisterRequest { name: "nap".into() })
            .await
    };
    let refused = unregister(client.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().starts_with(&format!(
            "execution {id} of workflow 'nap' is running: a workflow's unfinished executions need it to resume after a restart; cancel it (wfm cancel {id})"
        )),
        "{}",
        refused.message()
    );
    client
        .get(proto::GetRequest {
            name: "nap".into(),
            version: 0,
        })
        .await
        .expect("still registered");
    client
        .cancel_execution(proto::CancelExecutionRequest {
            execution_id: id,
            reason: "done with it".into(),
        })
        .await
        .unwrap();
    unregister(client.clone())
        .await
        .expect("no unfinished execution left");
}

/// An execution starting while its workflow is unregistered makes the unregister refuse,
/// or is refused itself (NOT_FOUND): never do both succeed, which would leave a running
/// execution whose definition is gone and which could not resume after a restart. Before
/// the fix both succeeded in nearly every round: unregister looked in the store, where a
/// starting execution's record was not yet committed, and removed the workflow after.
#[tokio::test]
async fn an_execution_starting_during_unregister_never_outlives_its_workflow() {
    for store in ["sqlite", "memory"] {
        let server = Server::start_with(&[("WFM_STORE", store)], &[]).await;
        let client = server.client().await;
        let (mut refused, mut both) = (0, Vec::new());
        for round in 0..30 {
            let name = format!("nap{round}");
            register(&mut client.clone(), &name, "sleep", json!({})).await;
            let starts: Vec<_> = (0..8)
                .map(|_| {
                    let (mut c, name) = (client.clone(), name.clone());
                    tokio::spawn(async move {
                        c.start_execution(proto::StartExecutionRequest {
                            name,
                            input: json_struct(json!({"duration_ms": 60000})),
                            ..Default::default()
                        })
                        .await
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            let unregistered = client
                .clone()
                .unregister(proto::UnregisterRequest { name: name.clone() })
                .await;
            let mut started = Vec::new();
            for start in starts {
                match start.await.unwrap() {
                    Ok(r) => started.push(r.into_inner().execution_id),
                    Err(e) => assert_eq!(e.code(), Code::NotFound, "{store}: {e:?}"),
                }
            }
            match &unregistered {
                Ok(_) if !started.is_empty() => both.push((name.clone(), started.clone())),
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.code(), Code::FailedPrecondition, "{store}: {e:?}");
                    refused += 1;
                }
            }
            for id in started {
                client
                    .clone()
                    .cancel_execution(proto::CancelExecutionRequest {
                        execution_id: id,
                        reason: "the test is done with it".into(),
                    })
                    .await
                    .unwrap();
            }
        }
        assert!(
            both.is_empty(),
            "{store}: unregistered while these executions started and ran: {both:?}"
        );
        eprintln!("{store}: {refused} of 30 unregisters refused, the others came first");
    }
}

/// Time filters compare the nanoseconds an execution's `create_time` shows, in either
/// store: a bound a few nanoseconds after it excludes it from "from" and includes it in
/// "before" (the durable store's index holds whole microseconds).
#[tokio::test]
async fn time_filters_are_exact_to_the_nanosecond() {
    for store in ["sqlite", "memory"] {
        let server = Server::start_with(&[("WFM_STORE", store)], &[]).await;
        let mut client = server.client().await;
        register(&mut client, "echo", "echo", json!({})).await;
        execute(&mut client, "echo", json!({})).await;
        let reader = client.clone();
        let listed = |start: Option<prost_types::Timestamp>,
                      end: Option<prost_types::Timestamp>| {
            let mut client = reader.clone();
            async move {
                client
                    .list_executions(proto::ListExecutionsRequest {
                        create_time_start: start,
                        create_time_end: end,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .executions
                    .len()
            }
        };
        let created = client
            .list_executions(proto::ListExecutionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .executions[0]
            .create_time
            .unwrap();
        let mut later = created;
        later.nanos += 1;
        if later.nanos >= 1_000_000_000 {
            (later.seconds, later.nanos) = (later.seconds + 1, 0);
        }
        assert_eq!(
            listed(Some(created), None).await,
            1,
            "{store}: from its own time"
        );
        assert_eq!(
            listed(Some(later), None).await,
            0,
            "{store}: from 1 ns after"
        );
        assert_eq!(
            listed(None, Some(later)).await,
            1,
            "{store}: before 1 ns after"
        );
        assert_eq!(
            listed(None, Some(created)).await,
            0,
            "{store}: before its own time"
        );
    }
}
