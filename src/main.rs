//! The `wfm` binary: `wfm serve` runs the service; the other subcommands are its client.

use clap::Parser;
use tracing_subscriber::{EnvFilter, fmt};

use wfm::cli::{Cli, Command};
use wfm::config::{Config, FlagOverrides, LogFormat, LogOverrides};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                listen,
                data_dir,
                log_format,
            } => serve(config, listen, data_dir, log_format).await,
            client => match wfm::cli::run_client(&cli.server, client).await {
                Ok(code) => code,
                Err(e) => {
                    report_client_error(&e);
                    1
                }
            },
        }
    });
    std::process::ExitCode::from(code as u8)
}

async fn serve(
    file: Option<std::path::PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<std::path::PathBuf>,
    log_format: Option<LogFormat>,
) -> i32 {
    let flags = FlagOverrides {
        listen,
        data_dir,
        log: log_format.map(|format| LogOverrides {
            format: Some(format),
        }),
    };
    let config = match Config::load(file.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wfm: {e}");
            return 2;
        }
    };
    init_logging(&config);
    let result = wfm::api::serve(config, |addr| {
        // A line on stdout that scripts and tests can wait for.
        println!("wfm listening on {addr}");
    })
    .await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "wfm could not serve");
            eprintln!("wfm: {e}");
            1
        }
    }
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Human => builder.init(),
    }
}

fn report_client_error(e: &anyhow::Error) {
    match e.downcast_ref::<tonic::Status>() {
        Some(status) => eprintln!("error: {:?}: {}", status.code(), status.message()),
        None => eprintln!("error: {e:#}"),
    }
}
