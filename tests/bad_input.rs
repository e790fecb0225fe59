//! The bad-input matrix: every RPC with empty, huge, wrongly typed, deeply nested,
//! invalid UTF-8, negative and enormous, unknown-enum, NaN, duplicated-key and garbage
//! input. Each case gets the right gRPC code and a message that says what to fix, and
//! changes nothing: the workflows (with their versions) and the executions (with their
//! status and events) are the same after it as before.

mod common;

#[path = "bad_input/cli.rs"]
mod cli;
#[path = "bad_input/executions.rs"]
mod executions;
#[path = "bad_input/reads.rs"]
mod reads;
#[path = "bad_input/registrations.rs"]
mod registrations;
#[path = "bad_input/wire.rs"]
mod wire;

use common::*;
use tonic::Code;
use wfm::proto;

/// A workflow as a bad request must leave it: name, versions, latest description and labels.
type WorkflowState = (String, Vec<i32>, String, Vec<(String, String)>);

/// What a bad request must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    workflows: Vec<WorkflowState>,
    /// Id, status, last sequence.
    executions: Vec<(String, i32, i64)>,
}

async fn snapshot(client: &mut Client) -> Snapshot {
    let listed = client
        .list(proto::ListRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("List")
        .into_inner()
        .workflows;
    let mut workflows = Vec::new();
    for w in listed {
        let versions = client
            .get(proto::GetRequest {
                name: w.name.clone(),
                version: 0,
            })
            .await
            .expect("Get")
            .into_inner()
            .versions;
        let mut labels: Vec<_> = w.labels.into_iter().collect();
        labels.sort();
        workflows.push((w.name, versions, w.description, labels));
    }
    let executions = client
        .list_executions(proto::ListExecutionsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListExecutions")
        .into_inner()
        .executions
        .into_iter()
        .map(|e| (e.id, e.status, e.last_sequence))
        .collect();
    Snapshot {
        workflows,
        executions,
    }
}

/// Checks cases one by one against a baseline of what the server holds.
struct Matrix {
    client: Client,
    baseline: Snapshot,
    cases: usize,
}

impl Matrix {
    async fn new(server: &Server) -> Matrix {
        let mut client = server.client().await;
        let baseline = snapshot(&mut client).await;
        Matrix {
            client,
            baseline,
            cases: 0,
        }
    }

    /// The answer has `code`, its message contains `says`, and nothing changed.
    async fn check<T: std::fmt::Debug>(
        &mut self,
        case: &str,
        answer: Result<T, tonic::Status>,
        code: Code,
        says: &str,
    ) {
        let err = match answer {
            Ok(ok) => panic!("{case}: accepted: {ok:?}"),
            Err(err) => err,
        };
        assert_eq!(err.code(), code, "{case}: {}", err.message());
        assert!(
            err.message().contains(says),
            "{case}: message {:?} should say {says:?}",
            err.message()
        );
        assert!(
            err.message().len() < 4200,
            "{case}: a message of {} bytes",
            err.message().len()
        );
        let now = snapshot(&mut self.client).await;
        assert_eq!(now, self.baseline, "{case}: the server's state changed");
        self.cases += 1;
    }
}

/// A list nested `levels` deep.
fn deep_list(levels: usize) -> serde_json::Value {
    let mut deep = serde_json::json!("bottom");
    for _ in 0..levels {
        deep = serde_json::json!([deep]);
    }
    deep
}

const SOME_ID: &str = "01a20fc6-47b6-731f-bc39-9d945e4990e6";
