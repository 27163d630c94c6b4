//! Typed rows and the queries on them. Every function takes a connection, so it can run in a
//! group-committed write ([`super::Db::write`]) or a read.

use anyhow::Result;
use liaise_keys::AgencyId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::log::{LogKind, NewLogEntry};
use crate::store::{hex, parse_hex};

/// State of one (document, recipient) delivery.
pub mod state {
    /// Waiting for its next attempt (or being sent right now).
    pub const QUEUED: &str = "queued";
    /// The recipient's receipt arrived and verified.
    pub const DELIVERED: &str = "delivered";
    /// Given up: the reason is in `last_error`.
    pub const UNDELIVERABLE: &str = "undeliverable";
}

/// A document this node queued for sending.
#[derive(Debug, Clone)]
pub struct NewOutgoing {
    /// Document id, hex.
    pub doc_id: String,
    /// Content hash, hex (the blob name).
    pub blob: String,
    /// Sealed length.
    pub sealed_len: u64,
    /// The clear label.
    pub label: String,
    /// When the sender says it sealed it.
    pub created: u64,
    /// Now.
    pub queued_at: u64,
    /// Each recipient and the time after which delivery is given up.
    pub recipients: Vec<(String, u64)>,
}

/// A delivery whose next attempt is due.
#[derive(Debug, Clone)]
pub struct Due {
    /// The outbox row's SQLite rowid, to leave it out of the next fetch while it is in flight.
    pub row: i64,
    /// Document id, hex.
    pub doc_id: String,
    /// Recipient agency id.
    pub recipient: String,
    /// Content hash, hex.
    pub blob: String,
    /// Sealed length.
    pub sealed_len: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// Give up after this time.
    pub expires_at: u64,
}

/// One outbox line as shown by `liaise outbox`.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// Document id.
    pub doc_id: String,
    /// Recipient agency.
    pub recipient: String,
    /// queued, delivered or undeliverable (the daemon shows `sending` for live transfers).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Next attempt (queued only).
    pub next_attempt_at: u64,
    /// Delivery deadline.
    pub expires_at: u64,
    /// Last error or the reason it is undeliverable.
    pub last_error: Option<String>,
    /// Receipt time (delivered only).
    pub delivered_at: Option<u64>,
    /// Sealed length.
    pub sealed_len: u64,
    /// Clear label.
    pub label: String,
    /// When queued.
    pub queued_at: u64,
}

/// One received document.
#[derive(Debug, Clone, Serialize)]
pub struct InboxRow {
    /// Document id.
    pub doc_id: String,
    /// Sender agency: the agency that sealed and signed it.
    pub sender: String,
    /// The agency that delivered it with the sender's consent, for a forwarded document.
    pub forwarded_by: Option<String>,
    /// Content hash (blob name).
    pub blob: String,
    /// Sealed length.
    pub sealed_len: u64,
    /// Clear label.
    pub label: String,
    /// Sender's sealing time.
    pub created: u64,
    /// When this node stored it.
    pub received_at: u64,
    /// Verification state at receipt (`verified`: signature and signer checked).
    pub verification: String,
    /// When this node's copy expires and is deleted (unix seconds; `None`: never). Set when
    /// the document is recorded, from its verified policy or forwarding consent; not listed.
    #[serde(skip)]
    pub not_after: Option<u64>,
}

/// A stored receipt.
#[derive(Debug, Clone)]
pub struct ReceiptRow {
    /// Recipient that signed it.
    pub recipient: String,
    /// The receipt bytes.
    pub receipt: Vec<u8>,
    /// When this node got it.
    pub received_at: u64,
}

/// Queues a document for every recipient. Queuing the same document again changes nothing.
pub fn queue_document(conn: &Connection, doc: &NewOutgoing) -> Result<()> {
    let fresh = conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox_documents (doc_id, blob, sealed_len, label, created, queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![doc.doc_id, doc.blob, doc.sealed_len as i64, doc.label, doc.created as i64, doc.queued_at as i64],
    )?;
    for (recipient, expires_at) in &doc.recipients {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO outbox (doc_id, recipient, state, next_attempt_at, expires_at)
             VALUES (?1, ?2, 'queued', ?3, ?4)",
        )?
        .execute(params![
            doc.doc_id,
            recipient,
            doc.queued_at as i64,
            *expires_at as i64
        ])?;
    }
    if fresh > 0 {
        let recipients: Vec<&str> = doc.recipients.iter().map(|(r, _)| r.as_str()).collect();
        log_entry(
            conn,
            NewLogEntry::new(LogKind::Send).detail(serde_json::json!({
                "recipients": recipients,
                "content_hash": doc.blob,
                "sealed_len": doc.sealed_len,
            })),
            Some(&doc.doc_id),
            None,
        )?;
    }
    event(conn, doc.queued_at, "queued", Some(&doc.doc_id), None, None)
}

/// Deliveries that must wait for others in flight to end: every one to the agencies in
/// `full` (each with as many deliveries in flight as one agency may have), and the slow ones
/// to `recipients` (each with as many slow deliveries in flight as one agency may have), or
/// every slow one if `all` (as many in flight as the node allows). A slow delivery is a
/// document over `min_len` bytes, or a retry (an attempt failed before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldBack {
    /// Documents of at most this many bytes are held back only when retried.
    pub min_len: u64,
    /// Agencies whose slow deliveries wait.
    pub recipients: Vec<String>,
    /// Whether every slow delivery waits.
    pub all: bool,
    /// Agencies whose deliveries all wait.
    pub full: Vec<String>,
    /// `Some(room)`: the bytes of documents of at most `min_len` bytes in flight (held in
    /// memory) leave room for `room` more only, so those longer than that wait.
    pub small_room: Option<u64>,
    /// Agencies whose documents of at most `min_len` bytes all wait: those in flight to them
    /// leave less room than the largest such document.
    pub small_full: Vec<String>,
}

impl HeldBack {
    /// Whether nothing is held back.
    pub fn is_empty(&self) -> bool {
        !self.all
            && self.recipients.is_empty()
            && self.full.is_empty()
            && self.small_room.is_none()
            && self.small_full.is_empty()
    }
}

/// Deliveries due at `now`, oldest first, leaving out the rows in `skip` (those in flight,
/// which are still due and would otherwise be read again on every wake of the outbox worker)
/// and the deliveries `held_back` (which would otherwise fill the `limit` and hide the rows
/// behind them). `conn` must have the `rarray` module loaded (every store connection has).
pub fn due(
    conn: &Connection,
    now: u64,
    limit: usize,
    skip: &[i64],
    held_back: &HeldBack,
) -> Result<Vec<Due>> {
    const SELECT: &str = "SELECT o.rowid, o.doc_id, o.recipient, coalesce(f.blob, d.blob),
                coalesce(f.sealed_len, d.sealed_len), o.attempts, o.expires_at
         FROM outbox o JOIN outbox_documents d ON d.doc_id = o.doc_id
         LEFT JOIN outbox_forwards f ON f.doc_id = o.doc_id AND f.recipient = o.recipient
         WHERE o.state = 'queued' AND o.next_attempt_at <= ?1 AND o.rowid NOT IN rarray(?3)";
    // Two statements, so the common case (nothing held back) costs no more than before.
    let mut stmt = if held_back.is_empty() {
        conn.prepare_cached(&format!("{SELECT} ORDER BY o.next_attempt_at LIMIT ?2"))?
    } else {
        conn.prepare_cached(&format!(
            "{SELECT} AND NOT ((coalesce(f.sealed_len, d.sealed_len) > ?4 OR o.attempts > 0)
                AND (?5 OR o.recipient IN rarray(?6)))
                AND o.recipient NOT IN rarray(?7)
                AND NOT (?8 IS NOT NULL AND coalesce(f.sealed_len, d.sealed_len) <= ?4
                    AND coalesce(f.sealed_len, d.sealed_len) > ?8)
                AND NOT (coalesce(f.sealed_len, d.sealed_len) <= ?4
                    AND o.recipient IN rarray(?9))
             ORDER BY o.next_attempt_at LIMIT ?2"
        ))?
    };
    let skip = values(skip.iter().copied().map(rusqlite::types::Value::from));
    let map = |r: &rusqlite::Row<'_>| {
        Ok(Due {
            row: r.get(0)?,
            doc_id: r.get(1)?,
            recipient: r.get(2)?,
            blob: r.get(3)?,
            sealed_len: r.get::<_, i64>(4)? as u64,
            attempts: r.get::<_, i64>(5)? as u32,
            expires_at: r.get::<_, i64>(6)? as u64,
        })
    };
    let rows = if held_back.is_empty() {
        stmt.query_map(params![now as i64, limit as i64, skip], map)?
            .collect::<Result<_, _>>()?
    } else {
        let agencies =
            |list: &[String]| values(list.iter().map(|r| rusqlite::types::Value::from(r.clone())));
        stmt.query_map(
            params![
                now as i64,
                limit as i64,
                skip,
                held_back.min_len as i64,
                held_back.all,
                agencies(&held_back.recipients),
                agencies(&held_back.full),
                held_back.small_room.map(|room| room as i64),
                agencies(&held_back.small_full)
            ],
            map,
        )?
        .collect::<Result<_, _>>()?
    };
    Ok(rows)
}

/// Values for an `rarray(?)` parameter.
fn values(items: impl Iterator<Item = rusqlite::types::Value>) -> rusqlite::vtab::array::Array {
    std::rc::Rc::new(items.collect())
}

/// Makes every queued delivery to `recipient` that waits for a later attempt due at `now`;
/// how many.
pub fn retry_now(conn: &Connection, recipient: &str, now: u64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET next_attempt_at = ?2
             WHERE recipient = ?1 AND state = 'queued' AND next_attempt_at > ?2",
        )?
        .execute(params![recipient, now as i64])?)
}

/// When the next queued delivery is due, if any.
pub fn next_due_at(conn: &Connection) -> Result<Option<u64>> {
    let at: Option<i64> = conn
        .prepare_cached("SELECT min(next_attempt_at) FROM outbox WHERE state = 'queued'")?
        .query_row([], |r| r.get(0))?;
    Ok(at.map(|a| a as u64))
}

/// Records a verified receipt and marks the delivery done.
pub fn mark_delivered(
    conn: &Connection,
    doc_id: &str,
    recipient: &str,
    receipt: &[u8],
    now: u64,
) -> Result<()> {
    let fresh = conn.prepare_cached(
        "INSERT OR IGNORE INTO receipts (doc_id, recipient, receipt, received_at) VALUES (?1, ?2, ?3, ?4)")?.execute(params![doc_id, recipient, receipt, now as i64],
    )?;
    if fresh > 0 {
        let detail = serde_json::json!({ "receipt": hex(receipt) });
        let entry = NewLogEntry::new(LogKind::Receipt).detail(detail);
        log_entry(conn, entry, Some(doc_id), Some(recipient))?;
    }
    conn.prepare_cached(
        "UPDATE outbox SET state = 'delivered', delivered_at = ?3, last_error = NULL,
         attempts = attempts + 1 WHERE doc_id = ?1 AND recipient = ?2",
    )?
    .execute(params![doc_id, recipient, now as i64])?;
    event(conn, now, "delivered", Some(doc_id), Some(recipient), None)
}

/// Records a failed attempt and when to try again.
pub fn mark_retry(
    conn: &Connection,
    doc_id: &str,
    recipient: &str,
    next_at: u64,
    error: &str,
    now: u64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?3, last_error = ?4
         WHERE doc_id = ?1 AND recipient = ?2 AND state = 'queued'",
    )?
    .execute(params![doc_id, recipient, next_at as i64, error])?;
    event(
        conn,
        now,
        "attempt-failed",
        Some(doc_id),
        Some(recipient),
        Some(error),
    )
}

/// Gives a delivery up, with the reason.
pub fn mark_undeliverable(
    conn: &Connection,
    doc_id: &str,
    recipient: &str,
    reason: &str,
    now: u64,
) -> Result<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE outbox SET state = 'undeliverable', last_error = ?3
         WHERE doc_id = ?1 AND recipient = ?2 AND state = 'queued'",
        )?
        .execute(params![doc_id, recipient, reason])?;
    if changed > 0 {
        let entry = NewLogEntry::new(LogKind::Undeliverable).reason(reason);
        log_entry(conn, entry, Some(doc_id), Some(recipient))?;
    }
    event(
        conn,
        now,
        "undeliverable",
        Some(doc_id),
        Some(recipient),
        Some(reason),
    )
}

/// The blob and receipt of a document already received from `sender`.
pub fn inbox_receipt(
    conn: &Connection,
    doc_id: &str,
    sender: &str,
) -> Result<Option<(String, Vec<u8>)>> {
    Ok(conn
        .prepare_cached("SELECT blob, receipt FROM inbox WHERE doc_id = ?1 AND sender = ?2")?
        .query_row(params![doc_id, sender], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The sender, blob and receipt of a document `peer` delivered already: sealed and sent by it, or
/// forwarded by it with the sender's consent.
pub fn inbox_receipt_from_peer(
    conn: &Connection,
    doc_id: &str,
    peer: &str,
) -> Result<Option<(String, String, Vec<u8>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT sender, blob, receipt FROM inbox WHERE doc_id = ?1
             AND ((sender = ?2 AND forwarded_by IS NULL) OR forwarded_by = ?2)",
        )?
        .query_row(params![doc_id, peer], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// How `not_after` is kept in the inbox: `NULL` is reserved for rows recorded before the
/// column existed (their header says), so "never" is the largest time.
fn stored_not_after(not_after: Option<u64>) -> i64 {
    not_after.map_or(i64::MAX, |t| i64::try_from(t).unwrap_or(i64::MAX))
}

/// Records a received document with the receipt this node signed for it.
pub fn inbox_insert(conn: &Connection, row: &InboxRow, receipt: &[u8]) -> Result<()> {
    let fresh = conn.prepare_cached(
        "INSERT OR IGNORE INTO inbox (doc_id, sender, blob, sealed_len, label, created, received_at, verification, receipt, forwarded_by, not_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?.execute(params![
            row.doc_id, row.sender, row.blob, row.sealed_len as i64, row.label,
            row.created as i64, row.received_at as i64, row.verification, receipt,
            row.forwarded_by, stored_not_after(row.not_after)
        ],
    )?;
    if fresh > 0 {
        let mut detail = serde_json::json!({
            "content_hash": row.blob,
            "sealed_len": row.sealed_len,
            "receipt": hex(receipt),
        });
        if let (Some(forwarder), Some(fields)) = (&row.forwarded_by, detail.as_object_mut()) {
            fields.insert("forwarded_by".into(), forwarder.as_str().into());
        }
        let entry = NewLogEntry::new(LogKind::Receive).detail(detail);
        log_entry(conn, entry, Some(&row.doc_id), Some(&row.sender))?;
    }
    event(
        conn,
        row.received_at,
        "received",
        Some(&row.doc_id),
        Some(&row.sender),
        None,
    )
}

/// Every outbox line, newest first.
pub fn list_outbox(conn: &Connection) -> Result<Vec<OutboxRow>> {
    outbox_rows(conn, None)
}

/// The outbox lines of document `doc_id` (hex), one per recipient.
pub fn outbox_of(conn: &Connection, doc_id: &str) -> Result<Vec<OutboxRow>> {
    outbox_rows(conn, Some(doc_id))
}

/// The outbox lines, as [`OutboxRow`]s read them.
const OUTBOX_LINES: &str = "
    SELECT o.doc_id, o.recipient, o.state, o.attempts, o.next_attempt_at, o.expires_at,
           o.last_error, o.delivered_at, coalesce(f.sealed_len, d.sealed_len), d.label, d.queued_at
    FROM outbox o JOIN outbox_documents d ON d.doc_id = o.doc_id
    LEFT JOIN outbox_forwards f ON f.doc_id = o.doc_id AND f.recipient = o.recipient";

/// The query of one document's outbox lines (`?1`: its id, hex).
pub(crate) fn one_documents_lines() -> String {
    format!("{OUTBOX_LINES} WHERE o.doc_id = ?1 ORDER BY o.recipient")
}

fn outbox_rows(conn: &Connection, doc_id: Option<&str>) -> Result<Vec<OutboxRow>> {
    // Two statements, not one with `?1 IS NULL OR ...`: each keeps its own plan, and the one
    // for a document looks it up by its key instead of reading every line.
    let (mut stmt, bound) = match doc_id {
        None => (
            conn.prepare_cached(&format!(
                "{OUTBOX_LINES} ORDER BY d.queued_at DESC, o.doc_id, o.recipient"
            ))?,
            Vec::new(),
        ),
        Some(id) => (conn.prepare_cached(&one_documents_lines())?, vec![id]),
    };
    let rows = stmt.query_map(rusqlite::params_from_iter(bound), |r| {
        Ok(OutboxRow {
            doc_id: r.get(0)?,
            recipient: r.get(1)?,
            state: r.get(2)?,
            attempts: r.get::<_, i64>(3)? as u32,
            next_attempt_at: r.get::<_, i64>(4)? as u64,
            expires_at: r.get::<_, i64>(5)? as u64,
            last_error: r.get(6)?,
            delivered_at: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
            sealed_len: r.get::<_, i64>(8)? as u64,
            label: r.get(9)?,
            queued_at: r.get::<_, i64>(10)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every received document, newest first. A copy deleted on the originator's request or at
/// expiry shows `deleted` as its state.
pub fn list_inbox(conn: &Connection) -> Result<Vec<InboxRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.doc_id, i.sender, i.blob, i.sealed_len, i.label, i.created, i.received_at,
                CASE WHEN d.doc_id IS NULL THEN i.verification ELSE 'deleted' END, i.forwarded_by
         FROM inbox i
         LEFT JOIN inbox_deletions d ON d.doc_id = i.doc_id AND d.sender = i.sender
         ORDER BY i.received_at DESC, i.doc_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(InboxRow {
            doc_id: r.get(0)?,
            sender: r.get(1)?,
            blob: r.get(2)?,
            sealed_len: r.get::<_, i64>(3)? as u64,
            label: r.get(4)?,
            created: r.get::<_, i64>(5)? as u64,
            received_at: r.get::<_, i64>(6)? as u64,
            verification: r.get(7)?,
            forwarded_by: r.get(8)?,
            not_after: None,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The receipts this node holds for a document it sent.
pub fn receipts_for(conn: &Connection, doc_id: &str) -> Result<Vec<ReceiptRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT recipient, receipt, received_at FROM receipts WHERE doc_id = ?1 ORDER BY recipient",
    )?;
    let rows = stmt.query_map([doc_id], |r| {
        Ok(ReceiptRow {
            recipient: r.get(0)?,
            receipt: r.get(1)?,
            received_at: r.get::<_, i64>(2)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The blob name of a received (and not deleted) or sent document. Document ids are chosen by their senders, so
/// two agencies (or this node and another) may use the same id: then the id alone does not say
/// which document is meant, and this refuses, naming every source.
pub fn blob_of_document(conn: &Connection, doc_id: &str) -> Result<Option<String>> {
    let mut sources: Vec<(String, String)> = Vec::new();
    // Copies deleted on their sender's request or at expiry are gone: not a source.
    let mut stmt = conn.prepare_cached(
        "SELECT i.sender, i.blob FROM inbox i LEFT JOIN inbox_deletions d
         ON d.doc_id = i.doc_id AND d.sender = i.sender
         WHERE i.doc_id = ?1 AND d.doc_id IS NULL ORDER BY i.sender",
    )?;
    for row in stmt.query_map([doc_id], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (sender, blob): (String, String) = row?;
        sources.push((format!("received from {sender}"), blob));
    }
    let sent: Option<String> = conn
        .prepare_cached("SELECT blob FROM outbox_documents WHERE doc_id = ?1")?
        .query_row([doc_id], |r| r.get(0))
        .optional()?;
    if let Some(blob) = sent {
        sources.push(("sent by this node".to_owned(), blob));
    }
    let Some((_, first)) = sources.first() else {
        return Ok(None);
    };
    if sources.iter().any(|(_, blob)| blob != first) {
        let list: Vec<&str> = sources.iter().map(|(who, _)| who.as_str()).collect();
        anyhow::bail!(
            "document id {doc_id} names {} different documents ({}); pass the sealed file \
             instead of the id",
            sources.len(),
            list.join(", ")
        );
    }
    Ok(Some(first.clone()))
}

/// Whether this node sent (or forwarded) document `doc_id`.
pub fn was_sent(conn: &Connection, doc_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM outbox_documents WHERE doc_id = ?1")?
        .exists([doc_id])?)
}

/// When and why a copy of `doc_id` that this node received was deleted (on its sender's
/// request or at its expiry), if one was.
/// Returns `(deleted_at, reason, sender)`.
pub fn deleted_copy(conn: &Connection, doc_id: &str) -> Result<Option<(u64, String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT d.deleted_at, d.reason, d.sender FROM inbox_deletions d JOIN inbox i
             ON i.doc_id = d.doc_id AND i.sender = d.sender
             WHERE d.doc_id = ?1 ORDER BY d.deleted_at LIMIT 1",
        )?
        .query_row([doc_id], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// Counts of outbox lines by state: (queued, delivered, undeliverable), and inbox size.
pub fn queue_sizes(conn: &Connection) -> Result<(u64, u64, u64, u64)> {
    let count =
        |sql: &str| -> Result<u64> { Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
    Ok((
        count("SELECT count(*) FROM outbox WHERE state = 'queued'")?,
        count("SELECT count(*) FROM outbox WHERE state = 'delivered'")?,
        count("SELECT count(*) FROM outbox WHERE state = 'undeliverable'")?,
        count("SELECT count(*) FROM inbox")?,
    ))
}

/// Records a roster this node adopted.
pub fn roster_adopted(
    conn: &Connection,
    serial: u64,
    source: &str,
    file: &[u8],
    now: u64,
) -> Result<()> {
    let fresh = conn.prepare_cached(
        "INSERT OR IGNORE INTO roster_history (serial, adopted_at, source, file) VALUES (?1, ?2, ?3, ?4)")?.execute(params![serial as i64, now as i64, source, file],
    )?;
    if fresh > 0 {
        let detail = serde_json::json!({ "serial": serial, "source": source });
        let entry = NewLogEntry::new(LogKind::RosterAdopted).detail(detail);
        log_entry(conn, entry, None, Some(source))?;
    }
    event(
        conn,
        now,
        "roster-adopted",
        None,
        Some(source),
        Some(&serial.to_string()),
    )
}

/// Appends to the tamper-evident log; `doc_id` hex and `agency` text as stored in the rows
/// (an agency that is not a valid id, such as `local`, is left out of the entry).
fn log_entry(
    conn: &Connection,
    mut entry: NewLogEntry,
    doc_id: Option<&str>,
    agency: Option<&str>,
) -> Result<()> {
    entry.doc_id = doc_id.and_then(parse_hex::<16>);
    entry.agency = agency.and_then(|a| AgencyId::new(a).ok());
    crate::log::append(conn, entry)?;
    Ok(())
}

/// Appends an event.
pub fn event(
    conn: &Connection,
    at: u64,
    kind: &str,
    doc_id: Option<&str>,
    agency: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (at, kind, doc_id, agency, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![at as i64, kind, doc_id, agency, detail])?;
    Ok(())
}
