//! The messages nodes exchange, and which may come when.

use serde::{Deserialize, Serialize};

use liaise_keys::roster::MAX_ROSTER_LEN;

/// The wire protocol version carried in `Hello`; nodes refuse any other.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest sealed document a node offers or accepts (64 GiB).
pub const MAX_DOCUMENT_LEN: u64 = 64 * 1024 * 1024 * 1024;
/// The longest human-readable detail in a `Reject`, `Refused` or `CheckpointRefused`, in bytes.
pub const MAX_DETAIL_LEN: usize = 512;

/// Whether `detail` may travel in a message: at most [`MAX_DETAIL_LEN`] bytes, no control
/// character and none that reorders or hides text. A peer's detail is for people and nodes
/// log it as it came, so a line break or an escape in it could forge journal lines
/// (`\n<3>...`) or drive an operator's terminal, and a bidirectional override could show
/// its words in another order.
pub fn valid_detail(detail: &str) -> bool {
    detail.len() <= MAX_DETAIL_LEN && !detail.chars().any(crate::text::unfit_for_a_line)
}

/// `detail` cut to at most [`MAX_DETAIL_LEN`] bytes at a character boundary, with each control
/// character (a line break in an error's text), and each that reorders or hides text,
/// replaced by a space, so that a detail with
/// multi-byte characters (an agency name or a reason in Greek) or several lines never makes
/// the frame a protocol violation (see [`valid_detail`]).
pub fn bounded_detail(detail: &str) -> String {
    let mut end = detail.len().min(MAX_DETAIL_LEN);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    // A space is never longer than the control character it replaces.
    detail
        .get(..end)
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if crate::text::unfit_for_a_line(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}
/// The largest signed statement of the originator-control exchanges (`originator-control.md`).
pub const MAX_SIGNED_LEN: usize = 4096;

/// One message. The variant index is the tag on the wire; never reorder them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Tag 0, client to server, first on a connection's first stream: the protocol version and
    /// the serial of the roster the client holds. (v1)
    Hello {
        /// Always [`PROTOCOL_VERSION`].
        version: u16,
        /// The client's roster serial.
        roster_serial: u64,
    },
    /// Tag 1, server to client: the answer to `Hello`. Receiving it confirms that the server
    /// accepted the client's key (a TLS 1.3 client learns of a rejection only here). (v1)
    HelloAck {
        /// Always [`PROTOCOL_VERSION`].
        version: u16,
        /// The server's roster serial.
        roster_serial: u64,
    },
    /// Tag 2, client to server after `HelloAck`: send me your (newer) roster. (v1)
    RosterRequest,
    /// Tag 3, either way after `HelloAck`: a signed roster file, exactly as the stewards
    /// published it. (v1)
    RosterFile {
        /// The roster file bytes, at most `MAX_ROSTER_LEN`.
        file: Vec<u8>,
    },
    /// Tag 4, sender to receiver, first on a document stream: a sealed document is on offer. (v1)
    Offer {
        /// The document id from the sealed header.
        document_id: [u8; 16],
        /// Length of the sealed document in bytes, 1 to [`MAX_DOCUMENT_LEN`].
        sealed_len: u64,
        /// The content hash (BLAKE3, `wire.md`) of the whole sealed document.
        content_hash: [u8; 32],
    },
    /// Tag 5, receiver to sender: send the bytes from `resume_offset` to the end. (v1)
    Accept {
        /// How many bytes the receiver already holds durably (0 for a fresh transfer,
        /// `sealed_len` when it holds the whole document).
        resume_offset: u64,
    },
    /// Tag 6, receiver to sender, instead of `Accept` or `Receipt`: the document was not
    /// accepted. (v1)
    Reject {
        /// Why.
        reason: RejectReason,
        /// A short human-readable explanation, at most [`MAX_DETAIL_LEN`] bytes, without
        /// control characters.
        detail: String,
    },
    /// Tag 7, receiver to sender, last on a document stream: the signed receipt. (v1)
    Receipt {
        /// A [`crate::wire::SignedReceipt`] encoding, at most [`crate::wire::MAX_RECEIPT_LEN`].
        receipt: Vec<u8>,
    },
    /// Tag 8, reader to originator, first on a stream: a signed share request
    /// (`originator-control.md`). (v1)
    ShareRequest {
        /// A [`crate::wire::Signed`] share request, at most [`MAX_SIGNED_LEN`] bytes.
        request: Vec<u8>,
    },
    /// Tag 9, originator to reader: the signed share release. (v1)
    ShareRelease {
        /// A [`crate::wire::Signed`] share release, at most [`MAX_SIGNED_LEN`] bytes.
        release: Vec<u8>,
    },
    /// Tag 10, the answering side of a share, delete or forward request: refused. (v1)
    Refused {
        /// Why.
        reason: Refusal,
        /// A short human-readable explanation, at most [`MAX_DETAIL_LEN`] bytes, without
        /// control characters.
        detail: String,
    },
    /// Tag 11, originator to reader, first on a stream: a signed delete request. (v1)
    DeleteRequest {
        /// A [`crate::wire::Signed`] delete request, at most [`MAX_SIGNED_LEN`] bytes.
        request: Vec<u8>,
    },
    /// Tag 12, reader to originator: the signed deletion receipt. (v1)
    DeletionReceipt {
        /// A [`crate::wire::Signed`] deletion receipt, at most [`MAX_SIGNED_LEN`] bytes.
        receipt: Vec<u8>,
    },
    /// Tag 13, forwarder to originator, first on a stream: a signed forward request. (v1)
    ForwardRequest {
        /// A [`crate::wire::Signed`] forward request, at most [`MAX_SIGNED_LEN`] bytes.
        request: Vec<u8>,
    },
    /// Tag 14, originator to forwarder: the signed forwarding consent. (v1)
    ForwardConsent {
        /// A [`crate::wire::Signed`] forward consent, at most [`MAX_SIGNED_LEN`] bytes.
        consent: Vec<u8>,
    },
    /// Tag 15, a witness to a log owner, first on a checkpoint stream (the client's) or after
    /// the client's half of it (the server's): show me your newest checkpoint, proven to
    /// extend the one of yours I countersigned last, at entry `since`. (v1)
    WitnessRequest {
        /// The last entry of the owner's log this witness countersigned, if any.
        since: Option<u64>,
    },
    /// Tag 16, owner to witness: a signed checkpoint and the leaf hashes of the entries
    /// `since + 1 ..= checkpoint.seq` (empty when `since` is none). (v1)
    CheckpointOffer {
        /// A [`crate::log::SignedCheckpoint`] encoding, at most
        /// [`crate::log::MAX_CHECKPOINT_LEN`].
        checkpoint: Vec<u8>,
        /// At most [`crate::log::MAX_PROOF_LEAVES`] leaf hashes.
        proof: Vec<[u8; 32]>,
    },
    /// Tag 17, witness to owner: the countersignature of the offered checkpoint. (v1)
    Countersignature {
        /// A [`crate::log::SignedCountersignature`] encoding, at most
        /// [`crate::log::MAX_COUNTERSIGNATURE_LEN`].
        countersignature: Vec<u8>,
    },
    /// Tag 18, either way instead of `CheckpointOffer` or `Countersignature`: no checkpoint
    /// to offer, or the witness refuses to countersign (a contradiction). (v1)
    CheckpointRefused {
        /// A short human-readable explanation, at most [`MAX_DETAIL_LEN`] bytes, without
        /// control characters.
        detail: String,
    },
}

/// The tag of each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// [`Message::Hello`].
    Hello = 0,
    /// [`Message::HelloAck`].
    HelloAck = 1,
    /// [`Message::RosterRequest`].
    RosterRequest = 2,
    /// [`Message::RosterFile`].
    RosterFile = 3,
    /// [`Message::Offer`].
    Offer = 4,
    /// [`Message::Accept`].
    Accept = 5,
    /// [`Message::Reject`].
    Reject = 6,
    /// [`Message::Receipt`].
    Receipt = 7,
    /// [`Message::ShareRequest`].
    ShareRequest = 8,
    /// [`Message::ShareRelease`].
    ShareRelease = 9,
    /// [`Message::Refused`].
    Refused = 10,
    /// [`Message::DeleteRequest`].
    DeleteRequest = 11,
    /// [`Message::DeletionReceipt`].
    DeletionReceipt = 12,
    /// [`Message::ForwardRequest`].
    ForwardRequest = 13,
    /// [`Message::ForwardConsent`].
    ForwardConsent = 14,
    /// [`Message::WitnessRequest`].
    WitnessRequest = 15,
    /// [`Message::CheckpointOffer`].
    CheckpointOffer = 16,
    /// [`Message::Countersignature`].
    Countersignature = 17,
    /// [`Message::CheckpointRefused`].
    CheckpointRefused = 18,
}

/// Why a receiver refused a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectReason {
    /// This node's agency is not among the document's recipients. Permanent.
    NotRecipient,
    /// The document's sender is not the agency whose node offered it. Permanent.
    WrongSender,
    /// The document does not verify (format, signature, signer), or its bytes do not match the
    /// offer. Permanent for this content.
    BadDocument,
    /// The document is larger than the receiver accepts. Permanent.
    TooLarge,
    /// The receiver has no room to store it now. Try again later.
    DiskFull,
    /// The receiver is busy or shutting down. Try again later.
    Busy,
    /// Something else went wrong at the receiver. Try again later.
    Internal,
}

/// Why an originator (or a reader, for a delete request) refused a request
/// (`originator-control.md`, "Refused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The requester is not a reader of this document.
    NotRecipient,
    /// The requester's `not_after` has passed.
    Expired,
    /// The originator revoked the document, or this reader.
    Revoked,
    /// The request's nonce was seen before.
    Replayed,
    /// The request does not decode, is not signed by the peer's agency, names another
    /// originator, or its time is outside the window.
    BadRequest,
    /// The originator does not hold this document.
    UnknownDocument,
    /// The policy does not allow forwarding to that agency.
    ForwardNotAllowed,
    /// Something went wrong at the answering node. Try again later.
    Internal,
}

impl Refusal {
    /// Whether asking again later may succeed.
    pub fn is_temporary(self) -> bool {
        matches!(self, Self::Internal)
    }

    /// A short name for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRecipient => "not a reader of this document",
            Self::Expired => "expired",
            Self::Revoked => "revoked by the originator",
            Self::Replayed => "replayed request",
            Self::BadRequest => "bad request",
            Self::UnknownDocument => "unknown document",
            Self::ForwardNotAllowed => "forwarding to that agency is not allowed",
            Self::Internal => "internal error at the originator",
        }
    }
}

/// QUIC application close codes (and stream reset codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCode {
    /// Normal close.
    Done = 0,
    /// A frame was malformed, oversized, or not allowed in the current state.
    ProtocolViolation = 1,
    /// The peer's key is not a current member's transport key.
    NotAuthorized = 2,
    /// The node is shutting down.
    Shutdown = 3,
    /// The peer speaks another protocol version.
    VersionMismatch = 4,
    /// The node hit an internal error.
    Internal = 5,
}

impl Message {
    /// This message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Hello { .. } => MessageKind::Hello,
            Self::HelloAck { .. } => MessageKind::HelloAck,
            Self::RosterRequest => MessageKind::RosterRequest,
            Self::RosterFile { .. } => MessageKind::RosterFile,
            Self::Offer { .. } => MessageKind::Offer,
            Self::Accept { .. } => MessageKind::Accept,
            Self::Reject { .. } => MessageKind::Reject,
            Self::Receipt { .. } => MessageKind::Receipt,
            Self::ShareRequest { .. } => MessageKind::ShareRequest,
            Self::ShareRelease { .. } => MessageKind::ShareRelease,
            Self::Refused { .. } => MessageKind::Refused,
            Self::DeleteRequest { .. } => MessageKind::DeleteRequest,
            Self::DeletionReceipt { .. } => MessageKind::DeletionReceipt,
            Self::ForwardRequest { .. } => MessageKind::ForwardRequest,
            Self::ForwardConsent { .. } => MessageKind::ForwardConsent,
            Self::WitnessRequest { .. } => MessageKind::WitnessRequest,
            Self::CheckpointOffer { .. } => MessageKind::CheckpointOffer,
            Self::Countersignature { .. } => MessageKind::Countersignature,
            Self::CheckpointRefused { .. } => MessageKind::CheckpointRefused,
        }
    }
}

impl MessageKind {
    /// The kind with this tag, if any.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => Self::Hello,
            1 => Self::HelloAck,
            2 => Self::RosterRequest,
            3 => Self::RosterFile,
            4 => Self::Offer,
            5 => Self::Accept,
            6 => Self::Reject,
            7 => Self::Receipt,
            8 => Self::ShareRequest,
            9 => Self::ShareRelease,
            10 => Self::Refused,
            11 => Self::DeleteRequest,
            12 => Self::DeletionReceipt,
            13 => Self::ForwardRequest,
            14 => Self::ForwardConsent,
            15 => Self::WitnessRequest,
            16 => Self::CheckpointOffer,
            17 => Self::Countersignature,
            18 => Self::CheckpointRefused,
            _ => return None,
        })
    }

    /// The tag byte.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The largest frame body (tag included) a message of this kind may have.
    pub fn max_body_len(self) -> usize {
        match self {
            // tag + varint u16 + varint u64
            Self::Hello | Self::HelloAck => 1 + 3 + 10,
            Self::RosterRequest => 1,
            // tag + varint length + file
            Self::RosterFile => 1 + 5 + MAX_ROSTER_LEN,
            // tag + 16 + varint u64 + 32
            Self::Offer => 1 + 16 + 10 + 32,
            Self::Accept => 1 + 10,
            // tag + reason + varint length + detail
            Self::Reject => 1 + 1 + 2 + MAX_DETAIL_LEN,
            Self::Receipt => 1 + 3 + super::MAX_RECEIPT_LEN,
            // tag + varint length + signed statement
            Self::ShareRequest
            | Self::ShareRelease
            | Self::DeleteRequest
            | Self::DeletionReceipt
            | Self::ForwardRequest
            | Self::ForwardConsent => 1 + 2 + MAX_SIGNED_LEN,
            // tag + reason + varint length + detail
            Self::Refused => 1 + 1 + 2 + MAX_DETAIL_LEN,
            // tag + option + varint u64
            Self::WitnessRequest => 1 + 1 + 10,
            // tag + varint length + checkpoint + varint count + hashes
            Self::CheckpointOffer => {
                1 + 2 + crate::log::MAX_CHECKPOINT_LEN + 3 + 32 * crate::log::MAX_PROOF_LEAVES
            }
            Self::Countersignature => 1 + 2 + crate::log::MAX_COUNTERSIGNATURE_LEN,
            Self::CheckpointRefused => 1 + 2 + MAX_DETAIL_LEN,
        }
    }
}

impl RejectReason {
    /// Whether the sender should try again later (true) or give the document up for this
    /// recipient (false).
    pub fn is_temporary(self) -> bool {
        matches!(self, Self::DiskFull | Self::Busy | Self::Internal)
    }

    /// A short name for logs and the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRecipient => "not a recipient",
            Self::WrongSender => "wrong sender",
            Self::BadDocument => "document does not verify",
            Self::TooLarge => "document too large",
            Self::DiskFull => "receiver disk full",
            Self::Busy => "receiver busy",
            Self::Internal => "receiver internal error",
        }
    }
}

impl CloseCode {
    /// The QUIC varint value.
    pub fn code(self) -> u32 {
        self as u32
    }
}
