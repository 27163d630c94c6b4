//! Checking a bundle against a roster, offline, with no private key.

use std::io::Read;

use serde::Serialize;

use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, SigningPublicKey, Timestamp, codec};

use super::{
    EVIDENCE_MAGIC, EVIDENCE_VERSION, EVIDENCE_VERSION_FORWARDS, EvidenceMeta, EvidenceMetaV1,
    MAX_EVIDENCE_META_LEN, MAX_FORWARD_CONSENTS,
};
use crate::log::{LogEntry, SignedCheckpoint, SignedCountersignature};
use crate::sealed::{DocumentInfo, forward_prefix, is_forwarded, read_forward_prefix};
use crate::wire::{ContentHasher, DeletionReceiptBody, ForwardConsentBody, Signed, SignedReceipt};

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
    Io(std::io::Error),
}

// Not `#[from]`: that would also make it the error's source, and the message already ends with
// it, so `{:#}` would print it twice.
impl From<std::io::Error> for EvidenceError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// What a valid bundle shows.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceReport {
    /// The document, as its signed header says.
    #[serde(skip)]
    pub document: Option<DocumentInfo>,
    /// The originator's consent, verified, when the bundle holds a forwarded document (the
    /// exporter is its new reader).
    #[serde(skip)]
    pub forwarded: Option<ForwardConsentBody>,
    /// The originator's consents, verified, for the copies the exporter forwarded.
    #[serde(skip)]
    pub forwards: Vec<ForwardConsentBody>,
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
    /// For a delivery receipt, the sender it names: the document's signer, or the forwarder
    /// of a forwarded copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
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
    if version != EVIDENCE_VERSION && version != EVIDENCE_VERSION_FORWARDS {
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
    let meta: EvidenceMeta = if version == EVIDENCE_VERSION {
        codec::decode::<EvidenceMetaV1>("evidence meta", &meta, MAX_EVIDENCE_META_LEN)
            .map(EvidenceMeta::from)
    } else {
        codec::decode("evidence meta", &meta, MAX_EVIDENCE_META_LEN)
    }
    .map_err(|_| EvidenceError::Malformed("meta does not decode"))?;
    if version == EVIDENCE_VERSION_FORWARDS && meta.forward_consents.is_empty() {
        return Err(EvidenceError::Malformed(
            "version 2 without forward consents",
        ));
    }

    let Checked {
        info: document,
        forwarded,
        forwards,
        copies,
    } = verify_document(&mut input, &meta, roster)?;
    let mut report = EvidenceReport {
        document: None,
        forwarded,
        forwards,
        exporter: meta.exporter.to_string(),
        receipts: Vec::new(),
        deletions: Vec::new(),
        entries: Vec::new(),
        anchors: Vec::new(),
    };
    for bytes in &meta.receipts {
        report
            .receipts
            .push(verify_receipt(bytes, &meta, &copies, roster)?);
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
            // A copy of one witness's countersignature must not count as a second witness.
            let witness = claimed.witness.to_string();
            if countersigned_by.contains(&witness) {
                return Err(EvidenceError::Malformed(
                    "one witness countersigns an anchor twice",
                ));
            }
            countersigned_by.push(witness);
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

/// One copy of the document that delivery receipts in the bundle may be for.
struct Copy {
    /// Its content hash and length: of the sealed document, or of a forwarded document.
    hash: [u8; 32],
    len: u64,
    /// The sender its receipts name: the originator, or the forwarder of a forwarded copy.
    sender: AgencyId,
    /// The only agency that may have received it: a forwarded copy's new reader.
    recipient: Option<AgencyId>,
}

/// What the document part of a bundle showed.
struct Checked {
    info: DocumentInfo,
    forwarded: Option<ForwardConsentBody>,
    forwards: Vec<ForwardConsentBody>,
    copies: Vec<Copy>,
}

/// Streams the document through `verify` and its hashes, and checks nothing follows it. The
/// document is a sealed document, or a forwarded one (the bundle of its new reader) whose
/// consent must verify and name it. For each forward consent in `meta` (copies the exporter
/// forwarded), the forwarded copy's hash is computed alongside.
fn verify_document<R: Read>(
    input: &mut R,
    meta: &EvidenceMeta,
    roster: &Roster,
) -> Result<Checked, EvidenceError> {
    if meta.forward_consents.len() > MAX_FORWARD_CONSENTS {
        return Err(EvidenceError::Malformed("too many forward consents"));
    }
    let mut forwards: Vec<ForwardConsentBody> = Vec::new();
    let mut extra = Vec::new();
    for bytes in &meta.forward_consents {
        let consent = verify_consent(bytes, roster)?;
        if consent.document_id != meta.document_id || consent.forwarder != meta.exporter {
            return Err(EvidenceError::BadSignature("forwarding consent"));
        }
        // One per new reader, in order: each costs a hash of the whole document.
        if forwards
            .last()
            .is_some_and(|last| last.new_reader.as_str() >= consent.new_reader.as_str())
        {
            return Err(EvidenceError::Malformed(
                "forward consents not one per new reader in order",
            ));
        }
        let prefix = forward_prefix(bytes);
        let mut hasher = ContentHasher::new();
        hasher.update(&prefix);
        extra.push((hasher, prefix.len() as u64));
        forwards.push(consent);
    }
    let mut section = (&mut *input).take(meta.sealed_len);
    let mut start = [0u8; 8];
    let got = read_up_to(&mut section, &mut start)?;
    let start = start.get(..got).unwrap_or_default();
    let mut hashing = HashingReader {
        inner: start.chain(section),
        hasher: ContentHasher::new(),
        extra: Vec::new(),
        count: 0,
    };
    let forwarded = if is_forwarded(start) {
        if !forwards.is_empty() {
            return Err(EvidenceError::Malformed(
                "forward consents beside a forwarded document",
            ));
        }
        let bytes = read_forward_prefix(&mut hashing)
            .map_err(|e| EvidenceError::Document(e.to_string()))?;
        Some(verify_consent(&bytes, roster)?)
    } else {
        None
    };
    // The forwarded copies' hashes take the sealed document's bytes from here on.
    let before_sealed = hashing.count;
    hashing.extra = extra;
    let info = crate::sealed::verify(&mut hashing, &crate::sealed::RosterSignerCheck(roster))
        .map_err(|e| EvidenceError::Document(e.to_string()))?;
    // Anything `verify` left unread of the announced length is also hashed.
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    let HashingReader {
        hasher,
        extra,
        count,
        ..
    } = hashing;
    let hash = hasher.finalize();
    if count != meta.sealed_len
        || hash != meta.content_hash
        || info.document_id.0 != meta.document_id
    {
        return Err(EvidenceError::DocumentMismatch);
    }
    if let Some(consent) = &forwarded
        && (consent.document_id != info.document_id.0 || consent.originator != info.sender)
    {
        return Err(EvidenceError::BadSignature("forwarding consent"));
    }
    if forwards.iter().any(|c| c.originator != info.sender) {
        return Err(EvidenceError::BadSignature("forwarding consent"));
    }
    let mut trailing = [0u8; 1];
    if input.read(&mut trailing)? != 0 {
        return Err(EvidenceError::Malformed("bytes after the sealed document"));
    }
    let sealed_len = count - before_sealed;
    let mut copies = vec![Copy {
        hash,
        len: count,
        sender: forwarded
            .as_ref()
            .map_or_else(|| info.sender.clone(), |c| c.forwarder.clone()),
        recipient: forwarded.as_ref().map(|c| c.new_reader.clone()),
    }];
    for ((hasher, prefix_len), consent) in extra.into_iter().zip(&forwards) {
        copies.push(Copy {
            hash: hasher.finalize(),
            len: prefix_len + sealed_len,
            sender: consent.forwarder.clone(),
            recipient: Some(consent.new_reader.clone()),
        });
    }
    Ok(Checked {
        info,
        forwarded,
        forwards,
        copies,
    })
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, EvidenceError> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match input.read(rest)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A forwarding consent, verified with the key of the originator it names.
fn verify_consent(bytes: &[u8], roster: &Roster) -> Result<ForwardConsentBody, EvidenceError> {
    let bad = || EvidenceError::BadSignature("forwarding consent");
    let signed = Signed::from_bytes(bytes, "forward consent").map_err(|_| bad())?;
    let claimed: ForwardConsentBody = signed.body_unverified().map_err(|_| bad())?;
    let key = key_of(roster, &claimed.originator, "forwarding consent")?;
    signed.verify(&key).map_err(|_| bad())
}

/// A delivery receipt for one of the document's `copies`.
fn verify_receipt(
    bytes: &[u8],
    meta: &EvidenceMeta,
    copies: &[Copy],
    roster: &Roster,
) -> Result<ReceiptReport, EvidenceError> {
    let bad = || EvidenceError::BadSignature("delivery receipt");
    let signed = SignedReceipt::from_bytes(bytes).map_err(|_| bad())?;
    let claimed = signed.body_unverified().map_err(|_| bad())?;
    let key = key_of(roster, &claimed.recipient, "delivery receipt")?;
    let body = copies
        .iter()
        .filter(|c| c.recipient.as_ref().is_none_or(|r| *r == claimed.recipient))
        .find_map(|c| {
            signed
                .verify_for(
                    &key,
                    &meta.document_id,
                    &c.hash,
                    c.len,
                    &c.sender,
                    &claimed.recipient,
                )
                .ok()
        })
        .ok_or_else(bad)?;
    Ok(ReceiptReport {
        agency: body.recipient.to_string(),
        at: body.received_at,
        sender: Some(body.sender.to_string()),
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
        sender: None,
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

/// Hashes what it reads: every byte into `hasher`, and into each of `extra` (the forwarded
/// copies' hashes, each with its prefix in already).
struct HashingReader<R> {
    inner: R,
    hasher: ContentHasher,
    extra: Vec<(ContentHasher, u64)>,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        for (hasher, _) in &mut self.extra {
            hasher.update(read);
        }
        self.count += n as u64;
        Ok(n)
    }
}
