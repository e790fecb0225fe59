//! SQLite's checkpoints on a thread of their own. A checkpoint copies the WAL's pages into
//! `wfm.db` and syncs it (~6 ms for the ~400 pages of 1,000 WAL frames here). Run by the
//! writer thread, as SQLite does by default after the commit that crosses its threshold,
//! it was ~10% of that thread's time at 64 clients, and every commit waits for that thread
//! (BENCHMARKS.md, session 17). Here a connection of its own checkpoints what is committed
//! every [`INTERVAL`], beside the writer (`PASSIVE`: it never waits for it or for readers).
//!
//! Such a checkpoint never quite catches up with a busy writer, and the WAL starts again
//! from its beginning only after one that did: the writer keeps SQLite's own checkpoint at
//! [`WRITER_PAGES`] (it then copies only what is left), so the WAL stays bounded.

use std::{path::Path, sync::mpsc, thread::JoinHandle, time::Duration};

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// How often the checkpoint thread copies what was committed since its last run.
const INTERVAL: Duration = Duration::from_millis(50);
/// The writer connection's own checkpoint threshold, in WAL pages (40 MB of 4 KiB pages).
pub const WRITER_PAGES: u32 = 10_000;

/// The running thread: it stops when this is dropped (with the store), or by [`stop`].
///
/// [`stop`]: Checkpoints::stop
pub struct Checkpoints {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpoints {
    /// Stops the thread and waits for its checkpoint in progress, if any: the store's last
    /// checkpoint, which empties the WAL, fails while another one runs.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Starts the thread.
pub fn start(path: &Path) -> StoreResult<Checkpoints> {
    let failed = |e: rusqlite::Error| {
        StoreError::Open(format!(
            "cannot open {} to checkpoint it: {e}",
            path.display()
        ))
    };
    let conn = Connection::open_with_flags_and_vfs(
        path,
        rusqlite::OpenFlags::default(),
        super::wal_vfs::NAME,
    )
    .map_err(failed)?;
    conn.execute_batch("PRAGMA synchronous = FULL;")
        .map_err(failed)?;
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("wfm-store-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                if let Err(e) =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own will run");
                }
            }
        })
        .map_err(|e| StoreError::Open(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(Checkpoints { stop, thread })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::SqliteStore;
    use crate::store::fixtures::{event, record};
    use crate::store::{ExecutionStatus, Store, StoreWrite};

    /// What is committed reaches `wfm.db` while the writer is far below its own threshold,
    /// and the WAL is empty once the store is closed.
    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (db, wal) = (dir.path().join("wfm.db"), dir.path().join("wfm.db-wal"));
        let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let empty = size(&db);
        // ~300 pages of WAL: a tenth of the writer's own threshold.
        for i in 0..300 {
            let id = format!("{i:08}-0000-7000-8000-000000000000");
            let mut created = record(&id, ExecutionStatus::Running, None);
            created.input = serde_json::json!({"padding": "x".repeat(3000)});
            store
                .write_batch(vec![
                    StoreWrite::CreateExecution(Box::new(created)),
                    StoreWrite::AppendEvent(event(&id, 1).into()),
                ])
                .await
                .unwrap();
        }
        assert!(size(&wal) > 300 * 4096, "the commits went to the WAL");
        let began = Instant::now();
        while size(&db) < empty + 300 * 4096 {
            assert!(
                began.elapsed() < std::time::Duration::from_secs(10),
                "wfm.db stayed at {} bytes (empty: {empty})",
                size(&db)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        store.close().await.unwrap();
        assert_eq!(size(&wal), 0, "the last checkpoint emptied the WAL");
    }
}
