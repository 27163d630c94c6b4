//! Who gets a connection, and for how long: handshakes are bounded in time and number before
//! any long-lived slot is taken, each agency holds at most a few connections, and a live
//! connection is dropped as soon as the roster no longer vouches for its peer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liaise_keys::AgencyId;
use liaise_protocol::wire::CloseCode;
use quinn::VarInt;

use super::Node;
use crate::transport::peer_agency;

/// How long a peer may take to complete the QUIC and TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most handshakes in progress at once; further connection attempts are refused.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// The most connections one agency may hold to this node at once.
pub const MAX_CONNECTIONS_PER_AGENCY: usize = 4;
/// How often a live connection re-checks its peer against the roster (expiry, revocation),
/// besides at every roster change.
pub const ROSTER_RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Counts live connections per agency.
#[derive(Debug, Default)]
pub struct PerAgency {
    counts: Mutex<HashMap<String, usize>>,
}

/// One counted connection; the count drops with it.
#[derive(Debug)]
pub struct AgencySlot {
    table: Arc<PerAgency>,
    agency: String,
}

impl PerAgency {
    /// A slot for one more connection of `agency`, or `None` if it holds
    /// [`MAX_CONNECTIONS_PER_AGENCY`] already.
    pub fn enter(table: &Arc<Self>, agency: &AgencyId) -> Option<AgencySlot> {
        let mut counts = table.counts.lock().ok()?;
        let count = counts.entry(agency.as_str().to_owned()).or_default();
        if *count >= MAX_CONNECTIONS_PER_AGENCY {
            return None;
        }
        *count += 1;
        Some(AgencySlot {
            table: Arc::clone(table),
            agency: agency.as_str().to_owned(),
        })
    }

    /// Live connections of `agency`.
    #[cfg(test)]
    pub fn count(&self, agency: &AgencyId) -> usize {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.get(agency.as_str()).copied())
            .unwrap_or(0)
    }
}

impl Drop for AgencySlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.table.counts.lock()
            && let Some(count) = counts.get_mut(&self.agency)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.agency);
            }
        }
    }
}

/// Checks that the roster in force still vouches for the connection's peer as `peer` (not
/// expired, key neither removed nor revoked); closes the connection otherwise. Returns whether
/// it may stay open.
pub fn recheck_peer(node: &Node, conn: &quinn::Connection, peer: &AgencyId) -> bool {
    let reason = match peer_agency(conn, &node.roster) {
        Ok(now) if &now == peer => return true,
        Ok(now) => format!("its key now belongs to {now}"),
        Err(e) => format!("{e:#}"),
    };
    tracing::warn!(agency = %peer, "closing connection: the roster no longer admits the peer: {reason}");
    conn.close(
        VarInt::from_u32(CloseCode::NotAuthorized.code()),
        b"not authorized",
    );
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_agency_gets_its_limit_of_connections_and_no_more() {
        let table = Arc::new(PerAgency::default());
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let city = AgencyId::new("nl.city.utrecht").unwrap();
        let mut slots: Vec<AgencySlot> = (0..MAX_CONNECTIONS_PER_AGENCY)
            .map(|_| PerAgency::enter(&table, &prison).unwrap())
            .collect();
        assert_eq!(table.count(&prison), MAX_CONNECTIONS_PER_AGENCY);
        assert!(PerAgency::enter(&table, &prison).is_none(), "limit + 1");
        // Another agency is not affected.
        let other = PerAgency::enter(&table, &city).unwrap();
        // A closed connection frees its slot.
        slots.pop();
        assert!(PerAgency::enter(&table, &prison).is_some());
        drop(slots);
        drop(other);
        assert_eq!(table.count(&prison), 0);
        assert_eq!(table.count(&city), 0);
    }
}
