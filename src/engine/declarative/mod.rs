//! Declarative workflows: a [`Definition`] run as a graph of steps behind the same
//! [`Workflow`] trait as native ones, so the manager's execution path (events, limits,
//! cancellation, shutdown) is the same for both.

mod action;
mod error;
mod graph;
mod step;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub use error::{StepError, StepErrorKind};
pub use step::{DEFAULT_MAX_PARALLEL, MAX_FOR_EACH_ITEMS};

use super::definition::Definition;
use super::{ExecutionContext, Workflow, WorkflowError};

/// Most schema violations listed in one answer.
const MAX_VIOLATIONS_LISTED: usize = 50;

/// A registered definition, ready to run. Built after the definition was validated.
pub struct DeclarativeWorkflow {
    definition: Arc<Definition>,
    schema: Option<jsonschema::Validator>,
}

impl DeclarativeWorkflow {
    /// Compiles the input schema; the rest was checked by `definition::validate`.
    pub fn new(definition: Arc<Definition>) -> Result<Self, WorkflowError> {
        let schema = match &definition.input_schema {
            None => None,
            Some(schema) => Some(jsonschema::validator_for(schema).map_err(|e| {
                WorkflowError::InvalidArguments(format!("input_schema cannot be compiled: {e}"))
            })?),
        };
        Ok(DeclarativeWorkflow { definition, schema })
    }
}

#[async_trait]
impl Workflow for DeclarativeWorkflow {
    /// Lists every violation of the input schema, each with its JSON path.
    fn validate_input(&self, input: &Value) -> Result<(), WorkflowError> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let violations: Vec<String> = schema
            .iter_errors(input)
            .map(|e| {
                let path = e.instance_path().as_str().to_string();
                format!("{} {e}", if path.is_empty() { "/".into() } else { path })
            })
            .collect();
        if violations.is_empty() {
            return Ok(());
        }
        let n = violations.len();
        let mut listed = violations;
        listed.truncate(MAX_VIOLATIONS_LISTED);
        let more = if n > MAX_VIOLATIONS_LISTED {
            format!("; and {} more", n - MAX_VIOLATIONS_LISTED)
        } else {
            String::new()
        };
        Err(WorkflowError::InvalidInput(format!(
            "{n} violation(s) of the input_schema: {}{more}",
            listed.join("; ")
        )))
    }

    async fn execute(&self, ctx: &ExecutionContext, input: Value) -> Result<Value, WorkflowError> {
        graph::run(&self.definition, ctx, input).await
    }
}
