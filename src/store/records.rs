//! What the store keeps: workflow versions and executions.

use std::{collections::BTreeMap, time::SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::ExecutionResult;
use crate::engine::definition::Definition;

/// One registered workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub name: String,
    pub version: u32,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    /// 0: only the global limit applies.
    pub max_concurrency: u32,
    #[serde(with = "crate::stored_time::time")]
    pub create_time: SystemTime,
    pub source: WorkflowSource,
}

impl WorkflowRecord {
    /// True when both describe the same workflow (everything but version and time).
    pub fn same_content(&self, other: &WorkflowRecord) -> bool {
        self.name == other.name
            && self.description == other.description
            && self.labels == other.labels
            && self.max_concurrency == other.max_concurrency
            && self.source == other.source
    }
}

/// What a workflow runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkflowSource {
    /// A type compiled into the server, built from custom arguments.
    Native { type_name: String, arguments: Value },
    /// A graph of steps defined by the client, run by the declarative engine.
    Declarative {
        definition: std::sync::Arc<Definition>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// As stored and logged: `completed`, `failed`…
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One execution of a workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// A UUIDv7: ids sort by creation time.
    pub id: String,
    pub workflow_name: String,
    pub workflow_version: u32,
    pub status: ExecutionStatus,
    pub input: Value,
    pub metadata: Value,
    #[serde(with = "crate::stored_time::time")]
    pub create_time: SystemTime,
    #[serde(with = "crate::stored_time::option_time")]
    pub start_time: Option<SystemTime>,
    #[serde(with = "crate::stored_time::option_time")]
    pub end_time: Option<SystemTime>,
    /// The terminal event's own result, shared.
    pub result: Option<std::sync::Arc<ExecutionResult>>,
    pub parent_execution_id: Option<String>,
    pub request_id: Option<String>,
    pub last_sequence: u64,
}

/// Which executions ListExecutions returns.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub workflow_name: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub created_from: Option<SystemTime>,
    pub created_before: Option<SystemTime>,
}

impl ExecutionFilter {
    pub fn matches(&self, e: &ExecutionRecord) -> bool {
        self.workflow_name
            .as_ref()
            .is_none_or(|n| *n == e.workflow_name)
            && self.status.is_none_or(|s| s == e.status)
            && self.created_from.is_none_or(|t| e.create_time >= t)
            && self.created_before.is_none_or(|t| e.create_time < t)
    }
}
