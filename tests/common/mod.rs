//! Test harness: a real `wfm serve` process on 127.0.0.1 port 0 with its own data directory,
//! and a real gRPC client over loopback.
#![allow(dead_code)]

pub mod raw;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use tonic::transport::Channel;
use wfm::api::convert;
use wfm::proto::{self, execution_event::Kind, workflow_service_client::WorkflowServiceClient};

pub type Client = WorkflowServiceClient<Channel>;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// The lines the server prints on stdout after the first.
    stdout: mpsc::Receiver<String>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(&[], &[]).await
    }

    /// Starts a server with extra environment variables and arguments.
    pub async fn start_with(env: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Server::start_in(dir, env, args)
    }

    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::spawn(dir, env, args, Stdio::inherit())
    }

    /// Like `start_with`, with the server's stderr (its log) kept in a file; see `log`.
    pub fn start_logged(env: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("wfm.log")).expect("log file");
        Server::spawn(dir, env, args, Stdio::from(log))
    }

    fn spawn(dir: tempfile::TempDir, env: &[(&str, &str)], args: &[&str], stderr: Stdio) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wfm"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("wfm starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("wfm prints its address within 30 s");
        let addr = line
            .strip_prefix("wfm listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .expect("an address");
        Server {
            child,
            addr,
            dir,
            stdout: rx,
        }
    }

    /// The next line the server prints on stdout, waiting up to 10 s.
    pub fn next_stdout_line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("wfm prints another line within 10 s")
    }

    /// What the server logged so far (servers started with `start_logged`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wfm.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    pub async fn client(&self) -> Client {
        WorkflowServiceClient::new(self.channel().await)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wfm did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL) and keeps its data directory for a restart.
    pub fn kill_keep_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn json_struct(v: Value) -> Option<prost_types::Struct> {
    Some(convert::json_to_struct(&v))
}

pub fn native(type_name: &str, arguments: Value) -> Option<proto::register_request::Source> {
    Some(proto::register_request::Source::Native(
        proto::NativeSource {
            r#type: type_name.to_string(),
            arguments: json_struct(arguments),
        },
    ))
}

/// Registers `name` as a workflow of the given type.
pub async fn register(
    client: &mut Client,
    name: &str,
    type_name: &str,
    arguments: Value,
) -> proto::Workflow {
    client
        .register(proto::RegisterRequest {
            name: name.to_string(),
            source: native(type_name, arguments),
            ..Default::default()
        })
        .await
        .expect("register")
        .into_inner()
        .workflow
        .expect("workflow")
}

pub fn execute_request(name: &str, input: Value) -> proto::ExecuteRequest {
    proto::ExecuteRequest {
        name: name.to_string(),
        input: json_struct(input),
        ..Default::default()
    }
}

/// Executes and collects every event until the stream ends.
pub async fn execute(client: &mut Client, name: &str, input: Value) -> Vec<proto::ExecutionEvent> {
    let mut stream = client
        .execute(execute_request(name, input))
        .await
        .expect("execute")
        .into_inner();
    let mut events = Vec::new();
    while let Some(r) = stream.message().await.expect("stream") {
        events.push(r.event.expect("event"));
    }
    events
}

/// Follows an execution from `after` to its end and collects the events.
pub async fn watch_all(client: &mut Client, id: &str, after: i64) -> Vec<proto::ExecutionEvent> {
    let mut stream = client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.into(),
            after_sequence: after,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut events = Vec::new();
    while let Some(r) = stream.message().await.expect("stream") {
        events.push(r.event.unwrap());
    }
    events
}

/// A short name per event kind, with the step id for step events.
pub fn label(e: &proto::ExecutionEvent) -> String {
    match e.kind.as_ref().expect("kind") {
        Kind::Accepted(_) => "accepted".into(),
        Kind::Queued(_) => "queued".into(),
        Kind::Started(_) => "started".into(),
        Kind::StepStarted(s) => format!("step_started:{}", s.step_id),
        Kind::StepProgress(s) => format!("step_progress:{}", s.step_id),
        Kind::StepCompleted(s) => format!("step_completed:{}", s.step_id),
        Kind::StepFailed(s) => format!("step_failed:{}", s.step_id),
        Kind::StepSkipped(s) => format!("step_skipped:{}", s.step_id),
        Kind::StepCancelled(s) => format!("step_cancelled:{}", s.step_id),
        Kind::Completed(_) => "completed".into(),
        Kind::Failed(_) => "failed".into(),
        Kind::Cancelled(_) => "cancelled".into(),
    }
}

pub fn labels(events: &[proto::ExecutionEvent]) -> Vec<String> {
    events.iter().map(label).collect()
}

/// Sequence numbers start at 1 with no gaps, all of one execution.
pub fn assert_gap_free(events: &[proto::ExecutionEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.sequence,
            i as i64 + 1,
            "event {i} has sequence {}",
            e.sequence
        );
        assert_eq!(e.execution_id, events[0].execution_id);
    }
}

pub fn result_of(e: &proto::ExecutionEvent) -> &proto::ExecutionResult {
    match e.kind.as_ref().expect("kind") {
        Kind::Completed(c) => c.result.as_ref(),
        Kind::Failed(f) => f.result.as_ref(),
        Kind::Cancelled(c) => c.result.as_ref(),
        _ => None,
    }
    .expect("a terminal event with a result")
}

pub fn output_json(v: &Option<prost_types::Value>) -> Value {
    v.as_ref().map_or(Value::Null, convert::value_to_json_lossy)
}
