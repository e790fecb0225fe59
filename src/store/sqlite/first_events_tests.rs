//! Schema 5: the events committed with an execution's creation are stored in its own row,
//! later ones in event_batches; every read sees them as one history.

use rusqlite::Connection;

use super::SqliteStore;
use crate::store::fixtures::{event, record};
use crate::store::{ExecutionStatus, Store, StoreWrite};

fn append(id: &str, sequences: std::ops::RangeInclusive<u64>) -> Vec<StoreWrite> {
    sequences
        .map(|s| StoreWrite::AppendEvent(event(id, s).into()))
        .collect()
}

fn create(id: &str, status: ExecutionStatus) -> StoreWrite {
    StoreWrite::CreateExecution(Box::new(record(id, status, None)))
}

async fn last_sequence(store: &SqliteStore, id: &str) -> u64 {
    store
        .get_execution(id)
        .await
        .unwrap()
        .unwrap()
        .last_sequence
}

/// (first_events_last, rows in event_batches) of execution `id`, read from the file.
fn where_stored(dir: &std::path::Path, id: &str) -> (Option<i64>, i64) {
    let conn = Connection::open(dir.join("wfm.db")).unwrap();
    conn.query_row(
        "SELECT first_events_last, (SELECT COUNT(*) FROM event_batches WHERE execution_id = ?1)
         FROM executions WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test]
async fn events_committed_with_the_creation_live_in_the_row_and_read_with_the_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let id = "0001-inline";
    let mut created = vec![create(id, ExecutionStatus::Running)];
    created.extend(append(id, 1..=3));
    store.write_batch(created).await.unwrap();
    assert_eq!(where_stored(dir.path(), id), (Some(3), 0));
    assert_eq!(last_sequence(&store, id).await, 3);

    store.write_batch(append(id, 4..=5)).await.unwrap();
    assert_eq!(where_stored(dir.path(), id), (Some(3), 1));
    assert_eq!(last_sequence(&store, id).await, 5);
    let all: Vec<_> = (1..=5).map(|s| event(id, s)).collect();
    assert_eq!(store.events_after(id, 0, 100).await.unwrap(), all);
    assert_eq!(store.events_after(id, 2, 2).await.unwrap(), all[2..4]);
    assert_eq!(store.events_after(id, 3, 100).await.unwrap(), all[3..]);
    assert!(store.events_after(id, 5, 100).await.unwrap().is_empty());

    let unfinished = store.unfinished_with_events().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!((unfinished[0].0.last_sequence, &unfinished[0].1), (5, &all));
}

#[tokio::test]
async fn only_the_events_that_follow_the_creation_in_order_go_in_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    // Created without events: every event goes to event_batches.
    store
        .write_batch(vec![create("0001-bare", ExecutionStatus::Queued)])
        .await
        .unwrap();
    store.write_batch(append("0001-bare", 1..=2)).await.unwrap();
    assert_eq!(where_stored(dir.path(), "0001-bare"), (None, 1));
    assert_eq!(
        store.events_after("0001-bare", 0, 100).await.unwrap(),
        vec![event("0001-bare", 1), event("0001-bare", 2)]
    );

    // Another execution's events after a creation are not the created one's.
    let mut writes = vec![create("0002-other", ExecutionStatus::Running)];
    writes.extend(append("0001-bare", 3..=3));
    store.write_batch(writes).await.unwrap();
    assert_eq!(where_stored(dir.path(), "0002-other"), (None, 0));
    assert_eq!(where_stored(dir.path(), "0001-bare"), (None, 2));
    assert_eq!(last_sequence(&store, "0001-bare").await, 3);
    assert_eq!(last_sequence(&store, "0002-other").await, 0);
}
