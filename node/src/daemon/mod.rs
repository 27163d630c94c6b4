//! The node daemon: accepts peers, receives documents, delivers the outbox, gossips the
//! roster, and serves the control socket.
//!
//! One task per peer connection (inside a `tracing` span), one per stream; a semaphore caps
//! connections; the outbox worker owns retries; shutdown goes through a watch channel so tests
//! and signal handlers can stop it, and is ordered: stop accepting, close connections, let
//! the database writer finish.

mod admission;
mod announce;
mod block_buf;
pub mod deletion;
pub(crate) mod deliver;
mod direct_append;
pub mod forward;
pub(crate) mod forwarded_in;
pub mod forwarder;
mod framed;
pub(crate) mod gossip;
mod incoming;
pub(crate) use incoming::is_disk_full;
pub mod operator_deletion;
mod peers;
pub mod quota;
mod reachability;
mod receive;
mod receiving;
mod refused_rosters;
mod rehello;
mod resume;
pub mod roster_expiry;
pub mod share;
mod tee_verify;
mod witness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use liaise_keys::{AgencyId, AgencySecrets, Timestamp};
use tokio::sync::{Notify, Semaphore, watch};

use crate::home::Home;
use crate::store::Store;
use crate::transport::{
    MAX_CONNECTIONS, PresentedKey, SharedRoster, build_endpoint, client_config, crypto_provider,
};

pub use crate::trust::{RosterSignerCheck, verify_receipt};
pub use admission::{
    HANDSHAKE_TIMEOUT, MAX_CONNECTIONS_PER_AGENCY, MAX_HANDSHAKES_PER_SOURCE,
    MAX_PENDING_HANDSHAKES,
};
pub use deliver::{
    DEFAULT_DELIVERY_WINDOW, DEFAULT_MAX_RETRY_INTERVAL, MAX_PARALLEL_DELIVERIES, MAX_PER_AGENCY,
    MAX_SLOW_PER_AGENCY, MAX_SMALL_BYTES_IN_FLIGHT, backoff,
};
pub use framed::FRAME_TIMEOUT;
pub use incoming::MAX_PARTIAL_FILES_PER_PEER;
pub use peers::DIAL_TIMEOUT;
pub use receiving::{
    MAX_LARGE_TRANSFERS, MAX_LARGE_TRANSFERS_PER_AGENCY, MAX_SMALL_BYTES,
    MAX_SMALL_BYTES_PER_AGENCY,
};
pub use rehello::{REHELLO_INTERVAL, REHELLO_MIN_INTERVAL};

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Listen here instead of the profile's first address.
    pub listen: Option<SocketAddr>,
    /// The longest wait between delivery attempts.
    pub max_retry_interval: Duration,
    /// What one agency may keep on this node.
    pub agency_quota: quota::AgencyQuota,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            listen: None,
            max_retry_interval: DEFAULT_MAX_RETRY_INTERVAL,
            agency_quota: quota::AgencyQuota::default(),
        }
    }
}

/// Everything the node's tasks share.
#[derive(Debug)]
pub struct Node {
    /// This agency.
    pub me: AgencyId,
    /// Its unlocked keys (wiped on drop).
    pub secrets: AgencySecrets,
    /// The key sealing the originator shares and masked keys at rest, from `secrets`.
    pub custody_key: Arc<crate::store::custody_key::CustodyKey>,
    /// The roster in force.
    pub roster: SharedRoster,
    /// The store.
    pub store: Store,
    /// The home directory.
    pub home: Home,
    /// The QUIC endpoint.
    pub endpoint: quinn::Endpoint,
    /// Which transport key the endpoint presents (during a rotation, old or new).
    pub presented_key: Arc<PresentedKey>,
    /// During a rotation, a client configuration presenting the new key only: for dialling
    /// again a peer that refused the old one.
    pub current_key_client: Option<quinn::ClientConfig>,
    /// Options.
    pub options: NodeOptions,
    /// Wakes the outbox worker.
    pub outbox_wake: Notify,
    /// Wakes the custody worker (revocations, expiry, deletion requests).
    pub custody_wake: Notify,
    /// A key share may have been shredded since the write-ahead log was last emptied: the
    /// custody worker empties it (its old page images still hold the share, sealed). Set at
    /// start too, for a shred whose emptying did not complete before the node stopped.
    pub wal_holds_shreds: std::sync::atomic::AtomicBool,
    /// Bytes sent so far of live outgoing transfers, by (doc id, recipient).
    pub sending: Mutex<HashMap<(String, String), u64>>,
    /// Incoming transfers in progress, one per (sender, doc id).
    pub receiving: receiving::Receiving,
    /// Peers: last outcome of talking to them (true = reachable) and when.
    pub reachability: Mutex<HashMap<String, (bool, u64)>>,
    /// Live connections with each peer, both directions ([`reachability`]).
    pub live: reachability::LiveConnections,
    /// The agencies whose node this node's last dial could not reach, or has not dialled
    /// since it started: its first dial that works retries what waits for the agency.
    pub dials_failing: Mutex<std::collections::HashSet<String>>,
    /// When peers that connected were last dialled back.
    dial_backs: announce::DialBacks,
    /// Connections to peers, one per agency.
    pub peers: peers::PeerConnections,
    /// Caps inbound connections.
    pub connection_slots: Arc<Semaphore>,
    /// How fast each peer may make this node write to its log (requests, witnessing).
    pub log_rate: crate::log::rate::LogRateLimits,
    /// The hash states of interrupted transfers, for their resumption.
    pub resume_states: Arc<resume::ResumeStates>,
    /// Rosters peers offered that this node refused lately (not fetched or checked again).
    pub refused_rosters: refused_rosters::RefusedRosters,
    /// Becomes true when the node shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The node itself, for tasks a method starts that outlive the call (never keeps it alive).
    pub this: std::sync::Weak<Node>,
}

/// Starts a node from `home` with unlocked `secrets` and runs it until `shutdown` turns true.
/// `ready` receives the bound QUIC address once the node accepts peers.
pub async fn run(
    home: Home,
    secrets: AgencySecrets,
    options: NodeOptions,
    shutdown: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<()> {
    let profile = home.profile()?;
    let roster = home.require_roster(Timestamp::now())?;
    let member = crate::trust::own_member(&roster, &profile.agency, "node")?;
    if member.signing_key != secrets.signing.public_key() {
        anyhow::bail!(
            "the roster lists another signing key for {}; import a current roster",
            profile.agency
        );
    }
    crate::control::server::refuse_if_running(&home)?;
    let listen = match options.listen {
        Some(addr) => addr,
        None => first_address(&profile.addresses).await?,
    };
    let store = Store::open(&home)?;
    let current = roster.clone();
    let assigned = store
        .db
        .write(move |c| crate::log::checkpoints::assign_unrecorded_keys(c, &current))
        .await?;
    if assigned > 0 {
        tracing::info!("recorded the signing key of {assigned} witnessed checkpoints and forks");
    }
    let roster = SharedRoster::new(roster);
    gossip::record_current(&store, &roster).await?;
    let presented = PresentedKey::rotating(
        &crypto_provider(),
        &profile.agency,
        &secrets.transport,
        secrets.previous_transport.as_ref(),
        &roster,
    )?;
    // Resets keyed by the transport key: a peer still sending on a connection from before a
    // restart learns at once that it is gone.
    let reset_key = crate::transport::StatelessResetKey::derive(&secrets.transport);
    let endpoint = build_endpoint(listen, &presented, &roster, reset_key)?;
    let current_key_client = match &secrets.previous_transport {
        Some(_) => Some(client_config(&presented.current_only(), &roster)?),
        None => None,
    };
    let bound = endpoint.local_addr()?;
    let not_dialled_yet = announce::dialled_members(&roster.current(), &profile.agency)
        .into_iter()
        .map(|id| id.as_str().to_owned())
        .collect();
    let node = Arc::new_cyclic(|this| Node {
        me: profile.agency.clone(),
        custody_key: Arc::new(crate::store::custody_key::CustodyKey::derive(
            &secrets.signing,
        )),
        secrets,
        roster,
        store,
        home: home.clone(),
        endpoint,
        presented_key: presented,
        current_key_client,
        options,
        outbox_wake: Notify::new(),
        custody_wake: Notify::new(),
        wal_holds_shreds: std::sync::atomic::AtomicBool::new(true),
        sending: Mutex::new(HashMap::new()),
        receiving: receiving::Receiving::default(),
        live: reachability::LiveConnections::default(),
        reachability: Mutex::new(HashMap::new()),
        dials_failing: Mutex::new(not_dialled_yet),
        dial_backs: announce::DialBacks::default(),
        peers: peers::PeerConnections::default(),
        connection_slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        log_rate: crate::log::rate::LogRateLimits::default(),
        resume_states: Arc::default(),
        refused_rosters: refused_rosters::RefusedRosters::default(),
        shutdown: shutdown.clone(),
        this: this.clone(),
    });
    // Before anything can read them: shares and masked keys an earlier version stored in
    // the clear are sealed now.
    let key = Arc::clone(&node.custody_key);
    let sealed = node
        .store
        .db
        .write(move |c| crate::store::custody::seal_clear_rows(c, &key))
        .await
        .context("cannot seal the stored originator shares")?;
    if sealed > 0 {
        tracing::info!(
            documents = sealed,
            "sealed the originator shares an earlier version stored in the clear"
        );
    }
    // Before anything installs a blob: copies a crash left without their row are removed.
    let referenced = node
        .store
        .db
        .read(crate::store::orphans::referenced_blobs)
        .await
        .context("cannot list the stored documents")?;
    let blobs = node.store.blobs.clone();
    tokio::task::spawn_blocking(move || {
        crate::store::orphans::remove_unreferenced(&blobs, &referenced)
    })
    .await
    .context("the store task failed")?
    .context("cannot remove copies left by a crash")?;
    let control = crate::control::server::serve(Arc::clone(&node)).await?;
    tracing::info!(agency = %node.me, %bound, "node running");
    if let Some(ready) = ready {
        let _ = ready.send(bound);
    }
    let accept = tokio::spawn(receive::accept_loop(Arc::clone(&node)));
    let outbox = tokio::spawn(deliver::outbox_worker(Arc::clone(&node)));
    let custody = tokio::spawn(deletion::custody_worker(Arc::clone(&node)));
    let checkpointer = tokio::spawn(checkpoint_worker(Arc::clone(&node)));
    let rewitness = tokio::spawn(witness::rewitness_worker(Arc::clone(&node)));
    let expiry = tokio::spawn(roster_expiry::watch(Arc::clone(&node)));
    let staging = tokio::spawn(staging_sweeper(home.clone()));
    let announcing = tokio::spawn(announce::announce(Arc::clone(&node)));

    let mut stop = shutdown;
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    tracing::info!("shutting down");
    control.abort();
    announcing.abort();
    node.endpoint.close(
        quinn::VarInt::from_u32(liaise_protocol::wire::CloseCode::Shutdown.code()),
        b"shutdown",
    );
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = accept.await;
        let _ = outbox.await;
        let _ = custody.await;
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), node.endpoint.wait_idle()).await;
    checkpointer.abort();
    rewitness.abort();
    expiry.abort();
    staging.abort();
    if let Err(e) = witness::make_checkpoint(&node).await {
        tracing::warn!("cannot sign the closing log checkpoint: {e:#}");
    }
    crate::control::server::remove_socket(&home);
    Ok(())
}

/// Removes the plaintext staging that killed `liaise open`s left (see
/// [`crate::open_staging`]): at start and every [`crate::open_staging::SWEEP_INTERVAL`].
async fn staging_sweeper(home: Home) {
    loop {
        let swept = home.clone();
        let _ = tokio::task::spawn_blocking(move || crate::open_staging::sweep(&swept)).await;
        tokio::time::sleep(crate::open_staging::SWEEP_INTERVAL).await;
    }
}

/// A checkpoint is signed at least this often while the log grows.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// A checkpoint is signed at the latest after this many new entries.
pub const CHECKPOINT_EVERY_ENTRIES: u64 = 64;

/// Signs log checkpoints: at start, every [`CHECKPOINT_EVERY_ENTRIES`] entries or
/// [`CHECKPOINT_INTERVAL`] (whichever comes first, and only if the log grew), and (in
/// [`run`]) at shutdown. Peers also get a fresh one whenever they witness this node.
async fn checkpoint_worker(node: Arc<Node>) {
    let mut since = tokio::time::Instant::now();
    if let Err(e) = witness::make_checkpoint(&node).await {
        tracing::warn!("cannot sign a log checkpoint: {e:#}");
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let due = node
            .store
            .db
            .read(|c| {
                let head = crate::log::last(c)?.map(|(s, _)| s);
                let signed = crate::log::checkpoints::latest(c)?.map(|(s, _)| s);
                Ok((head, signed))
            })
            .await;
        let (head, signed) = match due {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("cannot read the log: {e:#}");
                continue;
            }
        };
        let Some(head) = head else { continue };
        let pending = signed.map_or(head + 1, |s| head.saturating_sub(s));
        if pending == 0 {
            since = tokio::time::Instant::now();
            continue;
        }
        if pending >= CHECKPOINT_EVERY_ENTRIES || since.elapsed() >= CHECKPOINT_INTERVAL {
            if let Err(e) = witness::make_checkpoint(&node).await {
                tracing::warn!("cannot sign a log checkpoint: {e:#}");
            }
            since = tokio::time::Instant::now();
        }
    }
}

/// The UNIX time now, in seconds.
pub(crate) fn now_secs() -> u64 {
    Timestamp::now().0
}

impl Node {
    /// Records whether a peer answered.
    pub(crate) fn set_reachable(&self, agency: &str, reachable: bool) {
        if let Ok(mut map) = self.reachability.lock() {
            map.insert(agency.to_owned(), (reachable, now_secs()));
        }
    }

    /// Records whether dialling a peer worked; true if it works again after it failed, or for
    /// the first time since this node started (the caller then retries what waits for it:
    /// [`deliver::retry_sooner`]). Only this node's own dials count: a peer that connects to
    /// us does not show that we can reach it.
    pub(crate) fn dialled(&self, agency: &str, reached: bool) -> bool {
        self.dials_failing
            .lock()
            .map(|mut failing| {
                if reached {
                    failing.remove(agency)
                } else {
                    failing.insert(agency.to_owned());
                    false
                }
            })
            .unwrap_or(false)
    }
}

async fn first_address(addresses: &[String]) -> Result<SocketAddr> {
    let first = addresses
        .first()
        .context("the profile lists no address to listen on")?;
    let mut resolved = tokio::net::lookup_host(first.as_str())
        .await
        .with_context(|| format!("cannot resolve listen address {first}"))?;
    resolved
        .next()
        .with_context(|| format!("listen address {first} resolves to nothing"))
}
