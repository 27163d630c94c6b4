//! Who gets a connection, and for how long: handshakes are bounded in time and number before
//! any long-lived slot is taken, each agency holds at most a few connections, and a live
//! connection is dropped as soon as the roster no longer vouches for its peer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
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
/// The most handshakes in progress at once from one source: an IPv4 address, or an IPv6
/// /64 (what one host is usually given). Sources are real (the QUIC retry has validated the
/// address first), so without it one host could hold every one of [`MAX_PENDING_HANDSHAKES`]
/// with handshakes it never finishes, a few dozen a second, and keep every member out.
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 16;
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

/// Counts handshakes in progress per source (see [`MAX_HANDSHAKES_PER_SOURCE`]).
#[derive(Debug, Default)]
pub struct PerSource {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One handshake counted for its source; the count drops with it.
#[derive(Debug)]
pub struct SourceSlot {
    table: Arc<PerSource>,
    source: IpAddr,
}

/// The source a handshake counts for: the IPv4 address (also of an IPv4-mapped IPv6 one), or
/// the IPv6 address's /64 prefix.
pub fn handshake_source(remote: SocketAddr) -> IpAddr {
    match remote.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

impl PerSource {
    /// A slot for one more handshake from `remote`'s source, or `None` if it has
    /// [`MAX_HANDSHAKES_PER_SOURCE`] in progress already.
    pub fn enter(table: &Arc<Self>, remote: SocketAddr) -> Option<SourceSlot> {
        let source = handshake_source(remote);
        let mut counts = table.counts.lock().ok()?;
        let count = counts.entry(source).or_default();
        if *count >= MAX_HANDSHAKES_PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            table: Arc::clone(table),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.table.counts.lock()
            && let Some(count) = counts.get_mut(&self.source)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.source);
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

    #[test]
    fn a_source_gets_its_limit_of_handshakes_and_no_more() {
        let table = Arc::new(PerSource::default());
        let at = |addr: &str| addr.parse::<SocketAddr>().unwrap();
        // Any port of one IPv4 address, written plainly or mapped into IPv6, is one source.
        let mut slots: Vec<SourceSlot> = (0..MAX_HANDSHAKES_PER_SOURCE)
            .map(|i| {
                let addr = if i % 2 == 0 {
                    format!("192.0.2.7:{}", 1000 + i)
                } else {
                    format!("[::ffff:192.0.2.7]:{}", 1000 + i)
                };
                PerSource::enter(&table, at(&addr)).unwrap()
            })
            .collect();
        assert!(
            PerSource::enter(&table, at("192.0.2.7:9")).is_none(),
            "limit + 1"
        );
        assert!(PerSource::enter(&table, at("[::ffff:192.0.2.7]:9")).is_none());
        // Another address is not affected, nor another IPv6 /64; one /64 is one source.
        let other = PerSource::enter(&table, at("192.0.2.8:9")).unwrap();
        let v6: Vec<SourceSlot> = (0..MAX_HANDSHAKES_PER_SOURCE)
            .map(|i| PerSource::enter(&table, at(&format!("[2001:db8:0:1::{i:x}]:443"))).unwrap())
            .collect();
        assert!(PerSource::enter(&table, at("[2001:db8:0:1:ffff::1]:443")).is_none());
        assert!(PerSource::enter(&table, at("[2001:db8:0:2::1]:443")).is_some());
        // A handshake that ends (done, refused or timed out) frees its slot.
        slots.pop();
        assert!(PerSource::enter(&table, at("192.0.2.7:9")).is_some());
        drop((slots, other, v6));
        assert!(table.counts.lock().unwrap().is_empty());
    }
}
