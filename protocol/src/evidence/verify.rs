//! Checking a bundle against a roster, offline, with no private key.

use std::io::Read;

use serde::Serialize;

use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, SigningPublicKey, Timestamp, codec};

use super::{EVIDENCE_MAGIC, EVIDENCE_VERSION, EvidenceMeta, MAX_EVIDENCE_META_LEN};
use crate::log::{LogEntry, SignedCheckpoint, SignedCountersignature};
use crate::sealed::DocumentInfo;
use crate::wire::{ContentHasher, DeletionReceiptBody, Signed, SignedReceipt};

/// Why a bundle is not valid evidence. Coarse on purpose where signatures are concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Not a Liaise evidence bundle.
    #[error("not a Liaise evidence bundle")]
    NotABundle,
    /// A bundle of another version.
    #[error("evidence bundle version {0} is not supported")]
    UnsupportedVersion(u16),
    /// The bundle is cut short or its meta does not decode.
    #[error("evidence bundle is malformed: {0}")]
    Malformed(&'static str),
    /// The sealed document does not verify.
    #[error("the sealed document does not verify: {0}")]
    Document(String),
    /// The sealed document is not the one the bundle describes.
    #[error("the sealed document is not the one described (id, length or hash differ)")]
    DocumentMismatch,
    /// A receipt, deletion receipt, checkpoint or countersignature does not verify, or its
    /// signer is not in the roster.
    #[error("the {0} does not verify against the roster")]
    BadSignature(&'static str),
    /// A part is signed by an agency that is not a member in the roster given: often a
    /// roster older than the agency's joining.
    #[error(
        "the {what} is signed by {agency}, not a member in roster serial {serial}: if it \
         joined later, verify against a newer roster; if it was revoked, this roster no \
         longer vouches for its signatures"
    )]
    NotInRoster {
        /// Which part.
        what: &'static str,
        /// The agency the part names as its signer.
        agency: String,
        /// The serial of the roster given.
        serial: u64,
    },
    /// A log entry is not proven by its chain segment, or is not about this document.
    #[error("the log entries are not proven by the exporter's checkpoint")]
    BadProof,
    /// Reading failed.
    #[error("cannot read the bundle: {0}")]
    Io(#[from] std::io::Error),
}

/// What a valid bundle shows.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceReport {
    /// The document, as its signed header says.
    #[serde(skip)]
    pub document: Option<DocumentInfo>,
    /// The exporting agency.
    pub exporter: String,
    /// Delivery receipts, verified.
    pub receipts: Vec<ReceiptReport>,
    /// Deletion receipts, verified: (who deleted, when).
    pub deletions: Vec<ReceiptReport>,
    /// The disclosed log entries, proven.
    #[serde(skip)]
    pub entries: Vec<LogEntry>,
    /// The checkpoints they are proven under.
    pub anchors: Vec<AnchorReport>,
}

/// One verified receipt.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptReport {
    /// The agency that signed it.
    pub agency: String,
    /// When, by its clock.
    pub at: Timestamp,
}

/// One verified checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorReport {
    /// The last entry it covers.
    pub seq: u64,
    /// When it was signed.
    pub time: Timestamp,
    /// Who countersigned it (verified).
    pub countersigned_by: Vec<String>,
}

/// Reads a whole bundle from `input` and checks every part of it against `roster`.
pub fn verify_bundle<R: Read>(
    mut input: R,
    roster: &Roster,
) -> Result<EvidenceReport, EvidenceError> {
    let mut prelude = [0u8; 14];
    read_all(&mut input, &mut prelude)?;
    let [m0, m1, m2, m3, m4, m5, m6, m7, v0, v1, l0, l1, l2, l3] = prelude;
    if [m0, m1, m2, m3, m4, m5, m6, m7] != EVIDENCE_MAGIC {
        return Err(EvidenceError::NotABundle);
    }
    let version = u16::from_be_bytes([v0, v1]);
    if version != EVIDENCE_VERSION {
        return Err(EvidenceError::UnsupportedVersion(version));
    }
    let meta_len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    if meta_len > MAX_EVIDENCE_META_LEN {
        return Err(EvidenceError::Malformed("meta too large"));
    }
    let mut meta = Vec::new();
    (&mut input).take(meta_len as u64).read_to_end(&mut meta)?;
    if meta.len() != meta_len {
        return Err(EvidenceError::Malformed("truncated"));
    }
    let meta: EvidenceMeta = codec::decode("evidence meta", &meta, MAX_EVIDENCE_META_LEN)
        .map_err(|_| EvidenceError::Malformed("meta does not decode"))?;

    let document = verify_document(&mut input, &meta, roster)?;
    let mut report = EvidenceReport {
        document: None,
        exporter: meta.exporter.to_string(),
        receipts: Vec::new(),
        deletions: Vec::new(),
        entries: Vec::new(),
        anchors: Vec::new(),
    };
    for bytes in &meta.receipts {
        report
            .receipts
            .push(verify_receipt(bytes, &meta, &document, roster)?);
    }
    for bytes in &meta.deletion_receipts {
        report
            .deletions
            .push(verify_deletion(bytes, &meta, &document, roster)?);
    }
    if meta.anchors.is_empty() {
        return Err(EvidenceError::BadProof);
    }
    let exporter_key = key_of(roster, &meta.exporter, "checkpoint")?;
    for anchor in &meta.anchors {
        let checkpoint = SignedCheckpoint::from_bytes(&anchor.checkpoint)
            .map_err(|_| EvidenceError::BadSignature("checkpoint"))?;
        let body = checkpoint
            .verify(&exporter_key)
            .map_err(|_| EvidenceError::BadSignature("checkpoint"))?;
        if body.agency != meta.exporter {
            return Err(EvidenceError::BadSignature("checkpoint"));
        }
        let mut countersigned_by = Vec::new();
        for bytes in &anchor.countersignatures {
            let cs = SignedCountersignature::from_bytes(bytes)
                .map_err(|_| EvidenceError::BadSignature("countersignature"))?;
            let claimed = cs
                .body_unverified()
                .map_err(|_| EvidenceError::BadSignature("countersignature"))?;
            let key = key_of(roster, &claimed.witness, "countersignature")?;
            cs.verify_for(&checkpoint, &key)
                .map_err(|_| EvidenceError::BadSignature("countersignature"))?;
            if claimed.witness == meta.exporter {
                return Err(EvidenceError::BadSignature("countersignature"));
            }
            countersigned_by.push(claimed.witness.to_string());
        }
        let entries = anchor
            .segment
            .verify(body.seq, &body.head)
            .map_err(|_| EvidenceError::BadProof)?;
        if entries.is_empty() || entries.iter().any(|e| e.doc_id != Some(meta.document_id)) {
            return Err(EvidenceError::BadProof);
        }
        report.entries.extend(entries);
        report.anchors.push(AnchorReport {
            seq: body.seq,
            time: body.time,
            countersigned_by,
        });
    }
    report.document = Some(document);
    Ok(report)
}

fn read_all<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<(), EvidenceError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => EvidenceError::Malformed("truncated"),
        _ => EvidenceError::Io(e),
    })
}

/// Streams the sealed document through `verify` and a hash, and checks nothing follows it.
fn verify_document<R: Read>(
    input: &mut R,
    meta: &EvidenceMeta,
    roster: &Roster,
) -> Result<DocumentInfo, EvidenceError> {
    let mut hashing = HashingReader {
        inner: input.take(meta.sealed_len),
        hasher: ContentHasher::new(),
        count: 0,
    };
    let info = crate::sealed::verify(&mut hashing, &crate::sealed::RosterSignerCheck(roster))
        .map_err(|e| EvidenceError::Document(e.to_string()))?;
    // Anything `verify` left unread of the announced length is also hashed.
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    let hash = hashing.hasher.finalize();
    if hashing.count != meta.sealed_len
        || hash != meta.content_hash
        || info.document_id.0 != meta.document_id
    {
        return Err(EvidenceError::DocumentMismatch);
    }
    let mut extra = [0u8; 1];
    if input.read(&mut extra)? != 0 {
        return Err(EvidenceError::Malformed("bytes after the sealed document"));
    }
    Ok(info)
}

fn verify_receipt(
    bytes: &[u8],
    meta: &EvidenceMeta,
    document: &DocumentInfo,
    roster: &Roster,
) -> Result<ReceiptReport, EvidenceError> {
    let bad = || EvidenceError::BadSignature("delivery receipt");
    let signed = SignedReceipt::from_bytes(bytes).map_err(|_| bad())?;
    let claimed = signed.body_unverified().map_err(|_| bad())?;
    let key = key_of(roster, &claimed.recipient, "delivery receipt")?;
    let body = signed
        .verify_for(
            &key,
            &meta.document_id,
            &meta.content_hash,
            meta.sealed_len,
            &document.sender,
            &claimed.recipient,
        )
        .map_err(|_| bad())?;
    Ok(ReceiptReport {
        agency: body.recipient.to_string(),
        at: body.received_at,
    })
}

fn verify_deletion(
    bytes: &[u8],
    meta: &EvidenceMeta,
    document: &DocumentInfo,
    roster: &Roster,
) -> Result<ReceiptReport, EvidenceError> {
    let bad = || EvidenceError::BadSignature("deletion receipt");
    let signed = Signed::from_bytes(bytes, "deletion receipt").map_err(|_| bad())?;
    let claimed: DeletionReceiptBody = signed.body_unverified().map_err(|_| bad())?;
    let key = key_of(roster, &claimed.recipient, "deletion receipt")?;
    let body: DeletionReceiptBody = signed.verify(&key).map_err(|_| bad())?;
    if body.document_id != meta.document_id || body.originator != document.sender {
        return Err(bad());
    }
    Ok(ReceiptReport {
        agency: body.recipient.to_string(),
        at: body.deleted_at,
    })
}

fn key_of(
    roster: &Roster,
    agency: &AgencyId,
    what: &'static str,
) -> Result<SigningPublicKey, EvidenceError> {
    roster
        .member(agency)
        .map(|m| m.signing_key)
        .ok_or_else(|| EvidenceError::NotInRoster {
            what,
            agency: agency.to_string(),
            serial: roster.serial(),
        })
}

struct HashingReader<R> {
    inner: R,
    hasher: ContentHasher,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        self.count += n as u64;
        Ok(n)
    }
}
