//! The ToolManager: one registry of tools shared by every workflow, so many workflows
//! share the same connections. Built-in tools live in `builtin/`; MCP servers plug in
//! behind the same `Tool` trait.

pub mod builtin;
mod error;
pub mod mcp;
mod tls;

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use std::sync::RwLock;
use tracing::Instrument;

use crate::telemetry::{metrics::ToolMetrics, trace};

pub use error::ToolError;

/// What a client sees of a tool (ListTools).
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// Built-in tools have plain names; MCP tools are named `server.tool`.
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
    /// `builtin`, or the MCP server's name.
    pub server: String,
}

/// A callable tool. Cancelling a call is dropping its future.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    async fn call(&self, arguments: Value) -> Result<Value, ToolError>;
}

/// Something holding connections behind tools (an MCP server), closed at shutdown.
#[async_trait]
pub trait ToolProvider: Send + Sync {
    async fn close(&self);

    /// Why a tool named `name` is missing, when it may be this provider's and the provider
    /// cannot say yet (an MCP server not connected): the call is then unavailable, which a
    /// retry may get past, rather than unknown.
    fn missing_because(&self, _name: &str) -> Option<String> {
        None
    }
}

/// A tool with its metric handles, taken once when it is added.
struct Registered {
    tool: Arc<dyn Tool>,
    metrics: Arc<ToolMetrics>,
}

/// Registry of every tool, shared by all workflows.
#[derive(Default)]
pub struct ToolManager {
    tools: RwLock<BTreeMap<String, Registered>>,
    providers: std::sync::Mutex<Vec<Arc<dyn ToolProvider>>>,
}

impl ToolManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool, replacing one of the same name.
    pub fn add(&self, tool: Arc<dyn Tool>) {
        let name = tool.spec().name.clone();
        let metrics = Arc::new(ToolMetrics::new(&name, &tool.spec().server));
        self.tools
            .write()
            .expect("tool registry lock")
            .insert(name, Registered { tool, metrics });
    }

    /// Makes `tools` the tools of `server`: its tools not among them are removed, and a tool
    /// it keeps keeps its metrics.
    pub fn set_server_tools(&self, server: &str, tools: Vec<Arc<dyn Tool>>) {
        let mut registry = self.tools.write().expect("tool registry lock");
        let names: std::collections::BTreeSet<&str> =
            tools.iter().map(|t| t.spec().name.as_str()).collect();
        registry.retain(|name, r| r.tool.spec().server != server || names.contains(name.as_str()));
        for tool in tools {
            let name = tool.spec().name.clone();
            match registry.get_mut(&name) {
                Some(registered) => registered.tool = tool,
                None => {
                    let metrics = Arc::new(ToolMetrics::new(&name, server));
                    registry.insert(name, Registered { tool, metrics });
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools
            .read()
            .expect("tool registry lock")
            .get(name)
            .map(|r| r.tool.clone())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools
            .read()
            .expect("tool registry lock")
            .contains_key(name)
    }

    /// The JSON Schema of a tool's arguments, when the tool is here.
    pub fn input_schema(&self, name: &str) -> Option<Value> {
        let tools = self.tools.read().expect("tool registry lock");
        tools.get(name).map(|r| r.tool.spec().input_schema.clone())
    }

    /// Every tool's spec, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let tools = self.tools.read().expect("tool registry lock");
        tools.values().map(|r| r.tool.spec().clone()).collect()
    }

    /// Calls a tool by name, in its own span, counted and timed.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<Value, ToolError> {
        let (tool, metrics) = self
            .tools
            .read()
            .expect("tool registry lock")
            .get(name)
            .map(|r| (r.tool.clone(), r.metrics.clone()))
            .ok_or_else(|| self.missing(name))?;
        let span = trace::tool_span(name, &tool.spec().server);
        metrics.called();
        let started = Instant::now();
        let result = tool.call(arguments).instrument(span.clone()).await;
        metrics.returned(started.elapsed(), result.is_ok());
        if let Err(e) = &result {
            trace::mark_failed(&span);
            tracing::debug!(parent: &span, error = %e, "tool call failed");
        }
        result
    }

    /// Adds a provider to close at shutdown.
    /// Whether a workflow may name this tool: it is here, or it may be the tool of a
    /// provider that cannot say yet (an MCP server not connected since start). A workflow
    /// registered before a restart thus comes back while its MCP server is still down.
    pub fn may_call(&self, name: &str) -> bool {
        self.contains(name) || self.pending(name).is_some()
    }

    /// Why `name`, not here, may still be a provider's tool (see [`Self::may_call`]).
    fn pending(&self, name: &str) -> Option<String> {
        let providers = self.providers.lock().expect("tool providers lock");
        providers.iter().find_map(|p| p.missing_because(name))
    }

    fn missing(&self, name: &str) -> ToolError {
        match self.pending(name) {
            Some(message) => ToolError::Unavailable {
                tool: name.to_string(),
                message,
            },
            None => ToolError::NotFound(name.to_string()),
        }
    }

    pub fn add_provider(&self, provider: Arc<dyn ToolProvider>) {
        self.providers
            .lock()
            .expect("tool providers lock")
            .push(provider);
    }

    /// Closes tool connections at shutdown: MCP sessions end and stdio servers stop.
    pub async fn close(&self) {
        self.tools.write().expect("tool registry lock").clear();
        let providers = std::mem::take(&mut *self.providers.lock().expect("tool providers lock"));
        futures_util::future::join_all(providers.iter().map(|p| p.close())).await;
    }
}

/// Reads a field of an argument object, naming the tool and field when it is missing or mistyped.
pub(crate) fn arg<'a, T: serde::Deserialize<'a>>(
    tool: &str,
    arguments: &'a Value,
    field: &str,
) -> Result<Option<T>, ToolError> {
    match arguments.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| ToolError::InvalidArguments {
                tool: tool.to_string(),
                reason: format!("field '{field}': {e}"),
            }),
    }
}

/// Like [`arg`], for a field that must be present.
pub(crate) fn required_arg<'a, T: serde::Deserialize<'a>>(
    tool: &str,
    arguments: &'a Value,
    field: &str,
) -> Result<T, ToolError> {
    arg(tool, arguments, field)?.ok_or_else(|| ToolError::InvalidArguments {
        tool: tool.to_string(),
        reason: format!("field '{field}' is required"),
    })
}
