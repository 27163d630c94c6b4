//! Sealing: from section contents, recipients and the sender's key to a sealed document.
//!
//! Streams in constant memory: the header (with every padded length) is written first, then
//! each section is encrypted chunk by chunk as its content is read, then the trailer. The
//! caller must therefore say each section's content length up front (a file's size).

use std::fmt;
use std::io::{self, Read, Write};

use liaise_keys::{AgencyId, EncryptionPublicKey, SigningSecretKey, Timestamp};

use crate::sealed::derive::{ContentKey, commitment, payload_key, random_content_key};
use crate::sealed::error::SealError;
use crate::sealed::header::{
    DocumentId, DocumentInfo, Header, KeyCustody, RecipientEntry, RecipientPolicy, SectionInfo,
    Violation,
};
use crate::sealed::limits::{
    MAX_LABEL_LEN, MAX_PURPOSE_LEN, MAX_RECIPIENTS, MAX_SECTION_LEN, MAX_SECTIONS, MAX_TITLE_LEN,
};
use crate::sealed::plaintext::{SectionMetadata, committed, padded_len, unpadded_len};
use crate::sealed::share::{OriginatorSecrets, OriginatorShare};
use crate::sealed::stanza::seal_stanza;
use crate::sealed::stream::{CiphertextHash, FeedError, StreamEncryptor, ciphertext_len};
use crate::sealed::transcript::{Transcript, write_trailer};
use crate::sealed::{COMMITMENT_LEN, sshsig};

/// Everything needed to seal one document.
#[derive(Debug)]
pub struct SealRequest<'a> {
    /// The sending agency.
    pub sender: AgencyId,
    /// Its signing key (signs the document and each section's SSHSIG).
    pub signing_key: &'a SigningSecretKey,
    /// The sealing time (the caller's clock).
    pub created: Timestamp,
    /// The handling label, 1 to 64 bytes, e.g. `restricted`.
    pub label: String,
    /// The stated purpose, up to 256 bytes.
    pub purpose: String,
    /// Whether recipients open alone ([`KeyCustody::Offline`]) or need the originator share
    /// from the sender's node for every open ([`KeyCustody::Originator`]).
    pub custody: KeyCustody,
    /// The sections; section 0 is the main part.
    pub sections: Vec<SectionInput<'a>>,
    /// The recipients, each with its key and policy (groups already resolved by the caller).
    pub recipients: Vec<RecipientSpec>,
}

/// One section to seal.
pub struct SectionInput<'a> {
    /// Its name in the clear header: `a-z`, `0-9`, `-`, e.g. `main`, `annex`, `notes`.
    pub name: String,
    /// File name, media type and title, encrypted with the content.
    pub metadata: SectionMetadata,
    /// Exactly how many bytes `content` will yield.
    pub content_len: u64,
    /// The content.
    pub content: &'a mut dyn Read,
}

impl fmt::Debug for SectionInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionInput")
            .field("name", &self.name)
            .field("content_len", &self.content_len)
            .finish_non_exhaustive()
    }
}

/// A resolved recipient: an agency, its current encryption key from the roster, its policy.
#[derive(Debug, Clone)]
pub struct RecipientSpec {
    /// The recipient agency.
    pub agency: AgencyId,
    /// Its current encryption key (X-Wing where it has one).
    pub key: EncryptionPublicKey,
    /// Which sections it may read, until when, whether it may forward.
    pub policy: RecipientPolicy,
}

/// What sealing produced.
#[derive(Debug, Clone)]
pub struct SealedSummary {
    /// The clear header, as written.
    pub info: DocumentInfo,
    /// Bytes written.
    pub len: u64,
    /// `prelude || header` exactly as written (the originator's node keeps it to decide on
    /// share requests).
    pub signed_header: Vec<u8>,
    /// With [`KeyCustody::Originator`]: the share and masked keys the sender's node must keep
    /// (and may never show). `None` for offline documents.
    pub originator: Option<OriginatorSecrets>,
}

/// Seals a document to `out`. On error, whatever was written to `out` must be discarded.
pub fn seal(request: SealRequest<'_>, out: &mut dyn Write) -> Result<SealedSummary, SealError> {
    let SealRequest {
        sender,
        signing_key,
        created,
        label,
        purpose,
        custody,
        mut sections,
        recipients,
    } = request;
    check_counts(sections.len(), recipients.len())?;
    let document_id = DocumentId::random();
    let mut plans = Vec::with_capacity(sections.len());
    for section in &sections {
        plans.push(plan_section(section)?);
    }
    // The keys that go into stanzas: the content keys, or masked with the originator share.
    let originator = match custody {
        KeyCustody::Offline => None,
        KeyCustody::Originator => {
            let share = OriginatorShare::random();
            let masked_keys = plans
                .iter()
                .enumerate()
                .map(|(i, plan)| {
                    let index = u8::try_from(i).unwrap_or(u8::MAX);
                    (index, share.apply(&document_id, index, &plan.content_key))
                })
                .collect();
            Some(OriginatorSecrets { share, masked_keys })
        }
    };
    let stanza_key = |index: u8| -> Option<&ContentKey> {
        match &originator {
            None => plans.get(usize::from(index)).map(|p| &p.content_key),
            Some(secrets) => secrets
                .masked_keys
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, k)| k),
        }
    };
    let mut entries = Vec::with_capacity(recipients.len());
    for recipient in &recipients {
        let mut keys = Vec::with_capacity(recipient.policy.sections.len());
        for &index in &recipient.policy.sections {
            let key = stanza_key(index).ok_or_else(|| {
                SealError::invalid(format!(
                    "{} may read section {index}, but there are only {} sections",
                    recipient.agency,
                    plans.len()
                ))
            })?;
            keys.push((index, key));
        }
        let stanza =
            seal_stanza(&recipient.key, &document_id, &recipient.agency, &keys).map_err(|_| {
                SealError::RecipientKey {
                    agency: recipient.agency.clone(),
                }
            })?;
        entries.push(RecipientEntry {
            agency: recipient.agency.clone(),
            key_fingerprint: recipient.key.fingerprint(),
            kem: recipient.key.algorithm(),
            policy: recipient.policy.clone(),
            stanza,
        });
    }
    let header = Header {
        document_id,
        sender,
        sender_key: signing_key.public_key(),
        created,
        label,
        purpose,
        custody,
        sections: sections
            .iter()
            .zip(&plans)
            .map(|(s, p)| SectionInfo {
                name: s.name.clone(),
                padded_len: p.padded_len,
            })
            .collect(),
        recipients: entries,
    };
    header.validate().map_err(seal_violation)?;
    let prefix = header.encode_with_prelude().map_err(seal_violation)?;

    out.write_all(&prefix).map_err(SealError::Write)?;
    let mut transcript = Transcript::new(&prefix);
    let mut commitments: Vec<[u8; COMMITMENT_LEN]> = Vec::with_capacity(plans.len());
    let mut len = prefix.len() as u64;
    for (index, (section, plan)) in sections.iter_mut().zip(&plans).enumerate() {
        let index = u8::try_from(index).unwrap_or(u8::MAX);
        let (ciphertext_hash, commitment) =
            seal_section(section, plan, &document_id, index, signing_key, out)?;
        transcript.push_section(&ciphertext_hash, &commitment);
        commitments.push(commitment);
        len += ciphertext_len(plan.padded_len);
    }
    let signature = transcript.sign(signing_key);
    write_trailer(out, &commitments, &signature).map_err(SealError::Write)?;
    len += (commitments.len() * COMMITMENT_LEN + signature.0.len()) as u64;
    Ok(SealedSummary {
        info: header.info(),
        len,
        signed_header: prefix,
        originator,
    })
}

/// A section's key and lengths, fixed before anything is written.
struct SectionPlan {
    content_key: ContentKey,
    metadata: Vec<u8>,
    padded_len: u64,
}

fn plan_section(section: &SectionInput<'_>) -> Result<SectionPlan, SealError> {
    section.metadata.validate().map_err(seal_violation)?;
    if section.content_len > MAX_SECTION_LEN {
        return Err(SealError::LimitExceeded {
            what: "section length",
            len: section.content_len,
            max: MAX_SECTION_LEN,
        });
    }
    let metadata = section.metadata.encode();
    Ok(SectionPlan {
        content_key: random_content_key(),
        padded_len: padded_len(metadata.len(), section.content_len),
        metadata,
    })
}

fn seal_section(
    section: &mut SectionInput<'_>,
    plan: &SectionPlan,
    document_id: &DocumentId,
    index: u8,
    signing_key: &SigningSecretKey,
    out: &mut dyn Write,
) -> Result<(CiphertextHash, [u8; COMMITMENT_LEN]), SealError> {
    let key = payload_key(&plan.content_key, &document_id.0, index);
    let mut enc = StreamEncryptor::new(&key, plan.padded_len, out);
    let w = SealError::Write;
    let meta_len = u16::try_from(plan.metadata.len()).unwrap_or(u16::MAX);
    enc.push(&meta_len.to_be_bytes()).map_err(w)?;
    enc.push(&plan.metadata).map_err(w)?;
    enc.push(&section.content_len.to_be_bytes()).map_err(w)?;

    let mismatch = || SealError::ContentLengthMismatch {
        section: section.name.clone(),
        declared: section.content_len,
    };
    let content_hash = enc
        .push_from(section.content, section.content_len)
        .map_err(|e| match e {
            FeedError::Read(e) => SealError::Read(e),
            FeedError::ShortContent => mismatch(),
            FeedError::Write(e) => SealError::Write(e),
        })?;
    // Read one byte more, to detect content longer than declared.
    if read_retrying(section.content, &mut [0u8; 1]).map_err(SealError::Read)? != 0 {
        return Err(mismatch());
    }
    let blob = sshsig::sign(signing_key, &content_hash);
    let blob_len = u16::try_from(blob.len()).unwrap_or(u16::MAX);
    enc.push(&blob_len.to_be_bytes()).map_err(w)?;
    enc.push(&blob).map_err(w)?;
    let padding = plan.padded_len - unpadded_len(plan.metadata.len(), section.content_len);
    enc.push_zeros(padding).map_err(w)?;
    let ciphertext_hash = enc.finish().map_err(w)?;
    let committed = committed(
        &plan.metadata,
        section.content_len,
        &content_hash,
        &blob,
        padding,
    );
    Ok((
        ciphertext_hash,
        commitment(&plan.content_key, &document_id.0, index, &committed),
    ))
}

fn read_retrying(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn check_counts(sections: usize, recipients: usize) -> Result<(), SealError> {
    for (what, len, max) in [
        ("number of sections", sections, MAX_SECTIONS),
        ("number of recipients", recipients, MAX_RECIPIENTS),
    ] {
        if len > max {
            return Err(SealError::LimitExceeded {
                what,
                len: len as u64,
                max: max as u64,
            });
        }
        if len == 0 {
            return Err(SealError::invalid(format!("the {what} must be at least 1")));
        }
    }
    Ok(())
}

/// The rule a text field of the header or of a section's metadata breaks, in words a person
/// can act on (`sealed-document.md`, "Header" and "Section metadata").
fn text_rule(what: &str) -> Option<String> {
    let hidden = ", without control characters or characters that reorder or hide text";
    Some(match what {
        "label" => format!("it must be 1 to {MAX_LABEL_LEN} bytes{hidden}"),
        "purpose" => format!("it must be at most {MAX_PURPOSE_LEN} bytes{hidden}"),
        "title" => format!("it must be at most {MAX_TITLE_LEN} bytes, without control characters"),
        "file name" | "media type" => "it must not hold control characters".to_owned(),
        _ => return None,
    })
}

fn seal_violation(v: Violation) -> SealError {
    match v {
        Violation::Malformed(what) => match text_rule(what) {
            Some(rule) => SealError::invalid(format!("invalid {what}: {rule}")),
            None => SealError::invalid(format!("invalid {what}")),
        },
        Violation::Limit { what, len, max } => SealError::LimitExceeded { what, len, max },
    }
}
