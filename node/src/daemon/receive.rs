//! The receiving side: accepted connections, their streams, and incoming documents.
//!
//! A document is written to `incoming/<sender>-<id>-<hash>.partial` (fsynced every
//! [`SYNC_EVERY`] bytes and at the end), so a resumed offer continues from the bytes already
//! held. When complete it must match the offered hash, verify as a sealed document signed by
//! the peer's agency per the roster, and list this agency as a recipient (or be a forwarded
//! document the peer forwards with its originator's consent, see [`super::forwarded_in`]);
//! then it is renamed
//! into the blob folder, recorded with a signed receipt in one group commit, and the receipt
//! is sent. The same document again gets the stored receipt.
//!
//! A document of at most [`INLINE_MAX_LEN`] bytes skips the partial file: it is taken into
//! memory whole, checked the same way, and kept in the database with its inbox row and
//! receipt in one group commit (see [`crate::store::held`]). It has nothing to resume: an
//! interrupted one is sent again from its first byte.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, Timestamp};
use liaise_protocol::wire::WireError;
use liaise_protocol::wire::{
    CloseCode, ContentHasher, MAX_DOCUMENT_LEN, Message, MessageKind, RECEIPT_VERSION, ReceiptBody,
    RejectReason, SignedReceipt, content_hash,
};
use liaise_protocol::{DocumentInfo, OpenError, SignerCheck};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::admission::{
    self, HANDSHAKE_TIMEOUT, MAX_CONNECTIONS_PER_AGENCY, MAX_PENDING_HANDSHAKES, PerAgency,
    PerSource, ROSTER_RECHECK_INTERVAL, recheck_peer,
};
use super::forwarded_in::{Check, Entitlement, MAX_FORWARD_PREFIX_LEN, entitlement, skip_prefix};
use super::framed::{FRAME_TIMEOUT, FrameError, read_message, write_message_within};
use super::gossip::serve_hello;
use super::incoming::{
    HeaderGate, OfferedDocument, PartialWriter, Reserve, check_free_space,
    check_free_space_keeping, check_unfinished, is_disk_full, offered_by, sweep_partials,
};
use super::resume::ResumeStates;
use super::tee_verify::{StreamVerifier, Verdict};
use super::{Node, now_secs, quota};
use crate::store::held::{self, INLINE_MAX_LEN};
use crate::store::holdings;
use crate::store::records::{self, InboxRow};
use crate::store::{Held, hex};
use crate::transport::peer_agency;
use crate::trust::RosterSignerCheck;

/// Incoming bytes are fsynced at least this often, bounding what a crash can lose.
pub const SYNC_EVERY: u64 = 64 * 1024 * 1024;
/// The first message on a stream a peer opens.
const FIRST: &[MessageKind] = &[
    MessageKind::Hello,
    MessageKind::Offer,
    MessageKind::ShareRequest,
    MessageKind::DeleteRequest,
    MessageKind::ForwardRequest,
    MessageKind::WitnessRequest,
];
/// What is allowed where a message may come only once per connection: nothing.
const NOT_AGAIN: &[MessageKind] = &[];

/// Accepts connections until shutdown. A peer whose address is not validated yet is sent a
/// QUIC retry first (a handshake flood then costs it a round trip per attempt and this node
/// no state); a handshake has [`HANDSHAKE_TIMEOUT`] and one of [`MAX_PENDING_HANDSHAKES`]
/// slots, at most [`admission::MAX_HANDSHAKES_PER_SOURCE`] of them from one source; only an
/// established connection takes one of the long-lived connection slots, and each agency at
/// most [`MAX_CONNECTIONS_PER_AGENCY`] of them.
pub async fn accept_loop(node: Arc<Node>) {
    let mut shutdown = node.shutdown.clone();
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let per_source = Arc::new(PerSource::default());
    tokio::spawn(sweep_partials(Arc::clone(&node)));
    let per_agency = Arc::new(PerAgency::default());
    loop {
        let incoming = tokio::select! {
            incoming = node.endpoint.accept() => incoming,
            _ = shutdown.changed() => break,
        };
        let Some(incoming) = incoming else { break };
        if !incoming.remote_address_validated() && incoming.may_retry() {
            let _ = incoming.retry();
            continue;
        }
        let remote = incoming.remote_address();
        let Some(from_source) = PerSource::enter(&per_source, remote) else {
            tracing::info!(
                %remote,
                "too many handshakes from {}; refused",
                admission::handshake_source(remote)
            );
            incoming.refuse();
            continue;
        };
        let Ok(handshake) = Arc::clone(&handshakes).try_acquire_owned() else {
            tracing::info!(%remote, "too many handshakes; refused");
            incoming.refuse();
            continue;
        };
        let node = Arc::clone(&node);
        let per_agency = Arc::clone(&per_agency);
        tokio::spawn(async move {
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return tracing::info!(%remote, "handshake refused: {e}"),
                Err(_) => return tracing::info!(%remote, "handshake timed out"),
            };
            drop((handshake, from_source));
            let Ok(_permit) = Arc::clone(&node.connection_slots).try_acquire_owned() else {
                tracing::warn!(%remote, "too many connections; closing a new one");
                conn.close(VarInt::from_u32(CloseCode::Internal.code()), b"busy");
                return;
            };
            serve_connection(node, conn, &per_agency).await;
        });
    }
}

async fn serve_connection(node: Arc<Node>, conn: quinn::Connection, per_agency: &Arc<PerAgency>) {
    let peer = match peer_agency(&conn, &node.roster) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!("closing connection: {e:#}");
            conn.close(
                VarInt::from_u32(CloseCode::NotAuthorized.code()),
                b"not authorized",
            );
            return;
        }
    };
    let Some(_slot) = PerAgency::enter(per_agency, &peer) else {
        tracing::warn!(agency = %peer, "closing connection: {MAX_CONNECTIONS_PER_AGENCY} connections of this agency are open");
        conn.close(
            VarInt::from_u32(CloseCode::Internal.code()),
            b"too many connections",
        );
        return;
    };
    let span = tracing::info_span!("peer", agency = %peer);
    serve_streams(node, conn, peer).instrument(span).await;
}

/// Serves the peer's streams until the connection ends, re-checking the peer whenever the
/// roster changes and every [`ROSTER_RECHECK_INTERVAL`].
async fn serve_streams(node: Arc<Node>, conn: quinn::Connection, peer: AgencyId) {
    node.set_reachable(peer.as_str(), true);
    super::reachability::watch(&node, conn.clone(), peer.as_str());
    tracing::debug!("connection accepted");
    node.dial_backs.connected(&node, &peer);
    let mut roster_changes = node.roster.subscribe();
    let mut recheck = tokio::time::interval(ROSTER_RECHECK_INTERVAL);
    recheck.tick().await;
    let last_hello = Arc::new(std::sync::Mutex::new(None));
    loop {
        let (send, recv) = tokio::select! {
            streams = conn.accept_bi() => match streams {
                Ok(streams) => streams,
                Err(_) => break,
            },
            changed = roster_changes.changed() => {
                if changed.is_err() || !recheck_peer(&node, &conn, &peer) {
                    break;
                }
                continue;
            }
            _ = recheck.tick() => {
                if !recheck_peer(&node, &conn, &peer) {
                    break;
                }
                continue;
            }
        };
        let node = Arc::clone(&node);
        let conn = conn.clone();
        let peer = peer.clone();
        let last_hello = Arc::clone(&last_hello);
        tokio::spawn(async move {
            let stream = serve_stream(&node, &conn, send, recv, &peer, &last_hello);
            match stream.await {
                Err(e) if e.closes_connection() => {
                    tracing::warn!(agency = %peer, "closing connection: {e}");
                    let reason: &[u8] = match e {
                        FrameError::Violation(_) => b"protocol violation",
                        _ => b"stream stalled",
                    };
                    conn.close(e.code(), reason);
                }
                Err(e) => tracing::info!(agency = %peer, "stream ended: {e}"),
                Ok(()) => {}
            }
        });
    }
}

async fn serve_stream(
    node: &Node,
    conn: &quinn::Connection,
    send: SendStream,
    mut recv: RecvStream,
    peer: &AgencyId,
    last_hello: &std::sync::Mutex<Option<tokio::time::Instant>>,
) -> Result<(), FrameError> {
    match read_message(&mut recv, FIRST).await? {
        // A hello exchange (and so a roster push) at most every REHELLO_MIN_INTERVAL.
        Message::Hello { .. } if !super::rehello::hello_allowed(last_hello) => {
            Err(FrameError::Violation(WireError::Unexpected {
                got: MessageKind::Hello,
                expected: NOT_AGAIN,
            }))
        }
        // A protocol violation inside the hello exchange keeps its close code.
        Message::Hello { roster_serial, .. } => {
            serve_hello(node, send, recv, peer.as_str(), roster_serial)
                .await
                .map_err(|e| {
                    e.downcast::<FrameError>()
                        .unwrap_or_else(|e| FrameError::Stream(e.to_string()))
                })
        }
        Message::Offer {
            document_id,
            sealed_len,
            content_hash,
        } => {
            let offer = Offer {
                document_id,
                sealed_len,
                content_hash,
            };
            receive_document(node, conn, send, recv, peer, offer).await
        }
        Message::ShareRequest { request } => {
            super::share::serve_share_request(node, send, recv, peer, request).await
        }
        Message::DeleteRequest { request } => {
            super::deletion::serve_delete_request(node, send, recv, peer, request).await
        }
        Message::ForwardRequest { request } => {
            super::forward::serve_forward_request(node, send, recv, peer, request).await
        }
        // Any number per connection, bounded per agency by the witness rate limit (`log.md`,
        // "Witnessing").
        Message::WitnessRequest { since } => {
            match super::witness::serve_exchange(node, send, recv, peer, since)
                .await
                .map_err(super::witness::as_frame_error)
            {
                // A checkpoint or countersignature that does not verify ends up here too:
                // worth an operator's look, unlike a stream the peer gave up.
                Err(FrameError::Stream(e)) => {
                    tracing::warn!(agency = %peer, "checkpoint exchange failed: {e}");
                    Ok(())
                }
                other => other,
            }
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    document_id: [u8; 16],
    sealed_len: u64,
    content_hash: [u8; 32],
}

/// Only protocol violations close the connection; everything else is answered on the stream.
async fn receive_document(
    node: &Node,
    conn: &quinn::Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    peer: &AgencyId,
    offer: Offer,
) -> Result<(), FrameError> {
    let key = (peer.as_str().to_owned(), hex(&offer.document_id));
    let entered = node
        .receiving
        .enter(peer, &key.1, offer.sealed_len, conn)
        .await;
    let entered = match entered {
        Ok(entered) => entered,
        Err(busy) => {
            let _ = reject(&mut send, RejectReason::Busy, busy.detail()).await;
            return Ok(());
        }
    };
    let result = receive_inner(node, &mut send, &mut recv, peer, offer).await;
    drop(entered);
    match result {
        Ok(()) => {
            tracing::info!(agency = %peer, doc = %key.1, "received; receipt sent");
            Ok(())
        }
        Err(Outcome::Violation(e)) => Err(e),
        Err(Outcome::Reject(reason, detail)) => {
            // A full disk or an agency over its quota wants this node's operator.
            if reason == RejectReason::DiskFull {
                tracing::warn!(agency = %peer, doc = %key.1, "rejected: {}: {detail}", reason.as_str());
            } else {
                tracing::info!(agency = %peer, doc = %key.1, "rejected: {}: {detail}", reason.as_str());
            }
            let _ = recv.stop(VarInt::from_u32(CloseCode::Done.code()));
            let _ = reject(&mut send, reason, &detail).await;
            Ok(())
        }
        Err(Outcome::Gone(e)) => {
            tracing::info!(agency = %peer, doc = %key.1, "transfer interrupted: {e}");
            Ok(())
        }
    }
}

enum Outcome {
    Violation(FrameError),
    Reject(RejectReason, String),
    Gone(String),
}

fn internal(e: impl std::fmt::Display) -> Outcome {
    Outcome::Reject(RejectReason::Internal, e.to_string())
}

async fn receive_inner(
    node: &Node,
    send: &mut SendStream,
    recv: &mut RecvStream,
    peer: &AgencyId,
    offer: Offer,
) -> Result<(), Outcome> {
    if offer.sealed_len > MAX_DOCUMENT_LEN {
        return Err(Outcome::Reject(
            RejectReason::TooLarge,
            format!("limit {MAX_DOCUMENT_LEN}"),
        ));
    }
    if offer.sealed_len <= INLINE_MAX_LEN {
        // A copy held already is found in the transaction that would store this one, which
        // answers with the first receipt: no read before the bytes, which are few.
        return receive_small(node, send, recv, peer, offer).await;
    }
    let doc_id = hex(&offer.document_id);
    // Already held: answer with the same receipt, unless this node deleted its copy since
    // (as `record_received` decides for a small document).
    let (d, s) = (doc_id.clone(), peer.as_str().to_owned());
    let held = node
        .store
        .db
        .read(move |c| {
            let Some((sender, blob, receipt)) = records::inbox_receipt_from_peer(c, &d, &s)? else {
                return Ok(None);
            };
            let deleted = crate::store::custody::inbox_deletion(c, &d, &sender)?;
            Ok(Some((blob, receipt, deleted)))
        })
        .await
        .map_err(internal)?;
    if let Some((blob, receipt, deleted)) = held {
        // The same bytes from the same peer (a sender that lost the receipt): it was
        // delivered, so the same receipt, also if this node has deleted its copy since.
        if blob == hex(&offer.content_hash) {
            send_accept(send, offer.sealed_len).await?;
            expect_end(recv).await?;
            return send_receipt(send, receipt).await;
        }
        if let Some((at, reason)) = deleted {
            return Err(deleted_already(at, &reason));
        }
        return Err(Outcome::Reject(
            RejectReason::BadDocument,
            "another document with this id was received".into(),
        ));
    }

    let partial = node
        .store
        .blobs
        .partial_path(peer, &offer.document_id, &offer.content_hash);
    let in_flight = node.receiving.offered();
    let holder = peer.as_str().to_owned();
    let stored = node
        .store
        .db
        .read(move |c| holdings::held_by(c, &holder))
        .await
        .map_err(internal)?;
    let limit = agency_limit(node);
    let blobs = node.store.blobs.clone();
    let (quota_peer, quota_doc) = (peer.clone(), doc_id.clone());
    let quota_hash = hex(&offer.content_hash);
    // The quota check and the look at a partial held already, in one trip off the runtime.
    // No transfer of this id from this peer is running (a second one is refused as busy), so
    // its partials under other hashes, which can never complete, go first.
    let resume_states = Arc::clone(&node.resume_states);
    let (held_len, hasher) = tokio::task::spawn_blocking({
        let partial = partial.clone();
        move || {
            blobs.discard_other_partials(&quota_peer, &quota_doc, &quota_hash);
            let unfinished = check_unfinished(
                &blobs,
                &quota_peer,
                (&quota_doc, &quota_hash),
                offer.sealed_len,
                &in_flight,
            )
            .map_err(|r| Outcome::Reject(r.reason, r.detail))?;
            // Its documents kept here and its other unfinished transfers, with this one. The
            // check is made here only, before the transfer: a small document is checked
            // against the transfers in progress, so it cannot take the room of this one.
            let mut reserve = Reserve::Store;
            if let Some(limit) = limit {
                let kept = quota::Kept {
                    stored: stored.bytes,
                    unfinished,
                    copies: stored.copies,
                };
                quota::check(&quota_peer, kept, offer.sealed_len, limit)
                    .map_err(|r| Outcome::Reject(r.reason, r.detail))?;
                reserve = quota::reserve(kept, offer.sealed_len, limit);
            }
            let (held, hasher) =
                prefix_state(&quota_peer, &partial, offer.sealed_len, &resume_states)
                    .map_err(internal)?;
            if let Some(dir) = partial.parent() {
                check_free_space_keeping(dir, offer.sealed_len.saturating_sub(held), reserve)
                    .map_err(|r| Outcome::Reject(r.reason, r.detail))?;
            }
            Ok((held, hasher))
        }
    })
    .await
    .map_err(internal)??;
    // A resumed transfer is checked again before more bytes are taken: the roster may have
    // changed since.
    let mut gate = HeaderGate::default();
    if gate.due(held_len, offer.sealed_len) {
        gate = check_header(node, &partial, gate, held_len, peer, &offer).await?;
    }
    if held_len > 0 {
        tracing::info!(agency = %peer, doc = %doc_id, "resuming a transfer at byte {held_len} of {}", offer.sealed_len);
    }
    send_accept(send, held_len).await?;
    let (hasher, verdict) =
        receive_bytes(node, recv, &partial, held_len, peer, &offer, hasher, gate).await?;
    let hash = hasher.finalize();
    // Every byte is in: the partial is stored or refused now, not resumed.
    node.resume_states.forget(peer.as_str(), &partial);
    if hash != offer.content_hash {
        let _ = fs::remove_file(&partial);
        // A resumed transfer's partial may have been damaged by a crash of the machine: it is
        // discarded, and the answer is temporary, so the retry starts from byte 0 and a
        // damaged partial never makes a document undeliverable. Bytes sent whole in this one
        // transfer that do not match their own offer are the sender's error (`wire.md`).
        return Err(match held_len {
            0 => Outcome::Reject(
                RejectReason::BadDocument,
                "the bytes do not match the offered hash".into(),
            ),
            _ => Outcome::Reject(
                RejectReason::Internal,
                "bytes do not match the offered hash; start again".into(),
            ),
        });
    }
    let (row, _) = check_document(node, Held::File(partial.clone()), peer, &offer, verdict).await?;
    let receipt = store_document(node, &partial, row, &offer, peer).await?;
    send_receipt(send, receipt).await
}

/// A document of at most [`INLINE_MAX_LEN`] bytes: taken into memory whole, checked, and
/// kept in the database with its inbox row and receipt in one group commit.
async fn receive_small(
    node: &Node,
    send: &mut SendStream,
    recv: &mut RecvStream,
    peer: &AgencyId,
    offer: Offer,
) -> Result<(), Outcome> {
    let len = usize::try_from(offer.sealed_len).map_err(internal)?;
    let incoming = node
        .store
        .blobs
        .partial_path(peer, &offer.document_id, &offer.content_hash);
    if let Some(dir) = incoming.parent() {
        check_free_space(dir, offer.sealed_len).map_err(|r| Outcome::Reject(r.reason, r.detail))?;
    }
    send_accept(send, 0).await?;
    // Grown as bytes arrive, not reserved at the offered length before any came.
    let mut bytes = Vec::new();
    loop {
        // Room for one byte past the offer, to catch a peer sending more.
        let room = len + 1 - bytes.len();
        let chunk = tokio::time::timeout(FRAME_TIMEOUT, recv.read_chunk(room, true))
            .await
            .map_err(|_| Outcome::Gone("peer stalled".into()))?
            .map_err(|e| Outcome::Gone(e.to_string()))?;
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.bytes.len() > len {
            return Err(Outcome::Violation(FrameError::Violation(
                WireError::BeyondOffer,
            )));
        }
        bytes.extend_from_slice(&chunk.bytes);
    }
    if bytes.len() != len {
        return Err(Outcome::Gone(format!(
            "stream ended at {} of {len} bytes",
            bytes.len()
        )));
    }
    let hash = content_hash(&bytes);
    if hash != offer.content_hash {
        return Err(Outcome::Reject(
            RejectReason::BadDocument,
            "the bytes do not match the offered hash".into(),
        ));
    }
    let (row, bytes) = check_document(node, Held::Inline(bytes), peer, &offer, None).await?;
    let Held::Inline(bytes) = bytes else {
        return Err(internal("the document's bytes went missing"));
    };
    let receipt = signed_receipt(node, &row, &offer, peer);
    let quota = agency_limit(node).map(|limit| QuotaCheck {
        limit,
        unfinished: unfinished_offers(node, peer, &row.doc_id),
    });
    let recorded = node
        .store
        .db
        .write(move |c| record_received(c, &row, &receipt, Some((&hash, &bytes)), quota))
        .await
        .map_err(|e| map_store_error(&e))?;
    send_receipt(send, recorded.into_receipt()?).await
}

/// The quota a small document is checked against when it is stored: the limit, and the
/// bytes offered by the same agency's other transfers in progress.
#[derive(Debug, Clone, Copy)]
struct QuotaCheck {
    limit: u64,
    unfinished: u64,
}

/// The lengths of the documents `peer` is sending now, but `doc_id` (hex).
fn unfinished_offers(node: &Node, peer: &AgencyId, doc_id: &str) -> u64 {
    offered_by(&node.receiving.offered(), peer, doc_id)
}

/// What one agency may keep on this node, in bytes, by the node's `--agency-quota`.
fn agency_limit(node: &Node) -> Option<u64> {
    node.options.agency_quota.limit(node.store.blobs.dir())
}

/// What became of a received document when it was to be recorded.
enum Recorded {
    /// Recorded now, or before (same sender, id and bytes): the receipt to send, the first
    /// one signed.
    Receipt(Vec<u8>),
    /// This node deleted its copy already, at this time for this reason: the deletion
    /// receipt it signed must stay true.
    Deleted(u64, String),
    /// Another document with this id from this sender is held.
    Conflict,
    /// The agency that delivered it would keep more than its quota on this node.
    OverQuota(String),
    /// This node's time with it ended (unix seconds) before it arrived: it would be deleted
    /// at once, leaving only its records.
    Expired(u64),
}

impl Recorded {
    fn into_receipt(self) -> Result<Vec<u8>, Outcome> {
        match self {
            Self::Receipt(receipt) => Ok(receipt),
            Self::Deleted(at, reason) => Err(deleted_already(at, &reason)),
            Self::Conflict => Err(Outcome::Reject(
                RejectReason::BadDocument,
                "another document with this id was received".into(),
            )),
            Self::OverQuota(detail) => Err(Outcome::Reject(RejectReason::DiskFull, detail)),
            Self::Expired(not_after) => Err(Outcome::Reject(
                RejectReason::BadDocument,
                format!(
                    "its time at this node ended (unix {not_after}) before it arrived; not kept"
                ),
            )),
        }
    }
}

/// Records a verified document with this node's `receipt`, in the transaction that checks
/// it may be: not deleted here already, not another document under the same id, and, with a
/// `quota`, within what the agency that delivered it may keep here. A small document's bytes
/// (`inline`: its content hash and bytes) are kept in the same transaction.
fn record_received(
    conn: &rusqlite::Connection,
    row: &InboxRow,
    receipt: &[u8],
    inline: Option<(&[u8; 32], &[u8])>,
    quota: Option<QuotaCheck>,
) -> Result<Recorded> {
    let held = records::inbox_receipt(conn, &row.doc_id, &row.sender)?;
    // The same bytes again (the same sender or forwarder: another forwarder's consent makes
    // other bytes): it was delivered, so the first receipt, also after a deletion here.
    if let Some((_, kept)) = held.as_ref().filter(|(blob, _)| *blob == row.blob) {
        return Ok(Recorded::Receipt(kept.clone()));
    }
    if let Some((at, reason)) =
        crate::store::custody::inbox_deletion(conn, &row.doc_id, &row.sender)?
    {
        return Ok(Recorded::Deleted(at, reason));
    }
    if held.is_some() {
        return Ok(Recorded::Conflict);
    }
    // Refused for good rather than kept and deleted at once (its sender stops then too). A
    // copy held already got its receipt above, expired or not.
    if let Some(not_after) = row.not_after.filter(|t| *t < row.received_at) {
        return Ok(Recorded::Expired(not_after));
    }
    if let Some(QuotaCheck { limit, unfinished }) = quota {
        let holder = row.forwarded_by.as_deref().unwrap_or(&row.sender);
        let stored = holdings::held_by(conn, holder)?;
        let kept = quota::Kept {
            stored: stored.bytes,
            unfinished,
            copies: stored.copies,
        };
        if let Err(refusal) = quota::check(&AgencyId::new(holder)?, kept, row.sealed_len, limit) {
            return Ok(Recorded::OverQuota(refusal.detail));
        }
    }
    if let Some((hash, bytes)) = inline {
        held::put(conn, hash, bytes)?;
    }
    records::inbox_insert(conn, row, receipt)?;
    Ok(Recorded::Receipt(receipt.to_vec()))
}

/// A failed database write: `DiskFull` if the disk is full (the sender retries later), else
/// an internal error.
fn map_store_error(e: &anyhow::Error) -> Outcome {
    if crate::store::db::is_disk_full(e) {
        Outcome::Reject(
            RejectReason::DiskFull,
            "no space left on the receiving node".into(),
        )
    } else {
        internal(format!("{e:#}"))
    }
}

/// How much of a partial file is held, and the hash state over it: the state saved when the
/// transfer was interrupted, or else one read from the file (and saved, so an offer whose
/// sender hangs up before the answer costs this only once). A partial longer than the offer
/// is discarded.
fn prefix_state(
    peer: &AgencyId,
    partial: &Path,
    sealed_len: u64,
    states: &ResumeStates,
) -> Result<(u64, ContentHasher)> {
    let peer = peer.as_str();
    let mut hasher = ContentHasher::new();
    let (len, modified) = match fs::metadata(partial) {
        Ok(m) if m.len() <= sealed_len => (m.len(), m.modified().ok()),
        Ok(_) => {
            fs::remove_file(partial)?;
            states.forget(peer, partial);
            (0, None)
        }
        Err(_) => (0, None),
    };
    if len == 0 {
        return Ok((0, hasher));
    }
    if let Some(saved) = states.matching(peer, partial, len, modified) {
        return Ok((len, saved));
    }
    let mut file = File::open(partial)?;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).context("buffer")?;
        file.read_exact(chunk)?;
        hasher.update(&*chunk);
        left -= want as u64;
    }
    states.save(peer, partial, &hasher);
    Ok((len, hasher))
}

/// Checks the header in the partial file (see [`super::incoming`]) off the async runtime;
/// a permanent refusal deletes the partial.
async fn check_header(
    node: &Node,
    partial: &Path,
    mut gate: HeaderGate,
    held: u64,
    peer: &AgencyId,
    offer: &Offer,
) -> Result<HeaderGate, Outcome> {
    let offered = OfferedDocument {
        document_id: offer.document_id,
        sealed_len: offer.sealed_len,
    };
    let (path, peer, me) = (partial.to_path_buf(), peer.clone(), node.me.clone());
    let roster = node.roster.current();
    let checked = tokio::task::spawn_blocking(move || {
        let result = gate.check(&path, held, offered, &peer, &me, &roster);
        if let Err(refusal) = &result
            && !refusal.reason.is_temporary()
        {
            let _ = fs::remove_file(&path);
        }
        result.map(|()| gate)
    })
    .await
    .map_err(internal)?;
    checked.map_err(|r| Outcome::Reject(r.reason, r.detail))
}

#[allow(clippy::too_many_arguments)]
async fn receive_bytes(
    node: &Node,
    recv: &mut RecvStream,
    partial: &Path,
    mut held: u64,
    peer: &AgencyId,
    offer: &Offer,
    hasher: ContentHasher,
    mut gate: HeaderGate,
) -> Result<(ContentHasher, Option<Verdict>), Outcome> {
    let total = offer.sealed_len;
    // A fresh transfer is verified as it is written; a resumed one is verified whole once
    // complete. (Small documents never come here: see `receive_small`.)
    let verifier = if held == 0 {
        Some(StreamVerifier::start(node.roster.current()).map_err(internal)?)
    } else {
        None
    };
    let mut writer =
        PartialWriter::open(partial, held, hasher, verifier).map_err(|e| map_io(&e))?;
    let received = async {
        loop {
            // Read straight into the writer's chunk, as many packets' bytes at a time as have
            // arrived; room for one byte past the offer, to catch a peer sending more.
            let expected =
                usize::try_from(total - held).map_or(usize::MAX, |n| n.saturating_add(1));
            let read = tokio::time::timeout(FRAME_TIMEOUT, recv.read(writer.room(expected)))
                .await
                .map_err(|_| Outcome::Gone("peer stalled".into()))?
                .map_err(|e| Outcome::Gone(e.to_string()))?;
            let Some(n) = read else { break };
            if held + n as u64 > total {
                return Err(Outcome::Violation(FrameError::Violation(
                    WireError::BeyondOffer,
                )));
            }
            writer.filled(n).await.map_err(|e| map_io(&e))?;
            held += n as u64;
            if gate.due(held, total) {
                writer.flush().await.map_err(|e| map_io(&e))?;
                gate = check_header(node, partial, gate, held, peer, offer).await?;
            }
        }
        if held != total {
            return Err(Outcome::Gone(format!(
                "stream ended at {held} of {total} bytes"
            )));
        }
        Ok(())
    }
    .await;
    match received {
        Ok(()) => match writer.finish().await {
            Ok(done) => Ok(done),
            Err(e) => {
                keep_only_durable(node, peer, partial, is_disk_full(&e)).await;
                Err(map_io(&e))
            }
        },
        Err(gone @ Outcome::Gone(_)) => {
            // Keep what arrived, and its hash state, for a resumed transfer; a file that
            // holds nothing would only be one more name in the folder.
            match writer.finish().await {
                Ok(_) if remove_if_empty(node, peer, partial) => {}
                Ok((hasher, _)) => node.resume_states.save(peer.as_str(), partial, &hasher),
                Err(e) => keep_only_durable(node, peer, partial, is_disk_full(&e)).await,
            }
            Err(gone)
        }
        Err(e) => {
            // The writer ends before this offer's slot is released: none of its bytes may
            // land after the next attempt opened the file.
            if writer.finish().await.is_err() {
                let disk_full = matches!(e, Outcome::Reject(RejectReason::DiskFull, _));
                keep_only_durable(node, peer, partial, disk_full).await;
            } else {
                remove_if_empty(node, peer, partial);
            }
            Err(e)
        }
    }
}

/// Removes `partial` if an ended transfer left it empty: there is nothing to resume, and each
/// file left counts toward its peer's [`super::incoming::MAX_PARTIAL_FILES_PER_PEER`]. Returns
/// whether it did.
fn remove_if_empty(node: &Node, peer: &AgencyId, partial: &Path) -> bool {
    if !fs::metadata(partial).is_ok_and(|m| m.len() == 0) {
        return false;
    }
    node.resume_states.forget(peer.as_str(), partial);
    let _ = fs::remove_file(partial);
    true
}

/// After the writer of `partial` failed, keeps what it wrote for a resume only if that is
/// durable. A full disk refused bytes that were then never written: the file is synced, and
/// kept if that works (`wire.md`: the retry resumes). After any other failure it is deleted
/// and the retry starts from byte 0: an fsync that failed (EIO) may leave pages marked clean
/// that never reached the disk, which a resume would hash from memory and a receipt vouch for.
async fn keep_only_durable(node: &Node, peer: &AgencyId, partial: &Path, disk_full: bool) {
    let path = partial.to_path_buf();
    let synced = disk_full
        && tokio::task::spawn_blocking(move || {
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.sync_all())
                .is_ok()
        })
        .await
        .unwrap_or(false);
    if !synced {
        tracing::warn!(agency = %peer, partial = %partial.display(),
            "the partial file's writer failed; discarded, the transfer starts again from byte 0");
        node.resume_states.forget(peer.as_str(), partial);
        let _ = fs::remove_file(partial);
    }
}

fn map_io(e: &std::io::Error) -> Outcome {
    if is_disk_full(e) {
        Outcome::Reject(
            RejectReason::DiskFull,
            "no space left on the receiving node".into(),
        )
    } else {
        internal(e)
    }
}

/// Verifies the complete document: sealed format and signature against the roster, signer is
/// the peer (or, for a forwarded document, the originator whose consent names the peer as
/// forwarder and this agency as new reader), this agency is a recipient (or the consent's new
/// reader), id matches the offer. `verdict` is the verification done while the bytes were
/// written, if there was one; its signer is checked again against the roster in force now.
/// `document` is the partial file or the bytes of a small document; it is handed back. A
/// refused partial is deleted.
async fn check_document(
    node: &Node,
    document: Held,
    peer: &AgencyId,
    offer: &Offer,
    verdict: Option<Verdict>,
) -> Result<(InboxRow, Held), Outcome> {
    let roster = node.roster.current();
    let (me, from) = (node.me.clone(), peer.clone());
    let document_id = offer.document_id;
    let checked = match document {
        // Bytes in memory (at most 256 KiB): a parse and a signature check, well under a
        // millisecond, done here rather than paying two thread hand-offs per small document.
        Held::Inline(_) => check_held(document, document_id, &from, &me, &roster, verdict),
        Held::File(_) => tokio::task::spawn_blocking(move || {
            check_held(document, document_id, &from, &me, &roster, verdict)
        })
        .await
        .map_err(internal)?,
    };
    let ((info, entitled), document) =
        checked.map_err(|(reason, detail)| Outcome::Reject(reason, detail))?;
    let row = InboxRow {
        doc_id: hex(&offer.document_id),
        sender: entitled.sealer.as_str().to_owned(),
        forwarded_by: entitled.consent.as_ref().map(|_| peer.as_str().to_owned()),
        blob: hex(&offer.content_hash),
        sealed_len: offer.sealed_len,
        label: info.label.clone(),
        created: info.created.0,
        received_at: now_secs(),
        verification: "verified".into(),
        // This node's copy expires with its own policy, or with the consent it was
        // forwarded under (which sets the new reader's time).
        not_after: match &entitled.consent {
            Some(consent) => consent.not_after,
            None => info.recipient(&node.me).and_then(|r| r.policy.not_after),
        }
        .map(|t| t.0),
    };
    Ok((row, document))
}

/// The checks of [`check_document`] that read the document: its entitlement prefix, its
/// signature against `roster`, and what the recipient's entry allows. A refused partial file
/// is deleted. The document is handed back.
fn check_held(
    document: Held,
    document_id: [u8; 16],
    from: &AgencyId,
    me: &AgencyId,
    roster: &Roster,
    verdict: Option<Verdict>,
) -> Result<((DocumentInfo, Entitlement), Held), (RejectReason, String)> {
    let checked = (|| -> Result<_, (RejectReason, String)> {
        let bad = |e: String| (RejectReason::BadDocument, e);
        let mut start = Vec::new();
        document
            .open()
            .map_err(|e| unreadable(&format!("{e:#}")))?
            .take(MAX_FORWARD_PREFIX_LEN as u64)
            .read_to_end(&mut start)
            .map_err(|e| unreadable(&e.to_string()))?;
        let entitled = entitlement(&start, &document_id, from, me, roster)
            .map_err(bad)?
            .ok_or_else(|| bad("the document is truncated".into()))?;
        let info = match verdict {
            Some(verdict) => verdict.map_err(bad)?,
            None => {
                let input = document.open().map_err(|e| unreadable(&format!("{e:#}")))?;
                // Bytes in memory need no read buffer; a file gets a large one.
                let input: Box<dyn Read + '_> = match &document {
                    Held::Inline(_) => input,
                    Held::File(_) => Box::new(BufReader::with_capacity(1 << 20, input)),
                };
                let sealed = skip_prefix(input).map_err(|e| match e.raw_os_error() {
                    Some(_) => unreadable(&e.to_string()),
                    None => bad(e.to_string()),
                })?;
                liaise_protocol::verify(sealed, &RosterSignerCheck(roster)).map_err(
                    |e| match e {
                        OpenError::Read(e) => unreadable(&e.to_string()),
                        e => bad(e.to_string()),
                    },
                )?
            }
        };
        RosterSignerCheck(roster)
            .check(&info.sender, &info.sender_key, info.created)
            .map_err(|e| bad(format!("signer refused: {e}")))?;
        match entitled.check(&info, &document_id, me) {
            Check::Ok => Ok((info, entitled)),
            Check::BadDocument(e) => Err(bad(e)),
            Check::WrongSender(e) => Err((RejectReason::WrongSender, e)),
            Check::NotRecipient(e) => Err((RejectReason::NotRecipient, e)),
        }
    })();
    // A refused document goes; one this node could not read stays for the retry, which
    // resumes at its end and checks it again.
    if let Err((reason, _)) = &checked
        && *reason != RejectReason::Internal
        && let Held::File(partial) = &document
    {
        let _ = fs::remove_file(partial);
    }
    checked.map(|ok| (ok, document))
}

/// This node could not read back a document it holds (out of file descriptors, an I/O
/// error): `Internal`, which the sender tries again, not `BadDocument`, which would make it
/// give a valid document up.
fn unreadable(error: &str) -> (RejectReason, String) {
    (
        RejectReason::Internal,
        format!("cannot read the received document back: {error}"),
    )
}

/// A document this node deleted already (at its originator's request, at its expiry, or by
/// its operator) is refused, unless it is the very bytes received before from the same peer
/// (which get their first receipt again): a deletion receipt this node signed must stay true.
/// A forwarded copy can arrive after the originator revoked its forwarder, from the
/// forwarder's outbox; a direct one can be in flight while the originator revokes. Checked in
/// the transaction that would store it.
fn deleted_already(at: u64, reason: &str) -> Outcome {
    // An operator's own deletion is not the sender's business (`liaise delete`).
    let why = match reason {
        crate::store::custody::DELETED_BY_OPERATOR => String::new(),
        reason => format!(" ({reason})"),
    };
    Outcome::Reject(
        RejectReason::NotRecipient,
        format!(
            "this node deleted its copy of the document at {}{why}",
            Timestamp(at)
        ),
    )
}

/// This node's signed receipt for `row`, received from `peer` as `offer`.
fn signed_receipt(node: &Node, row: &InboxRow, offer: &Offer, peer: &AgencyId) -> Vec<u8> {
    let body = ReceiptBody {
        version: RECEIPT_VERSION,
        document_id: offer.document_id,
        content_hash: offer.content_hash,
        sealed_len: offer.sealed_len,
        sender: peer.clone(),
        recipient: node.me.clone(),
        received_at: Timestamp(row.received_at),
    };
    SignedReceipt::sign(&body, &node.secrets.signing).to_bytes()
}

async fn store_document(
    node: &Node,
    partial: &Path,
    row: InboxRow,
    offer: &Offer,
    peer: &AgencyId,
) -> Result<Vec<u8>, Outcome> {
    // Renamed and its folders fsynced in a group with other documents arriving now.
    if let Err(e) = node
        .store
        .blobs
        .install_grouped(partial.to_path_buf(), &offer.content_hash)
        .await
    {
        remove_if_unreferenced(node, offer.content_hash).await;
        return Err(internal(e));
    }
    let receipt = signed_receipt(node, &row, offer, peer);
    // The blob folder was fsynced after the rename, before the row is written. Its quota
    // was checked before the transfer began.
    let recorded = match node
        .store
        .db
        .write(move |c| record_received(c, &row, &receipt, None, None))
        .await
    {
        Ok(recorded) => recorded,
        Err(e) => {
            remove_if_unreferenced(node, offer.content_hash).await;
            return Err(map_store_error(&e));
        }
    };
    if matches!(
        recorded,
        Recorded::Deleted(..) | Recorded::Conflict | Recorded::Expired(_)
    ) {
        // Refused: the file just installed is no copy this node keeps.
        let _ = fs::remove_file(node.store.blobs.path(&offer.content_hash));
    }
    recorded.into_receipt()
}

/// After a received document was installed as a blob but its row was not written: removes
/// the blob unless a row refers to it. Left in place it would be a whole copy nobody knows of
/// until the next start (`orphans.rs`), outside every quota, and a deletion receipt for the
/// document would call it gone. The sender was not answered and sends it again. If even the
/// check fails, the sweep at the next start removes it.
async fn remove_if_unreferenced(node: &Node, hash: [u8; 32]) {
    let name = hex(&hash);
    let referenced = node
        .store
        .db
        .read(move |c| crate::store::orphans::is_referenced(c, &name))
        .await;
    if let Ok(false) = referenced {
        let path = node.store.blobs.path(&hash);
        if fs::remove_file(&path).is_ok() {
            let _ = crate::store::blobs::sync_dir(node.store.blobs.dir());
        }
    }
}

// The receiver's frames, like every frame (`wire.md`), give up on a peer that takes none of
// them for FRAME_TIMEOUT: no task, nor its place among the transfers in progress, is held
// for good by a peer that grants no flow-control credit.

async fn send_accept(send: &mut SendStream, resume_offset: u64) -> Result<(), Outcome> {
    write_message_within(send, &Message::Accept { resume_offset }, FRAME_TIMEOUT)
        .await
        .map_err(|e| Outcome::Gone(e.to_string()))
}

async fn send_receipt(send: &mut SendStream, receipt: Vec<u8>) -> Result<(), Outcome> {
    write_message_within(send, &Message::Receipt { receipt }, FRAME_TIMEOUT)
        .await
        .map_err(|e| Outcome::Gone(e.to_string()))?;
    let _ = send.finish();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

async fn expect_end(recv: &mut RecvStream) -> Result<(), Outcome> {
    match tokio::time::timeout(FRAME_TIMEOUT, recv.read_chunk(1, true)).await {
        Ok(Ok(None)) => Ok(()),
        Ok(Ok(Some(_))) => Err(Outcome::Violation(FrameError::Violation(
            WireError::BeyondOffer,
        ))),
        Ok(Err(e)) => Err(Outcome::Gone(e.to_string())),
        Err(_) => Err(Outcome::Gone("peer stalled".into())),
    }
}

async fn reject(send: &mut SendStream, reason: RejectReason, detail: &str) -> Result<()> {
    let detail = liaise_protocol::wire::bounded_detail(detail);
    write_message_within(send, &Message::Reject { reason, detail }, FRAME_TIMEOUT).await?;
    let _ = send.finish();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use liaise_protocol::wire::content_hash;

    #[test]
    fn a_resumed_partial_is_read_again_only_once_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("p.partial");
        let states = ResumeStates::default();
        let peer = AgencyId::new("nl.city.utrecht").unwrap();
        fs::write(&partial, b"first bytes").unwrap();
        // Nothing saved: read from the file, and saved for the next offer.
        let (len, hasher) = prefix_state(&peer, &partial, 100, &states).unwrap();
        assert_eq!(len, 11);
        assert_eq!(hasher.finalize(), content_hash(b"first bytes"));
        // A state saved for the file as it is is used as it is: the file is not read. (A
        // state of other bytes shows which one came back.)
        let mut other = ContentHasher::new();
        other.update(b"not what the file holds");
        states.save(peer.as_str(), &partial, &other);
        let (_, hasher) = prefix_state(&peer, &partial, 100, &states).unwrap();
        assert_eq!(hasher.finalize(), content_hash(b"not what the file holds"));
        // Once the file has changed, it is read again.
        fs::write(&partial, b"first bytes, more").unwrap();
        let (len, hasher) = prefix_state(&peer, &partial, 100, &states).unwrap();
        assert_eq!(len, 17);
        assert_eq!(hasher.finalize(), content_hash(b"first bytes, more"));
        // Longer than the offer: discarded.
        assert_eq!(prefix_state(&peer, &partial, 5, &states).unwrap().0, 0);
        assert!(!partial.exists());
    }

    #[test]
    fn a_received_document_this_node_cannot_read_back_is_not_called_bad() {
        use crate::log::signer_keys::tests::{Stewards, identity, roster};
        let (city, prison) = (identity("nl.city.utrecht"), identity("nl.prison.vught"));
        let stewards = Stewards::generate();
        let roster = roster(
            1,
            &stewards,
            &stewards.quorum(),
            &[&city, &prison],
            Vec::new(),
        );
        let (from, me) = (city.member.id.clone(), prison.member.id.clone());
        let dir = tempfile::tempdir().unwrap();
        // Gone from under the node (or out of file descriptors): the sender tries again
        // later, instead of giving the document up as invalid.
        let missing = Held::File(dir.path().join("gone.partial"));
        let (reason, detail) = check_held(missing, [7; 16], &from, &me, &roster, None).unwrap_err();
        assert_eq!(reason, RejectReason::Internal, "{detail}");
        assert!(
            detail.contains("cannot read the received document back"),
            "{detail}"
        );
        // A partial that reads back as garbage is bad, and goes.
        let garbage = dir.path().join("garbage.partial");
        fs::write(&garbage, vec![0x5a; 5000]).unwrap();
        let (reason, detail) = check_held(
            Held::File(garbage.clone()),
            [7; 16],
            &from,
            &me,
            &roster,
            None,
        )
        .unwrap_err();
        assert_eq!(reason, RejectReason::BadDocument, "{detail}");
        assert!(!garbage.exists());
    }
}
