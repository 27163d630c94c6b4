//! Key derivations and commitments of a section (spec: "Key derivations").
//!
//! ```text
//! payload_key[i] = HKDF-SHA256(content_key[i], document_id, "liaise sealed-document payload v1\n" || u8(i), 32)
//! commit_key[i]  = HKDF-SHA256(content_key[i], document_id, "liaise sealed-document commitment v1\n" || u8(i), 32)
//! commitment[i]  = HMAC-SHA256(commit_key[i], committed[i])
//! ```
//!
//! `committed[i]` is the section plaintext with its content replaced by the content's SHA-256
//! and its zero padding by the padding's length (see `plaintext::committed`).

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::sealed::COMMITMENT_LEN;

/// Length of a section's content key.
pub(crate) const CONTENT_KEY_LEN: usize = 32;

const PAYLOAD_INFO: &[u8] = b"liaise sealed-document payload v1\n";
const COMMIT_INFO: &[u8] = b"liaise sealed-document commitment v1\n";

/// A section's random content key. Wiped on drop.
pub(crate) type ContentKey = Zeroizing<[u8; CONTENT_KEY_LEN]>;

/// A fresh content key from the OS random number generator.
pub(crate) fn random_content_key() -> ContentKey {
    Zeroizing::new(liaise_keys::random::random_bytes::<CONTENT_KEY_LEN>())
}

/// The STREAM key of section `index`.
pub(crate) fn payload_key(
    content_key: &ContentKey,
    document_id: &[u8; 16],
    index: u8,
) -> Zeroizing<[u8; 32]> {
    expand(content_key, document_id, PAYLOAD_INFO, index)
}

/// The commitment of section `index` to `committed` (see the module docs).
pub(crate) fn commitment(
    content_key: &ContentKey,
    document_id: &[u8; 16],
    index: u8,
    committed: &[u8],
) -> [u8; COMMITMENT_LEN] {
    let key = expand(content_key, document_id, COMMIT_INFO, index);
    // HMAC pads a key shorter than the 64-byte block with zeros (RFC 2104 §2); doing it here
    // lets us use the infallible fixed-size constructor.
    let mut block = Zeroizing::new([0u8; 64]);
    for (slot, byte) in block.iter_mut().zip(key.iter()) {
        *slot = *byte;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*block).into());
    mac.update(committed);
    mac.finalize().into_bytes().into()
}

fn expand(
    content_key: &ContentKey,
    document_id: &[u8; 16],
    label: &[u8],
    index: u8,
) -> Zeroizing<[u8; 32]> {
    let hkdf = Hkdf::<Sha256>::new(Some(document_id), &content_key[..]);
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte maximum, so expansion cannot fail.
    let _ = hkdf.expand_multi_info(&[label, &[index]], &mut okm[..]);
    okm
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn derivations_are_distinct_and_deterministic() {
        let key = Zeroizing::new([7u8; 32]);
        let id = [1u8; 16];
        assert_eq!(*payload_key(&key, &id, 0), *payload_key(&key, &id, 0));
        assert_ne!(*payload_key(&key, &id, 0), *payload_key(&key, &id, 1));
        assert_ne!(
            *payload_key(&key, &id, 0),
            *payload_key(&key, &[2u8; 16], 0)
        );
        let a = commitment(&key, &id, 0, b"plaintext");
        assert_eq!(a, commitment(&key, &id, 0, b"plaintext"));
        assert_ne!(a, commitment(&key, &id, 1, b"plaintext"));
        assert_ne!(a, commitment(&key, &id, 0, b"plaintexT"));
        assert_ne!(
            a,
            commitment(&Zeroizing::new([8u8; 32]), &id, 0, b"plaintext")
        );
        // HMAC with the zero-padded block key equals HMAC with the 32-byte key (RFC 2104).
        let ck = expand(&key, &id, COMMIT_INFO, 0);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&ck[..]).unwrap();
        mac.update(b"plaintext");
        assert_eq!(a, <[u8; 32]>::from(mac.finalize().into_bytes()));
    }

    #[test]
    fn matches_rfc5869_construction() {
        // HKDF-SHA256 with info = label || index, recomputed by hand with HMAC (RFC 5869 §2).
        let key = Zeroizing::new([9u8; 32]);
        let id = [3u8; 16];
        let mut extract = <Hmac<Sha256> as KeyInit>::new_from_slice(&id).unwrap();
        extract.update(&key[..]);
        let prk = extract.finalize().into_bytes();
        let mut expand = <Hmac<Sha256> as KeyInit>::new_from_slice(&prk).unwrap();
        expand.update(PAYLOAD_INFO);
        expand.update(&[2u8]);
        expand.update(&[1u8]);
        let t1: [u8; 32] = expand.finalize().into_bytes().into();
        assert_eq!(*payload_key(&key, &id, 2), t1);
    }
}
