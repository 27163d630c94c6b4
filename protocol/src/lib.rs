//! The sealed-document format and the wire messages of Liaise.
//!
//! This crate is pure: it never opens a file, a socket or reads the clock. Streaming APIs take
//! caller-supplied readers and writers, and `now` is always a parameter. The format is
//! specified in `docs/spec/sealed-document.md`; the code follows the spec.
#![forbid(unsafe_code)]

pub use liaise_keys::codec;

pub mod evidence;
pub mod log;
pub mod sealed;
pub mod text;
pub mod wire;

pub use sealed::{
    DocumentId, DocumentInfo, ErrorKind, KeyCustody, OpenError, OpenedDocument, OpenedSection,
    OriginatorSecrets, OriginatorShare, RecipientInfo, RecipientPolicy, RecipientSpec,
    RosterSignerCheck, SealError, SealRequest, SealedSummary, SectionInfo, SectionInput,
    SectionMetadata, SignerCheck, SignerRejected, StagedSection, TrustedSigner, UnverifiedPrefix,
    allowed_signers_line, danger_read_unverified_header, danger_read_unverified_prefix, open,
    open_in_memory, open_with_share, openssh_fingerprint, parse_stored_header, sanitize_file_name,
    seal, verify, verify_buffered,
};
pub use sealed::{
    FORWARD_MAGIC, Opener, forward_prefix, is_forwarded, open_with, read_forward_prefix,
    seal_forward_stanza,
};
