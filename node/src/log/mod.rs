//! The node's tamper-evident log (spec: `docs/spec/log.md`). **The API other modules call.**
//!
//! Record something that happened with [`append`], inside the same database write as the
//! state change it describes, so both commit together or not at all:
//!
//! ```ignore
//! use crate::log::{self, LogKind, NewLogEntry};
//! // In the daemon (group-committed write):
//! node.store.db.write(move |c| {
//!     /* ... your own INSERT/UPDATE ... */
//!     log::append(c, NewLogEntry::new(LogKind::ShareReleased)
//!         .doc(document_id)            // [u8; 16]
//!         .agency(requester)           // AgencyId
//!         .reason(reason_text)         // the person's stated reason
//!         .detail(serde_json::json!({ "section": "annex" })))?;
//!     Ok(())
//! }).await?;
//! // In a CLI process (e.g. `liaise open --reason`), with or without a running node:
//! log::append_in_home(&home, NewLogEntry::new(LogKind::Open).doc(id).reason(why))?;
//! ```
//!
//! For [`LogKind::DeletionReceipt`], put the signed deletion receipt (its `Signed` encoding)
//! as hex in `detail.receipt`: `liaise evidence export` takes deletion receipts from there.
//!
//! Entries are hash-chained (`log_entries`, append-only: triggers refuse UPDATE and DELETE).
//! The daemon signs a checkpoint of the head regularly ([`checkpoints`]) and peers
//! countersign each other's checkpoints when they connect. `liaise log verify` checks all of
//! it ([`verify`]); `liaise evidence export` builds proofs from it.

pub mod checkpoints;
pub mod export;
pub mod rate;
pub mod signer_keys;
pub mod verify;

use std::path::Path;

use anyhow::{Context, Result, bail};
use liaise_keys::{AgencyId, Timestamp};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub use liaise_protocol::log::LogKind;
use liaise_protocol::log::{
    GENESIS_HEAD, LOG_ENTRY_VERSION, LogEntry, MAX_LOG_DETAIL_LEN, MAX_REASON_LEN, leaf_hash,
    next_head,
};

use crate::home::Home;
use crate::store::hex;

/// The log's tables, created with the rest of the store's schema.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_entries (
    seq INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    leaf BLOB NOT NULL,
    head BLOB NOT NULL,
    doc_id TEXT
);
CREATE INDEX IF NOT EXISTS log_entries_doc ON log_entries (doc_id);
CREATE TRIGGER IF NOT EXISTS log_entries_no_update BEFORE UPDATE ON log_entries
BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS log_entries_no_delete BEFORE DELETE ON log_entries
BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TABLE IF NOT EXISTS log_checkpoints (
    seq INTEGER PRIMARY KEY,
    checkpoint BLOB NOT NULL,
    signed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_countersignatures (
    seq INTEGER NOT NULL,
    witness TEXT NOT NULL,
    countersignature BLOB NOT NULL,
    PRIMARY KEY (seq, witness)
);
";

/// The checkpoints of other agencies' logs this node countersigned, and the forks it found,
/// per agency and signing key.
pub const WITNESS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_witnessed (
    agency TEXT NOT NULL,
    signing_key BLOB NOT NULL,
    seq INTEGER NOT NULL,
    head BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    countersigned_at INTEGER NOT NULL,
    PRIMARY KEY (agency, signing_key, seq)
);
CREATE TABLE IF NOT EXISTS log_forks (
    agency TEXT NOT NULL,
    signing_key BLOB NOT NULL,
    countersigned_seq INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (agency, signing_key, countersigned_seq)
);
";

/// Brings the witness tables of a store written before they recorded the owner's signing key
/// up to [`WITNESS_SCHEMA`]: copies their rows with an empty key (not recorded) until
/// [`checkpoints::assign_unrecorded_keys`] can tell which key signed them. Run it inside a
/// transaction.
pub fn migrate_witness_keys(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE log_witnessed RENAME TO log_witnessed_without_keys;
         ALTER TABLE log_forks RENAME TO log_forks_without_keys;",
    )?;
    conn.execute_batch(WITNESS_SCHEMA)?;
    conn.execute_batch(
        "INSERT INTO log_witnessed (agency, signing_key, seq, head, checkpoint, countersigned_at)
             SELECT agency, X'', seq, head, checkpoint, countersigned_at
             FROM log_witnessed_without_keys;
         DROP TABLE log_witnessed_without_keys;
         INSERT INTO log_forks (agency, signing_key, countersigned_seq, detected_at)
             SELECT agency, X'', countersigned_seq, detected_at FROM log_forks_without_keys;
         DROP TABLE log_forks_without_keys;",
    )
}

/// Something to record. Build with [`NewLogEntry::new`] and the setters.
#[derive(Debug, Clone)]
pub struct NewLogEntry {
    /// What happened.
    pub kind: LogKind,
    /// The document concerned.
    pub doc_id: Option<[u8; 16]>,
    /// The other agency concerned (recipient, sender, requester, peer).
    pub agency: Option<AgencyId>,
    /// A person's stated reason (at most 1024 bytes; longer is cut at a character boundary).
    pub reason: Option<String>,
    /// Anything else, as JSON (at most 4096 bytes encoded; longer is refused).
    pub detail: serde_json::Value,
}

impl NewLogEntry {
    /// An entry of `kind` with no document, agency, reason or detail.
    pub fn new(kind: LogKind) -> Self {
        Self {
            kind,
            doc_id: None,
            agency: None,
            reason: None,
            detail: serde_json::Value::Null,
        }
    }

    /// The document concerned.
    pub fn doc(mut self, doc_id: [u8; 16]) -> Self {
        self.doc_id = Some(doc_id);
        self
    }

    /// The other agency concerned.
    pub fn agency(mut self, agency: AgencyId) -> Self {
        self.agency = Some(agency);
        self
    }

    /// A person's stated reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Structured detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntryRef {
    /// Its position in the log.
    pub seq: u64,
    /// The chain head after it.
    pub head: [u8; 32],
}

/// Appends an entry with the current time. Call it inside the database write that makes the
/// change it records (`Db::write` in the daemon); in another process use [`append_in_home`].
pub fn append(conn: &Connection, entry: NewLogEntry) -> Result<LogEntryRef> {
    append_at(conn, entry, Timestamp::now())
}

/// Appends an entry from a process other than the daemon (the CLI): opens the node's
/// database, appends in an immediate transaction (so it cannot interleave with the daemon's
/// writer), and commits. Works whether or not the node is running.
pub fn append_in_home(home: &Home, entry: NewLogEntry) -> Result<LogEntryRef> {
    let path = crate::store::store_dir(home).join("liaise.db");
    if !path.exists() {
        bail!(
            "no store in {}; start the node once first",
            home.root().display()
        );
    }
    append_in_file(&path, entry)
}

fn append_in_file(path: &Path, entry: NewLogEntry) -> Result<LogEntryRef> {
    let mut conn = Connection::open(path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let at = append(&tx, entry)?;
    tx.commit().context("cannot commit the log entry")?;
    Ok(at)
}

/// [`append`] with an explicit time (tests, replays).
pub fn append_at(conn: &Connection, entry: NewLogEntry, time: Timestamp) -> Result<LogEntryRef> {
    let (seq, prev) = match last(conn)? {
        Some((seq, head)) => (seq.checked_add(1).context("log is full")?, head),
        None => (0, GENESIS_HEAD),
    };
    let detail = match &entry.detail {
        serde_json::Value::Null => String::new(),
        value => serde_json::to_string(value)?,
    };
    if detail.len() > MAX_LOG_DETAIL_LEN {
        bail!(
            "log detail of {} bytes is over the limit of {MAX_LOG_DETAIL_LEN}",
            detail.len()
        );
    }
    let record = LogEntry {
        version: LOG_ENTRY_VERSION,
        seq,
        time,
        kind: entry.kind,
        doc_id: entry.doc_id,
        agency: entry.agency,
        reason: entry.reason.map(|r| cut(r, MAX_REASON_LEN)),
        detail,
    };
    let bytes = record.encode()?;
    let leaf = leaf_hash(&bytes);
    let head = next_head(&prev, &leaf);
    conn.prepare_cached(
        "INSERT INTO log_entries (seq, entry, leaf, head, doc_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        seq as i64,
        bytes,
        leaf.as_slice(),
        head.as_slice(),
        record.doc_id.as_ref().map(|d| hex(d))
    ])?;
    Ok(LogEntryRef { seq, head })
}

/// The last entry's seq and head, if any.
pub fn last(conn: &Connection) -> Result<Option<(u64, [u8; 32])>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, head FROM log_entries ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Ok(None),
        Some((seq, head)) => Ok(Some((seq as u64, to_hash(&head)?))),
    }
}

/// One stored entry.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Its row position.
    pub seq: u64,
    /// The entry bytes.
    pub bytes: Vec<u8>,
    /// The leaf hash recorded with it.
    pub leaf: [u8; 32],
    /// The head recorded with it.
    pub head: [u8; 32],
}

/// Every stored entry with `from <= seq <= to`, in order.
pub fn entries(conn: &Connection, from: u64, to: u64) -> Result<Vec<StoredEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, entry, leaf, head FROM log_entries WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(
        params![
            i64::try_from(from).unwrap_or(i64::MAX),
            i64::try_from(to).unwrap_or(i64::MAX)
        ],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, bytes, leaf, head) = row?;
        out.push(StoredEntry {
            seq: seq as u64,
            bytes,
            leaf: to_hash(&leaf)?,
            head: to_hash(&head)?,
        });
    }
    Ok(out)
}

/// The seqs of the entries about a document (by the indexed column; the entries themselves
/// say which document they are about, and verification checks that).
pub fn seqs_for_doc(conn: &Connection, doc_id: &[u8; 16]) -> Result<Vec<u64>> {
    let mut stmt =
        conn.prepare_cached("SELECT seq FROM log_entries WHERE doc_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([hex(doc_id)], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|s| s as u64))
        .collect::<Result<_, _>>()?)
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("corrupt hash in the log tables"))
}

/// `text`, cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        (dir, conn)
    }

    #[test]
    fn appends_chain_and_refuse_edits() {
        let (_dir, conn) = db();
        let a = append(&conn, NewLogEntry::new(LogKind::Send).doc([1; 16])).unwrap();
        let b = append(
            &conn,
            NewLogEntry::new(LogKind::Open)
                .doc([1; 16])
                .reason("é".repeat(600))
                .detail(serde_json::json!({"x": 1})),
        )
        .unwrap();
        assert_eq!((a.seq, b.seq), (0, 1));
        let rows = entries(&conn, 0, u64::MAX).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].head, b.head);
        let e = LogEntry::decode(&rows[1].bytes).unwrap();
        assert_eq!(e.reason.unwrap().len(), 1024);
        assert_eq!(seqs_for_doc(&conn, &[1; 16]).unwrap(), [0, 1]);
        assert!(conn.execute("DELETE FROM log_entries", []).is_err());
        assert!(
            conn.execute("UPDATE log_entries SET entry = x'00'", [])
                .is_err()
        );
        let big = NewLogEntry::new(LogKind::Open).detail(serde_json::json!("d".repeat(5000)));
        assert!(append(&conn, big).is_err());
    }

    #[test]
    fn only_entries_besides_countersignings_call_for_a_witness() {
        let (_dir, conn) = db();
        let unwitnessed = || checkpoints::has_unwitnessed_entries(&conn).unwrap();
        assert!(!unwitnessed(), "an empty log");
        append(&conn, NewLogEntry::new(LogKind::Send).doc([1; 16])).unwrap();
        assert!(unwitnessed());
        // A peer countersigned a checkpoint at seq 0: nothing waits.
        checkpoints::store_countersignature(
            &conn,
            0,
            &AgencyId::new("nl.probation.utrecht").unwrap(),
            b"cs",
        )
        .unwrap();
        assert!(!unwitnessed());
        // Recording that this node countersigned a peer calls for no witness (else two nodes
        // would witness each other for ever); anything else does.
        append(&conn, NewLogEntry::new(LogKind::Countersigned)).unwrap();
        assert!(!unwitnessed());
        append(&conn, NewLogEntry::new(LogKind::Open).doc([1; 16])).unwrap();
        assert!(unwitnessed());
        append(&conn, NewLogEntry::new(LogKind::Countersigned)).unwrap();
        assert!(unwitnessed(), "the open still waits");
        // However many countersignings come on top of it (a busy federation's peers).
        for _ in 0..200 {
            append(&conn, NewLogEntry::new(LogKind::Countersigned)).unwrap();
        }
        assert!(
            unwitnessed(),
            "the open still waits under 201 countersignings"
        );
    }

    #[test]
    fn other_processes_append_too() {
        let (dir, conn) = db();
        append(&conn, NewLogEntry::new(LogKind::RosterAdopted)).unwrap();
        drop(conn);
        let at = append_in_file(&dir.path().join("t.db"), NewLogEntry::new(LogKind::Open)).unwrap();
        assert_eq!(at.seq, 1);
    }
}
