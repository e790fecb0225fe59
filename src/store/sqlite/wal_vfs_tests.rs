//! The WAL-coalescing VFS: a commit's frames reach the kernel in one write, and what is
//! committed through it is what any SQLite reads back, however large the transaction.

use rusqlite::{Connection, OpenFlags, params};

use super::wal_vfs;

/// Write system calls made by this thread so far (Linux's per-thread I/O accounting).
fn writes_by_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("syscw: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("syscw in /proc/thread-self/io")
}

fn open(dir: &std::path::Path, vfs: &str) -> Connection {
    wal_vfs::register().unwrap();
    let conn =
        Connection::open_with_flags_and_vfs(dir.join("t.db"), OpenFlags::default(), vfs).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )
    .unwrap();
    conn
}

/// The write calls the commit of `rows` rows of 3,000 bytes makes (one page each).
fn writes_of_one_commit(conn: &mut Connection, first: i64, rows: i64) -> u64 {
    let tx = conn.transaction().unwrap();
    for n in first..first + rows {
        tx.execute(
            "INSERT INTO t (n, body) VALUES (?1, zeroblob(3000))",
            params![n],
        )
        .unwrap();
    }
    let before = writes_by_this_thread();
    tx.commit().unwrap();
    writes_by_this_thread() - before
}

#[test]
fn a_commit_of_many_pages_reaches_the_wal_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = open(dir.path(), "unix");
    writes_of_one_commit(&mut plain, 0, 1);
    let unix_writes = writes_of_one_commit(&mut plain, 1, 20);
    assert!(
        unix_writes >= 40,
        "SQLite's own VFS writes a frame's header and its page apart: {unix_writes} writes"
    );
    drop(plain);

    let dir = tempfile::tempdir().unwrap();
    let mut coalesced = open(dir.path(), wal_vfs::NAME);
    writes_of_one_commit(&mut coalesced, 0, 1);
    let writes = writes_of_one_commit(&mut coalesced, 1, 20);
    assert_eq!(writes, 1, "20 pages committed in {writes} writes");
}

#[test]
fn a_transaction_larger_than_what_is_held_commits_whole_and_reads_back_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open(dir.path(), wal_vfs::NAME);
    // ~6 MB: more than one write takes, more than the VFS holds, and more than SQLite's
    // page cache, which spills pages into the WAL and reads them back before the commit.
    let tx = conn.transaction().unwrap();
    for n in 0..2000_i64 {
        tx.execute(
            "INSERT INTO t (n, body) VALUES (?1, randomblob(3000))",
            params![n],
        )
        .unwrap();
    }
    tx.execute("UPDATE t SET body = zeroblob(3000) WHERE n % 7 = 0", [])
        .unwrap();
    tx.commit().unwrap();
    let digest = |c: &Connection| -> (i64, i64) {
        c.query_row(
            "SELECT COUNT(*), SUM(length(body)) FROM t WHERE n % 7 != 0 OR body = zeroblob(3000)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(digest(&conn), (2000, 6_000_000));

    // Another connection through SQLite's own VFS, as `sqlite3` would open it, while the
    // WAL still holds the transaction; then again after it is folded into the file.
    let other = Connection::open(dir.path().join("t.db")).unwrap();
    assert_eq!(digest(&other), (2000, 6_000_000));
    drop(other);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let reopened = Connection::open(dir.path().join("t.db")).unwrap();
    assert_eq!(digest(&reopened), (2000, 6_000_000));
    let check: String = reopened
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
