//! Scale scenarios: many executions held in flight (memory per execution), a restarted
//! server resuming them (time to resume), and many watchers of one execution (fan-out).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};

use super::server::BenchServer;
use super::workload::{self, Pool};
use crate::proto::{self, execution_event::Kind};

/// Executions started at once while filling the server.
const STARTERS: usize = 64;
/// Long enough that nothing ends while it is measured.
const HOLD_MS: u64 = 3_600_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct InFlight {
    pub executions: usize,
    pub start_seconds: f64,
    pub starts_per_second: f64,
    pub baseline_rss_bytes: u64,
    pub rss_bytes: u64,
    /// Of the resident memory: the heap and stacks (the rest is mapped files and shared memory).
    pub rss_anon_bytes: u64,
    pub bytes_per_execution: f64,
}

/// Starts `n` executions that each sleep in one step, and reads the server's memory once
/// they are all running.
pub async fn in_flight(server: &BenchServer, pool: &Pool, n: usize) -> anyhow::Result<InFlight> {
    let baseline = server.rss_bytes()?;
    let began = Instant::now();
    let started = AtomicUsize::new(0);
    let results: Vec<anyhow::Result<()>> = stream::iter(0..STARTERS)
        .map(|worker| {
            let (pool, started) = (pool.clone(), &started);
            async move {
                let mut client = pool.client(worker);
                while started.fetch_add(1, Ordering::Relaxed) < n {
                    workload::start_sleeping(&mut client, HOLD_MS, 1).await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(STARTERS)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    let start_seconds = began.elapsed().as_secs_f64();
    wait_running(pool, n).await?;
    let rss = settled_rss(server).await?;
    Ok(InFlight {
        executions: n,
        start_seconds,
        starts_per_second: n as f64 / start_seconds,
        baseline_rss_bytes: baseline,
        rss_bytes: rss,
        rss_anon_bytes: server.status_bytes("RssAnon:")?,
        bytes_per_execution: rss.saturating_sub(baseline) as f64 / n as f64,
    })
}

/// Waits until `n` executions are running (each has recorded its start).
async fn wait_running(pool: &Pool, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let running = count(pool, proto::ExecutionStatus::Running).await?;
        if running >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {running} of {n} executions are running after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many executions are in `status`, paging through ListExecutions.
async fn count(pool: &Pool, status: proto::ExecutionStatus) -> anyhow::Result<usize> {
    let mut client = pool.client(0);
    let (mut total, mut token) = (0, String::new());
    loop {
        let page = client
            .list_executions(proto::ListExecutionsRequest {
                status: status as i32,
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        total += page.executions.len();
        if page.next_page_token.is_empty() {
            return Ok(total);
        }
        token = page.next_page_token;
    }
}

/// Resident memory once it stops moving (allocators return memory lazily).
async fn settled_rss(server: &BenchServer) -> anyhow::Result<u64> {
    let mut last = server.rss_bytes()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = server.rss_bytes()?;
        if now.abs_diff(last) < last / 100 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Resume {
    pub executions: usize,
    /// From starting the process to serving with every execution resumed.
    pub resume_seconds: f64,
    /// A sample of resumed executions checked for a second `Started` attempt.
    pub checked: usize,
}

/// Kills the server holding `n` running executions and times its restart: the server
/// serves only once every unfinished execution is resumed.
pub async fn resume(
    server: BenchServer,
    n: usize,
    connections: usize,
) -> anyhow::Result<(Resume, BenchServer)> {
    let server = server.crash_and_restart()?;
    let resume_seconds = server.start_time.as_secs_f64();
    let pool = Pool::connect(&server.url, &Default::default(), connections).await?;
    let running = count(&pool, proto::ExecutionStatus::Running).await?
        + count(&pool, proto::ExecutionStatus::Queued).await?;
    if running < n {
        bail!("after the restart only {running} of {n} executions are unfinished");
    }
    let sample = sample_ids(&pool, 20).await?;
    for id in &sample {
        check_second_attempt(&pool, id).await?;
    }
    Ok((
        Resume {
            executions: n,
            resume_seconds,
            checked: sample.len(),
        },
        server,
    ))
}

async fn sample_ids(pool: &Pool, n: i32) -> anyhow::Result<Vec<String>> {
    let page = pool
        .client(0)
        .list_executions(proto::ListExecutionsRequest {
            status: proto::ExecutionStatus::Running as i32,
            page_size: n,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(page.executions.into_iter().map(|e| e.id).collect())
}

/// The resumed execution records `Started { attempt: 2 }` (within a few seconds).
async fn check_second_attempt(pool: &Pool, id: &str) -> anyhow::Result<()> {
    let mut stream = watch_from_start(&mut pool.client(0), id).await?;
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(response) = stream.message().await? {
            if let Some(Kind::Started(s)) = response.event.and_then(|e| e.kind)
                && s.attempt >= 2
            {
                return Ok::<bool, tonic::Status>(true);
            }
        }
        Ok(false)
    })
    .await
    .context("no second attempt recorded within 30 s")??;
    if !found {
        bail!("execution {id} ended without a second attempt");
    }
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FanOut {
    pub watchers: usize,
    pub events_per_watcher: u64,
    /// Every watcher saw every event, in order, without a gap.
    pub all_delivered: bool,
    pub failures: usize,
    /// From the execution's last event to the last watcher having it.
    pub delivery_lag_ms: f64,
    pub peak_rss_delta_bytes: u64,
}

/// `watchers` followers of one execution of `steps` steps, attached while it runs.
pub async fn fan_out(
    server: &BenchServer,
    pool: &Pool,
    watchers: usize,
    steps: u32,
    step_ms: u64,
) -> anyhow::Result<FanOut> {
    let baseline = server.rss_bytes()?;
    let id = workload::start_sleeping(&mut pool.client(0), step_ms, steps).await?;
    let failures = Arc::new(AtomicUsize::new(0));
    let last_done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..watchers)
        .map(|i| {
            let (mut client, id) = (pool.client(i), id.clone());
            let (failures, last_done) = (failures.clone(), last_done.clone());
            tokio::spawn(async move {
                match follow(&mut client, &id).await {
                    Ok(events) => {
                        last_done.fetch_max(
                            epoch_micros(std::time::SystemTime::now()),
                            Ordering::Relaxed,
                        );
                        Some(events)
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            })
        })
        .collect();
    let mut peak = baseline;
    let counts: Vec<Option<u64>>;
    let sampler = async {
        loop {
            peak = peak.max(server.rss_bytes().unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = sampler => unreachable!(),
        results = futures_util::future::join_all(tasks) => {
            counts = results.into_iter().map(|r| r.ok().flatten()).collect();
        }
    }
    let execution = pool
        .client(0)
        .get_execution(proto::GetExecutionRequest {
            execution_id: id.clone(),
        })
        .await?
        .into_inner()
        .execution
        .context("GetExecution returned no execution")?;
    let last_sequence = execution.last_sequence as u64;
    let ended = execution
        .end_time
        .map(|t| t.seconds as u64 * 1_000_000 + t.nanos as u64 / 1000);
    let delivered_all = counts.iter().all(|c| *c == Some(last_sequence));
    // Server and watchers share this machine's clock.
    let lag = ended
        .map(|end| last_done.load(Ordering::Relaxed).saturating_sub(end) as f64 / 1000.0)
        .unwrap_or(f64::NAN);
    Ok(FanOut {
        watchers,
        events_per_watcher: last_sequence,
        all_delivered: delivered_all && failures.load(Ordering::Relaxed) == 0,
        failures: failures.load(Ordering::Relaxed),
        delivery_lag_ms: lag,
        peak_rss_delta_bytes: peak.saturating_sub(baseline),
    })
}

/// Follows one execution to its end; the number of events, checked gap-free from 1.
async fn follow(client: &mut crate::client::Client, id: &str) -> anyhow::Result<u64> {
    let mut stream = watch_from_start(client, id).await?;
    let mut expected = 1;
    while let Some(response) = stream.message().await? {
        let event = response.event.context("a response without an event")?;
        if event.sequence as u64 != expected {
            bail!("expected event {expected}, got {}", event.sequence);
        }
        expected += 1;
    }
    Ok(expected - 1)
}

fn epoch_micros(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A WatchExecution stream of every event of `id`, from its first.
async fn watch_from_start(
    client: &mut crate::client::Client,
    id: &str,
) -> Result<tonic::Streaming<proto::WatchExecutionResponse>, tonic::Status> {
    Ok(client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.into(),
            after_sequence: 0,
        })
        .await?
        .into_inner())
}
