//! The workflows the benchmark registers and the operations it times: each operation is one
//! complete user-visible action (a call answered, an execution streamed to its end).

use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::load::Operation;
use crate::api::convert::json_to_struct;
use crate::cli::definition_file::DefinitionFile;
use crate::client::{Bearer, Client, ConnectOptions, connect_channel};
use crate::proto::{self, execution_event::Kind};

pub const NOOP: &str = "bench-noop";
pub const SEQUENTIAL: &str = "bench-seq10";
pub const PARALLEL: &str = "bench-par10";
pub const SLEEP: &str = "bench-sleep";

/// Connections shared by every scenario against one server: the floor and the workflow
/// calls go over the very same ones.
#[derive(Clone)]
pub struct Pool {
    workflows: Vec<Client>,
    health: Vec<HealthClient<InterceptedService<Channel, Bearer>>>,
}

impl Pool {
    pub async fn connect(
        url: &str,
        options: &ConnectOptions,
        connections: usize,
    ) -> anyhow::Result<Pool> {
        let mut pool = Pool {
            workflows: Vec::new(),
            health: Vec::new(),
        };
        let bearer = Bearer::new(options.token.as_deref())?;
        for _ in 0..connections.max(1) {
            let channel = connect_channel(url, options.clone()).await?;
            pool.health.push(HealthClient::with_interceptor(
                channel.clone(),
                bearer.clone(),
            ));
            pool.workflows.push(
                proto::workflow_service_client::WorkflowServiceClient::with_interceptor(
                    channel,
                    bearer.clone(),
                )
                .max_decoding_message_size(64 << 20),
            );
        }
        Ok(pool)
    }

    /// The client for caller `i`: callers are spread over the connections.
    pub fn client(&self, i: usize) -> Client {
        self.workflows[i % self.workflows.len()].clone()
    }

    fn health(&self, i: usize) -> HealthClient<InterceptedService<Channel, Bearer>> {
        self.health[i % self.health.len()].clone()
    }
}

/// A declarative workflow of ten cheap tool steps, one after the other or all at once.
fn ten_steps(name: &str, sequential: bool) -> anyhow::Result<proto::RegisterRequest> {
    let steps: Vec<Value> = (1..=10)
        .map(|i| {
            let mut step = json!({
                "id": format!("s{i}"),
                "tool": {"name": "json_transform", "arguments": {"data": i, "expression": "data + 1"}},
            });
            if sequential && i > 1 {
                step["depends_on"] = json!([format!("s{}", i - 1)]);
            }
            step
        })
        .collect();
    let file: DefinitionFile = serde_json::from_value(json!({ "name": name, "steps": steps }))?;
    file.into_request(None, "wfm bench".into(), Default::default(), 0)
}

fn native(name: &str, type_name: &str, arguments: Value) -> proto::RegisterRequest {
    proto::RegisterRequest {
        name: name.into(),
        description: "wfm bench".into(),
        source: Some(proto::register_request::Source::Native(
            proto::NativeSource {
                r#type: type_name.into(),
                arguments: Some(json_to_struct(&arguments)),
            },
        )),
        ..Default::default()
    }
}

/// Registers the benchmark's workflows (idempotent: the same definition twice is one version).
pub async fn register_all(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool.client(0);
    for request in [
        native(NOOP, "noop", json!({})),
        native(SLEEP, "sleep", json!({})),
        ten_steps(SEQUENTIAL, true)?,
        ten_steps(PARALLEL, false)?,
    ] {
        let name = request.name.clone();
        client
            .register(request)
            .await
            .with_context(|| format!("cannot register the benchmark workflow {name}"))?;
    }
    Ok(())
}

/// The floor: `grpc.health.v1.Health/Check`, the cheapest call the server answers.
pub fn health_check(pool: &Pool) -> Operation {
    let pool = pool.clone();
    Arc::new(move |i| {
        let mut health = pool.health(i);
        Box::pin(async move {
            let response = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|s| s.to_string())?;
            match response.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(format!("health check answered {other:?}")),
            }
        })
    })
}

/// Get of one workflow: a registry read.
pub fn get_workflow(pool: &Pool) -> Operation {
    let pool = pool.clone();
    Arc::new(move |i| {
        let mut client = pool.client(i);
        Box::pin(async move {
            client
                .get(proto::GetRequest {
                    name: NOOP.into(),
                    version: 0,
                })
                .await
                .map(|_| ())
                .map_err(|s| s.to_string())
        })
    })
}

/// Execute of `workflow`, every event read, until its Completed event.
pub fn execute(pool: &Pool, workflow: &'static str) -> Operation {
    let pool = pool.clone();
    Arc::new(move |i| {
        let mut client = pool.client(i);
        Box::pin(async move {
            let request = proto::ExecuteRequest {
                name: workflow.into(),
                ..Default::default()
            };
            let mut stream = client
                .execute(request)
                .await
                .map_err(|s| s.to_string())?
                .into_inner();
            let mut last = None;
            while let Some(response) = stream.message().await.map_err(|s| s.to_string())? {
                last = response.event.and_then(|e| e.kind);
            }
            match last {
                Some(Kind::Completed(_)) => Ok(()),
                other => Err(format!("the execution did not complete: {other:?}")),
            }
        })
    })
}

/// One Execute of `workflow`, its events as the server streamed them (the canned server
/// replays them).
pub async fn record_execute(
    pool: &Pool,
    workflow: &'static str,
) -> anyhow::Result<Vec<proto::ExecuteResponse>> {
    let mut stream = pool
        .client(0)
        .execute(proto::ExecuteRequest {
            name: workflow.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(response) = stream.message().await? {
        events.push(response);
    }
    match events.last().and_then(|r| r.event.as_ref()?.kind.as_ref()) {
        Some(Kind::Completed(_)) => Ok(events),
        other => anyhow::bail!("the recorded execution of {workflow} did not complete: {other:?}"),
    }
}

/// StartExecution of the sleep workflow: returns once the execution is accepted (durable).
pub async fn start_sleeping(
    client: &mut Client,
    duration_ms: u64,
    steps: u32,
) -> anyhow::Result<String> {
    let input = if steps > 1 {
        json!({"duration_ms": duration_ms, "steps": steps})
    } else {
        json!({"duration_ms": duration_ms})
    };
    let response = client
        .start_execution(proto::StartExecutionRequest {
            name: SLEEP.into(),
            input: Some(json_to_struct(&input)),
            ..Default::default()
        })
        .await?;
    Ok(response.into_inner().execution_id)
}
