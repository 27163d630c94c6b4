//! Evidence bundles: everything a court needs to check, offline and without a private key,
//! what happened to one sealed document (spec: `docs/spec/evidence.md`).
//!
//! ```text
//! bundle = magic || u16be(version) || u32be(len(meta)) || meta || document
//! document = a sealed document, or a forwarded document (consent || sealed document)
//! meta   = postcard EvidenceMeta
//! ```
//!
//! Every byte is authenticated: the sealed document by its signature, receipts by theirs,
//! log entries by the exporter's hash chain up to a signed, countersigned checkpoint.

mod verify;

use serde::{Deserialize, Serialize};

use liaise_keys::AgencyId;
use liaise_keys::codec;

use liaise_keys::roster::MAX_MEMBERS;

use crate::log::{ChainSegment, MAX_CHECKPOINT_LEN, MAX_COUNTERSIGNATURE_LEN};
use crate::wire::{MAX_RECEIPT_LEN, MAX_SIGNED_LEN};

pub use verify::{AnchorReport, EvidenceError, EvidenceReport, ReceiptReport, verify_bundle};

/// The 8 bytes every bundle starts with.
pub const EVIDENCE_MAGIC: [u8; 8] = [0x4C, 0x49, 0x41, 0x49, 0x53, 0x45, 0xE5, 0x1D];
/// The bundle version this crate writes when the exporter forwarded no copy of the document,
/// and reads: [`EvidenceMeta`] without `forward_consents`.
pub const EVIDENCE_VERSION: u16 = 1;
/// The bundle version with [`EvidenceMeta::forward_consents`], written when there are some.
pub const EVIDENCE_VERSION_FORWARDS: u16 = 2;
/// Bytes before the meta: magic, version, meta length.
pub const EVIDENCE_PRELUDE_LEN: usize = 8 + 2 + 4;
/// The largest meta section (64 MiB).
pub const MAX_EVIDENCE_META_LEN: usize = 64 * 1024 * 1024;
/// The most forward consents in a bundle: one per new reader, and a roster has at most this
/// many members. Each costs the verifier a hash of the whole document.
pub const MAX_FORWARD_CONSENTS: usize = MAX_MEMBERS;
/// The most delivery receipts, and the most deletion receipts, in a bundle: one per recipient
/// and one per forwarded copy.
pub const MAX_EVIDENCE_RECEIPTS: usize =
    crate::sealed::limits::MAX_RECIPIENTS + MAX_FORWARD_CONSENTS;
/// The most anchors (checkpoints with the entries below them) in a bundle.
pub const MAX_EVIDENCE_ANCHORS: usize = 65_536;
/// The shortest signed structure (receipt, consent, checkpoint, countersignature) a bundle
/// decodes: each carries a 64-byte Ed25519 signature.
pub const MIN_SIGNED_LEN: usize = 64;

/// What a bundle says besides the sealed document, which follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceMeta {
    /// The agency whose log the anchors come from.
    pub exporter: AgencyId,
    /// The document.
    pub document_id: [u8; 16],
    /// The content hash (BLAKE3) of the document that follows.
    pub content_hash: [u8; 32],
    /// Its length.
    pub sealed_len: u64,
    /// Signed delivery receipts (`wire.md`), as stored.
    #[serde(
        deserialize_with = "codec::bounded::byte_strings::<_, MAX_EVIDENCE_RECEIPTS, MIN_SIGNED_LEN, MAX_RECEIPT_LEN>"
    )]
    pub receipts: Vec<Vec<u8>>,
    /// Signed deletion receipts (`originator-control.md`), as stored.
    #[serde(
        deserialize_with = "codec::bounded::byte_strings::<_, MAX_EVIDENCE_RECEIPTS, MIN_SIGNED_LEN, MAX_SIGNED_LEN>"
    )]
    pub deletion_receipts: Vec<Vec<u8>>,
    /// The exporter's log entries about the document, each proven below a checkpoint.
    #[serde(deserialize_with = "codec::bounded::vec::<_, Anchor, MAX_EVIDENCE_ANCHORS>")]
    pub anchors: Vec<Anchor>,
    /// The originator's signed consents (`originator-control.md`) for the copies the exporter
    /// forwarded, one per new reader, in the order of their new readers' ids: the delivery
    /// receipts for those copies name their hash, which a verifier recomputes from the consent
    /// and the sealed document. Version 2 only, at most [`MAX_FORWARD_CONSENTS`].
    #[serde(
        deserialize_with = "codec::bounded::byte_strings::<_, MAX_FORWARD_CONSENTS, MIN_SIGNED_LEN, MAX_SIGNED_LEN>"
    )]
    pub forward_consents: Vec<Vec<u8>>,
}

/// [`EvidenceMeta`] as version 1 encodes it: without `forward_consents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EvidenceMetaV1 {
    pub exporter: AgencyId,
    pub document_id: [u8; 16],
    pub content_hash: [u8; 32],
    pub sealed_len: u64,
    #[serde(
        deserialize_with = "codec::bounded::byte_strings::<_, MAX_EVIDENCE_RECEIPTS, MIN_SIGNED_LEN, MAX_RECEIPT_LEN>"
    )]
    pub receipts: Vec<Vec<u8>>,
    #[serde(
        deserialize_with = "codec::bounded::byte_strings::<_, MAX_EVIDENCE_RECEIPTS, MIN_SIGNED_LEN, MAX_SIGNED_LEN>"
    )]
    pub deletion_receipts: Vec<Vec<u8>>,
    #[serde(deserialize_with = "codec::bounded::vec::<_, Anchor, MAX_EVIDENCE_ANCHORS>")]
    pub anchors: Vec<Anchor>,
}

impl From<EvidenceMetaV1> for EvidenceMeta {
    fn from(v1: EvidenceMetaV1) -> Self {
        Self {
            exporter: v1.exporter,
            document_id: v1.document_id,
            content_hash: v1.content_hash,
            sealed_len: v1.sealed_len,
            receipts: v1.receipts,
            deletion_receipts: v1.deletion_receipts,
            anchors: v1.anchors,
            forward_consents: Vec::new(),
        }
    }
}

/// Log entries proven below one checkpoint of the exporter's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The exporter's signed checkpoint.
    #[serde(
        deserialize_with = "codec::bounded::byte_string::<_, MIN_SIGNED_LEN, MAX_CHECKPOINT_LEN>"
    )]
    pub checkpoint: Vec<u8>,
    /// Peers' countersignatures of it, at most one per other member.
    #[serde(
        deserialize_with = "codec::bounded::byte_strings::<_, MAX_MEMBERS, MIN_SIGNED_LEN, MAX_COUNTERSIGNATURE_LEN>"
    )]
    pub countersignatures: Vec<Vec<u8>>,
    /// The chain from before the first disclosed entry up to the checkpoint.
    pub segment: ChainSegment,
}

/// The bytes of a bundle before the sealed document: write these, then the document.
/// Version 1 unless there are forward consents, so verifiers that read only version 1 still
/// read every bundle they can check.
pub fn bundle_prefix(meta: &EvidenceMeta) -> Vec<u8> {
    let (version, body) = if meta.forward_consents.is_empty() {
        let v1 = EvidenceMetaV1 {
            exporter: meta.exporter.clone(),
            document_id: meta.document_id,
            content_hash: meta.content_hash,
            sealed_len: meta.sealed_len,
            receipts: meta.receipts.clone(),
            deletion_receipts: meta.deletion_receipts.clone(),
            anchors: meta.anchors.clone(),
        };
        (EVIDENCE_VERSION, codec::encode(&v1))
    } else {
        (EVIDENCE_VERSION_FORWARDS, codec::encode(meta))
    };
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(EVIDENCE_PRELUDE_LEN + body.len());
    out.extend_from_slice(&EVIDENCE_MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn meta(receipts: Vec<Vec<u8>>) -> EvidenceMeta {
        EvidenceMeta {
            exporter: AgencyId::new("nl.city.utrecht").unwrap(),
            document_id: [1; 16],
            content_hash: [2; 32],
            sealed_len: 1,
            receipts,
            deletion_receipts: Vec::new(),
            anchors: Vec::new(),
            forward_consents: Vec::new(),
        }
    }

    fn decodes(meta: &EvidenceMeta) -> bool {
        codec::decode::<EvidenceMeta>("meta", &codec::encode(meta), MAX_EVIDENCE_META_LEN).is_ok()
    }

    #[test]
    fn receipts_are_decoded_within_their_limits() {
        let receipt = vec![7u8; MIN_SIGNED_LEN];
        assert!(decodes(&meta(vec![receipt.clone(); MAX_EVIDENCE_RECEIPTS])));
        assert!(!decodes(&meta(vec![receipt; MAX_EVIDENCE_RECEIPTS + 1])));
        assert!(!decodes(&meta(vec![vec![7u8; MIN_SIGNED_LEN - 1]])));
        assert!(decodes(&meta(vec![vec![7u8; MAX_RECEIPT_LEN]])));
        assert!(!decodes(&meta(vec![vec![7u8; MAX_RECEIPT_LEN + 1]])));
    }

    #[test]
    fn a_meta_of_empty_lists_is_refused_before_it_grows() {
        // Millions of empty receipts: one byte of input each, 24 bytes of memory each if
        // decoded. Refused by the declared count before any is decoded.
        let mut bytes = codec::encode(&meta(Vec::new()));
        let head = codec::encode(&(
            AgencyId::new("nl.city.utrecht").unwrap(),
            [1u8; 16],
            [2u8; 32],
            1u64,
        ));
        let count = 4_000_000u32;
        let mut forged = head.clone();
        let mut n = count;
        while n >= 0x80 {
            forged.push((n as u8) | 0x80);
            n >>= 7;
        }
        forged.push(n as u8);
        forged.extend(std::iter::repeat_n(0u8, count as usize));
        forged.extend_from_slice(&bytes.split_off(head.len() + 1));
        assert!(codec::decode::<EvidenceMeta>("meta", &forged, MAX_EVIDENCE_META_LEN).is_err());
    }
}
