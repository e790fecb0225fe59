//! Configuration, layered: embedded defaults < TOML file < `WFM_*` environment < flags.
//! Nested keys in the environment use `__`: `WFM_LIMITS__MAX_CONCURRENT_EXECUTIONS=8`.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// The longest grace period a shutdown may give running executions.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(24 * 3600);
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Where wfm keeps its state; datasets are read from `<data_dir>/datasets`.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    /// How long running executions may finish at shutdown before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// What Shutdown, SIGTERM and Ctrl-C do with the executions still running after the
    /// grace period (Shutdown's `resume_unfinished` overrides it).
    pub shutdown_unfinished: ShutdownUnfinished,
    pub limits: Limits,
    /// Where state is kept: `sqlite` (durable, `<data_dir>/wfm.db`) or `memory` (lost at exit).
    pub store: StoreKind,
    /// Executions that ended longer ago than this are deleted in the background; unset keeps all.
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// Dataset name → CSV or JSON file, for the `read_dataset` tool.
    pub datasets: BTreeMap<String, PathBuf>,
    pub tools: ToolsConfig,
    /// MCP servers whose tools workflows can call as `NAME.TOOL`, in the shape MCP clients
    /// use: `[mcp_servers.NAME]` with `command`, `args` and `env` (stdio) or `url`
    /// (streamable HTTP).
    pub mcp_servers: BTreeMap<String, crate::tools::mcp::McpServerConfig>,
    pub auth: AuthConfig,
    /// TLS for the gRPC port; absent means plaintext.
    pub tls: Option<TlsConfig>,
    pub metrics: MetricsConfig,
    pub telemetry: TelemetryConfig,
}

/// The Prometheus endpoint, on its own port so it can be exposed to a scraper without
/// exposing the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the HTTP listener serving `/metrics` (`--metrics-listen`); unset: off.
    pub listen: Option<SocketAddr>,
}

/// OpenTelemetry trace export.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` (plaintext); unset: no traces
    /// are exported.
    pub otlp_endpoint: Option<String>,
}

/// Who may call the service. With no token, auth is off and the server only listens on
/// loopback unless `insecure` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted tokens: `{ id, role, sha256 }` (see `wfm token create`).
    pub tokens: Vec<crate::api::auth::TokenEntry>,
    /// A file of more tokens, one `ID ROLE SHA256` per line.
    pub tokens_file: Option<PathBuf>,
    /// Allows a non-loopback listen address without tokens (`--insecure`).
    pub insecure: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA that client certificates must be signed by (mutual TLS); absent: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// `cancel`: they are cancelled and end there. `resume`: they are stopped where they are,
/// for the next server on the same data directory to resume (durable store only).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownUnfinished {
    #[default]
    Cancel,
    Resume,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Sqlite,
    Memory,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `wfm=debug`.
    pub level: String,
}

/// Refuses a log filter whose levels are not levels. tracing reads a bare word it does not
/// know as a target to log at every level (`inf` logs only a target named `inf`), so a typo
/// in a level would turn every log line off, audit lines included, and say nothing.
pub fn check_log_filter(source: &str, filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains('[') {
            continue; // span filters: left to tracing
        }
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim())) {
            return Err(format!(
                "{source} '{filter}': '{directive}' is not a level ({}); a target takes one as TARGET=LEVEL, e.g. wfm=debug",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Every limit, explicit; docs/configuration.md describes each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Largest execution input (as JSON), in bytes.
    pub max_input_bytes: usize,
    /// Executions running at once across all workflows.
    pub max_concurrent_executions: usize,
    /// Executions waiting for a slot; past it Execute answers RESOURCE_EXHAUSTED.
    pub max_queued_executions: usize,
    /// Events one execution may emit; past it the execution fails.
    pub max_events_per_execution: u64,
    /// Largest page of List / ListExecutions.
    pub max_page_size: usize,
    /// Versions one workflow name may have.
    pub max_versions_per_workflow: u32,
    /// Registered workflow names.
    pub max_workflows: usize,
    /// Concurrent HTTP/2 streams (calls) one client connection may have open.
    pub max_streams_per_connection: u32,
    /// Steps one declarative definition may have; a larger one is refused at registration.
    pub max_steps_per_workflow: usize,
    /// Levels of executions a composition may nest (a workflow running a child workflow
    /// running another...), the top one included; checked at registration and when a
    /// child starts.
    pub max_workflow_depth: usize,
    /// Sustained requests per second one caller (a token, or "anonymous" when auth is
    /// off) may send to the WorkflowService; 0 turns the rate limit off. Health and
    /// reflection are not counted.
    pub requests_per_second_per_token: u32,
    /// Requests one caller may send at once above the sustained rate (the bucket's size).
    pub request_burst_per_token: u32,
    /// Largest step output and largest execution result (output and every step's output),
    /// as JSON: past it the step or the execution fails instead of storing and streaming it.
    pub max_output_bytes: usize,
    /// How long a stream (Execute, WatchExecution) may have events waiting that its reader
    /// does not take before it is ended with RESOURCE_EXHAUSTED; the reader resumes with
    /// WatchExecution from the last sequence it received.
    #[serde(with = "humantime_serde")]
    pub slow_reader_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Timeout of one `http_request` call.
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
    /// Largest dataset file `read_dataset` reads, in bytes.
    pub max_dataset_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:50051".parse().expect("valid default address"),
            data_dir: PathBuf::from("./wfm-data"),
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(30),
            shutdown_unfinished: ShutdownUnfinished::default(),
            limits: Limits::default(),
            store: StoreKind::default(),
            retention: None,
            datasets: BTreeMap::new(),
            tools: ToolsConfig::default(),
            mcp_servers: BTreeMap::new(),
            auth: AuthConfig::default(),
            tls: None,
            metrics: MetricsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 << 20,
            max_input_bytes: 1 << 20,
            max_concurrent_executions: 1024,
            max_queued_executions: 4096,
            max_events_per_execution: 100_000,
            max_page_size: 1000,
            max_versions_per_workflow: 1000,
            max_workflows: 10_000,
            max_streams_per_connection: 256,
            max_steps_per_workflow: 1000,
            max_workflow_depth: 8,
            requests_per_second_per_token: 200,
            request_burst_per_token: 1000,
            max_output_bytes: 1 << 20,
            slow_reader_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            http_timeout: Duration::from_secs(30),
            max_dataset_bytes: 64 << 20,
        }
    }
}

/// Values given on the command line; each overrides every other source.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
}

#[derive(Debug, Default, Serialize)]
pub struct AuthOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

#[derive(Debug, Default, Serialize)]
pub struct LogOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

impl Config {
    /// Loads defaults < `file` (when given) < `WFM_*` environment < flags, and validates.
    pub fn load(file: Option<&std::path::Path>, flags: &FlagOverrides) -> Result<Config, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(Self::environment())
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// `WFM_*` variables naming a configuration key. Others (`WFM_SERVER` for the client,
    /// `WFM_BIN` of a test harness...) are not the server's and are left alone.
    fn environment() -> Env {
        let defaults = serde_json::to_value(Config::default()).expect("config serializes");
        let keys: Vec<String> = defaults
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        Env::prefixed("WFM_").split("__").filter(move |key| {
            // The key may come before or after `split` turned `__` into `.`.
            let key = key.as_str().to_ascii_lowercase().replace("__", ".");
            let top = key.split('.').next().unwrap_or_default().to_string();
            keys.contains(&top)
        })
    }

    fn validate(&self) -> Result<(), String> {
        check_log_filter("log.level", &self.log.level)?;
        if self.shutdown_grace > MAX_SHUTDOWN_GRACE {
            return Err(format!(
                "shutdown_grace must be at most {} (the longest a Shutdown may wait)",
                humantime::format_duration(MAX_SHUTDOWN_GRACE)
            ));
        }
        let l = &self.limits;
        let positive = [
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_input_bytes", l.max_input_bytes),
            (
                "limits.max_concurrent_executions",
                l.max_concurrent_executions,
            ),
            ("limits.max_page_size", l.max_page_size),
            (
                "limits.max_versions_per_workflow",
                l.max_versions_per_workflow as usize,
            ),
            ("limits.max_workflows", l.max_workflows),
            ("limits.max_steps_per_workflow", l.max_steps_per_workflow),
            ("limits.max_workflow_depth", l.max_workflow_depth),
            ("limits.max_output_bytes", l.max_output_bytes),
            // 0 streams: every call would wait forever for one.
            (
                "limits.max_streams_per_connection",
                l.max_streams_per_connection as usize,
            ),
            (
                "tools.max_dataset_bytes",
                self.tools.max_dataset_bytes.min(usize::MAX as u64) as usize,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        for (name, server) in &self.mcp_servers {
            server.check(name)?;
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            return Err(format!(
                "telemetry.otlp_endpoint '{endpoint}' must be an http:// URL (OTLP/gRPC in plaintext, to a local collector)"
            ));
        }
        if l.requests_per_second_per_token > 0 && l.request_burst_per_token == 0 {
            return Err(
                "limits.request_burst_per_token must be at least 1 when limits.requests_per_second_per_token is set".into(),
            );
        }
        if self.tools.http_timeout.is_zero() {
            return Err("tools.http_timeout must be more than 0".into());
        }
        if l.slow_reader_timeout.is_zero() {
            return Err("limits.slow_reader_timeout must be more than 0".into());
        }
        if l.max_events_per_execution < 16 {
            return Err("limits.max_events_per_execution must be at least 16".into());
        }
        Ok(())
    }

    /// Where `read_dataset` looks for dataset files besides the configured ones.
    pub fn datasets_dir(&self) -> PathBuf {
        self.data_dir.join("datasets")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's error type is large; tests only.
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wfm.toml",
                "shutdown_grace = \"5s\"\nshutdown_unfinished = \"resume\"\n[limits]\nmax_input_bytes = 10\nmax_page_size = 7\n",
            )?;
            jail.set_env("WFM_LIMITS__MAX_INPUT_BYTES", "20");
            jail.set_env("WFM_BIN", "/somewhere/else");
            let flags = FlagOverrides {
                listen: Some("127.0.0.1:6000".parse().unwrap()),
                ..Default::default()
            };
            let c = Config::load(Some("wfm.toml".as_ref()), &flags).unwrap();
            assert_eq!(c.shutdown_grace, Duration::from_secs(5));
            assert_eq!(c.shutdown_unfinished, ShutdownUnfinished::Resume);
            assert_eq!(c.limits.max_page_size, 7);
            assert_eq!(c.limits.max_input_bytes, 20);
            assert_eq!(c.listen.port(), 6000);
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_keys_and_zero_limits() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "listn = \"x\"\n")?;
            let err = Config::load(Some("a.toml".as_ref()), &FlagOverrides::default()).unwrap_err();
            assert!(err.contains("listn"), "{err}");
            jail.create_file("b.toml", "[limits]\nmax_concurrent_executions = 0\n")?;
            let err = Config::load(Some("b.toml".as_ref()), &FlagOverrides::default()).unwrap_err();
            assert!(err.contains("max_concurrent_executions"), "{err}");
            for (file, key) in [
                (
                    "[log]\nlevel = \"inf\"\n",
                    "log.level 'inf': 'inf' is not a level (off, error, warn, info, debug, trace)",
                ),
                (
                    "[log]\nlevel = \"info,wfm=debugg\"\n",
                    "'wfm=debugg' is not a level",
                ),
                (
                    "[limits]\nmax_streams_per_connection = 0\n",
                    "limits.max_streams_per_connection must be at least 1",
                ),
                (
                    "[limits]\nmax_versions_per_workflow = 0\n",
                    "limits.max_versions_per_workflow must be at least 1",
                ),
                (
                    "[tools]\nmax_dataset_bytes = 0\n",
                    "tools.max_dataset_bytes must be at least 1",
                ),
                (
                    "[tools]\nhttp_timeout = \"0s\"\n",
                    "tools.http_timeout must be more than 0",
                ),
                (
                    "shutdown_grace = \"100d\"\n",
                    "shutdown_grace must be at most 1day",
                ),
            ] {
                jail.create_file("z.toml", file)?;
                let err =
                    Config::load(Some("z.toml".as_ref()), &FlagOverrides::default()).unwrap_err();
                assert!(err.contains(key), "{file}: {err}");
            }
            jail.create_file(
                "c.toml",
                "[telemetry]\notlp_endpoint = \"collector:4317\"\n",
            )?;
            let err = Config::load(Some("c.toml".as_ref()), &FlagOverrides::default()).unwrap_err();
            assert!(err.contains("must be an http:// URL"), "{err}");
            jail.set_env("WFM_METRICS__LISTEN", "127.0.0.1:9464");
            let c = Config::load(None, &FlagOverrides::default()).unwrap();
            assert_eq!(c.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
            Ok(())
        });
    }
}
