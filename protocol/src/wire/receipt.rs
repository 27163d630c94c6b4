//! Delivery receipts: the receiving agency's signed statement that it durably holds a
//! document.
//!
//! ```text
//! signed message = "liaise receipt v1\n" || body
//! body           = postcard ReceiptBody (version first)
//! receipt        = postcard { body: bytes, signature: [u8; 64] }
//! ```
//!
//! The signature covers the exact body bytes; a verifier never re-encodes the body.

use serde::{Deserialize, Serialize};

use liaise_keys::codec;
use liaise_keys::{
    AgencyId, Signature, SignatureDomain, SigningPublicKey, SigningSecretKey, Timestamp,
};

/// The receipt body version this crate writes and reads.
pub const RECEIPT_VERSION: u8 = 1;
/// The largest encoded receipt.
pub const MAX_RECEIPT_LEN: usize = 1024;

/// What a receipt states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// Always [`RECEIPT_VERSION`].
    pub version: u8,
    /// The document id.
    pub document_id: [u8; 16],
    /// The content hash (BLAKE3, `wire.md`) of the whole sealed document as stored.
    pub content_hash: [u8; 32],
    /// Its length.
    pub sealed_len: u64,
    /// The agency that sent it (the authenticated peer, and the sealed document's sender).
    pub sender: AgencyId,
    /// The agency that received it and signs this receipt.
    pub recipient: AgencyId,
    /// When the receiver stored it durably (its clock).
    pub received_at: Timestamp,
}

/// A receipt as it travels and is kept: the body bytes and the recipient's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    body: Vec<u8>,
    signature: Signature,
}

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The receipt bytes do not decode.
    #[error("receipt is malformed")]
    Malformed,
    /// The body has another version.
    #[error("receipt version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The signature does not verify, or the receipt is about another document, content,
    /// sender or recipient than expected. Deliberately coarse.
    #[error("receipt verification failed")]
    VerificationFailed,
}

impl SignedReceipt {
    /// Signs a receipt body with the recipient's signing key.
    pub fn sign(body: &ReceiptBody, key: &SigningSecretKey) -> Self {
        let body = codec::encode(body);
        let signature = key.sign(SignatureDomain::Receipt, &body);
        Self { body, signature }
    }

    /// The encoding that travels in [`super::Message::Receipt`] and is stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses an encoded receipt (not yet verified).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        codec::decode("receipt", bytes, MAX_RECEIPT_LEN).map_err(|_| ReceiptError::Malformed)
    }

    /// The body, parsed but NOT verified: for display of a receipt already verified and stored.
    pub fn body_unverified(&self) -> Result<ReceiptBody, ReceiptError> {
        if let Some(version) = codec::leading_version(&self.body)
            && version != RECEIPT_VERSION
        {
            return Err(ReceiptError::UnsupportedVersion(version));
        }
        let body: ReceiptBody = codec::decode("receipt body", &self.body, MAX_RECEIPT_LEN)
            .map_err(|_| ReceiptError::Malformed)?;
        Ok(body)
    }

    /// Verifies the signature with the recipient's signing key (looked up in the roster by
    /// the caller) and returns the body.
    pub fn verify(&self, recipient_key: &SigningPublicKey) -> Result<ReceiptBody, ReceiptError> {
        let body = self.body_unverified()?;
        recipient_key
            .verify(SignatureDomain::Receipt, &self.body, &self.signature)
            .map_err(|_| ReceiptError::VerificationFailed)?;
        Ok(body)
    }

    /// Verifies the signature and that the receipt is about exactly this delivery.
    pub fn verify_for(
        &self,
        recipient_key: &SigningPublicKey,
        document_id: &[u8; 16],
        content_hash: &[u8; 32],
        sealed_len: u64,
        sender: &AgencyId,
        recipient: &AgencyId,
    ) -> Result<ReceiptBody, ReceiptError> {
        let body = self.verify(recipient_key)?;
        let matches = &body.document_id == document_id
            && &body.content_hash == content_hash
            && body.sealed_len == sealed_len
            && &body.sender == sender
            && &body.recipient == recipient;
        if !matches {
            return Err(ReceiptError::VerificationFailed);
        }
        Ok(body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn body() -> ReceiptBody {
        ReceiptBody {
            version: RECEIPT_VERSION,
            document_id: [3; 16],
            content_hash: [4; 32],
            sealed_len: 12345,
            sender: AgencyId::new("nl.probation.utrecht").unwrap(),
            recipient: AgencyId::new("nl.court.utrecht").unwrap(),
            received_at: Timestamp(1_800_000_000),
        }
    }

    #[test]
    fn sign_verify_and_bind() {
        let key = SigningSecretKey::generate();
        let b = body();
        let receipt = SignedReceipt::sign(&b, &key);
        let bytes = receipt.to_bytes();
        assert!(bytes.len() <= MAX_RECEIPT_LEN);
        let back = SignedReceipt::from_bytes(&bytes).unwrap();
        let pk = key.public_key();
        assert_eq!(
            back.verify_for(
                &pk,
                &b.document_id,
                &b.content_hash,
                b.sealed_len,
                &b.sender,
                &b.recipient
            )
            .unwrap(),
            b
        );
        // Another document, hash, length, sender or recipient: refused.
        let (id, hash, len) = (&b.document_id, &b.content_hash, b.sealed_len);
        let (from, to) = (&b.sender, &b.recipient);
        assert!(back.verify_for(&pk, &[0; 16], hash, len, from, to).is_err());
        assert!(back.verify_for(&pk, id, &[0; 32], len, from, to).is_err());
        assert!(back.verify_for(&pk, id, hash, len + 1, from, to).is_err());
        assert!(back.verify_for(&pk, id, hash, len - 1, from, to).is_err());
        assert!(back.verify_for(&pk, id, hash, len, to, to).is_err());
        assert!(back.verify_for(&pk, id, hash, len, from, from).is_err());
        // Another key: refused.
        assert_eq!(
            back.verify(&SigningSecretKey::generate().public_key()),
            Err(ReceiptError::VerificationFailed)
        );
    }

    #[test]
    fn flipped_bytes_fail() {
        let key = SigningSecretKey::generate();
        let bytes = SignedReceipt::sign(&body(), &key).to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let ok = SignedReceipt::from_bytes(&bad)
                .and_then(|r| r.verify(&key.public_key()))
                .is_ok();
            assert!(!ok, "flip at {i} accepted");
        }
        for cut in 0..bytes.len() {
            assert!(SignedReceipt::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn receipt_signature_is_not_a_document_signature() {
        let key = SigningSecretKey::generate();
        let receipt = SignedReceipt::sign(&body(), &key);
        assert!(
            key.public_key()
                .verify(SignatureDomain::Document, &receipt.body, &receipt.signature)
                .is_err()
        );
    }

    /// A body of a later version may have another layout: it is named unsupported from its
    /// leading version byte, not reported as malformed.
    #[test]
    fn a_later_version_is_named_whatever_its_layout() {
        let key = SigningSecretKey::generate();
        let signed = |body: Vec<u8>| SignedReceipt {
            signature: key.sign(SignatureDomain::Receipt, &body),
            body,
        };
        let later = signed(vec![RECEIPT_VERSION + 1, 0xff, 0xff, 0xff]);
        let unsupported = Err(ReceiptError::UnsupportedVersion(RECEIPT_VERSION + 1));
        assert_eq!(later.body_unverified(), unsupported);
        assert_eq!(later.verify(&key.public_key()), unsupported);
        let garbled = signed(vec![RECEIPT_VERSION, 0xff, 0xff, 0xff]);
        assert_eq!(garbled.body_unverified(), Err(ReceiptError::Malformed));
        assert_eq!(
            signed(Vec::new()).body_unverified(),
            Err(ReceiptError::Malformed)
        );
    }
}
