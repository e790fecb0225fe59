//! A small harness for the declarative and MCP integration tests: starts the real `wfm`
//! binary with a TOML config, registers YAML definitions, runs executions and summarizes
//! their event streams. (The shared tests/common harness may absorb this later.)
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tonic::transport::Channel;
use wfm::api::convert::{json_to_struct, value_to_json_lossy};
use wfm::engine::definition::Definition;
use wfm::proto::{self, execution_event::Kind, workflow_service_client::WorkflowServiceClient};

pub type Client = WorkflowServiceClient<Channel>;

pub struct Server {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts `wfm serve` on a free port with `config` (TOML) and waits for it to listen.
    pub fn start(config: &str) -> Server {
        Server::start_with_env(config, &[])
    }

    /// Like `start`, with these environment variables set for the server.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        // Not WFM_LOG: figment reads every WFM_* variable as configuration.
        let config = format!("{config}\n[log]\nlevel = \"info,wfm=debug\"\n");
        std::fs::write(dir.path().join("wfm.toml"), config).expect("write config");
        let env: Vec<_> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, addr) = launch(&dir, &env);
        Server {
            child,
            addr,
            dir,
            env,
        }
    }

    /// Kills the server (SIGKILL: nothing is flushed or closed) and starts it again on the
    /// same config and data directory.
    pub fn kill_and_restart(&mut self) {
        self.kill_edit_and_restart(|_| {});
    }

    /// Like `kill_and_restart`, letting `edit` change the data directory while the server
    /// is down: to stand for a store written by an older wfm, say.
    pub fn kill_edit_and_restart(&mut self, edit: impl FnOnce(&std::path::Path)) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        edit(&self.dir.path().join("data"));
        (self.child, self.addr) = launch(&self.dir, &self.env);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> Client {
        WorkflowServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wfm.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wfm serve` on the config and data directory in `dir`, logging to its `wfm.log`;
/// returns once it listens.
fn launch(dir: &tempfile::TempDir, env: &[(String, String)]) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("wfm.log"))
        .expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("wfm.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start wfm");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read stdout");
    let addr = line
        .trim()
        .strip_prefix("wfm listening on ")
        .unwrap_or_else(|| {
            panic!(
                "wfm did not start: {line:?}\n{}",
                std::fs::read_to_string(dir.path().join("wfm.log")).unwrap_or_default()
            )
        })
        .to_string();
    (child, addr)
}

/// A definition in YAML, as `wfm register -f` reads it (without the metadata).
pub fn definition(yaml: &str) -> proto::WorkflowDefinition {
    let d: Definition = serde_norway::from_str(yaml).expect("test definition parses");
    wfm::api::convert_definition::definition_to_proto(&d)
}

pub async fn register(
    client: &mut Client,
    name: &str,
    yaml: &str,
) -> Result<proto::Workflow, tonic::Status> {
    register_proto(client, name, definition(yaml)).await
}

pub async fn register_proto(
    client: &mut Client,
    name: &str,
    definition: proto::WorkflowDefinition,
) -> Result<proto::Workflow, tonic::Status> {
    client
        .register(proto::RegisterRequest {
            name: name.into(),
            source: Some(proto::register_request::Source::Definition(definition)),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().workflow.expect("workflow"))
}

/// Starts an execution (StartExecution) and returns its id.
pub async fn start(client: &mut Client, name: &str, input: Value) -> String {
    client
        .start_execution(proto::StartExecutionRequest {
            name: name.into(),
            input: Some(json_to_struct(&input)),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .execution_id
}

/// Runs an execution to its end and returns every event.
pub async fn execute(
    client: &mut Client,
    name: &str,
    input: Value,
) -> Result<Vec<proto::ExecutionEvent>, tonic::Status> {
    let mut stream = client
        .execute(proto::ExecuteRequest {
            name: name.into(),
            input: Some(json_to_struct(&input)),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("execution ended within 60s")?
    {
        events.push(r.event.expect("event"));
    }
    Ok(events)
}

/// One line per event: `started a 1`, `failed a 1 retry`, `completed a`, `skipped a`,
/// `cancelled a 1: reason`,
/// `progress a: text`, and `run completed` / `run failed: ...` / `run cancelled: ...`.
pub fn lines(events: &[proto::ExecutionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            Some(match e.kind.as_ref()? {
                Kind::StepStarted(s) => format!("started {} {}", s.step_id, s.attempt),
                Kind::StepFailed(s) => format!(
                    "failed {} {}{}: {}",
                    s.step_id,
                    s.attempt,
                    if s.will_retry { " retry" } else { "" },
                    s.error
                ),
                Kind::StepCompleted(s) => format!("completed {}", s.step_id),
                Kind::StepSkipped(s) => format!("skipped {}: {}", s.step_id, s.reason),
                Kind::StepCancelled(s) => {
                    format!("cancelled {} {}: {}", s.step_id, s.attempt, s.reason)
                }
                Kind::StepProgress(s) => format!("progress {}: {}", s.step_id, s.message),
                Kind::Completed(_) => "run completed".into(),
                Kind::Failed(f) => format!("run failed: {}", f.error),
                Kind::Cancelled(c) => format!("run cancelled: {}", c.reason),
                _ => return None,
            })
        })
        .collect()
}

/// The lines about one step, in order.
pub fn step_lines(events: &[proto::ExecutionEvent], step: &str) -> Vec<String> {
    let prefixes = [
        format!("started {step} "),
        format!("failed {step} "),
        format!("skipped {step}:"),
        format!("cancelled {step} "),
        format!("progress {step}:"),
    ];
    let done = format!("completed {step}");
    lines(events)
        .into_iter()
        .filter(|l| *l == done || prefixes.iter().any(|p| l.starts_with(p.as_str())))
        .collect()
}

/// The terminal result of an execution's events.
pub fn result(events: &[proto::ExecutionEvent]) -> proto::ExecutionResult {
    match events.last().and_then(|e| e.kind.clone()) {
        Some(Kind::Completed(c)) => c.result.expect("result"),
        Some(Kind::Failed(f)) => f.result.expect("result"),
        Some(Kind::Cancelled(c)) => c.result.expect("result"),
        other => panic!("no terminal event: {other:?}"),
    }
}

pub fn output(events: &[proto::ExecutionEvent]) -> Value {
    value_to_json_lossy(&result(events).output.unwrap_or_default())
}

pub fn step_result<'a>(r: &'a proto::ExecutionResult, step: &str) -> &'a proto::StepResult {
    r.steps
        .iter()
        .find(|s| s.step_id == step)
        .unwrap_or_else(|| panic!("no result for step {step}: {r:?}"))
}

/// An HTTP server on 127.0.0.1 that drops the first `failures` connections without an
/// answer, then answers `{"ok": true, "request": N}`: a flaky dependency.
pub async fn flaky_http(
    failures: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= failures {
                drop(socket);
                continue;
            }
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = format!("{{\"ok\": true, \"request\": {n}}}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, count)
}

/// An HTTPS front for the plain TCP server at `target`: TLS is terminated here with a
/// certificate for 127.0.0.1 signed by a test CA, and each connection is piped to
/// `target`. Returns the front's address and the CA's PEM file (for `SSL_CERT_FILE`).
/// It runs on a thread of its own: `Server::start` blocks the test's runtime while wfm
/// connects its MCP servers, which may be behind this front.
pub fn https_front(target: std::net::SocketAddr) -> (std::net::SocketAddr, TlsFiles) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("TLS server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let addr = listener.local_addr().expect("addr");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        })
    });
    (addr, TlsFiles { dir, ca_file })
}

/// The test CA of an `https_front`, kept on disk while this lives.
pub struct TlsFiles {
    dir: tempfile::TempDir,
    pub ca_file: PathBuf,
}

impl TlsFiles {
    pub fn ca(&self) -> &str {
        self.ca_file.to_str().expect("UTF-8 temp path")
    }
}

/// Where scripts/install-mcp-servers.sh puts the MCP servers.
pub fn mcp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/mcp")
}

/// The installed MCP servers, or a failure telling how to install them.
pub fn mcp_servers() -> (PathBuf, PathBuf) {
    let dir = mcp_dir();
    let everything = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let time = dir.join("venv/bin/mcp-server-time");
    assert!(
        everything.exists() && time.exists(),
        "the MCP test servers are not installed: run scripts/install-mcp-servers.sh (looked for {} and {})",
        everything.display(),
        time.display()
    );
    (everything, time)
}
