//! The registry of workflow versions (the seed's Registry pattern): what is published here
//! has been built by its factory and initialized.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use tokio::sync::Semaphore;

use crate::engine::Workflow;
use crate::store::WorkflowRecord;

/// A published workflow version with its live instance.
pub struct RegisteredWorkflow {
    pub record: WorkflowRecord,
    pub instance: Arc<dyn Workflow>,
    /// The version's own concurrency slots, when it has a max_concurrency.
    pub slots: Option<Arc<Semaphore>>,
}

#[derive(Default)]
pub struct Registry {
    by_name: RwLock<BTreeMap<String, Vec<Arc<RegisteredWorkflow>>>>,
}

impl Registry {
    pub fn publish(&self, workflow: RegisteredWorkflow) -> Arc<RegisteredWorkflow> {
        let workflow = Arc::new(workflow);
        self.by_name
            .write()
            .expect("registry lock")
            .entry(workflow.record.name.clone())
            .or_default()
            .push(workflow.clone());
        workflow
    }

    /// Removes every version of a name.
    pub fn remove(&self, name: &str) -> Vec<Arc<RegisteredWorkflow>> {
        self.by_name
            .write()
            .expect("registry lock")
            .remove(name)
            .unwrap_or_default()
    }

    pub fn latest(&self, name: &str) -> Option<Arc<RegisteredWorkflow>> {
        self.by_name
            .read()
            .expect("registry lock")
            .get(name)?
            .last()
            .cloned()
    }

    /// A version, or the latest for 0.
    pub fn get(&self, name: &str, version: u32) -> Option<Arc<RegisteredWorkflow>> {
        let map = self.by_name.read().expect("registry lock");
        let versions = map.get(name)?;
        if version == 0 {
            versions.last().cloned()
        } else {
            versions
                .iter()
                .find(|w| w.record.version == version)
                .cloned()
        }
    }

    pub fn versions(&self, name: &str) -> Vec<u32> {
        let map = self.by_name.read().expect("registry lock");
        map.get(name)
            .map(|v| v.iter().map(|w| w.record.version).collect())
            .unwrap_or_default()
    }

    /// The latest version of each name after `after`, in name order, at most `limit`,
    /// keeping those `keep` accepts.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&WorkflowRecord) -> bool,
    ) -> (Vec<WorkflowRecord>, bool) {
        let map = self.by_name.read().expect("registry lock");
        let mut iter = map
            .iter()
            .filter(|(name, _)| after.is_none_or(|a| name.as_str() > a))
            .filter_map(|(_, versions)| versions.last())
            .filter(|w| keep(&w.record));
        let page: Vec<WorkflowRecord> = iter
            .by_ref()
            .take(limit)
            .map(|w| w.record.clone())
            .collect();
        let more = iter.next().is_some();
        (page, more)
    }

    /// How many workflow names are registered.
    pub fn count(&self) -> usize {
        self.by_name.read().expect("registry lock").len()
    }

    /// Every instance of every version, for the shutdown hooks.
    pub fn all(&self) -> Vec<Arc<RegisteredWorkflow>> {
        self.by_name
            .read()
            .expect("registry lock")
            .values()
            .flatten()
            .cloned()
            .collect()
    }
}
