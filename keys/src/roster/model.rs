//! What a roster says: the federation's stewards, members, groups and revoked keys.

use serde::{Deserialize, Serialize};

use crate::agency::{AgencyId, AgencyKind, Country};
use crate::certificate::{CertifiedKey, KeyCertificate};
use crate::encryption::EncryptionPublicKey;
use crate::fingerprint::Fingerprint;
use crate::signing::{Signature, SigningPublicKey};
use crate::text::KeyText;
use crate::time::Timestamp;
use crate::transport::TransportPublicKey;

/// The signed content of a roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterBody {
    /// The federation's display name.
    pub federation: String,
    /// Increases with every published roster; a node never goes back to a lower one.
    pub serial: u64,
    /// When the stewards published it.
    pub issued_at: Timestamp,
    /// After this time the roster is stale and nodes refuse it (freeze detection).
    pub expires_at: Timestamp,
    /// Who signs the next roster, and how many of them must.
    pub stewards: StewardSet,
    /// The member agencies.
    pub members: Vec<Member>,
    /// Named sets of members (a case conference, a seminar's participants).
    pub groups: Vec<Group>,
    /// Keys that must never be trusted again.
    pub revoked: Vec<RevokedKey>,
}

/// The stewards' keys and the signing threshold k of n.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardSet {
    /// How many distinct steward keys must sign.
    pub threshold: u8,
    /// The steward public keys, each counted at most once.
    pub keys: Vec<SigningPublicKey>,
}

/// A member agency with its keys and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The agency id.
    pub id: AgencyId,
    /// Display name.
    pub name: String,
    /// What sort of agency.
    pub kind: AgencyKind,
    /// ISO 3166-1 alpha-2 country.
    pub country: Country,
    /// The agency's identity key.
    pub signing_key: SigningPublicKey,
    /// Certified transport keys (newest last).
    pub transport: Vec<KeyCertificate>,
    /// Certified encryption keys (newest last).
    pub encryption: Vec<KeyCertificate>,
    /// Network addresses of the agency's node, `host:port`.
    pub addresses: Vec<String>,
}

/// A named group of members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's name, e.g. `case-conference-utrecht`.
    pub name: String,
    /// Its members.
    pub members: Vec<AgencyId>,
}

/// A revoked key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedKey {
    /// The key's fingerprint.
    pub fingerprint: Fingerprint,
    /// The agency that held it, if known.
    pub agency: Option<AgencyId>,
    /// From when it is revoked.
    pub revoked_at: Timestamp,
}

/// One steward's signature on a roster body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardSignature {
    /// The steward key that signed.
    pub key: SigningPublicKey,
    /// The signature over the body bytes (domain `Roster`).
    pub signature: Signature,
}

impl StewardSet {
    /// The federation fingerprint: what a node pins on first import.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut keys: Vec<[u8; 32]> = self.keys.iter().map(SigningPublicKey::to_bytes).collect();
        keys.sort_unstable();
        Fingerprint::of(
            "liaise-federation",
            &crate::codec::encode(&(self.threshold, keys)),
        )
    }
}

impl Member {
    /// The newest transport key whose certificate is valid at `now`.
    pub fn current_transport_key(&self, now: Timestamp) -> Option<TransportPublicKey> {
        self.transport
            .iter()
            .filter(|c| c.is_valid_at(now))
            .max_by_key(|c| c.body().not_before)
            .and_then(|c| match &c.body().key {
                CertifiedKey::Transport(k) => Some(*k),
                CertifiedKey::Encryption(_) => None,
            })
    }

    /// Every transport key valid at `now` (old and new overlap during a rotation).
    pub fn valid_transport_keys(
        &self,
        now: Timestamp,
    ) -> impl Iterator<Item = TransportPublicKey> + '_ {
        self.transport
            .iter()
            .filter(move |c| c.is_valid_at(now))
            .filter_map(|c| match &c.body().key {
                CertifiedKey::Transport(k) => Some(*k),
                CertifiedKey::Encryption(_) => None,
            })
    }

    /// The newest encryption key whose certificate is valid at `now`: what senders seal to.
    pub fn current_encryption_key(&self, now: Timestamp) -> Option<&EncryptionPublicKey> {
        self.encryption
            .iter()
            .filter(|c| c.is_valid_at(now))
            .max_by_key(|c| c.body().not_before)
            .and_then(|c| match &c.body().key {
                CertifiedKey::Encryption(k) => Some(k),
                CertifiedKey::Transport(_) => None,
            })
    }

    /// Every fingerprint under which one of this member's keys can be revoked: each Ed25519
    /// key (signing or transport) in both roles, see [`ed25519_fingerprints`].
    pub fn revocable_fingerprints(&self) -> Vec<Fingerprint> {
        let mut out = ed25519_fingerprints(&self.signing_key.to_bytes()).to_vec();
        for cert in self.transport.iter().chain(&self.encryption) {
            match &cert.body().key {
                CertifiedKey::Transport(k) => out.extend(ed25519_fingerprints(&k.to_bytes())),
                key @ CertifiedKey::Encryption(_) => out.push(certified_fingerprint(key)),
            }
        }
        out
    }

    /// Fingerprints of every key this member holds.
    pub fn key_fingerprints(&self) -> Vec<Fingerprint> {
        let mut out = vec![self.signing_key.fingerprint()];
        for cert in self.transport.iter().chain(&self.encryption) {
            out.push(certified_fingerprint(&cert.body().key));
        }
        out
    }
}

/// The fingerprints of an Ed25519 key in its two roles, signing (`ed25519`) and transport
/// (`tls-ed25519`). A revocation names one fingerprint, but a revoked key is revoked in every
/// role: otherwise a transport key revoked as such could come back as a signing key (the same
/// bytes under the other prefix), or the reverse.
pub fn ed25519_fingerprints(key: &[u8; 32]) -> [Fingerprint; 2] {
    [KeyText::Signing, KeyText::Transport].map(|role| Fingerprint::of(role.prefix(), key))
}

/// The fingerprint of a certified key.
pub fn certified_fingerprint(key: &CertifiedKey) -> Fingerprint {
    match key {
        CertifiedKey::Transport(k) => k.fingerprint(),
        CertifiedKey::Encryption(k) => k.fingerprint(),
    }
}
