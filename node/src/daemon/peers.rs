//! Connections to other agencies' nodes: one per agency, dialled at the addresses the roster
//! lists when the node starts ([`super::announce`]) or when first needed, with the hello
//! exchange (and roster gossip) first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use liaise_keys::{AgencyId, Timestamp};

use super::{Node, gossip, witness};

/// How long dialling one address may take, handshake and hello included.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most socket addresses one roster address (a name) is dialled at: a name with many
/// records must not hold a dial up for minutes.
pub const MAX_ADDRESSES_PER_NAME: usize = 4;

type Slot = Arc<tokio::sync::Mutex<SlotState>>;

/// One agency's connection, and how the last dial to it failed.
#[derive(Debug, Default)]
struct SlotState {
    conn: Option<quinn::Connection>,
    /// The last dial, if it failed: callers that were waiting for it get its outcome instead
    /// of dialling again one after another (each up to [`DIAL_TIMEOUT`] per address, each
    /// holding a delivery slot meanwhile).
    failed: Option<FailedDial>,
}

/// A dial that failed: when it started and ended, and why.
#[derive(Debug)]
struct FailedDial {
    started: tokio::time::Instant,
    ended: tokio::time::Instant,
    error: String,
    /// The peer refused this node's key ([`NotAdmitted`]).
    refused: bool,
}

impl FailedDial {
    /// Whether this failure answers a caller that asked at `asked`: it ended after the caller
    /// asked (the caller waited for it), and with `since`, it also started after `since`.
    fn answers(&self, asked: tokio::time::Instant, since: Option<tokio::time::Instant>) -> bool {
        self.ended >= asked && since.is_none_or(|since| self.started >= since)
    }
}

/// The peer's node refused this node's transport key at the handshake (the TLS alert
/// `access_denied`): its roster holds no current member with that key. Unlike an unreachable
/// peer, asking again does not help until one of the two rosters changes.
#[derive(Debug)]
pub struct NotAdmitted(String);

impl std::fmt::Display for NotAdmitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAdmitted {}

/// Whether `error` (from [`PeerConnections::get`]) is a [`NotAdmitted`].
pub fn not_admitted(error: &anyhow::Error) -> bool {
    error.downcast_ref::<NotAdmitted>().is_some()
}

/// The connection cache.
#[derive(Debug, Default)]
pub struct PeerConnections {
    slots: Mutex<HashMap<String, Slot>>,
    /// Agencies whose node closed a connection on a repeated hello (built before re-hellos):
    /// their connections get none until this node restarts.
    without_rehello: Mutex<std::collections::HashSet<String>>,
}

impl PeerConnections {
    /// A live connection to `agency`, dialling if needed. Concurrent callers share one dial,
    /// and its failure too.
    pub async fn get(&self, node: &Node, agency: &AgencyId) -> Result<quinn::Connection> {
        self.get_since(node, agency, None).await
    }

    /// Like [`Self::get`], but takes the failure of another caller's dial only if that dial
    /// also started after `since`: a dial that began before the peer was known to be up does
    /// not answer for it.
    pub async fn get_after(
        &self,
        node: &Node,
        agency: &AgencyId,
        since: tokio::time::Instant,
    ) -> Result<quinn::Connection> {
        self.get_since(node, agency, Some(since)).await
    }

    async fn get_since(
        &self,
        node: &Node,
        agency: &AgencyId,
        since: Option<tokio::time::Instant>,
    ) -> Result<quinn::Connection> {
        let asked = tokio::time::Instant::now();
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| anyhow!("peer table poisoned"))?;
            Arc::clone(slots.entry(agency.as_str().to_owned()).or_default())
        };
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.conn.as_ref()
            && conn.close_reason().is_none()
        {
            // The roster may have changed (or expired) since the handshake.
            if super::admission::recheck_peer(node, conn, agency) {
                return Ok(conn.clone());
            }
        }
        guard.conn = None;
        // A dial that failed while this caller waited for it is this caller's answer too
        // (with `since`, only one that started after it).
        if let Some(failed) = &guard.failed
            && failed.answers(asked, since)
        {
            let (error, refused) = (&failed.error, failed.refused);
            return Err(match refused {
                true => NotAdmitted(error.clone()).into(),
                false => anyhow!("{error}"),
            });
        }
        let started = tokio::time::Instant::now();
        let conn = dial(node, agency).await;
        node.set_reachable(agency.as_str(), conn.is_ok());
        let came_back = node.dialled(agency.as_str(), conn.is_ok());
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                let refused = not_admitted(&e);
                guard.failed = Some(FailedDial {
                    started,
                    ended: tokio::time::Instant::now(),
                    error: format!("{e:#}"),
                    refused,
                });
                return Err(e);
            }
        };
        super::reachability::watch(node, conn.clone(), agency.as_str());
        guard.conn = Some(conn.clone());
        guard.failed = None;
        // Before any caller can use the connection: a delivery that used it and failed for
        // another reason keeps its backoff. Callers waiting for this agency wait for this one
        // commit too (the writer thread never waits for a slot, so this cannot deadlock).
        if came_back {
            super::deliver::retry_sooner(node, agency.as_str()).await;
        }
        drop(guard);
        if self.takes_rehello(agency) {
            tokio::spawn(super::rehello::keep_current(
                node.this.clone(),
                conn.clone(),
                agency.clone(),
            ));
        }
        // The checkpoint exchange runs after the dial, outside its time limit and the slot's
        // lock: callers waiting for this connection use it at once, and a slow exchange on a
        // loaded machine (it may take up to `witness::WITNESS_TIMEOUT`) never fails the dial.
        witness::client_exchange(node, &conn, agency).await;
        Ok(conn)
    }

    /// Whether `connection` (by its [`quinn::Connection::stable_id`]) is the one held for
    /// `agency`.
    pub async fn holds(&self, agency: &AgencyId, connection: usize) -> bool {
        let slot = self
            .slots
            .lock()
            .ok()
            .and_then(|slots| slots.get(agency.as_str()).cloned());
        match slot {
            Some(slot) => slot
                .lock()
                .await
                .conn
                .as_ref()
                .is_some_and(|c| c.stable_id() == connection),
            None => false,
        }
    }

    /// The live connection held for `agency`, if there is one (no dial).
    pub async fn cached(&self, agency: &AgencyId) -> Option<quinn::Connection> {
        let slot = self
            .slots
            .lock()
            .ok()
            .and_then(|slots| slots.get(agency.as_str()).cloned())?;
        let guard = slot.lock().await;
        guard
            .conn
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    /// Repeated hellos stop for `agency` (its node does not take them).
    pub fn no_rehello(&self, agency: &AgencyId) {
        if let Ok(mut set) = self.without_rehello.lock() {
            set.insert(agency.as_str().to_owned());
        }
    }

    fn takes_rehello(&self, agency: &AgencyId) -> bool {
        self.without_rehello
            .lock()
            .is_ok_and(|set| !set.contains(agency.as_str()))
    }

    /// Forgets the connection held for `agency`: any, or with `only`, only that one (by
    /// [`quinn::Connection::stable_id`]), so that a task whose old connection failed does
    /// not evict the fresh one another task dialled since.
    pub async fn forget(&self, agency: &AgencyId, only: Option<usize>) {
        let slot = self
            .slots
            .lock()
            .ok()
            .and_then(|slots| slots.get(agency.as_str()).cloned());
        if let Some(slot) = slot {
            let mut slot = slot.lock().await;
            if only.is_none_or(|id| slot.conn.as_ref().is_some_and(|c| c.stable_id() == id)) {
                slot.conn = None;
            }
        }
    }
}

/// Asks `agency`'s node one question ([`super::framed::request`]) on the held connection, or a
/// new one. A held connection from before that node restarted is found dead only on first
/// use, by the restarted node's stateless reset: the question is then asked once more on a
/// fresh dial, so a person waiting for the answer does not get that error. `question` makes
/// the message each time, with what it was made from (`T`), returned with the answer: a
/// signed request is made anew for the second try, since the peer may have seen the first
/// before it restarted and would refuse it as a replay. A dial that fails keeps its error
/// ([`not_admitted`]).
pub async fn ask<T>(
    node: &Node,
    agency: &AgencyId,
    expected: &'static [liaise_protocol::wire::MessageKind],
    timeout: Duration,
    mut question: impl FnMut() -> (T, liaise_protocol::wire::Message),
) -> Result<(T, liaise_protocol::wire::Message)> {
    let held = node.peers.cached(agency).await.map(|c| c.stable_id());
    let conn = node.peers.get(node, agency).await?;
    let (made, message) = question();
    match super::framed::request(&conn, &message, expected, timeout).await {
        Ok(answer) => Ok((made, answer)),
        Err(e)
            if held == Some(conn.stable_id())
                && matches!(conn.close_reason(), Some(quinn::ConnectionError::Reset)) =>
        {
            tracing::debug!(%agency, "the held connection was reset ({e:#}); dialling again");
            node.peers.forget(agency, Some(conn.stable_id())).await;
            let conn = node.peers.get(node, agency).await?;
            let (made, message) = question();
            let answer = super::framed::request(&conn, &message, expected, timeout).await?;
            Ok((made, answer))
        }
        Err(e) => Err(e),
    }
}

async fn dial(node: &Node, agency: &AgencyId) -> Result<quinn::Connection> {
    let addresses = {
        let roster = node.roster.current();
        let member = roster
            .member(agency)
            .with_context(|| format!("{agency} is not in the roster"))?;
        member.addresses.clone()
    };
    let mut last = anyhow!("{agency} lists no address");
    for address in &addresses {
        // A name may stand for several addresses (an AAAA and an A record, say), of which
        // the peer may listen on one only, or this host reach one only: each is tried.
        let targets = match tokio::time::timeout(DIAL_TIMEOUT, resolve(node, address)).await {
            Ok(Ok(targets)) => targets,
            Ok(Err(e)) => {
                last = e;
                continue;
            }
            Err(_) => {
                last = anyhow!("{address}: resolving it timed out");
                continue;
            }
        };
        for addr in targets {
            match tokio::time::timeout(DIAL_TIMEOUT, dial_one(node, agency, address, addr)).await {
                Ok(Ok(conn)) => return Ok(conn),
                // Its other addresses are the same node, with the same roster.
                Ok(Err(e)) if not_admitted(&e) => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => last = anyhow!("{address} at {addr}: timed out"),
            }
        }
    }
    Err(last.context(format!("cannot reach {agency}")))
}

/// The socket addresses `address` (a roster's `host:port`) resolves to that this node's
/// socket can send to, in the resolver's order, each once; an error that says why if none.
async fn resolve(node: &Node, address: &str) -> Result<Vec<std::net::SocketAddr>> {
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(address)
        .await
        .with_context(|| format!("cannot resolve {address}"))?
        .collect();
    let local = node.endpoint.local_addr().ok();
    let mut targets: Vec<std::net::SocketAddr> = Vec::new();
    for addr in &resolved {
        if local.is_none_or(|l| reaches(l, *addr)) && !targets.contains(addr) {
            targets.push(*addr);
        }
    }
    if targets.is_empty() {
        match (resolved.first(), local) {
            (Some(addr), Some(local)) => bail!(
                "cannot connect to {address}: it is an {} address, and this node listens on \
                 {local}, from which it reaches {} addresses only; listen on [::] \
                 (`liaise node run --listen [::]:PORT`) to reach both",
                family(*addr),
                family(local)
            ),
            _ => bail!("{address} resolves to nothing"),
        }
    }
    targets.truncate(MAX_ADDRESSES_PER_NAME);
    Ok(targets)
}

/// Whether a socket bound to `local` can send to `remote`: an IPv4 socket only to IPv4, a
/// socket on one IPv6 address only to IPv6, and one on `[::]` to both (dual stack, Linux's
/// default).
fn reaches(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> bool {
    match local {
        std::net::SocketAddr::V4(_) => remote.is_ipv4(),
        std::net::SocketAddr::V6(l) => remote.is_ipv6() || l.ip().is_unspecified(),
    }
}

fn family(addr: std::net::SocketAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Dials `addr`, one of the socket addresses the roster's `address` resolved to.
async fn dial_one(
    node: &Node,
    agency: &AgencyId,
    address: &str,
    addr: std::net::SocketAddr,
) -> Result<quinn::Connection> {
    // A name is shown with the address it stood for this time.
    let address = if address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a == addr)
    {
        address.to_owned()
    } else {
        format!("{address} at {addr}")
    };
    let address = address.as_str();
    let presented_previous = node.presented_key.offers_previous(Timestamp::now());
    let conn = node
        .endpoint
        .connect(addr, agency.as_str())
        .with_context(|| format!("cannot connect to {address}"))?
        .await
        .with_context(|| format!("handshake with {address} failed"))?;
    // A TLS 1.3 client learns that the server refused its key only now, at first use.
    let Err(refused) = gossip::client_hello(node, &conn, agency.as_str()).await else {
        return Ok(conn);
    };
    // During a rotation, a peer whose newer roster no longer lists the old key (revoked, or
    // a request made with --no-overlap) is dialled again at once with the new key; its hello
    // then brings that roster, after which this node presents the new key to everyone.
    if let (true, true, Some(config)) = (
        presented_previous,
        refused_our_key(&conn),
        &node.current_key_client,
    ) {
        tracing::info!(%agency, "the peer refused this node's old transport key; dialling again with the new one");
        let conn = node
            .endpoint
            .connect_with(config.clone(), addr, agency.as_str())
            .with_context(|| format!("cannot connect to {address}"))?
            .await
            .with_context(|| format!("handshake with {address} failed"))?;
        let Err(refused) = gossip::client_hello(node, &conn, agency.as_str()).await else {
            return Ok(conn);
        };
        return Err(hello_failed(node, &conn, agency, address, refused));
    }
    Err(hello_failed(node, &conn, agency, address, refused))
}

/// The error for a first hello that failed on `conn`: [`NotAdmitted`] if the peer refused
/// this node's key.
fn hello_failed(
    node: &Node,
    conn: &quinn::Connection,
    agency: &AgencyId,
    address: &str,
    error: anyhow::Error,
) -> anyhow::Error {
    if refused_our_key(conn) {
        if let Some(problem) = gossip::own_key_problem(node) {
            return NotAdmitted(format!(
                "{agency}'s node ({address}) refused this node at the handshake: {problem}"
            ))
            .into();
        }
        return NotAdmitted(format!(
            "{agency}'s node ({address}) refused this node at the handshake: its roster does \
             not accept this agency's transport key (this agency was revoked there, one of the \
             two nodes lacks a newer roster, or its roster expired: `liaise status` shows this \
             node's, `liaise roster import` takes a newer one)"
        ))
        .into();
    }
    error.context(format!("the hello with {address} failed"))
}

/// Whether the peer closed `conn` because its roster check refused our key: the TLS alert
/// `access_denied` (49), which a node's verifier sends for a key no current member holds.
pub(super) fn refused_our_key(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ConnectionClosed(close))
            if u64::from(close.error_code) == ACCESS_DENIED
    )
}

/// QUIC's code for the TLS alert `access_denied` (RFC 9001, section 4.8: 0x100 + alert).
const ACCESS_DENIED: u64 = 0x100 + 49;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_dial_answers_those_who_waited_for_it_and_a_dial_back_only_if_it_began_after() {
        let t0 = tokio::time::Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // A dial from 10 s to 20 s.
        let failed = FailedDial {
            started: at(10),
            ended: at(20),
            error: "timed out".into(),
            refused: false,
        };
        // Callers that asked before it started, or joined it under way, share its failure.
        assert!(failed.answers(at(5), None));
        assert!(failed.answers(at(15), None));
        // One that asks after it ended dials again.
        assert!(!failed.answers(at(21), None));
        // A dial back for a peer that connected at 12 s does not take it: it began before.
        assert!(!failed.answers(at(15), Some(at(12))));
        assert!(failed.answers(at(9), Some(at(8))));
    }

    #[test]
    fn a_socket_reaches_the_addresses_of_its_family_and_dual_stack_reaches_both() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert!(reaches(at("127.0.0.1:7400"), at("127.0.0.2:7401")));
        assert!(!reaches(at("0.0.0.0:7400"), at("[::1]:7401")));
        assert!(reaches(at("[::1]:7400"), at("[::1]:7401")));
        assert!(!reaches(at("[::1]:7400"), at("127.0.0.1:7401")));
        assert!(reaches(at("[::]:7400"), at("127.0.0.1:7401")));
        assert!(reaches(at("[::]:7400"), at("[::1]:7401")));
    }
}
