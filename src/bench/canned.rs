//! The contract's own cost: a server that answers Execute with the events of a real 1-step
//! execution, replayed, and does nothing else. Against its own Health/Check floor it gives
//! the ceiling for `execute-memory` on this gRPC stack (the same five messages encoded,
//! sent, received and decoded); the gap between the two rows is what wfm's own work costs
//! (creating, running and recording an execution and following its events).
//!
//! It runs in the benchmark's process on a runtime of its own with as many workers as the
//! real server, on the transport settings the real server uses, without its layers (auth,
//! observation, rate limit): a floor, not a competitor.

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpListener},
    sync::Arc,
    thread::JoinHandle,
};

use anyhow::Context;
use tokio::sync::oneshot;
use tonic::{
    Request, Response, Status,
    body::Body,
    codegen::{BoxFuture, StdError, http},
    server::{Grpc, NamedService, ServerStreamingService},
};

use crate::proto::{ExecuteRequest, ExecuteResponse};

/// Its rows' "store" column.
pub const STORE: &str = "canned";

const EXECUTE_PATH: &str = "/workflow.v1.WorkflowService/Execute";

/// The canned server, stopped when dropped.
pub struct CannedServer {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CannedServer {
    /// Serves Health/Check and an Execute that answers every call with `events`.
    pub fn start(events: Vec<ExecuteResponse>) -> anyhow::Result<CannedServer> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("cannot bind the canned server")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("wfm-bench-canned")
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let service = CannedExecute {
            events: events.into(),
        };
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let (_reporter, health) = tonic_health::server::health_reporter();
                let _ = tonic::transport::Server::builder()
                    .max_concurrent_streams(4096)
                    .add_service(health)
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener)
                            .with_nodelay(Some(true)),
                        async {
                            let _ = stopped.await;
                        },
                    )
                    .await;
            })
        });
        Ok(CannedServer {
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for CannedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `workflow.v1.WorkflowService` with Execute only; every other method is unimplemented.
#[derive(Clone)]
struct CannedExecute {
    events: Arc<[ExecuteResponse]>,
}

impl NamedService for CannedExecute {
    const NAME: &'static str = crate::proto::workflow_service_server::SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for CannedExecute
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let replay = Replay(self.events.clone());
        Box::pin(async move {
            if request.uri().path() != EXECUTE_PATH {
                return Ok(
                    Status::unimplemented("the canned server answers Execute only").into_http(),
                );
            }
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.server_streaming(replay, request).await)
        })
    }
}

/// Every call's stream: the recorded events, all ready at once.
struct Replay(Arc<[ExecuteResponse]>);

impl ServerStreamingService<ExecuteRequest> for Replay {
    type Response = ExecuteResponse;
    type ResponseStream = tokio_stream::Iter<std::vec::IntoIter<Result<ExecuteResponse, Status>>>;
    type Future = std::future::Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, _request: Request<ExecuteRequest>) -> Self::Future {
        let events: Vec<_> = self.0.iter().cloned().map(Ok).collect();
        std::future::ready(Ok(Response::new(tokio_stream::iter(events))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        ExecutionEvent, RegisterRequest, execution_event::Kind,
        workflow_service_client::WorkflowServiceClient,
    };

    fn event(sequence: i64, kind: Kind) -> ExecuteResponse {
        ExecuteResponse {
            event: Some(ExecutionEvent {
                execution_id: "recorded".into(),
                sequence,
                time: None,
                kind: Some(kind),
            }),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_execute_gets_the_recorded_events_and_nothing_else_is_served() {
        let recorded = vec![
            event(1, Kind::Started(Default::default())),
            event(2, Kind::Completed(Default::default())),
        ];
        let server = CannedServer::start(recorded.clone()).unwrap();
        let mut client = WorkflowServiceClient::connect(server.url.clone())
            .await
            .unwrap();
        for _ in 0..2 {
            let mut stream = client
                .execute(ExecuteRequest {
                    name: "anything".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut got = Vec::new();
            while let Some(response) = stream.message().await.unwrap() {
                got.push(response);
            }
            assert_eq!(got, recorded);
        }
        let refused = client
            .register(RegisterRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
    }
}
