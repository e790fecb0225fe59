//! Declarative workflow definitions: the domain model and its validation at registration.

mod model;
mod validate;

pub use model::{
    Action, DEFAULT_MAXIMUM_ATTEMPTS, Definition, RetryPolicy, Step, ToolAction, WorkflowAction,
};
pub use validate::{
    DefinitionLimits, MAX_ATTEMPTS, MAX_PARALLEL, Problem, ProblemKind, ResolvedWorkflow, Subject,
    WorkflowResolver, validate,
};
