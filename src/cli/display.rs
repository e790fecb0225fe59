//! How the CLI shows things to a person: tables, a live view of an execution.

use std::{collections::HashMap, io::IsTerminal, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio_stream::StreamExt;

use super::json;
use crate::proto::{self, execution_event::Kind};

pub fn workflow_table(workflows: &[proto::Workflow], filtered: bool) {
    if workflows.is_empty() {
        println!(
            "{}",
            if filtered {
                "no workflow has every label given"
            } else {
                "no workflows registered"
            }
        );
        return;
    }
    println!(
        "{:<28} {:>7} {:<16} {:<20} DESCRIPTION",
        "NAME", "VERSION", "TYPE", "REGISTERED"
    );
    for w in workflows {
        let j = json::workflow(w);
        let registered = j["create_time"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(19)
            .collect::<String>();
        println!(
            "{:<28} {:>7} {:<16} {:<20} {}",
            w.name,
            w.version,
            j["type"].as_str().unwrap_or("-"),
            registered,
            w.description
        );
    }
}

/// Counts and durations per workflow; durations are `-` before any execution ended.
pub fn stats_table(r: &proto::GetStatsResponse) {
    let since = r.since.as_ref().map(|t| t.to_string()).unwrap_or_default();
    if r.workflows.is_empty() {
        println!("no workflows registered");
        return;
    }
    println!(
        "{:<28} {:>8} {:>9} {:>7} {:>9} {:>7} {:>9} {:>9}",
        "NAME", "STARTED", "SUCCEEDED", "FAILED", "CANCELLED", "RUNNING", "P50", "P99"
    );
    let shown = |d: &Option<prost_types::Duration>| {
        d.map_or("-".to_string(), |d| {
            format_duration(Duration::new(
                d.seconds.max(0) as u64,
                d.nanos.max(0) as u32,
            ))
        })
    };
    for w in &r.workflows {
        println!(
            "{:<28} {:>8} {:>9} {:>7} {:>9} {:>7} {:>9} {:>9}",
            w.workflow_name,
            w.started,
            w.succeeded,
            w.failed,
            w.cancelled,
            w.running,
            shown(&w.p50_duration),
            shown(&w.p99_duration)
        );
    }
    println!(
        "counted since {since}; durations over the last executions that ended (up to 1000 each)"
    );
}

/// A duration short enough for a table column: 850ms, 12.3s, 4m05s.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

pub fn execution_table(executions: &[proto::Execution]) {
    if executions.is_empty() {
        println!("no executions");
        return;
    }
    println!("{:<36}  {:<24} {:<10} CREATED", "ID", "WORKFLOW", "STATUS");
    for e in executions {
        let j = json::execution(e);
        println!(
            "{:<36}  {:<24} {:<10} {}",
            e.id,
            format!("{} v{}", e.workflow_name, e.workflow_version),
            j["status"].as_str().unwrap_or(""),
            j["create_time"].as_str().unwrap_or("")
        );
    }
}

/// Prints a JSON value as indented `key: value` lines.
pub fn yaml_like(value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        println!("{pad}{k}:");
                        yaml_like(v, indent + 2);
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                        println!("{pad}{k}:");
                        for item in a {
                            println!("{pad}  -");
                            yaml_like(item, indent + 4);
                        }
                    }
                    _ => println!("{pad}{k}: {v}"),
                }
            }
        }
        other => println!("{pad}{other}"),
    }
}

/// Follows a stream of events to its end: JSON lines for scripts, or a live view with a
/// spinner per running step. Exit code: 0 when the execution completed, 1 otherwise.
pub async fn follow<R, S>(
    mut stream: S,
    event_of: fn(R) -> Option<proto::ExecutionEvent>,
    as_json: bool,
) -> anyhow::Result<Option<i32>>
where
    S: tokio_stream::Stream<Item = Result<R, tonic::Status>> + Unpin,
{
    let mut view = LiveView::new(!as_json && std::io::stderr().is_terminal());
    let mut code = None;
    let mut seen: Option<(String, i64)> = None;
    while let Some(item) = stream.next().await {
        let item = match item {
            Ok(item) => item,
            Err(status) => {
                // The stream broke off (the server stopping, a slow reader cut off): the
                // events continue where it stopped.
                if let Some((id, sequence)) = &seen {
                    eprintln!("to follow on from here: wfm watch {id} --after {sequence}");
                }
                return Err(status.into());
            }
        };
        let Some(event) = event_of(item) else {
            continue;
        };
        seen = Some((event.execution_id.clone(), event.sequence));
        if as_json {
            println!("{}", json::event(&event));
        } else {
            view.show(&event);
        }
        match &event.kind {
            Some(Kind::Completed(_)) => code = Some(0),
            Some(Kind::Failed(_)) | Some(Kind::Cancelled(_)) => code = Some(1),
            _ => {}
        }
    }
    Ok(code)
}

/// A line per event; with a terminal, a spinner per running step.
struct LiveView {
    bars: Option<MultiProgress>,
    steps: HashMap<String, ProgressBar>,
}

impl LiveView {
    fn new(interactive: bool) -> Self {
        LiveView {
            bars: interactive.then(MultiProgress::new),
            steps: HashMap::new(),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => println!("{text}"),
        }
    }

    fn show(&mut self, event: &proto::ExecutionEvent) {
        let Some(kind) = &event.kind else { return };
        match kind {
            Kind::Accepted(a) => self.line(format!(
                "execution {} of {} v{}",
                event.execution_id, a.workflow_name, a.workflow_version
            )),
            Kind::Queued(q) => self.line(format!("… queued: {}", q.reason)),
            Kind::Started(s) if s.attempt > 1 => {
                self.line(format!("▶ started (attempt {})", s.attempt))
            }
            Kind::Started(_) => self.line("▶ started".into()),
            Kind::StepStarted(s) => match &self.bars {
                Some(bars) => {
                    let bar = bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {msg}")
                            .expect("valid template"),
                    );
                    bar.set_prefix(s.step_id.clone());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    self.steps.insert(s.step_id.clone(), bar);
                }
                None => self.line(format!("  … {}", s.step_id)),
            },
            Kind::StepProgress(p) => {
                let pct = p
                    .fraction
                    .map(|f| format!(" {:.0}%", f * 100.0))
                    .unwrap_or_default();
                match self.steps.get(&p.step_id) {
                    Some(bar) => bar.set_message(format!("{}{pct}", p.message)),
                    None => self.line(format!("    {}: {}{pct}", p.step_id, p.message)),
                }
            }
            Kind::StepCompleted(s) => {
                let ms = s
                    .duration
                    .map_or(0.0, |d| d.seconds as f64 * 1e3 + d.nanos as f64 / 1e6);
                self.end_step(&s.step_id, format!("  ✔ {} ({ms:.1} ms)", s.step_id));
            }
            Kind::StepFailed(s) => {
                let retry = if s.will_retry { ", will retry" } else { "" };
                self.end_step(
                    &s.step_id,
                    format!(
                        "  ✘ {} (attempt {}{retry}): {}",
                        s.step_id, s.attempt, s.error
                    ),
                );
            }
            Kind::StepSkipped(s) => self.end_step(
                &s.step_id,
                format!("  ↷ {} skipped: {}", s.step_id, s.reason),
            ),
            Kind::StepCancelled(s) => self.end_step(
                &s.step_id,
                format!(
                    "  ■ {} cancelled (attempt {}): {}",
                    s.step_id, s.attempt, s.reason
                ),
            ),
            Kind::Completed(c) => self.summary("✔ completed", c.result.as_ref()),
            Kind::Failed(f) => self.summary(&format!("✘ failed: {}", f.error), f.result.as_ref()),
            Kind::Cancelled(c) => {
                self.summary(&format!("■ cancelled: {}", c.reason), c.result.as_ref())
            }
        }
    }

    fn end_step(&mut self, step_id: &str, text: String) {
        if let Some(bar) = self.steps.remove(step_id) {
            bar.finish_and_clear();
        }
        self.line(text);
    }

    fn summary(&mut self, headline: &str, result: Option<&proto::ExecutionResult>) {
        for (_, bar) in self.steps.drain() {
            bar.finish_and_clear();
        }
        let Some(r) = result else {
            self.line(headline.to_string());
            return;
        };
        let j = json::result(r);
        let secs = j["execution_time_seconds"].as_f64().unwrap_or(0.0);
        self.line(format!(
            "{headline} in {:.1} ms: {} steps completed, {} failed, {} skipped",
            secs * 1e3,
            r.steps_completed,
            r.steps_failed,
            r.steps_skipped
        ));
        if r.success {
            println!(
                "{}",
                serde_json::to_string_pretty(&j["output"]).unwrap_or_default()
            );
        }
    }
}
