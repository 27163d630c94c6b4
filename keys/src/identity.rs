//! An agency's secret key material, as one bundle that is encrypted into its key file.
//!
//! The bundle holds the signing key (the identity, never rotated), the current transport key,
//! and every encryption key the agency has held that has not been destroyed: documents sealed
//! to an older encryption key stay readable after a rotation.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{self, DecodeError};
use crate::encryption::{EncryptionPublicKey, EncryptionSecretKey, KemAlgorithm};
use crate::signing::SigningSecretKey;
use crate::transport::TransportSecretKey;

/// The most encryption keys a bundle keeps (current plus retired ones).
pub const MAX_ENCRYPTION_KEYS: usize = 32;
/// The largest encoded bundle.
pub const MAX_SECRETS_LEN: usize = 128 + MAX_ENCRYPTION_KEYS * 40;

/// An agency's secret keys. Wiped on drop; `Debug` shows nothing secret.
pub struct AgencySecrets {
    /// The Ed25519 identity key.
    pub signing: SigningSecretKey,
    /// The current TLS transport key.
    pub transport: TransportSecretKey,
    /// The transport key before the last rotation, kept until the roster lists the new one:
    /// a node presents whichever of the two the current roster certifies.
    pub previous_transport: Option<TransportSecretKey>,
    /// Encryption keys, newest last. The last one is the current key. The list may grow and
    /// shift ([`Self::rotate`]): each key keeps its secret bytes in a box of its own, so the
    /// buffers the list leaves behind hold no secret.
    pub encryption: Vec<EncryptionSecretKey>,
}

/// Why a secrets bundle could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The decrypted bytes are not a valid bundle.
    #[error("key file content is malformed: {0}")]
    Decode(DecodeError),
    /// The bundle holds no encryption key or an invalid one.
    #[error("key file holds no valid encryption key")]
    NoEncryptionKey,
    /// The bundle holds more encryption keys than [`MAX_ENCRYPTION_KEYS`].
    #[error("key file holds {count} encryption keys, more than the limit of {MAX_ENCRYPTION_KEYS}")]
    TooManyEncryptionKeys {
        /// How many it holds.
        count: usize,
    },
}

// Not `#[from]`: that would also make it the error's source, and the message already ends with
// it, so `{:#}` would print it twice.
impl From<DecodeError> for SecretsError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SecretsRepr {
    signing: [u8; 32],
    transport: [u8; 32],
    previous_transport: Option<[u8; 32]>,
    encryption: Vec<(u8, [u8; 32])>,
}

impl AgencySecrets {
    /// Fresh keys: X-Wing encryption by default, X25519 if asked.
    pub fn generate(kem: KemAlgorithm) -> Self {
        Self {
            signing: SigningSecretKey::generate(),
            transport: TransportSecretKey::generate(),
            previous_transport: None,
            encryption: vec![EncryptionSecretKey::generate(kem)],
        }
    }

    /// The current encryption key.
    pub fn current_encryption(&self) -> Option<&EncryptionSecretKey> {
        self.encryption.last()
    }

    /// The secret key matching a public encryption key, current or retired.
    pub fn encryption_key_for(&self, public: &EncryptionPublicKey) -> Option<&EncryptionSecretKey> {
        self.encryption.iter().find(|k| k.public_key() == public)
    }

    /// Replaces the transport key (keeping the old one as `previous_transport`) and adds a new
    /// current encryption key, keeping old encryption keys so earlier documents still open. At
    /// most [`MAX_ENCRYPTION_KEYS`] are kept: the public halves of any dropped are returned so
    /// the caller can say so.
    pub fn rotate(&mut self, kem: KemAlgorithm) -> Vec<EncryptionPublicKey> {
        let old = std::mem::replace(&mut self.transport, TransportSecretKey::generate());
        self.previous_transport = Some(old);
        self.encryption.push(EncryptionSecretKey::generate(kem));
        let excess = self.encryption.len().saturating_sub(MAX_ENCRYPTION_KEYS);
        self.encryption
            .drain(..excess)
            .map(|k| k.public_key().clone())
            .collect()
    }

    /// The transport keys this node may present: the current one, then the previous one.
    pub fn transport_keys(&self) -> impl Iterator<Item = &TransportSecretKey> {
        std::iter::once(&self.transport).chain(self.previous_transport.as_ref())
    }

    /// Encodes for encryption into a key file.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let repr = SecretsRepr {
            signing: *self.signing.to_bytes(),
            transport: *self.transport.to_bytes(),
            previous_transport: self.previous_transport.as_ref().map(|k| *k.to_bytes()),
            encryption: self
                .encryption
                .iter()
                .map(|k| (kem_code(k.algorithm()), *k.to_bytes()))
                .collect(),
        };
        codec::encode_secret(&repr, MAX_SECRETS_LEN)
    }

    /// Decodes what [`Self::to_bytes`] produced.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretsError> {
        let repr: SecretsRepr = codec::decode("agency secrets", bytes, MAX_SECRETS_LEN)?;
        let mut encryption = Vec::with_capacity(repr.encryption.len());
        for (code, secret) in &repr.encryption {
            let kem = match code {
                1 => KemAlgorithm::XWing,
                2 => KemAlgorithm::X25519,
                _ => return Err(SecretsError::NoEncryptionKey),
            };
            encryption.push(
                EncryptionSecretKey::from_bytes(kem, secret)
                    .map_err(|_| SecretsError::NoEncryptionKey)?,
            );
        }
        if encryption.len() > MAX_ENCRYPTION_KEYS {
            return Err(SecretsError::TooManyEncryptionKeys {
                count: encryption.len(),
            });
        }
        if encryption.is_empty() {
            return Err(SecretsError::NoEncryptionKey);
        }
        Ok(Self {
            signing: SigningSecretKey::from_bytes(&repr.signing),
            transport: TransportSecretKey::from_bytes(&repr.transport),
            previous_transport: repr
                .previous_transport
                .as_ref()
                .map(TransportSecretKey::from_bytes),
            encryption,
        })
    }
}

fn kem_code(kem: KemAlgorithm) -> u8 {
    match kem {
        KemAlgorithm::XWing => 1,
        KemAlgorithm::X25519 => 2,
    }
}

impl fmt::Debug for AgencySecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgencySecrets(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rotation() {
        let mut secrets = AgencySecrets::generate(KemAlgorithm::XWing);
        let first_enc = secrets.current_encryption().unwrap().public_key().clone();
        let signing = secrets.signing.public_key();
        let first_transport = secrets.transport.public_key();
        assert!(secrets.rotate(KemAlgorithm::X25519).is_empty());
        let bytes = secrets.to_bytes();
        let back = AgencySecrets::from_bytes(&bytes).unwrap();
        assert_eq!(back.signing.public_key(), signing);
        assert_eq!(back.transport.public_key(), secrets.transport.public_key());
        assert_eq!(back.encryption.len(), 2);
        let presented: Vec<_> = back.transport_keys().map(|k| k.public_key()).collect();
        assert_eq!(presented, [secrets.transport.public_key(), first_transport]);
        assert!(back.encryption_key_for(&first_enc).is_some());
        assert_eq!(
            back.current_encryption().unwrap().algorithm(),
            KemAlgorithm::X25519
        );
        for cut in 0..bytes.len() {
            assert!(AgencySecrets::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn at_most_max_encryption_keys_are_kept() {
        let mut secrets = AgencySecrets::generate(KemAlgorithm::X25519);
        let first = secrets.current_encryption().unwrap().public_key().clone();
        for _ in 1..MAX_ENCRYPTION_KEYS {
            assert!(secrets.rotate(KemAlgorithm::X25519).is_empty());
        }
        assert_eq!(secrets.encryption.len(), MAX_ENCRYPTION_KEYS);
        let back = AgencySecrets::from_bytes(&secrets.to_bytes()).unwrap();
        assert_eq!(back.encryption.len(), MAX_ENCRYPTION_KEYS);
        assert_eq!(secrets.rotate(KemAlgorithm::X25519), vec![first]);
        assert_eq!(secrets.encryption.len(), MAX_ENCRYPTION_KEYS);
    }
}
