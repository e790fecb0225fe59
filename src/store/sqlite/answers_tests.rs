//! Where the writer's answers run: on the runtime the store was opened in (through its I/O
//! driver), in commit order; on the writer thread when there is no runtime.

use std::sync::{Arc, Mutex, mpsc};

use super::SqliteStore;
use crate::store::fixtures::record;
use crate::store::{ExecutionStatus, Store, StoreResult, StoreWrite};

fn create(id: &str) -> Vec<StoreWrite> {
    vec![StoreWrite::CreateExecution(Box::new(record(
        id,
        ExecutionStatus::Running,
        None,
    )))]
}

/// Commits one execution's creation and reports, from inside its answer, the thread the
/// answer ran on and the result.
fn thread_of_answer(
    store: &Arc<SqliteStore>,
    id: &str,
) -> mpsc::Receiver<(String, StoreResult<()>)> {
    let (tx, rx) = mpsc::channel();
    store.clone().write_batch_then(
        create(id),
        Box::new(move |result| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            let _ = tx.send((thread, result));
        }),
    );
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_run_on_the_runtime_in_commit_order_and_stop_with_the_store() {
    let runtime = tokio::runtime::Handle::current().metrics();
    let tasks_before = runtime.num_alive_tasks();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    assert_eq!(
        runtime.num_alive_tasks(),
        tasks_before + 1,
        "one task runs the answers"
    );

    let answered = thread_of_answer(&store, "0001-where");
    let (thread, result) = tokio::task::spawn_blocking(move || answered.recv().unwrap())
        .await
        .unwrap();
    result.unwrap();
    assert_ne!(thread, "wfm-store-writer", "answered on the writer thread");
    assert!(thread.starts_with("tokio-"), "answered on {thread:?}");

    // Many commits in flight at once: their answers come in the order they were sent.
    let order = Arc::new(Mutex::new(Vec::new()));
    let (done, all_done) = tokio::sync::oneshot::channel();
    let done = Arc::new(Mutex::new(Some(done)));
    let count = 500;
    for i in 0..count {
        let (order, done) = (order.clone(), done.clone());
        store.clone().write_batch_then(
            create(&format!("0002-order-{i:04}")),
            Box::new(move |result| {
                result.unwrap();
                let mut order = order.lock().unwrap();
                order.push(i);
                if order.len() == count {
                    let _ = done.lock().unwrap().take().unwrap().send(());
                }
            }),
        );
    }
    all_done.await.unwrap();
    assert_eq!(*order.lock().unwrap(), (0..count).collect::<Vec<_>>());

    drop(store);
    for _ in 0..200 {
        if runtime.num_alive_tasks() == tasks_before {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the task that runs the answers outlived the store");
}

#[test]
fn a_store_opened_outside_a_runtime_answers_on_its_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let (thread, result) = thread_of_answer(&store, "0003-no-runtime").recv().unwrap();
    result.unwrap();
    assert_eq!(thread, "wfm-store-writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_panics_does_not_stop_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store.clone().write_batch_then(
        create("0004-panics"),
        Box::new(|_| panic!("a bug in one answer")),
    );
    let answered = thread_of_answer(&store, "0005-after");
    let (_, result) = tokio::task::spawn_blocking(move || answered.recv().unwrap())
        .await
        .unwrap();
    result.unwrap();
}
