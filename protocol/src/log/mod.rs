//! The tamper-evident log: entries, the hash chain over them, signed checkpoints, peers'
//! countersignatures, and the proofs built from them. Specified in `docs/spec/log.md`.
//!
//! Pure like the rest of this crate: the node stores rows and feeds them in; nothing here
//! touches a database, a clock or a socket, so the evidence verifier needs no daemon.

pub mod chain;
pub mod checkpoint;
pub mod entry;

pub use chain::{
    ChainBreak, ChainSegment, ChainVerifier, GENESIS_HEAD, Leaf, MAX_PROOF_LEAVES, extend,
    next_head,
};
pub use checkpoint::{
    CHECKPOINT_VERSION, CheckpointBody, Contradiction, CountersignatureBody, MAX_CHECKPOINT_LEN,
    MAX_COUNTERSIGNATURE_LEN, SignedCheckpoint, SignedCountersignature, check_extends,
};
pub use entry::{
    LOG_ENTRY_VERSION, LogEntry, LogKind, MAX_LOG_DETAIL_LEN, MAX_LOG_ENTRY_LEN, MAX_REASON_LEN,
    leaf_hash,
};

/// Why a log structure was refused. Signature failures stay coarse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An entry does not decode.
    #[error("log entry is malformed")]
    MalformedEntry,
    /// A checkpoint or countersignature does not decode.
    #[error("checkpoint or countersignature is malformed")]
    Malformed,
    /// Another version than this crate reads.
    #[error("log structure version {0} is not supported")]
    UnsupportedVersion(u8),
    /// A field is over its limit.
    #[error("log entry too long: reason {reason} bytes, detail {detail} bytes")]
    TooLong {
        /// Reason length.
        reason: usize,
        /// Detail length.
        detail: usize,
    },
    /// A signature does not verify, or a countersignature names another checkpoint.
    #[error("signature verification failed")]
    BadSignature,
    /// A chain segment does not lead to its checkpoint.
    #[error("chain proof does not lead to the checkpoint")]
    BadProof,
}
