//! Executions: admission, the task that runs one, its numbered and durable events,
//! cancellation, and look-ups.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    ManagerError, WorkflowManager, check_version,
    gate::{Admission, Permits},
    registry::RegisteredWorkflow,
    validate,
};
use crate::engine::{
    Event, EventKind, EventSink, ExecutionContext, ExecutionResult, WorkflowError,
};
use crate::store::{ExecutionFilter, ExecutionRecord, ExecutionStatus, Store};

/// Live events kept for followers; a follower that falls further behind catches up from the store.
const LIVE_EVENT_BUFFER: usize = 32;
/// How long CancelExecution waits for the execution to reach its terminal state.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// What a client asks to run.
#[derive(Debug, Clone, Default)]
pub struct StartSpec {
    pub name: String,
    /// 0: the latest version.
    pub version: i32,
    pub input: Value,
    pub metadata: Value,
    /// Idempotency key; empty for none.
    pub request_id: String,
    pub parent_execution_id: Option<String>,
}

/// A running (or queued) execution: its cancellation, its event numbering and its followers.
pub(crate) struct LiveExecution {
    pub id: String,
    pub cancel: CancellationToken,
    cancel_reason: Mutex<Option<String>>,
    /// Cancelled when the execution has reached its terminal state.
    pub finished: CancellationToken,
    pub events: broadcast::Sender<Arc<Event>>,
    last_sequence: tokio::sync::Mutex<u64>,
    store: Arc<dyn Store>,
    max_events: u64,
}

impl LiveExecution {
    /// Cancels the execution; the first reason given is the one reported.
    pub fn cancel_with(&self, reason: String) {
        self.cancel_reason
            .lock()
            .expect("cancel reason lock")
            .get_or_insert(reason);
        self.cancel.cancel();
    }

    fn cancel_reason(&self) -> String {
        self.cancel_reason
            .lock()
            .expect("cancel reason lock")
            .clone()
            .unwrap_or_else(|| "cancelled".into())
    }
}

#[async_trait]
impl EventSink for LiveExecution {
    /// Numbers the event, makes it durable, and only then hands it to followers.
    async fn emit(&self, kind: EventKind) -> Result<(), String> {
        let mut last = self.last_sequence.lock().await;
        if *last >= self.max_events && !kind.is_terminal() {
            return Err(format!(
                "the execution emitted {} events; limits.max_events_per_execution is {}",
                *last, self.max_events
            ));
        }
        let event = Event {
            execution_id: self.id.clone(),
            sequence: *last + 1,
            time: SystemTime::now(),
            kind,
        };
        self.store
            .append_event(&event)
            .await
            .map_err(|e| e.to_string())?;
        *last = event.sequence;
        // No follower is fine: the event is in the store.
        let _ = self.events.send(Arc::new(event));
        Ok(())
    }
}

impl WorkflowManager {
    /// Starts an execution and returns its id at once; `false` when `request_id` matched an
    /// execution that already exists, whose id is returned instead.
    pub async fn start(self: &Arc<Self>, spec: StartSpec) -> Result<(String, bool), ManagerError> {
        self.ensure_accepting("executions")?;
        validate::name("name", &spec.name)?;
        let version = check_version(spec.version)?;
        if !spec.request_id.is_empty() {
            validate::request_id(&spec.request_id)?;
        }
        let max = self.limits.max_input_bytes;
        for (field, value) in [("input", &spec.input), ("metadata", &spec.metadata)] {
            let size = serde_json::to_vec(value)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > max {
                return Err(ManagerError::invalid(
                    field,
                    format!("is {size} bytes as JSON; limits.max_input_bytes is {max}"),
                ));
            }
        }
        let workflow = self
            .registry
            .get(&spec.name, version)
            .ok_or_else(|| self.workflow_not_found(&spec.name, version))?;
        workflow
            .instance
            .validate_input(&spec.input)
            .map_err(|e| match e {
                WorkflowError::InvalidInput(reason) => ManagerError::invalid("input", reason),
                other => ManagerError::invalid("input", other.to_string()),
            })?;

        let _request_guard = if spec.request_id.is_empty() {
            None
        } else {
            let guard = self.request_lock.lock().await;
            if let Some(existing) = self.store.find_by_request_id(&spec.request_id).await? {
                if existing.workflow_name != spec.name {
                    return Err(ManagerError::AlreadyExists(format!(
                        "request_id '{}' already started execution {} of workflow '{}'",
                        spec.request_id, existing.id, existing.workflow_name
                    )));
                }
                return Ok((existing.id, false));
            }
            Some(guard)
        };

        let slots = workflow.slots.as_ref().map(|s| {
            (
                s,
                workflow.record.name.as_str(),
                workflow.record.max_concurrency,
            )
        });
        let admission = self.gate.admit(slots)?;
        let id = uuid::Uuid::now_v7().to_string();
        let record = ExecutionRecord {
            id: id.clone(),
            workflow_name: workflow.record.name.clone(),
            workflow_version: workflow.record.version,
            status: ExecutionStatus::Queued,
            input: spec.input,
            metadata: spec.metadata,
            create_time: SystemTime::now(),
            start_time: None,
            end_time: None,
            result: None,
            parent_execution_id: spec.parent_execution_id,
            request_id: (!spec.request_id.is_empty()).then_some(spec.request_id),
            last_sequence: 0,
        };
        self.store.create_execution(&record).await?;
        let live = Arc::new(LiveExecution {
            id: id.clone(),
            cancel: CancellationToken::new(),
            cancel_reason: Mutex::new(None),
            finished: CancellationToken::new(),
            events: broadcast::channel(LIVE_EVENT_BUFFER).0,
            last_sequence: tokio::sync::Mutex::new(0),
            store: self.store.clone(),
            max_events: self.limits.max_events_per_execution,
        });
        self.live
            .lock()
            .expect("live executions lock")
            .insert(id.clone(), live.clone());
        let span = tracing::info_span!("execution", id = %id, workflow = %record.workflow_name, version = record.workflow_version);
        let manager = self.clone();
        self.tasks.spawn(
            async move { manager.run(live, workflow, admission, record).await }.instrument(span),
        );
        Ok((id, true))
    }

    /// Runs one execution to its terminal event, whatever happens inside the workflow.
    async fn run(
        self: Arc<Self>,
        live: Arc<LiveExecution>,
        workflow: Arc<RegisteredWorkflow>,
        admission: Admission,
        mut record: ExecutionRecord,
    ) {
        let started = Instant::now();
        let terminal = match self.drive(&live, &workflow, admission, &mut record).await {
            Ok(kind) => kind,
            Err(error) => EventKind::Failed {
                result: ExecutionResult::summarize(
                    Vec::new(),
                    started.elapsed(),
                    Value::Null,
                    Some(error.clone()),
                ),
                error,
            },
        };
        self.finish(&live, record, terminal).await;
    }

    /// Admission, start and the workflow itself; returns the terminal event to emit.
    async fn drive(
        self: &Arc<Self>,
        live: &Arc<LiveExecution>,
        workflow: &RegisteredWorkflow,
        admission: Admission,
        record: &mut ExecutionRecord,
    ) -> Result<EventKind, String> {
        live.emit(EventKind::Accepted {
            workflow_name: record.workflow_name.clone(),
            workflow_version: record.workflow_version,
        })
        .await?;
        let _permits: Permits = match admission {
            Admission::Now(permits) => permits,
            Admission::Queued(ticket) => {
                live.emit(EventKind::Queued {
                    reason: ticket.reason.clone(),
                })
                .await?;
                tokio::select! {
                    permits = ticket.wait() => permits,
                    _ = live.cancel.cancelled() => {
                        let reason = live.cancel_reason();
                        return Ok(EventKind::Cancelled {
                            result: ExecutionResult::summarize(Vec::new(), Duration::ZERO, Value::Null, Some(reason.clone())),
                            reason,
                        });
                    }
                }
            }
        };
        record.status = ExecutionStatus::Running;
        record.start_time = Some(SystemTime::now());
        self.store
            .update_execution(record)
            .await
            .map_err(|e| e.to_string())?;
        live.emit(EventKind::Started { attempt: 1 }).await?;

        let sink: Arc<dyn EventSink> = live.clone();
        let ctx = ExecutionContext::new(
            live.id.clone(),
            self.tools.clone(),
            live.cancel.clone(),
            sink,
        )
        .with_children(Arc::new(super::children::Children {
            manager: self.clone(),
        }));
        let started = Instant::now();
        let outcome = AssertUnwindSafe(workflow.instance.execute(&ctx, record.input.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(WorkflowError::Failed(format!(
                    "the workflow panicked: {}",
                    panic_message(&panic)
                )))
            });
        let summary = |output: Value, error: Option<String>| {
            ExecutionResult::summarize(ctx.step_results(), started.elapsed(), output, error)
        };
        Ok(match outcome {
            Ok(output) => EventKind::Completed {
                result: summary(output, None),
            },
            Err(_) if live.cancel.is_cancelled() => {
                let reason = live.cancel_reason();
                EventKind::Cancelled {
                    result: summary(Value::Null, Some(format!("cancelled: {reason}"))),
                    reason,
                }
            }
            Err(error) => {
                let error = error.to_string();
                EventKind::Failed {
                    result: summary(Value::Null, Some(error.clone())),
                    error,
                }
            }
        })
    }

    /// Records the terminal state before the terminal event, so a client that has seen the
    /// event finds the same state with GetExecution.
    async fn finish(
        &self,
        live: &Arc<LiveExecution>,
        mut record: ExecutionRecord,
        terminal: EventKind,
    ) {
        record.status = match &terminal {
            EventKind::Completed { .. } => ExecutionStatus::Completed,
            EventKind::Cancelled { .. } => ExecutionStatus::Cancelled,
            _ => ExecutionStatus::Failed,
        };
        record.end_time = Some(SystemTime::now());
        record.result = terminal.result().cloned();
        if let Err(e) = self.store.update_execution(&record).await {
            tracing::error!(error = %e, "could not record the terminal state");
        }
        match &terminal {
            EventKind::Failed { error, .. } => {
                tracing::info!(status = "failed", %error, "execution ended")
            }
            _ => tracing::info!(status = ?record.status, "execution ended"),
        }
        if let Err(e) = live.emit(terminal).await {
            tracing::error!(error = %e, "could not record the terminal event");
        }
        self.live
            .lock()
            .expect("live executions lock")
            .remove(&live.id);
        live.finished.cancel();
    }

    /// Cancels an execution (idempotent) and waits briefly for it to end; returns its status.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<ExecutionStatus, ManagerError> {
        validate::execution_id(id)?;
        let live = self
            .live
            .lock()
            .expect("live executions lock")
            .get(id)
            .cloned();
        if let Some(live) = live {
            let reason = if reason.is_empty() {
                "cancelled by request".to_string()
            } else {
                reason.to_string()
            };
            live.cancel_with(reason);
            let _ = tokio::time::timeout(CANCEL_WAIT, live.finished.cancelled()).await;
        }
        Ok(self.get_execution(id).await?.status)
    }

    pub async fn get_execution(&self, id: &str) -> Result<ExecutionRecord, ManagerError> {
        validate::execution_id(id)?;
        self.store
            .get_execution(id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("execution '{id}' does not exist")))
    }

    /// One page of executions, newest first; the page token is the last id of the previous page.
    pub async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ExecutionRecord>, String), ManagerError> {
        let size = validate::page_size(
            page_size,
            super::DEFAULT_PAGE_SIZE,
            self.limits.max_page_size,
        )?;
        let before = if page_token.is_empty() {
            None
        } else {
            validate::execution_id(page_token).map_err(|_| {
                ManagerError::invalid(
                    "page_token",
                    "is not a token this server returned; start again with an empty page_token",
                )
            })?;
            Some(page_token)
        };
        let mut page = self.store.list_executions(filter, before, size + 1).await?;
        let next = if page.len() > size {
            page.truncate(size);
            page.last().map(|e| e.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((page, next))
    }

    /// Follows an execution's events after `after`: replay from the store, then live.
    pub async fn watch(&self, id: &str, after: i64) -> Result<super::Watcher, ManagerError> {
        validate::execution_id(id)?;
        let after = u64::try_from(after).map_err(|_| {
            ManagerError::invalid(
                "after_sequence",
                format!("{after} is negative; use 0 to replay every event"),
            )
        })?;
        // Subscribe before reading the store, so no event falls between the two.
        let live = self
            .live
            .lock()
            .expect("live executions lock")
            .get(id)
            .map(|l| l.events.subscribe());
        if live.is_none() {
            self.get_execution(id).await?;
        }
        Ok(super::Watcher::new(
            self.store.clone(),
            id.to_string(),
            after,
            live,
        ))
    }

    pub(crate) fn live_executions(&self) -> Vec<Arc<LiveExecution>> {
        self.live
            .lock()
            .expect("live executions lock")
            .values()
            .cloned()
            .collect()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
