//! The retention purge of schema 4, which has no end-time index: it walks the ids created
//! before its cutoff and deletes those that ended before it, with their events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use uuid::{NoContext, Timestamp, Uuid};

use super::{SqliteStore, micros, writer::uuid_v7_prefix};
use crate::store::fixtures::{event, record};
use crate::store::{ExecutionStatus, Store};

/// A UUIDv7 as the server makes them, created at `at`.
fn id_created_at(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap();
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        d.as_secs(),
        d.subsec_nanos(),
    ))
    .to_string()
}

#[test]
fn the_prefix_of_a_millisecond_sorts_above_every_id_created_before_it_only() {
    let cutoff = UNIX_EPOCH + Duration::from_millis(1_796_323_934_205);
    let prefix = uuid_v7_prefix(micros(cutoff));
    assert_eq!(prefix.len(), "01a23d3f-fffd".len());
    for _ in 0..100 {
        let before = id_created_at(cutoff - Duration::from_millis(1));
        let same = id_created_at(cutoff);
        let after = id_created_at(cutoff + Duration::from_millis(1));
        assert!(before.as_str() < prefix.as_str(), "{before} < {prefix}");
        assert!(same.as_str() > prefix.as_str(), "{same} > {prefix}");
        assert!(after.as_str() > prefix.as_str(), "{after} > {prefix}");
    }
}

#[tokio::test]
async fn a_purge_deletes_what_ended_before_the_cutoff_with_its_events_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let cutoff = SystemTime::now();
    let created = cutoff - Duration::from_secs(10);
    let at = |status, ended: Option<SystemTime>| {
        let mut r = record(&id_created_at(created), status, None);
        r.create_time = created;
        r.end_time = ended;
        r
    };
    let old = at(
        ExecutionStatus::Completed,
        Some(cutoff - Duration::from_secs(5)),
    );
    let ended_after = at(
        ExecutionStatus::Failed,
        Some(cutoff + Duration::from_secs(5)),
    );
    let running = at(ExecutionStatus::Running, None);
    for r in [&old, &ended_after, &running] {
        store.create_execution(r).await.unwrap();
        store.append_event(&event(&r.id, 1)).await.unwrap();
    }

    assert_eq!(store.purge_ended_before(cutoff).await.unwrap(), 1);

    assert!(store.get_execution(&old.id).await.unwrap().is_none());
    for kept in [&ended_after, &running] {
        let got = store.get_execution(&kept.id).await.unwrap().expect("kept");
        assert_eq!((got.status, got.end_time), (kept.status, kept.end_time));
        assert_eq!(store.events_after(&kept.id, 0, 10).await.unwrap().len(), 1);
    }
    let conn = Connection::open(dir.path().join("wfm.db")).unwrap();
    let batches: Vec<String> = conn
        .prepare("SELECT execution_id FROM event_batches ORDER BY execution_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!batches.contains(&old.id), "its events went with it");
    assert_eq!(batches.len(), 2);
}
