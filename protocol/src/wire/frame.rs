//! Frames: `u32` big-endian body length, then the body (postcard `Message`, tag first).
//!
//! The reader works in three steps so that nothing is allocated or decoded before it is known
//! to be allowed: [`FrameHead::parse`] the 4 length bytes plus the tag byte, check the kind
//! against the state and its limit, then [`decode_body`].

use liaise_keys::codec::{self, DecodeError};

use liaise_keys::roster::MAX_ROSTER_LEN;

use super::message::{
    MAX_DOCUMENT_LEN, MAX_SIGNED_LEN, Message, MessageKind, PROTOCOL_VERSION, valid_detail,
};
use super::receipt::MAX_RECEIPT_LEN;
use crate::log::{MAX_CHECKPOINT_LEN, MAX_COUNTERSIGNATURE_LEN, MAX_PROOF_LEAVES};

/// Bytes before the body: the `u32` length.
pub const FRAME_HEADER_LEN: usize = 4;
/// The largest frame body of any kind (a roster file).
pub const MAX_FRAME_LEN: usize = 1 + 5 + MAX_ROSTER_LEN;

/// Why a frame was refused. Any of these closes the connection with
/// [`super::CloseCode::ProtocolViolation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix is zero.
    #[error("empty frame")]
    Empty,
    /// The tag is not a known message.
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    /// The message is known but not allowed here.
    #[error("unexpected {got:?} message, expected one of {expected:?}")]
    Unexpected {
        /// What came.
        got: MessageKind,
        /// What the state allows.
        expected: &'static [MessageKind],
    },
    /// The frame is longer than its kind allows.
    #[error("{kind:?} frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// The kind.
        kind: Option<MessageKind>,
        /// Announced body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not decode as the message, or break a field rule.
    #[error("malformed frame: {0}")]
    Malformed(DecodeError),
    /// A field is out of range (version, lengths).
    #[error("invalid {0} in frame")]
    InvalidField(&'static str),
    /// The input ended inside the frame.
    #[error("truncated frame")]
    Truncated,
    /// More bytes of a sealed document than its offer announced (after `Accept`, where the
    /// document travels unframed).
    #[error("more document bytes than the offer announced")]
    BeyondOffer,
}

/// The parsed start of a frame: its body length and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Body length, tag included.
    pub body_len: usize,
    /// The message kind from the tag.
    pub kind: MessageKind,
}

impl FrameHead {
    /// Parses the length prefix and the tag byte, and checks the kind is in `expected` and
    /// the length within its limit.
    pub fn parse(
        len_prefix: [u8; FRAME_HEADER_LEN],
        tag: u8,
        expected: &'static [MessageKind],
    ) -> Result<Self, WireError> {
        let body_len = Self::parse_len(len_prefix)?;
        let kind = MessageKind::from_tag(tag).ok_or(WireError::UnknownTag(tag))?;
        if !expected.contains(&kind) {
            return Err(WireError::Unexpected {
                got: kind,
                expected,
            });
        }
        if body_len > kind.max_body_len() {
            return Err(WireError::TooLarge {
                kind: Some(kind),
                len: body_len,
                max: kind.max_body_len(),
            });
        }
        Ok(Self { body_len, kind })
    }

    /// Parses only the length prefix, checking it against [`MAX_FRAME_LEN`].
    pub fn parse_len(len_prefix: [u8; FRAME_HEADER_LEN]) -> Result<usize, WireError> {
        let len = u32::from_be_bytes(len_prefix) as usize;
        if len == 0 {
            return Err(WireError::Empty);
        }
        if len > MAX_FRAME_LEN {
            return Err(WireError::TooLarge {
                kind: None,
                len,
                max: MAX_FRAME_LEN,
            });
        }
        Ok(len)
    }
}

/// Encodes a message as a whole frame (length prefix and body).
pub fn encode_frame(message: &Message) -> Vec<u8> {
    let body = codec::encode(message);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decodes a frame body (tag included) whose head was parsed as `head`, and checks every
/// field rule.
pub fn decode_body(head: FrameHead, body: &[u8]) -> Result<Message, WireError> {
    if body.len() != head.body_len {
        return Err(WireError::Truncated);
    }
    let message: Message = codec::decode("wire message", body, head.kind.max_body_len())
        .map_err(WireError::Malformed)?;
    if message.kind() != head.kind {
        return Err(WireError::InvalidField("tag"));
    }
    check_fields(&message)?;
    Ok(message)
}

/// Decodes one whole frame from the start of `bytes`; returns the message and the bytes used.
/// For tests and tools; the node reads frames from streams with [`FrameHead`].
pub fn decode_frame(
    bytes: &[u8],
    expected: &'static [MessageKind],
) -> Result<(Message, usize), WireError> {
    let prefix: [u8; FRAME_HEADER_LEN] = bytes
        .get(..FRAME_HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(WireError::Truncated)?;
    let tag = *bytes.get(FRAME_HEADER_LEN).ok_or(WireError::Truncated)?;
    let head = FrameHead::parse(prefix, tag, expected)?;
    let end = FRAME_HEADER_LEN + head.body_len;
    let body = bytes
        .get(FRAME_HEADER_LEN..end)
        .ok_or(WireError::Truncated)?;
    Ok((decode_body(head, body)?, end))
}

fn check_fields(message: &Message) -> Result<(), WireError> {
    match message {
        Message::Hello { version, .. } | Message::HelloAck { version, .. }
            if *version != PROTOCOL_VERSION =>
        {
            Err(WireError::InvalidField("version"))
        }
        Message::Offer { sealed_len, .. } if *sealed_len == 0 || *sealed_len > MAX_DOCUMENT_LEN => {
            Err(WireError::InvalidField("sealed_len"))
        }
        // The body limit leaves room for the longest length prefix, so a roster file one byte
        // over its limit still fits in the frame.
        Message::RosterFile { file } if file.len() > MAX_ROSTER_LEN => {
            Err(WireError::InvalidField("roster file"))
        }
        Message::Accept { resume_offset } if *resume_offset > MAX_DOCUMENT_LEN => {
            Err(WireError::InvalidField("resume_offset"))
        }
        Message::Reject { detail, .. }
        | Message::Refused { detail, .. }
        | Message::CheckpointRefused { detail }
            if !valid_detail(detail) =>
        {
            Err(WireError::InvalidField("detail"))
        }
        Message::Receipt { receipt } if receipt.len() > MAX_RECEIPT_LEN => {
            Err(WireError::InvalidField("receipt"))
        }
        Message::CheckpointOffer { checkpoint, proof }
            if checkpoint.len() > MAX_CHECKPOINT_LEN || proof.len() > MAX_PROOF_LEAVES =>
        {
            Err(WireError::InvalidField("checkpoint"))
        }
        Message::Countersignature { countersignature }
            if countersignature.len() > MAX_COUNTERSIGNATURE_LEN =>
        {
            Err(WireError::InvalidField("countersignature"))
        }
        Message::ShareRequest { request: b }
        | Message::ShareRelease { release: b }
        | Message::DeleteRequest { request: b }
        | Message::DeletionReceipt { receipt: b }
        | Message::ForwardRequest { request: b }
        | Message::ForwardConsent { consent: b }
            if b.len() > MAX_SIGNED_LEN =>
        {
            Err(WireError::InvalidField("signed statement"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::wire::{MAX_DETAIL_LEN, RejectReason};

    const ANY: &[MessageKind] = &[
        MessageKind::Hello,
        MessageKind::HelloAck,
        MessageKind::RosterRequest,
        MessageKind::RosterFile,
        MessageKind::Offer,
        MessageKind::Accept,
        MessageKind::Reject,
        MessageKind::Receipt,
        MessageKind::ShareRequest,
        MessageKind::ShareRelease,
        MessageKind::Refused,
        MessageKind::DeleteRequest,
        MessageKind::DeletionReceipt,
        MessageKind::ForwardRequest,
        MessageKind::ForwardConsent,
        MessageKind::WitnessRequest,
        MessageKind::CheckpointOffer,
        MessageKind::Countersignature,
        MessageKind::CheckpointRefused,
    ];

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                version: PROTOCOL_VERSION,
                roster_serial: u64::MAX,
            },
            Message::HelloAck {
                version: PROTOCOL_VERSION,
                roster_serial: 3,
            },
            Message::RosterRequest,
            Message::RosterFile {
                file: vec![7; 1000],
            },
            Message::Offer {
                document_id: [1; 16],
                sealed_len: MAX_DOCUMENT_LEN,
                content_hash: [2; 32],
            },
            Message::Accept {
                resume_offset: u64::from(u32::MAX) + 5,
            },
            Message::Reject {
                reason: RejectReason::DiskFull,
                detail: "x".repeat(MAX_DETAIL_LEN),
            },
            Message::Receipt {
                receipt: vec![9; MAX_RECEIPT_LEN],
            },
            Message::ShareRequest {
                request: vec![1; MAX_SIGNED_LEN],
            },
            Message::ShareRelease {
                release: vec![2; MAX_SIGNED_LEN],
            },
            Message::Refused {
                reason: super::super::message::Refusal::Internal,
                detail: "x".repeat(MAX_DETAIL_LEN),
            },
            Message::DeleteRequest {
                request: vec![3; MAX_SIGNED_LEN],
            },
            Message::DeletionReceipt {
                receipt: vec![4; MAX_SIGNED_LEN],
            },
            Message::ForwardRequest {
                request: vec![5; MAX_SIGNED_LEN],
            },
            Message::ForwardConsent {
                consent: vec![6; MAX_SIGNED_LEN],
            },
            Message::WitnessRequest {
                since: Some(u64::MAX),
            },
            Message::WitnessRequest { since: None },
            Message::CheckpointOffer {
                checkpoint: vec![1; MAX_CHECKPOINT_LEN],
                proof: vec![[2; 32]; 3],
            },
            Message::Countersignature {
                countersignature: vec![3; MAX_COUNTERSIGNATURE_LEN],
            },
            Message::CheckpointRefused {
                detail: "x".repeat(MAX_DETAIL_LEN),
            },
        ]
    }

    #[test]
    fn round_trip_every_message() {
        for message in samples() {
            let frame = encode_frame(&message);
            let (back, used) = decode_frame(&frame, ANY).unwrap();
            assert_eq!(back, message);
            assert_eq!(used, frame.len());
            assert!(frame.len() - FRAME_HEADER_LEN <= message.kind().max_body_len());
            assert_eq!(frame[FRAME_HEADER_LEN], message.kind().tag());
        }
    }

    #[test]
    fn every_truncation_fails() {
        for message in samples() {
            let frame = encode_frame(&message);
            for cut in 0..frame.len() {
                assert!(
                    decode_frame(&frame[..cut], ANY).is_err(),
                    "{message:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn unexpected_kind_is_refused_before_decoding() {
        let frame = encode_frame(&Message::RosterRequest);
        let err = decode_frame(&frame, &[MessageKind::Offer]).unwrap_err();
        assert!(matches!(
            err,
            WireError::Unexpected {
                got: MessageKind::RosterRequest,
                ..
            }
        ));
    }

    #[test]
    fn frame_length_limits() {
        let at = u32::try_from(MAX_FRAME_LEN).unwrap().to_be_bytes();
        assert_eq!(FrameHead::parse_len(at), Ok(MAX_FRAME_LEN));
        let over = u32::try_from(MAX_FRAME_LEN + 1).unwrap().to_be_bytes();
        assert!(matches!(
            FrameHead::parse_len(over),
            Err(WireError::TooLarge { .. })
        ));
        assert_eq!(FrameHead::parse_len([0; 4]), Err(WireError::Empty));
        // Per-kind limit: an Offer announced one byte longer than it can be.
        let max = MessageKind::Offer.max_body_len();
        let ok = u32::try_from(max).unwrap().to_be_bytes();
        assert!(FrameHead::parse(ok, 4, ANY).is_ok());
        let long = u32::try_from(max + 1).unwrap().to_be_bytes();
        assert!(matches!(
            FrameHead::parse(long, 4, ANY),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_bounded_detail_of_multibyte_characters_stays_within_the_limit() {
        // 300 Greek letters: 600 bytes, over the limit; cut at a character boundary.
        let reason = "λ".repeat(300);
        let detail = crate::wire::bounded_detail(&format!("x{reason}"));
        assert!(detail.len() <= MAX_DETAIL_LEN && detail.len() >= MAX_DETAIL_LEN - 1);
        assert!(detail.starts_with("xλ"));
        let message = Message::Refused {
            reason: crate::wire::Refusal::Revoked,
            detail,
        };
        assert_eq!(
            decode_frame(&encode_frame(&message), ANY).unwrap().0,
            message
        );
        assert_eq!(crate::wire::bounded_detail("short"), "short");
    }

    #[test]
    fn field_limits() {
        let detail_over = Message::Reject {
            reason: RejectReason::Busy,
            detail: "x".repeat(MAX_DETAIL_LEN + 1),
        };
        assert!(decode_frame(&encode_frame(&detail_over), ANY).is_err());
        let signed_over = Message::ShareRequest {
            request: vec![1; MAX_SIGNED_LEN + 1],
        };
        assert!(decode_frame(&encode_frame(&signed_over), ANY).is_err());
        let proof_at = Message::CheckpointOffer {
            checkpoint: vec![1; MAX_CHECKPOINT_LEN],
            proof: vec![[0; 32]; MAX_PROOF_LEAVES],
        };
        let frame = encode_frame(&proof_at);
        assert!(frame.len() - FRAME_HEADER_LEN <= MessageKind::CheckpointOffer.max_body_len());
        assert_eq!(decode_frame(&frame, ANY).unwrap().0, proof_at);
        let proof_over = Message::CheckpointOffer {
            checkpoint: vec![1; 10],
            proof: vec![[0; 32]; MAX_PROOF_LEAVES + 1],
        };
        assert!(decode_frame(&encode_frame(&proof_over), ANY).is_err());
        let checkpoint_over = Message::CheckpointOffer {
            checkpoint: vec![1; MAX_CHECKPOINT_LEN + 1],
            proof: Vec::new(),
        };
        assert!(decode_frame(&encode_frame(&checkpoint_over), ANY).is_err());
        let doc_over = Message::Offer {
            document_id: [0; 16],
            sealed_len: MAX_DOCUMENT_LEN + 1,
            content_hash: [0; 32],
        };
        assert_eq!(
            decode_frame(&encode_frame(&doc_over), ANY).unwrap_err(),
            WireError::InvalidField("sealed_len")
        );
        let empty_doc = Message::Offer {
            document_id: [0; 16],
            sealed_len: 0,
            content_hash: [0; 32],
        };
        assert!(decode_frame(&encode_frame(&empty_doc), ANY).is_err());
        let roster_at = Message::RosterFile {
            file: vec![7; MAX_ROSTER_LEN],
        };
        assert_eq!(
            decode_frame(&encode_frame(&roster_at), ANY).unwrap().0,
            roster_at
        );
        let roster_over = Message::RosterFile {
            file: vec![7; MAX_ROSTER_LEN + 1],
        };
        let frame = encode_frame(&roster_over);
        assert!(frame.len() - FRAME_HEADER_LEN <= MessageKind::RosterFile.max_body_len());
        assert_eq!(
            decode_frame(&frame, ANY).unwrap_err(),
            WireError::InvalidField("roster file")
        );
        let wrong_version = Message::Hello {
            version: 2,
            roster_serial: 1,
        };
        assert_eq!(
            decode_frame(&encode_frame(&wrong_version), ANY).unwrap_err(),
            WireError::InvalidField("version")
        );
    }

    #[test]
    fn a_detail_with_a_control_character_is_refused() {
        // A newline and a journal priority would forge a log line at the receiving node; an
        // escape would drive the terminal of whoever reads that log; a bidirectional override
        // would show the line's words in another order than they came.
        for detail in [
            "busy\n<3>forged entry",
            "a\rb",
            "\u{1b}[2J",
            "tab\there",
            "\u{85}",
            "refused by \u{202E}lanimirc\u{202C}",
            "zero\u{200B}width",
        ] {
            for message in [
                Message::Reject {
                    reason: RejectReason::Busy,
                    detail: detail.into(),
                },
                Message::Refused {
                    reason: crate::wire::Refusal::Internal,
                    detail: detail.into(),
                },
                Message::CheckpointRefused {
                    detail: detail.into(),
                },
            ] {
                assert_eq!(
                    decode_frame(&encode_frame(&message), ANY).unwrap_err(),
                    WireError::InvalidField("detail"),
                    "{message:?}"
                );
            }
        }
        // Printable text of any script stays allowed, and bounded_detail makes any text so.
        let fine = Message::Refused {
            reason: crate::wire::Refusal::Revoked,
            detail: "ανακλήθηκε από τον αποστολέα — 撤回".into(),
        };
        assert_eq!(decode_frame(&encode_frame(&fine), ANY).unwrap().0, fine);
        let cleaned = crate::wire::bounded_detail("disk full:\n<3>forged\r\u{85}\u{202E}");
        assert_eq!(cleaned, "disk full: <3>forged   ");
        let message = Message::CheckpointRefused { detail: cleaned };
        assert_eq!(
            decode_frame(&encode_frame(&message), ANY).unwrap().0,
            message
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state & 0xff) as u8
                })
                .collect();
            let _ = decode_frame(&bytes, ANY);
        }
        // A valid length with an unknown tag.
        assert_eq!(
            decode_frame(&[0, 0, 0, 1, 200], ANY).unwrap_err(),
            WireError::UnknownTag(200)
        );
        // Trailing bytes inside the body.
        let mut frame = encode_frame(&Message::RosterRequest);
        frame[3] = 2;
        frame.push(0);
        assert!(decode_frame(&frame, ANY).is_err());
    }
}
