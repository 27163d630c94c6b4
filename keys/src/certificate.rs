//! Key certificates: an agency's signing key vouches for one of its transport or encryption
//! keys, for a validity period.
//!
//! This lets those keys rotate without changing the agency's identity: the roster lists the
//! signing key once and any number of certificates. A document signed before a rotation still
//! verifies afterwards, because documents are signed with the signing key, which does not rotate.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agency::AgencyId;
use crate::codec::{self, DecodeError};
use crate::encryption::EncryptionPublicKey;
use crate::signing::{
    BadSignature, Signature, SignatureDomain, SigningPublicKey, SigningSecretKey,
};
use crate::text::{self, KeyText};
use crate::time::Timestamp;

/// The largest encoded certificate body (an X-Wing key is 1216 bytes).
pub const MAX_CERTIFICATE_BODY_LEN: usize = 2048;

/// The key a certificate vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertifiedKey {
    /// A QUIC/TLS transport key.
    Transport(crate::transport::TransportPublicKey),
    /// An HPKE encryption key.
    Encryption(EncryptionPublicKey),
}

/// What the signing key signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateBody {
    /// The agency whose key this is.
    pub agency: AgencyId,
    /// The certified key.
    pub key: CertifiedKey,
    /// Valid from this time (inclusive).
    pub not_before: Timestamp,
    /// Valid until this time (exclusive).
    pub not_after: Timestamp,
}

/// A certificate: the exact body bytes that were signed, the decoded body, and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyCertificate {
    body_bytes: Vec<u8>,
    body: CertificateBody,
    signature: Signature,
}

impl KeyCertificate {
    /// Certifies `body` with the agency's signing key.
    pub fn issue(signer: &SigningSecretKey, body: CertificateBody) -> Self {
        let body_bytes = codec::encode(&body);
        let signature = signer.sign(SignatureDomain::KeyCertificate, &body_bytes);
        Self {
            body_bytes,
            body,
            signature,
        }
    }

    /// The decoded body (not yet verified: call [`Self::verify`]).
    pub fn body(&self) -> &CertificateBody {
        &self.body
    }

    /// Checks the signature over the exact signed bytes.
    pub fn verify(&self, signer: &SigningPublicKey) -> Result<(), BadSignature> {
        signer.verify(
            SignatureDomain::KeyCertificate,
            &self.body_bytes,
            &self.signature,
        )
    }

    /// True if `now` lies within the validity period.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.body.not_before <= now && now < self.body.not_after
    }

    /// Encodes for a file or message: body bytes, then signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(&(&self.body_bytes, &self.signature))
    }

    /// Decodes (without verifying).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (body_bytes, signature): (Vec<u8>, Signature) =
            codec::decode("key certificate", bytes, MAX_CERTIFICATE_BODY_LEN + 80)?;
        let body = codec::decode(
            "key certificate body",
            &body_bytes,
            MAX_CERTIFICATE_BODY_LEN,
        )?;
        Ok(Self {
            body_bytes,
            body,
            signature,
        })
    }
}

impl fmt::Debug for KeyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCertificate")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Serialize for KeyCertificate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&text::encode(KeyText::Certificate, &self.to_bytes()))
        } else {
            (&self.body_bytes, &self.signature).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for KeyCertificate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let bytes = text::decode(KeyText::Certificate, &text)
                .ok_or_else(|| serde::de::Error::custom("invalid certificate text"))?;
            Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
        } else {
            let (body_bytes, signature) = <(Vec<u8>, Signature)>::deserialize(d)?;
            if body_bytes.len() > MAX_CERTIFICATE_BODY_LEN {
                return Err(serde::de::Error::custom("certificate body too large"));
            }
            let body = codec::decode(
                "key certificate body",
                &body_bytes,
                MAX_CERTIFICATE_BODY_LEN,
            )
            .map_err(serde::de::Error::custom)?;
            Ok(Self {
                body_bytes,
                body,
                signature,
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::encryption::{EncryptionSecretKey, KemAlgorithm};

    fn sample() -> (SigningSecretKey, KeyCertificate) {
        let signer = SigningSecretKey::generate();
        let enc = EncryptionSecretKey::generate(KemAlgorithm::XWing);
        let cert = KeyCertificate::issue(
            &signer,
            CertificateBody {
                agency: AgencyId::new("nl.probation.utrecht").unwrap(),
                key: CertifiedKey::Encryption(enc.public_key().clone()),
                not_before: Timestamp(100),
                not_after: Timestamp(200),
            },
        );
        (signer, cert)
    }

    #[test]
    fn issue_verify_round_trip() {
        let (signer, cert) = sample();
        assert!(cert.verify(&signer.public_key()).is_ok());
        assert!(
            cert.verify(&SigningSecretKey::generate().public_key())
                .is_err()
        );
        assert!(cert.is_valid_at(Timestamp(100)));
        assert!(!cert.is_valid_at(Timestamp(200)));
        let back = KeyCertificate::from_bytes(&cert.to_bytes()).unwrap();
        assert_eq!(back, cert);
        assert!(back.verify(&signer.public_key()).is_ok());
    }

    #[test]
    fn any_flipped_byte_or_truncation_fails() {
        let (signer, cert) = sample();
        let bytes = cert.to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            if let Ok(c) = KeyCertificate::from_bytes(&bad) {
                assert!(c.verify(&signer.public_key()).is_err(), "byte {i}");
            }
        }
        for cut in 0..bytes.len() {
            assert!(KeyCertificate::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
