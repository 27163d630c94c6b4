//! Rosters a peer offered that this node refused, remembered per peer for a while.
//!
//! A node that missed a change of stewards, or a peer that holds a roster this node cannot
//! accept, would otherwise fetch (or be pushed), check and refuse the same roster on every
//! connection and every re-hello: a warning in the journal each minute, and the roster file
//! on the wire each time. A peer replaces its roster only by one with a higher serial, so the
//! roster it states under a serial stays the one this node refused; and a refusal depends on
//! the roster this node holds. The same roster (the peer's serial, against the serial held
//! here) is therefore neither fetched from nor checked for that peer again for
//! [`REFUSED_ROSTER_QUIET`], nor logged again. It is taken up at once from any other peer, and
//! from the same one once either roster changes. A refusal for the roster's validity period
//! (expired, issued in the future) depends on this node's clock, which may be set right any
//! time: it is not remembered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a refused roster is not asked for, nor checked, again from the same peer.
pub const REFUSED_ROSTER_QUIET: Duration = Duration::from_secs(3600);

/// The last roster each peer offered that this node refused.
#[derive(Debug, Default)]
pub struct RefusedRosters {
    by_peer: Mutex<HashMap<String, Refusal>>,
}

/// One refusal: the peer's serial, the serial held here then, and when.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    theirs: u64,
    ours: u64,
    at: Instant,
}

impl RefusedRosters {
    /// Whether `peer`'s roster `theirs` was refused against this node's roster `ours` less
    /// than [`REFUSED_ROSTER_QUIET`] before `now`.
    pub fn recently(&self, peer: &str, theirs: u64, ours: u64, now: Instant) -> bool {
        let Ok(by_peer) = self.by_peer.lock() else {
            return false;
        };
        by_peer.get(peer).is_some_and(|r| {
            r.theirs == theirs && r.ours == ours && now.duration_since(r.at) < REFUSED_ROSTER_QUIET
        })
    }

    /// Records that `peer`'s roster `theirs` was refused at `now` against roster `ours`
    /// (replacing what was recorded for that peer: at most one entry per roster member).
    pub fn record(&self, peer: &str, theirs: u64, ours: u64, now: Instant) {
        if let Ok(mut by_peer) = self.by_peer.lock() {
            by_peer.insert(
                peer.to_owned(),
                Refusal {
                    theirs,
                    ours,
                    at: now,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_holds_for_that_peer_roster_and_held_roster_for_a_while() {
        let refused = RefusedRosters::default();
        let t0 = Instant::now();
        assert!(!refused.recently("nl.city", 7, 5, t0));
        refused.record("nl.city", 7, 5, t0);
        let later = t0 + REFUSED_ROSTER_QUIET - Duration::from_secs(1);
        assert!(refused.recently("nl.city", 7, 5, later));
        // Another peer, another serial of theirs, another roster held here: asked again.
        assert!(!refused.recently("nl.prison", 7, 5, later));
        assert!(!refused.recently("nl.city", 8, 5, later));
        assert!(!refused.recently("nl.city", 7, 6, later));
        // And the same one once the quiet time is over.
        assert!(!refused.recently("nl.city", 7, 5, t0 + REFUSED_ROSTER_QUIET));
    }

    #[test]
    fn a_newer_refusal_replaces_the_peers_older_one() {
        let refused = RefusedRosters::default();
        let t0 = Instant::now();
        refused.record("nl.city", 7, 5, t0);
        refused.record("nl.city", 9, 5, t0);
        assert!(!refused.recently("nl.city", 7, 5, t0));
        assert!(refused.recently("nl.city", 9, 5, t0));
    }
}
