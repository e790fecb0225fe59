//! The engine runs one execution: the native `Workflow` trait, its execution context,
//! the catalog of workflow types compiled into the server, and declarative workflows
//! (a definition run as a graph of steps).

pub mod builtin;
mod catalog;
mod child;
mod context;
pub mod declarative;
pub mod definition;
mod error;
pub mod event;
pub mod progress;
mod workflow;

pub use catalog::{Catalog, WorkflowFactory, WorkflowType};
pub use child::{ChildRequest, ChildRunner};
pub use context::{EventSink, ExecutionContext};
pub use error::WorkflowError;
pub use event::{Event, EventKind, ExecutionResult, StepResult, StepStatus, json_size};
pub use workflow::Workflow;
