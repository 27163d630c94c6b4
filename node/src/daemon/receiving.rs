//! Incoming transfers in progress: at most one per (sender agency, document id).
//!
//! A second offer of a document on the connection already receiving it is refused as busy.
//! One on another connection of the same agency supersedes the first: the agency dialled
//! again, so its node restarted or lost the old connection, perhaps from an address this
//! node can no longer reach (a NAT that rebinds). Waiting for that connection to time out
//! would hold the document back for up to the idle timeout plus the sender's backoff; so the
//! old connection is closed, its transfer ends as an interrupted one (what it wrote stays
//! for the resume), and the new offer resumes from there.
//!
//! Each transfer of a document over [`INLINE_MAX_LEN`] holds a thread writing its partial
//! file, from the runtime's pool of blocking threads that every database read and document
//! check also needs. So at most [`MAX_LARGE_TRANSFERS`] of them run at once, at most
//! [`MAX_LARGE_TRANSFERS_PER_AGENCY`] from one agency; an offer over either limit is answered
//! busy and retried by its sender.
//!
//! A document of at most [`INLINE_MAX_LEN`] is taken into memory whole. The bytes offered in
//! such transfers are bounded, at [`MAX_SMALL_BYTES_PER_AGENCY`] from one agency and
//! [`MAX_SMALL_BYTES`] in all, rather than by the streams a peer may open (which are many, so
//! that many small documents are in flight at once and share the receiver's group commits).
//! An offer that does not fit waits for room, up to [`ROOM_WAIT`], before it is answered busy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use liaise_keys::AgencyId;
use liaise_protocol::wire::CloseCode;
use quinn::VarInt;
use tokio::sync::Notify;

use crate::store::held::INLINE_MAX_LEN;

/// The most transfers of documents over [`INLINE_MAX_LEN`] received at once: well under
/// tokio's 512 blocking threads, which the database reads and checks need too.
pub const MAX_LARGE_TRANSFERS: usize = 64;
/// The most of those from one agency (a sender runs 4 at once to one agency; more is
/// another agency's share).
pub const MAX_LARGE_TRANSFERS_PER_AGENCY: usize = 16;

/// Bytes of documents of at most [`INLINE_MAX_LEN`] received (in memory) at once from one
/// agency: as many as 16 streams of the largest such documents.
pub const MAX_SMALL_BYTES_PER_AGENCY: u64 = 16 * INLINE_MAX_LEN;
/// Bytes of documents of at most [`INLINE_MAX_LEN`] received at once in all.
pub const MAX_SMALL_BYTES: u64 = 64 * 1024 * 1024;
/// The longest a small document's offer waits for room under those limits before it is
/// answered busy (and retried by its sender): well inside the sender's wait for an answer.
pub const ROOM_WAIT: Duration = Duration::from_secs(10);

/// The longest a new offer waits for the transfer it supersedes to end (its last bytes to
/// reach the partial file). Past it, the new offer is refused as busy and retried.
pub const SUPERSEDE_WAIT: Duration = Duration::from_secs(5);

/// The reason sent with the close of a superseded connection.
const SUPERSEDED: &[u8] = b"superseded by a new connection";

/// (sender agency, document id in hex).
type Key = (String, String);

/// One transfer in progress.
#[derive(Debug)]
struct Transfer {
    /// The offered length.
    offered: u64,
    /// The connection it arrives on.
    connection: quinn::Connection,
}

/// The transfers in progress.
#[derive(Debug, Default)]
pub struct Receiving {
    transfers: Mutex<HashMap<Key, Transfer>>,
    /// Woken whenever a transfer ends.
    ended: Notify,
}

/// A transfer entered in [`Receiving`]; it leaves when this is dropped.
#[derive(Debug)]
pub struct Entered<'a> {
    table: &'a Receiving,
    key: Key,
    connection: usize,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Ok(mut transfers) = self.table.transfers.lock()
            && transfers
                .get(&self.key)
                .is_some_and(|t| t.connection.stable_id() == self.connection)
        {
            transfers.remove(&self.key);
        }
        self.table.ended.notify_waiters();
    }
}

/// Why an offer is answered busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The document is being received on the same connection (or the transfer on another
    /// one did not end within [`SUPERSEDE_WAIT`]).
    AlreadyReceiving,
    /// As many large transfers as allowed are running, from this agency or in all.
    TooManyTransfers,
    /// Small documents of as many bytes as allowed are being received, from this agency or
    /// in all, and none ended within [`ROOM_WAIT`].
    NoRoom,
}

impl Busy {
    /// The detail sent with the refusal.
    pub fn detail(self) -> &'static str {
        match self {
            Self::AlreadyReceiving => "this document is being received already",
            Self::TooManyTransfers => {
                "too many large documents are being received at once; try again later"
            }
            Self::NoRoom => "too many documents are being received at once; try again later",
        }
    }
}

/// Whether the transfers in progress, as (sender, offered length), hold as many large ones
/// as allowed, in all or from `sender`.
fn too_many_large<'a>(transfers: impl Iterator<Item = (&'a str, u64)>, sender: &str) -> bool {
    let (mut all, mut theirs) = (0, 0);
    for (from, offered) in transfers {
        if offered > INLINE_MAX_LEN {
            all += 1;
            theirs += usize::from(from == sender);
        }
    }
    all >= MAX_LARGE_TRANSFERS || theirs >= MAX_LARGE_TRANSFERS_PER_AGENCY
}

/// Whether the small transfers in progress, as (sender, offered length), leave room for
/// `offered` more bytes from `sender`, per agency and in all.
fn room_for_small<'a>(
    transfers: impl Iterator<Item = (&'a str, u64)>,
    sender: &str,
    offered: u64,
) -> bool {
    let (mut all, mut theirs) = (0u64, 0u64);
    for (from, len) in transfers {
        if len <= INLINE_MAX_LEN {
            all = all.saturating_add(len);
            if from == sender {
                theirs = theirs.saturating_add(len);
            }
        }
    }
    theirs.saturating_add(offered) <= MAX_SMALL_BYTES_PER_AGENCY
        && all.saturating_add(offered) <= MAX_SMALL_BYTES
}

/// What [`Receiving::try_insert`] found.
enum Slot<'a> {
    Entered(Entered<'a>),
    Busy(Busy),
    /// No room for this small document now: wait for a transfer to end.
    Full,
    /// The document is received on this other connection.
    Elsewhere(quinn::Connection),
}

impl Receiving {
    /// Enters the transfer of `doc_id` (hex) from `peer`, offered with `offered` bytes on
    /// `connection`. Supersedes a transfer of the same document on another connection of
    /// the agency (see the module's documentation).
    pub async fn enter(
        &self,
        peer: &AgencyId,
        doc_id: &str,
        offered: u64,
        connection: &quinn::Connection,
    ) -> Result<Entered<'_>, Busy> {
        let key = (peer.as_str().to_owned(), doc_id.to_owned());
        let start = tokio::time::Instant::now();
        // Set by each look: how long to wait, and for what (room, or a superseded transfer).
        let (mut deadline, mut waited_for_room);
        let mut closed = false;
        loop {
            // Registered before the look, so an end between the two is not missed.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.try_insert(&key, offered, connection) {
                Slot::Entered(entered) => return Ok(entered),
                Slot::Busy(busy) => return Err(busy),
                Slot::Full => {
                    deadline = start + ROOM_WAIT;
                    waited_for_room = true;
                }
                Slot::Elsewhere(old) if !closed => {
                    (deadline, waited_for_room) = (start + SUPERSEDE_WAIT, false);
                    tracing::info!(agency = %peer, doc = %doc_id,
                        "the transfer on an older connection is superseded by a new connection; closing the old one");
                    old.close(VarInt::from_u32(CloseCode::Done.code()), SUPERSEDED);
                    closed = true;
                }
                Slot::Elsewhere(_) => (deadline, waited_for_room) = (start + SUPERSEDE_WAIT, false),
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Err(match waited_for_room {
                    true => Busy::NoRoom,
                    false => Busy::AlreadyReceiving,
                });
            }
        }
    }

    fn try_insert(&self, key: &Key, offered: u64, connection: &quinn::Connection) -> Slot<'_> {
        let Ok(mut transfers) = self.transfers.lock() else {
            return Slot::Busy(Busy::AlreadyReceiving);
        };
        match transfers.get(key) {
            Some(t) if t.connection.stable_id() == connection.stable_id() => {
                Slot::Busy(Busy::AlreadyReceiving)
            }
            Some(t) => Slot::Elsewhere(t.connection.clone()),
            None if offered > INLINE_MAX_LEN
                && too_many_large(
                    transfers.iter().map(|((s, _), t)| (s.as_str(), t.offered)),
                    &key.0,
                ) =>
            {
                Slot::Busy(Busy::TooManyTransfers)
            }
            None if offered <= INLINE_MAX_LEN
                && !room_for_small(
                    transfers.iter().map(|((s, _), t)| (s.as_str(), t.offered)),
                    &key.0,
                    offered,
                ) =>
            {
                Slot::Full
            }
            None => {
                transfers.insert(
                    key.clone(),
                    Transfer {
                        offered,
                        connection: connection.clone(),
                    },
                );
                Slot::Entered(Entered {
                    table: self,
                    key: key.clone(),
                    connection: connection.stable_id(),
                })
            }
        }
    }

    /// The offered length of each transfer in progress, by (sender, document id).
    pub fn offered(&self) -> HashMap<Key, u64> {
        self.transfers
            .lock()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.offered)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_transfers_are_capped_in_bytes_per_agency_and_in_all() {
        let biggest = INLINE_MAX_LEN;
        let per_agency = usize::try_from(MAX_SMALL_BYTES_PER_AGENCY / biggest).unwrap();
        let prison = |n: usize| std::iter::repeat_n(("prison", biggest), n);
        assert!(room_for_small(prison(per_agency - 1), "prison", biggest));
        assert!(!room_for_small(prison(per_agency), "prison", 1));
        // Small documents take little: hundreds of 10 KiB ones fit where 16 of 256 KiB do.
        let tens = std::iter::repeat_n(("prison", 10 * 1024), 400);
        assert!(room_for_small(tens, "prison", 10 * 1024));
        // Another agency still has room, until all of them together reach the node's limit.
        assert!(room_for_small(prison(per_agency), "city", biggest));
        let names = ["a", "b", "c", "d", "e", "f"];
        let in_all = usize::try_from(MAX_SMALL_BYTES / biggest).unwrap();
        let spread = |n: usize| names.into_iter().cycle().take(n).map(move |a| (a, biggest));
        assert!(room_for_small(spread(in_all - 1), "city", biggest));
        assert!(!room_for_small(spread(in_all), "city", 1));
        // Large transfers do not count: they hold a file, not memory.
        let large = std::iter::repeat_n(("prison", INLINE_MAX_LEN + 1), 1000);
        assert!(room_for_small(large, "prison", biggest));
    }

    #[test]
    fn large_transfers_are_capped_per_agency_and_in_all() {
        let large = INLINE_MAX_LEN + 1;
        let prison = |n: usize| std::iter::repeat_n(("prison", large), n);
        assert!(!too_many_large(
            prison(MAX_LARGE_TRANSFERS_PER_AGENCY - 1),
            "prison"
        ));
        assert!(too_many_large(
            prison(MAX_LARGE_TRANSFERS_PER_AGENCY),
            "prison"
        ));
        // Another agency still gets its share.
        assert!(!too_many_large(
            prison(MAX_LARGE_TRANSFERS_PER_AGENCY),
            "city"
        ));
        // Small documents do not count: they hold no writing thread.
        let small = std::iter::repeat_n(("prison", INLINE_MAX_LEN), 1000);
        assert!(!too_many_large(small, "prison"));
        // In all, whoever sends them.
        let names = ["a", "b", "c", "d", "e"];
        let spread = |n: usize| names.into_iter().cycle().take(n).map(move |a| (a, large));
        assert!(!too_many_large(spread(MAX_LARGE_TRANSFERS - 1), "city"));
        assert!(too_many_large(spread(MAX_LARGE_TRANSFERS), "city"));
    }
}
