//! Forwarded documents this node delivers (`liaise forward` without `--out`): each new reader
//! gets its own blob, the originator's consent for it in front of the unchanged sealed
//! document, so an outbox line may name a blob other than its document's.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

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

/// Why a forward of `doc_id` (received as blob `sealed_blob`) to `recipient` cannot share
/// this node's outbox: document ids are chosen by their senders, so the id may already name
/// another document this node sends, or a delivery of it to that recipient.
pub fn conflict(
    conn: &Connection,
    doc_id: &str,
    recipient: &str,
    sealed_blob: &str,
) -> Result<Option<String>> {
    let own: Option<String> = conn
        .prepare_cached("SELECT blob FROM outbox_documents WHERE doc_id = ?1")?
        .query_row([doc_id], |r| r.get(0))
        .optional()?;
    if own.is_some_and(|blob| blob != sealed_blob) {
        return Ok(Some(format!(
            "document id {doc_id} also names a document this node sent; it cannot be forwarded \
             from this node"
        )));
    }
    let unforwarded: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM outbox o WHERE o.doc_id = ?1 AND o.recipient = ?2
             AND NOT EXISTS (SELECT 1 FROM outbox_forwards f
                             WHERE f.doc_id = o.doc_id AND f.recipient = o.recipient))",
        )?
        .query_row(params![doc_id, recipient], |r| r.get(0))?;
    Ok(unforwarded
        .then(|| format!("this node already delivers document {doc_id} to {recipient} itself")))
}

/// Queues a forwarded document for its new reader. Queuing it again changes nothing; a
/// [`conflict`] refuses it.
pub fn queue_forward(conn: &Connection, fwd: &NewForward) -> Result<Option<String>> {
    if let Some(why) = conflict(conn, &fwd.doc_id, &fwd.recipient, &fwd.sealed_blob)? {
        anyhow::bail!(why);
    }
    let replaced = replace_given_up(conn, &fwd.doc_id, &fwd.recipient)?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox_documents (doc_id, blob, sealed_len, label, created, queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![
            fwd.doc_id,
            fwd.sealed_blob,
            fwd.sealed_len as i64,
            fwd.label,
            fwd.created as i64,
            fwd.queued_at as i64
        ],
    )?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox_forwards (doc_id, recipient, blob, sealed_len)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![fwd.doc_id, fwd.recipient, fwd.blob, fwd.len as i64])?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox (doc_id, recipient, state, next_attempt_at, expires_at)
         VALUES (?1, ?2, 'queued', ?3, ?4)",
    )?
    .execute(params![
        fwd.doc_id,
        fwd.recipient,
        fwd.queued_at as i64,
        fwd.expires_at as i64
    ])?;
    event(
        conn,
        fwd.queued_at,
        "queued",
        Some(&fwd.doc_id),
        Some(&fwd.recipient),
        Some("forwarded"),
    )?;
    Ok(replaced)
}

/// Removes the forward of `doc_id` to `recipient` if it was given up (undeliverable), so that
/// a new one is queued in its place; returns its forwarded document's blob (hex), to remove
/// once that is committed. A forward queued or delivered stays as it is.
fn replace_given_up(conn: &Connection, doc_id: &str, recipient: &str) -> Result<Option<String>> {
    let blob: Option<String> = conn
        .query_row(
            "SELECT f.blob FROM outbox_forwards f
             JOIN outbox o ON o.doc_id = f.doc_id AND o.recipient = f.recipient
             WHERE f.doc_id = ?1 AND f.recipient = ?2 AND o.state = 'undeliverable'",
            params![doc_id, recipient],
            |r| r.get(0),
        )
        .optional()?;
    if blob.is_some() {
        conn.execute(
            "DELETE FROM outbox WHERE doc_id = ?1 AND recipient = ?2",
            params![doc_id, recipient],
        )?;
        conn.execute(
            "DELETE FROM outbox_forwards WHERE doc_id = ?1 AND recipient = ?2",
            params![doc_id, recipient],
        )?;
    }
    Ok(blob)
}

/// The forwarded documents of `doc_id` this node queued: (new reader, blob), hex.
pub fn of_document(conn: &Connection, doc_id: &str) -> Result<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT recipient, blob FROM outbox_forwards WHERE doc_id = ?1")?;
    let rows = stmt.query_map([doc_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Gives up the forward of `doc_id` to `recipient` if it is still queued: this node's copy
/// was deleted, for `reason` (a recorded deletion reason, see [`super::custody::deletion_why`]).
pub fn cancel_forward(
    conn: &Connection,
    doc_id: &str,
    recipient: &str,
    reason: &str,
    now: u64,
) -> Result<()> {
    let why = format!(
        "this node's copy was deleted ({})",
        super::custody::deletion_why(reason)
    );
    super::records::mark_undeliverable(conn, doc_id, recipient, &why, now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::store::records::{NewOutgoing, due, queue_document};

    const CITY: &str = "nl.city.utrecht";

    fn forward(doc_id: &str, blob: &str, sealed_blob: &str) -> NewForward {
        NewForward {
            doc_id: doc_id.into(),
            recipient: CITY.into(),
            blob: blob.into(),
            len: 200,
            sealed_blob: sealed_blob.into(),
            sealed_len: 100,
            label: "restricted".into(),
            created: 1,
            queued_at: 2,
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_forward_never_takes_the_place_of_this_nodes_own_document() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::db::open_writer(&dir.path().join("t.db")).unwrap();
        let own = NewOutgoing {
            doc_id: "0a".repeat(16),
            blob: "aa".repeat(32),
            sealed_len: 100,
            label: "restricted".into(),
            created: 1,
            queued_at: 2,
            recipients: vec![(CITY.into(), 1_000)],
        };
        queue_document(&conn, &own).unwrap();
        // Another agency's document under the same id: refused, and the own one is still due
        // with its own blob.
        let err = queue_forward(
            &conn,
            &forward(&own.doc_id, &"ff".repeat(32), &"bb".repeat(32)),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("also names a document this node sent"),
            "{err}"
        );
        // Even the same sealed bytes: the own delivery to that reader is not overridden.
        let err =
            queue_forward(&conn, &forward(&own.doc_id, &"ff".repeat(32), &own.blob)).unwrap_err();
        assert!(err.to_string().contains("already delivers"), "{err}");
        let rows = due(&conn, 10, 10, &[], &Default::default()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].blob, own.blob);
        // A delivery in flight is left out.
        assert!(
            due(&conn, 10, 10, &[rows[0].row], &Default::default())
                .unwrap()
                .is_empty()
        );

        // A forward of another id is queued with its own blob, and queuing it again is fine.
        let other = "0b".repeat(16);
        let fwd = forward(&other, &"ee".repeat(32), &"cc".repeat(32));
        queue_forward(&conn, &fwd).unwrap();
        queue_forward(&conn, &fwd).unwrap();
        let rows = due(&conn, 10, 10, &[], &Default::default()).unwrap();
        let queued = rows.iter().find(|r| r.doc_id == other).unwrap();
        assert_eq!(
            (queued.blob.as_str(), queued.sealed_len),
            (fwd.blob.as_str(), 200)
        );
        assert_eq!(
            of_document(&conn, &other).unwrap(),
            vec![(CITY.to_owned(), fwd.blob)]
        );
    }

    #[test]
    fn a_forward_given_up_is_replaced_when_asked_for_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::db::open_writer(&dir.path().join("t.db")).unwrap();
        let doc = "0c".repeat(16);
        let first = forward(&doc, &"e1".repeat(32), &"cc".repeat(32));
        assert_eq!(queue_forward(&conn, &first).unwrap(), None);
        // Still queued: asking again changes nothing.
        let second = forward(&doc, &"e2".repeat(32), &"cc".repeat(32));
        assert_eq!(queue_forward(&conn, &second).unwrap(), None);
        assert_eq!(of_document(&conn, &doc).unwrap()[0].1, first.blob);
        // Given up: asked for again (under a new consent, so another forwarded document), it
        // is queued afresh, and the old forwarded document is named for removal.
        super::super::records::mark_undeliverable(&conn, &doc, CITY, "expired", 3).unwrap();
        assert!(
            due(&conn, 10, 10, &[], &Default::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(queue_forward(&conn, &second).unwrap(), Some(first.blob));
        let rows = due(&conn, 10, 10, &[], &Default::default()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].blob, second.blob);
        assert_eq!(rows[0].attempts, 0);
    }
}
