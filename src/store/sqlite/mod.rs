//! The embedded default store: one SQLite file in WAL mode with `synchronous = FULL`
//! (every commit is on disk), written through a group-commit writer, read through a small
//! pool of read connections. Migrations are versioned in `migrations/` and applied at start.

mod answers;
mod checkpoints;
mod event_batch;
mod wal_vfs;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::AtomicUsize, atomic::Ordering, mpsc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    BatchDone, ExecutionFilter, ExecutionRecord, ExecutionStatus, Store, StoreError, StoreResult,
    StoreWrite, WorkflowRecord,
};
use crate::engine::Event;
use writer::{Job, WithJson, Write};

/// Schema migrations, in order; the database's `user_version` is how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_fewer_btrees.sql"),
    include_str!("migrations/0003_events_inline.sql"),
    include_str!("migrations/0004_no_end_index.sql"),
    include_str!("migrations/0005_first_events_in_row.sql"),
];
/// Read connections: reads run in parallel with each other and with the writer (WAL).
const READERS: usize = 4;

pub struct SqliteStore {
    path: PathBuf,
    /// Held while the store is open: a second wfm on the same data directory would resume
    /// the same executions and run them twice.
    _lock: std::fs::File,
    writes: mpsc::Sender<Job>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    /// Stopped by `close`, before the last checkpoint (or when the store is dropped).
    checkpoints: Mutex<Option<checkpoints::Checkpoints>>,
}

/// Microseconds since 1970, saturating: times before 1970 are 0, far future ones i64::MAX.
/// Whole microseconds since the epoch, rounded up: an exclusive upper bound that keeps
/// every time below it.
fn micros_rounded_up(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| {
        i64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(i64::MAX)
    })
}

pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn status_name(s: ExecutionStatus) -> &'static str {
    s.name()
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("unreadable record: {e}")))
}

/// Takes `data_dir/wfm.lock` (an exclusive lock the system releases when the process ends,
/// however it ends) and writes this process's id in it, for the refusal of the next one.
fn lock_data_dir(data_dir: &Path) -> StoreResult<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("wfm.lock");
    let cannot =
        |e: std::io::Error| StoreError::Open(format!("cannot lock {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(cannot)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(StoreError::Open(format!(
                "{} is in use by another wfm{holder}: two servers on one data directory would run the same executions twice; stop the other one or use another data directory",
                data_dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
    }
    file.set_len(0).map_err(cannot)?;
    file.rewind().map_err(cannot)?;
    writeln!(file, "{}", std::process::id()).map_err(cannot)?;
    Ok(file)
}

impl SqliteStore {
    /// Opens (creating when absent) `wfm.db` in `data_dir`. Refuses, without touching the
    /// file, a database from a newer wfm or one that is not a readable SQLite database.
    pub fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Open(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join("wfm.db");
        wal_vfs::register().map_err(StoreError::Open)?;
        let mut conn =
            Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), wal_vfs::NAME)
                .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
        let refuse = |e: rusqlite::Error| {
            StoreError::Open(format!(
                "{} is not a readable wfm database ({e}); wfm will not overwrite it: move it away or restore a backup",
                path.display()
            ))
        };
        conn.busy_timeout(Duration::from_secs(5)).map_err(refuse)?;
        // SQLite opens a file it may not write read-only, silently: such a server would
        // read, say SERVING and fail every write.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(refuse)? {
            return Err(StoreError::Open(format!(
                "cannot write {}: the file is read-only for this user; give it write permission (and its directory) or use another data directory",
                path.display()
            )));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(refuse)?;
        if version as usize > MIGRATIONS.len() {
            return Err(StoreError::Open(format!(
                "{} has schema version {version}, newer than this wfm knows ({}); run a newer wfm or use another data directory",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| StoreError::Open(format!("cannot write {}: {e}", path.display())))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open(format!(
                "{} cannot use WAL mode (got {mode})",
                path.display()
            )));
        }
        // FULL syncs the WAL at every commit, before SQLite publishes its frames: wal_vfs
        // writes the frames it holds at that sync, so no weaker setting may be used here.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(refuse)?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute_batch(migration)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .map_err(|e| {
                    StoreError::Open(format!(
                        "migration {} failed on {}: {e}",
                        i + 1,
                        path.display()
                    ))
                })?;
            tx.commit()
                .map_err(|e| StoreError::Open(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(version = i + 1, "database migrated");
        }
        // The writer checkpoints only what the checkpoint thread left (see checkpoints.rs).
        conn.pragma_update(None, "wal_autocheckpoint", checkpoints::WRITER_PAGES)
            .map_err(refuse)?;
        let checkpoints = checkpoints::start(&path)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags_and_vfs(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                wal_vfs::NAME,
            )
            .map_err(refuse)?;
            reader
                .busy_timeout(Duration::from_secs(5))
                .map_err(refuse)?;
            readers.push(Arc::new(Mutex::new(reader)));
        }
        let (writes, jobs) = mpsc::channel();
        let answers = answers::Answers::start();
        std::thread::Builder::new()
            .name("wfm-store-writer".into())
            .spawn(move || writer::run(conn, jobs, answers))
            .map_err(backend)?;
        Ok(SqliteStore {
            path,
            _lock: lock,
            writes,
            readers,
            next_reader: AtomicUsize::new(0),
            checkpoints: Mutex::new(Some(checkpoints)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, write: Write) -> StoreResult<usize> {
        self.write_all(vec![write]).await
    }

    async fn write_all(&self, writes: Vec<Write>) -> StoreResult<usize> {
        let (job, answer) = Job::awaited(writes);
        self.run_job(job, answer).await
    }

    /// Hands a job to the writer thread and waits for its answer.
    async fn run_job(
        &self,
        job: Job,
        answer: tokio::sync::oneshot::Receiver<StoreResult<usize>>,
    ) -> StoreResult<usize> {
        let stopped = || StoreError::Backend("the store writer has stopped".into());
        self.writes.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The execution whose `column` (a unique one) equals `value`.
    async fn one_execution(
        &self,
        column: &'static str,
        value: &str,
    ) -> StoreResult<Option<ExecutionRecord>> {
        let value = value.to_string();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {EXECUTION_COLUMNS} WHERE {column} = ?1"),
                params![value],
                execution_row,
            )
            .optional()
            .map_err(backend)?
            .map(to_execution)
            .transpose()
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let reader = self.readers[i].clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().expect("reader lock");
            f(&conn)
        })
        .await
        .map_err(backend)?
    }
}

/// An execution record with its last sequence number: that of its later batches, else that
/// of the events in its row (schema 5).
const EXECUTION_COLUMNS: &str = "e.record, COALESCE((SELECT MAX(last_sequence) FROM event_batches WHERE execution_id = e.id), e.first_events_last) FROM executions e";

fn execution_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Option<i64>)> {
    Ok((row.get(0)?, row.get(1)?))
}

fn to_execution((record, last): (String, Option<i64>)) -> StoreResult<ExecutionRecord> {
    let mut e: ExecutionRecord = parse(&record)?;
    e.last_sequence = last.unwrap_or(0) as u64;
    Ok(e)
}

#[async_trait]
impl Store for SqliteStore {
    async fn save_workflow(&self, workflow: &WorkflowRecord) -> StoreResult<()> {
        self.write(Write::SaveWorkflow(workflow.clone()))
            .await
            .map(|_| ())
    }

    async fn delete_workflow(&self, name: &str) -> StoreResult<usize> {
        self.write(Write::DeleteWorkflow(name.to_string())).await
    }

    async fn load_workflows(&self) -> StoreResult<Vec<WorkflowRecord>> {
        self.read(|c| {
            let mut s = c
                .prepare("SELECT record FROM workflows ORDER BY name, version")
                .map_err(backend)?;
            let rows = s
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|r| parse(&r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn create_execution(&self, execution: &ExecutionRecord) -> StoreResult<()> {
        self.write(Write::CreateExecution(WithJson::record(execution.clone())))
            .await
            .map(|_| ())
    }

    async fn update_execution(&self, execution: &ExecutionRecord) -> StoreResult<()> {
        self.write(Write::UpdateExecution(WithJson::record(execution.clone())))
            .await
            .map(|_| ())
    }

    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.one_execution("e.id", id).await
    }

    async fn find_by_request_id(&self, request_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.one_execution("e.request_id", request_id).await
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let workflow = filter.workflow_name.clone();
        let status = filter.status.map(status_name);
        // The column holds whole microseconds and the record nanoseconds: the query takes
        // every row of the bounds' microseconds, and the exact times decide below.
        let from = filter.created_from.map(micros);
        let until = filter.created_before.map(micros_rounded_up);
        let exact = filter.clone();
        let before = before.map(str::to_string);
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {EXECUTION_COLUMNS}
                     WHERE (?1 IS NULL OR e.workflow_name = ?1) AND (?2 IS NULL OR e.status = ?2)
                       AND (?3 IS NULL OR e.create_time >= ?3) AND (?4 IS NULL OR e.create_time < ?4)
                       AND (?5 IS NULL OR e.id < ?5)
                     ORDER BY e.id DESC LIMIT ?6"
                ))
                .map_err(backend)?;
            let mut page = Vec::new();
            let mut after = before;
            while page.len() < limit {
                let want = limit - page.len();
                let rows: Vec<ExecutionRecord> = s
                    .query_map(
                        params![workflow, status, from, until, after, i64::try_from(want).unwrap_or(-1)],
                        execution_row,
                    )
                    .map_err(backend)?
                    .map(|r| to_execution(r.map_err(backend)?))
                    .collect::<StoreResult<_>>()?;
                let last = rows.last().map(|e| e.id.clone());
                let exhausted = rows.len() < want;
                page.extend(rows.into_iter().filter(|e| exact.matches(e)));
                match last {
                    Some(id) if !exhausted => after = Some(id),
                    _ => break,
                }
            }
            Ok(page)
        })
        .await
    }

    async fn latest_execution_version(&self, workflow: &str) -> StoreResult<u32> {
        let workflow = workflow.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT COALESCE(MAX(json_extract(record, '$.workflow_version')), 0) FROM executions WHERE workflow_name = ?1",
                params![workflow],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .map_err(backend)
        })
        .await
    }

    async fn unfinished_executions(&self) -> StoreResult<Vec<ExecutionRecord>> {
        self.read(|c| {
            let mut s = c
                .prepare(&format!("SELECT {EXECUTION_COLUMNS} WHERE e.status IN ('queued', 'running') ORDER BY e.id"))
                .map_err(backend)?;
            let rows = s.query_map([], execution_row).map_err(backend)?;
            rows.map(|r| to_execution(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn unfinished_with_events(&self) -> StoreResult<Vec<(ExecutionRecord, Vec<Event>)>> {
        self.read(|c| {
            let mut s = c
                .prepare(&format!("SELECT e.first_events, {EXECUTION_COLUMNS} WHERE e.status IN ('queued', 'running') ORDER BY e.id"))
                .map_err(backend)?;
            let rows = s
                .query_map([], |r| {
                    Ok((
                        (r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?),
                        r.get::<_, Option<String>>(0)?,
                    ))
                })
                .map_err(backend)?;
            let mut all = Vec::new();
            let mut index = std::collections::HashMap::new();
            for row in rows {
                let (execution, first_events) = row.map_err(backend)?;
                let execution = to_execution(execution)?;
                let events = match first_events {
                    Some(text) => event_batch::parse_batch(&execution.id, &text)?,
                    None => Vec::new(),
                };
                index.insert(execution.id.clone(), all.len());
                all.push((execution, events));
            }
            let mut s = c
                .prepare(
                    "SELECT ev.execution_id, ev.events FROM executions e JOIN event_batches ev ON ev.execution_id = e.id
                     WHERE e.status IN ('queued', 'running') ORDER BY ev.execution_id, ev.last_sequence",
                )
                .map_err(backend)?;
            let rows = s
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (id, events) = row.map_err(backend)?;
                if let Some(&i) = index.get(&id) {
                    all[i].1.extend(event_batch::parse_batch(&id, &events)?);
                }
            }
            Ok(all)
        })
        .await
    }

    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        self.write(Write::AppendEvent(WithJson::event(std::sync::Arc::new(
            event.clone(),
        ))))
        .await
        .map(|_| ())
    }

    async fn write_batch(&self, writes: Vec<StoreWrite>) -> StoreResult<()> {
        self.write_all(writes.into_iter().map(Write::from).collect())
            .await
            .map(|_| ())
    }

    /// Answered on the runtime through its I/O driver (see answers.rs), with no task between
    /// the commit and `done`.
    fn write_batch_then(self: Arc<Self>, writes: Vec<StoreWrite>, done: BatchDone) {
        let job = Job {
            writes: writes.into_iter().map(Write::from).collect(),
            reply: Box::new(move |result| done(result.map(|_| ()))),
            checkpoint: false,
        };
        if let Err(mpsc::SendError(job)) = self.writes.send(job) {
            (job.reply)(Err(StoreError::Backend(
                "the store writer has stopped".into(),
            )));
        }
    }

    async fn close(&self) -> StoreResult<()> {
        let running = self.checkpoints.lock().expect("checkpoints lock").take();
        if let Some(checkpoints) = running {
            tokio::task::spawn_blocking(move || checkpoints.stop())
                .await
                .map_err(|e| StoreError::Backend(format!("checkpoint thread: {e}")))?;
        }
        let (job, answer) = Job::checkpoint();
        self.run_job(job, answer).await.map(|_| ())
    }

    async fn events_after(
        &self,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let id = execution_id.to_string();
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT events FROM (
                       SELECT first_events AS events, first_events_last AS last FROM executions
                       WHERE id = ?1 AND first_events_last > ?2
                       UNION ALL
                       SELECT events, last_sequence FROM event_batches
                       WHERE execution_id = ?1 AND last_sequence > ?2)
                     ORDER BY last",
                )
                .map_err(backend)?;
            let mut rows = s.query(params![id, after as i64]).map_err(backend)?;
            let mut events = Vec::new();
            while events.len() < limit {
                let Some(row) = rows.next().map_err(backend)? else {
                    break;
                };
                let text = row.get_ref(0).map_err(backend)?.as_str().map_err(backend)?;
                let batch = event_batch::parse_batch(&id, text)?;
                let wanted = limit - events.len();
                events.extend(
                    batch
                        .into_iter()
                        .filter(|e| e.sequence > after)
                        .take(wanted),
                );
            }
            Ok(events)
        })
        .await
    }

    async fn purge_ended_before(&self, before: SystemTime) -> StoreResult<usize> {
        self.write(Write::PurgeEndedBefore(micros(before))).await
    }
}

#[cfg(test)]
mod answers_tests;
#[cfg(test)]
mod first_events_tests;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod purge_tests;
#[cfg(test)]
mod wal_vfs_tests;
