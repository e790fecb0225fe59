//! How a row of `event_batches` holds its events: a JSON array of them in order, each
//! without its execution id, which the row has (schema 3; rows written before carry it,
//! and it is ignored: both read the same).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::parse;
use crate::engine::{Event, EventKind};
use crate::store::{StoreError, StoreResult};

#[derive(Serialize)]
struct StoredRef<'a> {
    sequence: u64,
    #[serde(with = "crate::stored_time::time")]
    time: SystemTime,
    kind: &'a EventKind,
}

#[derive(Deserialize)]
struct Stored {
    sequence: u64,
    #[serde(with = "crate::stored_time::time")]
    time: SystemTime,
    kind: EventKind,
}

/// One event as an element of the `events` column, made by the thread that queues it.
pub fn element_text(event: &Event) -> StoreResult<String> {
    serde_json::to_string(&StoredRef {
        sequence: event.sequence,
        time: event.time,
        kind: &event.kind,
    })
    .map_err(|e| StoreError::Backend(e.to_string()))
}

/// The `events` column for consecutive events of one execution, from their elements.
pub fn join(elements: &[&str]) -> String {
    format!("[{}]", elements.join(","))
}

/// The `events` column for consecutive events of one execution.
#[cfg(test)]
pub fn to_text(events: &[&Event]) -> StoreResult<String> {
    let elements = events
        .iter()
        .map(|e| element_text(e))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(join(
        &elements.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
}

/// The events of one row of `execution_id`.
pub fn parse_batch(execution_id: &str, text: &str) -> StoreResult<Vec<Event>> {
    let execution_id: std::sync::Arc<str> = execution_id.into();
    Ok(parse::<Vec<Stored>>(text)?
        .into_iter()
        .map(|e| Event {
            execution_id: execution_id.clone(),
            sequence: e.sequence,
            time: e.time,
            kind: e.kind,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_as_written_and_so_does_one_from_schema_2() {
        let event = Event {
            execution_id: "e1".into(),
            sequence: 7,
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456),
            kind: EventKind::Started { attempt: 2 },
        };
        let text = to_text(&[&event]).unwrap();
        assert!(
            !text.contains("e1"),
            "the row holds the id, not each event: {text}"
        );
        assert_eq!(parse_batch("e1", &text).unwrap(), vec![event.clone()]);
        let schema_2 = serde_json::to_string(&[&event]).unwrap();
        assert_eq!(parse_batch("e1", &schema_2).unwrap(), vec![event]);
    }
}
