//! Building an evidence bundle for one document from this node's store
//! (spec: `docs/spec/evidence.md`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use liaise_keys::AgencyId;
use liaise_protocol::evidence::{Anchor, EvidenceMeta, MAX_EVIDENCE_ANCHORS, bundle_prefix};
use liaise_protocol::log::{ChainSegment, GENESIS_HEAD, Leaf, LogEntry, LogKind, MAX_PROOF_LEAVES};
use liaise_protocol::sealed::read_forward_prefix;
use rusqlite::Connection;

use super::{checkpoints, entries, seqs_for_doc};
use crate::fsutil::{starts_with, write_out_with};
use crate::store::{Held, hex, parse_hex, records};

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Delivery receipts included.
    pub receipts: usize,
    /// Deletion receipts included.
    pub deletion_receipts: usize,
    /// Log entries included.
    pub entries: usize,
    /// Entries about the document left out because no checkpoint covers them yet.
    pub unanchored: usize,
}

/// Writes the bundle for `doc_id` to `out`. `blob` is the document as this node holds it (a
/// sealed document, or the forwarded document its new reader received); `store` is the
/// node's store folder.
pub fn export(
    conn: &Connection,
    store: &Path,
    me: &AgencyId,
    doc_id: &[u8; 16],
    blob: &Held,
    out: &Path,
) -> Result<Exported> {
    let id = hex(doc_id);
    let blob_name = records::blob_of_document(conn, &id)?
        .with_context(|| format!("no document {id} in this node's store"))?;
    let content_hash = parse_hex::<32>(&blob_name).context("corrupt blob name in the store")?;
    let sealed_len = blob.sealed_len()?;

    // The receipts for copies this node forwarded name the forwarded copy: each goes in with
    // the consent a verifier needs to recompute that copy's hash, or not at all.
    let forwarded = forward_consents(conn, store, &id)?;
    let mut receipts: Vec<Vec<u8>> = records::receipts_for(conn, &id)?
        .into_iter()
        .filter(|r| match forwarded.get(&r.recipient) {
            Some(consent) => consent.is_some(),
            None => true,
        })
        .map(|r| r.receipt)
        .collect();
    receipts.extend(own_receipts(conn, &id)?);
    let forward_consents: Vec<Vec<u8>> = forwarded.into_values().flatten().collect();

    let seqs = seqs_for_doc(conn, doc_id)?;
    let mut groups: BTreeMap<u64, (Vec<u8>, Vec<u64>)> = BTreeMap::new();
    let mut unanchored = 0;
    for seq in &seqs {
        match checkpoints::anchor_for(conn, *seq)? {
            Some((cp_seq, cp)) => groups
                .entry(cp_seq)
                .or_insert_with(|| (cp, Vec::new()))
                .1
                .push(*seq),
            None => unanchored += 1,
        }
    }
    if groups.is_empty() {
        bail!(
            "no signed checkpoint covers the log entries about {id} yet; the node signs one within 30 seconds while it runs, try again then"
        );
    }
    if groups.len() > MAX_EVIDENCE_ANCHORS {
        bail!(
            "the log entries about {id} sit below {} checkpoints, more than the {MAX_EVIDENCE_ANCHORS} one bundle can carry",
            groups.len()
        );
    }
    let mut anchors = Vec::new();
    let mut deletion_receipts = Vec::new();
    let mut disclosed = 0;
    for (cp_seq, (checkpoint, seqs)) in groups {
        let first = seqs.first().copied().unwrap_or(cp_seq);
        if cp_seq - first >= MAX_PROOF_LEAVES as u64 {
            bail!(
                "the log entries about {id} are too far from a checkpoint to prove in one bundle"
            );
        }
        let prev_head = match first.checked_sub(1) {
            Some(prev) => entries(conn, prev, prev)?
                .first()
                .map(|e| e.head)
                .context("the log is missing an entry; run `liaise log verify`")?,
            None => GENESIS_HEAD,
        };
        let mut leaves = Vec::new();
        for row in entries(conn, first, cp_seq)? {
            if seqs.contains(&row.seq) {
                let entry = LogEntry::decode(&row.bytes)?;
                if entry.doc_id != Some(*doc_id) {
                    bail!(
                        "log entry {} is indexed under {id} but is about another document; run `liaise log verify`",
                        row.seq
                    );
                }
                if entry.kind == LogKind::DeletionReceipt {
                    deletion_receipts.extend(receipt_in_detail(&entry.detail));
                }
                leaves.push(Leaf::Entry(row.bytes));
                disclosed += 1;
            } else {
                leaves.push(Leaf::Hidden(row.leaf));
            }
        }
        anchors.push(Anchor {
            checkpoint,
            countersignatures: checkpoints::countersignatures_at(conn, cp_seq)?,
            segment: ChainSegment {
                start_seq: first,
                prev_head,
                leaves,
            },
        });
    }
    // Deletion receipts recorded before the log entries carried them (and any whose entry is
    // not anchored yet) are in the custody table; each is in the bundle once.
    for receipt in stored_deletion_receipts(conn, &id)? {
        if !deletion_receipts.contains(&receipt) {
            deletion_receipts.push(receipt);
        }
    }
    let meta = EvidenceMeta {
        exporter: me.clone(),
        document_id: *doc_id,
        content_hash,
        sealed_len,
        receipts: receipts.clone(),
        deletion_receipts: deletion_receipts.clone(),
        anchors,
        forward_consents,
    };
    write_bundle(out, &bundle_prefix(&meta), blob)?;
    Ok(Exported {
        receipts: receipts.len(),
        deletion_receipts: deletion_receipts.len(),
        entries: disclosed,
        unanchored,
    })
}

/// Writes `prefix` and the document to `out` whole and private ([`write_out_with`]): a new
/// file, or in place of an earlier bundle, which stays whole until the new one is. Any other
/// file already there is refused, and a failed export leaves nothing half-written.
fn write_bundle(out: &Path, prefix: &[u8], blob: &Held) -> Result<()> {
    let mut document = blob.open()?;
    let is_bundle = |path: &Path| starts_with(path, &liaise_protocol::evidence::EVIDENCE_MAGIC);
    write_out_with(out, 0o600, "an evidence bundle", is_bundle, |file| {
        file.write_all(prefix)?;
        std::io::copy(&mut document, file).map(|_| ())
    })
}

/// The receipts this node signed for a document it received.
fn own_receipts(conn: &Connection, doc_id: &str) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT receipt FROM inbox WHERE doc_id = ?1 ORDER BY sender")?;
    let rows = stmt.query_map([doc_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The copies of `doc_id` this node forwarded, by new reader: the originator's consent in
/// front of each, as this node holds it, or `None` if the copy's bytes are gone (deleted with
/// the document it was made from).
fn forward_consents(
    conn: &Connection,
    store: &Path,
    doc_id: &str,
) -> Result<BTreeMap<String, Option<Vec<u8>>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT recipient, blob FROM outbox_forwards WHERE doc_id = ?1 ORDER BY recipient",
    )?;
    let rows = stmt.query_map([doc_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut consents = BTreeMap::new();
    for row in rows {
        let (reader, blob) = row?;
        let hash = parse_hex::<32>(&blob).context("corrupt blob name in the store")?;
        let consent = match crate::store::stored_blob(conn, store, &hash)? {
            Some(held) => Some(
                read_forward_prefix(&mut held.open()?)
                    .with_context(|| format!("the copy forwarded to {reader} is damaged"))?,
            ),
            None => None,
        };
        consents.insert(reader, consent);
    }
    Ok(consents)
}

/// The verified deletion receipts this node, as originator, holds for a document.
fn stored_deletion_receipts(conn: &Connection, doc_id: &str) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT deletion_receipt FROM custody_readers
         WHERE doc_id = ?1 AND deletion_receipt IS NOT NULL ORDER BY agency",
    )?;
    let rows = stmt.query_map([doc_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A `deletion-receipt` entry carries the signed receipt as hex in `detail.receipt`.
fn receipt_in_detail(detail: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(detail).ok()?;
    let text = value.get("receipt")?.as_str()?;
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}
