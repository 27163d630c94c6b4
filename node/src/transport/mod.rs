//! QUIC transport pinned to the federation roster.
//!
//! Every node presents its transport key as an RFC 7250 raw public key in a TLS 1.3
//! handshake with ALPN `liaise/1` and the hybrid post-quantum key exchange X25519MLKEM768
//! only. Both sides check that the other's key is a current, unrevoked member's certified
//! transport key ([`tls::RosterVerifier`]); the peer's agency is derived from that key alone.

mod endpoint;
mod presented_key;
mod reset_key;
mod tls;

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, Timestamp, TransportPublicKey};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;

pub use endpoint::{
    IDLE_TIMEOUT, KEEP_ALIVE_INTERVAL, MAX_CONNECTIONS, MAX_STREAMS_PER_CONNECTION,
    PEER_RECEIVE_WINDOW, STREAM_RECEIVE_WINDOW, build_endpoint, client_config,
};
pub use presented_key::{PresentedKey, SWITCH_MARGIN, presents_previous};
pub use reset_key::StatelessResetKey;
pub use tls::{RosterVerifier, crypto_provider};

/// The roster the node currently trusts, shared by the transport, the receive path and gossip.
/// A gossip update replaces it; new handshakes see the new roster at once, and live
/// connections are told through [`SharedRoster::subscribe`] so they can re-check their peer.
#[derive(Debug, Clone)]
pub struct SharedRoster {
    current: Arc<RwLock<Arc<Roster>>>,
    /// Held by whoever checks, stores and installs a newer roster, so updates never interleave.
    updates: Arc<tokio::sync::Mutex<()>>,
    /// The serial in force, for connections watching for a change.
    changed: Arc<watch::Sender<u64>>,
}

impl SharedRoster {
    /// Shares `roster`.
    pub fn new(roster: Roster) -> Self {
        let (changed, _) = watch::channel(roster.serial());
        Self {
            current: Arc::new(RwLock::new(Arc::new(roster))),
            updates: Arc::new(tokio::sync::Mutex::new(())),
            changed: Arc::new(changed),
        }
    }

    /// The current roster.
    pub fn current(&self) -> Arc<Roster> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Waits for the right to update the roster. Hold the guard from reading the current
    /// roster through checking the successor, storing it and [`Self::replace`].
    pub async fn lock_updates(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.updates.lock().await
    }

    /// Replaces the roster (after the caller checked it with `Roster::accept_update`, holding
    /// [`Self::lock_updates`]). A roster whose serial is not higher than the current one is
    /// refused: returns whether `roster` is now in force.
    pub fn replace(&self, roster: Roster) -> bool {
        let serial = roster.serial();
        let roster = Arc::new(roster);
        let replaced = match self.current.write() {
            Ok(mut guard) if guard.serial() < serial => {
                *guard = roster;
                true
            }
            Ok(_) => false,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                let newer = guard.serial() < serial;
                if newer {
                    *guard = roster;
                }
                newer
            }
        };
        if replaced {
            self.changed.send_replace(serial);
        }
        replaced
    }

    /// Tells every subscriber to look again now, as for a new roster: the roster in force
    /// has just expired, so live connections check their peers (and close) at once rather
    /// than at their next periodic check.
    pub fn announce_expiry(&self) {
        self.changed.send_replace(self.current().serial());
    }

    /// Notified whenever a newer roster takes effect, or the one in force expires.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Refuses a roster past its expiry: its keys and revocations can no longer be trusted.
pub fn roster_in_force(roster: &Roster, now: Timestamp) -> Result<()> {
    let expires_at = roster.body().expires_at;
    if now >= expires_at {
        bail!(
            "the roster this node holds (serial {}) expired at {}; import a current roster",
            roster.serial(),
            expires_at
        );
    }
    Ok(())
}

/// The agency behind an established connection, from its authenticated transport key,
/// looked up again in the current roster (it may have changed since the handshake).
pub fn peer_agency(connection: &quinn::Connection, roster: &SharedRoster) -> Result<AgencyId> {
    let key = peer_transport_key(connection)?;
    let roster = roster.current();
    roster_in_force(&roster, Timestamp::now())?;
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
