//! The closed-loop load driver: N clients, each issuing one operation after another for a
//! fixed time, every latency recorded in an HDR histogram (merged at the end).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// One operation of a scenario, issued by client `i`.
pub type Operation =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How long to drive a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Operations in this first part are issued but not recorded (connections, caches).
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one scenario at one client count measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub clients: usize,
    pub operations: u64,
    pub errors: u64,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latencies in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Measurement {
    pub fn throughput(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in microseconds.
    pub fn percentile_us(&self, p: f64) -> f64 {
        self.latency.value_at_quantile(p / 100.0) as f64 / 1000.0
    }

    pub fn max_us(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid histogram precision")
}

/// Runs `operation` from `clients` concurrent tasks for the warm-up then the measured time.
pub async fn closed_loop(clients: usize, phase: Phase, operation: Operation) -> Measurement {
    let start = Instant::now();
    let measure_from = start + phase.warmup;
    let end = measure_from + phase.measure;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let (mut errors, mut first_error) = (0u64, None);
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let outcome = operation(client).await;
                    let done = Instant::now();
                    if began < measure_from || done > end {
                        continue;
                    }
                    match outcome {
                        Ok(()) => {
                            let _ = latency.record((done - began).as_nanos() as u64);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (latency, errors, first_error)
            })
        })
        .collect();
    let mut total = Measurement {
        clients,
        operations: 0,
        errors: 0,
        first_error: None,
        elapsed: phase.measure,
        latency: new_histogram(),
    };
    for task in tasks {
        let Ok((latency, errors, first_error)) = task.await else {
            total.errors += 1;
            continue;
        };
        total.operations += latency.len();
        total.errors += errors;
        if total.first_error.is_none() {
            total.first_error = first_error;
        }
        let _ = total.latency.add(&latency);
    }
    total
}
