//! Evidence bundles: everything a court needs to check, offline and without a private key,
//! what happened to one sealed document (spec: `docs/spec/evidence.md`).
//!
//! ```text
//! bundle = magic || u16be(version) || u32be(len(meta)) || meta || sealed document
//! meta   = postcard EvidenceMeta
//! ```
//!
//! Every byte is authenticated: the sealed document by its signature, receipts by theirs,
//! log entries by the exporter's hash chain up to a signed, countersigned checkpoint.

mod verify;

use serde::{Deserialize, Serialize};

use liaise_keys::AgencyId;
use liaise_keys::codec;

use crate::log::ChainSegment;

pub use verify::{AnchorReport, EvidenceError, EvidenceReport, ReceiptReport, verify_bundle};

/// The 8 bytes every bundle starts with.
pub const EVIDENCE_MAGIC: [u8; 8] = [0x4C, 0x49, 0x41, 0x49, 0x53, 0x45, 0xE5, 0x1D];
/// The bundle version this crate writes and reads.
pub const EVIDENCE_VERSION: u16 = 1;
/// Bytes before the meta: magic, version, meta length.
pub const EVIDENCE_PRELUDE_LEN: usize = 8 + 2 + 4;
/// The largest meta section (64 MiB).
pub const MAX_EVIDENCE_META_LEN: usize = 64 * 1024 * 1024;

/// What a bundle says besides the sealed document, which follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceMeta {
    /// The agency whose log the anchors come from.
    pub exporter: AgencyId,
    /// The document.
    pub document_id: [u8; 16],
    /// SHA-256 of the sealed document that follows.
    pub content_hash: [u8; 32],
    /// Its length.
    pub sealed_len: u64,
    /// Signed delivery receipts (`wire.md`), as stored.
    pub receipts: Vec<Vec<u8>>,
    /// Signed deletion receipts (`originator-control.md`), as stored.
    pub deletion_receipts: Vec<Vec<u8>>,
    /// The exporter's log entries about the document, each proven below a checkpoint.
    pub anchors: Vec<Anchor>,
}

/// Log entries proven below one checkpoint of the exporter's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The exporter's signed checkpoint.
    pub checkpoint: Vec<u8>,
    /// Peers' countersignatures of it.
    pub countersignatures: Vec<Vec<u8>>,
    /// The chain from before the first disclosed entry up to the checkpoint.
    pub segment: ChainSegment,
}

/// The bytes of a bundle before the sealed document: write these, then the document.
pub fn bundle_prefix(meta: &EvidenceMeta) -> Vec<u8> {
    let body = codec::encode(meta);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(EVIDENCE_PRELUDE_LEN + body.len());
    out.extend_from_slice(&EVIDENCE_MAGIC);
    out.extend_from_slice(&EVIDENCE_VERSION.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}
