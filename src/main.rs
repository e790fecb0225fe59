//! The `wfm` binary: `wfm serve` runs the service; the other subcommands are its client.

/// mimalloc instead of the system allocator: the server allocates many small, short-lived
/// buffers across threads (messages, events, tasks), where glibc malloc took ~13% of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use wfm::cli::{Cli, Command, Target, TokenAction, exit};
use wfm::config::{AuthOverrides, Config, FlagOverrides, LogFormat, LogOverrides, MetricsConfig};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_args();
    // The benchmark too: the canned server it runs in its own process must match `serve`.
    if matches!(cli.command, Command::Serve { .. } | Command::Bench(_)) {
        disable_transparent_huge_pages();
        if matches!(cli.command, Command::Serve { .. }) {
            keep_files_private();
        }
    } else {
        end_quietly_on_a_closed_pipe();
    }
    let target = Target {
        url: cli.server.clone(),
        token: cli.token.clone(),
        tls_ca: cli.tls_ca.clone(),
        tls_identity: cli.tls_cert.clone().zip(cli.tls_key.clone()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(leave_closed_sockets_to_their_errors)
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                listen,
                data_dir,
                log_format,
                insecure,
                metrics_listen,
            } => {
                serve(
                    config,
                    listen,
                    data_dir,
                    log_format,
                    insecure,
                    metrics_listen,
                )
                .await
            }
            Command::Token {
                action: TokenAction::Create { role, id },
            } => create_token(&id, role),
            client => match wfm::cli::run_client(&target, client).await {
                Ok(code) => code,
                Err(e) => {
                    wfm::cli::report_error(&e, &target);
                    exit::of_client(&e).into()
                }
            },
        }
    });
    std::process::ExitCode::from(code as u8)
}

/// The server runs without transparent huge pages. mimalloc asks for them on its arenas, so
/// the kernel zeroes 2 MiB at each first touch of a region, and again each time mimalloc
/// has returned freed memory: under load that was ~15% of the server's CPU (the kernel's
/// `clear_page`) and its slowest calls (see BENCHMARKS.md, session 8). Best effort: a
/// kernel without the flag keeps them.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only and sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// What the server creates (the data directory, the database, its WAL and lock files) is
/// readable by the user running it only: with auth off only that user may call it, and the
/// database holds every input and output. An existing directory keeps its mode.
fn keep_files_private() {
    #[cfg(unix)]
    // SAFETY: sets this process's file creation mask; takes and returns integers only.
    unsafe {
        libc::umask(0o077);
    }
}

/// The runtime's threads, where connections are written, block SIGPIPE: a server that
/// closes the connection (a TLS alert, a restart) is then an error the command reports,
/// not a silent death by the signal a closed stdout is meant to bring (see below).
fn leave_closed_sockets_to_their_errors() {
    #[cfg(target_os = "linux")]
    // SAFETY: changes this thread's signal mask only; the set is built before it is used.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// A client command piped into `head` stops quietly when the pipe closes, as Unix tools
/// do, instead of panicking on its next write (Rust ignores SIGPIPE). Not the server: a
/// closed log pipe must not kill it.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(target_os = "linux")]
    // SAFETY: restores the default action of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn serve(
    file: Option<std::path::PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<std::path::PathBuf>,
    log_format: Option<LogFormat>,
    insecure: bool,
    metrics_listen: Option<std::net::SocketAddr>,
) -> i32 {
    let flags = FlagOverrides {
        listen,
        data_dir,
        log: log_format.map(|format| LogOverrides {
            format: Some(format),
        }),
        auth: insecure.then_some(AuthOverrides {
            insecure: Some(true),
        }),
        metrics: metrics_listen.map(|listen| MetricsConfig {
            listen: Some(listen),
        }),
    };
    let config = match Config::load(file.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wfm: {e}");
            return exit::REFUSED.into();
        }
    };
    let telemetry = match wfm::telemetry::init(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("wfm: {e}");
            return exit::REFUSED.into();
        }
    };
    let json_logs = matches!(config.log.format, LogFormat::Json);
    let result = wfm::api::serve(config, |listening| {
        // Lines on stdout that scripts and tests can wait for; the gRPC one comes first.
        println!("wfm listening on {}", listening.grpc);
        if let Some(metrics) = listening.metrics {
            println!("wfm metrics on http://{metrics}/metrics");
        }
    })
    .await;
    // Said once: as a JSON record where logs go to a collector, else as one plain line.
    if let Err(e) = &result {
        if json_logs {
            tracing::error!(error = %e, "wfm could not serve");
        } else {
            eprintln!("wfm: {e}");
        }
    }
    telemetry.shutdown();
    match &result {
        Ok(()) => 0,
        Err(e) => exit::of_serve(e).into(),
    }
}

/// Prints a new token on the first line and its tokens-file line on the second.
fn create_token(id: &str, role: wfm::api::auth::Role) -> i32 {
    match wfm::api::auth::create_token(id, role) {
        Ok((token, entry)) => {
            println!("{token}");
            println!(
                "{} {} {}",
                entry.id,
                format!("{:?}", entry.role).to_lowercase(),
                entry.sha256
            );
            eprintln!(
                "keep the token (first line) secret; put the second line in the file named by auth.tokens_file"
            );
            0
        }
        // An id that is not one word of the tokens file; or, the one other failure, no
        // randomness from the kernel: either way before anything is done.
        Err(e) => {
            eprintln!("wfm: {e}");
            exit::REFUSED.into()
        }
    }
}
