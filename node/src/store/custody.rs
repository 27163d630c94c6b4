//! Originator control in the store (spec: `originator-control.md`, "What the originator's
//! node stores"): the key share and masked keys of each document this agency sealed under
//! originator control, its readers and revocations, the request nonces seen, the deletions
//! to ask for and their receipts; and, on the reader's side, the copies it deleted.
//!
//! The share and the masked keys are secrets: they are sealed at rest with the agency's
//! [`CustodyKey`], never logged, listed or shown, and [`shred`] overwrites them (the
//! database runs with `secure_delete` on).

use anyhow::{Context, Result};
use liaise_keys::AgencyId;
use liaise_protocol::sealed::SHARE_LEN;
use liaise_protocol::wire::REQUEST_WINDOW_SECS;
use liaise_protocol::{DocumentInfo, OriginatorSecrets, OriginatorShare};
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use super::custody_key::{CustodyKey, Secret};
use crate::home::Home;

pub use crate::log::LogKind;

/// Records an originator-control event (a share released or refused with the reason given,
/// an open, a revocation, a deletion, a forward) in the node's tamper-evident log, inside
/// the caller's write. The one place these events are recorded.
pub fn record_event(
    conn: &Connection,
    kind: LogKind,
    doc_id: Option<[u8; 16]>,
    agency: Option<&AgencyId>,
    reason: Option<&str>,
    detail: serde_json::Value,
) -> Result<()> {
    let mut entry = crate::log::NewLogEntry::new(kind).detail(detail);
    if let Some(doc_id) = doc_id {
        entry = entry.doc(doc_id);
    }
    if let Some(agency) = agency {
        entry = entry.agency(agency.clone());
    }
    if let Some(reason) = reason {
        entry = entry.reason(reason);
    }
    crate::log::append(conn, entry)?;
    Ok(())
}

/// The custody tables, created with the rest of the store's schema.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS custody_documents (
    doc_id TEXT PRIMARY KEY,
    header BLOB NOT NULL,
    share BLOB,
    masked_keys BLOB,
    registered_at INTEGER NOT NULL,
    revoked_at INTEGER,
    shredded_at INTEGER,
    shred_reason TEXT
);
CREATE TABLE IF NOT EXISTS custody_readers (
    doc_id TEXT NOT NULL,
    agency TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('recipient', 'forwarded')),
    not_after INTEGER,
    forwarded_by TEXT,
    revoked_at INTEGER,
    deletion_reason TEXT,
    deletion_state TEXT CHECK (deletion_state IN ('queued', 'done')),
    deletion_attempts INTEGER NOT NULL DEFAULT 0,
    deletion_next_at INTEGER,
    deletion_error TEXT,
    deletion_receipt BLOB,
    PRIMARY KEY (doc_id, agency)
);
CREATE INDEX IF NOT EXISTS custody_deletions_due ON custody_readers (deletion_state, deletion_next_at);
CREATE TABLE IF NOT EXISTS custody_nonces (
    agency TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (agency, nonce)
);
CREATE TABLE IF NOT EXISTS inbox_deletions (
    doc_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    reason TEXT NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, sender)
);
";

/// What the originator's node holds about one document.
#[derive(Debug, Clone)]
pub struct CustodyDocument {
    /// The document id, hex.
    pub doc_id: String,
    /// `prelude || header` exactly as sealed.
    pub header: Vec<u8>,
    /// The share, sealed at rest ([`CustodyKey`]), until shredded.
    pub share: Option<Vec<u8>>,
    /// The masked keys (`index || key`, 33 bytes per section), sealed at rest, until
    /// shredded.
    pub masked_keys: Option<Vec<u8>>,
    /// When the whole document was revoked.
    pub revoked_at: Option<u64>,
    /// Why it was shredded (`revoked` or `expired`), if it was.
    pub shred_reason: Option<String>,
}

/// One reader of a document under this node's control.
#[derive(Debug, Clone)]
pub struct CustodyReader {
    /// The agency.
    pub agency: String,
    /// `recipient` (in the sealed header) or `forwarded` (added by consent).
    pub origin: String,
    /// Its last opening time.
    pub not_after: Option<u64>,
    /// The reader that forwarded it, for forwarded readers.
    pub forwarded_by: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<u64>,
}

/// A deletion the originator still has to ask for.
#[derive(Debug, Clone)]
pub struct DueDeletion {
    /// Document id, hex.
    pub doc_id: String,
    /// The reader.
    pub agency: String,
    /// `revoked` or `expired`.
    pub reason: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// Records a document sealed under originator control, its share and masked keys sealed
/// with `key`. Idempotent.
pub fn register(
    conn: &Connection,
    info: &DocumentInfo,
    header: &[u8],
    secrets: &OriginatorSecrets,
    key: &CustodyKey,
    now: u64,
) -> Result<()> {
    let doc_id = info.document_id.to_string();
    let share = key.seal(Secret::Share, &doc_id, &secrets.share.expose_bytes()[..])?;
    let masked = key.seal(Secret::MaskedKeys, &doc_id, &encode_masked_keys(secrets))?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO custody_documents (doc_id, header, share, masked_keys, registered_at)
         VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![
            doc_id,
            header,
            share,
            masked,
            now as i64
        ],
    )?;
    for r in &info.recipients {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO custody_readers (doc_id, agency, origin, not_after)
             VALUES (?1, ?2, 'recipient', ?3)",
        )?
        .execute(params![
            doc_id,
            r.agency.as_str(),
            r.policy.not_after.map(|t| t.0 as i64)
        ])?;
    }
    Ok(())
}

/// [`register`] from the CLI (`liaise seal`, `liaise send`), running or not running node.
pub fn register_in_home(
    home: &Home,
    info: &DocumentInfo,
    header: &[u8],
    secrets: &OriginatorSecrets,
    key: &CustodyKey,
) -> Result<()> {
    let dir = super::store_dir(home);
    crate::fsutil::create_private_dir(&dir)?;
    let mut conn = super::db::open_writer(&dir.join("liaise.db"))?;
    // One immediate transaction: the document and all its readers, or nothing, taking the
    // write lock first (waiting for the node's writer) so it cannot fail half-way.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("cannot record the originator share in the node's store")?;
    register(&tx, info, header, secrets, key, crate::daemon::now_secs())
        .context("cannot record the originator share in the node's store")?;
    tx.commit()
        .context("cannot record the originator share in the node's store")
}

/// `index || masked_key` for every section, 33 bytes each.
fn encode_masked_keys(secrets: &OriginatorSecrets) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(secrets.masked_keys.len() * 33));
    for (index, key) in &secrets.masked_keys {
        out.push(*index);
        out.extend_from_slice(&key[..]);
    }
    out
}

/// The masked keys of `sections` from their stored encoding; `None` if one is missing.
pub fn masked_keys_for(stored: &[u8], sections: &[u8]) -> Option<Vec<(u8, Zeroizing<[u8; 32]>)>> {
    let mut out = Vec::with_capacity(sections.len());
    for want in sections {
        let entry = stored.chunks_exact(33).find(|c| c.first() == Some(want))?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(entry.get(1..)?);
        out.push((*want, key));
    }
    Some(out)
}

/// The originator's record of a document.
pub fn document(conn: &Connection, doc_id: &str) -> Result<Option<CustodyDocument>> {
    let row = conn
        .prepare_cached(
            "SELECT header, share, masked_keys, revoked_at, shred_reason
             FROM custody_documents WHERE doc_id = ?1",
        )?
        .query_row([doc_id], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .optional()?;
    Ok(row.map(
        |(header, share, masked_keys, revoked, shred_reason)| CustodyDocument {
            doc_id: doc_id.to_owned(),
            header,
            share,
            masked_keys,
            revoked_at: revoked.map(|v| v as u64),
            shred_reason,
        },
    ))
}

impl CustodyDocument {
    /// The share, opened with `key`; `None` once shredded.
    pub fn open_share(&self, key: &CustodyKey) -> Result<Option<OriginatorShare>> {
        let Some(sealed) = &self.share else {
            return Ok(None);
        };
        let bytes = key.open(Secret::Share, &self.doc_id, sealed)?;
        OriginatorShare::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("the stored share of {} is malformed", self.doc_id))
    }

    /// The masked keys, opened with `key`; `None` once shredded.
    pub fn open_masked_keys(&self, key: &CustodyKey) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.masked_keys
            .as_ref()
            .map(|sealed| key.open(Secret::MaskedKeys, &self.doc_id, sealed))
            .transpose()
    }
}

/// Seals with `key` the shares and masked keys an earlier version stored in the clear
/// (a share of exactly [`SHARE_LEN`] bytes; a sealed one is longer); how many documents.
pub fn seal_clear_rows(conn: &Connection, key: &CustodyKey) -> Result<usize> {
    type Clear = (String, Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);
    let clear: Vec<Clear> = conn
        .prepare(
            "SELECT doc_id, share, masked_keys FROM custody_documents
             WHERE share IS NOT NULL AND masked_keys IS NOT NULL AND length(share) = ?1",
        )?
        .query_map([SHARE_LEN as i64], |r| {
            Ok((
                r.get(0)?,
                Zeroizing::new(r.get(1)?),
                Zeroizing::new(r.get(2)?),
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (doc_id, share, masked) in &clear {
        conn.prepare_cached(
            "UPDATE custody_documents SET share = ?2, masked_keys = ?3 WHERE doc_id = ?1",
        )?
        .execute(params![
            doc_id,
            key.seal(Secret::Share, doc_id, share)?,
            key.seal(Secret::MaskedKeys, doc_id, masked)?
        ])?;
    }
    Ok(clear.len())
}

/// A reader of a document, if it is one.
pub fn reader(conn: &Connection, doc_id: &str, agency: &str) -> Result<Option<CustodyReader>> {
    Ok(conn
        .prepare_cached(
            "SELECT agency, origin, not_after, forwarded_by, revoked_at
             FROM custody_readers WHERE doc_id = ?1 AND agency = ?2",
        )?
        .query_row([doc_id, agency], reader_row)
        .optional()?)
}

/// Every reader of a document.
pub fn readers(conn: &Connection, doc_id: &str) -> Result<Vec<CustodyReader>> {
    let mut stmt = conn.prepare_cached(
        "SELECT agency, origin, not_after, forwarded_by, revoked_at
         FROM custody_readers WHERE doc_id = ?1 ORDER BY agency",
    )?;
    let rows = stmt.query_map([doc_id], reader_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn reader_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CustodyReader> {
    Ok(CustodyReader {
        agency: r.get(0)?,
        origin: r.get(1)?,
        not_after: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
        forwarded_by: r.get(3)?,
        revoked_at: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
    })
}

/// Records a request nonce; false if it was seen before (a replay). Forgets nonces older than
/// twice the request window.
pub fn nonce_is_fresh(conn: &Connection, agency: &str, nonce: &[u8; 16], now: u64) -> Result<bool> {
    let horizon = now.saturating_sub(2 * REQUEST_WINDOW_SECS);
    conn.prepare_cached("DELETE FROM custody_nonces WHERE seen_at < ?1")?
        .execute([horizon as i64])?;
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO custody_nonces (agency, nonce, seen_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![agency, super::hex(nonce), now as i64])?;
    Ok(inserted == 1)
}

/// Revokes the whole document (`agency` none) or one reader and the readers it forwarded the
/// document to: no further shares, queued deliveries to them cancelled, their copies to be
/// deleted. Returns the readers revoked now.
pub fn revoke(
    conn: &Connection,
    doc_id: &str,
    agency: Option<&AgencyId>,
    now: u64,
) -> Result<Vec<String>> {
    let affected: Vec<String> = readers(conn, doc_id)?
        .into_iter()
        .filter(|r| r.revoked_at.is_none())
        .filter(|r| {
            agency.is_none_or(|a| {
                a.as_str() == r.agency || r.forwarded_by.as_deref() == Some(a.as_str())
            })
        })
        .map(|r| r.agency)
        .collect();
    if agency.is_none() {
        conn.prepare_cached(
            "UPDATE custody_documents SET revoked_at = ?2 WHERE doc_id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![doc_id, now as i64])?;
    }
    for reader in &affected {
        conn.prepare_cached(
            "UPDATE custody_readers SET revoked_at = ?3, deletion_reason = 'revoked',
                 deletion_state = 'queued', deletion_next_at = ?3, deletion_attempts = 0
             WHERE doc_id = ?1 AND agency = ?2",
        )?
        .execute(params![doc_id, reader, now as i64])?;
        conn.prepare_cached(
            "UPDATE outbox SET state = 'undeliverable', last_error = 'revoked by the sender'
             WHERE doc_id = ?1 AND recipient = ?2 AND state = 'queued'",
        )?
        .execute(params![doc_id, reader])?;
    }
    Ok(affected)
}

/// Queues deletions for readers whose `not_after` has passed. Returns `(doc, agency)` pairs.
pub fn queue_expired(conn: &Connection, now: u64) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, agency FROM custody_readers
         WHERE not_after IS NOT NULL AND not_after < ?1 AND deletion_state IS NULL",
    )?;
    let due: Vec<(String, String)> = stmt
        .query_map([now as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (doc, agency) in &due {
        conn.prepare_cached(
            "UPDATE custody_readers SET deletion_reason = 'expired', deletion_state = 'queued',
                 deletion_next_at = ?3 WHERE doc_id = ?1 AND agency = ?2",
        )?
        .execute(params![doc, agency, now as i64])?;
    }
    Ok(due)
}

/// Shreds the share and masked keys of a document once no reader may open it any more
/// (every reader revoked or past its `not_after`). Returns the reason if it shredded now.
pub fn shred_if_unneeded(
    conn: &Connection,
    doc_id: &str,
    now: u64,
) -> Result<Option<&'static str>> {
    let Some(doc) = document(conn, doc_id)? else {
        return Ok(None);
    };
    if doc.share.is_none() {
        return Ok(None);
    }
    let all = readers(conn, doc_id)?;
    let open_for_someone = all
        .iter()
        .any(|r| r.revoked_at.is_none() && r.not_after.is_none_or(|t| now <= t));
    if open_for_someone {
        return Ok(None);
    }
    let reason = if doc.revoked_at.is_some() || all.iter().all(|r| r.revoked_at.is_some()) {
        "revoked"
    } else {
        "expired"
    };
    shred(conn, doc_id, reason, now)?;
    Ok(Some(reason))
}

/// Crypto-shredding: overwrites the share and masked keys, then clears them.
pub fn shred(conn: &Connection, doc_id: &str, reason: &str, now: u64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE custody_documents SET share = zeroblob(length(share)), masked_keys = zeroblob(length(masked_keys))
         WHERE doc_id = ?1")?.execute([doc_id],
    )?;
    conn.prepare_cached(
        "UPDATE custody_documents SET share = NULL, masked_keys = NULL, shredded_at = ?2,
             shred_reason = ?3 WHERE doc_id = ?1",
    )?
    .execute(params![doc_id, now as i64, reason])?;
    Ok(())
}

/// Documents with readers queued for expiry or revocation, to check for shredding.
pub fn unshredded_with_pending(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT r.doc_id FROM custody_readers r JOIN custody_documents d ON d.doc_id = r.doc_id
         WHERE d.share IS NOT NULL AND r.deletion_state IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletion requests due at `now`, oldest first, leaving out the readers in `busy` (those
/// with a request in flight: one at a time per reader, so that a reader that never answers
/// holds one request slot, not all of them).
pub fn deletions_due(
    conn: &Connection,
    now: u64,
    limit: usize,
    busy: &[String],
) -> Result<Vec<DueDeletion>> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, agency, deletion_reason, deletion_attempts FROM custody_readers
         WHERE deletion_state = 'queued' AND deletion_next_at <= ?1
           AND agency NOT IN rarray(?3)
         ORDER BY deletion_next_at LIMIT ?2",
    )?;
    let busy: rusqlite::vtab::array::Array = std::rc::Rc::new(
        busy.iter()
            .map(|a| rusqlite::types::Value::from(a.clone()))
            .collect(),
    );
    let rows = stmt.query_map(params![now as i64, limit as i64, busy], |r| {
        Ok(DueDeletion {
            doc_id: r.get(0)?,
            agency: r.get(1)?,
            reason: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            attempts: r.get::<_, i64>(3)? as u32,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a verified deletion receipt.
pub fn deletion_done(conn: &Connection, doc_id: &str, agency: &str, receipt: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "UPDATE custody_readers SET deletion_state = 'done', deletion_receipt = ?3,
             deletion_error = NULL, deletion_attempts = deletion_attempts + 1
         WHERE doc_id = ?1 AND agency = ?2",
    )?
    .execute(params![doc_id, agency, receipt])?;
    Ok(())
}

/// Records a failed deletion request and when to ask again.
pub fn deletion_retry(
    conn: &Connection,
    doc_id: &str,
    agency: &str,
    next_at: u64,
    error: &str,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE custody_readers SET deletion_attempts = deletion_attempts + 1,
             deletion_next_at = ?3, deletion_error = ?4
         WHERE doc_id = ?1 AND agency = ?2 AND deletion_state = 'queued'",
    )?
    .execute(params![doc_id, agency, next_at as i64, error])?;
    Ok(())
}

/// A reader's deletion: (agency, state, reason, receipt).
pub type DeletionState = (String, Option<String>, Option<String>, Option<Vec<u8>>);

/// The deletion state of every reader of a document.
pub fn deletion_states(conn: &Connection, doc_id: &str) -> Result<Vec<DeletionState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT agency, deletion_state, deletion_reason, deletion_receipt FROM custody_readers
         WHERE doc_id = ?1 ORDER BY agency",
    )?;
    let rows = stmt.query_map([doc_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds a reader by forwarding consent.
pub fn add_forwarded_reader(
    conn: &Connection,
    doc_id: &str,
    agency: &str,
    forwarder: &str,
    not_after: Option<u64>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO custody_readers (doc_id, agency, origin, not_after, forwarded_by)
         VALUES (?1, ?2, 'forwarded', ?3, ?4)",
    )?
    .execute(params![
        doc_id,
        agency,
        not_after.map(|t| t as i64),
        forwarder
    ])?;
    Ok(())
}

/// Reader side: when this node deleted its copy of a document from `sender`, and why.
pub fn inbox_deletion(
    conn: &Connection,
    doc_id: &str,
    sender: &str,
) -> Result<Option<(u64, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT deleted_at, reason FROM inbox_deletions WHERE doc_id = ?1 AND sender = ?2",
        )?
        .query_row([doc_id, sender], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .optional()?)
}

/// Why a reader's node deleted its copy of a document when its own operator did (`liaise
/// delete`); the other reasons are a [`liaise_protocol::wire::DeletionReason`]'s.
pub const DELETED_BY_OPERATOR: &str = "operator";

/// How a recorded reason for a deleted copy reads in a message: `revoked`, `expired`, or
/// `by its operator`.
pub fn deletion_why(reason: &str) -> &str {
    if reason == DELETED_BY_OPERATOR {
        "by its operator"
    } else {
        reason
    }
}

/// Reader side: records a deletion (the first one stands) and why (a
/// [`liaise_protocol::wire::DeletionReason::as_str`] or [`DELETED_BY_OPERATOR`]). Returns
/// the recorded time.
pub fn record_inbox_deletion(
    conn: &Connection,
    doc_id: &str,
    sender: &str,
    reason: &str,
    now: u64,
) -> Result<u64> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO inbox_deletions (doc_id, sender, reason, deleted_at) VALUES (?1, ?2, ?3, ?4)")?.execute(params![doc_id, sender, reason, now as i64],
    )?;
    Ok(inbox_deletion(conn, doc_id, sender)?.map_or(now, |(at, _)| at))
}

/// Reader side: the senders of the copies of document `doc_id` this node received, deleted
/// or not (its originators: a forwarded copy is listed under the agency that sealed it). Two
/// senders can have used the same id.
pub fn received_copies(conn: &Connection, doc_id: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT sender FROM inbox WHERE doc_id = ?1 ORDER BY sender")?;
    let rows = stmt.query_map([doc_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Reader side: received copies not deleted yet whose expiry is due at `now` (unix
/// seconds): (doc id, sender).
pub fn expired_inbox(conn: &Connection, now: u64) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.doc_id, i.sender FROM inbox i
         LEFT JOIN inbox_deletions d ON d.doc_id = i.doc_id AND d.sender = i.sender
         WHERE d.doc_id IS NULL AND i.not_after < ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(now).unwrap_or(i64::MAX)], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records when a copy recorded before the inbox kept expiry times expires (`None`: never).
pub fn set_inbox_not_after(
    conn: &Connection,
    doc_id: &str,
    sender: &str,
    not_after: Option<u64>,
) -> Result<()> {
    conn.prepare_cached("UPDATE inbox SET not_after = ?3 WHERE doc_id = ?1 AND sender = ?2")?
        .execute(params![
            doc_id,
            sender,
            not_after.map_or(i64::MAX, |t| i64::try_from(t).unwrap_or(i64::MAX))
        ])?;
    Ok(())
}

/// Reader side: received copies not deleted yet, recorded before the inbox kept expiry
/// times: (doc id, sender, blob, sealed length). Each is read once to learn its expiry.
pub fn inbox_without_expiry(conn: &Connection) -> Result<Vec<(String, String, String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.doc_id, i.sender, i.blob, i.sealed_len FROM inbox i
         LEFT JOIN inbox_deletions d ON d.doc_id = i.doc_id AND d.sender = i.sender
         WHERE d.doc_id IS NULL AND i.not_after IS NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
#[path = "custody_tests.rs"]
mod tests;
