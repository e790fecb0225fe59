//! The gRPC layer: the WorkflowService, health, reflection, and the server's lifecycle.

pub mod auth;
pub mod convert;
pub mod convert_definition;
mod decode_errors;
mod local_peer;
mod observe;
mod outbox;
pub mod rate_limit;
mod security;
mod service;
mod status;

use std::{sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use service::Service;

use crate::config::Config;
use crate::config::StoreKind;
use crate::engine::Catalog;
use crate::manager::ManagerError;
use crate::manager::{ShutdownPlan, WorkflowManager};
use crate::proto::workflow_service_server::WorkflowServiceServer;
use crate::store::{MemoryStore, SqliteStore, Store, StoreError};
use crate::tools::{ToolManager, builtin};

/// The encoded descriptor set of `workflow.v1`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("workflow_descriptor");

/// How long the server may take to close its connections after the manager stopped.
const SERVER_DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (listen): {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("recovery failed: {0}")]
    Recovery(#[from] ManagerError),
    #[error("{0}")]
    Security(String),
    #[error("{0}")]
    Metrics(String),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The bound addresses (useful with port 0).
pub struct Listening {
    pub grpc: std::net::SocketAddr,
    /// The `/metrics` listener, when `metrics.listen` is set.
    pub metrics: Option<std::net::SocketAddr>,
}

/// Runs the service until Shutdown, SIGTERM or Ctrl-C; returns once it has stopped cleanly.
/// `on_listening` gets the bound addresses once the service accepts calls.
pub async fn serve(config: Config, on_listening: impl FnOnce(Listening)) -> Result<(), ServeError> {
    let auth = security::authenticator(&config).map_err(ServeError::Security)?;
    security::check_exposure(&config, &auth).map_err(ServeError::Security)?;
    // Without tokens, only the user running wfm may call it (see `local_peer`).
    let only_this_user = !auth.enabled();
    // TLS and the port before anything else: a server that cannot serve must fail before it
    // has resumed (and so re-run) a single unfinished execution.
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(config.limits.max_streams_per_connection);
    if let Some(tls) = security::tls(&config).map_err(ServeError::Security)? {
        builder = security::with_tls(builder, tls, &config).map_err(ServeError::Security)?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    // First: every metric handle taken from here on records into it.
    let exporter = crate::telemetry::metrics::install(config.metrics.listen)
        .await
        .map_err(ServeError::Metrics)?;
    crate::telemetry::stats::start_counting();
    std::fs::create_dir_all(config.datasets_dir()).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let tools = Arc::new(ToolManager::new());
    let datasets = builtin::DatasetCatalog::new(
        config.datasets.clone(),
        Some(config.datasets_dir()),
        config.tools.max_dataset_bytes,
    );
    for (name, path) in &config.datasets {
        if !path.is_file() {
            tracing::warn!(dataset = %name, path = %path.display(), "configured dataset file not found: read_dataset of it fails until it is there");
        }
    }
    builtin::register_all(&tools, Arc::new(datasets), config.tools.http_timeout);
    if !config.mcp_servers.is_empty() {
        let connected = crate::tools::mcp::connect_all(&tools, &config.mcp_servers).await;
        tracing::info!(
            connected = connected.len(),
            configured = config.mcp_servers.len(),
            "MCP servers"
        );
    }
    let store: Arc<dyn Store> = match config.store {
        StoreKind::Sqlite => Arc::new(SqliteStore::open(&config.data_dir)?),
        StoreKind::Memory => Arc::new(MemoryStore::new()),
    };
    let manager = Arc::new(WorkflowManager::new(
        Catalog::builtin(),
        tools,
        store,
        config.limits.clone(),
    ));
    manager.recover().await?;
    let metrics_stop = CancellationToken::new();
    let _stop_metrics = metrics_stop.clone().drop_guard();
    let mut metrics_addr = None;
    if let Some(exporter) = exporter {
        metrics_addr = Some(exporter.local_addr().map_err(|source| ServeError::Bind {
            addr: format!("{:?}", config.metrics.listen),
            source,
        })?);
        let manager = manager.clone();
        let sample = move || {
            let (running, queued) = manager.load();
            crate::telemetry::metrics::Sample {
                running,
                queued,
                workflows: manager.workflow_count(),
                unrestored: manager.unrestored_versions(),
            }
        };
        exporter.serve(sample, metrics_stop);
    }
    if let Some(retention) = config.retention {
        // Once before serving, so nothing past the retention is ever served; then every minute.
        purge(&manager, retention).await;
        tokio::spawn(purge_periodically(manager.clone(), retention));
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<WorkflowServiceServer<Service>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let server_stop = CancellationToken::new();
    let service = Service::new(
        manager.clone(),
        health.clone(),
        ShutdownPlan::from(&config),
        server_stop.clone(),
    );
    let max = config.limits.max_message_bytes;
    let workflow_service = WorkflowServiceServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen.to_string(),
        source,
    })?;
    tracing::info!(%addr, metrics = metrics_addr.map(tracing::field::display), data_dir = %config.data_dir.display(), "wfm listening");
    on_listening(Listening {
        grpc: addr,
        metrics: metrics_addr,
    });

    tokio::spawn(stop_on_signal(
        manager.clone(),
        health,
        ShutdownPlan::from(&config),
        server_stop.clone(),
    ));

    let layers = tower::ServiceBuilder::new()
        .layer(observe::ObserveLayer::new(&[
            FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]))
        .layer(tower::util::MapResponseLayer::new(
            decode_errors::decode_failure_is_invalid_argument,
        ))
        .layer(auth::AuthLayer::new(auth))
        .layer(rate_limit::RateLimitLayer::new(
            rate_limit::RateLimiter::from_limits(&config.limits),
        ))
        .into_inner();
    let server = builder
        .layer(layers)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(workflow_service)
        .serve_with_incoming_shutdown(
            local_peer::incoming(listener, only_this_user),
            server_stop.clone().cancelled_owned(),
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        _ = async { server_stop.cancelled().await; tokio::time::sleep(SERVER_DRAIN).await } => {
            tracing::warn!("connections still open {SERVER_DRAIN:?} after stopping; closing them");
        }
    }
    manager.close_store().await;
    tracing::info!("wfm stopped");
    Ok(())
}

/// How often finished executions past the retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

async fn purge(manager: &WorkflowManager, retention: Duration) {
    match manager.purge(retention).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(executions = n, retention = ?retention, "purged old executions"),
        Err(e) => tracing::warn!(error = %e, "purge failed"),
    }
}

async fn purge_periodically(manager: Arc<WorkflowManager>, retention: Duration) {
    let stopped = manager.stopped();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PURGE_EVERY) => purge(&manager, retention).await,
            _ = stopped.cancelled() => return,
        }
    }
}

/// SIGTERM and Ctrl-C take the same path as the Shutdown RPC.
async fn stop_on_signal(
    manager: Arc<WorkflowManager>,
    health: tonic_health::server::HealthReporter,
    plan: ShutdownPlan,
    server_stop: CancellationToken,
) {
    tokio::select! {
        _ = signal() => {}
        _ = server_stop.cancelled() => return,
    }
    tracing::warn!(grace = ?plan.grace, unfinished = ?plan.unfinished, "signal received: shutting down (a second signal stops at once)");
    // An operator who signals again does not want to wait out the grace period.
    tokio::spawn(async {
        signal().await;
        tracing::warn!(
            "second signal: stopping at once; what was still running resumes at the next start (durable store)"
        );
        std::process::exit(1);
    });
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    health
        .set_not_serving::<WorkflowServiceServer<Service>>()
        .await;
    manager.shutdown(plan).await;
    server_stop.cancel();
}

async fn signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
