//! The engine runs one execution: the native `Workflow` trait, its execution context,
//! and the catalog of workflow types compiled into the server.

pub mod builtin;
mod catalog;
mod context;
mod error;
pub mod event;
mod workflow;

pub use catalog::{Catalog, WorkflowFactory, WorkflowType};
pub use context::{EventSink, ExecutionContext};
pub use error::WorkflowError;
pub use event::{Event, EventKind, ExecutionResult, StepResult, StepStatus};
pub use workflow::Workflow;
