//! Revocation, expiry, crypto-shredding and deletion receipts (spec: `originator-control.md`,
//! "Revocation, expiry and deletion receipts").
//!
//! The originator's node revokes on request, shreds a document's key share once nobody may
//! open it, and asks each revoked or expired reader's node to delete its copy until a signed
//! deletion receipt comes back. A reader's node deletes expired copies by itself and answers
//! delete requests with a receipt.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use liaise_keys::{AgencyId, Timestamp};
use liaise_protocol::wire::{
    CUSTODY_VERSION, DeleteRequestBody, DeletionReason, DeletionReceiptBody, Message, MessageKind,
    Refusal, Signed,
};
use quinn::{RecvStream, SendStream};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::framed::{FRAME_TIMEOUT, FrameError, write_message_within};
use super::{Node, backoff, now_secs};
use crate::store::custody::{self, DueDeletion, LogKind, record_event};
use crate::store::{hex, parse_hex};

/// How often the custody worker looks for expiries and due deletion requests.
pub const CUSTODY_TICK: Duration = Duration::from_secs(1);
/// How long the originator waits for a deletion receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest one delete request may take, dialling included; a request that runs over is
/// a failed attempt, asked again with backoff. Covers a dial, opening a stream and writing
/// the request within `FRAME_TIMEOUT`, and the receipt within its own wait.
pub const DELETION_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most delete requests in flight at once, so that one reader that never answers holds
/// up none of the others.
pub const MAX_PARALLEL_DELETION_REQUESTS: usize = 8;
/// The pause before emptying the write-ahead log again after a reader held up a try.
const WAL_RETRY_PAUSE: Duration = Duration::from_secs(30);
/// The most due delete requests read from the database at once.
const MAX_DUE_DELETIONS: usize = 64;

/// The delete requests in flight, by (document, reader).
type InFlight = Arc<Mutex<HashSet<(String, String)>>>;

/// `liaise revoke`: revokes the document (or one reader), shreds the share if nobody may
/// open any more, and queues the delete requests.
pub async fn revoke(node: &Node, doc_id: &str, agency: Option<AgencyId>) -> Result<Value> {
    let id = parse_hex::<16>(doc_id).with_context(|| format!("`{doc_id}` is not a document id"))?;
    let doc = hex(&id);
    let now = now_secs();
    let (result, shredded_now) = node
        .store
        .db
        .write(move |c| {
            let Some(held) = custody::document(c, &doc)? else {
                bail!(
                    "this node holds no key share for document {doc}: it was not sealed here, or was \
                     sealed --offline (which cannot be revoked)"
                );
            };
            if let Some(a) = &agency
                && custody::reader(c, &doc, a.as_str())?.is_none()
            {
                bail!("{a} is not a reader of document {doc}");
            }
            let revoked = custody::revoke(c, &doc, agency.as_ref(), now)?;
            for reader in &revoked {
                let reader = AgencyId::new(reader).ok();
                record_event(c, LogKind::Revoke, Some(id), reader.as_ref(), None, json!({}))?;
            }
            let shredded = custody::shred_if_unneeded(c, &doc, now)?;
            if shredded.is_some() {
                record_event(
                    c,
                    LogKind::Deletion,
                    Some(id),
                    None,
                    None,
                    json!({ "what": "key share shredded", "why": shredded }),
                )?;
            }
            let answer = json!({
                "doc_id": doc,
                "revoked": revoked,
                "share_shredded": shredded.is_some() || held.share.is_none(),
            });
            Ok((answer, shredded.is_some()))
        })
        .await?;
    if shredded_now {
        node.wal_holds_shreds.store(true, Ordering::SeqCst);
    }
    node.custody_wake.notify_one();
    Ok(result)
}

/// Runs until shutdown: expiry on both sides, shredding, and delete requests with retries.
/// The local work comes first each round and never waits for the network: delete requests
/// run on their own tasks, at most [`MAX_PARALLEL_DELETION_REQUESTS`] at once.
pub async fn custody_worker(node: Arc<Node>) {
    let mut shutdown = node.shutdown.clone();
    let in_flight = InFlight::default();
    let slots = Arc::new(Semaphore::new(MAX_PARALLEL_DELETION_REQUESTS));
    // Expiry times of copies stored by an earlier version are learnt once per start, not
    // re-read every tick for copies whose file cannot be read.
    let mut expiry_learnt = false;
    let mut failed = FailedDeletions::default();
    // When emptying the write-ahead log may be tried again, after a try a reader held up.
    let mut wal_retry_at: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !expiry_learnt {
            match learn_missing_expiry(&node).await {
                Ok(()) => expiry_learnt = true,
                Err(e) => tracing::warn!("custody: {e:#}"),
            }
        }
        if let Err(e) = delete_expired_copies(&node, &mut failed).await {
            tracing::warn!("custody: {e:#}");
        }
        if let Err(e) = originator_tick(&node, &in_flight, &slots).await {
            tracing::warn!("custody: {e:#}");
        }
        wal_retry_at = empty_wal_after_shredding(&node, wal_retry_at).await;
        tokio::select! {
            _ = node.custody_wake.notified() => {}
            _ = tokio::time::sleep(CUSTODY_TICK) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Empties the database's write-ahead log after a key share was shredded, so the share's old
/// page images do not stay in it until SQLite happens to write over them. While a reader
/// keeps it from completing, it is tried again [`WAL_RETRY_PAUSE`] later (every write waits
/// for each try). Returns when it may be tried again, if it failed.
async fn empty_wal_after_shredding(node: &Node, not_before: Option<Instant>) -> Option<Instant> {
    if not_before.is_some_and(|at| Instant::now() < at) {
        return not_before;
    }
    if !node.wal_holds_shreds.swap(false, Ordering::SeqCst) {
        return None;
    }
    match node.store.db.truncate_wal().await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!("custody: after shredding a key share: {e:#}; trying again shortly");
            node.wal_holds_shreds.store(true, Ordering::SeqCst);
            Some(Instant::now() + WAL_RETRY_PAUSE)
        }
    }
}

/// Expiry and shredding on the originator's side, then a task for each due delete request
/// not in flight yet, as far as there are free slots.
async fn originator_tick(
    node: &Arc<Node>,
    in_flight: &InFlight,
    slots: &Arc<Semaphore>,
) -> Result<()> {
    let now = now_secs();
    let shredded = node
        .store
        .db
        .write(move |c| {
            custody::queue_expired(c, now)?;
            let mut shredded = false;
            for doc in custody::unshredded_with_pending(c)? {
                if let Some(why) = custody::shred_if_unneeded(c, &doc, now)? {
                    shredded = true;
                    let id = parse_hex::<16>(&doc);
                    record_event(
                        c,
                        LogKind::Deletion,
                        id,
                        None,
                        None,
                        json!({ "what": "key share shredded", "why": why }),
                    )?;
                }
            }
            Ok(shredded)
        })
        .await?;
    if shredded {
        node.wal_holds_shreds.store(true, Ordering::SeqCst);
    }
    if slots.available_permits() == 0 {
        return Ok(());
    }
    // One request in flight per reader: its other due rows wait, and other readers' rows
    // come first.
    let busy: Vec<String> = in_flight
        .lock()
        .map(|s| s.iter().map(|(_, agency)| agency.clone()).collect())
        .unwrap_or_default();
    let due = node
        .store
        .db
        .read(move |c| custody::deletions_due(c, now, MAX_DUE_DELETIONS, &busy))
        .await?;
    let mut asked: HashSet<String> = HashSet::new();
    for item in due {
        if !asked.insert(item.agency.clone()) {
            continue;
        }
        let key = (item.doc_id.clone(), item.agency.clone());
        let fresh = in_flight
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            continue;
        }
        let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
            if let Ok(mut s) = in_flight.lock() {
                s.remove(&key);
            }
            break;
        };
        let (node, in_flight) = (Arc::clone(node), Arc::clone(in_flight));
        tokio::spawn(async move {
            request_deletion(&node, item).await;
            if let Ok(mut s) = in_flight.lock() {
                s.remove(&key);
            }
            drop(permit);
            node.custody_wake.notify_one();
        });
    }
    Ok(())
}

/// One delete request, within [`DELETION_REQUEST_TIMEOUT`], and the bookkeeping of its
/// outcome.
async fn request_deletion(node: &Node, due: DueDeletion) {
    let result = tokio::time::timeout(DELETION_REQUEST_TIMEOUT, ask_to_delete(node, &due))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "no deletion receipt within {} s",
                DELETION_REQUEST_TIMEOUT.as_secs()
            ))
        });
    let (doc, agency) = (due.doc_id.clone(), due.agency.clone());
    let now = now_secs();
    let outcome = match result {
        Ok(receipt) => {
            let id = parse_hex::<16>(&doc);
            let reader = AgencyId::new(&agency).ok();
            node.store
                .db
                .write(move |c| {
                    custody::deletion_done(c, &doc, &agency, &receipt)?;
                    record_event(
                        c,
                        LogKind::DeletionReceipt,
                        id,
                        reader.as_ref(),
                        None,
                        // The receipt itself, for `liaise evidence export` (`log::export`).
                        json!({ "verified": true, "receipt": hex(&receipt) }),
                    )
                })
                .await
        }
        Err(e) => {
            let error = format!("{e:#}");
            tracing::info!(doc = %due.doc_id, reader = %due.agency, "delete request failed: {error}");
            let random = u64::from_le_bytes(liaise_keys::random::random_bytes::<8>());
            let wait = backoff(due.attempts, node.options.max_retry_interval, random);
            let next = now + wait.as_secs().max(1);
            node.store
                .db
                .write(move |c| custody::deletion_retry(c, &doc, &agency, next, &error))
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::error!("cannot record a deletion outcome: {e:#}");
    }
}

/// Sends one delete request; returns the verified deletion receipt.
async fn ask_to_delete(node: &Node, due: &DueDeletion) -> Result<Vec<u8>> {
    let reader = AgencyId::new(&due.agency).context("corrupt reader in the store")?;
    let document_id = parse_hex::<16>(&due.doc_id).context("corrupt document id")?;
    let reason = match due.reason.as_str() {
        "expired" => DeletionReason::Expired,
        _ => DeletionReason::Revoked,
    };
    let question = || {
        let body = DeleteRequestBody {
            version: CUSTODY_VERSION,
            document_id,
            originator: node.me.clone(),
            recipient: reader.clone(),
            reason,
            requested_at: Timestamp::now(),
        };
        let request = Signed::sign(&body, &node.secrets.signing).to_bytes();
        ((), Message::DeleteRequest { request })
    };
    let expected = &[MessageKind::DeletionReceipt, MessageKind::Refused];
    let ((), answer) = super::peers::ask(node, &reader, expected, RECEIPT_TIMEOUT, question)
        .await
        .context("no deletion receipt")?;
    let receipt = match answer {
        Message::DeletionReceipt { receipt } => receipt,
        Message::Refused { reason, detail } => bail!("refused: {}: {detail}", reason.as_str()),
        _ => bail!("unexpected answer"),
    };
    let roster = node.roster.current();
    let member = roster
        .member(&reader)
        .with_context(|| format!("{reader} is not in the roster"))?;
    let got: DeletionReceiptBody = Signed::from_bytes(&receipt, "deletion receipt")?
        .verify(&member.signing_key)
        .context("the deletion receipt does not verify")?;
    if got.document_id != document_id || got.originator != node.me || got.recipient != reader {
        bail!("the deletion receipt is about something else");
    }
    Ok(receipt)
}

/// The reader's side of a delete-request stream.
pub async fn serve_delete_request(
    node: &Node,
    mut send: SendStream,
    _recv: RecvStream,
    peer: &AgencyId,
    request: Vec<u8>,
) -> Result<(), FrameError> {
    // Refused deletions are never recorded, so the rate limit records nothing either.
    if let Some(refused) =
        super::share::refuse_if_flooding(node, &node.log_rate.deletions, peer, None).await
    {
        let _ = write_message_within(&mut send, &refused, FRAME_TIMEOUT).await;
        let _ = send.finish();
        return Ok(());
    }
    let answer = match delete_on_request(node, peer, &request).await {
        Ok(receipt) => Message::DeletionReceipt { receipt },
        Err((reason, detail)) => Message::Refused {
            reason,
            detail: liaise_protocol::wire::bounded_detail(&detail),
        },
    };
    let _ = write_message_within(&mut send, &answer, FRAME_TIMEOUT).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

async fn delete_on_request(
    node: &Node,
    peer: &AgencyId,
    request: &[u8],
) -> Result<Vec<u8>, (Refusal, String)> {
    let bad = |d: &str| (Refusal::BadRequest, d.to_owned());
    let signed = Signed::from_bytes(request, "delete request").map_err(|_| bad("malformed"))?;
    let claimed: DeleteRequestBody = signed.body_unverified().map_err(|_| bad("malformed"))?;
    if &claimed.originator != peer || claimed.recipient != node.me {
        return Err(bad("the request names other agencies than the connection"));
    }
    let roster = node.roster.current();
    let member = roster
        .member(peer)
        .ok_or_else(|| bad("not in the roster"))?;
    let body: DeleteRequestBody = signed
        .verify(&member.signing_key)
        .map_err(|_| bad("bad signature"))?;
    let (deleted_at, _) = delete_copy(node, body.document_id, peer, body.reason.as_str())
        .await
        .map_err(|e| (Refusal::Internal, format!("{e:#}")))?;
    let receipt = DeletionReceiptBody {
        version: CUSTODY_VERSION,
        document_id: body.document_id,
        originator: peer.clone(),
        recipient: node.me.clone(),
        reason: body.reason,
        deleted_at: Timestamp(deleted_at),
    };
    Ok(Signed::sign(&receipt, &node.secrets.signing).to_bytes())
}

/// Deletes this node's copy of a document received from `sender` (if it holds one) and
/// records the deletion and why (a [`DeletionReason::as_str`] or
/// [`custody::DELETED_BY_OPERATOR`]); returns when it was (first) deleted, and whether this
/// call was that first deletion.
pub(crate) async fn delete_copy(
    node: &Node,
    document_id: [u8; 16],
    sender: &AgencyId,
    reason: &'static str,
) -> Result<(u64, bool)> {
    let (doc, from) = (hex(&document_id), sender.as_str().to_owned());
    let held = node
        .store
        .db
        .read({
            let (doc, from) = (doc.clone(), from.clone());
            move |c| crate::store::records::inbox_receipt(c, &doc, &from)
        })
        .await?;
    if let Some(hash) = held.and_then(|(blob, _)| parse_hex::<32>(&blob)) {
        remove_blob_file(node, &hash)?;
    }
    let (forwards, seen) = forwards_of(node, &doc, sender).await?;
    let now = now_secs();
    let origin = sender.clone();
    let (at, first, stored, late) = node
        .store
        .db
        .write(move |c| {
            // The copy held now, looked up again in the transaction that records the
            // deletion: one stored since the read above cannot slip past it (and one stored
            // later is refused, see `receive`). A small document is held in the database and
            // goes with this transaction.
            let stored = crate::store::records::inbox_receipt(c, &doc, &from)?
                .and_then(|(blob, _)| parse_hex::<32>(&blob));
            if let Some(hash) = &stored {
                crate::store::held::remove(c, hash)?;
            }
            for (recipient, _) in &forwards {
                crate::store::forwards::cancel_forward(c, &doc, recipient, reason, now)?;
            }
            // A forward queued since they were read (its copy of the document made before the
            // blob above went) goes too: it must not outlive the deletion receipt.
            let mut late = Vec::new();
            for (recipient, blob) in crate::store::forwards::of_document(c, &doc)? {
                if !seen.contains(&recipient) {
                    crate::store::forwards::cancel_forward(c, &doc, &recipient, reason, now)?;
                    late.extend(parse_hex::<32>(&blob));
                }
            }
            let first = custody::inbox_deletion(c, &doc, &from)?.is_none();
            let at = custody::record_inbox_deletion(c, &doc, &from, reason, now)?;
            if first {
                record_event(
                    c,
                    LogKind::Deletion,
                    Some(document_id),
                    Some(&origin),
                    None,
                    json!({ "why": reason }),
                )?;
            }
            Ok((at, first, stored, late))
        })
        .await?;
    // A large copy that arrived between the read and the transaction, and forwarded copies
    // queued meanwhile.
    for hash in stored.iter().chain(&late) {
        remove_blob_file(node, hash)?;
    }
    Ok((at, first))
}

/// Removes the blob file with content hash `hash`, if there is one, durably: the folder is
/// fsynced, so that a crash cannot bring back a copy a signed deletion receipt says is gone.
fn remove_blob_file(node: &Node, hash: &[u8; 32]) -> Result<()> {
    match std::fs::remove_file(node.store.blobs.path(hash)) {
        Ok(()) => crate::store::blobs::sync_dir(node.store.blobs.dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("cannot delete the stored document"),
    }
}

/// The forwarded documents this node made of `originator`'s document `doc` (new reader,
/// blob), their blobs deleted: each holds the whole sealed document. Another originator's
/// document with the same id (its consent names that originator) is left alone. Also every
/// new reader a forward of `doc` was queued for, whoever's: one queued after this read is
/// not among them.
async fn forwards_of(
    node: &Node,
    doc: &str,
    originator: &AgencyId,
) -> Result<(Vec<(String, String)>, Vec<String>)> {
    let id = doc.to_owned();
    let queued = node
        .store
        .db
        .read(move |c| crate::store::forwards::of_document(c, &id))
        .await?;
    let seen = queued
        .iter()
        .map(|(recipient, _)| recipient.clone())
        .collect();
    let mut mine = Vec::new();
    for (recipient, blob) in queued {
        let Some(hash) = parse_hex::<32>(&blob) else {
            continue;
        };
        let path = node.store.blobs.path(&hash);
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let consent = super::forwarded_in::split_prefix(BufReader::new(file))
            .ok()
            .and_then(|(consent, _)| consent)
            .and_then(|bytes| super::forwarded_in::stored_consent(&bytes));
        if consent.is_some_and(|c| c.originator == *originator) {
            remove_blob_file(node, &hash)?;
            mine.push((recipient, blob));
        }
    }
    Ok((mine, seen))
}

/// Expired copies whose deletion failed, and when: each is tried again only after
/// [`DELETION_RETRY`], so one copy that cannot be deleted (a file the node may not unlink, a
/// database error) neither holds up the others nor fills the log with warnings.
#[derive(Default)]
struct FailedDeletions(std::collections::HashMap<String, tokio::time::Instant>);

/// How long an expired copy whose deletion failed waits before the next try.
const DELETION_RETRY: Duration = Duration::from_secs(60);

/// A reader's node deletes every received copy whose `not_after` (for itself) has passed.
async fn delete_expired_copies(node: &Node, failed: &mut FailedDeletions) -> Result<()> {
    let now = now_secs();
    let due = node
        .store
        .db
        .read(move |c| custody::expired_inbox(c, now))
        .await?;
    failed.0.retain(|_, at| at.elapsed() < DELETION_RETRY);
    for (doc, sender) in due {
        if failed.0.contains_key(&doc) {
            continue;
        }
        let (Some(id), Ok(sender)) = (parse_hex::<16>(&doc), AgencyId::new(&sender)) else {
            continue;
        };
        if let Err(e) = delete_copy(node, id, &sender, DeletionReason::Expired.as_str()).await {
            tracing::warn!(
                "cannot delete the expired copy of {doc}: {e:#}; trying again in {} s",
                DELETION_RETRY.as_secs()
            );
            failed.0.insert(doc, tokio::time::Instant::now());
        }
    }
    Ok(())
}

/// Copies recorded before the inbox kept expiry times: their expiry read once from the
/// stored document (verified when it arrived; its header, and a forwarded document's
/// consent, which sets the new reader's time, are what they were then) and recorded.
async fn learn_missing_expiry(node: &Node) -> Result<()> {
    let unknown = node.store.db.read(custody::inbox_without_expiry).await?;
    for (doc, sender, blob, sealed_len) in unknown {
        let Some(hash) = parse_hex::<32>(&blob) else {
            continue;
        };
        let Ok(stored) = node.store.held(hash, sealed_len).await else {
            continue;
        };
        let Ok(file) = stored.open() else {
            continue;
        };
        let Ok((consent, sealed)) = super::forwarded_in::split_prefix(BufReader::new(file)) else {
            continue;
        };
        let not_after = match consent {
            Some(bytes) => match super::forwarded_in::stored_consent(&bytes) {
                Some(consent) => consent.not_after,
                None => continue,
            },
            None => match liaise_protocol::danger_read_unverified_header(sealed) {
                Ok(info) => info.recipient(&node.me).and_then(|r| r.policy.not_after),
                Err(_) => continue,
            },
        };
        node.store
            .db
            .write(move |c| custody::set_inbox_not_after(c, &doc, &sender, not_after.map(|t| t.0)))
            .await?;
    }
    Ok(())
}

/// `liaise custody`: the share's state, each reader's access and deletion, with receipts
/// verified against the roster.
pub async fn custody_status(node: &Node, doc_id: &str) -> Result<Value> {
    let id = parse_hex::<16>(doc_id).with_context(|| format!("`{doc_id}` is not a document id"))?;
    let doc = hex(&id);
    let (held, readers, deletions) = node
        .store
        .db
        .read(move |c| {
            Ok((
                custody::document(c, &doc)?,
                custody::readers(c, &doc)?,
                custody::deletion_states(c, &doc)?,
            ))
        })
        .await?;
    let Some(held) = held else {
        bail!("this node holds no key share for document {doc_id}");
    };
    let roster = node.roster.current();
    let now = now_secs();
    let readers: Vec<Value> = readers
        .iter()
        .map(|r| {
            let access = if r.revoked_at.is_some() {
                "revoked"
            } else if r.not_after.is_some_and(|t| now > t) {
                "expired"
            } else {
                "open"
            };
            let deletion = deletions.iter().find(|d| d.0 == r.agency);
            let receipt = deletion.and_then(|d| d.3.clone());
            let verified = receipt.as_ref().is_some_and(|bytes| {
                AgencyId::new(&r.agency)
                    .ok()
                    .and_then(|a| roster.member(&a).map(|m| m.signing_key))
                    .and_then(|key| {
                        Signed::from_bytes(bytes, "deletion receipt")
                            .ok()?
                            .verify::<DeletionReceiptBody>(&key)
                            .ok()
                    })
                    .is_some_and(|b| b.document_id == id && b.originator == node.me)
            });
            json!({
                "agency": r.agency,
                "origin": r.origin,
                "forwarded_by": r.forwarded_by,
                "not_after": r.not_after,
                "access": access,
                "deletion": deletion.and_then(|d| d.1.clone()).unwrap_or_else(|| "none".into()),
                "deletion_reason": deletion.and_then(|d| d.2.clone()),
                "deletion_receipt_verified": verified,
                "deletion_receipt": receipt.map(|b| hex(&b)),
            })
        })
        .collect();
    Ok(json!({
        "doc_id": doc_id,
        "share": if held.share.is_some() { "held" } else { "shredded" },
        "shred_reason": held.shred_reason,
        "readers": readers,
    }))
}
