//! The WorkflowService facade: checks and converts requests, calls the manager, converts back.

use std::{collections::BTreeMap, pin::Pin, sync::Arc, time::Duration};

use futures_util::FutureExt;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::convert;
use super::outbox::{Outbox, Sent};
use crate::engine::Event;
use crate::manager::{
    ManagerError, RegisterSpec, ShutdownPlan, StartSpec, Unfinished, Watcher, WorkflowManager,
};
use crate::proto::{self, workflow_service_server::WorkflowService};
use crate::store::ExecutionFilter;
use crate::telemetry::{rpc, stats};

/// Longest grace period Shutdown takes: a stop that waits for days is a mistake.
const MAX_GRACE: Duration = crate::config::MAX_SHUTDOWN_GRACE;
/// Room a List or ListExecutions page keeps, within `limits.max_message_bytes`, for what
/// is not an item: the page token (at most 256 bytes, a workflow name in hex) and its tag.
const PAGE_ROOM: usize = 1024;
/// After the service stopped, how long a stream may still take to deliver its last events.
const STREAM_DRAIN: Duration = Duration::from_secs(2);

type EventStream<R> = Pin<Box<dyn Stream<Item = Result<R, Status>> + Send>>;

pub struct Service {
    manager: Arc<WorkflowManager>,
    health: tonic_health::server::HealthReporter,
    /// The configured shutdown, for what a Shutdown request leaves unset.
    default_shutdown: ShutdownPlan,
    /// Cancelled to stop the server once the manager has shut down.
    server_stop: CancellationToken,
}

impl Service {
    pub fn new(
        manager: Arc<WorkflowManager>,
        health: tonic_health::server::HealthReporter,
        default_shutdown: ShutdownPlan,
        server_stop: CancellationToken,
    ) -> Self {
        Service {
            manager,
            health,
            default_shutdown,
            server_stop,
        }
    }

    /// Cuts a page short where the next item would take the response past
    /// `limits.max_message_bytes`: tonic would refuse to send it at all, so a few large
    /// items (executions with big inputs) would make a whole listing unreadable. A page cut
    /// short continues with a token after its last item (`token_after(kept)`); its first
    /// item is always sent, unless it alone is too large, which is an error naming the limit.
    fn fit_page<T: prost::Message>(
        &self,
        mut items: Vec<T>,
        next: String,
        token_after: impl Fn(usize) -> String,
        describe: impl Fn(usize) -> String,
    ) -> Result<(Vec<T>, String), ManagerError> {
        let max = self.manager.limits().max_message_bytes;
        let budget = max.saturating_sub(PAGE_ROOM);
        let mut used = 0;
        for (i, item) in items.iter().enumerate() {
            // The item as a field of the response: its tag, its length, then itself.
            let len = prost::encoding::message::encoded_len(1, item);
            if used + len <= budget {
                used += len;
                continue;
            }
            if i == 0 {
                return Err(too_large(max, &describe(0), len, "list it"));
            }
            items.truncate(i);
            return Ok((items, token_after(i)));
        }
        Ok((items, next))
    }

    /// Refuses an answer tonic would refuse to send (over `limits.max_message_bytes`),
    /// with an error that names the limit instead of tonic's own.
    fn fits<T: prost::Message>(&self, answer: &T, what: &str) -> Result<(), ManagerError> {
        let max = self.manager.limits().max_message_bytes;
        let len = answer.encoded_len();
        if len > max {
            return Err(too_large(max, what, len, "read it"));
        }
        Ok(())
    }

    fn stream<R: Send + 'static>(
        &self,
        mut watcher: Watcher,
        ready: Vec<Arc<Event>>,
        wrap: fn(proto::ExecutionEvent) -> R,
    ) -> EventStream<R> {
        let (outbox, stream) = Outbox::channel();
        let mut last_queued = 0;
        for event in &ready {
            // At most the outbox's capacity (see `ready_events`): this cannot wait.
            let _ = outbox.try_send(Ok(wrap(convert::event(event))));
            last_queued = event.sequence;
        }
        if ready.last().is_some_and(|e| e.is_terminal()) {
            // Everything is queued: the stream ends with them (and its trailers can leave
            // in the same write), with no task to follow the execution.
            return Box::pin(stream);
        }
        let stopped = self.manager.stopped();
        let slow_reader = self.manager.limits().slow_reader_timeout;
        tokio::spawn(async move {
            let mut deadline: Option<tokio::time::Instant> = None;
            // `last_queued`: the last sequence queued; the watcher gives them one after the other.
            loop {
                let next = tokio::select! {
                    biased;
                    _ = outbox.closed() => return, // the client went away; the execution goes on
                    next = watcher.next() => next,
                    _ = stopped.cancelled(), if deadline.is_none() => {
                        deadline = Some(tokio::time::Instant::now() + STREAM_DRAIN);
                        continue;
                    }
                    _ = sleep_until(deadline) => {
                        outbox.send_last(Err(Status::unavailable(format!(
                            "wfm stopped before execution {} ended; resume with WatchExecution after sequence you last saw",
                            watcher.execution_id()
                        )))).await;
                        return;
                    }
                };
                match next {
                    Ok(Some(event)) => {
                        match outbox
                            .send(Ok(wrap(convert::event(&event))), slow_reader)
                            .await
                        {
                            Sent::Queued => last_queued = event.sequence,
                            Sent::ReaderGone => return,
                            Sent::Stalled => {
                                let id = watcher.execution_id().to_string();
                                outbox.cut_off(|dropped| {
                                    let sent = last_queued.saturating_sub(dropped as u64);
                                    tracing::info!(execution = %id, sent, dropped, "slow stream reader cut off");
                                    Status::from(ManagerError::ResourceExhausted {
                                        limit: "limits.slow_reader_timeout",
                                        value: humantime::format_duration(slow_reader).to_string(),
                                        detail: format!(
                                            "the reader of execution {id} took no event for that long while events waited, so this stream ends \
                                             (events up to sequence {sent} were sent); resume with WatchExecution after the last sequence you received"
                                        ),
                                    })
                                });
                                return;
                            }
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        outbox.send_last(Err(e.into())).await;
                        return;
                    }
                }
            }
        });
        Box::pin(stream)
    }
}

/// The watcher's next event, then every further one that is already there, up to what one
/// stream's outbox holds.
async fn ready_events(watcher: &mut Watcher) -> Result<Vec<Arc<Event>>, ManagerError> {
    let Some(first) = watcher.next().await? else {
        return Ok(Vec::new());
    };
    let mut ready = vec![first];
    while ready.len() < Outbox::<()>::CAPACITY {
        // Dropping a pending `next` loses nothing: the watcher changes only once an event is
        // there, and an error now comes back on the stream's next call.
        match watcher.next().now_or_never() {
            Some(Ok(Some(event))) => ready.push(event),
            _ => break,
        }
    }
    Ok(ready)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn labels(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

#[tonic::async_trait]
impl WorkflowService for Service {
    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        let r = request.into_inner();
        let (type_name, arguments, definition) = match r.source {
            Some(proto::register_request::Source::Native(native)) => (
                native.r#type,
                convert::struct_to_json("native.arguments", native.arguments)?,
                None,
            ),
            Some(proto::register_request::Source::Definition(d)) => (
                String::new(),
                serde_json::Value::Null,
                Some(super::convert_definition::definition_from_proto(d)?),
            ),
            None => {
                return Err(ManagerError::invalid(
                    "source",
                    "is required: give `native` with a workflow type (see ListWorkflowTypes) or a `definition`",
                )
                .into());
            }
        };
        let max_concurrency = u32::try_from(r.max_concurrency).map_err(|_| {
            ManagerError::invalid(
                "max_concurrency",
                format!(
                    "{} is negative; use 0 for no per-workflow limit",
                    r.max_concurrency
                ),
            )
        })?;
        let spec = RegisterSpec {
            name: r.name,
            description: r.description,
            labels: labels(r.labels),
            max_concurrency,
            type_name,
            arguments,
            definition,
        };
        let (record, created) = self.manager.register(spec).await?;
        rpc::note_workflow(&record.name, record.version as i32);
        Ok(Response::new(proto::RegisterResponse {
            workflow: Some(convert::workflow(&record)),
            created,
        }))
    }

    async fn unregister(
        &self,
        request: Request<proto::UnregisterRequest>,
    ) -> Result<Response<proto::UnregisterResponse>, Status> {
        let name = request.into_inner().name;
        rpc::note_workflow(&name, 0);
        let removed = self.manager.unregister(&name).await?;
        stats::forget(&name);
        Ok(Response::new(proto::UnregisterResponse {
            versions_removed: removed as i32,
        }))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let r = request.into_inner();
        let label_filter = labels(r.label_filter);
        let (page, next) = self
            .manager
            .list(r.page_size, &r.page_token, &label_filter)?;
        let (workflows, next_page_token) = self.fit_page(
            page.iter().map(convert::workflow).collect(),
            next,
            |kept| crate::manager::workflow_page_token(&label_filter, &page[kept - 1].name),
            |first| format!("workflow '{}'", page[first].name),
        )?;
        Ok(Response::new(proto::ListResponse {
            workflows,
            next_page_token,
        }))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let r = request.into_inner();
        rpc::note_workflow(&r.name, r.version);
        let (record, versions) = self.manager.get(&r.name, r.version)?;
        Ok(Response::new(proto::GetResponse {
            workflow: Some(convert::workflow(&record)),
            versions: versions.into_iter().map(|v| v as i32).collect(),
        }))
    }

    type ExecuteStream = EventStream<proto::ExecuteResponse>;

    async fn execute(
        &self,
        request: Request<proto::ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let r = request.into_inner();
        rpc::note_workflow(&r.name, r.version);
        let spec = StartSpec {
            name: r.name,
            version: r.version,
            input: convert::struct_to_json("input", r.input)?,
            metadata: convert::struct_to_json("metadata", r.metadata)?,
            request_id: r.request_id,
            parent_execution_id: None,
        };
        let mut watcher = self.manager.execute(spec).await?;
        rpc::note_execution(watcher.execution_id());
        // The first event follows the execution's creation at once. Answering with it and
        // whatever followed it lets the response's headers and first events (all of them, for
        // a quick execution, with the trailers) leave in one write instead of several.
        let ready = ready_events(&mut watcher).await?;
        Ok(Response::new(self.stream(watcher, ready, |event| {
            proto::ExecuteResponse { event: Some(event) }
        })))
    }

    async fn start_execution(
        &self,
        request: Request<proto::StartExecutionRequest>,
    ) -> Result<Response<proto::StartExecutionResponse>, Status> {
        let r = request.into_inner();
        rpc::note_workflow(&r.name, r.version);
        let spec = StartSpec {
            name: r.name,
            version: r.version,
            input: convert::struct_to_json("input", r.input)?,
            metadata: convert::struct_to_json("metadata", r.metadata)?,
            request_id: r.request_id,
            parent_execution_id: None,
        };
        let (execution_id, created) = self.manager.start(spec).await?;
        rpc::note_execution(&execution_id);
        Ok(Response::new(proto::StartExecutionResponse {
            execution_id,
            created,
        }))
    }

    async fn get_execution(
        &self,
        request: Request<proto::GetExecutionRequest>,
    ) -> Result<Response<proto::GetExecutionResponse>, Status> {
        let id = request.into_inner().execution_id;
        rpc::note_execution(&id);
        let record = self.manager.get_execution(&id).await?;
        rpc::note_workflow(&record.workflow_name, record.workflow_version as i32);
        let answer = proto::GetExecutionResponse {
            execution: Some(convert::execution(&record)),
        };
        self.fits(&answer, &format!("execution '{id}'"))?;
        Ok(Response::new(answer))
    }

    async fn list_executions(
        &self,
        request: Request<proto::ListExecutionsRequest>,
    ) -> Result<Response<proto::ListExecutionsResponse>, Status> {
        let r = request.into_inner();
        let filter = ExecutionFilter {
            workflow_name: (!r.workflow_name.is_empty()).then_some(r.workflow_name),
            status: convert::status_filter(r.status)?,
            created_from: r
                .create_time_start
                .as_ref()
                .map(|t| convert::system_time("create_time_start", t))
                .transpose()?,
            created_before: r
                .create_time_end
                .as_ref()
                .map(|t| convert::system_time("create_time_end", t))
                .transpose()?,
        };
        let (page, next) = self
            .manager
            .list_executions(&filter, r.page_size, &r.page_token)
            .await?;
        let (executions, next_page_token) = self.fit_page(
            page.iter().map(convert::execution).collect(),
            next,
            |kept| crate::manager::execution_page_token(&filter, &page[kept - 1].id),
            |first| format!("execution '{}'", page[first].id),
        )?;
        Ok(Response::new(proto::ListExecutionsResponse {
            executions,
            next_page_token,
        }))
    }

    type WatchExecutionStream = EventStream<proto::WatchExecutionResponse>;

    async fn watch_execution(
        &self,
        request: Request<proto::WatchExecutionRequest>,
    ) -> Result<Response<Self::WatchExecutionStream>, Status> {
        let r = request.into_inner();
        rpc::note_execution(&r.execution_id);
        let watcher = self
            .manager
            .watch(&r.execution_id, r.after_sequence)
            .await?;
        Ok(Response::new(self.stream(watcher, Vec::new(), |event| {
            proto::WatchExecutionResponse { event: Some(event) }
        })))
    }

    async fn cancel_execution(
        &self,
        request: Request<proto::CancelExecutionRequest>,
    ) -> Result<Response<proto::CancelExecutionResponse>, Status> {
        let r = request.into_inner();
        rpc::note_execution(&r.execution_id);
        let status = self.manager.cancel(&r.execution_id, &r.reason).await?;
        Ok(Response::new(proto::CancelExecutionResponse {
            status: convert::execution_status(status) as i32,
        }))
    }

    async fn list_workflow_types(
        &self,
        _request: Request<proto::ListWorkflowTypesRequest>,
    ) -> Result<Response<proto::ListWorkflowTypesResponse>, Status> {
        let workflow_types = self
            .manager
            .workflow_types()
            .into_iter()
            .map(|t| proto::WorkflowType {
                name: t.name.to_string(),
                description: t.description.to_string(),
                arguments_schema: Some(convert::json_to_struct(&t.arguments_schema)),
            })
            .collect();
        Ok(Response::new(proto::ListWorkflowTypesResponse {
            workflow_types,
        }))
    }

    async fn list_tools(
        &self,
        _request: Request<proto::ListToolsRequest>,
    ) -> Result<Response<proto::ListToolsResponse>, Status> {
        let tools = self
            .manager
            .tools()
            .into_iter()
            .map(|t| proto::Tool {
                name: t.name,
                description: t.description,
                input_schema: Some(convert::json_to_struct(&t.input_schema)),
                server: t.server,
            })
            .collect();
        Ok(Response::new(proto::ListToolsResponse { tools }))
    }

    async fn get_stats(
        &self,
        request: Request<proto::GetStatsRequest>,
    ) -> Result<Response<proto::GetStatsResponse>, Status> {
        let name = request.into_inner().workflow_name;
        let names = if name.is_empty() {
            self.manager.workflow_names()
        } else {
            rpc::note_workflow(&name, 0);
            self.manager.get(&name, 0)?;
            vec![name]
        };
        Ok(Response::new(proto::GetStatsResponse {
            workflows: names
                .iter()
                .map(|n| convert::workflow_stats(n, &stats::snapshot(n)))
                .collect(),
            since: Some(convert::timestamp(stats::since())),
        }))
    }

    async fn shutdown(
        &self,
        request: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ShutdownResponse>, Status> {
        let request = request.into_inner();
        let grace = match request.grace_period {
            Some(d) => convert::std_duration("grace_period", &d)?,
            None => self.default_shutdown.grace,
        };
        let unfinished = match request.resume_unfinished {
            Some(true) => Unfinished::Resume,
            Some(false) => Unfinished::Cancel,
            None => self.default_shutdown.unfinished,
        };
        if grace > MAX_GRACE {
            return Err(ManagerError::invalid(
                "grace_period",
                format!(
                    "{} is over the maximum of {}",
                    humantime::format_duration(grace),
                    humantime::format_duration(MAX_GRACE)
                ),
            )
            .into());
        }
        tracing::warn!(grace = ?grace, unfinished = ?unfinished, "shutdown requested");
        self.health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        self.health
            .set_not_serving::<proto::workflow_service_server::WorkflowServiceServer<Service>>()
            .await;
        let report = self
            .manager
            .shutdown(ShutdownPlan { grace, unfinished })
            .await;
        self.server_stop.cancel();
        Ok(Response::new(proto::ShutdownResponse {
            finished_during_grace: report.finished_during_grace as i32,
            cancelled: report.cancelled as i32,
            left_to_resume: report.left_to_resume as i32,
        }))
    }
}

/// An answer over `limits.max_message_bytes`: what it is, its size, and the way out.
fn too_large(max: usize, what: &str, len: usize, to: &str) -> ManagerError {
    ManagerError::OutOfRange {
        limit: "limits.max_message_bytes",
        value: max.to_string(),
        detail: format!(
            "{what} alone is {len} bytes encoded, too large for one response; raise the limit to {to}"
        ),
    }
}
