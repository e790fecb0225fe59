//! Durable history: every workflow and execution survives a restart, and executions that
//! were running when the process was killed are resumed without running a completed step twice.

mod common;

use std::{collections::HashMap, process::Command, time::Duration};

use common::*;
use serde_json::json;
use wfm::proto::{self, execution_event::Kind};

#[tokio::test]
async fn workflows_and_executions_survive_a_restart() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;
    register(&mut client, "nap", "sleep", json!({})).await;
    register(
        &mut client,
        "nap",
        "sleep",
        json!({"default_duration_ms": 5}),
    )
    .await;
    let events = execute(&mut client, "echo", json!({"n": 1})).await;
    let id = events[0].execution_id.clone();
    drop(client);

    let server = Server::start_in(server.kill_keep_dir(), &[], &[]);
    let mut client = server.client().await;
    let got = client
        .get(proto::GetRequest {
            name: "nap".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.versions, vec![1, 2]);
    let listed = client
        .list(proto::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .workflows;
    assert_eq!(
        listed.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["echo", "nap"]
    );
    let exec = client
        .get_execution(proto::GetExecutionRequest {
            execution_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(exec.status, proto::ExecutionStatus::Completed as i32);
    assert_eq!(exec.last_sequence, 5);
    assert_eq!(output_json(&exec.result.unwrap().output), json!({"n": 1}));
    // The whole history replays, from the start and from the middle.
    let replay = watch_all(&mut client, &id, 0).await;
    assert_eq!(labels(&replay), labels(&events));
    assert_eq!(replay, events);
    let tail = watch_all(&mut client, &id, 3).await;
    assert_eq!(tail.iter().map(|e| e.sequence).collect::<Vec<_>>(), [4, 5]);
    // Restored workflows run.
    let events = tokio::time::timeout(
        Duration::from_secs(60),
        execute(&mut client, "nap", json!({})),
    )
    .await
    .expect("the next execution ends: it is not queued behind the failed one");
    assert_eq!(labels(&events).last().unwrap(), "completed");
}

#[tokio::test]
async fn killed_while_200_run_then_every_one_finishes_without_rerunning_a_step() {
    const RUNS: usize = 200;
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "steps", "sleep", json!({})).await;
    let mut ids = Vec::new();
    for i in 0..RUNS {
        let started = client
            .start_execution(proto::StartExecutionRequest {
                name: "steps".into(),
                // Long enough that none ends between the status check below and the kill,
                // even for the first started on a loaded machine.
                input: json_struct(json!({"duration_ms": 800, "steps": 4})),
                request_id: format!("run-{i}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(started.execution_id);
    }
    // Let them get into their steps, then kill -9.
    tokio::time::sleep(Duration::from_millis(900)).await;
    // The ones that completed, in one call right before the kill: what was not among them
    // was running at the kill.
    let completed: std::collections::HashSet<String> = client
        .list_executions(proto::ListExecutionsRequest {
            workflow_name: "steps".into(),
            status: proto::ExecutionStatus::Completed as i32,
            page_size: RUNS as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .executions
        .into_iter()
        .map(|e| e.id)
        .collect();
    let running_at_kill: Vec<bool> = ids.iter().map(|id| !completed.contains(id)).collect();
    let running = running_at_kill.iter().filter(|r| **r).count();
    assert!(
        running >= RUNS / 2,
        "only {running} of {RUNS} were running at the kill"
    );
    drop(client);
    let dir = server.kill_keep_dir();

    let server = Server::start_in(dir, &[], &[]);
    let mut client = server.client().await;
    let mut resumed_with_reuse = 0;
    for (id, was_running) in ids.iter().zip(running_at_kill) {
        let events = watch_all(&mut client, id, 0).await;
        assert_gap_free(&events);
        let labels = labels(&events);
        assert_eq!(labels.last().unwrap(), "completed", "{id}: {labels:?}");
        // A second attempt, marked as such.
        let attempts: Vec<i32> = events
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::Started(s)) => Some(s.attempt),
                _ => None,
            })
            .collect();
        let expected: &[i32] = if was_running { &[1, 2] } else { &[1] };
        assert_eq!(attempts, expected, "{id}: {labels:?}");
        // Every step completed exactly once, and none that had completed started again.
        let mut completed: HashMap<String, usize> = HashMap::new();
        let mut started_after_completion = Vec::new();
        for e in &events {
            match &e.kind {
                Some(Kind::StepCompleted(s)) => {
                    *completed.entry(s.step_id.clone()).or_default() += 1
                }
                Some(Kind::StepStarted(s)) if completed.contains_key(&s.step_id) => {
                    started_after_completion.push(s.step_id.clone())
                }
                _ => {}
            }
        }
        assert!(
            started_after_completion.is_empty(),
            "{id}: re-ran {started_after_completion:?}"
        );
        for n in 1..=4 {
            assert_eq!(
                completed.get(&format!("sleep-{n}")),
                Some(&1),
                "{id}: {labels:?}"
            );
        }
        if let Some(restart_at) = events
            .iter()
            .position(|e| matches!(&e.kind, Some(Kind::Started(s)) if s.attempt == 2))
            && events[..restart_at]
                .iter()
                .any(|e| label(e) == "step_completed:sleep-1")
        {
            resumed_with_reuse += 1;
        }
        let result = result_of(events.last().unwrap());
        assert_eq!(result.steps_completed, 4);
    }
    // The kill came after the first step of most runs: they reused it.
    assert!(
        resumed_with_reuse > 0,
        "no execution had completed a step before the kill"
    );
    let listed = client
        .list_executions(proto::ListExecutionsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.executions.len(), RUNS);
    assert!(
        listed
            .executions
            .iter()
            .all(|e| e.status == proto::ExecutionStatus::Completed as i32)
    );
}

fn serve_fails(data_dir: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("wfm runs");
    assert!(!output.status.success(), "wfm must refuse to start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn refuses_a_data_directory_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let stderr = serve_fails(&file);
    assert!(stderr.contains("cannot use data directory"), "{stderr}");
    assert!(stderr.contains("Not a directory"), "{stderr}");
}

#[test]
fn refuses_a_database_from_a_newer_version_and_a_corrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("wfm.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let stderr = serve_fails(dir.path());
    assert!(
        stderr.contains("schema version 99, newer than this wfm knows"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    let db = dir.path().join("wfm.db");
    std::fs::write(&db, &garbage).unwrap();
    let stderr = serve_fails(dir.path());
    assert!(
        stderr.contains("is not a readable wfm database"),
        "{stderr}"
    );
    assert!(stderr.contains("will not overwrite it"), "{stderr}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the file is left as it was"
    );
}

/// A `wfm.db` this user may not write is refused at start, naming the file: SQLite would
/// open it read-only, silently, and the server would answer SERVING and fail every write.
/// As root, mode bits do not stop a write, so the file is made immutable (`chattr +i`);
/// where that is not permitted either, there is no way to make the file read-only for
/// this user and the test says so and stops.
#[test]
fn refuses_a_database_it_cannot_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wfm.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
        .unwrap();
    let is_root = std::fs::metadata(&db).unwrap().uid() == 0;
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&db)
            .status()
            .is_ok_and(|s| s.success())
    };
    if is_root {
        if !chattr("+i") {
            eprintln!("SKIPPED: running as root without the right to make a file immutable");
            return;
        }
    } else {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let stderr = serve_fails(dir.path());
    if is_root {
        chattr("-i");
    }
    assert!(
        stderr.contains(&format!(
            "cannot write {}: the file is read-only for this user",
            db.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn retention_purges_old_executions_but_keeps_workflows() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;
    let id = execute(&mut client, "echo", json!({}))
        .await
        .remove(0)
        .execution_id;
    drop(client);
    // The purge runs before the server listens, then every minute.
    let server = Server::start_in(server.kill_keep_dir(), &[("WFM_RETENTION", "1ms")], &[]);
    let mut client = server.client().await;
    let err = client
        .get_execution(proto::GetExecutionRequest { execution_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        client
            .get(proto::GetRequest {
                name: "echo".into(),
                version: 0
            })
            .await
            .is_ok()
    );
}

/// A second server on the data directory of a running one is refused before it resumes
/// anything (it would run the first one's executions a second time); once the first is
/// gone, however it went, the directory is free.
#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_is_refused() {
    let first = Server::start().await;
    let stderr = serve_fails(first.data_dir());
    assert!(
        stderr.contains(&format!(
            "is in use by another wfm (pid {}): two servers on one data directory would run the same executions twice",
            first.pid()
        )),
        "{stderr}"
    );
    let mut c = first.client().await;
    c.list(proto::ListRequest::default())
        .await
        .expect("the first server still serves");

    let dir = first.kill_keep_dir();
    let again = Server::start_in(dir, &[], &[]);
    again
        .client()
        .await
        .list(proto::ListRequest::default())
        .await
        .expect("a server starts on the directory once the first is killed");
}

/// An upgrade that keeps in-flight work: Shutdown with `resume_unfinished` stops what
/// outlasts the grace period where it is (nothing says cancelled), and the next server on
/// the data directory finishes it without re-running the step it had completed.
#[tokio::test]
async fn a_shutdown_can_leave_running_executions_for_the_next_server() {
    let mut server = Server::start().await;
    let (id, report) = shut_down_after_a_first_step(&server).await;
    assert_eq!(
        (
            report.finished_during_grace,
            report.cancelled,
            report.left_to_resume
        ),
        (0, 0, 1)
    );
    assert!(server.wait_exit(Duration::from_secs(10)).success());

    let server = Server::start_in(server.kill_keep_dir(), &[], &[]);
    let events = watch_all(&mut server.client().await, &id, 0).await;
    assert_gap_free(&events);
    let labels = labels(&events);
    assert_eq!(
        labels.last().map(String::as_str),
        Some("completed"),
        "{labels:?}"
    );
    assert!(!labels.iter().any(|l| l == "cancelled"), "{labels:?}");
    let attempts: Vec<i32> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Started(s)) => Some(s.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2], "{labels:?}");
    for step in ["sleep-1", "sleep-2", "sleep-3"] {
        let completed = format!("step_completed:{step}");
        let started = format!("step_started:{step}");
        assert_eq!(
            labels.iter().filter(|l| **l == completed).count(),
            1,
            "{labels:?}"
        );
        let first_completion = labels.iter().position(|l| *l == completed).unwrap();
        assert!(
            !labels[first_completion..].contains(&started),
            "{step} ran again: {labels:?}"
        );
    }
}

/// The in-memory store keeps nothing for a next server: there the same request cancels.
#[tokio::test]
async fn with_the_memory_store_a_shutdown_cancels_what_it_cannot_leave() {
    let server = Server::start_with(&[("WFM_STORE", "memory")], &[]).await;
    let (_, report) = shut_down_after_a_first_step(&server).await;
    assert_eq!(
        (
            report.finished_during_grace,
            report.cancelled,
            report.left_to_resume
        ),
        (0, 1, 0)
    );
}

/// Starts a run of three 400 ms steps, waits for its first step to complete, then asks
/// for a shutdown with a 50 ms grace period that leaves what is unfinished to resume.
async fn shut_down_after_a_first_step(server: &Server) -> (String, proto::ShutdownResponse) {
    let mut client = server.client().await;
    register(&mut client, "steps", "sleep", json!({})).await;
    let id = client
        .start_execution(proto::StartExecutionRequest {
            name: "steps".into(),
            input: json_struct(json!({"duration_ms": 400, "steps": 3})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    let mut watch = client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(r) = watch.message().await.unwrap() {
        if label(&r.event.unwrap()) == "step_completed:sleep-1" {
            break;
        }
    }
    let report = client
        .shutdown(proto::ShutdownRequest {
            grace_period: Some(prost_types::Duration {
                seconds: 0,
                nanos: 50_000_000,
            }),
            resume_unfinished: Some(true),
        })
        .await
        .unwrap()
        .into_inner();
    (id, report)
}

/// A server that cannot serve (its port taken, its TLS files unusable) fails before it
/// resumes anything: otherwise the dead process would have started the unfinished
/// executions a second time, re-running their steps, before the next server ran them again.
#[tokio::test]
async fn a_server_that_cannot_serve_resumes_nothing() {
    let server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let id = client
        .start_execution(proto::StartExecutionRequest {
            name: "nap".into(),
            input: json_struct(json!({"duration_ms": 60_000})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    let mut watch = client
        .watch_execution(proto::WatchExecutionRequest {
            execution_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(r) = watch.message().await.unwrap() {
        if label(&r.event.unwrap()).starts_with("step_started") {
            break;
        }
    }
    drop((watch, client));
    let dir = server.kill_keep_dir();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args([
            "serve",
            "--listen",
            &taken.local_addr().unwrap().to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("wfm runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");

    let not_pem = dir.path().join("not-a-certificate.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wfm"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WFM_TLS__CERT", &not_pem)
        .env("WFM_TLS__KEY", &not_pem)
        .output()
        .expect("wfm runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot serve TLS with the configured files")
            && stderr.contains("not-a-certificate.pem"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "announced before failing: {stdout}"
    );

    let server = Server::start_in(dir, &[], &[]);
    let mut client = server.client().await;
    let attempts = cancel_and_list_attempts(&mut client, &id).await;
    assert_eq!(attempts, [1, 2], "only the server that serves resumes it");
}

/// SIGTERM waits out the grace period; a second signal stops the server at once, and the
/// next start resumes what was running.
#[tokio::test]
async fn a_second_signal_stops_at_once_and_the_next_start_resumes() {
    let mut server = Server::start_with(&[("WFM_SHUTDOWN_GRACE", "1h")], &[]).await;
    let mut client = server.client().await;
    register(&mut client, "nap", "sleep", json!({})).await;
    let id = client
        .start_execution(proto::StartExecutionRequest {
            name: "nap".into(),
            input: json_struct(json!({"duration_ms": 600_000})),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .execution_id;
    drop(client);
    server.signal("TERM");
    // The first signal is being handled (a drain of up to an hour) before the second comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "{status:?}");
    let dir = server.kill_keep_dir();

    let server = Server::start_in(dir, &[], &[]);
    let mut client = server.client().await;
    let attempts = cancel_and_list_attempts(&mut client, &id).await;
    assert_eq!(attempts, [1, 2]);
}

/// Cancels a resumed execution (the test is over) and gives the attempts its Started
/// events counted.
async fn cancel_and_list_attempts(client: &mut Client, id: &str) -> Vec<i32> {
    client
        .cancel_execution(proto::CancelExecutionRequest {
            execution_id: id.to_string(),
            reason: "test over".into(),
        })
        .await
        .unwrap();
    watch_all(client, id, 0)
        .await
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Started(s)) => Some(s.attempt),
            _ => None,
        })
        .collect()
}

/// The offline backup of docs/operations.md: once wfm has stopped, its database file alone
/// holds everything (its write-ahead log is folded in and emptied at the stop), so a copy of
/// `wfm.db` without `-wal`/`-shm` restores every workflow and execution.
#[tokio::test]
async fn a_stopped_servers_database_file_alone_holds_everything() {
    let mut server = Server::start().await;
    let mut client = server.client().await;
    register(&mut client, "echo", "echo", json!({})).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let events = execute(&mut client, "echo", json!({ "n": n })).await;
        ids.push(events[0].execution_id.clone());
    }
    client
        .shutdown(proto::ShutdownRequest::default())
        .await
        .expect("shutdown");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    let dir = server.kill_keep_dir();
    let wal = dir.path().join("wfm.db-wal");
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_bytes, 0, "the WAL is emptied at the stop");

    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("wfm.db"), restored.path().join("wfm.db")).unwrap();
    let server = Server::start_in(restored, &[], &[]);
    let mut client = server.client().await;
    let listed = client
        .list_executions(proto::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .executions;
    let mut found: Vec<String> = listed.into_iter().map(|e| e.id).collect();
    found.sort();
    ids.sort();
    assert_eq!(found, ids, "every execution is in the copied file");
    let workflow = client
        .get(proto::GetRequest {
            name: "echo".into(),
            version: 0,
        })
        .await
        .expect("the workflow is in the copied file");
    assert_eq!(workflow.into_inner().workflow.unwrap().version, 1);
}

/// The commit of an execution's terminal event fails (a trigger makes SQLite refuse it, a
/// real failure of the real writer). The execution must end all the same: its concurrency
/// slot is given back, so the next execution of a workflow limited to one is not queued
/// behind a ghost, and a shutdown does not wait for it.
#[tokio::test]
async fn a_terminal_event_that_cannot_be_written_still_ends_its_execution() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .register(proto::RegisterRequest {
            name: "nap".into(),
            source: native("sleep", json!({"default_duration_ms": 300})),
            max_concurrency: 1,
            ..Default::default()
        })
        .await
        .expect("register");
    let db = rusqlite::Connection::open(server.data_dir().join("wfm.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_the_end BEFORE UPDATE ON executions
         WHEN NEW.status = 'completed' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .unwrap();

    let mut stream = client
        .execute(execute_request("nap", json!({})))
        .await
        .expect("the execution starts: its first commit is an insert")
        .into_inner();
    let mut seen = Vec::new();
    let end = loop {
        match stream.message().await {
            Ok(Some(r)) => seen.push(label(&r.event.expect("event"))),
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert_eq!(
        seen.last().map(String::as_str),
        Some("step_completed:sleep"),
        "every durable event is sent, and the terminal one, which is not, is not: {seen:?} (then {end:?})"
    );

    db.execute_batch("DROP TRIGGER refuse_the_end").unwrap();
    let events = tokio::time::timeout(
        Duration::from_secs(60),
        execute(&mut client, "nap", json!({})),
    )
    .await
    .expect("the next execution ends: it is not queued behind the failed one");
    let labels = labels(&events);
    assert!(
        labels[..2] == ["accepted", "started"] && labels.last().unwrap() == "completed",
        "the next execution runs at once (not queued): the failed one gave its slot back: {labels:?}"
    );

    // Generous: a shutdown waiting for the ghost would wait for ever.
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        client.shutdown(proto::ShutdownRequest::default()),
    )
    .await
    .expect("the shutdown waits for no execution")
    .expect("shutdown")
    .into_inner();
    assert_eq!(
        (report.cancelled, report.left_to_resume),
        (0, 0),
        "{report:?}"
    );
}
