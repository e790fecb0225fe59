//! A server the benchmark starts for itself: this same binary running `serve` on a
//! temporary data directory, so the load generator and the server are separate processes
//! as they are in production.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// Which store the started server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    Memory,
    Durable,
}

impl StoreChoice {
    pub fn name(self) -> &'static str {
        match self {
            StoreChoice::Memory => "memory",
            StoreChoice::Durable => "sqlite",
        }
    }
}

pub struct BenchServer {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    store: StoreChoice,
    /// How long from spawning the process to its "listening" line.
    pub start_time: Duration,
}

/// Limits far above the defaults and no rate limit: the benchmark measures the engine, not
/// the admission. Logs at warn: a log line per call is a cost operators choose.
fn config(data_dir: &Path, store: StoreChoice) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = "{dir}"
store = "{store}"
shutdown_grace = "1s"

[log]
level = "warn"

[limits]
max_concurrent_executions = 1000000
max_queued_executions = 1000000
max_streams_per_connection = 4096
requests_per_second_per_token = 0
"#,
        dir = data_dir.display(),
        store = store.name(),
    )
}

impl BenchServer {
    /// Starts a server on `data_dir` (kept, so a restarted server finds its store).
    pub fn start(data_dir: &Path, store: StoreChoice) -> anyhow::Result<BenchServer> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let config_path = data_dir.join("bench.toml");
        std::fs::write(&config_path, config(data_dir, store))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))?;
        let began = Instant::now();
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("cannot start the server to benchmark")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("wfm listening on ") else {
            let _ = child.kill();
            bail!(
                "the server did not start (see {}): {line}",
                data_dir.join("server.log").display()
            );
        };
        Ok(BenchServer {
            url: format!("http://{addr}"),
            child,
            data_dir: data_dir.to_path_buf(),
            store,
            start_time: began.elapsed(),
        })
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmRSS:")
    }

    /// A `/proc/PID/status` memory line (`VmRSS:`, `RssAnon:`, `RssFile:`...), in bytes.
    pub fn status_bytes(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {field} in /proc/PID/status"))?;
        Ok(kib * 1024)
    }

    /// Kills the process at once (SIGKILL), as a crash would, and starts it again on the
    /// same data directory.
    pub fn crash_and_restart(mut self) -> anyhow::Result<BenchServer> {
        self.child.kill()?;
        self.child.wait()?;
        BenchServer::start(&self.data_dir.clone(), self.store)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
