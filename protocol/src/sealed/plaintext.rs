//! The plaintext of one section, before padding and encryption (spec: "Section plaintext").
//!
//! ```text
//! u16(len(metadata)) || metadata || u64(len(content)) || content || u16(len(sshsig)) || sshsig || zeros
//! ```

use liaise_keys::codec;
use serde::{Deserialize, Serialize};

use crate::sealed::error::OpenError;
use crate::sealed::header::{Violation, check_text};
use crate::sealed::limits::{
    MAX_FILE_NAME_LEN, MAX_MEDIA_TYPE_LEN, MAX_METADATA_LEN, MAX_TITLE_LEN,
};
use crate::sealed::padding::padme;
use crate::sealed::sshsig::SSHSIG_LEN;

/// Bytes of framing around metadata, content and SSHSIG: three length fields.
pub(crate) const FRAMING_LEN: u64 = 2 + 8 + 2;

/// What a section says about its content, encrypted with it (never in the clear).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionMetadata {
    /// The sender's file name, e.g. `report.pdf`. A claim: see
    /// [`crate::sanitize_file_name`] before using it on a file system.
    pub file_name: String,
    /// The media type, e.g. `application/pdf`, or empty.
    pub media_type: String,
    /// A title for people, or empty.
    pub title: String,
}

impl SectionMetadata {
    /// Checks the limits of the spec.
    pub(crate) fn validate(&self) -> Result<(), Violation> {
        check_text("file name", &self.file_name, 0, MAX_FILE_NAME_LEN)?;
        check_text("media type", &self.media_type, 0, MAX_MEDIA_TYPE_LEN)?;
        check_text("title", &self.title, 0, MAX_TITLE_LEN)?;
        Ok(())
    }

    /// The encoded metadata (at most [`MAX_METADATA_LEN`] bytes once validated).
    pub(crate) fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes and validates metadata from a decrypted section. The bytes were authenticated,
    /// so a failure here means the sender wrote a bad document: a verification failure.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, OpenError> {
        let meta: Self = codec::decode("section metadata", bytes, MAX_METADATA_LEN)
            .map_err(|_| OpenError::VerificationFailed)?;
        meta.validate().map_err(|_| OpenError::VerificationFailed)?;
        Ok(meta)
    }
}

/// What a section's commitment covers: its plaintext with the content replaced by the
/// content's SHA-256 and the zero padding by its length, which determines the padded
/// plaintext completely (spec: "commitments").
pub(crate) fn committed(
    metadata: &[u8],
    content_len: u64,
    content_sha256: &[u8; 32],
    sshsig: &[u8],
    padding_len: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(metadata.len() + sshsig.len() + 64);
    out.extend_from_slice(
        &u16::try_from(metadata.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(metadata);
    out.extend_from_slice(&content_len.to_be_bytes());
    out.extend_from_slice(content_sha256);
    out.extend_from_slice(
        &u16::try_from(sshsig.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(sshsig);
    out.extend_from_slice(&padding_len.to_be_bytes());
    out
}

/// The unpadded plaintext length of a section.
pub(crate) fn unpadded_len(metadata_len: usize, content_len: u64) -> u64 {
    FRAMING_LEN
        .saturating_add(metadata_len as u64)
        .saturating_add(content_len)
        .saturating_add(SSHSIG_LEN as u64)
}

/// The padded plaintext length of a section with `metadata_len` bytes of metadata and
/// `content_len` bytes of content.
pub(crate) fn padded_len(metadata_len: usize, content_len: u64) -> u64 {
    padme(unpadded_len(metadata_len, content_len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sealed::limits::MAX_FILE_NAME_LEN;

    #[test]
    fn metadata_round_trip_and_limits() {
        let meta = SectionMetadata {
            file_name: "x".repeat(MAX_FILE_NAME_LEN),
            media_type: "m".repeat(MAX_MEDIA_TYPE_LEN),
            title: "t".repeat(MAX_TITLE_LEN),
        };
        assert!(meta.validate().is_ok());
        let bytes = meta.encode();
        assert!(bytes.len() <= MAX_METADATA_LEN);
        assert_eq!(SectionMetadata::decode(&bytes).unwrap(), meta);
        for cut in 0..bytes.len() {
            assert!(SectionMetadata::decode(&bytes[..cut]).is_err());
        }
        let mut long = meta.clone();
        long.file_name.push('x');
        assert!(long.validate().is_err());
        let mut long = meta.clone();
        long.media_type.push('x');
        assert!(long.validate().is_err());
        let mut long = meta;
        long.title.push('x');
        assert!(long.validate().is_err());
        let control = SectionMetadata {
            title: "a\u{7}".into(),
            ..Default::default()
        };
        assert!(control.validate().is_err());
    }
}
