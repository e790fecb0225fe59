//! Registration of declarative workflows: validate the definition against what this server
//! has (tools, registered workflows, limits), then build the engine's workflow for it.

use std::sync::Arc;

use super::{ManagerError, WorkflowManager, registry::Registry};
use crate::engine::Workflow;
use crate::engine::declarative::DeclarativeWorkflow;
use crate::engine::definition::{
    self, Definition, DefinitionLimits, ProblemKind, ResolvedWorkflow, Subject, WorkflowResolver,
};
use crate::store::WorkflowSource;

impl WorkflowResolver for Registry {
    fn resolve(&self, name: &str, version: u32) -> Option<ResolvedWorkflow> {
        self.get(name, version).map(|w| ResolvedWorkflow {
            version: w.record.version,
            definition: match &w.record.source {
                WorkflowSource::Declarative { definition } => Some(definition.clone()),
                WorkflowSource::Native { .. } => None,
            },
        })
    }
}

impl WorkflowManager {
    /// Validates a definition as version `version` of `name` and builds its workflow.
    /// Every problem is reported at once: INVALID_ARGUMENT when the definition itself is
    /// wrong, FAILED_PRECONDITION when it only needs tools or workflows this server lacks.
    /// A definition `restored` at start is not held to rules added since it was stored.
    pub(super) fn build_declarative(
        &self,
        name: &str,
        version: u32,
        definition: Arc<Definition>,
        restored: bool,
    ) -> Result<Arc<dyn Workflow>, ManagerError> {
        let limits = DefinitionLimits {
            max_steps: self.limits.max_steps_per_workflow,
            max_depth: self.limits.max_workflow_depth,
        };
        let subject = Subject {
            name,
            version,
            restored,
        };
        if let Err(problems) =
            definition::validate(&definition, &subject, &self.tools, &self.registry, &limits)
        {
            let listed = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let count = problems.len();
            let summary = format!(
                "{count} problem{} in the definition: {listed}",
                if count == 1 { "" } else { "s" }
            );
            return Err(if problems.iter().all(|p| p.kind == ProblemKind::Missing) {
                ManagerError::FailedPrecondition(format!(
                    "workflow '{name}' needs what this server does not have: {summary}"
                ))
            } else {
                ManagerError::invalid("definition", summary)
            });
        }
        let workflow = DeclarativeWorkflow::new(definition)
            .map_err(|e| ManagerError::invalid("definition.input_schema", e.to_string()))?;
        Ok(Arc::new(workflow))
    }
}
