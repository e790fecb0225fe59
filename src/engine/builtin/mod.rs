//! Workflow types compiled into the server.

mod data_analysis;
mod echo;
mod sleep;
mod stats;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{WorkflowError, WorkflowType};

/// Every built-in type.
pub fn types() -> Vec<WorkflowType> {
    vec![
        data_analysis::workflow_type(),
        echo::echo_type(),
        echo::noop_type(),
        sleep::workflow_type(),
    ]
}

/// Reads custom arguments into a type's argument struct, naming what does not fit.
fn parse_arguments<T: DeserializeOwned>(arguments: &Value) -> Result<T, WorkflowError> {
    let arguments = match arguments {
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    serde_json::from_value(arguments).map_err(|e| WorkflowError::InvalidArguments(e.to_string()))
}

/// Reads an execution's input into a type's input struct, naming what does not fit.
fn parse_input<T: DeserializeOwned>(input: Value) -> Result<T, WorkflowError> {
    let input = match input {
        Value::Null => Value::Object(Default::default()),
        other => other,
    };
    serde_json::from_value(input).map_err(|e| WorkflowError::InvalidInput(e.to_string()))
}
