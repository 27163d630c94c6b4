//! Checkpoint witnessing (spec: `docs/spec/log.md`, "Witnessing"; wire: `wire.md`).
//!
//! After the hello on every new connection, and again while entries of a node's log wait for a
//! witness ([`rewitness_worker`]), the client opens one more stream. On it each
//! side in turn acts as witness of the other's log: it asks for the owner's newest
//! checkpoint proven to extend the one it countersigned last, checks the signature against
//! the roster and the proof against what it holds, and answers with a countersignature, or
//! refuses and records a `fork-detected` alarm in its own log.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use liaise_keys::{AgencyId, Timestamp};
use liaise_protocol::log::{SignedCheckpoint, SignedCountersignature, check_extends};
use liaise_protocol::wire::{Message, MessageKind};
use quinn::{RecvStream, SendStream};
use serde_json::json;

use super::Node;
use super::framed::{FRAME_TIMEOUT, FrameError, read_message, write_message_within};
use crate::log::rate::{Admission, TOO_MANY_REQUESTS};
use crate::log::{self, LogKind, NewLogEntry, checkpoints};
use crate::store::hex;

/// The client's side of the exchange may take at most this long. It holds up only the caller
/// that dialled the connection (others use it meanwhile), and never fails the dial.
pub const WITNESS_TIMEOUT: Duration = Duration::from_secs(15);

const OFFER: &[MessageKind] = &[MessageKind::CheckpointOffer, MessageKind::CheckpointRefused];
const ANSWER: &[MessageKind] = &[
    MessageKind::Countersignature,
    MessageKind::CheckpointRefused,
];
const REQUEST: &[MessageKind] = &[MessageKind::WitnessRequest];

/// Entries no peer has countersigned wait at most about this long for a witness: if no new
/// connection brought an exchange meanwhile, a node starts one with a peer. Connections stay
/// open for days, so the exchange at their start alone would leave recent entries protected
/// only by this node's own disk.
pub const WITNESS_INTERVAL: Duration = Duration::from_secs(60);
/// How often the re-witnessing worker looks.
const WITNESS_POLL: Duration = Duration::from_secs(5);
/// Peers tried in one round when some cannot be reached.
const WITNESS_TRIES: usize = 3;

/// Has this node's log witnessed again while entries wait for a witness: every
/// [`WITNESS_INTERVAL`] at most, one peer at a time in turn (over its open connection, or a
/// new one).
pub async fn rewitness_worker(node: std::sync::Arc<Node>) {
    let mut last = tokio::time::Instant::now();
    let mut turn = 0usize;
    loop {
        tokio::time::sleep(WITNESS_POLL).await;
        if last.elapsed() < WITNESS_INTERVAL {
            continue;
        }
        match node
            .store
            .db
            .read(checkpoints::has_unwitnessed_entries)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("cannot read the log: {e:#}");
                continue;
            }
        }
        last = tokio::time::Instant::now();
        let peers: Vec<AgencyId> = node
            .roster
            .current()
            .body()
            .members
            .iter()
            .filter(|m| m.id != node.me && !m.addresses.is_empty())
            .map(|m| m.id.clone())
            .collect();
        for i in 0..peers.len().min(WITNESS_TRIES) {
            let Some(peer) = peers.get((turn + i) % peers.len()) else {
                break;
            };
            // A fresh dial runs the exchange itself.
            let witnessed = match node.peers.cached(peer).await {
                Some(conn) => {
                    client_exchange(&node, &conn, peer).await;
                    true
                }
                None => node.peers.get(&node, peer).await.is_ok(),
            };
            if witnessed {
                break;
            }
        }
        turn = turn.wrapping_add(1);
    }
}

/// The client's side: witness the server, then be witnessed by it. Errors are logged, never
/// fatal to the connection's other uses.
pub async fn client_exchange(node: &Node, connection: &quinn::Connection, peer: &AgencyId) {
    let run = async {
        let (mut send, mut recv) = connection.open_bi().await.context("cannot open a stream")?;
        witness(node, &mut send, &mut recv, peer).await?;
        let Message::WitnessRequest { since } = read_message(&mut recv, REQUEST).await? else {
            bail!("unexpected message");
        };
        be_witnessed(node, &mut send, &mut recv, peer, since).await?;
        let _ = send.finish();
        Ok::<(), anyhow::Error>(())
    };
    match tokio::time::timeout(WITNESS_TIMEOUT, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::info!(agency = %peer, "checkpoint exchange failed: {e:#}"),
        Err(_) => tracing::info!(agency = %peer, "checkpoint exchange timed out"),
    }
}

/// The server's side, after reading the client's `WitnessRequest { since }`.
pub async fn serve_exchange(
    node: &Node,
    mut send: SendStream,
    mut recv: RecvStream,
    peer: &AgencyId,
    since: Option<u64>,
) -> Result<()> {
    if let Admission::Refused { .. } = node.log_rate.witness.admit(peer) {
        tracing::warn!(agency = %peer, "too many witness exchanges; refusing one");
        let detail = TOO_MANY_REQUESTS.to_owned();
        write_message_within(
            &mut send,
            &Message::CheckpointRefused { detail },
            FRAME_TIMEOUT,
        )
        .await?;
        let _ = send.finish();
        return Ok(());
    }
    be_witnessed(node, &mut send, &mut recv, peer, since).await?;
    witness(node, &mut send, &mut recv, peer).await?;
    let _ = send.finish();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

/// As owner: sign a checkpoint of the current head if needed, offer the one the witness can
/// check, and store its countersignature.
async fn be_witnessed(
    node: &Node,
    send: &mut SendStream,
    recv: &mut RecvStream,
    peer: &AgencyId,
    since: Option<u64>,
) -> Result<()> {
    make_checkpoint(node).await?;
    let offer = node
        .store
        .db
        .read(move |c| checkpoints::offer_for_witness(c, since))
        .await?;
    let Some(checkpoints::WitnessOffer { checkpoint, proof }) = offer else {
        let detail = "no checkpoint yet".to_owned();
        write_message_within(send, &Message::CheckpointRefused { detail }, FRAME_TIMEOUT).await?;
        return Ok(());
    };
    let ours = SignedCheckpoint::from_bytes(&checkpoint)?;
    let seq = ours.body_unverified()?.seq;
    write_message_within(
        send,
        &Message::CheckpointOffer { checkpoint, proof },
        FRAME_TIMEOUT,
    )
    .await?;
    match read_message(recv, ANSWER).await? {
        Message::Countersignature { countersignature } => {
            let key = peer_key(node, peer)?;
            let signed = SignedCountersignature::from_bytes(&countersignature)?;
            let body = signed
                .verify_for(&ours, &key)
                .context("the peer's countersignature does not verify")?;
            if &body.witness != peer {
                bail!("the countersignature names another witness");
            }
            let peer = peer.clone();
            node.store
                .db
                .write(move |c| {
                    checkpoints::store_countersignature(c, seq, &peer, &countersignature)
                })
                .await?;
        }
        Message::CheckpointRefused { detail } => {
            tracing::warn!(agency = %peer, "peer refused to countersign our checkpoint {seq}: {detail}");
        }
        _ => bail!("unexpected message"),
    }
    Ok(())
}

/// As witness: ask for the owner's checkpoint, check it, countersign or refuse.
async fn witness(
    node: &Node,
    send: &mut SendStream,
    recv: &mut RecvStream,
    peer: &AgencyId,
) -> Result<()> {
    // The log is the one the owner signs with its current key: an agency re-admitted under
    // a new signing key (a rebuilt node) starts a new log, witnessed from its first checkpoint.
    let (owner, key) = (peer.clone(), peer_key(node, peer)?);
    let known = node
        .store
        .db
        .read(move |c| checkpoints::witnessed_last(c, &owner, &key))
        .await?;
    let since = known.map(|(seq, _)| seq);
    write_message_within(send, &Message::WitnessRequest { since }, FRAME_TIMEOUT).await?;
    let (checkpoint, proof) = match read_message(recv, OFFER).await? {
        Message::CheckpointOffer { checkpoint, proof } => (checkpoint, proof),
        _ => return Ok(()),
    };
    let signed = SignedCheckpoint::from_bytes(&checkpoint)?;
    let body = signed
        .verify(&key)
        .context("the peer's checkpoint does not verify")?;
    if &body.agency != peer {
        bail!("the peer offered another agency's checkpoint");
    }
    if let Err(contradiction) = check_extends(known, &body, &proof) {
        let detail = json!({
            "problem": contradiction.to_string(),
            "offered_seq": body.seq,
            "offered_head": hex(&body.head),
            "countersigned": known.map(|(s, h)| json!({ "seq": s, "head": hex(&h) })),
        });
        let entry = NewLogEntry::new(LogKind::ForkDetected)
            .agency(peer.clone())
            .detail(detail);
        // Once per peer and countersigned checkpoint: the first contradiction is the
        // evidence, and a peer offering forks again must not grow the log without end.
        let (agency, countersigned) = (peer.clone(), known.map(|(s, _)| s));
        let first = node
            .store
            .db
            .write(move |c| {
                let first =
                    checkpoints::record_fork(c, &agency, &key, countersigned, Timestamp::now())?;
                if first {
                    log::append(c, entry)?;
                }
                Ok(first)
            })
            .await;
        // An ERROR once, for alerting; a repetition (each new connection) is a warning.
        let first = match first {
            Ok(first) => first,
            Err(e) => {
                tracing::error!(
                    agency = %peer,
                    "FORK DETECTED in the peer's log: {contradiction} (not recorded: {e:#})"
                );
                return Err(e);
            }
        };
        if first {
            tracing::error!(agency = %peer, "FORK DETECTED in the peer's log: {contradiction}");
        } else {
            tracing::warn!(
                agency = %peer,
                "the peer repeated a contradiction already recorded (fork detected before): \
                 {contradiction}"
            );
        }
        let detail = liaise_protocol::wire::bounded_detail(&contradiction.to_string());
        write_message_within(send, &Message::CheckpointRefused { detail }, FRAME_TIMEOUT).await?;
        return Ok(());
    }
    let now = Timestamp::now();
    let countersignature =
        SignedCountersignature::sign(&signed, &node.me, now, &node.secrets.signing);
    let entry = NewLogEntry::new(LogKind::Countersigned)
        .agency(peer.clone())
        .detail(json!({ "seq": body.seq, "head": hex(&body.head) }));
    node.store
        .db
        .write(move |c| {
            let fresh = !checkpoints::witnessed_at(c, &body.agency, &key, body.seq)?;
            checkpoints::record_witnessed(c, &body, &key, &checkpoint, now)?;
            if fresh {
                log::append(c, entry)?;
            }
            Ok(())
        })
        .await?;
    let countersignature = countersignature.to_bytes();
    write_message_within(
        send,
        &Message::Countersignature { countersignature },
        FRAME_TIMEOUT,
    )
    .await?;
    Ok(())
}

/// Signs a checkpoint of the current head unless it has one. Looks first with a read, so a
/// peer asking to witness an unchanged log costs no database write.
pub async fn make_checkpoint(node: &Node) -> Result<()> {
    if !node.store.db.read(checkpoints::is_due).await? {
        return Ok(());
    }
    let me = node.me.clone();
    let key = liaise_keys::SigningSecretKey::from_bytes(&node.secrets.signing.to_bytes());
    node.store
        .db
        .write(move |c| checkpoints::sign_if_needed(c, &me, &key, Timestamp::now()).map(|_| ()))
        .await
}

fn peer_key(node: &Node, peer: &AgencyId) -> Result<liaise_keys::SigningPublicKey> {
    node.roster
        .current()
        .member(peer)
        .map(|m| m.signing_key)
        .with_context(|| format!("{peer} is not in the roster"))
}

/// Maps the exchange's errors for the stream server: protocol violations keep their code.
pub fn as_frame_error(e: anyhow::Error) -> FrameError {
    e.downcast::<FrameError>()
        .unwrap_or_else(|e| FrameError::Stream(e.to_string()))
}
