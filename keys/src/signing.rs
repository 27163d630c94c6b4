//! Ed25519 signing keys (RFC 8032) and the domain-separated signatures made with them.
//!
//! An agency's signing key is its identity. Every signature first signs a versioned
//! domain-separation tag ([`SignatureDomain`]), so a signature made for one purpose (a roster,
//! a receipt) can never be replayed as another (a document).

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fingerprint::Fingerprint;
use crate::random::os_rng;
use crate::text::{self, KeyText};

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What a signature is for. Each variant has its own tag; no tag is a prefix of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureDomain {
    /// A steward's signature on a federation roster.
    Roster,
    /// An agency certifying one of its transport or encryption keys.
    KeyCertificate,
    /// A sender's signature on a sealed document.
    Document,
    /// A receiving node's signed delivery receipt.
    Receipt,
    /// A signed deletion receipt.
    DeletionReceipt,
    /// A request for an originator-held key share.
    ShareRequest,
    /// A released key share.
    ShareRelease,
    /// A tamper-evident log checkpoint.
    LogCheckpoint,
    /// A peer's countersignature on another node's log checkpoint.
    CheckpointCountersignature,
    /// Consent by the originator to forward a document.
    ForwardConsent,
    /// An originator's request that a reader delete its copy of a document.
    DeleteRequest,
    /// A reader's request to forward a document to another agency.
    ForwardRequest,
}

impl SignatureDomain {
    /// The tag signed before the message. Version 1 of every kind.
    pub fn tag(self) -> &'static [u8] {
        match self {
            Self::Roster => b"liaise roster v1\n",
            Self::KeyCertificate => b"liaise key-certificate v1\n",
            Self::Document => b"liaise document v1\n",
            Self::Receipt => b"liaise receipt v1\n",
            Self::DeletionReceipt => b"liaise deletion-receipt v1\n",
            Self::ShareRequest => b"liaise share-request v1\n",
            Self::ShareRelease => b"liaise share-release v1\n",
            Self::LogCheckpoint => b"liaise log-checkpoint v1\n",
            Self::CheckpointCountersignature => b"liaise checkpoint-countersignature v1\n",
            Self::ForwardConsent => b"liaise forward-consent v1\n",
            Self::DeleteRequest => b"liaise delete-request v1\n",
            Self::ForwardRequest => b"liaise forward-request v1\n",
        }
    }
}

/// A signature failed to verify. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature verification failed")]
pub struct BadSignature;

/// A public key failed validation (wrong length, not a point, or a weak small-order key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} public key")]
pub struct InvalidPublicKey {
    /// Which kind of key.
    pub what: &'static str,
}

/// An agency's (or steward's) Ed25519 secret signing key. Wiped on drop.
pub struct SigningSecretKey(SigningKey);

impl SigningSecretKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut os_rng()))
    }

    /// Restores a key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes, for encrypting into a key file.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> SigningPublicKey {
        SigningPublicKey(self.0.verifying_key())
    }

    /// Signs `domain`'s tag followed by `message`.
    pub fn sign(&self, domain: SignatureDomain, message: &[u8]) -> Signature {
        let mut signed = Vec::with_capacity(domain.tag().len() + message.len());
        signed.extend_from_slice(domain.tag());
        signed.extend_from_slice(message);
        Signature(self.0.sign(&signed).to_bytes())
    }

    /// Signs raw bytes without a Liaise domain tag. Only for formats that carry their own
    /// domain separation (OpenSSH SSHSIG's `namespace`); never use for Liaise structures.
    pub fn sign_raw_for_foreign_format(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecretKey(..)")
    }
}

/// An Ed25519 public key, validated when made: it is a valid point and not of small order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningPublicKey(VerifyingKey);

impl SigningPublicKey {
    /// Validates 32 bytes as a public key.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, InvalidPublicKey> {
        let err = InvalidPublicKey { what: "Ed25519" };
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| err.clone())?;
        if key.is_weak() {
            return Err(err);
        }
        Ok(Self(key))
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Verifies a signature made with [`SigningSecretKey::sign`] for `domain`, strictly
    /// (no malleable or small-order encodings).
    pub fn verify(
        &self,
        domain: SignatureDomain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        let mut signed = Vec::with_capacity(domain.tag().len() + message.len());
        signed.extend_from_slice(domain.tag());
        signed.extend_from_slice(message);
        self.verify_raw_for_foreign_format(&signed, signature)
    }

    /// Verifies a signature over raw bytes (see [`SigningSecretKey::sign_raw_for_foreign_format`]).
    pub fn verify_raw_for_foreign_format(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| BadSignature)
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(KeyText::Signing.prefix(), &self.to_bytes())
    }
}

impl fmt::Debug for SigningPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningPublicKey({self})")
    }
}

impl fmt::Display for SigningPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::encode(KeyText::Signing, &self.to_bytes()))
    }
}

impl std::str::FromStr for SigningPublicKey {
    type Err = InvalidPublicKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidPublicKey { what: "Ed25519" };
        let bytes = text::decode(KeyText::Signing, s).ok_or_else(err)?;
        let array: [u8; PUBLIC_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| err())?;
        Self::from_bytes(&array)
    }
}

impl Serialize for SigningPublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.to_bytes().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for SigningPublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; PUBLIC_KEY_LEN]>::deserialize(d)?;
            Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(..)")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&text::encode(KeyText::Signature, &self.0))
        } else {
            // serde implements arrays only up to 32 elements; a 64-byte array is a tuple of bytes.
            serde_big_array::serialize(&self.0, s)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let bytes = text::decode(KeyText::Signature, &text)
                .ok_or_else(|| serde::de::Error::custom("invalid signature text"))?;
            let array = bytes
                .as_slice()
                .try_into()
                .map_err(|_| serde::de::Error::custom("signature must be 64 bytes"))?;
            Ok(Self(array))
        } else {
            serde_big_array::deserialize(d).map(Self)
        }
    }
}

/// Serde for byte arrays longer than 32, as fixed-length tuples (postcard: no length prefix).
pub(crate) mod serde_big_array {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};
    use std::fmt;
    use std::marker::PhantomData;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(N)?;
        for b in bytes {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct ArrayVisitor<const N: usize>(PhantomData<[u8; N]>);
        impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(N, ArrayVisitor::<N>(PhantomData))
            .map_err(|e: D::Error| D::Error::custom(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_with_domains() {
        let key = SigningSecretKey::generate();
        let public = key.public_key();
        let sig = key.sign(SignatureDomain::Roster, b"serial 7");
        assert!(
            public
                .verify(SignatureDomain::Roster, b"serial 7", &sig)
                .is_ok()
        );
        assert_eq!(
            public.verify(SignatureDomain::Receipt, b"serial 7", &sig),
            Err(BadSignature)
        );
        assert!(
            public
                .verify(SignatureDomain::Roster, b"serial 8", &sig)
                .is_err()
        );
        let other = SigningSecretKey::generate().public_key();
        assert!(
            other
                .verify(SignatureDomain::Roster, b"serial 7", &sig)
                .is_err()
        );
    }

    #[test]
    fn domain_tags_are_prefix_free() {
        use SignatureDomain::*;
        let all = [
            Roster,
            KeyCertificate,
            Document,
            Receipt,
            DeletionReceipt,
            ShareRequest,
            ShareRelease,
            LogCheckpoint,
            CheckpointCountersignature,
            ForwardConsent,
            DeleteRequest,
            ForwardRequest,
        ];
        for a in all {
            for b in all {
                if a != b {
                    assert!(!a.tag().starts_with(b.tag()), "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn weak_and_invalid_keys_refused() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(SigningPublicKey::from_bytes(&identity).is_err());
    }

    #[test]
    fn text_and_binary_forms_round_trip() {
        let public = SigningSecretKey::generate().public_key();
        let text = public.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.parse::<SigningPublicKey>().unwrap(), public);
        let bytes = crate::codec::encode(&public);
        assert_eq!(bytes.len(), 32);
        let back: SigningPublicKey = crate::codec::decode("key", &bytes, 32).unwrap();
        assert_eq!(back, public);
        let sig = SigningSecretKey::generate().sign(SignatureDomain::Document, b"x");
        let sig_bytes = crate::codec::encode(&sig);
        assert_eq!(sig_bytes.len(), 64);
        let back: Signature = crate::codec::decode("sig", &sig_bytes, 64).unwrap();
        assert_eq!(back, sig);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let key = SigningSecretKey::generate();
        assert_eq!(format!("{key:?}"), "SigningSecretKey(..)");
    }
}
