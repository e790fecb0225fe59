//! One MCP server connection, kept alive: a supervisor task watches it and reconnects with
//! backoff when the transport dies (a stdio server that exited, an HTTP server gone) or
//! could not be made at start (a server not up yet), and keeps the server's tools in the
//! ToolManager as the server lists them.
//! Transport errors are the liveness signal; a call in flight then fails as Unavailable
//! and the step's retry policy decides whether to try again.

use std::{
    process::Stdio,
    sync::{Arc, Mutex, RwLock, Weak},
    time::Duration,
};

use rmcp::{
    ClientHandler, RoleClient, ServiceError, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode},
    service::{ClientInitializeError, NotificationContext, Peer, RunningService},
    transport::{
        StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpError,
    },
};
use serde_json::Value;
use tokio::{io::AsyncBufReadExt, sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::McpServerConfig;
use crate::tools::{ToolError, ToolManager, error::innermost_cause};

type Client = RunningService<RoleClient, Handler>;

/// Least time an attempt made in the background waits for the server (see `open`).
const BACKGROUND_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// First delay before reconnecting; it doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a quiet connection is checked for a closed transport.
const LIVENESS_POLL: Duration = Duration::from_millis(500);
/// How long closing a connection (and stopping a stdio server) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Connection {
    name: String,
    config: McpServerConfig,
    /// The live session and its generation; None while (re)connecting.
    current: RwLock<Option<(u64, Peer<RoleClient>)>>,
    broken: Notify,
    closed: CancellationToken,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// The server's tools were listed once: a tool of its name missing now is unknown.
    listed: std::sync::atomic::AtomicBool,
}

/// The client side of a session: tells the supervisor when the server's tools change.
#[derive(Clone)]
struct Handler {
    tools_changed: Arc<Notify>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }
}

impl Connection {
    /// Connects and publishes the server's tools to `tools`, waiting at most the server's
    /// `startup_timeout`; the connection is then supervised, and kept trying in the
    /// background when this first attempt failed (its error is returned). Its tools are
    /// published again whenever they may have changed: on every reconnect, and when the
    /// server says its tool list changed.
    pub async fn start(
        name: &str,
        config: &McpServerConfig,
        tools: &Arc<ToolManager>,
    ) -> (Arc<Connection>, Result<usize, String>) {
        let connection = Arc::new(Connection {
            name: name.to_string(),
            config: config.clone(),
            current: RwLock::new(None),
            broken: Notify::new(),
            closed: CancellationToken::new(),
            supervisor: Mutex::new(None),
            listed: Default::default(),
        });
        let tools_changed = Arc::new(Notify::new());
        let (client, outcome) = match connection.open(&tools_changed, tools, false).await {
            Ok((client, published)) => (Some(client), Ok(published)),
            Err(error) => (None, Err(error)),
        };
        if let Some(client) = &client {
            // Callable as soon as this returns; the supervisor numbers it the same (1).
            *connection.current.write().expect("connection lock") =
                Some((1, client.peer().clone()));
        }
        let task = tokio::spawn(supervise(
            connection.clone(),
            client,
            tools_changed,
            Arc::downgrade(tools),
        ));
        *connection.supervisor.lock().expect("supervisor lock") = Some(task);
        (connection, outcome)
    }

    /// One attempt: a session, and its tools listed and published. At start it waits
    /// `startup_timeout`; in the background, where nothing waits for it, at least
    /// [`BACKGROUND_ATTEMPT_TIMEOUT`], so a server slower to start than that (a first
    /// `npx -y`) is not killed and started again on every attempt, never to answer.
    async fn open(
        self: &Arc<Self>,
        tools_changed: &Arc<Notify>,
        tools: &Arc<ToolManager>,
        in_background: bool,
    ) -> Result<(Client, usize), String> {
        let timeout = if in_background {
            self.config.startup_timeout.max(BACKGROUND_ATTEMPT_TIMEOUT)
        } else {
            self.config.startup_timeout
        };
        tokio::time::timeout(timeout, async {
            let handler = Handler {
                tools_changed: tools_changed.clone(),
            };
            let client = connect(&self.name, &self.config, handler).await?;
            let published = self.publish(&client, tools).await?;
            Ok((client, published))
        })
        .await
        .map_err(|_| {
            if in_background {
                format!("did not answer within {timeout:?}")
            } else {
                format!("did not answer within startup_timeout ({timeout:?})")
            }
        })?
    }

    /// Lists the server's tools and makes them, and only them, its tools in `tools`.
    async fn publish(
        self: &Arc<Self>,
        client: &Client,
        tools: &ToolManager,
    ) -> Result<usize, String> {
        let listed = client
            .list_all_tools()
            .await
            .map_err(|e| format!("listing its tools failed: {e}"))?;
        tools.set_server_tools(&self.name, super::tools_of(&self.name, self, &listed));
        self.listed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(listed.len())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the server's tools were listed once (it has answered since start).
    pub fn has_listed(&self) -> bool {
        self.listed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Calls a tool of this server; `qualified` is its wfm name, for errors.
    pub async fn call(
        &self,
        qualified: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        let arguments = match arguments {
            Value::Object(map) => map,
            Value::Null => Default::default(),
            other => {
                return Err(ToolError::invalid(
                    qualified,
                    format!("arguments must be an object, not {other}"),
                ));
            }
        };
        let current = self.current.read().expect("connection lock").clone();
        let Some((generation, peer)) = current else {
            return Err(ToolError::Unavailable {
                tool: qualified.to_string(),
                message: format!("MCP server '{}' is reconnecting", self.name),
            });
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        match peer.call_tool(params).await {
            Ok(result) => result_value(qualified, result),
            Err(e @ (ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                self.report_broken(generation);
                Err(ToolError::Unavailable {
                    tool: qualified.to_string(),
                    message: format!(
                        "MCP server '{}' connection lost during the call ({e}); reconnecting",
                        self.name
                    ),
                })
            }
            Err(ServiceError::McpError(e)) => Err(call_error(qualified, e.code, e.message)),
            Err(e) => Err(ToolError::failed(qualified, e)),
        }
    }

    /// Stops supervising and closes the session; a stdio server is stopped.
    pub async fn close(&self) {
        self.closed.cancel();
        let task = self.supervisor.lock().expect("supervisor lock").take();
        if let Some(task) = task
            && tokio::time::timeout(CLOSE_TIMEOUT * 2, task).await.is_err()
        {
            tracing::warn!(server = %self.name, "MCP connection did not close in time");
        }
    }

    fn report_broken(&self, generation: u64) {
        let current = self.current.read().expect("connection lock");
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            self.broken.notify_one();
        }
    }
}

/// Keeps a session up: watches it, publishes the server's tools again when it says they
/// changed, and when its transport dies (or there was none yet) connects again with
/// exponential backoff.
async fn supervise(
    connection: Arc<Connection>,
    mut client: Option<Client>,
    tools_changed: Arc<Notify>,
    tools: Weak<ToolManager>,
) {
    let mut generation = 0;
    loop {
        let mut session = match client.take() {
            Some(session) => session,
            None => {
                let mut backoff = INITIAL_BACKOFF;
                loop {
                    tokio::select! {
                        _ = connection.closed.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    let Some(manager) = tools.upgrade() else {
                        return;
                    };
                    let attempt = tokio::select! {
                        _ = connection.closed.cancelled() => return,
                        attempt = connection.open(&tools_changed, &manager, true) => attempt,
                    };
                    match attempt {
                        Ok((session, published)) => {
                            if generation == 0 {
                                tracing::info!(server = %connection.name, tools = published, "MCP server connected");
                            } else {
                                tracing::info!(server = %connection.name, tools = published, "MCP server reconnected");
                            }
                            break session;
                        }
                        Err(error) => {
                            tracing::warn!(server = %connection.name, %error, retry_in = ?backoff, "MCP server connection failed");
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            }
        };
        generation += 1;
        *connection.current.write().expect("connection lock") =
            Some((generation, session.peer().clone()));
        loop {
            tokio::select! {
                _ = connection.closed.cancelled() => {
                    *connection.current.write().expect("connection lock") = None;
                    let _ = session.close_with_timeout(CLOSE_TIMEOUT).await;
                    return;
                }
                _ = connection.broken.notified() => break,
                _ = tools_changed.notified() => {
                    let Some(manager) = tools.upgrade() else { return };
                    match connection.publish(&session, &manager).await {
                        Ok(published) => tracing::info!(server = %connection.name, tools = published, "MCP server's tools changed"),
                        Err(error) => {
                            tracing::warn!(server = %connection.name, %error, "MCP server's changed tools could not be listed");
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep(LIVENESS_POLL) => {
                    if session.peer().is_transport_closed() {
                        break;
                    }
                }
            }
        }
        tracing::warn!(server = %connection.name, "MCP server connection lost; reconnecting");
        *connection.current.write().expect("connection lock") = None;
        let _ = session.close_with_timeout(CLOSE_TIMEOUT).await;
    }
}

/// Starts (stdio) or reaches (HTTP) the server and initializes an MCP session.
async fn connect(name: &str, config: &McpServerConfig, handler: Handler) -> Result<Client, String> {
    if let Some(url) = &config.url {
        crate::tools::tls::use_ring_provider();
        let transport = StreamableHttpClientTransport::from_uri(url.clone());
        return handler
            .serve(transport)
            .await
            .map_err(|e| format!("{url} did not answer MCP's initialize: {}", cause_of(e)));
    }
    let command = config.command.as_deref().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(&config.args).envs(&config.env);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{}` could not be started: {e}", config.describe()))?;
    // Its last lines, for the error if it fails to start: that is where it says why.
    let tail = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let reader = stderr.map(|stderr| {
        // The server's own log, at debug level: a piped stderr nobody reads would block it.
        let (name, tail) = (name.to_string(), tail.clone());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(server = %name, "{line}");
                let mut tail = tail.lock().expect("stderr tail lock");
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.chars().take(STDERR_LINE_CHARS).collect::<String>());
            }
        })
    });
    match handler.serve(transport).await {
        Ok(client) => Ok(client),
        Err(e) => {
            if let Some(reader) = reader {
                // A server that exited has said all it will; one still running, enough.
                let _ = tokio::time::timeout(STDERR_DRAIN, reader).await;
            }
            let tail = tail.lock().expect("stderr tail lock");
            let said = if tail.is_empty() {
                String::new()
            } else {
                let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
                format!("; its stderr ended with: {}", lines.join(" | "))
            };
            Err(format!(
                "`{}` started but its MCP session could not be initialized: {e}{said}",
                config.describe()
            ))
        }
    }
}

/// Lines of a stdio server's stderr kept for the error when it fails to start.
const STDERR_TAIL_LINES: usize = 5;
/// Longest stderr line kept, in characters.
const STDERR_LINE_CHARS: usize = 300;
/// How long a failed start waits for the server's last stderr lines.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// What went wrong, for the operator: an HTTP transport error's innermost cause
/// ("Connection refused (os error 111)"), whose outer layers only name library types.
fn cause_of(error: ClientInitializeError) -> String {
    let ClientInitializeError::TransportError { error, .. } = &error else {
        return error.to_string();
    };
    match error
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        Some(StreamableHttpError::Client(e)) => innermost_cause(e),
        _ => innermost_cause(&*error.error),
    }
}

/// Structured content when the server gives it, else the text content; an MCP tool
/// error becomes a tool failure carrying the server's message.
/// A JSON-RPC error of a tool call, classed as a built-in tool's error would be, so a
/// step's retry policy can tell them apart: invalid params (-32602) are the arguments'
/// fault (`InvalidArguments`, which retrying does not fix), and method not found (-32601)
/// means the server has no such tool (`NotFound`). Anything else: the tool failed.
fn call_error(tool: &str, code: ErrorCode, message: impl std::fmt::Display) -> ToolError {
    match code {
        ErrorCode::INVALID_PARAMS => ToolError::invalid(tool, message),
        ErrorCode::METHOD_NOT_FOUND => ToolError::NotFound(tool.to_string()),
        _ => ToolError::failed(tool, message),
    }
}

fn result_value(tool: &str, result: CallToolResult) -> Result<Value, ToolError> {
    let text = result
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if result.is_error == Some(true) {
        if text.is_empty() {
            return Err(ToolError::failed(
                tool,
                "the MCP tool reported an error without a message",
            ));
        }
        // The TypeScript SDK (the reference servers) answers a JSON-RPC error raised in a
        // tool call, its own argument validation included, as an error result reading
        // "MCP error <code>: <message>": class it by its code too.
        if let Some((code, message)) = text
            .strip_prefix("MCP error ")
            .and_then(|rest| rest.split_once(": "))
            && let Ok(code) = code.parse()
        {
            return Err(call_error(tool, ErrorCode(code), message));
        }
        return Err(ToolError::failed(tool, text));
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    if !text.is_empty() {
        return Ok(Value::String(text));
    }
    Ok(serde_json::to_value(&result.content).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_result(text: &str) -> ToolError {
        result_value("s.t", CallToolResult::error(vec![ContentBlock::text(text)])).unwrap_err()
    }

    #[test]
    fn tool_errors_are_classed_by_their_json_rpc_code() {
        assert_eq!(
            error_result("MCP error -32602: Input validation error: expected number at a"),
            ToolError::invalid("s.t", "Input validation error: expected number at a")
        );
        assert_eq!(
            error_result("MCP error -32601: Method not found"),
            ToolError::NotFound("s.t".into())
        );
        assert_eq!(
            error_result("MCP error -32603: boom"),
            ToolError::failed("s.t", "boom")
        );
        assert_eq!(
            error_result("the disk is full"),
            ToolError::failed("s.t", "the disk is full")
        );
        assert_eq!(
            call_error("s.t", ErrorCode::INVALID_PARAMS, "bad"),
            ToolError::invalid("s.t", "bad")
        );
    }
}
