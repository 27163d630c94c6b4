//! Which of its transport keys a node presents in a handshake.
//!
//! After `liaise keys rotate` the key file holds a new transport key and the previous one,
//! and the membership request certifies both: the previous one only for
//! [`liaise_keys::roster::TRANSPORT_KEY_OVERLAP`]. Peers that still hold the roster from
//! before the rotation know only the previous key, so the node goes on presenting it while its
//! own roster certifies it, and switches to the new key [`SWITCH_MARGIN`] before that
//! certificate ends. By then the roster listing both keys has reached the peers (by import or
//! by gossip over the connections the previous key still opens). The choice is made afresh
//! for every handshake, so a node switches without a restart. A peer that refuses the previous
//! key when this node dials it is dialled again at once with the new key
//! ([`PresentedKey::current_only`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, Timestamp, TransportPublicKey, TransportSecretKey};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use super::SharedRoster;
use super::tls::certified_key;

/// The node presents its new transport key this long before its roster stops certifying the
/// previous one, so that a peer whose clock runs ahead still accepts what it is shown.
pub const SWITCH_MARGIN: Duration = Duration::from_secs(86_400);

/// The transport key a node presents: its current one, or during a rotation the previous one.
#[derive(Debug)]
pub struct PresentedKey {
    current: Arc<CertifiedKey>,
    current_public: TransportPublicKey,
    previous: Option<Previous>,
}

/// The previous transport key, and what decides whether peers still expect it.
#[derive(Debug)]
struct Previous {
    me: AgencyId,
    public: TransportPublicKey,
    key: Arc<CertifiedKey>,
    roster: SharedRoster,
}

impl PresentedKey {
    /// Always `secret` (a node without a rotation under way, or a test endpoint).
    pub fn only(provider: &CryptoProvider, secret: &TransportSecretKey) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            current: certified_key(provider, secret)?,
            current_public: secret.public_key(),
            previous: None,
        }))
    }

    /// `current`, or `previous` while `roster` certifies it for `me` (see the module docs).
    pub fn rotating(
        provider: &CryptoProvider,
        me: &AgencyId,
        current: &TransportSecretKey,
        previous: Option<&TransportSecretKey>,
        roster: &SharedRoster,
    ) -> Result<Arc<Self>> {
        let previous = match previous {
            Some(secret) => Some(Previous {
                me: me.clone(),
                public: secret.public_key(),
                key: certified_key(provider, secret)?,
                roster: roster.clone(),
            }),
            None => None,
        };
        Ok(Arc::new(Self {
            current: certified_key(provider, current)?,
            current_public: current.public_key(),
            previous,
        }))
    }

    /// The key to present in a handshake starting at `now`.
    pub fn at(&self, now: Timestamp) -> Arc<CertifiedKey> {
        match &self.previous {
            Some(previous) if self.offers_previous(now) => Arc::clone(&previous.key),
            _ => Arc::clone(&self.current),
        }
    }

    /// The public half of the key a handshake starting at `now` presents: what a peer
    /// checks against its roster.
    pub fn public_at(&self, now: Timestamp) -> TransportPublicKey {
        match &self.previous {
            Some(previous) if self.offers_previous(now) => previous.public,
            _ => self.current_public,
        }
    }

    /// Whether a handshake starting at `now` presents the previous key.
    pub fn offers_previous(&self, now: Timestamp) -> bool {
        self.previous.as_ref().is_some_and(|previous| {
            presents_previous(
                &previous.roster.current(),
                &previous.me,
                &previous.public,
                now,
            )
        })
    }

    /// The same keys, but always the current one: for dialling again, at once, a peer that
    /// refused the previous key (its newer roster revoked it, or lists the new key alone).
    pub fn current_only(&self) -> Arc<Self> {
        Arc::new(Self {
            current: Arc::clone(&self.current),
            current_public: self.current_public,
            previous: None,
        })
    }
}

/// Whether `roster` certifies `previous` as `me`'s transport key (unrevoked) at `now` and
/// still [`SWITCH_MARGIN`] later.
pub fn presents_previous(
    roster: &Roster,
    me: &AgencyId,
    previous: &TransportPublicKey,
    now: Timestamp,
) -> bool {
    let certified_at = |t: Timestamp| {
        roster
            .member_by_transport_key(previous, t)
            .is_ok_and(|member| &member.id == me)
    };
    certified_at(now) && certified_at(now.after(SWITCH_MARGIN))
}

impl rustls::server::ResolvesServerCert for PresentedKey {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.at(Timestamp::now()))
    }

    fn only_raw_public_keys(&self) -> bool {
        true
    }
}

impl rustls::client::ResolvesClientCert for PresentedKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.at(Timestamp::now()))
    }

    fn only_raw_public_keys(&self) -> bool {
        true
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "presented_key_tests.rs"]
mod tests;
