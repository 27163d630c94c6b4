//! QUIC transport pinned to the federation roster.
//!
//! Every node presents its transport key as an RFC 7250 raw public key in a TLS 1.3
//! handshake with ALPN `liaise/1` and the hybrid post-quantum key exchange X25519MLKEM768
//! only. Both sides check that the other's key is a current, unrevoked member's certified
//! transport key ([`tls::RosterVerifier`]); the peer's agency is derived from that key alone.

mod endpoint;
mod tls;

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, Timestamp, TransportPublicKey};
use rustls::pki_types::CertificateDer;

pub use endpoint::{
    IDLE_TIMEOUT, KEEP_ALIVE_INTERVAL, MAX_CONNECTIONS, MAX_STREAMS_PER_CONNECTION,
    PEER_RECEIVE_WINDOW, STREAM_RECEIVE_WINDOW, build_endpoint, client_config,
};
pub use tls::{RosterVerifier, crypto_provider};

/// The roster the node currently trusts, shared by the transport, the receive path and gossip.
/// A gossip update replaces it; new handshakes see the new roster at once.
#[derive(Debug, Clone)]
pub struct SharedRoster(Arc<RwLock<Arc<Roster>>>);

impl SharedRoster {
    /// Shares `roster`.
    pub fn new(roster: Roster) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(roster))))
    }

    /// The current roster.
    pub fn current(&self) -> Arc<Roster> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the roster (after the caller checked it with `Roster::accept_update`).
    pub fn replace(&self, roster: Roster) {
        let roster = Arc::new(roster);
        match self.0.write() {
            Ok(mut guard) => *guard = roster,
            Err(poisoned) => *poisoned.into_inner() = roster,
        }
    }
}

/// The agency behind an established connection, from its authenticated transport key,
/// looked up again in the current roster (it may have changed since the handshake).
pub fn peer_agency(connection: &quinn::Connection, roster: &SharedRoster) -> Result<AgencyId> {
    let key = peer_transport_key(connection)?;
    let roster = roster.current();
    let member = roster
        .member_by_transport_key(&key, Timestamp::now())
        .context("peer's transport key is not a current member's")?;
    Ok(member.id.clone())
}

/// The raw public key the peer authenticated with.
pub fn peer_transport_key(connection: &quinn::Connection) -> Result<TransportPublicKey> {
    let identity = connection
        .peer_identity()
        .context("peer presented no key")?;
    let Ok(certs) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        bail!("peer identity has an unexpected type");
    };
    let Some(spki) = certs.first() else {
        bail!("peer presented no key");
    };
    TransportPublicKey::from_spki_der(spki.as_ref()).context("peer key is not an Ed25519 key")
}
