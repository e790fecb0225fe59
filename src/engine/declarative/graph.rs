//! Runs a definition as a graph: every step starts as soon as the steps it depends on are
//! done, independent steps run concurrently, and a failing step fails the run (cancelling
//! what still runs) unless it has `continue_on_error`.

use std::collections::VecDeque;

use futures_util::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use serde_json::{Map, Value, json};

use super::error::{StepError, StepErrorKind};
use super::step;
use crate::engine::definition::{Definition, Step};
use crate::engine::{ExecutionContext, WorkflowError};
use crate::template;

#[derive(Debug, Clone)]
enum Outcome {
    Completed(Value),
    Failed(String),
    Skipped(String),
}

impl Outcome {
    /// What templates see of a finished step as `steps.<id>`.
    fn view(&self) -> Value {
        match self {
            Outcome::Completed(output) => json!({"status": "completed", "output": output}),
            Outcome::Failed(error) => json!({"status": "failed", "output": null, "error": error}),
            Outcome::Skipped(reason) => {
                json!({"status": "skipped", "output": null, "reason": reason})
            }
        }
    }
}

struct Graph<'a> {
    steps: &'a [Step],
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl<'a> Graph<'a> {
    fn new(definition: &'a Definition) -> Self {
        let steps = &definition.steps[..];
        let index: std::collections::HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                s.depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); steps.len()];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        Graph {
            steps,
            deps,
            dependents,
        }
    }
}

/// Runs every step and builds the output.
pub(super) async fn run(
    definition: &Definition,
    ctx: &ExecutionContext,
    input: Value,
) -> Result<Value, WorkflowError> {
    let graph = Graph::new(definition);
    let n = graph.steps.len();
    let mut waiting: Vec<usize> = graph.deps.iter().map(Vec::len).collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut views = Map::new();
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    // Cancelled when the run fails, so the steps still running stop; a child of the
    // execution's token, so cancelling the execution reaches them too.
    let run_cancel = ctx.cancellation().child_token();
    let mut running: FuturesUnordered<BoxFuture<'_, (usize, Result<Value, StepError>)>> =
        FuturesUnordered::new();
    let mut failure: Option<WorkflowError> = None;

    loop {
        while failure.is_none()
            && !run_cancel.is_cancelled()
            && let Some(i) = ready.pop_front()
        {
            let step = &graph.steps[i];
            let context = json!({"input": input, "steps": views});
            let decided = if !graph.deps[i].is_empty()
                && graph.deps[i]
                    .iter()
                    .all(|&d| matches!(outcomes[d], Some(Outcome::Skipped(_))))
            {
                Some(Outcome::Skipped(
                    "every step it depends on was skipped".into(),
                ))
            } else if step.when.is_empty() {
                None
            } else {
                match template::eval(&step.when, &context) {
                    Ok(v) if template::truthy(&v) => None,
                    Ok(v) => Some(Outcome::Skipped(format!("when '{}' is {v}", step.when))),
                    Err(e) => {
                        let error = StepError::from(e);
                        ctx.step_failed(
                            &step.id,
                            format!("when: {error}"),
                            Default::default(),
                            0,
                            false,
                        )
                        .await?;
                        Some(Outcome::Failed(format!("when: {error}")))
                    }
                }
            };
            match decided {
                Some(outcome) => {
                    if let Outcome::Skipped(reason) = &outcome {
                        ctx.skip_step(&step.id, reason.clone()).await?;
                    }
                    if let (Outcome::Failed(error), false) = (&outcome, step.continue_on_error) {
                        failure = Some(WorkflowError::Failed(format!(
                            "step '{}' failed: {error}",
                            step.id
                        )));
                        run_cancel.cancel();
                    }
                    finish(
                        &graph,
                        i,
                        outcome,
                        &mut outcomes,
                        &mut views,
                        &mut waiting,
                        &mut ready,
                    );
                }
                None => {
                    let cancel = run_cancel.clone();
                    running.push(
                        async move { (i, step::run(step, ctx, context, cancel).await) }.boxed(),
                    );
                }
            }
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        let step = &graph.steps[i];
        let outcome = match result {
            Ok(output) => Outcome::Completed(output),
            Err(error) => {
                let ends_run = !step.continue_on_error
                    || error.kind == StepErrorKind::Cancelled
                    || error.kind == StepErrorKind::Internal;
                if ends_run && failure.is_none() {
                    failure = Some(if error.kind == StepErrorKind::Cancelled {
                        WorkflowError::Cancelled(format!("step '{}' was running", step.id))
                    } else {
                        WorkflowError::Failed(format!("step '{}' failed: {error}", step.id))
                    });
                    run_cancel.cancel();
                }
                Outcome::Failed(error.to_string())
            }
        };
        finish(
            &graph,
            i,
            outcome,
            &mut outcomes,
            &mut views,
            &mut waiting,
            &mut ready,
        );
    }

    if let Some(failure) = failure {
        for (i, outcome) in outcomes.iter().enumerate() {
            if outcome.is_none() {
                ctx.step_not_started(&graph.steps[i].id);
            }
        }
        return Err(failure);
    }
    if ctx.cancellation().is_cancelled() {
        return Err(WorkflowError::Cancelled("the run was cancelled".into()));
    }
    let context = json!({"input": input, "steps": views});
    match &definition.output {
        Some(template) => template::render_value(template, &context)
            .map_err(|e| WorkflowError::Failed(format!("output: {e}"))),
        None => Ok(Value::Object(
            (0..n)
                .filter(|&i| graph.dependents[i].is_empty())
                .map(|i| {
                    let output = match &outcomes[i] {
                        Some(Outcome::Completed(v)) => v.clone(),
                        _ => Value::Null,
                    };
                    (graph.steps[i].id.clone(), output)
                })
                .collect(),
        )),
    }
}

/// Records a finished step and releases the steps waiting only for it.
fn finish(
    graph: &Graph<'_>,
    i: usize,
    outcome: Outcome,
    outcomes: &mut [Option<Outcome>],
    views: &mut Map<String, Value>,
    waiting: &mut [usize],
    ready: &mut VecDeque<usize>,
) {
    views.insert(graph.steps[i].id.clone(), outcome.view());
    outcomes[i] = Some(outcome);
    for &j in &graph.dependents[i] {
        waiting[j] -= 1;
        if waiting[j] == 0 {
            ready.push_back(j);
        }
    }
}
