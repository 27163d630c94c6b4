//! The wire protocol between Liaise nodes: messages, framing, receipts.
//!
//! Specified in `docs/spec/wire.md`. Every message travels as one frame, a `u32` big-endian
//! length followed by the postcard encoding of a [`Message`]. The first byte of that encoding
//! is the message's tag ([`MessageKind`]); a reader checks the tag against the messages the
//! protocol state allows, and the length against that kind's limit, before it reads or decodes
//! the rest. Only the bytes of a sealed document follow an [`Message::Accept`] unframed.
//!
//! Pure like the rest of this crate: the node does the I/O and feeds bytes in.

mod content_hash;
mod custody;
mod frame;
mod message;
mod receipt;

pub use content_hash::{ContentHasher, content_hash};
pub use custody::{
    CUSTODY_VERSION, CustodyError, DeleteRequestBody, DeletionReason, DeletionReceiptBody,
    ForwardConsentBody, ForwardRequestBody, MAX_REASON_LEN, REQUEST_WINDOW_SECS, ShareReleaseBody,
    ShareRequestBody, Signed, SignedBody, check_reason, within_request_window,
};
pub use frame::{
    FRAME_HEADER_LEN, FrameHead, MAX_FRAME_LEN, WireError, decode_body, decode_frame, encode_frame,
};
pub use message::{
    CloseCode, MAX_DETAIL_LEN, MAX_DOCUMENT_LEN, MAX_SIGNED_LEN, Message, MessageKind,
    PROTOCOL_VERSION, Refusal, RejectReason, bounded_detail, valid_detail,
};
pub use receipt::{MAX_RECEIPT_LEN, RECEIPT_VERSION, ReceiptBody, ReceiptError, SignedReceipt};

/// The ALPN protocol id of version 1 of the wire protocol.
pub const ALPN: &[u8] = b"liaise/1";
