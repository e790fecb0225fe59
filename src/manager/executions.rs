//! Executions: admission, the task that runs one, its numbered and durable events,
//! cancellation, and look-ups.

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    ManagerError, WorkflowManager, check_version, gate::Admission, live::LiveExecution,
    registry::RegisteredWorkflow, validate,
};
use crate::engine::{
    Event, EventKind, EventSink, ExecutionContext, ExecutionResult, StepResult, StepStatus,
    WorkflowError, progress,
};
use crate::store::{ExecutionFilter, ExecutionRecord, ExecutionStatus};
use crate::telemetry::executions::ExecutionObserver;

/// How long CancelExecution waits for the execution to reach its terminal state.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Where a resumed execution picks up: its attempt number, the steps it completed before,
/// whose outputs are reused instead of running them again, and the attempt of each step
/// it left unfinished.
#[derive(Debug, Default)]
pub(super) struct Resume {
    pub attempt: u32,
    /// Its Accepted event is in its history already (it was queued, or it ran).
    pub accepted: bool,
    pub completed_steps: Vec<StepResult>,
    /// The steps it left unfinished: the attempt each goes on from.
    pub resume_points: std::collections::HashMap<String, crate::engine::progress::ResumePoint>,
}

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

impl WorkflowManager {
    /// Starts an execution and returns its id once it is durable; `false` when `request_id`
    /// matched an execution that already exists, whose id is returned instead.
    pub async fn start(self: &Arc<Self>, spec: StartSpec) -> Result<(String, bool), ManagerError> {
        self.start_following(spec, None)
            .await
            .map(|(id, created, _)| (id, created))
    }

    /// Starts a child execution cancelled with `step` (the parent step that runs it) from
    /// the moment it exists: a step dropped while the start was on its way leaves no
    /// child running.
    pub(super) async fn start_child(
        self: &Arc<Self>,
        spec: StartSpec,
        step: CancellationToken,
    ) -> Result<(String, bool), ManagerError> {
        self.start_following(spec, Some(step))
            .await
            .map(|(id, created, _)| (id, created))
    }

    /// Starts an execution and follows its events from the first one.
    pub async fn execute(
        self: &Arc<Self>,
        spec: StartSpec,
    ) -> Result<super::Watcher, ManagerError> {
        match self.start_following(spec, None).await? {
            (id, _, Some(follower)) => {
                Ok(super::Watcher::from_start(self.store.clone(), id, follower))
            }
            (id, _, None) => self.watch(&id, 0).await,
        }
    }

    /// Start, with a follower subscribed before the first event when the execution is new.
    async fn start_following(
        self: &Arc<Self>,
        spec: StartSpec,
        cancel_with: Option<CancellationToken>,
    ) -> Result<(String, bool, Option<broadcast::Receiver<Arc<Event>>>), ManagerError> {
        // A child is part of the work its parent was accepted for: a shutdown's grace period
        // lets it start, and what is left at the deadline is cancelled or left to resume
        // with its parent.
        if cancel_with.is_none() {
            self.ensure_accepting("executions")?;
        } else if !self.is_accepting() {
            self.started_while_draining
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
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
        let _request_guard = if spec.request_id.is_empty() {
            None
        } else {
            let guard = self.request_lock.lock().await;
            if let Some(existing) = self.store.find_by_request_id(&spec.request_id).await? {
                let differs = if existing.workflow_name != spec.name {
                    Some(format!("not of '{}'", spec.name))
                } else if version != 0 && version != existing.workflow_version {
                    Some(format!("not v{version}"))
                } else if existing.input != spec.input {
                    Some("with another input".to_string())
                } else {
                    None
                };
                if let Some(differs) = differs {
                    return Err(ManagerError::AlreadyExists(format!(
                        "request_id '{}' already started execution {} of workflow '{}' v{}, {differs}; use a new request_id for a new request",
                        spec.request_id,
                        existing.id,
                        existing.workflow_name,
                        existing.workflow_version
                    )));
                }
                return Ok((existing.id, false, None));
            }
            Some(guard)
        };

        // From the workflow's lookup to the execution's place among the live ones, an
        // unregister waits (see `unregister`): it either sees this execution and refuses, or
        // has removed the workflow before the lookup.
        let starting = self.starting.read().expect("starting lock");
        let workflow = self.resolve(&spec.name, version)?;
        workflow
            .instance
            .validate_input(&spec.input)
            .map_err(|e| match e {
                WorkflowError::InvalidInput(reason) => ManagerError::invalid("input", reason),
                other => ManagerError::invalid("input", other.to_string()),
            })?;

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
        let (live, follower) =
            self.spawn_execution(record, Some(workflow), admission, Resume::default(), true);
        drop(starting);
        if let Some(step) = cancel_with {
            super::children::cancel_with_step(step, &live);
        }
        live.durable(1).await.map_err(ManagerError::Internal)?;
        Ok((id, true, Some(follower)))
    }

    /// Makes an execution live and spawns the task that owns it; a new one (`create`) has its
    /// record queued as its first write (ticket 1). Returns a follower subscribed before any
    /// event is published.
    pub(super) fn spawn_execution(
        self: &Arc<Self>,
        record: ExecutionRecord,
        workflow: Option<Arc<RegisteredWorkflow>>,
        admission: Admission,
        resume: Resume,
        create: bool,
    ) -> (Arc<LiveExecution>, broadcast::Receiver<Arc<Event>>) {
        let id: Arc<str> = record.id.as_str().into();
        let (live, follower) = LiveExecution::start(
            id.clone(),
            record.parent_execution_id.as_deref().map(Arc::from),
            record.workflow_name.as_str().into(),
            record.last_sequence,
            self.limits.max_events_per_execution,
            self.store.clone(),
        );
        if create {
            // Cannot fail: the writer was just started.
            let _ = live.save(&record, true);
        }
        let parent = {
            let mut executions = self.live.lock().expect("live executions lock");
            executions.insert(id.clone(), live.clone());
            record
                .parent_execution_id
                .as_ref()
                .and_then(|parent| executions.get(parent.as_str()).cloned())
        };
        if let Some(parent) = parent {
            super::children::cancel_with_parent(&parent, &live);
        }
        let span = crate::telemetry::trace::execution_span(
            &id,
            &record.workflow_name,
            record.workflow_version,
        );
        let (manager, task_live) = (self.clone(), live.clone());
        let recovered = (!create).then(|| self.recovered.clone());
        // Boxed: the future is ~2 KB, and each wrapper below would otherwise copy it.
        let task = Box::pin(async move {
            if let Some(recovered) = recovered {
                recovered.cancelled().await;
            }
            manager
                .run(task_live, workflow, admission, record, resume)
                .await
        });
        let task = self
            .tasks
            .spawn(super::live::CommitOnYield::new(live.clone(), task).instrument(span));
        let _ = live.task.set(task.abort_handle());
        (live, follower)
    }

    /// Runs one execution to its terminal event, whatever happens inside the workflow.
    async fn run(
        self: Arc<Self>,
        live: Arc<LiveExecution>,
        workflow: Option<Arc<RegisteredWorkflow>>,
        admission: Admission,
        mut record: ExecutionRecord,
        resume: Resume,
    ) {
        let started = Instant::now();
        let mut observer = ExecutionObserver::started(&record.workflow_name, record.create_time);
        let outcome = match &workflow {
            Some(workflow) => {
                self.drive(&live, workflow, admission, &mut record, resume)
                    .await
            }
            None => {
                // Its steps so far and its time since its first start, as a resumed run's.
                let error = self.cannot_resume(&record.workflow_name, record.workflow_version);
                let took = record
                    .start_time
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default();
                Ok(EventKind::Failed {
                    result: ExecutionResult::summarize(
                        resume.completed_steps,
                        took,
                        Value::Null,
                        Some(error.clone()),
                    ),
                    error,
                })
            }
        };
        let terminal = match outcome {
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
        self.finish(&live, record, terminal, &mut observer).await;
    }

    /// Why an execution of a version this server does not have cannot resume: the reason
    /// the stored version could not be restored, or that it is gone.
    fn cannot_resume(&self, name: &str, version: u32) -> String {
        let unrestored = self
            .unrestored
            .lock()
            .expect("unrestored lock")
            .get(name)
            .and_then(|versions| versions.get(&version).cloned());
        match unrestored {
            Some(why) => format!(
                "workflow '{name}' version {version} is stored but this server could not restore it when it started: {why}; the execution cannot resume"
            ),
            None => format!(
                "workflow '{name}' version {version} is no longer registered; the execution cannot resume"
            ),
        }
    }

    /// Admission, start and the workflow itself; returns the terminal event to emit.
    async fn drive(
        self: &Arc<Self>,
        live: &Arc<LiveExecution>,
        workflow: &RegisteredWorkflow,
        admission: Admission,
        record: &mut ExecutionRecord,
        resume: Resume,
    ) -> Result<EventKind, String> {
        if !resume.accepted {
            live.emit(EventKind::Accepted {
                workflow_name: record.workflow_name.clone(),
                workflow_version: record.workflow_version,
            })
            .await?;
        }
        // Slots are held until the terminal event is recorded (the next execution of a
        // workflow limited to one starts after this one has ended), lent while a step waits
        // for a child execution.
        live.slots.hold(match admission {
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
                            result: ExecutionResult::summarize(Vec::new(), Duration::ZERO, Value::Null, Some(format!("cancelled: {reason}"))),
                            reason,
                        });
                    }
                }
            }
        });
        record.status = ExecutionStatus::Running;
        // When it first started: a resumed execution keeps it, and its time counts from it.
        let first_start = *record.start_time.get_or_insert_with(SystemTime::now);
        live.save(record, false)?;
        live.emit(EventKind::Started {
            attempt: resume.attempt.max(1),
        })
        .await?;

        let sink: Arc<dyn EventSink> = live.clone();
        let ctx = ExecutionContext::new(
            live.id.to_string(),
            self.tools.clone(),
            live.cancel.clone(),
            sink,
        )
        .with_workflow(&record.workflow_name)
        .with_output_limit(self.limits.max_output_bytes)
        .with_completed_steps(resume.completed_steps)
        .with_resume_points(resume.resume_points)
        .with_children(Arc::new(super::children::Children {
            manager: self.clone(),
        }));
        let outcome = AssertUnwindSafe(workflow.instance.execute(&ctx, record.input.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(WorkflowError::Failed(format!(
                    "the workflow panicked: {}",
                    panic_message(&panic)
                )))
            });
        // A step still running when the execution ends (its end could not be recorded, the
        // event limit say) ended with it: failed with the execution's error, or cancelled.
        let summary = |output: Value, error: Option<String>, cut_short: StepStatus| {
            let took = SystemTime::now()
                .duration_since(first_start)
                .unwrap_or_default();
            let mut steps = ctx.step_results();
            for step in steps.iter_mut().filter(|s| s.status == StepStatus::Running) {
                step.status = cut_short;
                step.error.clone_from(&error);
            }
            ExecutionResult::summarize(steps, took, output, error)
        };
        Ok(match outcome {
            Ok(output) => EventKind::Completed {
                result: summary(output, None, StepStatus::Running),
            },
            Err(_) if live.cancel.is_cancelled() => {
                let reason = live.cancel_reason();
                EventKind::Cancelled {
                    result: summary(
                        Value::Null,
                        Some(format!("cancelled: {reason}")),
                        StepStatus::Cancelled,
                    ),
                    reason,
                }
            }
            Err(error) => {
                let error = error.to_string();
                EventKind::Failed {
                    result: summary(Value::Null, Some(error.clone()), StepStatus::Failed),
                    error,
                }
            }
        })
    }

    /// Records the terminal state with the terminal event, so a client that has seen the
    /// event finds the same state with GetExecution, and one that reads the state as ended
    /// finds the event.
    async fn finish(
        self: &Arc<Self>,
        live: &Arc<LiveExecution>,
        mut record: ExecutionRecord,
        terminal: EventKind,
        observer: &mut ExecutionObserver,
    ) {
        let terminal = bound_result(terminal, self.limits.max_output_bytes);
        record.status = match &terminal {
            EventKind::Completed { .. } => ExecutionStatus::Completed,
            EventKind::Cancelled { .. } => ExecutionStatus::Cancelled,
            _ => ExecutionStatus::Failed,
        };
        record.end_time = Some(SystemTime::now());
        record.result = terminal.result().cloned();
        let duration_ms = observer.finished(record.status.into()).as_secs_f64() * 1e3;
        match &terminal {
            // A failure is worth a warning: at `log.level = "warn"` it is the line left.
            EventKind::Failed { error, .. } => {
                tracing::warn!(execution = %live.id, status = record.status.name(), %error, duration_ms, "execution ended")
            }
            _ => tracing::info!(
                status = record.status.name(),
                duration_ms,
                "execution ended"
            ),
        }
        // The slots go and the execution stops being live before anyone sees the terminal
        // event: whoever saw it may start the next execution at once and finds it admitted.
        // The commit of the terminal event does it, then delivers the event in the same go.
        // The task does not wait for that commit: it ends here, and the token keeps the
        // execution counted among the running ones (a shutdown waits for it) until then.
        let (manager, id, slots) = (Arc::downgrade(self), live.id.clone(), live.slots.clone());
        let (finished, running) = (live.finished.clone(), self.tasks.token());
        live.end_with(move || {
            slots.release();
            if let Some(manager) = manager.upgrade() {
                manager
                    .live
                    .lock()
                    .expect("live executions lock")
                    .remove(&*id);
            }
            finished.cancel();
            drop(running);
        });
        // The record is committed with the terminal event: whoever sees the event finds the
        // same state with GetExecution, and whoever reads the record as ended finds the event.
        if let Err(e) = live.end(&record, terminal).await {
            tracing::error!(execution = %live.id, error = %e, "could not record the terminal event");
        }
    }

    /// Cancels an execution (idempotent) and waits briefly for it to end; returns its status.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<ExecutionStatus, ManagerError> {
        validate::execution_id(id)?;
        validate::reason(reason)?;
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
        Ok(self.stored_execution(id).await?.status)
    }

    /// An execution; one running has its steps so far as its result.
    pub async fn get_execution(&self, id: &str) -> Result<ExecutionRecord, ManagerError> {
        let mut record = self.stored_execution(id).await?;
        self.fill_result_so_far(&mut record).await?;
        Ok(record)
    }

    /// An execution's record as stored.
    async fn stored_execution(&self, id: &str) -> Result<ExecutionRecord, ManagerError> {
        validate::execution_id(id)?;
        self.store
            .get_execution(id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("execution '{id}' does not exist")))
    }

    /// Gives an execution that has started and not ended its steps so far as its result,
    /// read from its events: the store keeps a result only once it has ended.
    async fn fill_result_so_far(&self, record: &mut ExecutionRecord) -> Result<(), ManagerError> {
        if record.result.is_none()
            && let Some(started) = record.start_time
        {
            let events = self.store.events_after(&record.id, 0, usize::MAX).await?;
            let running_for = SystemTime::now()
                .duration_since(started)
                .unwrap_or_default();
            record.result = Some(Arc::new(progress::result_so_far(&events, running_for)));
        }
        Ok(())
    }

    /// One page of executions, newest first; the page token is the last id of the previous
    /// page. Those running have their steps so far as their result.
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
        if let Some(name) = &filter.workflow_name {
            validate::name("workflow_name", name)?;
        }
        if let (Some(from), Some(before)) = (filter.created_from, filter.created_before)
            && before < from
        {
            return Err(ManagerError::invalid(
                "create_time_end",
                "is before create_time_start: the range is empty",
            ));
        }
        let before = if page_token.is_empty() {
            None
        } else {
            // A token of an earlier version is a bare id, and has no filters to compare.
            let (id, digest) = page_token.split_once('.').unwrap_or((page_token, ""));
            validate::execution_id(id).map_err(|_| {
                ManagerError::invalid(
                    "page_token",
                    "is not a token this server returned; start again with an empty page_token",
                )
            })?;
            if !digest.is_empty() && digest != filter_digest(filter) {
                return Err(ManagerError::invalid(
                    "page_token",
                    "was returned for other filters (workflow_name, status, create_time_start, create_time_end): give the same filters, or start again with an empty page_token",
                ));
            }
            Some(id)
        };
        let mut page = self.store.list_executions(filter, before, size + 1).await?;
        let next = if page.len() > size {
            page.truncate(size);
            page.last()
                .map(|e| execution_page_token(filter, &e.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        for record in &mut page {
            self.fill_result_so_far(record).await?;
        }
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
            // Ended: there will be no event past its last one, so asking for them is a
            // mistake that would otherwise end the stream with nothing. (A running
            // execution may be watched after a sequence it has not reached yet.)
            let last = self.stored_execution(id).await?.last_sequence;
            if after > last {
                return Err(ManagerError::invalid(
                    "after_sequence",
                    format!(
                        "{after} is past the last event of execution {id}, which has ended at {last}"
                    ),
                ));
            }
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

/// Keeps a result within `limits.max_output_bytes`: one whose outputs (the execution's and
/// every step's, as JSON) are larger loses them, and a completed execution fails instead,
/// so nothing over the limit is stored or streamed.
fn bound_result(terminal: EventKind, max: usize) -> EventKind {
    let Some(size) = terminal.result().map(|r| r.output_size()) else {
        return terminal;
    };
    if size <= max {
        return terminal;
    }
    let too_large = format!(
        "the execution's result (its output and step outputs) is {size} bytes as JSON; limits.max_output_bytes is {max}"
    );
    match terminal {
        EventKind::Completed { result } => {
            let mut result = result.without_outputs();
            result.success = false;
            result.error = Some(too_large.clone());
            EventKind::Failed {
                error: too_large,
                result: Arc::new(result),
            }
        }
        EventKind::Failed { error, result } => EventKind::Failed {
            error: format!("{error}; {too_large}"),
            result: Arc::new(result.without_outputs()),
        },
        EventKind::Cancelled { reason, result } => EventKind::Cancelled {
            reason,
            result: Arc::new(result.without_outputs()),
        },
        other => other,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The ListExecutions page token that continues after execution `last_id` (opaque to
/// clients): the id and a digest of the filters, so a token is not used with others, which
/// would page through another listing from a place in this one.
pub fn execution_page_token(filter: &ExecutionFilter, last_id: &str) -> String {
    format!("{last_id}.{}", filter_digest(filter))
}

fn filter_digest(filter: &ExecutionFilter) -> String {
    let nanos = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
    };
    let key = format!(
        "{:?}|{:?}|{:?}|{:?}",
        filter.workflow_name,
        filter.status.map(ExecutionStatus::name),
        nanos(filter.created_from),
        nanos(filter.created_before)
    );
    super::short_digest(&key)
}
