//! The outbox worker: delivers every queued (document, recipient) to the recipient's node,
//! retrying with jittered exponential backoff until a verified receipt arrives or the
//! delivery window ends. State lives in the database, so retries survive restarts.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use liaise_keys::AgencyId;
use liaise_protocol::wire::{CloseCode, Message, MessageKind, RejectReason};
use tokio::sync::Semaphore;

use quinn::VarInt;

use super::framed::{
    FRAME_TIMEOUT, answer_timeout, closing_on_violation, open_stream, read_message_within,
    write_message_within, write_progressing,
};
use super::{Node, now_secs};
use crate::store::held::{self, INLINE_MAX_LEN};
use crate::store::records::{self, Due};
use crate::store::{Held, parse_hex};
use crate::trust::verify_receipt;

/// The first retry waits about this long; each further one doubles it.
pub const FIRST_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// The default cap on the wait between attempts.
pub const DEFAULT_MAX_RETRY_INTERVAL: Duration = Duration::from_secs(300);
/// The longest a document is tried, from when it was queued (a recipient's earlier
/// `not_after` ends it sooner): 14 days.
pub const DEFAULT_DELIVERY_WINDOW: Duration = Duration::from_secs(14 * 86_400);
/// The most documents being sent at once.
pub const MAX_PARALLEL_DELIVERIES: usize = 160;
/// The most documents being sent at once to one agency. Enough to keep one peer's streams
/// (`MAX_STREAMS_PER_CONNECTION`, 64) busy while as many deliveries record their receipts:
/// many small documents in flight at once share the group commits of both nodes. The rest of
/// [`MAX_PARALLEL_DELIVERIES`] stays free for other agencies, so documents to an agency whose
/// node accepts a connection but takes nothing (each attempt holds its slot until it times
/// out) never hold up a case report to another.
pub const MAX_PER_AGENCY: usize = 128;
/// The most bytes of documents of at most [`INLINE_MAX_LEN`] (held in memory while they are
/// sent) in flight at once to one agency: as many as a receiver takes from one agency at once
/// (`MAX_SMALL_BYTES_PER_AGENCY`). Per agency, so that one whose node takes nothing (each
/// attempt holding its bytes until it times out) never holds up a case report to another.
pub const MAX_SMALL_BYTES_PER_AGENCY_IN_FLIGHT: u64 = super::receiving::MAX_SMALL_BYTES_PER_AGENCY;
/// The same, to every agency together: the delivery slots alone would let 160 of 256 KiB take
/// 40 MiB. Four agencies' worth, so that the slow deliveries in all ([`MAX_SLOW_DELIVERIES`]
/// of up to 256 KiB: 4 MiB) or three stalled agencies leave room for the others.
pub const MAX_SMALL_BYTES_IN_FLIGHT: u64 = 4 * MAX_SMALL_BYTES_PER_AGENCY_IN_FLIGHT;
/// The most slow deliveries (those that may hold their slot for long: a large document, over
/// [`INLINE_MAX_LEN`], or a retry, whose recipient failed before) at once to one agency. More
/// at once would not reach it sooner (they share one link, or it is stalled), but would take
/// delivery slots and streams from everything else; the others wait in the queue, in order.
pub const MAX_SLOW_PER_AGENCY: usize = 4;
/// The most slow deliveries at once in all: the other delivery slots stay free for small
/// documents on their first attempt, which take milliseconds each, so a long transfer or a
/// stalled agency never holds up a case report to another.
pub const MAX_SLOW_DELIVERIES: usize = 16;
/// How long a delivery whose outcome could not be recorded waits before it is due again.
const OUTCOME_NOT_RECORDED_PAUSE: Duration = Duration::from_secs(10);
/// The most due deliveries read from the database at once.
const MAX_DUE_FETCH: usize = 256;
/// Bytes per write when streaming a document.
const SEND_CHUNK: usize = 1024 * 1024;
/// Chunks read from disk ahead of the network.
const READ_AHEAD: usize = 2;

/// The wait before attempt `attempts + 1`: `FIRST * 2^attempts`, capped, then a uniformly
/// random point in its upper half (jitter, so that many senders do not retry in step).
pub fn backoff(attempts: u32, cap: Duration, random: u64) -> Duration {
    let base = FIRST_RETRY_INTERVAL
        .saturating_mul(1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX))
        .min(cap);
    let half = base / 2;
    let span = half.as_millis().max(1) as u64;
    half + Duration::from_millis(random % span)
}

/// `wait` in the whole seconds a due time is kept in, at least 1: rounded up or down at
/// random, in proportion to its fraction of a second, so that the first retries (1 s and 2 s
/// at most) keep their jitter instead of all falling on the same second.
fn whole_seconds(wait: Duration, random: u64) -> u64 {
    let fraction = u64::from(wait.subsec_millis());
    let up = random % 1000 < fraction;
    (wait.as_secs() + u64::from(up)).max(1)
}

/// How often at most the outbox looks past the deliveries that must wait (to an agency that
/// has as many in flight as one may have, [`MAX_PER_AGENCY`], or slow ones past
/// [`MAX_SLOW_PER_AGENCY`] or [`MAX_SLOW_DELIVERIES`]) for the other due documents. That
/// query passes over every due row it leaves out (an agency back after an outage may have
/// thousands, all retries and so slow), so it is not run after each delivery that ends, nor while
/// no slot is free, and at least [`LOOK_PAST_COST_FACTOR`] times its own duration apart (at
/// most [`LOOK_PAST_LONGEST`]): another agency's document waits at most that long behind a
/// large queue.
const LOOK_PAST_FULL_EVERY: Duration = Duration::from_millis(100);
/// See [`LOOK_PAST_FULL_EVERY`]: the query that looks past a full agency takes at most one
/// part in this many of the worker's time, up to [`LOOK_PAST_LONGEST`] apart.
const LOOK_PAST_COST_FACTOR: u32 = 20;
/// The longest an agency's document waits behind another agency's full queue for the query
/// that looks past it (the query itself not counted).
const LOOK_PAST_LONGEST: Duration = Duration::from_secs(2);

/// Runs until shutdown: wakes on new work, on the next due time, or every few seconds.
pub async fn outbox_worker(node: Arc<Node>) {
    // Each delivery in flight: its outbox rowid, and whether it is slow (large or a retry).
    let in_flight: Arc<Mutex<InFlight>> = Arc::default();
    let slots = Arc::new(Semaphore::new(MAX_PARALLEL_DELIVERIES));
    let mut shutdown = node.shutdown.clone();
    // When the outbox may next look past a full agency.
    let mut look_past_after: Option<std::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = now_secs();
        // Rows being delivered are still due: the query leaves them out, and the deliveries
        // that must wait, and fetches no more than there are free slots.
        let (skip, mut count) = in_flight
            .lock()
            .map(|s| {
                (
                    s.values().map(|(row, _, _)| *row).collect::<Vec<i64>>(),
                    InFlightCount::of(&s),
                )
            })
            .unwrap_or_default();
        let held_back = count.held_back();
        let permits = slots.available_permits();
        let looks_past = !held_back.is_empty();
        // With deliveries held back, the query passes over every due row it leaves out: not
        // while no slot is free (a delivery that ends wakes this loop), nor sooner than
        // `look_past_after`.
        let pause = if looks_past && permits == 0 {
            Some(Duration::from_secs(5))
        } else {
            look_past_after
                .filter(|_| looks_past)
                .and_then(|after| after.checked_duration_since(std::time::Instant::now()))
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = node.outbox_wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        let limit = count.fetch_limit(permits);
        // One trip to the database per wake: the due rows not in flight, which of them the
        // limits admit now, the bytes of those admitted that are small enough to be held in
        // the database (none read for a row that must wait), and when the next one is due.
        // Only this loop adds to `in_flight`, so every delivery in flight is in `skip` and
        // counted; the insert below still refuses a second one for the same key. Whether a
        // delivery had to wait: the next query leaves out its kind and so reaches the rows
        // behind it.
        let (due, next, held_up, fetched, spent) = node
            .store
            .db
            .read(move |c| {
                let (mut admitted, mut held_up) = (Vec::new(), false);
                let started = std::time::Instant::now();
                let rows = records::due(c, now, limit, &skip, &held_back)?;
                let spent = started.elapsed();
                let fetched = rows.len();
                for item in rows {
                    let is_slow = item.sealed_len > INLINE_MAX_LEN || item.attempts > 0;
                    if !count.admit(&item.recipient, is_slow, item.sealed_len) {
                        held_up = true;
                        continue;
                    }
                    let inline = match parse_hex::<32>(&item.blob) {
                        Some(hash) if item.sealed_len <= INLINE_MAX_LEN => held::get(c, &hash)?,
                        _ => None,
                    };
                    admitted.push((item, inline.map(Held::Inline), is_slow));
                }
                Ok((admitted, records::next_due_at(c)?, held_up, fetched, spent))
            })
            .await
            .unwrap_or_default();
        if looks_past {
            let pause = spent
                .saturating_mul(LOOK_PAST_COST_FACTOR)
                .clamp(LOOK_PAST_FULL_EVERY, LOOK_PAST_LONGEST);
            look_past_after = Some(std::time::Instant::now() + pause);
        }
        for (item, held, is_slow) in due {
            let key = (item.doc_id.clone(), item.recipient.clone());
            let fresh = in_flight
                .lock()
                .map(|mut s| {
                    s.insert(key.clone(), (item.row, is_slow, item.sealed_len))
                        .is_none()
                })
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (node, in_flight) = (Arc::clone(&node), Arc::clone(&in_flight));
            tokio::spawn(async move {
                attempt(&node, item, held).await;
                if let Ok(mut s) = in_flight.lock() {
                    s.remove(&key);
                }
                drop(permit);
                node.outbox_wake.notify_one();
            });
        }
        // More may be due than this round fetched: look again while slots are free.
        if held_up || (fetched == limit && slots.available_permits() > 0) {
            continue;
        }
        let wait = match next {
            Some(at) if at <= now_secs() => Duration::from_millis(200),
            Some(at) => {
                Duration::from_secs(at.saturating_sub(now_secs())).min(Duration::from_secs(5))
            }
            None => Duration::from_secs(5),
        };
        tokio::select! {
            _ = node.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// The deliveries in flight, by (document, recipient): outbox rowid, whether slow, and the
/// document's length.
type InFlight = HashMap<(String, String), (i64, bool, u64)>;

/// Deliveries in flight per recipient, slow ones per recipient and in all, and the bytes of
/// those held in memory, against [`MAX_PER_AGENCY`], [`MAX_SLOW_PER_AGENCY`],
/// [`MAX_SLOW_DELIVERIES`] and [`MAX_SMALL_BYTES_IN_FLIGHT`].
#[derive(Debug, Default)]
struct InFlightCount {
    per_agency: HashMap<String, usize>,
    slow_per_agency: HashMap<String, usize>,
    slow: usize,
    small_bytes: u64,
    small_bytes_per_agency: HashMap<String, u64>,
}

impl InFlightCount {
    fn of(in_flight: &InFlight) -> Self {
        let mut count = Self::default();
        for ((_, recipient), (_, slow, len)) in in_flight {
            *count.per_agency.entry(recipient.clone()).or_default() += 1;
            if *slow {
                *count.slow_per_agency.entry(recipient.clone()).or_default() += 1;
                count.slow += 1;
            }
            if *len <= INLINE_MAX_LEN {
                count.small_bytes = count.small_bytes.saturating_add(*len);
                let theirs = count
                    .small_bytes_per_agency
                    .entry(recipient.clone())
                    .or_default();
                *theirs = theirs.saturating_add(*len);
            }
        }
        count
    }

    /// Room left for documents held in memory, if less than the largest of them.
    fn small_room(&self) -> Option<u64> {
        let room = MAX_SMALL_BYTES_IN_FLIGHT.saturating_sub(self.small_bytes);
        (room < INLINE_MAX_LEN).then_some(room)
    }

    /// The deliveries that must wait now.
    fn held_back(&self) -> records::HeldBack {
        let at_limit = |counts: &HashMap<String, usize>, limit: usize| {
            counts
                .iter()
                .filter(|(_, n)| **n >= limit)
                .map(|(recipient, _)| recipient.clone())
                .collect()
        };
        records::HeldBack {
            min_len: INLINE_MAX_LEN,
            recipients: at_limit(&self.slow_per_agency, MAX_SLOW_PER_AGENCY),
            all: self.slow >= MAX_SLOW_DELIVERIES,
            full: at_limit(&self.per_agency, MAX_PER_AGENCY),
            small_room: self.small_room(),
            small_full: self
                .small_bytes_per_agency
                .iter()
                .filter(|(_, bytes)| {
                    MAX_SMALL_BYTES_PER_AGENCY_IN_FLIGHT.saturating_sub(**bytes) < INLINE_MAX_LEN
                })
                .map(|(recipient, _)| recipient.clone())
                .collect(),
        }
    }

    /// How many due rows to fetch with `permits` slots free: no more than those, nor than the
    /// busiest agency not at its limit may still take. A row for an agency at its limit is
    /// left out by the query; one fetched but not admitted is a wasted read, and after each
    /// delivery that ends, the agency it freed a slot of is usually the busiest. Fetching
    /// fewer than could be admitted only costs another round.
    fn fetch_limit(&self, permits: usize) -> usize {
        let busiest = self
            .per_agency
            .values()
            .copied()
            .filter(|n| *n < MAX_PER_AGENCY)
            .max()
            .unwrap_or(0);
        permits
            .min(MAX_PER_AGENCY - busiest)
            .clamp(1, MAX_DUE_FETCH)
    }

    /// Counts one more delivery to `recipient`, slow or not, of a document of `len` bytes, if
    /// the limits allow it.
    fn admit(&mut self, recipient: &str, slow: bool, len: u64) -> bool {
        let to_agency = self.per_agency.get(recipient).copied().unwrap_or(0);
        let slow_to_agency = self.slow_per_agency.get(recipient).copied().unwrap_or(0);
        let small = len <= INLINE_MAX_LEN;
        let small_to_agency = self
            .small_bytes_per_agency
            .get(recipient)
            .copied()
            .unwrap_or(0);
        if to_agency >= MAX_PER_AGENCY
            || (slow && (slow_to_agency >= MAX_SLOW_PER_AGENCY || self.slow >= MAX_SLOW_DELIVERIES))
            || (small
                && (self.small_bytes.saturating_add(len) > MAX_SMALL_BYTES_IN_FLIGHT
                    || small_to_agency.saturating_add(len) > MAX_SMALL_BYTES_PER_AGENCY_IN_FLIGHT))
        {
            return false;
        }
        if small {
            self.small_bytes = self.small_bytes.saturating_add(len);
            *self
                .small_bytes_per_agency
                .entry(recipient.to_owned())
                .or_default() += len;
        }
        *self.per_agency.entry(recipient.to_owned()).or_default() += 1;
        if slow {
            *self
                .slow_per_agency
                .entry(recipient.to_owned())
                .or_default() += 1;
            self.slow += 1;
        }
        true
    }
}

/// `agency`'s node answers again after it did not: its queued documents, waiting out a
/// backoff of up to [`DEFAULT_MAX_RETRY_INTERVAL`], are due now.
pub(crate) async fn retry_sooner(node: &Node, agency: &str) {
    let (agency, now) = (agency.to_owned(), now_secs());
    match node
        .store
        .db
        .write(move |c| records::retry_now(c, &agency, now))
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(
                documents = n,
                "a peer answers again: its deliveries are retried now"
            );
            node.outbox_wake.notify_one();
        }
        Err(e) => tracing::warn!("cannot reschedule deliveries: {e:#}"),
    }
}

/// One delivery attempt and the bookkeeping of its outcome. `held` is the document's bytes
/// if they were read with the due row.
async fn attempt(node: &Node, due: Due, held: Option<Held>) {
    let (doc, to) = (due.doc_id.clone(), due.recipient.clone());
    let result = if now_secs() > due.expires_at {
        Err(Failure::Permanent(
            "expired before it could be delivered".to_owned(),
        ))
    } else {
        let result = deliver(node, &due, held).await;
        if let Ok(mut s) = node.sending.lock() {
            s.remove(&(due.doc_id.clone(), due.recipient.clone()));
        }
        result
    };
    let now = now_secs();
    // Every outcome is recorded below, and one that cannot be (a full disk) pauses.
    let outcome = match result {
        Ok(receipt) => {
            tracing::info!(doc = %due.doc_id, recipient = %due.recipient, "delivered; its receipt verified");
            node.store
                .db
                .write(move |c| records::mark_delivered(c, &doc, &to, &receipt, now))
                .await
        }
        Err(Failure::Permanent(reason)) => {
            tracing::warn!(doc = %due.doc_id, recipient = %due.recipient, "undeliverable: {reason}");
            node.store
                .db
                .write(move |c| records::mark_undeliverable(c, &doc, &to, &reason, now))
                .await
        }
        Err(Failure::Temporary(error)) => {
            let error = format!("{error:#}");
            tracing::info!(doc = %due.doc_id, recipient = %due.recipient, attempt = due.attempts + 1, "delivery failed: {error}");
            let random = u64::from_le_bytes(liaise_keys::random::random_bytes::<8>());
            let wait = backoff(due.attempts, node.options.max_retry_interval, random);
            let rounding = u64::from_le_bytes(liaise_keys::random::random_bytes::<8>());
            let next = now + whole_seconds(wait, rounding);
            node.store
                .db
                .write(move |c| records::mark_retry(c, &doc, &to, next, &error, now))
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(doc = %due.doc_id, recipient = %due.recipient, "cannot record a delivery outcome: {e:#}");
        // The row keeps its old due time: it stays in flight a while, or the worker would
        // take it again at once, and again, while the database cannot write (a full disk).
        tokio::time::sleep(OUTCOME_NOT_RECORDED_PAUSE).await;
    }
}

enum Failure {
    Permanent(String),
    Temporary(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Temporary(e)
    }
}

/// Offers the document, streams it from the receiver's resume offset, and returns the
/// verified receipt bytes.
async fn deliver(node: &Node, due: &Due, held: Option<Held>) -> Result<Vec<u8>, Failure> {
    let recipient = AgencyId::new(&due.recipient)
        .map_err(|_| Failure::Permanent(format!("`{}` is not an agency id", due.recipient)))?;
    let roster = node.roster.current();
    if roster.member(&recipient).is_none() {
        return Err(Failure::Permanent(format!(
            "{recipient} is not in the roster this node holds (serial {}); if it has joined \
             since, import the newer roster and send again",
            roster.serial()
        )));
    }
    let document_id = parse_hex::<16>(&due.doc_id).context("corrupt document id in the outbox")?;
    let content_hash = parse_hex::<32>(&due.blob).context("corrupt blob name in the outbox")?;
    let conn = node.peers.get(node, &recipient).await?;
    let result = offer_and_send(node, &conn, due, document_id, content_hash, held).await;
    if let Err(Failure::Temporary(_)) = &result
        && conn.close_reason().is_some()
    {
        node.peers.forget(&recipient, Some(conn.stable_id())).await;
    }
    let receipt = result?;
    verify_receipt(
        &node.roster.current(),
        &receipt,
        &document_id,
        &content_hash,
        due.sealed_len,
        &node.me,
        &recipient,
    )
    .map_err(|e| Failure::Temporary(e.context("the receipt does not verify")))?;
    Ok(receipt)
}

async fn offer_and_send(
    node: &Node,
    conn: &quinn::Connection,
    due: &Due,
    document_id: [u8; 16],
    content_hash: [u8; 32],
    held: Option<Held>,
) -> Result<Vec<u8>, Failure> {
    // A peer that grants no stream or takes no bytes for FRAME_TIMEOUT fails the attempt: it
    // is retried with backoff and its delivery slot is freed for other recipients.
    let (mut send, mut recv) = open_stream(conn, FRAME_TIMEOUT).await?;
    let offer = Message::Offer {
        document_id,
        sealed_len: due.sealed_len,
        content_hash,
    };
    write_message_within(&mut send, &offer, FRAME_TIMEOUT).await?;
    // The receiver may hash a partial it holds before it answers, and verifies the whole
    // document before it signs a receipt: both take longer for a larger document.
    let wait = answer_timeout(due.sealed_len);
    let answer = read_message_within(&mut recv, &[MessageKind::Accept, MessageKind::Reject], wait)
        .await
        .map_err(|e| closing_on_violation(conn, e))
        .context("no answer to the offer")?;
    let offset = match answer {
        Message::Accept { resume_offset } if resume_offset <= due.sealed_len => resume_offset,
        Message::Accept { .. } => {
            // A field rule broken (`wire.md`: `resume_offset ≤ sealed_len`).
            let violation = b"resume offset past the end of the document";
            conn.close(
                VarInt::from_u32(CloseCode::ProtocolViolation.code()),
                violation,
            );
            return Err(anyhow!("receiver asked to resume past the end").into());
        }
        Message::Reject { reason, detail } => return Err(rejected(reason, &detail)),
        _ => return Err(anyhow!("unexpected answer").into()),
    };
    let sending: Result<(), Failure> = async {
        let held = match held {
            Some(held) => held,
            None => node.store.held(content_hash, due.sealed_len).await?,
        };
        let mut chunks = read_ahead(held, offset, due.sealed_len)?;
        let key = (due.doc_id.clone(), due.recipient.clone());
        let mut sent = offset;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            let len = chunk.len() as u64;
            // Handed to the stream as it is, not copied into it; cut only when the peer takes
            // no byte of it for FRAME_TIMEOUT, however long a slow but moving transfer takes.
            write_progressing(&mut send, chunk, FRAME_TIMEOUT)
                .await
                .map_err(|e| e.context("the transfer was interrupted"))?;
            sent += len;
            if let Ok(mut s) = node.sending.lock() {
                s.insert(key.clone(), sent);
            }
        }
        if sent != due.sealed_len {
            return Err(anyhow!("the stored document could not be read to its end").into());
        }
        Ok(())
    }
    .await;
    if let Err(e) = sending {
        // A quinn stream dropped as it is ends cleanly: the receiver must see the transfer
        // cut off, not a document that ends early.
        let _ = send.reset(VarInt::from_u32(CloseCode::Internal.code()));
        // A receiver that refuses the document part-way (its header names another recipient,
        // its disk filled) stops the stream and says why (`wire.md`): that answer, permanent
        // or not, is the outcome, not the interruption.
        if stopped_by_peer(&e)
            && let Ok(Message::Reject { reason, detail }) =
                read_message_within(&mut recv, &[MessageKind::Reject], REJECT_AFTER_STOP_WAIT).await
        {
            return Err(rejected(reason, &detail));
        }
        return Err(e);
    }
    send.finish()
        .map_err(|e| anyhow!("cannot finish the stream: {e}"))?;
    let answer = read_message_within(
        &mut recv,
        &[MessageKind::Receipt, MessageKind::Reject],
        wait,
    )
    .await
    .map_err(|e| closing_on_violation(conn, e))
    .context("no receipt")?;
    match answer {
        Message::Receipt { receipt } => Ok(receipt),
        Message::Reject { reason, detail } => Err(rejected(reason, &detail)),
        _ => Err(anyhow!("unexpected answer").into()),
    }
}

/// How long a sender whose stream the receiver stopped waits for the receiver's `Reject`,
/// which is written right after the stop.
const REJECT_AFTER_STOP_WAIT: Duration = Duration::from_secs(5);

/// Whether sending failed because the receiver stopped the stream.
fn stopped_by_peer(failure: &Failure) -> bool {
    let Failure::Temporary(error) = failure else {
        return false;
    };
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<quinn::WriteError>(),
            Some(quinn::WriteError::Stopped(_))
        )
    })
}

/// Reads the stored document from `offset` to `len` on a blocking thread, [`READ_AHEAD`]
/// chunks of [`SEND_CHUNK`] bytes ahead of the network; ends early after a read error. A
/// document held in the database is all in memory already: it is one chunk.
fn read_ahead(
    held: Held,
    offset: u64,
    len: u64,
) -> anyhow::Result<tokio::sync::mpsc::Receiver<anyhow::Result<Vec<u8>>>> {
    let (chunks, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let path = match held {
        Held::File(path) => path,
        Held::Inline(bytes) => {
            let rest = usize::try_from(offset)
                .ok()
                .and_then(|at| bytes.get(at..))
                .filter(|rest| (offset + rest.len() as u64) == len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| anyhow!("the stored document is not as long as recorded"));
            // The channel has room for it: nothing was sent yet. Nothing left, nothing sent.
            if !matches!(&rest, Ok(rest) if rest.is_empty()) {
                let _ = chunks.try_send(rest);
            }
            return Ok(rx);
        }
    };
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))
        .context("cannot seek in the document")?;
    tokio::task::spawn_blocking(move || {
        let mut at = offset;
        while at < len {
            let want = (len - at).min(SEND_CHUNK as u64);
            // Read into fresh capacity (not zeroed first); each chunk goes to the network whole.
            let mut chunk = Vec::with_capacity(SEND_CHUNK);
            let read = match (&mut file).take(want).read_to_end(&mut chunk) {
                Ok(n) if n as u64 == want => Ok(()),
                Ok(_) => Err(anyhow!("the stored document is shorter than recorded")),
                Err(e) => Err(anyhow::Error::new(e).context("cannot read the stored document")),
            };
            let failed = read.is_err();
            if chunks.blocking_send(read.map(|()| chunk)).is_err() || failed {
                return;
            }
            at += want;
        }
    });
    Ok(rx)
}

fn rejected(reason: RejectReason, detail: &str) -> Failure {
    let text = format!("{}: {detail}", reason.as_str());
    if reason.is_temporary() {
        Failure::Temporary(anyhow!(text))
    } else {
        Failure::Permanent(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let cap = Duration::from_secs(300);
        let secs = Duration::from_secs;
        // (attempts so far, shortest wait, longest wait): doubling from 1 s, up to half
        // earlier at random, never past the cap.
        let table = [
            (0, Duration::from_millis(500), secs(1)),
            (1, secs(1), secs(2)),
            (4, secs(8), secs(16)),
            (8, secs(128), secs(256)),
            (9, secs(150), secs(300)),
            (39, secs(150), secs(300)),
        ];
        for (attempts, shortest, longest) in table {
            let waits: Vec<_> = [0, 1, 12_345, u64::MAX - 1, u64::MAX]
                .into_iter()
                .map(|random| backoff(attempts, cap, random))
                .collect();
            for wait in &waits {
                assert!(
                    *wait >= shortest && *wait <= longest,
                    "{attempts}: {wait:?}"
                );
            }
            assert_eq!(waits.first(), Some(&shortest), "{attempts}: no jitter at 0");
            assert!(waits.iter().any(|w| *w != shortest), "{attempts}: jitter");
        }
    }

    #[test]
    fn retries_due_in_whole_seconds_keep_their_jitter() {
        // 1.5 s: half the draws 1 s, half 2 s, none other.
        let mut seconds = std::collections::BTreeMap::new();
        for random in 0..1000u64 {
            *seconds
                .entry(whole_seconds(Duration::from_millis(1500), random))
                .or_insert(0) += 1;
        }
        assert_eq!(
            seconds.into_iter().collect::<Vec<_>>(),
            [(1, 500), (2, 500)]
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(300), 999),
            1,
            "at least 1 s"
        );
        assert_eq!(whole_seconds(Duration::from_secs(7), 12), 7);
    }

    /// A document sent from memory, and one sent from its file.
    const SMALL: u64 = 10 * 1024;
    const LARGE: u64 = INLINE_MAX_LEN + 1;

    #[test]
    fn slow_deliveries_are_admitted_up_to_the_limits_per_agency_and_in_all() {
        let mut count = InFlightCount::default();
        for _ in 0..MAX_SLOW_PER_AGENCY {
            assert!(count.admit("nl.prison.vught", true, LARGE));
        }
        // The prison has its limit: its next slow delivery waits, others' do not, and nor
        // does a small document's first attempt to the prison.
        assert!(!count.admit("nl.prison.vught", true, LARGE));
        let held = count.held_back();
        assert_eq!(held.recipients, ["nl.prison.vught"]);
        assert!(!held.all && held.full.is_empty());
        assert_eq!(held.min_len, INLINE_MAX_LEN);
        assert!(count.admit("nl.prison.vught", false, SMALL));
        let mut others = 0;
        while count.admit(&format!("nl.city.{others}"), true, LARGE) {
            others += 1;
        }
        // Every other agency got one until the limit in all was reached.
        assert_eq!(others, MAX_SLOW_DELIVERIES - MAX_SLOW_PER_AGENCY);
        assert!(count.held_back().all);

        // Counted again from the deliveries in flight, small ones left out.
        let mut in_flight = InFlight::new();
        for i in 0..MAX_SLOW_PER_AGENCY {
            in_flight.insert(
                (format!("{i}"), "nl.prison.vught".into()),
                (i as i64, true, LARGE),
            );
        }
        in_flight.insert(("s".into(), "nl.city.utrecht".into()), (99, false, SMALL));
        let held = InFlightCount::of(&in_flight).held_back();
        assert_eq!(held.recipients, ["nl.prison.vught"]);
        assert!(!held.all && held.full.is_empty());
        assert!(InFlightCount::default().held_back().is_empty());
    }

    #[test]
    fn documents_held_in_memory_are_admitted_up_to_their_bytes_in_flight() {
        let biggest = INLINE_MAX_LEN;
        // To one agency: its share, then its small documents wait, others' do not.
        let mut count = InFlightCount::default();
        let theirs = MAX_SMALL_BYTES_PER_AGENCY_IN_FLIGHT / biggest;
        for _ in 0..theirs {
            assert!(count.admit("nl.prison.vught", false, biggest));
        }
        assert!(!count.admit("nl.prison.vught", false, biggest));
        assert!(!count.admit("nl.prison.vught", false, 1));
        let held = count.held_back();
        assert_eq!(held.small_full, ["nl.prison.vught"]);
        assert_eq!(held.small_room, None);
        assert!(count.admit("nl.probation.utrecht", false, biggest));
        assert!(count.admit("nl.prison.vught", true, LARGE));

        // To every agency together.
        let mut count = InFlightCount::default();
        let fit = MAX_SMALL_BYTES_IN_FLIGHT / biggest;
        for i in 0..fit {
            let to = format!("nl.city.{}", i / theirs);
            assert!(count.admit(&to, false, biggest), "{i}");
        }
        // No room for another of those, to any agency; the query leaves out every document
        // held in memory longer than the room left, and large ones still go.
        assert!(!count.admit("nl.prison.vught", false, biggest));
        assert!(!count.admit("nl.prison.vught", false, 1));
        let held = count.held_back();
        assert_eq!(held.small_room, Some(0));
        assert!(!held.is_empty());
        assert!(count.admit("nl.prison.vught", true, LARGE));
        // Counted again from the deliveries in flight.
        let mut in_flight = InFlight::new();
        for i in 0..fit {
            in_flight.insert(
                (format!("{i}"), "nl.city.0".into()),
                (i as i64, false, biggest),
            );
        }
        assert_eq!(InFlightCount::of(&in_flight).small_room(), Some(0));
        in_flight.remove(&("0".to_owned(), "nl.city.0".to_owned()));
        assert_eq!(InFlightCount::of(&in_flight).small_room(), None);
        // Small documents: a whole agency's share of slots fits many times over.
        let mut count = InFlightCount::default();
        for _ in 0..MAX_PER_AGENCY {
            assert!(count.admit("nl.prison.vught", false, SMALL));
        }
        assert_eq!(count.small_room(), None);
    }

    #[test]
    fn fetches_no_more_rows_than_the_busiest_open_agency_may_take() {
        // Nothing in flight: as many as one agency may take (more rows, for other agencies,
        // come in the next round).
        let mut count = InFlightCount::default();
        assert_eq!(count.fetch_limit(MAX_PARALLEL_DELIVERIES), MAX_PER_AGENCY);
        assert_eq!(count.fetch_limit(5), 5);
        assert_eq!(count.fetch_limit(0), 1);
        for _ in 1..MAX_PER_AGENCY {
            assert!(count.admit("nl.prison.vught", false, SMALL));
        }
        // One slot left for the prison: its next row is the likely one, so one is fetched.
        assert_eq!(
            count.fetch_limit(MAX_PARALLEL_DELIVERIES - MAX_PER_AGENCY + 1),
            1
        );
        // Once the prison is full its rows are left out: the others may take more.
        assert!(count.admit("nl.prison.vught", false, SMALL));
        for _ in 0..10 {
            assert!(count.admit("nl.probation.utrecht", false, SMALL));
        }
        let free = MAX_PARALLEL_DELIVERIES - MAX_PER_AGENCY - 10;
        assert_eq!(count.fetch_limit(free), free.min(MAX_PER_AGENCY - 10));
    }

    #[test]
    fn one_agency_never_takes_every_delivery_slot() {
        let mut count = InFlightCount::default();
        let mut to_prison = 0;
        while count.admit("nl.prison.vught", false, SMALL) {
            to_prison += 1;
        }
        assert_eq!(to_prison, MAX_PER_AGENCY);
        assert!(to_prison < MAX_PARALLEL_DELIVERIES);
        // Its retries wait too, and the query leaves all of its rows out.
        assert!(!count.admit("nl.prison.vught", true, LARGE));
        let held = count.held_back();
        assert_eq!(held.full, ["nl.prison.vught"]);
        assert!(held.recipients.is_empty() && !held.all);
        // Every other agency's documents still find a slot.
        assert!(count.admit("nl.probation.utrecht", false, SMALL));
        assert!(count.admit("nl.probation.utrecht", true, LARGE));

        let mut in_flight = InFlight::new();
        for i in 0..MAX_PER_AGENCY {
            in_flight.insert(
                (format!("{i}"), "nl.prison.vught".into()),
                (i as i64, false, SMALL),
            );
        }
        assert_eq!(
            InFlightCount::of(&in_flight).held_back().full,
            ["nl.prison.vught"]
        );
    }
}
