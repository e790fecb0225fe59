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
