//! The memory store keeps executions under their UUIDs' 128 bits: what a client reads back
//! (newest first, page cursors, each execution's events, request ids, purges) is what it
//! would read from the durable store.

use std::time::{Duration, SystemTime};

use super::MemoryStore;
use crate::store::fixtures::{event, record};
use crate::store::{ExecutionFilter, ExecutionRecord, ExecutionStatus, Store, StoreError};

fn ids(records: &[ExecutionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

#[tokio::test]
async fn executions_list_newest_first_with_a_cursor_and_keep_their_events() {
    let store = MemoryStore::new();
    // UUIDv7s made one after the other sort in creation order; the text id sorts after.
    let made: Vec<String> = (0..5).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for id in made.iter().chain([&"not-a-uuid".to_string()]) {
        store
            .create_execution(&record(id, ExecutionStatus::Running, None))
            .await
            .unwrap();
    }
    let all = ExecutionFilter::default();
    let first_page = store.list_executions(&all, None, 3).await.unwrap();
    assert_eq!(ids(&first_page), ["not-a-uuid", &made[4], &made[3]]);
    let second_page = store
        .list_executions(&all, Some(&made[3]), 10)
        .await
        .unwrap();
    assert_eq!(ids(&second_page), [&made[2], &made[1], &made[0]]);

    for sequence in 1..=3 {
        store
            .append_event(&event(&made[1], sequence))
            .await
            .unwrap();
    }
    let out_of_order = store.append_event(&event(&made[1], 5)).await;
    assert!(matches!(
        out_of_order,
        Err(StoreError::OutOfOrder { last: 3, .. })
    ));
    let after_one: Vec<u64> = store
        .events_after(&made[1], 1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(after_one, [2, 3]);
    let got = store.get_execution(&made[1]).await.unwrap().unwrap();
    assert_eq!(got.last_sequence, 3);
    // The same id in capitals is another id, as it is to the durable store.
    let upper = made[1].to_uppercase();
    assert!(store.get_execution(&upper).await.unwrap().is_none());
    assert!(
        store
            .events_after(&made[0], 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_purge_removes_ended_executions_with_their_events_and_request_ids() {
    let store = MemoryStore::new();
    let ended = uuid::Uuid::now_v7().to_string();
    let running = uuid::Uuid::now_v7().to_string();
    store
        .create_execution(&record(&ended, ExecutionStatus::Completed, Some("req-1")))
        .await
        .unwrap();
    store.append_event(&event(&ended, 1)).await.unwrap();
    store
        .create_execution(&record(&running, ExecutionStatus::Running, Some("req-2")))
        .await
        .unwrap();
    let found = store.find_by_request_id("req-1").await.unwrap().unwrap();
    assert_eq!(found.id, ended);

    let purged = store
        .purge_ended_before(SystemTime::now() + Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(store.get_execution(&ended).await.unwrap().is_none());
    assert!(store.find_by_request_id("req-1").await.unwrap().is_none());
    assert!(matches!(
        store.events_after(&ended, 0, 10).await,
        Err(StoreError::ExecutionNotFound(_))
    ));
    let unfinished = store.unfinished_executions().await.unwrap();
    assert_eq!(ids(&unfinished), [running.as_str()]);
    assert_eq!(
        store.find_by_request_id("req-2").await.unwrap().unwrap().id,
        running
    );
}
