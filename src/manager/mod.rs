//! The WorkflowManager (the seed's Mediator): the registry of workflows, their executions,
//! and the service's lifecycle. It speaks domain types; only the gRPC layer knows protobuf.

mod children;
mod declarative;
mod error;
mod executions;
mod gate;
mod lifecycle;
mod live;
mod recovery;
mod registry;
mod slots;
pub mod validate;
mod watch;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::SystemTime,
};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use error::ManagerError;
pub use executions::{StartSpec, execution_page_token};
pub use lifecycle::{ShutdownPlan, ShutdownReport, Unfinished};
pub use recovery::RecoveryReport;
pub use watch::Watcher;

use crate::config::Limits;
use crate::engine::definition::{Action, Definition};
use crate::engine::{Catalog, Workflow, WorkflowError, WorkflowType};
use crate::store::{
    ExecutionFilter, ExecutionRecord, ExecutionStatus, Store, WorkflowRecord, WorkflowSource,
};
use crate::tools::{ToolManager, ToolSpec};
use gate::Gate;
use live::LiveExecution;
use registry::{RegisteredWorkflow, Registry};

/// What a client asks to register.
#[derive(Debug, Clone, Default)]
pub struct RegisterSpec {
    /// Empty: the type's own name.
    pub name: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub max_concurrency: u32,
    /// The workflow type and its custom arguments (a native workflow).
    pub type_name: String,
    pub arguments: Value,
    /// A declarative definition instead of a type; `type_name` is then ignored.
    pub definition: Option<Definition>,
}

/// Default page size of List and ListExecutions.
pub const DEFAULT_PAGE_SIZE: usize = 50;

pub struct WorkflowManager {
    catalog: Catalog,
    tools: Arc<ToolManager>,
    store: Arc<dyn Store>,
    limits: Limits,
    registry: Registry,
    /// Stored versions this server could not restore (name, then version, then why): their
    /// numbers are never handed out again, and calls naming them say why they are missing.
    unrestored: Mutex<BTreeMap<String, BTreeMap<u32, String>>>,
    /// Some version could not be restored: without any, runs do not look at the map.
    any_unrestored: AtomicBool,
    /// Serializes registrations so a version number is never handed out twice.
    register_lock: tokio::sync::Mutex<()>,
    /// Serializes starts that carry a request_id, so concurrent retries find each other.
    request_lock: tokio::sync::Mutex<()>,
    live: Mutex<HashMap<Arc<str>, Arc<LiveExecution>>>,
    /// Held (shared) by a start from its workflow's lookup until the execution is live, and
    /// (alone) by an unregister while it looks for live executions and removes the workflow.
    starting: std::sync::RwLock<()>,
    gate: Gate,
    accepting: AtomicBool,
    /// Children started after the shutdown stopped accepting (their parents' work), so its
    /// report counts them among what finished, was cancelled or was left.
    started_while_draining: std::sync::atomic::AtomicUsize,
    tasks: TaskTracker,
    /// Cancelled once shutdown has finished: open streams end on it.
    stopped: CancellationToken,
    /// Cancelled once recovery has made every unfinished execution live: resumed ones wait
    /// for it, so a parent resuming its step finds the child it started, live.
    recovered: CancellationToken,
    shutdown_report: tokio::sync::OnceCell<ShutdownReport>,
    /// The shutdowns asked so far, merged; the drain follows later ones.
    shutdown_asked: lifecycle::ShutdownAsked,
}

impl WorkflowManager {
    pub fn new(
        catalog: Catalog,
        tools: Arc<ToolManager>,
        store: Arc<dyn Store>,
        limits: Limits,
    ) -> Self {
        let gate = Gate::new(
            limits.max_concurrent_executions,
            limits.max_queued_executions,
        );
        WorkflowManager {
            catalog,
            tools,
            store,
            limits,
            registry: Registry::default(),
            unrestored: Mutex::default(),
            any_unrestored: AtomicBool::new(false),
            register_lock: tokio::sync::Mutex::new(()),
            request_lock: tokio::sync::Mutex::new(()),
            live: Mutex::new(HashMap::new()),
            starting: std::sync::RwLock::new(()),
            gate,
            accepting: AtomicBool::new(true),
            started_while_draining: Default::default(),
            tasks: TaskTracker::new(),
            stopped: CancellationToken::new(),
            recovered: CancellationToken::new(),
            shutdown_report: tokio::sync::OnceCell::new(),
            shutdown_asked: lifecycle::ShutdownAsked::new(None),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Registers a workflow: builds it through its type's factory with the shared tools,
    /// initializes it, and only then publishes it. Identical content to the latest version
    /// returns that version (`false`); different content creates the next version (`true`).
    pub async fn register(
        &self,
        spec: RegisterSpec,
    ) -> Result<(WorkflowRecord, bool), ManagerError> {
        self.ensure_accepting("registrations")?;
        let workflow_type = match &spec.definition {
            Some(_) => None,
            None => Some(self.workflow_type(&spec.type_name)?),
        };
        let name = match (&workflow_type, spec.name.is_empty()) {
            (Some(t), true) => t.name.to_string(),
            (None, true) => {
                return Err(ManagerError::invalid(
                    "name",
                    "is required for a workflow definition",
                ));
            }
            (_, false) => spec.name,
        };
        validate::name("name", &name)?;
        validate::description(&spec.description)?;
        validate::labels("labels", &spec.labels)?;
        let max_concurrency = spec.max_concurrency;
        if max_concurrency as usize > self.limits.max_concurrent_executions {
            return Err(ManagerError::invalid(
                "max_concurrency",
                format!(
                    "{max_concurrency} is over the server's limits.max_concurrent_executions of {}",
                    self.limits.max_concurrent_executions
                ),
            ));
        }
        let arguments = match spec.arguments {
            Value::Null => Value::Object(Default::default()),
            other => other,
        };
        let source = match (&workflow_type, spec.definition) {
            (Some(t), _) => WorkflowSource::Native {
                type_name: t.name.to_string(),
                arguments: arguments.clone(),
            },
            (None, Some(definition)) => WorkflowSource::Declarative {
                definition: Arc::new(definition),
            },
            (None, None) => unreachable!("a workflow type or a definition was given"),
        };

        let _guard = self.register_lock.lock().await;
        let latest = self.registry.latest(&name);
        let stored_latest = self.unrestored_latest(&name).unwrap_or(0);
        // A name registered again after Unregister goes on from the versions its executions
        // ran: (name, version) names one definition, for as long as executions name it.
        let ran_latest = if latest.is_none() && stored_latest == 0 {
            self.store.latest_execution_version(&name).await?
        } else {
            0
        };
        let mut record = WorkflowRecord {
            name: name.clone(),
            version: latest
                .as_ref()
                .map_or(0, |w| w.record.version)
                .max(stored_latest)
                .max(ran_latest)
                + 1,
            description: spec.description,
            labels: spec.labels,
            max_concurrency,
            create_time: SystemTime::now(),
            source,
        };
        if let Some(latest) = &latest
            && latest.record.same_content(&record)
        {
            return Ok((latest.record.clone(), false));
        }
        if latest.is_none()
            && stored_latest == 0
            && self.registry.count() >= self.limits.max_workflows
        {
            return Err(ManagerError::ResourceExhausted {
                limit: "limits.max_workflows",
                value: self.limits.max_workflows.to_string(),
                detail: "unregister a workflow first".into(),
            });
        }
        let held = self.registry.versions(&name).len() + self.unrestored_count(&name);
        if held >= self.limits.max_versions_per_workflow as usize {
            return Err(ManagerError::ResourceExhausted {
                limit: "limits.max_versions_per_workflow",
                value: self.limits.max_versions_per_workflow.to_string(),
                detail: format!(
                    "workflow '{name}' has that many versions; unregister it to start over"
                ),
            });
        }

        let instance: Arc<dyn Workflow> = match (&record.source, workflow_type) {
            (WorkflowSource::Declarative { definition }, _) => {
                self.build_declarative(&name, record.version, definition.clone(), false)?
            }
            (_, Some(workflow_type)) => (workflow_type.factory)(self.tools.clone(), &arguments)
                .map_err(|e| match e {
                    WorkflowError::InvalidArguments(reason) => ManagerError::invalid(
                        "arguments",
                        format!("type '{}': {reason}", workflow_type.name),
                    ),
                    other => ManagerError::FailedPrecondition(format!(
                        "workflow '{name}' could not be built: {other}"
                    )),
                })?,
            (_, None) => unreachable!("a native source has a workflow type"),
        };
        instance.initialize().await.map_err(|e| {
            ManagerError::FailedPrecondition(format!("workflow '{name}' was not registered: {e}"))
        })?;
        record.create_time = SystemTime::now();
        self.store.save_workflow(&record).await?;
        self.registry.publish(RegisteredWorkflow {
            slots: (max_concurrency > 0)
                .then(|| Arc::new(Semaphore::new(max_concurrency as usize))),
            record: record.clone(),
            instance,
        });
        crate::telemetry::executions::workflow_known(&record.name);
        tracing::info!(workflow = %record.name, version = record.version, "registered");
        Ok((record, true))
    }

    /// Removes a workflow and every version; its executions stay readable.
    pub async fn unregister(&self, name: &str) -> Result<usize, ManagerError> {
        validate::name("name", name)?;
        let _guard = self.register_lock.lock().await;
        if let Some(caller) = self.a_caller_of(name) {
            return Err(ManagerError::FailedPrecondition(format!(
                "{caller} runs workflow '{name}': unregister it first (a workflow whose child is gone could not be restored at the next start)"
            )));
        }
        if let Some(execution) = self.an_unfinished_execution_of(name).await? {
            return Err(ManagerError::FailedPrecondition(format!(
                "execution {} of workflow '{name}' is {}: a workflow's unfinished executions need it to resume after a restart; cancel it (wfm cancel {}) or let it end, then unregister",
                execution.id,
                execution.status.name(),
                execution.id
            )));
        }
        // A start past its workflow's lookup is live by now (it holds `starting` until it
        // is); a later one will not find the workflow.
        let removed = {
            let _no_starts = self.starting.write().expect("starting lock");
            if let Some(id) = self.a_live_execution_of(name) {
                return Err(ManagerError::FailedPrecondition(format!(
                    "execution {id} of workflow '{name}' is starting, queued or running: a workflow's unfinished executions need it to resume after a restart; cancel it (wfm cancel {id}) or let it end, then unregister"
                )));
            }
            self.registry.remove(name)
        };
        let unrestored = self
            .unrestored
            .lock()
            .expect("unrestored lock")
            .get(name)
            .map_or(0, BTreeMap::len);
        if removed.is_empty() && unrestored == 0 {
            return Err(self.workflow_not_found(name, 0));
        }
        self.store.delete_workflow(name).await?;
        self.unrestored
            .lock()
            .expect("unrestored lock")
            .remove(name);
        for w in &removed {
            if let Err(e) = w.instance.shutdown().await {
                tracing::warn!(workflow = name, version = w.record.version, error = %e, "shutdown hook failed");
            }
        }
        tracing::info!(
            workflow = name,
            versions = removed.len() + unrestored,
            "unregistered"
        );
        Ok(removed.len() + unrestored)
    }

    /// The id of a live execution of `name` (queued, running, or being started), if any.
    fn a_live_execution_of(&self, name: &str) -> Option<Arc<str>> {
        let live = self.live.lock().expect("live executions lock");
        live.values()
            .find(|e| &*e.workflow == name)
            .map(|e| e.id.clone())
    }

    /// An execution of `name` that is queued or running, if any.
    async fn an_unfinished_execution_of(
        &self,
        name: &str,
    ) -> Result<Option<ExecutionRecord>, ManagerError> {
        for status in [ExecutionStatus::Running, ExecutionStatus::Queued] {
            let filter = ExecutionFilter {
                workflow_name: Some(name.to_string()),
                status: Some(status),
                ..Default::default()
            };
            if let Some(found) = self.store.list_executions(&filter, None, 1).await?.pop() {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// A registered workflow of another name with a step that runs `name`, described.
    fn a_caller_of(&self, name: &str) -> Option<String> {
        self.registry.all().into_iter().find_map(|w| {
            let WorkflowSource::Declarative { definition } = &w.record.source else {
                return None;
            };
            if w.record.name == name {
                return None;
            }
            definition
                .steps
                .iter()
                .find_map(|step| match step.action() {
                    Some(Action::Workflow(child)) if child.name == name => Some(format!(
                        "workflow '{}' version {} (step '{}')",
                        w.record.name, w.record.version, step.id
                    )),
                    _ => None,
                })
        })
    }

    /// One page of the latest version of each workflow, by name, keeping those that carry
    /// every label of `label_filter`. The page token is opaque to clients.
    pub fn list(
        &self,
        page_size: i32,
        page_token: &str,
        label_filter: &BTreeMap<String, String>,
    ) -> Result<(Vec<WorkflowRecord>, String), ManagerError> {
        let size = validate::page_size(page_size, DEFAULT_PAGE_SIZE, self.limits.max_page_size)?;
        // A key no label can have would match nothing, silently: say what is wrong with it.
        validate::labels("label_filter", label_filter)?;
        let after = if page_token.is_empty() {
            None
        } else {
            // A token of an earlier version is the bare name, and has no filter to compare.
            let (name, digest) = page_token.split_once('.').unwrap_or((page_token, ""));
            if !digest.is_empty() && digest != labels_digest(label_filter) {
                return Err(ManagerError::invalid(
                    "page_token",
                    "was returned for another label_filter: give the same label_filter, or start again with an empty page_token",
                ));
            }
            Some(decode_token(name)?)
        };
        let (page, more) = self.registry.page(after.as_deref(), size, |r| {
            label_filter.iter().all(|(k, v)| r.labels.get(k) == Some(v))
        });
        let next = match (more, page.last()) {
            (true, Some(last)) => workflow_page_token(label_filter, &last.name),
            _ => String::new(),
        };
        Ok((page, next))
    }

    /// A workflow version (0: the latest) and every version number of its name.
    pub fn get(
        &self,
        name: &str,
        version: i32,
    ) -> Result<(WorkflowRecord, Vec<u32>), ManagerError> {
        validate::name("name", name)?;
        let version = check_version(version)?;
        let workflow = self.resolve(name, version)?;
        Ok((workflow.record.clone(), self.registry.versions(name)))
    }

    pub fn workflow_types(&self) -> Vec<WorkflowType> {
        self.catalog.all().cloned().collect()
    }

    pub fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cancelled once shutdown has finished.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    /// Executions running and queued now.
    pub fn load(&self) -> (usize, usize) {
        (self.gate.running(), self.gate.queued())
    }

    /// Registered workflow names, in order.
    pub fn workflow_names(&self) -> Vec<String> {
        let (all, _) = self.registry.page(None, usize::MAX, |_| true);
        all.into_iter().map(|r| r.name).collect()
    }

    /// How many workflow names are registered.
    pub fn workflow_count(&self) -> usize {
        self.registry.count()
    }

    fn workflow_type(&self, name: &str) -> Result<&WorkflowType, ManagerError> {
        if name.is_empty() {
            return Err(ManagerError::invalid(
                "native.type",
                format!(
                    "is required; known types: {}",
                    self.catalog.names().join(", ")
                ),
            ));
        }
        self.catalog.get(name).ok_or_else(|| {
            ManagerError::invalid(
                "native.type",
                format!(
                    "unknown workflow type '{}'; known types: {}",
                    crate::quote::shown(name),
                    self.catalog.names().join(", ")
                ),
            )
        })
    }

    /// A registered version (0: the latest) to read or run. The latest is one this server
    /// could not restore when a higher version is among those: not silently an older one.
    fn resolve(&self, name: &str, version: u32) -> Result<Arc<RegisteredWorkflow>, ManagerError> {
        let workflow = self.registry.get(name, version);
        if let Some(stored_latest) = self.unrestored_latest(name) {
            let unrestored = match &workflow {
                None => true,
                Some(w) => version == 0 && stored_latest > w.record.version,
            };
            if unrestored {
                return Err(self.workflow_not_found(name, version));
            }
        }
        workflow.ok_or_else(|| self.workflow_not_found(name, version))
    }

    /// The highest version of `name` this server could not restore, if any.
    /// How many stored workflow versions could not be restored, all names together.
    pub fn unrestored_versions(&self) -> usize {
        if !self
            .any_unrestored
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return 0;
        }
        let unrestored = self.unrestored.lock().expect("unrestored lock");
        unrestored.values().map(BTreeMap::len).sum()
    }

    /// How many stored versions of `name` could not be restored.
    fn unrestored_count(&self, name: &str) -> usize {
        if !self
            .any_unrestored
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return 0;
        }
        let unrestored = self.unrestored.lock().expect("unrestored lock");
        unrestored.get(name).map_or(0, |versions| versions.len())
    }

    fn unrestored_latest(&self, name: &str) -> Option<u32> {
        if !self
            .any_unrestored
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let unrestored = self.unrestored.lock().expect("unrestored lock");
        unrestored.get(name)?.keys().next_back().copied()
    }

    /// Records a stored version that could not be restored at start, and why.
    pub(super) fn not_restored(&self, name: &str, version: u32, why: String) {
        self.any_unrestored
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.unrestored
            .lock()
            .expect("unrestored lock")
            .entry(name.to_string())
            .or_default()
            .insert(version, why);
    }

    fn workflow_not_found(&self, name: &str, version: u32) -> ManagerError {
        let why = {
            let unrestored = self.unrestored.lock().expect("unrestored lock");
            unrestored
                .get(name)
                .and_then(|versions| match version {
                    0 => versions.iter().next_back(),
                    v => versions.get_key_value(&v),
                })
                .map(|(v, why)| (*v, why.clone()))
        };
        if let Some((stored, why)) = why {
            return ManagerError::FailedPrecondition(format!(
                "workflow '{name}' version {stored} is stored but this server could not restore it when it started: {why}; fix that and restart, or unregister '{name}' to remove every version"
            ));
        }
        if version > 0 && self.registry.latest(name).is_some() {
            let versions = self.registry.versions(name);
            return ManagerError::NotFound(format!(
                "workflow '{name}' has no version {version} (versions: {versions:?})"
            ));
        }
        ManagerError::NotFound(format!("workflow '{name}' is not registered"))
    }

    fn ensure_accepting(&self, what: &str) -> Result<(), ManagerError> {
        if self.is_accepting() {
            Ok(())
        } else {
            Err(ManagerError::Unavailable(format!(
                "wfm is shutting down and accepts no new {what}"
            )))
        }
    }
}

fn check_version(version: i32) -> Result<u32, ManagerError> {
    u32::try_from(version).map_err(|_| {
        ManagerError::invalid(
            "version",
            format!("{version} is negative; use 0 for the latest or a version from 1"),
        )
    })
}

/// The List page token that continues after the workflow `name` (opaque to clients).
/// The List page token that continues after workflow `name` (opaque to clients): the name
/// and a digest of the label filter, so a token is not used with another filter, which
/// would page through another listing from a place in this one.
pub fn workflow_page_token(label_filter: &BTreeMap<String, String>, name: &str) -> String {
    format!("{}.{}", encode_token(name), labels_digest(label_filter))
}

fn labels_digest(label_filter: &BTreeMap<String, String>) -> String {
    short_digest(&format!("{label_filter:?}"))
}

/// 12 hex digits of SHA-256: enough to tell a page token's filters from others by mistake.
pub(crate) fn short_digest(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<String, ManagerError> {
    let invalid = || {
        ManagerError::invalid(
            "page_token",
            "is not a token this server returned; start again with an empty page_token",
        )
    };
    if !token.len().is_multiple_of(2)
        || token.len() > 2 * validate::MAX_REQUEST_ID_LEN.max(validate::MAX_NAME_LEN)
    {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}
