//! Roster gossip on connections that stay open (`wire.md`, "Hello and roster gossip"): the
//! node that dialled repeats the hello exchange when it takes up a newer roster (to push it)
//! and every [`REHELLO_INTERVAL`] (to fetch one the peer took up); the serving node accepts a
//! hello no sooner than [`REHELLO_MIN_INTERVAL`] after the last one on the same connection.

use std::sync::{Mutex, Weak};
use std::time::Duration;

use liaise_keys::AgencyId;
use liaise_protocol::wire::CloseCode;
use tokio::time::{Instant, MissedTickBehavior};

use super::Node;
use super::gossip::client_hello;

/// How often the client of a connection repeats the exchange, to fetch a roster the server
/// took up since.
pub const REHELLO_INTERVAL: Duration = Duration::from_secs(60);
/// A server refuses a `Hello` that comes sooner than this after the previous one on the same
/// connection: a peer makes this node check at most one pushed roster per connection so often.
pub const REHELLO_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// What a client waits beyond [`REHELLO_MIN_INTERVAL`] after its last exchange ended.
const REHELLO_MARGIN: Duration = Duration::from_secs(1);
/// The longest one repeated exchange may take (a busy connection may have no free stream).
const REHELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the task checks that its connection is still the one the node uses for the peer:
/// one the node dropped must not be kept open by this task alone.
const STILL_IN_USE_EVERY: Duration = Duration::from_secs(5);

/// Repeats the exchange on `connection`, which this node dialled to `peer` (its first hello
/// done just now), until the connection ends, the node drops it, or the node ends.
pub async fn keep_current(node: Weak<Node>, connection: quinn::Connection, peer: AgencyId) {
    let Some(mut changes) = node.upgrade().map(|n| n.roster.subscribe()) else {
        return;
    };
    let mut last = Instant::now();
    let mut every = tokio::time::interval_at(last + REHELLO_INTERVAL, REHELLO_INTERVAL);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_use = tokio::time::interval(STILL_IN_USE_EVERY);
    in_use.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = connection.closed() => return,
            changed = changes.changed() => if changed.is_err() { return },
            _ = every.tick() => {}
            _ = in_use.tick() => {
                if !still_in_use(&node, &connection, &peer).await {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            _ = connection.closed() => return,
            () = tokio::time::sleep_until(last + REHELLO_MIN_INTERVAL + REHELLO_MARGIN) => {}
        }
        if !still_in_use(&node, &connection, &peer).await {
            return;
        }
        let Some(node) = node.upgrade() else {
            return;
        };
        // A peer the roster no longer admits is not told anything: its connection is closed.
        if !super::admission::recheck_peer(&node, &connection, &peer) {
            return;
        }
        // Changes seen while waiting are in this exchange too.
        changes.borrow_and_update();
        let outcome = tokio::time::timeout(
            REHELLO_TIMEOUT,
            client_hello(&node, &connection, peer.as_str()),
        )
        .await;
        // Timed from the end: the server read this hello before it answered.
        last = Instant::now();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) if closed_as_violation(&connection) => {
                // A node built before re-hellos: tell it nothing more until this node restarts.
                tracing::info!(agency = %peer, "the peer does not take repeated hellos: {e:#}");
                node.peers.no_rehello(&peer);
                return;
            }
            Ok(Err(e)) => {
                tracing::info!(agency = %peer, "roster exchange on an open connection failed: {e:#}");
            }
            Err(_) => {
                tracing::info!(agency = %peer, "roster exchange on an open connection timed out")
            }
        }
    }
}

/// Whether the node still holds `connection` as its connection to `peer`.
async fn still_in_use(node: &Weak<Node>, connection: &quinn::Connection, peer: &AgencyId) -> bool {
    match node.upgrade() {
        Some(node) => node.peers.holds(peer, connection.stable_id()).await,
        None => false,
    }
}

/// Whether the peer closed `connection` for a protocol violation.
fn closed_as_violation(connection: &quinn::Connection) -> bool {
    matches!(
        connection.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if u64::from(close.error_code) == u64::from(CloseCode::ProtocolViolation.code())
    )
}

/// Whether a `Hello` may start now on a connection whose last one started at `last_hello`
/// (not sooner than [`REHELLO_MIN_INTERVAL`]); records it if so.
pub fn hello_allowed(last_hello: &Mutex<Option<Instant>>) -> bool {
    let now = Instant::now();
    let Ok(mut last) = last_hello.lock() else {
        return false;
    };
    if last.is_some_and(|at| now.duration_since(at) < REHELLO_MIN_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}
