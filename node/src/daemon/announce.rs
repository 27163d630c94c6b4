//! A node back from an outage gets its documents within seconds, not at the sender's next
//! backoff slot (up to [`super::DEFAULT_MAX_RETRY_INTERVAL`] away):
//! - a node that starts dials every member's node once ([`announce`]): the hello brings the
//!   newest roster, `liaise status` knows at once who answers, and each peer learns that it
//!   is back;
//! - a peer that connects while this node's own dials to it fail is dialled back
//!   ([`DialBacks::connected`]); when that dial works, what waits for the peer is retried
//!   now ([`super::deliver::retry_sooner`]). The incoming connection alone proves nothing
//!   (a firewall may let it in and keep this node's out), so only the dial back counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liaise_keys::AgencyId;
use liaise_keys::roster::Roster;
use tokio::sync::Semaphore;

use super::Node;

/// How many peers a starting node dials at once.
pub const ANNOUNCE_PARALLEL: usize = 8;

/// A peer that connects makes this node dial it back at most this often.
pub const DIAL_BACK_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Dials every other member's node once, [`ANNOUNCE_PARALLEL`] at a time. Each is this node's
/// first dial to the agency, so one that works retries at once what waits for it, queued
/// before this node stopped ([`Node::dialled`]).
pub async fn announce(node: Arc<Node>) {
    let members = dialled_members(&node.roster.current(), &node.me);
    let parallel = Arc::new(Semaphore::new(ANNOUNCE_PARALLEL));
    let mut dials = tokio::task::JoinSet::new();
    for agency in members {
        let (node, parallel) = (Arc::clone(&node), Arc::clone(&parallel));
        dials.spawn(async move {
            let Ok(_permit) = parallel.acquire().await else {
                return false;
            };
            match node.peers.get(&node, &agency).await {
                // Its first dial since the start retried what waits for it.
                Ok(_) => {
                    tracing::debug!(%agency, "peer answers");
                    true
                }
                Err(e) => {
                    tracing::info!(%agency, "peer not reachable yet: {e:#}");
                    false
                }
            }
        });
    }
    let (mut asked, mut answered) = (0usize, 0usize);
    while let Some(dial) = dials.join_next().await {
        asked += 1;
        answered += usize::from(dial.unwrap_or(false));
    }
    tracing::info!("start-up dials done: {answered} of {asked} peers answer");
}

/// The members a node dials: every other one that lists an address.
pub fn dialled_members(roster: &Roster, me: &AgencyId) -> Vec<AgencyId> {
    roster
        .body()
        .members
        .iter()
        .filter(|m| &m.id != me && !m.addresses.is_empty())
        .map(|m| m.id.clone())
        .collect()
}

/// When each agency last made this node dial it back.
#[derive(Debug, Default)]
pub struct DialBacks(Mutex<HashMap<String, Instant>>);

impl DialBacks {
    /// `agency`'s node connected to this one: if this node's last dial to it failed, or it was
    /// not dialled yet since the start, it is dialled back (at most every
    /// [`DIAL_BACK_MIN_INTERVAL`]). Outside [`ANNOUNCE_PARALLEL`]: while a whole federation
    /// restarts, a node may dial back many peers at once, each one that connected to it.
    pub fn connected(&self, node: &Arc<Node>, agency: &AgencyId) {
        let failing = node
            .dials_failing
            .lock()
            .is_ok_and(|failing| failing.contains(agency.as_str()));
        if !failing || *node.shutdown.borrow() || !self.due(agency.as_str(), Instant::now()) {
            return;
        }
        let (node, agency) = (Arc::clone(node), agency.clone());
        let connected = tokio::time::Instant::now();
        tokio::spawn(async move {
            tracing::info!(%agency, "a peer this node could not reach connected; dialling it back");
            // A dial that started before the peer connected, and fails, does not answer.
            if let Err(e) = node.peers.get_after(&node, &agency, connected).await {
                tracing::info!(%agency, "dialling back failed: {e:#}");
            }
        });
    }

    /// Whether `agency` may be dialled back at `now`; if so, `now` is recorded.
    fn due(&self, agency: &str, now: Instant) -> bool {
        let Ok(mut last) = self.0.lock() else {
            return false;
        };
        if last
            .get(agency)
            .is_some_and(|at| now.saturating_duration_since(*at) < DIAL_BACK_MIN_INTERVAL)
        {
            return false;
        }
        last.insert(agency.to_owned(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_dialled_back_at_most_once_per_interval() {
        let backs = DialBacks::default();
        let start = Instant::now();
        assert!(backs.due("prison", start));
        assert!(!backs.due("prison", start + DIAL_BACK_MIN_INTERVAL / 2));
        assert!(backs.due("city", start + Duration::from_secs(1)));
        assert!(backs.due("prison", start + DIAL_BACK_MIN_INTERVAL));
        assert!(!backs.due(
            "prison",
            start + DIAL_BACK_MIN_INTERVAL + Duration::from_secs(1)
        ));
    }
}
