//! Forwarded documents this node delivers (`liaise forward` without `--out`): each new reader
//! gets its own blob, the originator's consent for it in front of the unchanged sealed
//! document, so an outbox line may name a blob other than its document's.

use anyhow::Result;
use rusqlite::{Connection, params};

use super::records::event;

/// Created with the rest of the store's schema.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_forwards (
    doc_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    blob TEXT NOT NULL,
    sealed_len INTEGER NOT NULL,
    PRIMARY KEY (doc_id, recipient)
);
";

/// A forwarded document to queue for its new reader.
#[derive(Debug, Clone)]
pub struct NewForward {
    /// Document id, hex.
    pub doc_id: String,
    /// The new reader.
    pub recipient: String,
    /// The forwarded document's blob (consent and sealed document), hex.
    pub blob: String,
    /// Its length.
    pub len: u64,
    /// The sealed document's blob as received, hex, and its length.
    pub sealed_blob: String,
    /// The sealed document's length.
    pub sealed_len: u64,
    /// Its clear label.
    pub label: String,
    /// When the originator sealed it.
    pub created: u64,
    /// Now.
    pub queued_at: u64,
    /// When delivery is given up.
    pub expires_at: u64,
}

/// Queues a forwarded document for its new reader. Queuing it again changes nothing.
pub fn queue_forward(conn: &Connection, fwd: &NewForward) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO outbox_documents (doc_id, blob, sealed_len, label, created, queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            fwd.doc_id,
            fwd.sealed_blob,
            fwd.sealed_len as i64,
            fwd.label,
            fwd.created as i64,
            fwd.queued_at as i64
        ],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO outbox_forwards (doc_id, recipient, blob, sealed_len)
         VALUES (?1, ?2, ?3, ?4)",
        params![fwd.doc_id, fwd.recipient, fwd.blob, fwd.len as i64],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO outbox (doc_id, recipient, state, next_attempt_at, expires_at)
         VALUES (?1, ?2, 'queued', ?3, ?4)",
        params![
            fwd.doc_id,
            fwd.recipient,
            fwd.queued_at as i64,
            fwd.expires_at as i64
        ],
    )?;
    event(
        conn,
        fwd.queued_at,
        "queued",
        Some(&fwd.doc_id),
        Some(&fwd.recipient),
        Some("forwarded"),
    )
}
