//! The key that seals the originator's secrets at rest.
//!
//! For a document under originator control the sender's node keeps the share and the masked
//! keys (`originator-control.md`); with the sealed copy in its outbox, the two give every
//! content key. So they never reach the disk in the clear: each is sealed with
//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha; RFC 8439 underneath) under a key derived
//! from the agency's identity key with HKDF-SHA256 (RFC 5869), which lives only in the
//! passphrase-encrypted key file. A stolen disk without the passphrase opens neither.
//!
//! ```text
//! custody_key = HKDF-SHA256(ikm = signing secret key, salt = "liaise custody at rest v1",
//!                           info = "originator secrets", 32)
//! sealed      = nonce (24 random bytes) || XChaCha20-Poly1305(custody_key, nonce,
//!                                          aad = label || "\n" || document id (hex), secret)
//! label       = "share" | "masked-keys"
//! ```
//!
//! The label and document id in the associated data keep a sealed value from being moved to
//! another document or column. Rows written in the clear by an earlier version are sealed at
//! the node's next start ([`super::custody::seal_clear_rows`]).

use anyhow::{Result, anyhow};
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use liaise_keys::signing::SigningSecretKey;
use sha2::Sha256;
use zeroize::Zeroizing;

const SALT: &[u8] = b"liaise custody at rest v1";
const INFO: &[u8] = b"originator secrets";
/// Bytes of nonce in front of each sealed value.
const NONCE_LEN: usize = 24;
/// Bytes of tag after each sealed value.
const TAG_LEN: usize = 16;
/// What a sealed value adds to its secret.
pub const SEALED_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Which secret a sealed value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The originator share.
    Share,
    /// The masked keys.
    MaskedKeys,
}

impl Secret {
    fn label(self) -> &'static str {
        match self {
            Self::Share => "share",
            Self::MaskedKeys => "masked-keys",
        }
    }
}

/// The key sealing the custody secrets of one agency. Wiped on drop.
pub struct CustodyKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CustodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustodyKey(..)")
    }
}

impl CustodyKey {
    /// The key of the agency whose identity key is `signing`.
    pub fn derive(signing: &SigningSecretKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), &*signing.to_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        let _ = hkdf.expand(INFO, &mut *key);
        Self(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// `secret` sealed for document `doc_id` (hex).
    pub fn seal(&self, what: Secret, doc_id: &str, secret: &[u8]) -> Result<Vec<u8>> {
        let nonce = liaise_keys::random::random_bytes::<NONCE_LEN>();
        let mut body = Zeroizing::new(secret.to_vec());
        self.cipher()
            .encrypt_in_place(&XNonce::from(nonce), &aad(what, doc_id), &mut *body)
            .map_err(|_| anyhow!("cannot seal the {} of {doc_id}", what.label()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The secret in `sealed`, if this key sealed it for `what` of `doc_id`.
    pub fn open(&self, what: Secret, doc_id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let refused = || {
            anyhow!(
                "the stored {} of {doc_id} does not open with this agency's key (a store of \
                 another agency, or damaged)",
                what.label()
            )
        };
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN).ok_or_else(refused)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| refused())?;
        let mut plain = Zeroizing::new(body.to_vec());
        self.cipher()
            .decrypt_in_place(&XNonce::from(nonce), &aad(what, doc_id), &mut *plain)
            .map_err(|_| refused())?;
        Ok(plain)
    }
}

fn aad(what: Secret, doc_id: &str) -> Vec<u8> {
    format!("{}\n{doc_id}", what.label()).into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const DOC: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_label_and_document() {
        let signing = SigningSecretKey::generate();
        let key = CustodyKey::derive(&signing);
        let sealed = key.seal(Secret::Share, DOC, &[7u8; 32]).unwrap();
        assert_eq!(sealed.len(), 32 + SEALED_OVERHEAD);
        assert!(!sealed.windows(32).any(|w| w == [7u8; 32]));
        assert_eq!(
            &key.open(Secret::Share, DOC, &sealed).unwrap()[..],
            &[7u8; 32]
        );
        // The same identity key gives the same key (a restarted node opens its rows).
        let again = CustodyKey::derive(&SigningSecretKey::from_bytes(&signing.to_bytes()));
        assert!(again.open(Secret::Share, DOC, &sealed).is_ok());
        // Another agency, another column, another document, a flipped bit, a stub: refused.
        let other = CustodyKey::derive(&SigningSecretKey::generate());
        assert!(other.open(Secret::Share, DOC, &sealed).is_err());
        assert!(key.open(Secret::MaskedKeys, DOC, &sealed).is_err());
        let elsewhere = "ffeeddccbbaa99887766554433221100";
        assert!(key.open(Secret::Share, elsewhere, &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(key.open(Secret::Share, DOC, &flipped).is_err());
        assert!(key.open(Secret::Share, DOC, &sealed[..10]).is_err());
    }
}
