//! The per-token request rate limit against a real server: past the burst a caller gets
//! RESOURCE_EXHAUSTED naming the limit, other callers and health are not affected, a
//! refused call changes nothing, and the caller is served again once its bucket refills.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tonic::Code;
use wfm::api::auth::{Role, create_token};
use wfm::client::{ConnectOptions, connect};
use wfm::proto;

const RATE: &str = "5";
const BURST: usize = 5;

fn limited() -> [(&'static str, &'static str); 2] {
    [
        ("WFM_LIMITS__REQUESTS_PER_SECOND_PER_TOKEN", RATE),
        ("WFM_LIMITS__REQUEST_BURST_PER_TOKEN", "5"),
    ]
}

#[tokio::test]
async fn each_token_has_its_own_budget() {
    let (ci, ci_entry) = create_token("ci", Role::Admin).unwrap();
    let (dash, dash_entry) = create_token("dash", Role::Reader).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wfm.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\ntokens = [\n  {{ id = \"ci\", role = \"admin\", sha256 = \"{}\" }},\n  {{ id = \"dash\", role = \"reader\", sha256 = \"{}\" }},\n]\n",
            ci_entry.sha256, dash_entry.sha256
        ),
    )
    .unwrap();
    let server = Server::start_with(&limited(), &["--config", config.to_str().unwrap()]).await;
    let with = |token: &str| ConnectOptions {
        token: Some(token.to_string()),
        ..Default::default()
    };
    let mut ci = connect(&server.url(), with(&ci)).await.unwrap();
    let mut dash = connect(&server.url(), with(&dash)).await.unwrap();

    for i in 0..BURST {
        ci.list(proto::ListRequest::default())
            .await
            .unwrap_or_else(|e| panic!("request {i} is within the burst: {e}"));
    }
    // Past the burst: refused, naming the limit, its value and the token; a refused
    // Register registers nothing.
    let refused = ci
        .register(proto::RegisterRequest {
            name: "flood".into(),
            source: native("echo", json!({})),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().starts_with(
            "limits.requests_per_second_per_token is 5: rate limit exceeded for token 'ci'"
        ),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("retry after"),
        "{}",
        refused.message()
    );
    assert!(refused.metadata().get("grpc-retry-pushback-ms").is_some());

    // Another token has its own budget, and health is not counted.
    let listed = dash
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.workflows.is_empty(),
        "the refused Register changed nothing"
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    for _ in 0..20 {
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap();
    }

    // At 5 per second, a request is allowed again after 200 ms.
    tokio::time::sleep(Duration::from_millis(250)).await;
    ci.register(proto::RegisterRequest {
        name: "after-the-wait".into(),
        source: native("echo", json!({})),
        ..Default::default()
    })
    .await
    .expect("served again once the bucket refilled");
}

#[tokio::test]
async fn without_auth_every_caller_is_one_anonymous_caller() {
    let server = Server::start_with(&limited(), &[]).await;
    // Two connections, one budget.
    let mut first = server.client().await;
    let mut second = server.client().await;
    for i in 0..BURST {
        let client = if i % 2 == 0 { &mut first } else { &mut second };
        client.list(proto::ListRequest::default()).await.unwrap();
    }
    let refused = second
        .list(proto::ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("for token 'anonymous'"),
        "{}",
        refused.message()
    );
}
