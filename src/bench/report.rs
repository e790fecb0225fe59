//! What a benchmark run found: every scenario as a row next to the floor measured in the
//! same run, the scale results, and the targets met or missed; as a table or as JSON.

use serde::Serialize;

use super::load::Measurement;
use super::scale::{FanOut, InFlight, Resume};

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub wfm_version: &'static str,
}

impl Machine {
    pub fn this() -> Machine {
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_kib * 1024,
            wfm_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// One scenario at one client count.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// The store of the server it ran on (`external` for a server given with --running).
    pub store: String,
    pub clients: usize,
    pub operations: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub per_second: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Throughput over the floor's at the same client count on the same server.
    pub throughput_vs_floor: f64,
    /// p50 latency minus the floor's p50.
    pub p50_over_floor_us: f64,
}

impl Row {
    pub fn new(scenario: &str, store: &str, m: &Measurement, floor: Option<&Row>) -> Row {
        let per_second = m.throughput();
        let p50_us = m.percentile_us(50.0);
        Row {
            scenario: scenario.into(),
            store: store.into(),
            clients: m.clients,
            operations: m.operations,
            errors: m.errors,
            first_error: m.first_error.clone(),
            per_second,
            p50_us,
            p90_us: m.percentile_us(90.0),
            p99_us: m.percentile_us(99.0),
            max_us: m.max_us(),
            throughput_vs_floor: floor.map_or(1.0, |f| per_second / f.per_second.max(1e-9)),
            p50_over_floor_us: floor.map_or(0.0, |f| p50_us - f.p50_us),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub goal: String,
    pub measured: String,
    /// None: not measured at the target's scale in this run.
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub duration_seconds: f64,
    pub connections: usize,
    pub fsync: Row,
    pub rows: Vec<Row>,
    pub in_flight: Option<InFlight>,
    pub resume: Option<Resume>,
    pub fan_out: Option<FanOut>,
    pub targets: Vec<Target>,
}

const GIB: f64 = (1u64 << 30) as f64;

impl Report {
    fn row(&self, scenario: &str, clients: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.scenario == scenario && r.clients == clients)
    }

    /// The targets, against what this run measured.
    pub fn evaluate(&mut self) {
        let mut targets = Vec::new();
        for (scenario, goal) in [("execute-durable", 0.35), ("execute-memory", 0.6)] {
            if let Some(row) = self.row(scenario, 64) {
                targets.push(Target {
                    name: if scenario == "execute-durable" {
                        "durable 1-step throughput, 64 clients"
                    } else {
                        "in-memory 1-step throughput, 64 clients"
                    },
                    goal: format!(">= {goal:.2}x floor"),
                    measured: match self
                        .row("execute-canned", 64)
                        .filter(|_| scenario == "execute-memory")
                    {
                        // The contract's ceiling, for reading how far wfm's own work is.
                        Some(canned) => format!(
                            "{:.2}x ({:.0}/s); canned {:.2}x",
                            row.throughput_vs_floor, row.per_second, canned.throughput_vs_floor
                        ),
                        None => {
                            format!("{:.2}x ({:.0}/s)", row.throughput_vs_floor, row.per_second)
                        }
                    },
                    met: Some(row.throughput_vs_floor >= goal),
                });
            }
        }
        if let (Some(row), Some(floor)) = (
            self.row("execute-durable", 1),
            self.row("floor", 1).filter(|f| f.store == "sqlite"),
        ) {
            let limit = floor.p50_us + 2.0 * self.fsync.p50_us;
            targets.push(Target {
                name: "durable 1-step p50, 1 client",
                goal: format!("<= floor p50 + 2 fsyncs = {limit:.0} us"),
                measured: format!("{:.0} us", row.p50_us),
                met: Some(row.p50_us <= limit),
            });
        }
        if let Some(f) = &self.in_flight {
            targets.push(Target {
                name: "100,000 executions in flight",
                goal: "<= 1 GiB resident".into(),
                measured: format!(
                    "{:.2} GiB at {} ({:.0} bytes each)",
                    f.rss_bytes as f64 / GIB,
                    f.executions,
                    f.bytes_per_execution
                ),
                met: (f.executions >= 100_000).then_some(f.rss_bytes as f64 <= GIB),
            });
        }
        if let Some(w) = &self.fan_out {
            targets.push(Target {
                name: "10,000 watchers of one execution",
                goal: "every event to each, bounded memory".into(),
                measured: format!(
                    "{} watchers, all delivered: {}, +{:.0} MiB",
                    w.watchers,
                    w.all_delivered,
                    w.peak_rss_delta_bytes as f64 / (1u64 << 20) as f64
                ),
                met: (w.watchers >= 10_000).then_some(w.all_delivered),
            });
        }
        if let Some(r) = &self.resume {
            targets.push(Target {
                name: "resume 100,000 running executions",
                goal: "<= 10 s".into(),
                measured: format!("{:.2} s for {}", r.resume_seconds, r.executions),
                met: (r.executions >= 100_000).then_some(r.resume_seconds <= 10.0),
            });
        }
        self.targets = targets;
    }

    /// Whether anything failed outright (errors, lost events), as opposed to a slow figure.
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.errors > 0)
            || self.fan_out.as_ref().is_some_and(|w| !w.all_delivered)
    }

    pub fn print_table(&self) {
        let m = &self.machine;
        println!(
            "wfm {} bench: {} cpus, {:.1} GiB, {} connections, {:.1} s per scenario",
            m.wfm_version,
            m.cpus,
            m.memory_bytes as f64 / GIB,
            self.connections,
            self.duration_seconds
        );
        println!(
            "{:<16} {:<7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7}",
            "scenario",
            "store",
            "clients",
            "per sec",
            "p50 us",
            "p90 us",
            "p99 us",
            "max us",
            "x floor",
            "errors"
        );
        for r in std::iter::once(&self.fsync).chain(&self.rows) {
            println!(
                "{:<16} {:<7} {:>7} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>8.3} {:>7}",
                r.scenario,
                r.store,
                r.clients,
                r.per_second,
                r.p50_us,
                r.p90_us,
                r.p99_us,
                r.max_us,
                r.throughput_vs_floor,
                r.errors
            );
            if let Some(e) = &r.first_error {
                println!("    first error: {e}");
                if e.contains("limits.requests_per_second_per_token") {
                    println!(
                        "    (the server's rate limit refused calls: benchmark a server run with limits.requests_per_second_per_token = 0)"
                    );
                }
            }
        }
        if let Some(f) = &self.in_flight {
            println!(
                "in flight: {} executions started in {:.1} s ({:.0}/s); server RSS {:.0} MiB ({:.0} MiB anonymous; baseline {:.0} MiB), {:.0} bytes per execution",
                f.executions,
                f.start_seconds,
                f.starts_per_second,
                f.rss_bytes as f64 / 1048576.0,
                f.rss_anon_bytes as f64 / 1048576.0,
                f.baseline_rss_bytes as f64 / 1048576.0,
                f.bytes_per_execution
            );
        }
        if let Some(r) = &self.resume {
            println!(
                "resume: {} running executions resumed by a restarted server in {:.2} s ({} checked for a second attempt)",
                r.executions, r.resume_seconds, r.checked
            );
        }
        if let Some(w) = &self.fan_out {
            println!(
                "watch fan-out: {} watchers x {} events, all delivered: {} ({} failed), last delivery {:.0} ms after the end, peak RSS +{:.1} MiB",
                w.watchers,
                w.events_per_watcher,
                w.all_delivered,
                w.failures,
                w.delivery_lag_ms,
                w.peak_rss_delta_bytes as f64 / 1048576.0
            );
        }
        if !self.targets.is_empty() {
            println!("targets:");
            for t in &self.targets {
                let verdict = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not at scale",
                };
                println!(
                    "  {:<40} {:<34} {:<44} {verdict}",
                    t.name, t.goal, t.measured
                );
            }
        }
    }
}
