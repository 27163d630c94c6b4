//! Whether each peer answers, as `status` shows it: the outcome of the last contact.
//!
//! A dial that works, or a connection the peer opens, says the peer is up. A peer's node that
//! shuts down closes its connections (code `Shutdown`); one that crashed or lost its network
//! is found out by the keep-alives (idle timeout) or, once restarted, by its stateless reset.
//! A peer that closes a connection as `NotAuthorized` no longer admits this node (its roster
//! no longer vouches for this node's key, or its roster, or ours, expired): nothing can be
//! exchanged with it either. When the last live connection with a peer ends in one of those
//! ways, the peer is recorded as unreachable at once, not only at the next dial; so it is when
//! the last one ends while this node's own roster no longer admits the peer (expired, or the
//! peer removed: `admission::recheck_peer` closes its connections then). A connection that
//! ends for any other reason (closed by this node otherwise, superseded, over a limit) says
//! nothing about the peer, and a peer with another live connection is up whatever happened
//! to this one.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};

use liaise_protocol::wire::CloseCode;
use quinn::{ConnectionError, VarInt};

use super::Node;

/// Live connections with each agency, in both directions.
#[derive(Debug, Default)]
pub struct LiveConnections {
    counts: Mutex<HashMap<String, usize>>,
}

impl LiveConnections {
    fn enter(&self, agency: &str) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(agency.to_owned()).or_default() += 1;
        }
    }

    /// One fewer; how many are left.
    fn leave(&self, agency: &str) -> usize {
        let Ok(mut counts) = self.counts.lock() else {
            return 0;
        };
        let left = counts.get(agency).map_or(0, |n| n.saturating_sub(1));
        if left == 0 {
            counts.remove(agency);
        } else {
            counts.insert(agency.to_owned(), left);
        }
        left
    }
}

/// Whether a connection that ended with `reason` shows its peer is down, or refuses this
/// node: it shut down, did not answer the keep-alives, restarted, or closed it as
/// `NotAuthorized`.
pub fn shows_peer_down(reason: &ConnectionError) -> bool {
    match reason {
        ConnectionError::ApplicationClosed(close) => {
            [CloseCode::Shutdown, CloseCode::NotAuthorized]
                .iter()
                .any(|code| close.error_code == VarInt::from_u32(code.code()))
        }
        ConnectionError::TimedOut | ConnectionError::Reset => true,
        _ => false,
    }
}

/// Whether this node's roster, in force now, lists `agency` as a member.
fn roster_admits(node: &Node, agency: &str) -> bool {
    let roster = node.roster.current();
    let in_force = crate::transport::roster_in_force(&roster, liaise_keys::Timestamp::now());
    in_force.is_ok()
        && liaise_keys::AgencyId::new(agency).is_ok_and(|id| roster.member(&id).is_some())
}

/// Watches `connection` with `agency` (dialled or accepted) until it ends, then records the
/// peer as unreachable if that shows it is down and no other connection with it is live.
pub fn watch(node: &Node, connection: quinn::Connection, agency: &str) {
    let (weak, agency): (Weak<Node>, String) = (node.this.clone(), agency.to_owned());
    node.live.enter(&agency);
    tokio::spawn(async move {
        let reason = connection.closed().await;
        let Some(node) = weak.upgrade() else { return };
        if node.live.leave(&agency) == 0 {
            if shows_peer_down(&reason) {
                tracing::info!(%agency, "the peer's node is unreachable: {reason}");
                node.set_reachable(&agency, false);
            } else if !roster_admits(&node, &agency) {
                // Closed by this node, or by the peer, once this node's roster stopped
                // vouching for it: nothing can be exchanged with it now.
                node.set_reachable(&agency, false);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shutdown_a_timeout_a_reset_or_a_refusal_shows_the_peer_down() {
        let closed = |code: CloseCode| {
            ConnectionError::ApplicationClosed(quinn::ApplicationClose {
                error_code: VarInt::from_u32(code.code()),
                reason: Default::default(),
            })
        };
        assert!(shows_peer_down(&closed(CloseCode::Shutdown)));
        assert!(shows_peer_down(&ConnectionError::TimedOut));
        assert!(shows_peer_down(&ConnectionError::Reset));
        assert!(shows_peer_down(&closed(CloseCode::NotAuthorized)));
        assert!(!shows_peer_down(&closed(CloseCode::Done)));
        assert!(!shows_peer_down(&closed(CloseCode::Internal)));
        assert!(!shows_peer_down(&ConnectionError::LocallyClosed));
    }

    #[test]
    fn live_connections_are_counted_per_agency() {
        let live = LiveConnections::default();
        live.enter("a");
        live.enter("a");
        live.enter("b");
        assert_eq!(live.leave("a"), 1);
        assert_eq!(live.leave("a"), 0);
        assert_eq!(live.leave("b"), 0);
        assert_eq!(live.leave("c"), 0);
    }
}
