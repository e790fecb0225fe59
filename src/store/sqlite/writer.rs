//! Group commit: one thread owns the write connection and applies every pending write of
//! every execution in one transaction, one fsync for the lot. Each caller is answered once
//! its transaction is durable, so an event is never sent before it is on disk.

use std::sync::{Arc, mpsc};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::answers::Answers;
use super::{micros, status_name};
use crate::engine::Event;
use crate::store::{ExecutionRecord, StoreError, StoreResult, WorkflowRecord};

/// Most jobs one transaction takes.
const MAX_BATCH: usize = 4096;

pub enum Write {
    SaveWorkflow(WorkflowRecord),
    DeleteWorkflow(String),
    CreateExecution(WithJson<ExecutionRecord>),
    UpdateExecution(WithJson<ExecutionRecord>),
    AppendEvent(WithJson<Arc<Event>>),
    /// Deletes finished executions (and their events) that ended before this many
    /// microseconds since the epoch.
    PurgeEndedBefore(i64),
}

/// A value and the JSON it is stored as, made on the thread that queues the write: the
/// writer thread, which every commit waits for, only copies it.
pub struct WithJson<T> {
    pub value: T,
    pub json: StoreResult<String>,
}

impl<T> WithJson<T> {
    fn text(&self) -> StoreResult<&str> {
        self.json
            .as_deref()
            .map_err(|e| StoreError::Backend(format!("cannot serialize: {e}")))
    }
}

impl WithJson<ExecutionRecord> {
    pub fn record(value: ExecutionRecord) -> Self {
        let json = json(&value);
        WithJson { value, json }
    }
}

impl WithJson<Arc<Event>> {
    pub fn event(value: Arc<Event>) -> Self {
        let json = super::event_batch::element_text(&value);
        WithJson { value, json }
    }
}

impl From<crate::store::StoreWrite> for Write {
    fn from(write: crate::store::StoreWrite) -> Write {
        use crate::store::StoreWrite;
        match write {
            StoreWrite::CreateExecution(e) => Write::CreateExecution(WithJson::record(*e)),
            StoreWrite::UpdateExecution(e) => Write::UpdateExecution(WithJson::record(*e)),
            StoreWrite::AppendEvent(event) => Write::AppendEvent(WithJson::event(event)),
        }
    }
}

/// Called once a job's transaction is durable (or failed), on the runtime (see answers.rs).
pub type Reply = Box<dyn FnOnce(StoreResult<usize>) + Send>;

/// Writes applied in order in one transaction; answered with the rows affected, or the
/// first write's error (the writes after it are not applied).
pub struct Job {
    pub writes: Vec<Write>,
    pub reply: Reply,
    /// Once everything before it is committed, fold the WAL into the database file.
    pub checkpoint: bool,
}

impl Job {
    /// A job whose answer comes back on a channel, for a caller that awaits it.
    pub fn awaited(writes: Vec<Write>) -> (Job, oneshot::Receiver<StoreResult<usize>>) {
        let (reply, answer) = oneshot::channel();
        let reply: Reply = Box::new(move |result| {
            let _ = reply.send(result);
        });
        (
            Job {
                writes,
                reply,
                checkpoint: false,
            },
            answer,
        )
    }

    /// A job that, after every write sent before it, folds the WAL into the database and
    /// empties it: the database file alone then holds everything, as a copy of a stopped
    /// server's directory expects.
    pub fn checkpoint() -> (Job, oneshot::Receiver<StoreResult<usize>>) {
        let (mut job, answer) = Job::awaited(Vec::new());
        job.checkpoint = true;
        (job, answer)
    }
}

/// Runs until every sender is dropped; answers each job through `answers`.
pub fn run(mut conn: Connection, jobs: mpsc::Receiver<Job>, answers: Answers) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && !batch.last().is_some_and(|job| job.checkpoint) {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let checkpoint = match batch.last() {
            Some(job) if job.checkpoint => batch.pop(),
            _ => None,
        };
        if !batch.is_empty() {
            commit(&mut conn, batch, &answers);
        }
        if let Some(job) = checkpoint {
            answers.send([(job.reply, truncate_wal(&conn))]);
        }
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: every committed page into the database file, then
/// the WAL emptied. A reader in the middle of a read makes it wait (busy timeout), then fail.
fn truncate_wal(conn: &Connection) -> StoreResult<usize> {
    let (busy, pages): (i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(2)?))
        })
        .map_err(|e| StoreError::Backend(format!("checkpoint failed: {e}")))?;
    if busy != 0 {
        return Err(StoreError::Backend(
            "checkpoint could not finish: a read was still running".into(),
        ));
    }
    Ok(pages.max(0) as usize)
}

fn commit(conn: &mut Connection, batch: Vec<Job>, answers: &Answers) {
    let started = std::time::Instant::now();
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, &e, answers),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in &batch {
        results.push(apply_all(&tx, &job.writes));
    }
    if let Err(e) = tx.commit() {
        return fail_all(batch, &e, answers);
    }
    let writes = batch.iter().map(|job| job.writes.len()).sum();
    crate::telemetry::metrics::store_committed(writes, started.elapsed());
    answers.send(batch.into_iter().map(|job| job.reply).zip(results));
}

fn fail_all(batch: Vec<Job>, e: &rusqlite::Error, answers: &Answers) {
    tracing::error!(error = %e, writes = batch.len(), "store commit failed");
    crate::telemetry::metrics::store_commit_failed();
    answers.send(batch.into_iter().map(|job| {
        (
            job.reply,
            Err(StoreError::Backend(format!("commit failed: {e}"))),
        )
    }));
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Applies a job's writes in order, stopping at the first that fails. Consecutive events of
/// one execution become one row: a commit stores what an execution emitted since its last
/// commit as one insert, not one per event; the events that follow an execution's creation
/// go in its own row (schema 5).
fn apply_all(tx: &rusqlite::Transaction<'_>, writes: &[Write]) -> StoreResult<usize> {
    let mut rows = 0;
    let mut rest = writes;
    while let Some(first) = rest.first() {
        let taken = match first {
            Write::AppendEvent(head) => {
                let head = &head.value;
                let run = event_run(rest, &head.execution_id, head.sequence);
                rows += append_events(tx, &run)?;
                run.len()
            }
            Write::CreateExecution(created) => {
                let first_events = event_run(&rest[1..], &created.value.id, 1);
                rows += create_execution(tx, created, &first_events)?;
                1 + first_events.len()
            }
            write => {
                rows += apply(tx, write)?;
                1
            }
        };
        rest = &rest[taken..];
    }
    Ok(rows)
}

/// The events at the head of `writes` that are `execution_id`'s, in sequence from `from`
/// with none missing.
fn event_run<'w>(
    writes: &'w [Write],
    execution_id: &str,
    from: u64,
) -> Vec<&'w WithJson<Arc<Event>>> {
    writes
        .iter()
        .zip(from..)
        .map_while(|(write, sequence)| match write {
            Write::AppendEvent(e)
                if &*e.value.execution_id == execution_id && e.value.sequence == sequence =>
            {
                Some(e)
            }
            _ => None,
        })
        .collect()
}

/// Inserts an execution's row with the events that follow its creation in the same job.
fn create_execution(
    tx: &rusqlite::Transaction<'_>,
    created: &WithJson<ExecutionRecord>,
    first_events: &[&WithJson<Arc<Event>>],
) -> StoreResult<usize> {
    let (e, record) = (&created.value, created.text()?);
    let (events, last) = match first_events.last() {
        Some(last) => (
            Some(events_text(first_events)?),
            Some(last.value.sequence as i64),
        ),
        None => (None, None),
    };
    tx.prepare_cached(
        "INSERT INTO executions (id, workflow_name, status, create_time, end_time, request_id, parent_id, record, first_events, first_events_last)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            e.id,
            e.workflow_name,
            status_name(e.status),
            micros(e.create_time),
            e.end_time.map(micros),
            e.request_id,
            e.parent_execution_id,
            record,
            events,
            last
        ])
    })
    .map_err(super::backend)
    .map(|_| 1 + first_events.len())
}

/// The JSON array of consecutive events of one execution.
fn events_text(events: &[&WithJson<Arc<Event>>]) -> StoreResult<String> {
    let elements = events
        .iter()
        .map(|e| e.text())
        .collect::<StoreResult<Vec<&str>>>()?;
    Ok(super::event_batch::join(&elements))
}

/// Stores consecutive events of one execution (in sequence order, none missing) as one row,
/// a JSON array.
fn append_events(
    tx: &rusqlite::Transaction<'_>,
    events: &[&WithJson<Arc<Event>>],
) -> StoreResult<usize> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(0);
    };
    let (first, last) = (&first.value, &last.value);
    let text = events_text(events)?;
    tx.prepare_cached(
        "INSERT INTO event_batches (execution_id, last_sequence, first_sequence, events)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            first.execution_id,
            last.sequence as i64,
            first.sequence as i64,
            text
        ])
    })
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::OutOfOrder {
            execution_id: first.execution_id.to_string(),
            sequence: first.sequence,
            last: last.sequence,
        },
        _ => StoreError::Backend(e.to_string()),
    })
    .map(|_| events.len())
}

/// The text every UUIDv7 id created before `micros` (since 1970) sorts below: its first
/// 48 bits are the creation's millisecond, written as `xxxxxxxx-xxxx`. Ids of that very
/// millisecond sort above it and wait for the next purge.
pub(super) fn uuid_v7_prefix(micros: i64) -> String {
    let ms = micros.max(0) / 1000;
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

fn apply(tx: &rusqlite::Transaction<'_>, write: &Write) -> StoreResult<usize> {
    let backend = |e: rusqlite::Error| StoreError::Backend(e.to_string());
    match write {
        Write::SaveWorkflow(w) => {
            let record = json(w)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO workflows (name, version, record) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![w.name, w.version, record]))
            .map_err(backend)
        }
        Write::DeleteWorkflow(name) => tx
            .prepare_cached("DELETE FROM workflows WHERE name = ?1")
            .and_then(|mut s| s.execute(params![name]))
            .map_err(backend),
        Write::CreateExecution(created) => create_execution(tx, created, &[]),
        Write::UpdateExecution(with_json) => {
            let (e, record) = (&with_json.value, with_json.text()?);
            let n = tx
                .prepare_cached(
                    "UPDATE executions SET status = ?2, end_time = ?3, record = ?4 WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        e.id,
                        status_name(e.status),
                        e.end_time.map(micros),
                        record
                    ])
                })
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::ExecutionNotFound(e.id.clone()));
            }
            Ok(n)
        }
        Write::AppendEvent(event) => append_events(tx, &[event]),
        Write::PurgeEndedBefore(before) => {
            // Only ids created before the cutoff can have ended before it (schema 4).
            let below = uuid_v7_prefix(*before);
            tx.prepare_cached(
                "DELETE FROM event_batches WHERE execution_id IN
                   (SELECT id FROM executions
                    WHERE id < ?2 AND end_time IS NOT NULL AND end_time < ?1)",
            )
            .and_then(|mut s| s.execute(params![before, below]))
            .map_err(backend)?;
            tx.prepare_cached(
                "DELETE FROM executions WHERE id < ?2 AND end_time IS NOT NULL AND end_time < ?1",
            )
            .and_then(|mut s| s.execute(params![before, below]))
            .map_err(backend)
        }
    }
}
