//! The tower layer that observes every gRPC call: counts it by method and final status
//! code, times it, keeps the open-streams gauge, writes one log line per call, and hands
//! the caller's W3C trace context to the execution an Execute or StartExecution starts.
//! A streaming call is counted when its stream ends, with the status of its trailers.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame};
use metrics::{Counter, Gauge, Histogram, SharedString};
use prost::Message;
use tonic::{Code, codegen::http};

use crate::telemetry::metrics::{GRPC_DURATION, GRPC_REQUESTS, GRPC_STREAMS_OPEN};
use crate::telemetry::{rpc, trace};

/// The service whose calls get an info log line; health checks and reflection log at debug.
const LOGGED_SERVICE: &str = "workflow.v1.WorkflowService";
/// The calls whose `traceparent` becomes the parent of the execution they start.
const STARTS_EXECUTIONS: &[&str] = &["Execute", "StartExecution"];

/// One gRPC method's handles, taken on its first call.
struct Method {
    service: SharedString,
    name: SharedString,
    logged: bool,
    starts_executions: bool,
    /// By status code (0 to 16).
    requests: [OnceLock<Counter>; 17],
    duration: OnceLock<Histogram>,
    open: OnceLock<Gauge>,
}

impl Method {
    fn new(service: &str, name: &str) -> Self {
        Method {
            service: SharedString::from(Arc::<str>::from(service)),
            name: SharedString::from(Arc::<str>::from(name)),
            logged: service == LOGGED_SERVICE,
            starts_executions: service == LOGGED_SERVICE && STARTS_EXECUTIONS.contains(&name),
            requests: Default::default(),
            duration: OnceLock::new(),
            open: OnceLock::new(),
        }
    }

    fn labels(&self) -> [(&'static str, SharedString); 2] {
        [
            ("service", self.service.clone()),
            ("method", self.name.clone()),
        ]
    }

    fn open(&self) -> &Gauge {
        self.open
            .get_or_init(|| metrics::gauge!(GRPC_STREAMS_OPEN, &self.labels()))
    }

    fn ended(&self, code: Code, took: std::time::Duration) {
        let code_name = code_name(code);
        self.requests[code as usize]
            .get_or_init(|| {
                let [service, method] = self.labels();
                metrics::counter!(
                    GRPC_REQUESTS,
                    &[service, method, ("code", code_name.into())]
                )
            })
            .increment(1);
        self.duration
            .get_or_init(|| metrics::histogram!(GRPC_DURATION, &self.labels()))
            .record(took);
    }
}

/// Every method of the served services, by HTTP path; any other path counts as `other`,
/// so a client cannot make up label values.
struct Methods {
    by_path: HashMap<String, Arc<Method>>,
    other: Arc<Method>,
}

impl Methods {
    fn new(descriptor_sets: &[&[u8]]) -> Self {
        let mut by_path = HashMap::new();
        for set in descriptor_sets {
            let set = prost_types::FileDescriptorSet::decode(*set).expect("a valid descriptor set");
            for file in &set.file {
                for service in &file.service {
                    let name = format!("{}.{}", file.package(), service.name());
                    for method in &service.method {
                        by_path.insert(
                            format!("/{name}/{}", method.name()),
                            Arc::new(Method::new(&name, method.name())),
                        );
                    }
                }
            }
        }
        Methods {
            by_path,
            other: Arc::new(Method::new("other", "other")),
        }
    }

    fn get(&self, path: &str) -> Arc<Method> {
        self.by_path.get(path).unwrap_or(&self.other).clone()
    }
}

#[derive(Clone)]
pub struct ObserveLayer {
    methods: Arc<Methods>,
}

impl ObserveLayer {
    /// Observes the methods of the services in these encoded descriptor sets.
    pub fn new(descriptor_sets: &[&[u8]]) -> Self {
        ObserveLayer {
            methods: Arc::new(Methods::new(descriptor_sets)),
        }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner,
            methods: self.methods.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
    methods: Arc<Methods>,
}

impl<S, B, R> tower::Service<http::Request<B>> for ObserveService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    R: Body + Unpin + Send + 'static,
{
    type Response = http::Response<ObservedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = self.methods.get(request.uri().path());
        method.open().increment(1);
        let parent = if method.starts_executions {
            trace::extract(request.headers())
        } else {
            None
        };
        let mut end = End {
            method,
            started,
            call: rpc::Call::default(),
            head: None,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let call = rpc::Call {
                parent,
                ..Default::default()
            };
            let (response, call) = rpc::scope(call, response).await;
            end.call = call;
            match response {
                Ok(response) => {
                    // A call that failed before any message answers with its status in the
                    // headers (trailers-only).
                    end.head = grpc_status(response.headers());
                    Ok(response.map(|inner| ObservedBody {
                        inner,
                        end: Some(end),
                    }))
                }
                Err(e) => {
                    end.finish(Code::Unknown);
                    Err(e)
                }
            }
        })
    }
}

/// What is recorded when a call ends.
struct End {
    method: Arc<Method>,
    started: Instant,
    call: rpc::Call,
    head: Option<Code>,
}

impl End {
    fn finish(self, code: Code) {
        let took = self.started.elapsed();
        let m = &self.method;
        m.ended(code, took);
        m.open().decrement(1);
        let c = &self.call;
        let (workflow, execution_id) = (c.workflow.as_deref(), c.execution_id.as_deref());
        let duration_ms = took.as_secs_f64() * 1e3;
        let code = code_name(code);
        if m.logged {
            tracing::info!(target: "wfm::rpc", method = %m.name, workflow, version = c.version, execution_id, code, duration_ms, "call");
        } else {
            tracing::debug!(target: "wfm::rpc", service = %m.service, method = %m.name, code, duration_ms, "call");
        }
    }
}

/// A response body that records its call when it ends: at its trailers, at its end, or
/// when it is dropped before (the client went away: CANCELLED).
pub struct ObservedBody<B> {
    inner: B,
    end: Option<End>,
}

impl<B> ObservedBody<B> {
    fn finish(&mut self, code: Option<Code>) {
        if let Some(end) = self.end.take() {
            let code = code.or(end.head).unwrap_or(Code::Ok);
            end.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers).unwrap_or(Code::Unknown);
                    self.finish(Some(code));
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Some(Code::Internal)),
            Poll::Ready(None) => self.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let code = end.head.unwrap_or(Code::Cancelled);
            end.finish(code);
        }
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// The canonical name of a status code, as gRPC's own tools print it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_of_the_served_services_and_nothing_else() {
        let methods = Methods::new(&[
            super::super::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ]);
        let execute = methods.get("/workflow.v1.WorkflowService/Execute");
        assert_eq!(&*execute.name, "Execute");
        assert!(execute.logged && execute.starts_executions);
        let check = methods.get("/grpc.health.v1.Health/Check");
        assert_eq!(&*check.service, "grpc.health.v1.Health");
        assert!(!check.logged);
        let made_up = methods.get("/made.Up/Anything");
        assert_eq!(&*made_up.service, "other");
    }
}
