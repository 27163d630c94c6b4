//! Sealed documents: signed, encrypted files with per-recipient and per-section access.
//!
//! See `docs/spec/sealed-document.md`. Entry points: [`seal`], [`open`] (and
//! [`open_in_memory`]), [`verify`]; [`sanitize_file_name`] and [`allowed_signers_line`] for
//! the command line.

mod batch;
mod content_hash;
mod derive;
mod error;
mod filename;
mod forwarded;
mod header;
pub mod limits;
mod list_limit;
mod open;
mod padding;
mod plaintext;
mod seal;
mod share;
mod signer;
pub mod sshsig;
mod stanza;
mod stream;
mod transcript;
mod verify;

#[cfg(test)]
mod custody_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors_gen;

pub use error::{ErrorKind, OpenError, SealError};
pub use filename::sanitize_file_name;
pub use forwarded::{
    FORWARD_MAGIC, FORWARD_VERSION, forward_prefix, is_forwarded, read_forward_prefix,
    seal_forward_stanza,
};
pub use header::{
    DocumentId, DocumentInfo, KeyCustody, RecipientInfo, RecipientPolicy, SectionInfo,
    parse_stored_header, valid_section_name,
};
pub use open::{
    OpenedDocument, OpenedSection, Opener, StagedSection, open, open_in_memory, open_with,
    open_with_share,
};
pub use plaintext::SectionMetadata;
pub use seal::{RecipientSpec, SealRequest, SealedSummary, SectionInput, seal};
pub use share::{OriginatorSecrets, OriginatorShare, SHARE_LEN};
pub use signer::{RosterSignerCheck, SignerCheck, SignerRejected, TrustedSigner};
pub use sshsig::{allowed_signers_line, openssh_fingerprint};
pub use verify::{
    UnverifiedPrefix, danger_read_unverified_header, danger_read_unverified_prefix, verify,
    verify_buffered,
};

/// The 8 bytes every sealed document starts with.
pub const MAGIC: [u8; 8] = [0x4C, 0x49, 0x41, 0x49, 0x53, 0x45, 0xD0, 0x0C];
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Length of the prelude: magic, version, header length.
pub const PRELUDE_LEN: usize = 8 + 2 + 4;
/// Plaintext bytes per STREAM chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
/// Bytes an AEAD tag adds to each chunk.
pub const TAG_LEN: usize = 16;
/// Length of a section commitment in the trailer.
pub const COMMITMENT_LEN: usize = 32;
