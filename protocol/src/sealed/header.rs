//! The prelude and header of a sealed document (spec: "Prelude", "Header").
//!
//! The header is read into memory (at most [`MAX_HEADER_LEN`] bytes), decoded strictly and
//! checked against every rule of the spec before anything else happens; its lists are held to
//! their limits while they are decoded (see [`crate::sealed::list_limit`]). The exact bytes
//! read are kept for the signature transcript; nothing is re-encoded to be verified.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;

use liaise_keys::codec::{self, DecodeError};
use liaise_keys::{AgencyId, Fingerprint, KemAlgorithm, SigningPublicKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sealed::error::OpenError;
use crate::sealed::limits::{
    MAX_FORWARD_TO, MAX_HEADER_LEN, MAX_LABEL_LEN, MAX_PADDED_SECTION_LEN, MAX_PURPOSE_LEN,
    MAX_RECIPIENTS, MAX_SECTION_NAME_LEN, MAX_SECTIONS,
};
use crate::sealed::list_limit;
use crate::sealed::stanza::stanza_ciphertext_len;
use crate::sealed::{MAGIC, PRELUDE_LEN, VERSION};

/// A document's random 16-byte id. Shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DocumentId(pub [u8; 16]);

impl DocumentId {
    /// A fresh id from the OS random number generator.
    pub fn random() -> Self {
        Self(liaise_keys::random::random_bytes::<16>())
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

/// Who holds the keys needed to open a document (spec: "custody", "Key custody").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyCustody {
    /// Stanzas hold the content keys: recipients open alone, anywhere. Cannot be revoked.
    Offline,
    /// Stanzas hold masked keys: every open needs the originator share from the sender's node.
    Originator,
}

impl KeyCustody {
    /// A short name for people: `offline` or `originator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Originator => "originator",
        }
    }
}

/// A section as listed in the clear header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionInfo {
    /// Its name, e.g. `main` or `annex`.
    pub name: String,
    /// Length of its padded plaintext.
    pub padded_len: u64,
}

/// What one recipient may do with the document. Bound to the ciphertext by the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientPolicy {
    /// Indices of the sections it may read, strictly increasing.
    pub sections: Vec<u8>,
    /// The last time (inclusive) it may open the document.
    pub not_after: Option<Timestamp>,
    /// The agencies it may forward the document to, with the originator's consent
    /// (enforced by the originator's node), strictly increasing.
    #[serde(deserialize_with = "list_limit::forward_to")]
    pub forward_to: Vec<AgencyId>,
}

/// A recipient as listed in the clear header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientInfo {
    /// The recipient agency.
    pub agency: AgencyId,
    /// Fingerprint of the encryption key its stanza is sealed to.
    pub key_fingerprint: Fingerprint,
    /// The KEM of that key.
    pub kem: KemAlgorithm,
    /// What it may do.
    pub policy: RecipientPolicy,
}

/// Everything the clear header says, as checked by [`crate::verify`] or [`crate::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    /// The document id.
    pub document_id: DocumentId,
    /// The sending agency.
    pub sender: AgencyId,
    /// The key that signed the document.
    pub sender_key: SigningPublicKey,
    /// When the sender says it sealed the document.
    pub created: Timestamp,
    /// The handling label, e.g. `restricted`.
    pub label: String,
    /// The stated purpose.
    pub purpose: String,
    /// Who holds the keys needed to open it.
    pub custody: KeyCustody,
    /// The sections, in order.
    pub sections: Vec<SectionInfo>,
    /// The recipients, in order.
    pub recipients: Vec<RecipientInfo>,
}

impl DocumentInfo {
    /// The recipient entry of `agency`, if it is one.
    pub fn recipient(&self, agency: &AgencyId) -> Option<&RecipientInfo> {
        self.recipients.iter().find(|r| &r.agency == agency)
    }
}

/// A recipient's HPKE-wrapped section keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stanza {
    pub(crate) enc: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

impl fmt::Debug for Stanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Stanza({} + {} bytes)",
            self.enc.len(),
            self.ciphertext.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecipientEntry {
    pub(crate) agency: AgencyId,
    pub(crate) key_fingerprint: Fingerprint,
    pub(crate) kem: KemAlgorithm,
    pub(crate) policy: RecipientPolicy,
    pub(crate) stanza: Stanza,
}

/// The header as encoded in the file, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) document_id: DocumentId,
    pub(crate) sender: AgencyId,
    pub(crate) sender_key: SigningPublicKey,
    pub(crate) created: Timestamp,
    pub(crate) label: String,
    pub(crate) purpose: String,
    pub(crate) custody: KeyCustody,
    #[serde(deserialize_with = "list_limit::sections")]
    pub(crate) sections: Vec<SectionInfo>,
    #[serde(deserialize_with = "list_limit::recipients")]
    pub(crate) recipients: Vec<RecipientEntry>,
}

/// A rule of the header that was broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    Malformed(&'static str),
    Limit {
        what: &'static str,
        len: u64,
        max: u64,
    },
}

impl From<Violation> for OpenError {
    fn from(v: Violation) -> Self {
        match v {
            Violation::Malformed(what) => Self::Malformed { what },
            Violation::Limit { what, len, max } => Self::LimitExceeded { what, len, max },
        }
    }
}

/// A header as read: the decoded value and the exact bytes `prelude || header`.
#[derive(Debug)]
pub(crate) struct ParsedHeader {
    pub(crate) header: Header,
    pub(crate) signed_prefix: Vec<u8>,
}

impl Header {
    /// The public view.
    pub(crate) fn info(&self) -> DocumentInfo {
        DocumentInfo {
            document_id: self.document_id,
            sender: self.sender.clone(),
            sender_key: self.sender_key,
            created: self.created,
            label: self.label.clone(),
            purpose: self.purpose.clone(),
            custody: self.custody,
            sections: self.sections.clone(),
            recipients: self
                .recipients
                .iter()
                .map(|r| RecipientInfo {
                    agency: r.agency.clone(),
                    key_fingerprint: r.key_fingerprint,
                    kem: r.kem,
                    policy: r.policy.clone(),
                })
                .collect(),
        }
    }

    /// Encodes as `prelude || header`.
    pub(crate) fn encode_with_prelude(&self) -> Result<Vec<u8>, Violation> {
        let body = codec::encode(self);
        if body.len() > MAX_HEADER_LEN {
            return Err(Violation::Limit {
                what: "header length",
                len: body.len() as u64,
                max: MAX_HEADER_LEN as u64,
            });
        }
        let mut out = Vec::with_capacity(PRELUDE_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Checks every rule of the spec's "Header" section.
    pub(crate) fn validate(&self) -> Result<(), Violation> {
        check_clear_text("label", &self.label, 1, MAX_LABEL_LEN)?;
        check_clear_text("purpose", &self.purpose, 0, MAX_PURPOSE_LEN)?;
        check_count("sections", self.sections.len(), MAX_SECTIONS)?;
        let mut names = BTreeSet::new();
        for section in &self.sections {
            if !valid_section_name(&section.name) {
                return Err(Violation::Malformed("section name"));
            }
            if !names.insert(section.name.as_str()) {
                return Err(Violation::Malformed("duplicate section name"));
            }
            if section.padded_len == 0 {
                return Err(Violation::Malformed("empty section"));
            }
            if section.padded_len > MAX_PADDED_SECTION_LEN {
                return Err(Violation::Limit {
                    what: "padded section length",
                    len: section.padded_len,
                    max: MAX_PADDED_SECTION_LEN,
                });
            }
        }
        check_count("recipients", self.recipients.len(), MAX_RECIPIENTS)?;
        let mut agencies = BTreeSet::new();
        let mut read = vec![false; self.sections.len()];
        for recipient in &self.recipients {
            if !agencies.insert(&recipient.agency) {
                return Err(Violation::Malformed("duplicate recipient"));
            }
            let sections = &recipient.policy.sections;
            if sections.is_empty() || !sections.windows(2).all(|w| w.first() < w.get(1)) {
                return Err(Violation::Malformed("recipient section list"));
            }
            let forward = &recipient.policy.forward_to;
            if forward.len() > MAX_FORWARD_TO {
                return Err(Violation::Limit {
                    what: "forwarding list",
                    len: forward.len() as u64,
                    max: MAX_FORWARD_TO as u64,
                });
            }
            if !forward.windows(2).all(|w| w.first() < w.get(1))
                || forward
                    .iter()
                    .any(|a| *a == recipient.agency || *a == self.sender)
            {
                return Err(Violation::Malformed("recipient forwarding list"));
            }
            for &index in sections {
                *read
                    .get_mut(usize::from(index))
                    .ok_or(Violation::Malformed("recipient section index"))? = true;
            }
            if recipient.stanza.enc.len() != recipient.kem.encapped_len()
                || recipient.stanza.ciphertext.len() != stanza_ciphertext_len(sections.len())
            {
                return Err(Violation::Malformed("stanza length"));
            }
        }
        if read.contains(&false) {
            return Err(Violation::Malformed("section without a reader"));
        }
        Ok(())
    }
}

/// Reads and checks `prelude || header` from the start of `input`.
pub(crate) fn read_header<R: Read>(input: &mut R) -> Result<ParsedHeader, OpenError> {
    let mut prelude = [0u8; PRELUDE_LEN];
    let got = read_up_to(input, &mut prelude)?;
    let (magic, rest) = prelude.split_at(MAGIC.len());
    let magic_seen = magic.get(..got.min(MAGIC.len())).unwrap_or(&[]);
    if !MAGIC.starts_with(magic_seen) {
        return Err(OpenError::NotSealedDocument);
    }
    if got < MAGIC.len() + 2 {
        return Err(OpenError::Truncated);
    }
    let (version, len) = rest.split_at(2);
    let version = u16::from_be_bytes([
        version.first().copied().unwrap_or(0),
        version.get(1).copied().unwrap_or(0),
    ]);
    if version != VERSION {
        return Err(OpenError::UnsupportedVersion { version });
    }
    if got < PRELUDE_LEN {
        return Err(OpenError::Truncated);
    }
    let len = len.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if len == 0 {
        return Err(OpenError::Malformed {
            what: "empty header",
        });
    }
    if len > MAX_HEADER_LEN as u64 {
        return Err(OpenError::LimitExceeded {
            what: "header length",
            len,
            max: MAX_HEADER_LEN as u64,
        });
    }
    let mut signed_prefix = Vec::with_capacity(PRELUDE_LEN + 4096);
    signed_prefix.extend_from_slice(&prelude);
    let read = input
        .take(len)
        .read_to_end(&mut signed_prefix)
        .map_err(OpenError::from_read)?;
    if (read as u64) < len {
        return Err(OpenError::Truncated);
    }
    let body = signed_prefix.get(PRELUDE_LEN..).unwrap_or(&[]);
    let header: Header = list_limit::noting_broken_limit(|| {
        codec::decode("sealed-document header", body, MAX_HEADER_LEN)
    })
    .map_err(|e| match e {
        (_, Some(broken)) => broken.into(),
        (DecodeError::TooLarge { len, max, .. }, None) => OpenError::LimitExceeded {
            what: "header length",
            len: len as u64,
            max: max as u64,
        },
        (_, None) => OpenError::Malformed {
            what: "header encoding",
        },
    })?;
    header.validate()?;
    Ok(ParsedHeader {
        header,
        signed_prefix,
    })
}

/// Parses `prelude || header` bytes kept by their own writer (the originator's node keeps
/// them for its policy decisions). Checks every header rule, **not** the signature.
pub fn parse_stored_header(bytes: &[u8]) -> Result<DocumentInfo, OpenError> {
    let mut input = bytes;
    let parsed = read_header(&mut input)?;
    if !input.is_empty() {
        return Err(OpenError::TrailingData);
    }
    Ok(parsed.header.info())
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, OpenError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(buf.get_mut(filled..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpenError::Read(e)),
        }
    }
    Ok(filled)
}

/// `a-z`, `0-9`, `-`, starting with a letter, 1 to [`MAX_SECTION_NAME_LEN`] bytes.
pub fn valid_section_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_SECTION_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Free text: `min..=max` bytes, no control characters.
pub(crate) fn check_text(
    what: &'static str,
    text: &str,
    min: usize,
    max: usize,
) -> Result<(), Violation> {
    if text.len() > max {
        return Err(Violation::Limit {
            what,
            len: text.len() as u64,
            max: max as u64,
        });
    }
    if text.len() < min || text.chars().any(char::is_control) {
        return Err(Violation::Malformed(what));
    }
    Ok(())
}

/// Text of the clear header, which every reader, `verify` and every node's listings show:
/// as [`check_text`], and no character that reorders or hides what is displayed (bidirectional
/// embeddings, overrides and isolates; zero-width space, word joiner, byte-order mark), with
/// which a sender could make a label read as another. Marks and joiners that right-to-left
/// and other scripts need in ordinary words (U+200C to U+200F) are allowed.
pub(crate) fn check_clear_text(
    what: &'static str,
    text: &str,
    min: usize,
    max: usize,
) -> Result<(), Violation> {
    check_text(what, text, min, max)?;
    if text.chars().any(crate::text::reorders_or_hides) {
        return Err(Violation::Malformed(what));
    }
    Ok(())
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), Violation> {
    if count == 0 {
        return Err(Violation::Malformed(what));
    }
    if count > max {
        return Err(Violation::Limit {
            what,
            len: count as u64,
            max: max as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
