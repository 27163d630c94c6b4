//! Forwarded documents (spec: `originator-control.md`, "Forwarding with consent"): the
//! originator's signed consent in front of the unchanged sealed document.
//!
//! ```text
//! forwarded = FORWARD_MAGIC || u16(1) || u32(len(consent)) || consent || sealed document
//! ```

use std::io::Read;

use liaise_keys::{AgencyId, EncryptionPublicKey, HpkeFailure};
use zeroize::Zeroizing;

use crate::sealed::derive::CONTENT_KEY_LEN;
use crate::sealed::error::OpenError;
use crate::sealed::header::DocumentId;
use crate::sealed::stanza::seal_stanza;
use crate::wire::MAX_SIGNED_LEN;

/// The 8 bytes a forwarded document starts with (`LIAISE` and two non-ASCII bytes that differ
/// from a sealed document's).
pub const FORWARD_MAGIC: [u8; 8] = [0x4C, 0x49, 0x41, 0x49, 0x53, 0x45, 0xF0, 0x0D];
/// The forwarded-document version this crate writes and reads.
pub const FORWARD_VERSION: u16 = 1;

/// Whether `start` (at least the first 8 bytes of a file) begins a forwarded document.
pub fn is_forwarded(start: &[u8]) -> bool {
    start.starts_with(&FORWARD_MAGIC)
}

/// The bytes before the sealed document in a forwarded document.
pub fn forward_prefix(consent: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + consent.len());
    out.extend_from_slice(&FORWARD_MAGIC);
    out.extend_from_slice(&FORWARD_VERSION.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(consent.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(consent);
    out
}

/// Reads the prefix of a forwarded document and returns the consent bytes (not yet
/// verified); `input` is then at the start of the sealed document.
pub fn read_forward_prefix<R: Read>(input: &mut R) -> Result<Vec<u8>, OpenError> {
    let mut head = [0u8; 14];
    input.read_exact(&mut head).map_err(OpenError::from_read)?;
    let (magic, rest) = head.split_at(8);
    if magic != FORWARD_MAGIC {
        return Err(OpenError::NotSealedDocument);
    }
    let (version, len) = rest.split_at(2);
    let version = u16::from_be_bytes([
        version.first().copied().unwrap_or(0),
        version.get(1).copied().unwrap_or(0),
    ]);
    if version != FORWARD_VERSION {
        return Err(OpenError::UnsupportedVersion { version });
    }
    let len = len.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if len > MAX_SIGNED_LEN as u64 {
        return Err(OpenError::LimitExceeded {
            what: "forwarding consent",
            len,
            max: MAX_SIGNED_LEN as u64,
        });
    }
    let mut consent = Vec::new();
    input
        .take(len)
        .read_to_end(&mut consent)
        .map_err(OpenError::from_read)?;
    if (consent.len() as u64) < len {
        return Err(OpenError::Truncated);
    }
    Ok(consent)
}

/// Seals a stanza of masked section keys to a new reader (the originator, consenting to a
/// forward). Returns `(enc, ciphertext)` as in a sealed document's stanza.
pub fn seal_forward_stanza(
    recipient_key: &EncryptionPublicKey,
    document_id: [u8; 16],
    agency: &AgencyId,
    masked: &[(u8, Zeroizing<[u8; CONTENT_KEY_LEN]>)],
) -> Result<(Vec<u8>, Vec<u8>), HpkeFailure> {
    let keys: Vec<(u8, &Zeroizing<[u8; CONTENT_KEY_LEN]>)> =
        masked.iter().map(|(i, k)| (*i, k)).collect();
    let stanza = seal_stanza(recipient_key, &DocumentId(document_id), agency, &keys)?;
    Ok((stanza.enc, stanza.ciphertext))
}
