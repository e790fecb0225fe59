//! Protobuf <-> domain conversion of declarative workflow definitions.

use crate::engine::definition::{Definition, RetryPolicy, Step, ToolAction, WorkflowAction};
use crate::manager::ManagerError;
use crate::proto;

use super::convert::{
    MAX_DEFINITION_JSON_DEPTH as MAX_DEPTH, duration, json_to_struct, json_to_value, std_duration,
    struct_to_json_within, value_to_json_checked,
};

/// A WorkflowDefinition message to the domain definition; what cannot be represented
/// (negative counts, invalid durations, NaN) is refused naming the step and field.
pub fn definition_from_proto(d: proto::WorkflowDefinition) -> Result<Definition, ManagerError> {
    let steps = d
        .steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| step_from_proto(i, s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Definition {
        steps,
        input_schema: d
            .input_schema
            .map(|s| struct_to_json_within("definition.input_schema", Some(s), MAX_DEPTH))
            .transpose()?,
        output: d
            .output
            .map(|v| value_to_json_checked("definition.output", v, MAX_DEPTH))
            .transpose()?,
    })
}

fn step_from_proto(i: usize, s: proto::Step) -> Result<Step, ManagerError> {
    let field = |name: &str| {
        format!(
            "definition.steps[{i}] (step '{}').{name}",
            crate::quote::shown(&s.id)
        )
    };
    let non_negative = |name: &str, v: i32| {
        u32::try_from(v).map_err(|_| ManagerError::invalid(field(name), format!("{v} is negative")))
    };
    let (tool, workflow) = match s.action.clone() {
        None => (None, None),
        Some(proto::step::Action::Tool(t)) => (
            Some(ToolAction {
                name: t.name,
                arguments: t
                    .arguments
                    .map(|a| struct_to_json_within(&field("tool.arguments"), Some(a), MAX_DEPTH))
                    .transpose()?
                    .unwrap_or_default(),
            }),
            None,
        ),
        Some(proto::step::Action::Workflow(w)) => (
            None,
            Some(WorkflowAction {
                version: non_negative("workflow.version", w.version)?,
                name: w.name,
                input: w
                    .input
                    .map(|a| struct_to_json_within(&field("workflow.input"), Some(a), MAX_DEPTH))
                    .transpose()?
                    .unwrap_or_default(),
            }),
        ),
    };
    let retry = match s.retry.clone() {
        None => None,
        Some(r) => Some(RetryPolicy {
            initial_interval: r
                .initial_interval
                .map(|d| std_duration(&field("retry.initial_interval"), &d))
                .transpose()?,
            backoff_coefficient: r.backoff_coefficient,
            maximum_interval: r
                .maximum_interval
                .map(|d| std_duration(&field("retry.maximum_interval"), &d))
                .transpose()?,
            maximum_attempts: non_negative("retry.maximum_attempts", r.maximum_attempts)?,
            non_retryable_error_types: r.non_retryable_error_types,
        }),
    };
    Ok(Step {
        max_parallel: non_negative("max_parallel", s.max_parallel)?,
        timeout: s
            .timeout
            .map(|d| std_duration(&field("timeout"), &d))
            .transpose()?,
        id: s.id,
        depends_on: s.depends_on,
        tool,
        workflow,
        when: s.when,
        for_each: s.for_each,
        retry,
        continue_on_error: s.continue_on_error,
    })
}

/// The domain definition as a WorkflowDefinition message.
pub fn definition_to_proto(d: &Definition) -> proto::WorkflowDefinition {
    proto::WorkflowDefinition {
        steps: d.steps.iter().map(step_to_proto).collect(),
        input_schema: d.input_schema.as_ref().map(json_to_struct),
        output: d.output.as_ref().map(json_to_value),
    }
}

fn step_to_proto(s: &Step) -> proto::Step {
    let action = match (&s.tool, &s.workflow) {
        (Some(t), _) => Some(proto::step::Action::Tool(proto::ToolAction {
            name: t.name.clone(),
            arguments: (!t.arguments.is_null()).then(|| json_to_struct(&t.arguments)),
        })),
        (None, Some(w)) => Some(proto::step::Action::Workflow(proto::WorkflowAction {
            name: w.name.clone(),
            version: i32::try_from(w.version).unwrap_or(i32::MAX),
            input: (!w.input.is_null()).then(|| json_to_struct(&w.input)),
        })),
        (None, None) => None,
    };
    proto::Step {
        id: s.id.clone(),
        depends_on: s.depends_on.clone(),
        action,
        when: s.when.clone(),
        for_each: s.for_each.clone(),
        max_parallel: i32::try_from(s.max_parallel).unwrap_or(i32::MAX),
        retry: s.retry.as_ref().map(|r| proto::RetryPolicy {
            initial_interval: r.initial_interval.map(duration),
            backoff_coefficient: r.backoff_coefficient,
            maximum_interval: r.maximum_interval.map(duration),
            maximum_attempts: i32::try_from(r.maximum_attempts).unwrap_or(i32::MAX),
            non_retryable_error_types: r.non_retryable_error_types.clone(),
        }),
        timeout: s.timeout.map(duration),
        continue_on_error: s.continue_on_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_definition() {
        let d: Definition = serde_norway::from_str(
            r#"
steps:
  - id: fetch
    tool: {name: json_transform, arguments: {data: "{{ input.rows }}", expression: "data | length"}}
    retry: {maximum_attempts: 4, initial_interval: 100ms, backoff_coefficient: 1.5, non_retryable_error_types: [InvalidArguments]}
    timeout: 3s
  - id: child
    depends_on: [fetch]
    workflow: {name: other, version: 2, input: {n: "{{ steps.fetch.output }}"}}
    when: "steps.fetch.output > 1"
    continue_on_error: true
  - id: each
    depends_on: [fetch]
    for_each: "{{ input.rows }}"
    max_parallel: 3
    tool: {name: sleep, arguments: {duration_ms: "{{ item }}"}}
input_schema: {type: object, required: [rows]}
output: {count: "{{ steps.fetch.output }}"}
"#,
        )
        .unwrap();
        let back = definition_from_proto(definition_to_proto(&d)).unwrap();
        assert_eq!(back, d);
    }
}
