//! The hash chain over leaf hashes, its verification, and proofs made of it.
//!
//! ```text
//! head(-1) = 32 zero bytes
//! head(n)  = SHA-256("liaise log-chain v1\n" || head(n-1) || leaf_hash(entry n))
//! ```
//!
//! A checkpoint signs `head(n)`. Because the chain links leaf *hashes*, both proofs below
//! carry only hashes for the entries they do not disclose:
//!
//! - a consistency proof from checkpoint `s` to checkpoint `n` is the leaf hashes `s+1..=n`;
//! - a [`ChainSegment`] proves entries are in the log below a checkpoint: the head before its
//!   first leaf, then each leaf as a disclosed entry or a bare hash, up to the checkpoint.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use liaise_keys::codec;

use super::LogError;
use super::entry::{LogEntry, MAX_LOG_ENTRY_LEN, leaf_hash};

/// The head of an empty log.
pub const GENESIS_HEAD: [u8; 32] = [0; 32];
/// The most leaves in one segment or consistency proof (2 MiB of hashes).
pub const MAX_PROOF_LEAVES: usize = 65_536;
/// The shortest disclosed entry a segment decodes: a disclosed entry is about a document, so
/// it holds at least that document's 16-byte id. Keeps a segment of empty entries from
/// costing many times its size in memory.
pub const MIN_DISCLOSED_ENTRY_LEN: usize = 16;

const CHAIN_TAG: &[u8] = b"liaise log-chain v1\n";

/// `head(n)` from `head(n-1)` and entry `n`'s leaf hash.
pub fn next_head(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHAIN_TAG);
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// The head after appending `leaves` to `head`.
pub fn extend(head: &[u8; 32], leaves: &[[u8; 32]]) -> [u8; 32] {
    leaves.iter().fold(*head, |h, leaf| next_head(&h, leaf))
}

/// What [`ChainBreak::Removed`] says: which entries are missing, and where the log goes on.
fn removed(seq: u64, next: u64) -> String {
    let last = next.saturating_sub(1);
    if last <= seq {
        format!("entry {seq} was removed (the next entry the log holds is {next})")
    } else {
        format!("entries {seq} to {last} were removed (the next entry the log holds is {next})")
    }
}

/// How a stored log departs from a valid chain, at the first entry where it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainBreak {
    /// The entry at this position is missing: the next stored one has a higher number.
    #[error("{}", removed(*seq, *next))]
    Removed {
        /// The missing entry.
        seq: u64,
        /// The next entry present.
        next: u64,
    },
    /// The entry stored at this position says it belongs at another.
    #[error("entries were reordered: position {seq} holds entry {claims}")]
    Reordered {
        /// The position.
        seq: u64,
        /// The seq written inside the entry.
        claims: u64,
    },
    /// The entry's bytes no longer match the hash recorded when it was appended, or the chain
    /// through it no longer matches what was recorded or signed.
    #[error("entry {seq} was changed after it was written")]
    Changed {
        /// The entry.
        seq: u64,
    },
    /// The entry does not decode.
    #[error("entry {seq} is unreadable")]
    Unreadable {
        /// The position.
        seq: u64,
    },
}

/// Recomputes a stored log's chain entry by entry, in order, and names the first break.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: u64,
    head: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier at the start of a log.
    pub fn new() -> Self {
        Self {
            next_seq: 0,
            head: GENESIS_HEAD,
        }
    }

    /// Checks the next stored row: its position `row_seq`, the entry bytes, and the leaf
    /// hash and head recorded with it. Returns the recomputed head and the decoded entry.
    pub fn push(
        &mut self,
        row_seq: u64,
        entry: &[u8],
        stored_leaf: &[u8; 32],
        stored_head: &[u8; 32],
    ) -> Result<([u8; 32], LogEntry), ChainBreak> {
        let seq = self.next_seq;
        if row_seq != seq {
            return Err(ChainBreak::Removed { seq, next: row_seq });
        }
        let decoded = LogEntry::decode(entry).map_err(|_| ChainBreak::Unreadable { seq })?;
        if decoded.seq != seq {
            return Err(ChainBreak::Reordered {
                seq,
                claims: decoded.seq,
            });
        }
        let leaf = leaf_hash(entry);
        let head = next_head(&self.head, &leaf);
        if &leaf != stored_leaf || &head != stored_head {
            return Err(ChainBreak::Changed { seq });
        }
        self.head = head;
        self.next_seq = seq.saturating_add(1);
        Ok((head, decoded))
    }

    /// The number of entries checked so far.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// True before the first entry.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// The head after the entries checked so far.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }
}

/// One position of a [`ChainSegment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Leaf {
    /// Tag 0: an entry not disclosed, only its leaf hash.
    Hidden([u8; 32]),
    /// Tag 1: a disclosed entry, its exact bytes.
    Entry(
        #[serde(
            deserialize_with = "codec::bounded::byte_string::<_, MIN_DISCLOSED_ENTRY_LEN, MAX_LOG_ENTRY_LEN>"
        )]
        Vec<u8>,
    ),
}

/// Consecutive leaves of a log ending at a checkpoint: proof that the disclosed entries are
/// in the log at their positions, below that checkpoint's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSegment {
    /// The position of the first leaf.
    pub start_seq: u64,
    /// `head(start_seq - 1)`.
    pub prev_head: [u8; 32],
    /// The leaves `start_seq..=end`, at most [`MAX_PROOF_LEAVES`].
    #[serde(deserialize_with = "codec::bounded::vec::<_, Leaf, MAX_PROOF_LEAVES>")]
    pub leaves: Vec<Leaf>,
}

impl ChainSegment {
    /// Recomputes the segment and checks it ends exactly at (`end_seq`, `end_head`); returns
    /// the disclosed entries.
    pub fn verify(&self, end_seq: u64, end_head: &[u8; 32]) -> Result<Vec<LogEntry>, LogError> {
        if self.leaves.is_empty() || self.leaves.len() > MAX_PROOF_LEAVES {
            return Err(LogError::BadProof);
        }
        let mut head = self.prev_head;
        let mut entries = Vec::new();
        for (i, leaf) in self.leaves.iter().enumerate() {
            let seq = self
                .start_seq
                .checked_add(i as u64)
                .ok_or(LogError::BadProof)?;
            let hash = match leaf {
                Leaf::Hidden(hash) => *hash,
                Leaf::Entry(bytes) => {
                    let entry = LogEntry::decode(bytes)?;
                    if entry.seq != seq {
                        return Err(LogError::BadProof);
                    }
                    entries.push(entry);
                    leaf_hash(bytes)
                }
            };
            head = next_head(&head, &hash);
        }
        let last = self
            .start_seq
            .checked_add(self.leaves.len() as u64 - 1)
            .ok_or(LogError::BadProof)?;
        if last != end_seq || &head != end_head {
            return Err(LogError::BadProof);
        }
        Ok(entries)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::entry::tests::sample;
    use super::*;

    struct Row {
        seq: u64,
        bytes: Vec<u8>,
        leaf: [u8; 32],
        head: [u8; 32],
    }

    fn log(n: u64) -> Vec<Row> {
        let mut head = GENESIS_HEAD;
        (0..n)
            .map(|seq| {
                let bytes = sample(seq).encode().unwrap();
                let leaf = leaf_hash(&bytes);
                head = next_head(&head, &leaf);
                Row {
                    seq,
                    bytes,
                    leaf,
                    head,
                }
            })
            .collect()
    }

    fn check(rows: &[Row]) -> Result<[u8; 32], ChainBreak> {
        let mut v = ChainVerifier::new();
        for r in rows {
            v.push(r.seq, &r.bytes, &r.leaf, &r.head)?;
        }
        Ok(v.head())
    }

    #[test]
    fn intact_log_verifies() {
        let rows = log(10);
        assert_eq!(check(&rows).unwrap(), rows[9].head);
        let leaves: Vec<_> = rows.iter().map(|r| r.leaf).collect();
        assert_eq!(extend(&GENESIS_HEAD, &leaves), rows[9].head);
        assert_eq!(extend(&rows[3].head, &leaves[4..]), rows[9].head);
    }

    #[test]
    fn removed_changed_reordered_are_named() {
        let mut rows = log(10);
        rows.remove(4);
        assert_eq!(check(&rows), Err(ChainBreak::Removed { seq: 4, next: 5 }));
        assert_eq!(
            ChainBreak::Removed { seq: 4, next: 5 }.to_string(),
            "entry 4 was removed (the next entry the log holds is 5)"
        );
        assert_eq!(
            ChainBreak::Removed { seq: 4, next: 7 }.to_string(),
            "entries 4 to 6 were removed (the next entry the log holds is 7)"
        );

        let mut rows = log(10);
        rows[6].bytes = {
            let mut e = sample(6);
            e.reason = Some("another reason".into());
            e.encode().unwrap()
        };
        assert_eq!(check(&rows), Err(ChainBreak::Changed { seq: 6 }));
        // Even with the recorded hashes rewritten, the recorded head of the next entry breaks.
        rows[6].leaf = leaf_hash(&rows[6].bytes);
        rows[6].head = next_head(&rows[5].head, &rows[6].leaf);
        assert_eq!(check(&rows), Err(ChainBreak::Changed { seq: 7 }));

        let mut rows = log(10);
        let (a, b) = (rows[2].bytes.clone(), rows[3].bytes.clone());
        rows[2].bytes = b;
        rows[3].bytes = a;
        assert_eq!(
            check(&rows),
            Err(ChainBreak::Reordered { seq: 2, claims: 3 })
        );

        let mut rows = log(3);
        rows[1].bytes = vec![1, 2, 3];
        assert_eq!(check(&rows), Err(ChainBreak::Unreadable { seq: 1 }));
    }

    fn segment(rows: &[Row], from: usize, to: usize, disclose: &[usize]) -> ChainSegment {
        ChainSegment {
            start_seq: from as u64,
            prev_head: if from == 0 {
                GENESIS_HEAD
            } else {
                rows[from - 1].head
            },
            leaves: (from..=to)
                .map(|i| {
                    if disclose.contains(&i) {
                        Leaf::Entry(rows[i].bytes.clone())
                    } else {
                        Leaf::Hidden(rows[i].leaf)
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn segments_prove_entries_below_a_checkpoint() {
        let rows = log(12);
        let seg = segment(&rows, 3, 9, &[3, 7]);
        let entries = seg.verify(9, &rows[9].head).unwrap();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 7]);
        // Wrong end, wrong head, shifted start, a changed hidden hash: refused.
        assert!(seg.verify(10, &rows[9].head).is_err());
        assert!(seg.verify(9, &rows[8].head).is_err());
        let mut shifted = seg.clone();
        shifted.start_seq = 4;
        assert!(shifted.verify(10, &rows[9].head).is_err());
        let mut bad = seg.clone();
        bad.leaves[1] = Leaf::Hidden([0; 32]);
        assert!(bad.verify(9, &rows[9].head).is_err());
        let mut empty = seg;
        empty.leaves.clear();
        assert!(empty.verify(9, &rows[9].head).is_err());
    }
}
