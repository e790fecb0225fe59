//! The `wfm` command line: `wfm serve` and the client subcommands.

mod client;
pub mod definition_file;
mod display;
mod exact_numbers;
pub mod exit;
mod json;
mod report;
mod unique_keys;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

pub use report::report_error;

#[derive(Parser)]
#[command(name = "wfm", version, about = "A workflow manager served over gRPC")]
pub struct Cli {
    /// Address of the wfm server, for the client subcommands.
    #[arg(
        long,
        global = true,
        env = "WFM_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token for a server with authentication.
    #[arg(long, global = true, env = "WFM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to trust for an https:// server.
    #[arg(long, global = true, env = "WFM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a server that requires one (mutual TLS); with --tls-key.
    #[arg(long, global = true, env = "WFM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, env = "WFM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The client options, and what `wfm serve` takes instead of each.
const CLIENT_ONLY: &[(&str, &str, &str)] = &[
    (
        "server",
        "--server",
        "it listens where --listen or `listen` says",
    ),
    (
        "token",
        "--token",
        "its tokens are in the config file's [auth] tokens or tokens_file",
    ),
    (
        "tls_ca",
        "--tls-ca",
        "mutual TLS is the config file's [tls] client_ca",
    ),
    (
        "tls_cert",
        "--tls-cert",
        "its certificate is the config file's [tls] cert",
    ),
    (
        "tls_key",
        "--tls-key",
        "its key is the config file's [tls] key",
    ),
];

impl Cli {
    /// Parses the command line. A client option given to `wfm serve` is refused: the
    /// server would start without it (plaintext for a --tls-cert, say) and say nothing.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches, error::ErrorKind, parser::ValueSource};
        let matches = Cli::command().get_matches();
        if let Some(("serve", serve)) = matches.subcommand() {
            for (id, flag, instead) in CLIENT_ONLY {
                let given = [&matches, serve]
                    .iter()
                    .any(|m| m.value_source(id) == Some(ValueSource::CommandLine));
                if given {
                    Cli::command()
                        .error(
                            ErrorKind::ArgumentConflict,
                            format!("{flag} is an option of the client subcommands, not of `wfm serve`: {instead} (docs/configuration.md)"),
                        )
                        .exit();
                }
            }
        }
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// An IP address and port: a host name is not looked up (which of its addresses would
/// the server listen on?), and the error says so instead of "invalid syntax".
fn socket_address(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "'{text}' is not an IP address and port: give e.g. 127.0.0.1:50051, [::1]:50051 or 0.0.0.0:50051 (host names are not looked up)"
        )
    })
}

/// Where and how the client subcommands reach the server.
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (mutual TLS).
    pub tls_identity: Option<(PathBuf, PathBuf)>,
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Prints a new random token, then its line for the tokens file (`ID ROLE SHA256`).
    Create {
        #[arg(long, value_enum)]
        role: crate::api::auth::Role,
        /// Name of the token in the logs (not secret).
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the service (defaults < --config file < WFM_* environment < flags).
    Serve {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address, e.g. 127.0.0.1:50051 (port 0 picks a free port).
        #[arg(long, value_parser = socket_address)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory (default ./wfm-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log format.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        /// Allows listening on a non-loopback address without authentication.
        #[arg(long)]
        insecure: bool,
        /// Serves Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464.
        #[arg(long, value_parser = socket_address)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Manages access tokens (offline: prints what to put in the configuration).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Registers a workflow: a type compiled into the server (--type), or a declarative
    /// definition from a YAML or JSON file (-f).
    Register {
        /// Workflow type (see `wfm types`).
        #[arg(
            long = "type",
            short = 't',
            required_unless_present = "file",
            conflicts_with = "file"
        )]
        type_name: Option<String>,
        /// A declarative workflow definition in YAML (or JSON, by the .json extension).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Name (defaults to the type's name, or to the file's `name`).
        #[arg(long)]
        name: Option<String>,
        /// Description (with -f: the file's unless given; "" clears it).
        #[arg(long)]
        description: Option<String>,
        /// Label as key=value; repeat for more (with -f, added to the file's labels,
        /// replacing one of the same key).
        #[arg(long = "label", value_parser = client::parse_label)]
        labels: Vec<(String, String)>,
        /// Custom arguments of the type as a JSON object (default `{}`). Not with -f: a
        /// definition's steps carry their own.
        #[arg(long, conflicts_with = "file")]
        arguments: Option<String>,
        /// Executions of this workflow running at once, 0 for no per-workflow limit (the
        /// default; with -f: the file's unless given, even as 0).
        #[arg(long)]
        max_concurrency: Option<i32>,
    },
    /// Removes a workflow and every version (its executions stay readable).
    Unregister { name: String },
    /// Lists registered workflows (latest versions), every page.
    List {
        /// Only workflows with this label (key=value); repeat for more.
        #[arg(long = "label", value_parser = client::parse_label)]
        labels: Vec<(String, String)>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows execution counts since the server started and p50/p99 durations of recent
    /// executions, per workflow.
    Stats {
        /// Only this workflow.
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Shows one workflow.
    Get {
        name: String,
        /// A version (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: i32,
        #[arg(long)]
        json: bool,
    },
    /// Executes a workflow and shows its events live, then the result.
    Run {
        name: String,
        /// Input as a JSON object, or @FILE holding one (@- reads standard input).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Metadata as a JSON object, or @FILE.
        #[arg(long, default_value = "{}")]
        metadata: String,
        #[arg(long, default_value_t = 0)]
        version: i32,
        /// Idempotency key: a retry with the same key attaches to the same execution.
        #[arg(long, default_value = "")]
        request_id: String,
        /// Print the raw events as JSON lines, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Starts a workflow and prints the execution id at once.
    Start {
        name: String,
        /// Input as a JSON object, or @FILE holding one (@- reads standard input).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Metadata as a JSON object, or @FILE.
        #[arg(long, default_value = "{}")]
        metadata: String,
        #[arg(long, default_value_t = 0)]
        version: i32,
        #[arg(long, default_value = "")]
        request_id: String,
    },
    /// Lists executions, newest first.
    Executions {
        /// Only executions of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only executions in this status (queued, running, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Shows one execution with its result.
    Execution {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Follows an execution's events, replaying those after --after.
    Watch {
        id: String,
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long)]
        json: bool,
    },
    /// Cancels an execution.
    Cancel {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lists the workflow types this server can build.
    Types,
    /// Lists the tools workflows can call.
    Tools,
    /// Measures throughput and latency against the floor of gRPC and of the disk
    /// (starts its own servers unless --running); see BENCHMARKS.md.
    Bench(crate::bench::BenchArgs),
    /// Shuts the server down gracefully.
    Shutdown {
        /// Grace period for running executions, e.g. 10s (default: the server's).
        #[arg(long, value_parser = duration)]
        grace: Option<std::time::Duration>,
        /// Leave what is still running after the grace period for the next server on the
        /// same data directory to resume, instead of cancelling it (an upgrade).
        #[arg(long, conflicts_with = "cancel_unfinished")]
        resume_unfinished: bool,
        /// Cancel what is still running after the grace period, whatever the server's
        /// `shutdown_unfinished` says.
        #[arg(long)]
        cancel_unfinished: bool,
    },
}

/// Runs a client subcommand; returns the process exit code.
pub async fn run_client(server: &Target, command: Command) -> anyhow::Result<i32> {
    client::run(server, command).await
}

/// A duration flag; humantime's own message ("expected number at 0") does not say what a
/// duration looks like.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration ({e}); give one like 30s, 2m or 1h30m"))
}
