//! Per-recipient stanzas: the section keys a recipient may use, wrapped with HPKE (RFC 9180)
//! to its encryption key (spec: "Stanza").
//!
//! ```text
//! stanza_info  = "liaise sealed-document stanza v1\n" || document_id
//! stanza_aad   = recipient agency id
//! stanza_plain = for each readable section i, ascending: u8(i) || content_key[i]
//! ```

use liaise_keys::{AgencyId, EncryptionPublicKey, EncryptionSecretKey, HpkeFailure};
use zeroize::Zeroizing;

use crate::sealed::derive::{CONTENT_KEY_LEN, ContentKey};
use crate::sealed::error::OpenError;
use crate::sealed::header::{DocumentId, Stanza};

const STANZA_INFO: &[u8] = b"liaise sealed-document stanza v1\n";
/// Bytes per section in a stanza's plaintext: the index and the key.
const ENTRY_LEN: usize = 1 + CONTENT_KEY_LEN;
/// HPKE's ChaCha20-Poly1305 tag.
const HPKE_TAG_LEN: usize = 16;

/// The stanza ciphertext length for a recipient that may read `sections` sections.
pub(crate) fn stanza_ciphertext_len(sections: usize) -> usize {
    sections
        .saturating_mul(ENTRY_LEN)
        .saturating_add(HPKE_TAG_LEN)
}

fn info(document_id: &DocumentId) -> Vec<u8> {
    let mut info = STANZA_INFO.to_vec();
    info.extend_from_slice(&document_id.0);
    info
}

/// Wraps `keys` (section index and content key, ascending) to `recipient`.
pub(crate) fn seal_stanza(
    recipient_key: &EncryptionPublicKey,
    document_id: &DocumentId,
    agency: &AgencyId,
    keys: &[(u8, &ContentKey)],
) -> Result<Stanza, HpkeFailure> {
    let mut plain = Zeroizing::new(Vec::with_capacity(keys.len() * ENTRY_LEN));
    for (index, key) in keys {
        plain.push(*index);
        plain.extend_from_slice(&key[..]);
    }
    let (enc, ciphertext) =
        recipient_key.seal(&info(document_id), agency.as_str().as_bytes(), &plain)?;
    Ok(Stanza { enc, ciphertext })
}

/// Unwraps a stanza; the indices inside must be exactly `expected`. Any failure is the
/// coarse [`OpenError::VerificationFailed`].
pub(crate) fn open_stanza(
    secret: &EncryptionSecretKey,
    document_id: &DocumentId,
    agency: &AgencyId,
    stanza: &Stanza,
    expected: &[u8],
) -> Result<Vec<(u8, ContentKey)>, OpenError> {
    let plain = secret
        .open(
            &stanza.enc,
            &info(document_id),
            agency.as_str().as_bytes(),
            &stanza.ciphertext,
        )
        .map_err(|_| OpenError::VerificationFailed)?;
    if plain.len() != expected.len() * ENTRY_LEN {
        return Err(OpenError::VerificationFailed);
    }
    let mut keys = Vec::with_capacity(expected.len());
    for (entry, want) in plain.chunks_exact(ENTRY_LEN).zip(expected) {
        let (index, key) = entry.split_first().ok_or(OpenError::VerificationFailed)?;
        if index != want {
            return Err(OpenError::VerificationFailed);
        }
        let mut content_key = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
        content_key.copy_from_slice(key);
        keys.push((*index, content_key));
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use liaise_keys::KemAlgorithm;

    #[test]
    fn round_trip_and_binding() {
        for kem in [KemAlgorithm::XWing, KemAlgorithm::X25519] {
            let secret = EncryptionSecretKey::generate(kem);
            let id = DocumentId([1; 16]);
            let court = AgencyId::new("nl.court.utrecht").unwrap();
            let city = AgencyId::new("nl.city.utrecht").unwrap();
            let k0 = Zeroizing::new([10u8; 32]);
            let k2 = Zeroizing::new([12u8; 32]);
            let stanza =
                seal_stanza(secret.public_key(), &id, &court, &[(0, &k0), (2, &k2)]).unwrap();
            assert_eq!(stanza.enc.len(), kem.encapped_len());
            assert_eq!(stanza.ciphertext.len(), stanza_ciphertext_len(2));
            let keys = open_stanza(&secret, &id, &court, &stanza, &[0, 2]).unwrap();
            assert_eq!(keys.len(), 2);
            assert_eq!(*keys[1].1, [12u8; 32]);
            // Another agency, another document, another claimed section list: all fail.
            assert!(open_stanza(&secret, &id, &city, &stanza, &[0, 2]).is_err());
            assert!(open_stanza(&secret, &DocumentId([2; 16]), &court, &stanza, &[0, 2]).is_err());
            assert!(open_stanza(&secret, &id, &court, &stanza, &[0, 1]).is_err());
            assert!(open_stanza(&secret, &id, &court, &stanza, &[0]).is_err());
            let other = EncryptionSecretKey::generate(kem);
            assert!(open_stanza(&other, &id, &court, &stanza, &[0, 2]).is_err());
        }
    }
}
