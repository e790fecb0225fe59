//! MCP servers as tool providers: each configured server is connected at start-up with the
//! official SDK (rmcp), its tools are listed and registered as `server.tool` in the
//! ToolManager, and its connection is kept alive until the ToolManager closes. A server that
//! is not up at start is tried again in the background; a server's tools are listed again
//! on every reconnect and when it says they changed.

mod config;
mod connection;

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use futures_util::future::join_all;
use serde_json::Value;

pub use config::McpServerConfig;
use connection::Connection;

use super::{Tool, ToolError, ToolManager, ToolProvider, ToolSpec};

/// A tool of an MCP server, as the ToolManager sees it.
struct McpTool {
    spec: ToolSpec,
    /// The tool's name on its server.
    remote_name: String,
    connection: Arc<Connection>,
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        self.connection
            .call(&self.spec.name, &self.remote_name, arguments)
            .await
    }
}

#[async_trait]
impl ToolProvider for Connection {
    async fn close(&self) {
        Connection::close(self).await;
    }

    fn missing_because(&self, name: &str) -> Option<String> {
        let (server, _) = name.split_once('.')?;
        (server == self.name() && !self.has_listed()).then(|| {
            format!("MCP server '{server}' is not connected yet; its tools appear once it answers")
        })
    }
}

/// The ToolManager's view of the tools a server listed.
fn tools_of(
    server: &str,
    connection: &Arc<Connection>,
    listed: &[rmcp::model::Tool],
) -> Vec<Arc<dyn Tool>> {
    listed
        .iter()
        .map(|tool| {
            Arc::new(McpTool {
                spec: ToolSpec {
                    name: format!("{server}.{}", tool.name),
                    description: tool.description.as_deref().unwrap_or_default().to_string(),
                    input_schema: Value::Object((*tool.input_schema).clone()),
                    server: server.to_string(),
                },
                remote_name: tool.name.to_string(),
                connection: connection.clone(),
            }) as Arc<dyn Tool>
        })
        .collect()
}

/// Connects every configured server in parallel and registers their tools, each waiting at
/// most its `startup_timeout`. A server that fails is logged with the reason and tried again
/// in the background; its tools appear once it answers. Returns the names of the servers
/// connected now.
pub async fn connect_all(
    tools: &Arc<ToolManager>,
    servers: &BTreeMap<String, McpServerConfig>,
) -> Vec<String> {
    let attempts = servers.iter().map(|(name, config)| async move {
        (name, config, Connection::start(name, config, tools).await)
    });
    let mut connected = Vec::new();
    for (name, config, (connection, outcome)) in join_all(attempts).await {
        tools.add_provider(connection);
        match outcome {
            Ok(published) => {
                tracing::info!(server = %name, tools = published, "MCP server connected");
                connected.push(name.clone());
            }
            Err(error) => {
                tracing::error!(server = %name, target = %config.describe(), %error, "MCP server could not be connected; its tools are not available until it answers (retrying in the background)");
            }
        }
    }
    connected
}
