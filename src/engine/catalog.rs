//! The catalog of workflow types: type name → factory (the seed's Factory pattern).

use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;

use super::{Workflow, WorkflowError};
use crate::tools::ToolManager;

/// Builds a workflow instance from the shared tools and the custom arguments.
pub type WorkflowFactory = fn(Arc<ToolManager>, &Value) -> Result<Arc<dyn Workflow>, WorkflowError>;

/// A workflow type compiled into the server.
#[derive(Clone)]
pub struct WorkflowType {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of the custom arguments, shown by ListWorkflowTypes.
    pub arguments_schema: Value,
    pub factory: WorkflowFactory,
}

/// Every workflow type this server knows.
#[derive(Clone, Default)]
pub struct Catalog {
    types: BTreeMap<&'static str, WorkflowType>,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The catalog of the built-in types.
    pub fn builtin() -> Self {
        let mut catalog = Catalog::new();
        for t in super::builtin::types() {
            catalog.add(t);
        }
        catalog
    }

    pub fn add(&mut self, workflow_type: WorkflowType) {
        self.types.insert(workflow_type.name, workflow_type);
    }

    pub fn get(&self, name: &str) -> Option<&WorkflowType> {
        self.types.get(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.types.keys().copied().collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &WorkflowType> {
        self.types.values()
    }
}
