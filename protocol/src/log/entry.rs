//! One log entry: what happened, when, to which document, involving which agency, and why.
//!
//! ```text
//! entry      = postcard LogEntry (version first)
//! leaf_hash  = SHA-256("liaise log-entry v1\n" || entry)
//! ```
//!
//! The entry does not carry the previous entry's hash: the chain links leaf hashes (see
//! [`super::chain`]), so a proof about one entry needs only the *hashes* of its neighbours,
//! never their content.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use liaise_keys::codec;
use liaise_keys::{AgencyId, Timestamp};

use super::LogError;

/// The entry version this crate writes and reads.
pub const LOG_ENTRY_VERSION: u8 = 1;
/// The longest reason (a person's justification for opening, forwarding, revoking).
pub const MAX_REASON_LEN: usize = 1024;
/// The longest detail text (JSON by convention).
pub const MAX_LOG_DETAIL_LEN: usize = 4096;
/// The largest encoded entry.
pub const MAX_LOG_ENTRY_LEN: usize =
    1 + 10 + 10 + 2 + 17 + 67 + 3 + MAX_REASON_LEN + 3 + MAX_LOG_DETAIL_LEN;

/// Domain tag of a leaf hash.
const LEAF_TAG: &[u8] = b"liaise log-entry v1\n";

/// What an entry records. The variant index is the encoding; never reorder, only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LogKind {
    /// 0: this node queued a document it sealed for delivery (`agency`: none; detail lists
    /// the recipients).
    Send,
    /// 1: this node received and stored a document (`agency`: the sender).
    Receive,
    /// 2: a recipient's signed delivery receipt arrived and verified (`agency`: the recipient).
    Receipt,
    /// 3: a delivery was given up (`agency`: the recipient; `reason`: why).
    Undeliverable,
    /// 4: this node released an originator-held key share (`agency`: the requester;
    /// `reason`: the requester's stated reason).
    ShareReleased,
    /// 5: this node refused a key-share request (`agency`: the requester).
    ShareRefused,
    /// 6: a person opened a document on this node (`reason`: why).
    Open,
    /// 7: a document was forwarded (`agency`: the new recipient).
    Forward,
    /// 8: access to a document was revoked (`agency`: whose).
    Revoke,
    /// 9: this node deleted a document.
    Deletion,
    /// 10: a signed deletion receipt was made or arrived (`agency`: who deleted).
    DeletionReceipt,
    /// 11: this node adopted a roster (`agency`: the peer it came from, if any).
    RosterAdopted,
    /// 12: this node countersigned a peer's log checkpoint (`agency`: the peer).
    Countersigned,
    /// 13: a peer offered a checkpoint that contradicts one this node countersigned
    /// (`agency`: the peer). An alarm.
    ForkDetected,
}

impl LogKind {
    /// A short lowercase name for listings, e.g. `share-released`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Receive => "receive",
            Self::Receipt => "receipt",
            Self::Undeliverable => "undeliverable",
            Self::ShareReleased => "share-released",
            Self::ShareRefused => "share-refused",
            Self::Open => "open",
            Self::Forward => "forward",
            Self::Revoke => "revoke",
            Self::Deletion => "deletion",
            Self::DeletionReceipt => "deletion-receipt",
            Self::RosterAdopted => "roster-adopted",
            Self::Countersigned => "countersigned",
            Self::ForkDetected => "fork-detected",
        }
    }
}

/// One entry of an agency's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Always [`LOG_ENTRY_VERSION`].
    pub version: u8,
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// When it was recorded (the node's clock).
    pub time: Timestamp,
    /// What happened.
    pub kind: LogKind,
    /// The document concerned, if any.
    pub doc_id: Option<[u8; 16]>,
    /// The other agency concerned, if any.
    pub agency: Option<AgencyId>,
    /// A person's stated reason, if any (at most [`MAX_REASON_LEN`] bytes).
    pub reason: Option<String>,
    /// Further detail, JSON text by convention (at most [`MAX_LOG_DETAIL_LEN`] bytes).
    pub detail: String,
}

impl LogEntry {
    /// Encodes the entry, checking the field limits.
    pub fn encode(&self) -> Result<Vec<u8>, LogError> {
        self.check()?;
        Ok(codec::encode(self))
    }

    /// Decodes and checks an entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, LogError> {
        if let Some(version) = codec::leading_version(bytes)
            && version != LOG_ENTRY_VERSION
        {
            return Err(LogError::UnsupportedVersion(version));
        }
        let entry: Self = codec::decode("log entry", bytes, MAX_LOG_ENTRY_LEN)
            .map_err(|_| LogError::MalformedEntry)?;
        entry.check()?;
        Ok(entry)
    }

    fn check(&self) -> Result<(), LogError> {
        let reason_len = self.reason.as_ref().map_or(0, String::len);
        if reason_len > MAX_REASON_LEN || self.detail.len() > MAX_LOG_DETAIL_LEN {
            return Err(LogError::TooLong {
                reason: reason_len,
                detail: self.detail.len(),
            });
        }
        Ok(())
    }
}

/// `SHA-256("liaise log-entry v1\n" || entry)`: the hash of an encoded entry.
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LEAF_TAG);
    h.update(entry);
    h.finalize().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(seq: u64) -> LogEntry {
        LogEntry {
            version: LOG_ENTRY_VERSION,
            seq,
            time: Timestamp(1_800_000_000 + seq),
            kind: LogKind::Open,
            doc_id: Some([7; 16]),
            agency: Some(AgencyId::new("nl.court.utrecht").unwrap()),
            reason: Some("hearing 2026-12-01".into()),
            detail: "{}".into(),
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let entry = sample(3);
        let bytes = entry.encode().unwrap();
        assert_eq!(LogEntry::decode(&bytes).unwrap(), entry);
        for cut in 0..bytes.len() {
            assert!(LogEntry::decode(&bytes[..cut]).is_err());
        }
        let mut at = sample(1);
        at.reason = Some("r".repeat(MAX_REASON_LEN));
        at.detail = "d".repeat(MAX_LOG_DETAIL_LEN);
        at.agency = Some(AgencyId::new(&format!("a.{}", "b".repeat(32))).unwrap());
        at.seq = u64::MAX;
        at.time = Timestamp(u64::MAX);
        let bytes = at.encode().unwrap();
        assert!(bytes.len() <= MAX_LOG_ENTRY_LEN);
        assert_eq!(LogEntry::decode(&bytes).unwrap(), at);
        let mut over = at.clone();
        over.detail.push('d');
        assert!(matches!(over.encode(), Err(LogError::TooLong { .. })));
        let mut over = at;
        over.reason = Some("r".repeat(MAX_REASON_LEN + 1));
        assert!(over.encode().is_err());
    }

    #[test]
    fn a_later_version_is_named_whatever_its_layout() {
        let later = [LOG_ENTRY_VERSION + 1, 0xff, 0xff, 0xff];
        assert_eq!(
            LogEntry::decode(&later),
            Err(LogError::UnsupportedVersion(LOG_ENTRY_VERSION + 1))
        );
        let garbled = [LOG_ENTRY_VERSION, 0xff, 0xff, 0xff];
        assert_eq!(LogEntry::decode(&garbled), Err(LogError::MalformedEntry));
    }

    #[test]
    fn other_version_is_named() {
        let mut entry = sample(0);
        entry.version = 2;
        let bytes = codec::encode(&entry);
        assert_eq!(
            LogEntry::decode(&bytes),
            Err(LogError::UnsupportedVersion(2))
        );
    }
}
