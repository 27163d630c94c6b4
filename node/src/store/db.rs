//! The SQLite database with group commit: one writer thread runs every queued write in one
//! transaction (each in its own savepoint), so many small deliveries share one fsync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

/// The most writes committed together in one transaction.
pub const MAX_GROUP_COMMIT: usize = 512;
/// How long a connection waits for another one's lock (a CLI command writing, say).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long emptying the write-ahead log waits for readers to finish: every write waits
/// meanwhile.
const TRUNCATE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);
/// Prepared statements kept per connection: every statement the node runs often, so none
/// is parsed again for each document.
const STATEMENT_CACHE: usize = 128;

type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Done) + Send>;

/// What the writer thread is asked to do.
enum Work {
    /// A write, run in the next group transaction.
    Job(Job),
    /// Empty the write-ahead log once the group is committed (see [`Db::truncate_wal`]).
    TruncateWal(Done),
}

/// A handle to the database: cheap to clone, usable from async code.
#[derive(Debug, Clone)]
pub struct Db {
    jobs: mpsc::Sender<Work>,
    reader: Arc<Mutex<Connection>>,
    /// The database file, for saying whose disk is full.
    path: PathBuf,
}

/// What a commit that failed because the disk is full says (SQLite's `SQLITE_FULL`): the
/// commit's error reaches its jobs as text.
const COMMIT_DISK_FULL: &str = "database or disk is full";

/// Whether a store write failed because the disk is full: SQLite's `SQLITE_FULL`, from a job
/// or from the group's commit.
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
            || cause.to_string().contains(COMMIT_DISK_FULL)
    })
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_documents (
    doc_id TEXT PRIMARY KEY,
    blob TEXT NOT NULL,
    sealed_len INTEGER NOT NULL,
    label TEXT NOT NULL,
    created INTEGER NOT NULL,
    queued_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    doc_id TEXT NOT NULL REFERENCES outbox_documents(doc_id),
    recipient TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'undeliverable')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_error TEXT,
    delivered_at INTEGER,
    PRIMARY KEY (doc_id, recipient)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS receipts (
    doc_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    receipt BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, recipient)
);
CREATE TABLE IF NOT EXISTS inbox (
    doc_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    blob TEXT NOT NULL,
    sealed_len INTEGER NOT NULL,
    label TEXT NOT NULL,
    created INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    verification TEXT NOT NULL,
    receipt BLOB NOT NULL,
    forwarded_by TEXT,
    not_after INTEGER,
    PRIMARY KEY (doc_id, sender)
);
CREATE TABLE IF NOT EXISTS roster_history (
    serial INTEGER PRIMARY KEY,
    adopted_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    file BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    doc_id TEXT,
    agency TEXT,
    detail TEXT
);
";

impl Db {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = open_writer(path)?;
        let reader = open_reader(path)?;
        let (jobs, rx) = mpsc::channel::<Work>();
        thread::Builder::new()
            .name("liaise-db-writer".into())
            .spawn(move || writer_loop(writer, &rx))
            .context("cannot start the database writer")?;
        Ok(Self {
            jobs,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` inside the next group transaction; returns once it is committed durably.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let result = f(conn);
            let ok = result.is_ok();
            let done = Box::new(move |committed: Result<(), String>| {
                let out = match (committed, result) {
                    (Ok(()), r) => r,
                    (Err(e), _) => Err(anyhow!("database commit failed: {e}")),
                };
                let _ = tx.send(out);
            }) as Done;
            (ok, done)
        });
        self.jobs
            .send(Work::Job(job))
            .map_err(|_| anyhow!("the database writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("the database writer has stopped"))?
            .map_err(|e| self.disk_full_said(e))
    }

    /// `e`, with, if it is a full disk, what that means and what to do, first: the caller (an
    /// `open` asking for a key share, a `send`) is not to blame, nor any peer. The cause stays
    /// in the chain, so [`is_disk_full`] still tells it apart (a receiving node answers its
    /// peer `DiskFull` by it, which names no path of this node).
    fn disk_full_said(&self, e: anyhow::Error) -> anyhow::Error {
        if !is_disk_full(&e) {
            return e;
        }
        let dir = self.path.parent().unwrap_or(&self.path);
        e.context(format!(
            "this node's disk is full: its store ({}) cannot record anything more; free space \
             on that disk, then try again",
            dir.display()
        ))
    }

    /// Copies every page in the write-ahead log into the database file and truncates the log
    /// to nothing, once the writes queued before are committed. For after shredding: the log
    /// still holds the page images from before the overwrite (sealed with the custody key,
    /// but there), until it is checkpointed and reset. Waits [`TRUNCATE_BUSY_TIMEOUT`] for
    /// readers to finish; fails if one still holds an old snapshot then.
    pub async fn truncate_wal(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        let done = Box::new(move |outcome: Result<(), String>| {
            let _ = tx.send(outcome);
        }) as Done;
        self.jobs
            .send(Work::TruncateWal(done))
            .map_err(|_| anyhow!("the database writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("the database writer has stopped"))?
            .map_err(|e| anyhow!("cannot empty the database's write-ahead log: {e}"))
    }

    /// Runs a read on the read connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .map_err(|_| anyhow!("database reader poisoned"))?;
            f(&conn)
        })
        .await
        .context("database read task failed")?
    }
}

/// A writing connection with the store's settings and schema: the daemon's writer thread,
/// and the CLI where it must record something with or without a running node (SQLite's
/// locking and the busy timeout keep the two apart). `secure_delete` is on, so deleted rows
/// (shredded key shares) are overwritten, not just unlinked.
pub fn open_writer(path: &Path) -> Result<Connection> {
    let writer = Connection::open(path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    writer.busy_timeout(BUSY_TIMEOUT)?;
    writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;",
        )
        .context("cannot configure the database")?;
    writer
        .execute_batch(SCHEMA)
        .and_then(|()| writer.execute_batch(crate::log::SCHEMA))
        .and_then(|()| writer.execute_batch(crate::log::WITNESS_SCHEMA))
        .and_then(|()| writer.execute_batch(super::custody::SCHEMA))
        .and_then(|()| writer.execute_batch(super::forwards::SCHEMA))
        .and_then(|()| writer.execute_batch(super::held::SCHEMA))
        .and_then(|()| writer.execute_batch(super::holdings::SCHEMA))
        .context("cannot create the database schema")?;
    migrate(&writer).context("cannot update the database schema")?;
    configure(&writer)?;
    Ok(writer)
}

/// What every store connection has:
/// - temporary data in memory: the copies of pages each job's savepoint keeps for its
///   rollback, and a large sort's runs, would otherwise spill into unlinked files in the
///   system's temporary folder, outside the store and out of `secure_delete`'s reach (tens of
///   megabytes for a thousand small sends);
/// - `rarray`, a list of values as a table, for "not one of these rows" (the outbox rows in
///   flight) without building SQL text;
/// - each cached statement keeps its query plan whatever values are bound. The bundled SQLite
///   is built with STAT4, under which a statement whose plan might depend on a bound value
///   (the outbox's "due before now") is compiled again every time that value changes: the
///   largest part of a due-delivery read in a profile of many small sends.
fn configure(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA temp_store = MEMORY;")
        .context("cannot configure the database")?;
    rusqlite::vtab::array::load_module(conn).context("cannot configure the database")?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .context("cannot configure the database")?;
    Ok(())
}

/// Brings a store written by an earlier version up to [`SCHEMA`]: columns added since.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
        for name in names {
            if name? == column {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if !has_column("inbox", "forwarded_by")? {
        conn.execute_batch("ALTER TABLE inbox ADD COLUMN forwarded_by TEXT")?;
    }
    if !has_column("inbox", "not_after")? {
        conn.execute_batch("ALTER TABLE inbox ADD COLUMN not_after INTEGER")?;
    }
    if !has_column("log_witnessed", "signing_key")? {
        copy_witness_tables(conn, &has_column)?;
    }
    super::holdings::count_earlier_copies(conn)
}

/// Copies the witness tables into their form with the owner's signing key. Checked again and
/// copied under the write lock (an immediate transaction): a CLI command and a starting node
/// that both saw the old tables must not both copy them.
fn copy_witness_tables(
    conn: &Connection,
    has_column: &dyn Fn(&str, &str) -> rusqlite::Result<bool>,
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let copied = has_column("log_witnessed", "signing_key").and_then(|done| {
        if done {
            Ok(())
        } else {
            crate::log::migrate_witness_keys(conn)
        }
    });
    match copied {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A read-only connection (for the CLI, which may run while the daemon writes).
pub fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    configure(&conn)?;
    Ok(conn)
}

fn writer_loop(mut conn: Connection, rx: &mpsc::Receiver<Work>) {
    while let Ok(first) = rx.recv() {
        let (mut batch, mut truncations) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(work) = next.take() {
            match work {
                Work::Job(job) => batch.push(job),
                Work::TruncateWal(done) => truncations.push(done),
            }
            if batch.len() < MAX_GROUP_COMMIT {
                next = rx.try_recv().ok();
            }
        }
        let mut done = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            // Immediate: the write lock is taken (waiting while a CLI command writes) before
            // the first read. A deferred transaction that read first could not become a
            // writer after another connection wrote: SQLite fails that at once, busy timeout
            // or not, and every job in the group would fail with "database is locked".
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for job in batch.drain(..) {
                // Savepoint statements are prepared once, not parsed again for every job.
                tx.prepare_cached("SAVEPOINT job")?.execute([])?;
                let (ok, callback) = job(&tx);
                // A failed job rolls back only its own savepoint; its callback carries its error.
                if !ok {
                    tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
                }
                tx.prepare_cached("RELEASE job")?.execute([])?;
                done.push(callback);
            }
            tx.commit()
        })();
        let status = outcome.map_err(|e| e.to_string());
        for callback in done {
            callback(status.clone());
        }
        // Jobs left in `batch` (if the transaction could not even start) are failed by dropping
        // their senders.
        if !truncations.is_empty() {
            let outcome = truncate_wal(&conn);
            for done in truncations {
                done(outcome.clone());
            }
        }
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, outside any transaction: an error if a reader kept it
/// from completing. It holds the log's write lock while it waits for readers, so it waits
/// only [`TRUNCATE_BUSY_TIMEOUT`], not the writes' busy timeout: every write waits with it.
fn truncate_wal(conn: &Connection) -> Result<(), String> {
    conn.busy_timeout(TRUNCATE_BUSY_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    match checkpoint {
        Ok(0) => Ok(()),
        Ok(_) => Err("a reader kept it from completing".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_what_to_do_and_stays_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        for cause in [
            anyhow::Error::new(full),
            anyhow!("database commit failed: {COMMIT_DISK_FULL}"),
        ] {
            let said = db.disk_full_said(cause);
            assert!(is_disk_full(&said), "{said:#}");
            let line = format!("{said:#}");
            assert!(
                line.starts_with("this node's disk is full: its store ("),
                "{line}"
            );
            assert!(line.contains("free space on that disk"), "{line}");
        }
        let other = db.disk_full_said(anyhow!("no such table: nothing"));
        assert!(!is_disk_full(&other));
        assert_eq!(format!("{other:#}"), "no such table: nothing");
    }

    #[tokio::test]
    async fn group_commit_runs_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200_i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO events (at, kind) VALUES (?1, 'test')", [i])?;
                    Ok(i)
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as i64);
        }
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 200);
    }

    #[tokio::test]
    async fn a_group_that_reads_first_still_writes_after_another_process_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        // Another connection (a CLI command recording a key share) writes while a group is
        // between its first read and its first write.
        let (go, wait) = mpsc::channel::<()>();
        let (tried, told) = mpsc::channel::<bool>();
        let conn = open_writer(&path).unwrap();
        let other = thread::spawn(move || {
            wait.recv().unwrap();
            // Without waiting: the group holds the write lock from before its first read.
            conn.busy_timeout(std::time::Duration::ZERO).unwrap();
            let insert = "INSERT INTO events (at, kind) VALUES (1, 'cli')";
            let busy = matches!(
                conn.execute(insert, []),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy
            );
            tried.send(busy).unwrap();
            // Then as the CLI does: waiting its turn.
            conn.busy_timeout(BUSY_TIMEOUT).unwrap();
            conn.execute(insert, [])
        });
        let wrote = db
            .write(move |c| {
                let before: i64 = c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
                go.send(()).unwrap();
                let other_was_busy = told.recv().unwrap();
                c.execute("INSERT INTO events (at, kind) VALUES (2, 'node')", [])?;
                Ok((before, other_was_busy))
            })
            .await;
        assert_eq!(wrote.unwrap(), (0, true));
        assert_eq!(other.join().unwrap().unwrap(), 1);
        let kinds: Vec<String> = db
            .read(|c| {
                let mut stmt = c.prepare("SELECT kind FROM events ORDER BY id")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(kinds, ["node", "cli"]);
    }

    #[tokio::test]
    async fn emptying_the_log_leaves_no_overwritten_bytes_in_either_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        let secret = "a sealed key share, shredded".repeat(8);
        let kept = secret.clone();
        db.write(move |c| {
            c.execute(
                "INSERT INTO events (at, kind, detail) VALUES (1, 'share', ?1)",
                [kept],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        db.write(|c| {
            c.execute("DELETE FROM events WHERE kind = 'share'", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let holds = |suffix: &str| {
            let file = std::fs::read(dir.path().join(format!("t.db{suffix}"))).unwrap_or_default();
            file.windows(secret.len()).any(|w| w == secret.as_bytes())
        };
        // Deleted (and overwritten in the page, `secure_delete`), but the log keeps the old
        // page image.
        assert!(holds("-wal"));
        db.truncate_wal().await.unwrap();
        assert!(!holds("-wal"));
        assert!(!holds(""));
        assert_eq!(
            std::fs::metadata(dir.path().join("t.db-wal"))
                .unwrap()
                .len(),
            0
        );
        // The writer goes on as before.
        db.write(|c| Ok(c.execute("INSERT INTO events (at, kind) VALUES (2, 'after')", [])?))
            .await
            .unwrap();
    }
}
