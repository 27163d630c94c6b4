//! The messages nodes exchange, and which may come when.

use serde::{Deserialize, Serialize};

use liaise_keys::roster::MAX_ROSTER_LEN;

/// The wire protocol version carried in `Hello`; nodes refuse any other.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest sealed document a node offers or accepts (64 GiB).
pub const MAX_DOCUMENT_LEN: u64 = 64 * 1024 * 1024 * 1024;
/// The longest human-readable detail in a `Reject`.
pub const MAX_DETAIL_LEN: usize = 512;

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
        /// SHA-256 of the whole sealed document.
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
        /// A short human-readable explanation, at most [`MAX_DETAIL_LEN`] bytes.
        detail: String,
    },
    /// Tag 7, receiver to sender, last on a document stream: the signed receipt. (v1)
    Receipt {
        /// A [`crate::wire::SignedReceipt`] encoding, at most [`crate::wire::MAX_RECEIPT_LEN`].
        receipt: Vec<u8>,
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
