//! The originator share: the part of every key that the sender's node keeps for documents
//! under originator control (spec: "Stanza", "Key custody").
//!
//! ```text
//! share_mask[i]  = HKDF-SHA256(originator_share, document_id, "liaise sealed-document share v1\n" || u8(i), 32)
//! masked_key[i]  = content_key[i] XOR share_mask[i]
//! ```

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::sealed::derive::{CONTENT_KEY_LEN, ContentKey};
use crate::sealed::header::DocumentId;

/// Length of an originator share.
pub const SHARE_LEN: usize = 32;

const SHARE_INFO: &[u8] = b"liaise sealed-document share v1\n";

/// The 32-byte secret the originator's node keeps per document. Wiped on drop; never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct OriginatorShare(Zeroizing<[u8; SHARE_LEN]>);

impl OriginatorShare {
    /// A fresh share from the OS random number generator.
    pub fn random() -> Self {
        Self(Zeroizing::new(
            liaise_keys::random::random_bytes::<SHARE_LEN>(),
        ))
    }

    /// A share from its bytes (as stored, or as unwrapped from a release).
    pub fn from_bytes(bytes: [u8; SHARE_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A share from a slice of exactly [`SHARE_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; SHARE_LEN] = bytes.try_into().ok()?;
        Some(Self::from_bytes(array))
    }

    /// The secret bytes, to store or to wrap for a reader.
    pub fn expose_bytes(&self) -> &[u8; SHARE_LEN] {
        &self.0
    }

    /// `key XOR share_mask[index]`: masks a content key, or unmasks a masked one.
    pub(crate) fn apply(
        &self,
        document_id: &DocumentId,
        index: u8,
        key: &[u8; CONTENT_KEY_LEN],
    ) -> ContentKey {
        let hkdf = Hkdf::<Sha256>::new(Some(&document_id.0), &self.0[..]);
        let mut out = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte maximum, so expansion cannot fail.
        let _ = hkdf.expand_multi_info(&[SHARE_INFO, &[index]], &mut out[..]);
        for (o, k) in out.iter_mut().zip(key.iter()) {
            *o ^= *k;
        }
        out
    }
}

impl fmt::Debug for OriginatorShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OriginatorShare(..)")
    }
}

/// What the sender's node keeps for a document under originator control: the share and the
/// masked key of every section (what a stanza for a new reader holds).
#[derive(Clone)]
pub struct OriginatorSecrets {
    /// The share.
    pub share: OriginatorShare,
    /// `(index, masked_key[index])` for every section, ascending.
    pub masked_keys: Vec<(u8, Zeroizing<[u8; CONTENT_KEY_LEN]>)>,
}

impl fmt::Debug for OriginatorSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OriginatorSecrets({} sections, ..)",
            self.masked_keys.len()
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masking_is_an_involution_bound_to_id_and_index() {
        let share = OriginatorShare::from_bytes([5; 32]);
        let id = DocumentId([1; 16]);
        let key = [9u8; 32];
        let masked = share.apply(&id, 0, &key);
        assert_ne!(*masked, key);
        assert_eq!(*share.apply(&id, 0, &masked), key);
        assert_ne!(*share.apply(&id, 1, &key), *masked);
        assert_ne!(*share.apply(&DocumentId([2; 16]), 0, &key), *masked);
        let other = OriginatorShare::from_bytes([6; 32]);
        assert_ne!(*other.apply(&id, 0, &masked), key);
        assert_eq!(format!("{share:?}"), "OriginatorShare(..)");
        assert!(OriginatorShare::from_slice(&[0; 31]).is_none());
    }
}
