//! Transport keys: the Ed25519 key a node presents in its QUIC/TLS 1.3 handshake.
//!
//! Separate from the signing key so that a node's network-facing key can rotate (and live on
//! a less protected machine) without changing the agency's identity. The signing key certifies
//! it (see [`crate::certificate`]).

use std::fmt;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;
use crate::random::os_rng;
use crate::signing::{InvalidPublicKey, PUBLIC_KEY_LEN, SigningPublicKey};
use crate::text::{self, KeyText};

/// DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410 §7), followed by the 32-byte seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4), followed by the 32-byte key.
pub const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A node's secret transport key. Wiped on drop.
pub struct TransportSecretKey(SigningKey);

impl TransportSecretKey {
    /// A fresh key.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut os_rng()))
    }

    /// Restores a key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes, for encrypting into a key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The key as PKCS#8 DER, as TLS libraries load it.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(&*self.to_bytes());
        der
    }

    /// The matching public key.
    pub fn public_key(&self) -> TransportPublicKey {
        TransportPublicKey(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for TransportSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportSecretKey(..)")
    }
}

/// A node's public transport key (Ed25519), validated when made.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportPublicKey([u8; PUBLIC_KEY_LEN]);

impl TransportPublicKey {
    /// Validates 32 bytes as an Ed25519 public key.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, InvalidPublicKey> {
        SigningPublicKey::from_bytes(bytes).map_err(|_| InvalidPublicKey { what: "transport" })?;
        Ok(Self(*bytes))
    }

    /// Reads the key out of an Ed25519 SubjectPublicKeyInfo (what a TLS raw-public-key peer sends).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, InvalidPublicKey> {
        let err = InvalidPublicKey { what: "transport" };
        let key = der
            .strip_prefix(&SPKI_ED25519_PREFIX[..])
            .ok_or(err.clone())?;
        let array: [u8; PUBLIC_KEY_LEN] = key.try_into().map_err(|_| err)?;
        Self::from_bytes(&array)
    }

    /// The key as an Ed25519 SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        der
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(KeyText::Transport.prefix(), &self.0)
    }
}

impl fmt::Debug for TransportPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportPublicKey({self})")
    }
}

impl fmt::Display for TransportPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::encode(KeyText::Transport, &self.0))
    }
}

impl std::str::FromStr for TransportPublicKey {
    type Err = InvalidPublicKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidPublicKey { what: "transport" };
        let bytes = text::decode(KeyText::Transport, s).ok_or_else(err)?;
        Self::from_bytes(&bytes.as_slice().try_into().map_err(|_| err())?)
    }
}

impl Serialize for TransportPublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for TransportPublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            String::deserialize(d)?
                .parse()
                .map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; PUBLIC_KEY_LEN]>::deserialize(d)?;
            Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn der_forms() {
        let sk = TransportSecretKey::generate();
        let pk = sk.public_key();
        assert_eq!(sk.to_pkcs8_der().len(), 48);
        assert_eq!(
            TransportPublicKey::from_spki_der(&pk.to_spki_der()).unwrap(),
            pk
        );
        assert!(TransportPublicKey::from_spki_der(&pk.to_spki_der()[1..]).is_err());
        assert_eq!(pk.to_string().parse::<TransportPublicKey>().unwrap(), pk);
        assert_eq!(format!("{sk:?}"), "TransportSecretKey(..)");
    }
}
