//! A database written by schema version 1 opens under the current schema with nothing lost:
//! its executions, their events (one row each in version 1), request ids and the unfinished
//! set a restart resumes, and new events append after the old ones.

use rusqlite::{Connection, params};

use super::{MIGRATIONS, SqliteStore, micros, status_name};
use crate::store::fixtures::{event, record};
use crate::store::{ExecutionRecord, ExecutionStatus, Store, StoreError, StoreWrite};

/// Writes a version-1 database the way version 1 did: a row per execution and per event.
fn version_one_database(dir: &std::path::Path, executions: &[(ExecutionRecord, u64)]) {
    let conn = Connection::open(dir.join("wfm.db")).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    for (e, events) in executions {
        conn.execute(
            "INSERT INTO executions (id, workflow_name, status, create_time, end_time, request_id, parent_id, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
            params![
                e.id,
                e.workflow_name,
                status_name(e.status),
                micros(e.create_time),
                e.end_time.map(micros),
                e.request_id,
                serde_json::to_string(e).unwrap()
            ],
        )
        .unwrap();
        for sequence in 1..=*events {
            conn.execute(
                "INSERT INTO events (execution_id, sequence, event) VALUES (?1, ?2, ?3)",
                params![
                    e.id,
                    sequence as i64,
                    serde_json::to_string(&event(&e.id, sequence)).unwrap()
                ],
            )
            .unwrap();
        }
    }
}

#[tokio::test]
async fn a_version_one_database_is_migrated_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let running = record("0001-running", ExecutionStatus::Running, None);
    let done = record("0002-done", ExecutionStatus::Completed, Some("order-7"));
    version_one_database(dir.path(), &[(running.clone(), 3), (done.clone(), 2)]);

    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let version: i64 = Connection::open(dir.path().join("wfm.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, MIGRATIONS.len());

    let got = store.get_execution(&running.id).await.unwrap().unwrap();
    assert_eq!(got.status, ExecutionStatus::Running);
    assert_eq!(got.last_sequence, 3);
    let all = store.events_after(&running.id, 0, 100).await.unwrap();
    assert_eq!(
        all,
        (1..=3).map(|s| event(&running.id, s)).collect::<Vec<_>>()
    );
    let middle = store.events_after(&running.id, 1, 1).await.unwrap();
    assert_eq!(middle, vec![event(&running.id, 2)]);

    let by_request = store.find_by_request_id("order-7").await.unwrap().unwrap();
    assert_eq!(
        (by_request.id.as_str(), by_request.last_sequence),
        (done.id.as_str(), 2)
    );

    let unfinished = store.unfinished_with_events().await.unwrap();
    assert_eq!(unfinished.len(), 1, "only the running execution resumes");
    assert_eq!(unfinished[0].0.id, running.id);
    assert_eq!(unfinished[0].1.len(), 3);

    // The execution goes on: its next events land after the migrated ones, in one row.
    store
        .write_batch(vec![
            StoreWrite::AppendEvent(event(&running.id, 4).into()),
            StoreWrite::AppendEvent(event(&running.id, 5).into()),
        ])
        .await
        .unwrap();
    let after = store.events_after(&running.id, 3, 100).await.unwrap();
    assert_eq!(after, vec![event(&running.id, 4), event(&running.id, 5)]);
    assert_eq!(
        store.events_after(&running.id, 0, 100).await.unwrap().len(),
        5
    );
    let again = store
        .write_batch(vec![StoreWrite::AppendEvent(event(&running.id, 5).into())])
        .await;
    assert!(
        matches!(again, Err(StoreError::OutOfOrder { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_request_id_stays_unique_and_executions_without_one_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    for id in ["a", "b", "c"] {
        store
            .create_execution(&record(id, ExecutionStatus::Queued, None))
            .await
            .unwrap();
    }
    store
        .create_execution(&record("d", ExecutionStatus::Queued, Some("same")))
        .await
        .unwrap();
    let twice = store
        .create_execution(&record("e", ExecutionStatus::Queued, Some("same")))
        .await;
    assert!(
        twice.is_err(),
        "a second execution with request id 'same' was stored"
    );
    assert_eq!(store.unfinished_executions().await.unwrap().len(), 4);
}

/// A one-step execution as wfm stored it before times were written as nanoseconds: rows
/// copied from a database of that version.
const LEGACY_RECORD: &str = r#"{"id":"01a23d3f-fffd-73c0-b18a-c5b68bd33dbd","workflow_name":"bench-noop","workflow_version":1,"status":"completed","input":{},"metadata":{},"create_time":{"secs_since_epoch":1796323934,"nanos_since_epoch":205694010},"start_time":{"secs_since_epoch":1796323934,"nanos_since_epoch":205929415},"end_time":{"secs_since_epoch":1796323934,"nanos_since_epoch":206019825},"result":{"success":true,"execution_time":{"secs":0,"nanos":14203},"steps_completed":1,"steps_failed":0,"steps_skipped":0,"steps":[{"step_id":"noop","status":"completed","output":{},"error":null,"duration":{"secs":0,"nanos":1005},"attempts":1}],"output":{},"error":null},"parent_execution_id":null,"request_id":null,"last_sequence":0}"#;
const LEGACY_EVENTS: &str = r#"[{"sequence":1,"time":{"secs_since_epoch":1796323934,"nanos_since_epoch":205928530},"kind":{"type":"accepted","workflow_name":"bench-noop","workflow_version":1}},{"sequence":2,"time":{"secs_since_epoch":1796323934,"nanos_since_epoch":205930002},"kind":{"type":"started","attempt":1}},{"sequence":3,"time":{"secs_since_epoch":1796323934,"nanos_since_epoch":205937225},"kind":{"type":"step_started","step_id":"noop","attempt":1}},{"sequence":4,"time":{"secs_since_epoch":1796323934,"nanos_since_epoch":205941580},"kind":{"type":"step_completed","step_id":"noop","output":{},"duration":{"secs":0,"nanos":1005}}},{"sequence":5,"time":{"secs_since_epoch":1796323934,"nanos_since_epoch":206022958},"kind":{"type":"completed","result":{"success":true,"execution_time":{"secs":0,"nanos":14203},"steps_completed":1,"steps_failed":0,"steps_skipped":0,"steps":[{"step_id":"noop","status":"completed","output":{},"error":null,"duration":{"secs":0,"nanos":1005},"attempts":1}],"output":{},"error":null}}}]"#;

#[tokio::test]
async fn rows_written_with_times_as_objects_read_exactly_and_new_rows_are_smaller() {
    use std::time::{Duration, UNIX_EPOCH};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let id = "01a23d3f-fffd-73c0-b18a-c5b68bd33dbd";
    let conn = Connection::open(dir.path().join("wfm.db")).unwrap();
    conn.execute(
        "INSERT INTO executions (id, workflow_name, status, create_time, end_time, record)
         VALUES (?1, 'bench-noop', 'completed', 0, 0, ?2)",
        params![id, LEGACY_RECORD],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO event_batches (execution_id, last_sequence, first_sequence, events)
         VALUES (?1, 5, 1, ?2)",
        params![id, LEGACY_EVENTS],
    )
    .unwrap();

    let got = store.get_execution(id).await.unwrap().unwrap();
    let at = |nanos| UNIX_EPOCH + Duration::new(1_796_323_934, nanos);
    assert_eq!(got.create_time, at(205_694_010));
    assert_eq!(got.end_time, Some(at(206_019_825)));
    let result = got.result.as_ref().unwrap();
    assert_eq!(result.execution_time, Duration::from_nanos(14_203));
    assert_eq!(result.steps[0].duration, Duration::from_nanos(1_005));
    let events = store.events_after(id, 0, 10).await.unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[1].time, at(205_930_002));
    assert_eq!(events[4].kind.result(), Some(result));

    // Written again by this version: the same values, in fewer bytes.
    let rewritten = serde_json::to_string(&got).unwrap();
    assert!(!rewritten.contains("secs"), "{rewritten}");
    assert!(
        rewritten.len() * 10 < LEGACY_RECORD.len() * 8,
        "{rewritten}"
    );
    assert_eq!(
        serde_json::from_str::<ExecutionRecord>(&rewritten).unwrap(),
        got
    );
}
