//! Incoming transfers in progress: at most one per (sender agency, document id).
//!
//! A second offer of a document on the connection already receiving it is refused as busy.
//! One on another connection of the same agency supersedes the first: the agency dialled
//! again, so its node restarted or lost the old connection, perhaps from an address this
//! node can no longer reach (a NAT that rebinds). Waiting for that connection to time out
//! would hold the document back for up to the idle timeout plus the sender's backoff; so the
//! old connection is closed, its transfer ends as an interrupted one (what it wrote stays
//! for the resume), and the new offer resumes from there.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use liaise_keys::AgencyId;
use liaise_protocol::wire::CloseCode;
use quinn::VarInt;
use tokio::sync::Notify;

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

/// What [`Receiving::try_insert`] found.
enum Slot<'a> {
    Entered(Entered<'a>),
    /// The document is received on this same connection already.
    Busy,
    /// The document is received on this other connection.
    Elsewhere(quinn::Connection),
}

impl Receiving {
    /// Enters the transfer of `doc_id` (hex) from `peer`, offered with `offered` bytes on
    /// `connection`. Supersedes a transfer of the same document on another connection of
    /// the agency (see the module's documentation). `None`: busy, refuse the offer.
    pub async fn enter(
        &self,
        peer: &AgencyId,
        doc_id: &str,
        offered: u64,
        connection: &quinn::Connection,
    ) -> Option<Entered<'_>> {
        let key = (peer.as_str().to_owned(), doc_id.to_owned());
        let deadline = tokio::time::Instant::now() + SUPERSEDE_WAIT;
        let mut closed = false;
        loop {
            // Registered before the look, so an end between the two is not missed.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.try_insert(&key, offered, connection) {
                Slot::Entered(entered) => return Some(entered),
                Slot::Busy => return None,
                Slot::Elsewhere(old) if !closed => {
                    tracing::info!(agency = %peer, doc = %doc_id,
                        "the transfer on an older connection is superseded by a new connection; closing the old one");
                    old.close(VarInt::from_u32(CloseCode::Done.code()), SUPERSEDED);
                    closed = true;
                }
                Slot::Elsewhere(_) => {}
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return None;
            }
        }
    }

    fn try_insert(&self, key: &Key, offered: u64, connection: &quinn::Connection) -> Slot<'_> {
        let Ok(mut transfers) = self.transfers.lock() else {
            return Slot::Busy;
        };
        match transfers.get(key) {
            Some(t) if t.connection.stable_id() == connection.stable_id() => Slot::Busy,
            Some(t) => Slot::Elsewhere(t.connection.clone()),
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
