//! Records and events for the stores' unit tests: fixed times, so what is written can be
//! compared with what is read back.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::engine::{Event, EventKind};
use crate::store::{ExecutionRecord, ExecutionStatus};

pub(crate) fn record(
    id: &str,
    status: ExecutionStatus,
    request_id: Option<&str>,
) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        workflow_name: "sales".into(),
        workflow_version: 1,
        status,
        input: json!({"dataset": "sales"}),
        metadata: json!({}),
        create_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        start_time: None,
        end_time: status
            .is_terminal()
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_001)),
        result: None,
        parent_execution_id: None,
        request_id: request_id.map(str::to_string),
        last_sequence: 0,
    }
}

pub(crate) fn event(id: &str, sequence: u64) -> Event {
    Event {
        execution_id: id.into(),
        sequence,
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + sequence),
        kind: EventKind::StepStarted {
            step_id: format!("step-{sequence}"),
            attempt: 1,
        },
    }
}
