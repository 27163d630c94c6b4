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
pub const MAX_SECRETS_LEN: usize = 64 + MAX_ENCRYPTION_KEYS * 40;

/// An agency's secret keys. Wiped on drop; `Debug` shows nothing secret.
pub struct AgencySecrets {
    /// The Ed25519 identity key.
    pub signing: SigningSecretKey,
    /// The current TLS transport key.
    pub transport: TransportSecretKey,
    /// Encryption keys, newest last. The last one is the current key.
    pub encryption: Vec<EncryptionSecretKey>,
}

/// Why a secrets bundle could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The decrypted bytes are not a valid bundle.
    #[error("key file content is malformed: {0}")]
    Decode(#[from] DecodeError),
    /// The bundle holds no encryption key or an invalid one.
    #[error("key file holds no valid encryption key")]
    NoEncryptionKey,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SecretsRepr {
    signing: [u8; 32],
    transport: [u8; 32],
    encryption: Vec<(u8, [u8; 32])>,
}

impl AgencySecrets {
    /// Fresh keys: X-Wing encryption by default, X25519 if asked.
    pub fn generate(kem: KemAlgorithm) -> Self {
        Self {
            signing: SigningSecretKey::generate(),
            transport: TransportSecretKey::generate(),
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

    /// Replaces the transport key and adds a new current encryption key, keeping old
    /// encryption keys (up to [`MAX_ENCRYPTION_KEYS`]) so earlier documents still open.
    pub fn rotate(&mut self, kem: KemAlgorithm) {
        self.transport = TransportSecretKey::generate();
        self.encryption.push(EncryptionSecretKey::generate(kem));
        while self.encryption.len() > MAX_ENCRYPTION_KEYS {
            self.encryption.remove(0);
        }
    }

    /// Encodes for encryption into a key file.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let repr = SecretsRepr {
            signing: *self.signing.to_bytes(),
            transport: *self.transport.to_bytes(),
            encryption: self
                .encryption
                .iter()
                .map(|k| (kem_code(k.algorithm()), *k.to_bytes()))
                .collect(),
        };
        Zeroizing::new(codec::encode(&repr))
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
        if encryption.is_empty() || encryption.len() > MAX_ENCRYPTION_KEYS {
            return Err(SecretsError::NoEncryptionKey);
        }
        Ok(Self {
            signing: SigningSecretKey::from_bytes(&repr.signing),
            transport: TransportSecretKey::from_bytes(&repr.transport),
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
        secrets.rotate(KemAlgorithm::X25519);
        let bytes = secrets.to_bytes();
        let back = AgencySecrets::from_bytes(&bytes).unwrap();
        assert_eq!(back.signing.public_key(), signing);
        assert_eq!(back.transport.public_key(), secrets.transport.public_key());
        assert_eq!(back.encryption.len(), 2);
        assert!(back.encryption_key_for(&first_enc).is_some());
        assert_eq!(
            back.current_encryption().unwrap().algorithm(),
            KemAlgorithm::X25519
        );
        for cut in 0..bytes.len() {
            assert!(AgencySecrets::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
