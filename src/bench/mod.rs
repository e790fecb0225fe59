//! `wfm bench`: drives a server over real gRPC and puts each scenario's throughput and
//! latency next to the floor (Health/Check on the same server and connections, and this
//! disk's fsync) measured in the same run, since absolute figures move on shared machines.

mod canned;
mod disk;
mod load;
mod report;
mod scale;
mod server;
mod workload;

use std::{path::PathBuf, time::Duration};

use clap::ValueEnum;

use load::{Operation, Phase, closed_loop};
use report::{Machine, Report, Row};
use server::{BenchServer, StoreChoice};
use workload::Pool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// GetWorkflow of one workflow.
    Get,
    /// Execute of a 1-step noop workflow, store in memory.
    ExecuteMemory,
    /// Execute of a 1-step noop workflow, durable store.
    ExecuteDurable,
    /// Execute answered by a server that does no work (a real execution's events replayed):
    /// the ceiling for execute-memory on this gRPC stack.
    ExecuteCanned,
    /// Execute of a declarative workflow of 10 sequential steps.
    Seq10,
    /// Execute of a declarative workflow of 10 parallel steps.
    Par10,
    /// Many watchers of one execution.
    Watch,
    /// Many executions sleeping at once: memory per execution.
    InFlight,
    /// Restart with many running executions: time to resume them.
    Resume,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Drive the server at --server instead of starting servers (the scale scenarios, the
    /// in-memory one and the canned one need servers it starts, and are skipped).
    #[arg(long)]
    pub running: bool,
    /// Scenarios to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Concurrent clients; each throughput scenario runs at each count.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub clients: Vec<usize>,
    /// HTTP/2 connections the clients share (0: one per client up to 4).
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Measured time per scenario and client count.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unrecorded time before each measurement.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Executions held in flight, then resumed after a restart.
    #[arg(long, default_value_t = 100_000)]
    pub scale: usize,
    /// Watchers of one execution.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// A quick run that checks every scenario works (small counts, short times).
    #[arg(long)]
    pub smoke: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    fn apply_smoke(&mut self) {
        if self.smoke {
            self.clients = vec![1, 8];
            self.duration = Duration::from_millis(400);
            self.warmup = Duration::from_millis(100);
            self.scale = 300;
            self.watchers = 50;
        }
        if self.scenarios.is_empty() {
            self.scenarios = Scenario::value_variants().to_vec();
        }
    }

    fn wants(&self, s: Scenario) -> bool {
        self.scenarios.contains(&s)
    }

    fn connections_for(&self, clients: usize) -> usize {
        if self.connections > 0 {
            self.connections
        } else {
            clients.clamp(1, 4)
        }
    }
}

/// A temporary directory for the servers the benchmark starts, removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn progress(what: &str) {
    eprintln!("wfm bench: {what}");
}

/// Runs the benchmark; returns the exit code (1 when a scenario failed outright).
pub async fn run(
    url: &str,
    options: crate::client::ConnectOptions,
    mut args: BenchArgs,
) -> anyhow::Result<i32> {
    args.apply_smoke();
    let scratch = Scratch(std::env::temp_dir().join(format!("wfm-bench-{}", uuid::Uuid::now_v7())));
    std::fs::create_dir_all(&scratch.0)?;
    progress("measuring this disk's fsync");
    let fsync = disk::fsync_floor(&scratch.0, if args.smoke { 50 } else { 500 })?;
    let mut report = Report {
        machine: Machine::this(),
        duration_seconds: args.duration.as_secs_f64(),
        connections: args.connections_for(*args.clients.iter().max().unwrap_or(&1)),
        fsync: Row::new("fsync", "disk", &fsync, None),
        rows: Vec::new(),
        in_flight: None,
        resume: None,
        fan_out: None,
        targets: Vec::new(),
    };
    let phase = Phase {
        warmup: args.warmup,
        measure: args.duration,
    };

    if args.running {
        let throughput: Vec<_> = [
            (Scenario::Get, "get", None),
            (Scenario::ExecuteDurable, "execute", Some(workload::NOOP)),
            (Scenario::Seq10, "seq10", Some(workload::SEQUENTIAL)),
            (Scenario::Par10, "par10", Some(workload::PARALLEL)),
        ]
        .into_iter()
        .filter(|(s, ..)| args.wants(*s))
        .collect();
        report.rows = throughput_rows(url, &options, &args, phase, "external", &throughput).await?;
    } else {
        let durable: Vec<_> = [
            (Scenario::Get, "get", None),
            (
                Scenario::ExecuteDurable,
                "execute-durable",
                Some(workload::NOOP),
            ),
            (Scenario::Seq10, "seq10", Some(workload::SEQUENTIAL)),
            (Scenario::Par10, "par10", Some(workload::PARALLEL)),
        ]
        .into_iter()
        .filter(|(s, ..)| args.wants(*s))
        .collect();
        if !durable.is_empty() || args.wants(Scenario::Watch) {
            let server = BenchServer::start(&scratch.0.join("durable"), StoreChoice::Durable)?;
            report.rows = throughput_rows(
                &server.url,
                &Default::default(),
                &args,
                phase,
                "sqlite",
                &durable,
            )
            .await?;
            if args.wants(Scenario::Watch) {
                progress(&format!("watch fan-out: {} watchers", args.watchers));
                let pool = Pool::connect(
                    &server.url,
                    &Default::default(),
                    args.watchers.div_ceil(200).max(1),
                )
                .await?;
                let (steps, step_ms) = if args.smoke { (5, 100) } else { (50, 200) };
                report.fan_out =
                    Some(scale::fan_out(&server, &pool, args.watchers, steps, step_ms).await?);
            }
        }
        if args.wants(Scenario::ExecuteMemory) || args.wants(Scenario::ExecuteCanned) {
            let server = BenchServer::start(&scratch.0.join("memory"), StoreChoice::Memory)?;
            if args.wants(Scenario::ExecuteMemory) {
                let rows = noop_rows(
                    &server.url,
                    &args,
                    phase,
                    "memory",
                    (Scenario::ExecuteMemory, "execute-memory"),
                );
                report.rows.extend(rows.await?);
            }
            if args.wants(Scenario::ExecuteCanned) {
                progress("canned: recording one execution's events to replay");
                let pool = Pool::connect(&server.url, &Default::default(), 1).await?;
                workload::register_all(&pool).await?;
                let events = workload::record_execute(&pool, workload::NOOP).await?;
                drop(server);
                let canned = canned::CannedServer::start(events)?;
                let rows = noop_rows(
                    &canned.url,
                    &args,
                    phase,
                    canned::STORE,
                    (Scenario::ExecuteCanned, "execute-canned"),
                );
                report.rows.extend(rows.await?);
            }
        }
        if args.wants(Scenario::InFlight) || args.wants(Scenario::Resume) {
            let server = BenchServer::start(&scratch.0.join("scale"), StoreChoice::Durable)?;
            let pool = Pool::connect(&server.url, &Default::default(), 4).await?;
            workload::register_all(&pool).await?;
            progress(&format!(
                "in flight: starting {} sleeping executions",
                args.scale
            ));
            let in_flight = scale::in_flight(&server, &pool, args.scale).await?;
            if args.wants(Scenario::InFlight) {
                report.in_flight = Some(in_flight);
            }
            if args.wants(Scenario::Resume) {
                progress(&format!(
                    "resume: killing the server holding {} running executions and restarting it",
                    args.scale
                ));
                let (resume, _restarted) = scale::resume(server, args.scale, 4).await?;
                report.resume = Some(resume);
            }
        }
    }
    report.evaluate();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    Ok(if report.failed() { 1 } else { 0 })
}

/// The floor then an Execute of the 1-step noop workflow, at each client count.
async fn noop_rows(
    url: &str,
    args: &BenchArgs,
    phase: Phase,
    store: &str,
    (scenario, name): (Scenario, &'static str),
) -> anyhow::Result<Vec<Row>> {
    let scenario = (scenario, name, Some(workload::NOOP));
    throughput_rows(url, &Default::default(), args, phase, store, &[scenario]).await
}

/// The floor then each scenario, at each client count, on one server.
async fn throughput_rows(
    url: &str,
    options: &crate::client::ConnectOptions,
    args: &BenchArgs,
    phase: Phase,
    store: &str,
    scenarios: &[(Scenario, &'static str, Option<&'static str>)],
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &clients in &args.clients {
        let pool = Pool::connect(url, options, args.connections_for(clients)).await?;
        if store != canned::STORE {
            // The canned server answers Execute whatever the name: it has no registry.
            workload::register_all(&pool).await?;
        }
        progress(&format!("{store}: floor (Health/Check), {clients} clients"));
        let floor = Row::new(
            "floor",
            store,
            &closed_loop(clients, phase, workload::health_check(&pool)).await,
            None,
        );
        rows.push(floor.clone());
        for &(_, name, workflow) in scenarios {
            progress(&format!("{store}: {name}, {clients} clients"));
            let operation: Operation = match workflow {
                None => workload::get_workflow(&pool),
                Some(workflow) => workload::execute(&pool, workflow),
            };
            let measured = closed_loop(clients, phase, operation).await;
            rows.push(Row::new(name, store, &measured, Some(&floor)));
        }
    }
    Ok(rows)
}
