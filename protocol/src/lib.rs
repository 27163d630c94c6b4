//! The sealed-document format and the wire messages of Liaise.
//!
//! This crate is pure: it never opens a file, a socket or reads the clock. Streaming APIs take
//! caller-supplied readers and writers, and `now` is always a parameter. The format is
//! specified in `docs/spec/sealed-document.md`; the code follows the spec.
#![forbid(unsafe_code)]

pub use liaise_keys::codec;

pub mod sealed;
pub mod wire;

pub use sealed::{
    DocumentId, DocumentInfo, ErrorKind, OpenError, OpenedDocument, OpenedSection, RecipientInfo,
    RecipientPolicy, RecipientSpec, SealError, SealRequest, SealedSummary, SectionInfo,
    SectionInput, SectionMetadata, SignerCheck, SignerRejected, StagedSection, TrustedSigner,
    allowed_signers_line, danger_read_unverified_header, open, open_in_memory, sanitize_file_name,
    seal, verify,
};
