//! How an MCP server is configured, in the shape MCP clients use: a name (the key of
//! `[mcp_servers.NAME]`) → `command` + `args` + `env` for stdio, or `url` for streamable HTTP.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    /// Program to start for a stdio server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub args: Vec<String>,
    /// Environment of the started program, on top of wfm's own.
    pub env: BTreeMap<String, String>,
    /// Endpoint of a streamable HTTP server, e.g. `http://127.0.0.1:3001/mcp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long starting, initializing and listing tools may take.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            url: None,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

impl McpServerConfig {
    /// Checks the server's entry; `name` becomes the prefix of its tools (`name.tool`).
    pub fn check(&self, name: &str) -> Result<(), String> {
        let ok_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name {
            return Err(format!(
                "mcp_servers.{name}: the name must be letters, digits, '_' and '-' (its tools are named NAME.TOOL)"
            ));
        }
        match (&self.command, &self.url) {
            (Some(c), None) if !c.is_empty() => Ok(()),
            (None, Some(u)) if u.starts_with("http://") || u.starts_with("https://") => Ok(()),
            (None, Some(u)) => Err(format!(
                "mcp_servers.{name}.url '{u}' must start with http:// or https://"
            )),
            _ => Err(format!(
                "mcp_servers.{name}: give either `command` (stdio) or `url` (streamable HTTP)"
            )),
        }
    }

    pub(super) fn describe(&self) -> String {
        match (&self.command, &self.url) {
            (_, Some(url)) => url.clone(),
            (Some(command), None) => std::iter::once(command.as_str())
                .chain(self.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            (None, None) => String::new(),
        }
    }
}
