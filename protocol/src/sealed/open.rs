//! Opening a sealed document as one of its recipients (spec: "Opening").
//!
//! One pass over the input, in constant memory. Readable sections are decrypted into
//! *staging* writers that the caller supplies (private temporary files for the CLI, memory
//! for tests); nothing in them may be shown, moved into place or acted on unless [`open`]
//! returns `Ok`, because the signature, the commitments and the SSHSIGs are checked only at
//! the end. On `Err`, the caller deletes what it staged.

use std::io::{Read, Write};

use liaise_keys::{AgencyId, EncryptionSecretKey, Timestamp};
use sha2::{Digest, Sha256};

use crate::sealed::derive::{commitment, payload_key};
use crate::sealed::error::OpenError;
use crate::sealed::header::{
    DocumentInfo, Header, KeyCustody, RecipientPolicy, Stanza, read_header,
};
use crate::sealed::limits::{MAX_METADATA_LEN, MAX_SECTION_LEN};
use crate::sealed::plaintext::{SectionMetadata, committed, padded_len, unpadded_len};
use crate::sealed::share::OriginatorShare;
use crate::sealed::signer::SignerCheck;
use crate::sealed::sshsig::{self, SSHSIG_LEN};
use crate::sealed::stanza::open_stanza;
use crate::sealed::stanza::stanza_ciphertext_len;
use crate::sealed::stream::{StreamDecryptor, skip_section};
use crate::sealed::transcript::read_and_verify_trailer;
use crate::sealed::{CHUNK_LEN, COMMITMENT_LEN};
use crate::wire::ForwardConsentBody;

/// A section about to be decrypted, as shown to the staging callback.
#[derive(Debug)]
pub struct StagedSection<'a> {
    /// Its index in the document.
    pub index: u8,
    /// Its name in the header.
    pub name: &'a str,
    /// Its metadata (not yet verified: use only to name a private temporary file).
    pub metadata: &'a SectionMetadata,
}

/// A section that was decrypted and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSection {
    /// Its index in the document.
    pub index: u8,
    /// Its name in the header.
    pub name: String,
    /// File name (unsanitised: see [`crate::sanitize_file_name`]), media type, title.
    pub metadata: SectionMetadata,
    /// Bytes of content written to its staging writer.
    pub content_len: u64,
    /// The sender's SSHSIG over the content, armored for `ssh-keygen -Y verify`.
    pub sshsig_armored: String,
}

/// A document that was opened and fully verified.
#[derive(Debug, Clone)]
pub struct OpenedDocument {
    /// The clear header.
    pub info: DocumentInfo,
    /// This reader's own policy from the header.
    pub policy: RecipientPolicy,
    /// The sections this reader could read, in order; `staged[i]` holds `sections[i]`.
    pub sections: Vec<OpenedSection>,
}

/// Opens `input` as agency `me`, holding the encryption secret keys `keys` (current and
/// retired). `signer` is the caller's roster check; `now` the caller's clock.
///
/// For each readable section, `staging` is called once with its metadata and returns a
/// writer for its content. On `Ok`, the writers are returned in section order, and every
/// check has passed; on `Err`, the staged content must be discarded unread.
pub fn open<R, W, F>(
    input: R,
    me: &AgencyId,
    keys: &[EncryptionSecretKey],
    signer: &dyn SignerCheck,
    now: Timestamp,
    staging: F,
) -> Result<(OpenedDocument, Vec<W>), OpenError>
where
    R: Read,
    W: Write,
    F: FnMut(&StagedSection<'_>) -> std::io::Result<W>,
{
    open_with_share(input, me, keys, signer, now, None, staging)
}

/// [`open`] with the originator share that the sender's node released for this open. A
/// document under [`KeyCustody::Originator`] fails with [`OpenError::ShareRequired`] without
/// one (before anything is decrypted), and with [`OpenError::VerificationFailed`] with a
/// wrong one; an offline document ignores it.
pub fn open_with_share<R, W, F>(
    input: R,
    me: &AgencyId,
    keys: &[EncryptionSecretKey],
    signer: &dyn SignerCheck,
    now: Timestamp,
    share: Option<&OriginatorShare>,
    staging: F,
) -> Result<(OpenedDocument, Vec<W>), OpenError>
where
    R: Read,
    W: Write,
    F: FnMut(&StagedSection<'_>) -> std::io::Result<W>,
{
    let opener = Opener {
        me,
        keys,
        signer,
        now,
        share,
        forwarded: None,
    };
    open_with(input, &opener, staging)
}

/// Who opens a document, with what, and how it reached them.
#[derive(Clone, Copy)]
pub struct Opener<'a> {
    /// The agency that opens.
    pub me: &'a AgencyId,
    /// Its encryption secret keys (current and retired).
    pub keys: &'a [EncryptionSecretKey],
    /// The caller's roster check of the document's signer.
    pub signer: &'a dyn SignerCheck,
    /// The caller's clock.
    pub now: Timestamp,
    /// The originator share released for this open, for documents under originator control.
    pub share: Option<&'a OriginatorShare>,
    /// For a forwarded document: the originator's consent (its signature, and that it names
    /// this document's sender as originator and `me` as new reader, already verified by the
    /// caller with [`crate::wire::Signed::verify`]). Its stanza replaces a recipient entry.
    pub forwarded: Option<&'a ForwardConsentBody>,
}

impl std::fmt::Debug for Opener<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("me", &self.me)
            .field("now", &self.now)
            .field("forwarded", &self.forwarded.is_some())
            .finish_non_exhaustive()
    }
}

/// [`open`] with every option: see [`Opener`].
pub fn open_with<R, W, F>(
    mut input: R,
    opener: &Opener<'_>,
    mut staging: F,
) -> Result<(OpenedDocument, Vec<W>), OpenError>
where
    R: Read,
    W: Write,
    F: FnMut(&StagedSection<'_>) -> std::io::Result<W>,
{
    let Opener {
        me,
        keys,
        signer,
        now,
        share,
        forwarded,
    } = *opener;
    let parsed = read_header(&mut input)?;
    let header = &parsed.header;
    signer
        .check(&header.sender, &header.sender_key, header.created)
        .map_err(|reason| OpenError::SignerRejected {
            agency: header.sender.clone(),
            reason,
        })?;
    let access = match forwarded {
        None => header
            .recipients
            .iter()
            .find(|r| r.agency == *me)
            .map(|entry| Access {
                key_fingerprint: entry.key_fingerprint,
                kem: entry.kem,
                policy: entry.policy.clone(),
                stanza: entry.stanza.clone(),
            })
            .ok_or_else(|| OpenError::NotAddressedToYou { agency: me.clone() })?,
        Some(consent) => forwarded_access(header, consent, me)?,
    };
    let secret = keys
        .iter()
        .find(|k| {
            k.public_key().fingerprint() == access.key_fingerprint && k.algorithm() == access.kem
        })
        .ok_or(OpenError::NoMatchingKey {
            fingerprint: access.key_fingerprint,
        })?;
    if let Some(not_after) = access.policy.not_after
        && now > not_after
    {
        return Err(OpenError::Expired { not_after });
    }
    let share = match (header.custody, share) {
        (KeyCustody::Offline, _) => None,
        (KeyCustody::Originator, None) => return Err(OpenError::ShareRequired),
        (KeyCustody::Originator, Some(share)) => Some(share),
    };
    let mut content_keys = open_stanza(
        secret,
        &header.document_id,
        me,
        &access.stanza,
        &access.policy.sections,
    )?;
    if let Some(share) = share {
        for (index, key) in &mut content_keys {
            *key = share.apply(&header.document_id, *index, key);
        }
    }

    let mut hashes = Vec::with_capacity(header.sections.len());
    let mut decrypted = Vec::with_capacity(content_keys.len());
    let mut writers = Vec::with_capacity(content_keys.len());
    for (index, section) in header.sections.iter().enumerate() {
        let index = u8::try_from(index).unwrap_or(u8::MAX);
        match content_keys.iter().find(|(i, _)| *i == index) {
            None => hashes.push(skip_section(&mut input, section.padded_len)?),
            Some((_, content_key)) => {
                let mut dec = StreamDecryptor::new(
                    &payload_key(content_key, &header.document_id.0, index),
                    section.padded_len,
                    &mut input,
                );
                let (opened, writer, summary) =
                    open_section(&mut dec, header, index, &mut staging)?;
                hashes.push(dec.finish_with_zero_padding()?);
                let padding =
                    section.padded_len - unpadded_len(summary.metadata.len(), opened.content_len);
                let committed = committed(
                    &summary.metadata,
                    opened.content_len,
                    &summary.content_hash,
                    &summary.sshsig,
                    padding,
                );
                let commitment = commitment(content_key, &header.document_id.0, index, &committed);
                decrypted.push((opened, summary, commitment));
                writers.push(writer);
            }
        }
    }
    let commitments = read_and_verify_trailer(&mut input, &parsed, &hashes)?;

    let mut sections = Vec::with_capacity(decrypted.len());
    for (opened, summary, commitment) in decrypted {
        let signed: &[u8; COMMITMENT_LEN] = commitments
            .get(usize::from(opened.index))
            .ok_or(OpenError::VerificationFailed)?;
        if *signed != commitment
            || !sshsig::verify(&summary.sshsig, &header.sender_key, &summary.content_hash)
        {
            return Err(OpenError::VerificationFailed);
        }
        sections.push(OpenedSection {
            sshsig_armored: sshsig::armor(&summary.sshsig),
            ..opened
        });
    }
    Ok((
        OpenedDocument {
            info: header.info(),
            policy: access.policy,
            sections,
        },
        writers,
    ))
}

/// How a reader reaches its section keys: its recipient entry, or a forwarding consent.
struct Access {
    key_fingerprint: liaise_keys::Fingerprint,
    kem: liaise_keys::KemAlgorithm,
    policy: RecipientPolicy,
    stanza: Stanza,
}

/// The access a forwarding consent gives, checked against the header it is about.
fn forwarded_access(
    header: &Header,
    consent: &ForwardConsentBody,
    me: &AgencyId,
) -> Result<Access, OpenError> {
    if consent.document_id != header.document_id.0
        || consent.originator != header.sender
        || &consent.new_reader != me
    {
        return Err(OpenError::NotAddressedToYou { agency: me.clone() });
    }
    let sections = &consent.sections;
    let valid = !sections.is_empty()
        && sections.windows(2).all(|w| w.first() < w.get(1))
        && sections
            .iter()
            .all(|&i| usize::from(i) < header.sections.len())
        && consent.enc.len() == consent.kem.encapped_len()
        && consent.ciphertext.len() == stanza_ciphertext_len(sections.len());
    if !valid {
        return Err(OpenError::Malformed {
            what: "forwarding consent",
        });
    }
    Ok(Access {
        key_fingerprint: consent.key_fingerprint,
        kem: consent.kem,
        policy: RecipientPolicy {
            sections: sections.clone(),
            not_after: consent.not_after,
            forward_to: Vec::new(),
        },
        stanza: Stanza {
            enc: consent.enc.clone(),
            ciphertext: consent.ciphertext.clone(),
        },
    })
}

/// [`open`] from bytes in memory, staging each section in a `Vec<u8>`.
pub fn open_in_memory(
    sealed: &[u8],
    me: &AgencyId,
    keys: &[EncryptionSecretKey],
    signer: &dyn SignerCheck,
    now: Timestamp,
) -> Result<(OpenedDocument, Vec<Vec<u8>>), OpenError> {
    open(sealed, me, keys, signer, now, |_| Ok(Vec::new()))
}

/// What a decrypted section's commitment and SSHSIG are checked against.
struct SectionSummary {
    metadata: Vec<u8>,
    content_hash: [u8; 32],
    sshsig: Vec<u8>,
}

/// Decrypts one section's framing and content into a staging writer.
fn open_section<R: Read, W: Write, F>(
    dec: &mut StreamDecryptor<'_, R>,
    header: &Header,
    index: u8,
    staging: &mut F,
) -> Result<(OpenedSection, W, SectionSummary), OpenError>
where
    F: FnMut(&StagedSection<'_>) -> std::io::Result<W>,
{
    let mut len2 = [0u8; 2];
    dec.read_exact(&mut len2)?;
    let meta_len = usize::from(u16::from_be_bytes(len2));
    if meta_len > MAX_METADATA_LEN {
        return Err(OpenError::VerificationFailed);
    }
    let mut meta = vec![0u8; meta_len];
    dec.read_exact(&mut meta)?;
    let metadata = SectionMetadata::decode(&meta)?;
    let mut len8 = [0u8; 8];
    dec.read_exact(&mut len8)?;
    let content_len = u64::from_be_bytes(len8);
    // The padded length alone allows up to twice this much content; like every failure inside
    // the encryption, this one says only that verification failed.
    if content_len > MAX_SECTION_LEN {
        return Err(OpenError::VerificationFailed);
    }
    let section = header
        .sections
        .get(usize::from(index))
        .ok_or(OpenError::VerificationFailed)?;
    if padded_len(meta_len, content_len) != section.padded_len {
        return Err(OpenError::VerificationFailed);
    }
    let mut writer = staging(&StagedSection {
        index,
        name: &section.name,
        metadata: &metadata,
    })
    .map_err(OpenError::Staging)?;
    let mut content_hash = Sha256::new();
    let mut remaining = content_len;
    while remaining > 0 {
        let part = dec.read_some(remaining.min(CHUNK_LEN as u64) as usize)?;
        if part.is_empty() {
            return Err(OpenError::VerificationFailed);
        }
        content_hash.update(part);
        writer.write_all(part).map_err(OpenError::Staging)?;
        remaining -= part.len() as u64;
    }
    writer.flush().map_err(OpenError::Staging)?;
    dec.read_exact(&mut len2)?;
    if usize::from(u16::from_be_bytes(len2)) != SSHSIG_LEN {
        return Err(OpenError::VerificationFailed);
    }
    let mut blob = vec![0u8; SSHSIG_LEN];
    dec.read_exact(&mut blob)?;
    Ok((
        OpenedSection {
            index,
            name: section.name.clone(),
            metadata,
            content_len,
            sshsig_armored: String::new(),
        },
        writer,
        SectionSummary {
            metadata: meta,
            content_hash: content_hash.finalize().into(),
            sshsig: blob,
        },
    ))
}
