//! Roster gossip: on every new connection both nodes state their roster serials in
//! `Hello`/`HelloAck`; the one with the older roster gets the newer file and adopts it if it
//! passes every roster check (threshold of the held stewards and of the new ones, higher
//! serial, not expired). The client repeats the exchange on the open connection
//! ([`super::rehello`]).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use liaise_keys::Timestamp;
use liaise_keys::roster::{Roster, RosterError};
use liaise_protocol::wire::{Message, MessageKind, PROTOCOL_VERSION};
use quinn::{RecvStream, SendStream};

use super::framed::{FRAME_TIMEOUT, read_message, write_message_within};
use super::refused_rosters::REFUSED_ROSTER_QUIET;
use super::{Node, now_secs};
use crate::store::{Store, records};
use crate::transport::SharedRoster;

const AFTER_HELLO_ACK: &[MessageKind] = &[MessageKind::RosterFile];
/// After `HelloAck`, when the client's roster is older: it may ask for ours.
const AFTER_HELLO_OLDER_CLIENT: &[MessageKind] = &[MessageKind::RosterRequest];
/// After `HelloAck`, when the client said its roster is newer: it may push it, once.
const AFTER_HELLO_NEWER_CLIENT: &[MessageKind] = &[MessageKind::RosterFile];

/// Records the roster the node starts with in the roster history.
pub async fn record_current(store: &Store, roster: &SharedRoster) -> Result<()> {
    let current = roster.current();
    let serial = current.serial();
    let file = current.file_bytes().to_vec();
    store
        .db
        .write(move |c| records::roster_adopted(c, serial, "local", &file, now_secs()))
        .await
}

/// Why peers holding this node's own roster refuse the transport key this node presents,
/// if they do: it was revoked, or its certificate ended. Most likely `liaise keys rotate`
/// made new keys that this node, started before, has not loaded. During a rotation the node
/// presents its previous key while the roster certifies it: that key is the one checked,
/// not the new one the stewards may not have published yet.
pub fn own_key_problem(node: &Node) -> Option<String> {
    let now = Timestamp::now();
    let key = node.presented_key.public_at(now);
    let roster = node.roster.current();
    let refused = roster.member_by_transport_key(&key, now).err()?;
    Some(format!(
        "this node's transport key is refused by its own roster (serial {}): {refused}; if \
         `liaise keys rotate` made new keys, restart the node to load them, else ask the stewards",
        roster.serial()
    ))
}

/// The client's side of the first stream on a new connection. Getting the `HelloAck` is what
/// confirms the server accepted our key.
pub async fn client_hello(node: &Node, connection: &quinn::Connection, peer: &str) -> Result<()> {
    let (mut send, mut recv) = connection.open_bi().await.context("cannot open a stream")?;
    let ours = node.roster.current().serial();
    write_message_within(
        &mut send,
        &Message::Hello {
            version: PROTOCOL_VERSION,
            roster_serial: ours,
        },
        FRAME_TIMEOUT,
    )
    .await?;
    let ack = match read_message(&mut recv, &[MessageKind::HelloAck]).await {
        Ok(ack) => ack,
        Err(e) => {
            let e = anyhow::Error::new(e);
            // Blamed on keys only if they are at fault here, or the peer refused ours: a
            // connection lost or reset (the peer restarting, say) is not about keys.
            return Err(match own_key_problem(node) {
                Some(problem) => e.context(problem),
                None if super::peers::refused_our_key(connection) => {
                    e.context("the peer did not accept this node (is our key in its roster?)")
                }
                None => e.context("the peer did not answer this node's hello"),
            });
        }
    };
    let Message::HelloAck {
        roster_serial: theirs,
        ..
    } = ack
    else {
        bail!("unexpected answer to hello");
    };
    if theirs > ours {
        if !refused_lately(node, peer, theirs, ours) {
            write_message_within(&mut send, &Message::RosterRequest, FRAME_TIMEOUT).await?;
            if let Message::RosterFile { file } = read_message(&mut recv, AFTER_HELLO_ACK).await? {
                adopt_from(node, file, peer, theirs, ours).await;
            }
        }
    } else if ours > theirs {
        let file = node.roster.current().file_bytes().to_vec();
        write_message_within(&mut send, &Message::RosterFile { file }, FRAME_TIMEOUT).await?;
    }
    let _ = send.finish();
    // A server that never reads the stream to its end does not hold the dial.
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

/// The server's side, after reading `Hello` with the client's roster serial. A `RosterFile`
/// is read only if the client said its roster is newer than ours (a protocol violation
/// otherwise), and at most one per stream.
pub async fn serve_hello(
    node: &Node,
    mut send: SendStream,
    mut recv: RecvStream,
    peer: &str,
    client_serial: u64,
) -> Result<()> {
    let ours = node.roster.current().serial();
    // Written within FRAME_TIMEOUT of progress (`wire.md`): a client that takes nothing does
    // not hold this stream, or an 8 MiB roster file, until the connection ends.
    write_message_within(
        &mut send,
        &Message::HelloAck {
            version: PROTOCOL_VERSION,
            roster_serial: ours,
        },
        FRAME_TIMEOUT,
    )
    .await?;
    // At most one roster message follows, then the client finishes the stream.
    let allowed = match client_serial.cmp(&ours) {
        std::cmp::Ordering::Greater => AFTER_HELLO_NEWER_CLIENT,
        std::cmp::Ordering::Less => AFTER_HELLO_OLDER_CLIENT,
        // Nothing to exchange: a request for a roster the client holds is a violation.
        std::cmp::Ordering::Equal => &[],
    };
    match read_message(&mut recv, allowed).await {
        Ok(Message::RosterRequest) => {
            let file = node.roster.current().file_bytes().to_vec();
            write_message_within(&mut send, &Message::RosterFile { file }, FRAME_TIMEOUT).await?;
        }
        Ok(Message::RosterFile { file }) if !refused_lately(node, peer, client_serial, ours) => {
            adopt_from(node, file, peer, client_serial, ours).await;
        }
        Ok(_) => {}
        Err(e @ super::framed::FrameError::Violation(_)) => return Err(e.into()),
        Err(_) => {} // the client finished the stream: nothing to exchange
    }
    let _ = send.finish();
    Ok(())
}

/// Whether `peer`'s roster `theirs` was refused lately against this node's `ours`: then it is
/// neither fetched nor checked again (see [`super::refused_rosters`]).
fn refused_lately(node: &Node, peer: &str, theirs: u64, ours: u64) -> bool {
    let refused = node
        .refused_rosters
        .recently(peer, theirs, ours, Instant::now());
    if refused {
        tracing::debug!(peer, serial = theirs, "a roster refused lately: left alone");
    }
    refused
}

/// [`adopt`]s a roster `peer` sent, stating serial `theirs` while this node held `ours`, and
/// remembers a refusal so that the same roster is not fetched or checked again for a while.
async fn adopt_from(node: &Node, file: Vec<u8>, peer: &str, theirs: u64, ours: u64) {
    if let Adoption::Refused = adopt(node, file, peer).await {
        node.refused_rosters
            .record(peer, theirs, ours, Instant::now());
    }
}

/// What became of a roster offered for adoption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// It is the roster in force now.
    Adopted,
    /// It failed the roster checks against the roster held.
    Refused,
    /// It was not taken up for another reason (a newer roster came first, a store failure).
    NotAdopted,
}

/// Whether a roster was refused for its validity period against this node's clock.
fn depends_on_the_clock(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<RosterError>(),
        Some(RosterError::Expired { .. } | RosterError::IssuedInFuture { .. })
    )
}

/// Whether `e`, the refusal of roster `file`, only says it is not newer than `held`: older
/// (offered before this node took up a newer one), or the very roster held (the same one from
/// a second peer). A different roster under the held serial is not this: two rosters with one
/// serial are worth a warning.
fn not_newer(e: &anyhow::Error, held: &Roster, file: &[u8]) -> bool {
    match e.downcast_ref::<RosterError>() {
        Some(RosterError::Rollback {
            offered,
            held: serial,
        }) => offered < serial || held.file_bytes() == file,
        _ => false,
    }
}

/// How often an adoption re-checks a roster whose held predecessor changed meanwhile.
const ADOPT_ATTEMPTS: usize = 3;

/// Adopts `file` if it is a valid successor of the held roster; logs and ignores it otherwise.
/// A refusal is logged as a warning that says for how long the same roster from the same peer
/// is ignored (the caller remembers it, see [`super::refused_rosters`]).
///
/// The checks run off the async runtime and outside the roster's update lock: first the cheap
/// [`Roster::precheck_update`] (structure, signature count, serial, the held stewards'
/// threshold: at most that many signature checks), then the full `accept_update`. A pushed
/// roster that cannot pass therefore costs little and never holds up the adoption of a genuine
/// one. The lock is taken only to see that the roster checked against is still the one held,
/// then to store and install the new one; adoptions thus still run one at a time, and a
/// slower, older roster never overwrites a newer one, in memory or on disk. If another
/// roster was adopted meanwhile the check is repeated against it.
pub async fn adopt(node: &Node, file: Vec<u8>, source: &str) -> Adoption {
    let file = std::sync::Arc::new(file);
    let mut attempts = 0;
    let (next, _updating) = loop {
        attempts += 1;
        let current = node.roster.current();
        let held_serial = current.serial();
        let bytes = std::sync::Arc::clone(&file);
        let checked = tokio::task::spawn_blocking(move || -> Result<Roster> {
            current
                .accept_update(&bytes, Timestamp::now())
                .map_err(anyhow::Error::new)
        })
        .await;
        let next = match checked {
            Ok(Ok(next)) => next,
            Ok(Err(e)) if not_newer(&e, &node.roster.current(), &file) => {
                // Not newer than ours: the same roster from a second peer, or an older one
                // from a peer that offered it before this node took up a newer one (two peers
                // pushing at once). Nothing to warn about; a different roster under the
                // serial held is, below.
                tracing::debug!(peer = source, "roster offered is not newer: {e:#}");
                return Adoption::NotAdopted;
            }
            Ok(Err(e)) if depends_on_the_clock(&e) => {
                // This node's clock may be wrong, and be set right any time: not remembered.
                tracing::warn!(peer = source, "refused roster from peer: {e:#}");
                return Adoption::NotAdopted;
            }
            Ok(Err(e)) => {
                tracing::warn!(
                    peer = source,
                    "refused roster from peer: {e:#} (the same roster from this peer is ignored \
                     for {} min, unless this node takes up another roster meanwhile)",
                    REFUSED_ROSTER_QUIET.as_secs() / 60
                );
                return Adoption::Refused;
            }
            Err(e) => {
                tracing::warn!(peer = source, "roster check failed: {e}");
                return Adoption::NotAdopted;
            }
        };
        let updating = node.roster.lock_updates().await;
        // Only holders of the update lock replace the roster, and serials only grow: the same
        // serial means the same roster it was checked against.
        if node.roster.current().serial() == held_serial {
            break (next, updating);
        }
        drop(updating);
        if attempts >= ADOPT_ATTEMPTS {
            tracing::warn!(
                peer = source,
                "the held roster kept changing; ignoring a pushed one"
            );
            return Adoption::NotAdopted;
        }
    };
    let home = node.home.clone();
    let stored = tokio::task::spawn_blocking(move || {
        home.store_roster(&next)
            .context("cannot store the new roster")
            .map(|()| next)
    })
    .await;
    let next = match stored {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => {
            tracing::warn!(peer = source, "{e:#}");
            return Adoption::NotAdopted;
        }
        Err(e) => {
            tracing::warn!(peer = source, "roster store failed: {e}");
            return Adoption::NotAdopted;
        }
    };
    let serial = next.serial();
    let bytes = next.file_bytes().to_vec();
    if !node.roster.replace(next) {
        tracing::warn!(serial, peer = source, "a newer roster is already in force");
        return Adoption::NotAdopted;
    }
    tracing::info!(serial, peer = source, "adopted a newer roster");
    if let Some(problem) = own_key_problem(node) {
        tracing::error!("{problem}");
    }
    let source = source.to_owned();
    let _ = node
        .store
        .db
        .write(move |c| records::roster_adopted(c, serial, &source, &bytes, now_secs()))
        .await;
    Adoption::Adopted
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::signer_keys::tests::{CITY, NOW, Stewards, identity, roster};

    #[test]
    fn a_roster_not_newer_is_ignored_quietly_unless_it_differs_from_the_one_held() {
        let stewards = Stewards::generate();
        let city = identity(CITY);
        let held = roster(2, &stewards, &stewards.quorum(), &[&city], vec![]);
        let older = roster(1, &stewards, &stewards.quorum(), &[&city], vec![]);
        let rival = roster(2, &stewards, &stewards.quorum(), &[], vec![]);
        let refusal = |offered, file: &Roster| {
            let e = held.accept_update(file.file_bytes(), NOW).unwrap_err();
            assert!(
                matches!(e, RosterError::Rollback { offered: o, held: 2 } if o == offered),
                "{e}"
            );
            anyhow::Error::new(e)
        };
        // The very roster held, from a second peer; an older one pushed in a race.
        assert!(not_newer(&refusal(2, &held), &held, held.file_bytes()));
        assert!(not_newer(&refusal(1, &older), &held, older.file_bytes()));
        // Another roster under the held serial: warned about.
        assert!(!not_newer(&refusal(2, &rival), &held, rival.file_bytes()));
        // Any other refusal is not this.
        let forged = RosterError::UnderThreshold {
            valid: 0,
            threshold: 1,
            which: "current",
        };
        assert!(!not_newer(&anyhow::Error::new(forged), &held, b""));
    }

    #[test]
    fn only_refusals_for_the_roster_validity_period_depend_on_the_clock() {
        let at = Timestamp(1_800_000_000);
        let expired = RosterError::Expired {
            serial: 7,
            expires_at: at,
        };
        let future = RosterError::IssuedInFuture { issued_at: at };
        assert!(depends_on_the_clock(&anyhow::Error::new(expired)));
        assert!(depends_on_the_clock(&anyhow::Error::new(future)));
        let forged = RosterError::UnderThreshold {
            valid: 0,
            threshold: 1,
            which: "current",
        };
        assert!(!depends_on_the_clock(&anyhow::Error::new(forged)));
    }
}
