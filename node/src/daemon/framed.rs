//! Reading and writing wire frames on QUIC streams, with the state's allowed messages and a
//! timeout on every read.

use std::time::Duration;

use liaise_protocol::wire::{
    CloseCode, FRAME_HEADER_LEN, FrameHead, Message, MessageKind, WireError, decode_body,
    encode_frame,
};
use quinn::{RecvStream, SendStream, VarInt};

/// How long a peer may take to send the next frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer broke the protocol (garbage, wrong order, oversized).
    #[error("protocol violation: {0}")]
    Violation(#[from] WireError),
    /// The stream ended or failed, or the peer was too slow.
    #[error("stream failed: {0}")]
    Stream(String),
}

impl FrameError {
    /// The close or reset code to answer with.
    pub fn code(&self) -> VarInt {
        match self {
            Self::Violation(_) => VarInt::from_u32(CloseCode::ProtocolViolation.code()),
            Self::Stream(_) => VarInt::from_u32(CloseCode::Internal.code()),
        }
    }
}

/// Reads one message that must be one of `expected`.
pub async fn read_message(
    recv: &mut RecvStream,
    expected: &'static [MessageKind],
) -> Result<Message, FrameError> {
    match tokio::time::timeout(FRAME_TIMEOUT, read_inner(recv, expected)).await {
        Ok(result) => result,
        Err(_) => Err(FrameError::Stream("timed out waiting for a frame".into())),
    }
}

async fn read_inner(
    recv: &mut RecvStream,
    expected: &'static [MessageKind],
) -> Result<Message, FrameError> {
    let mut head = [0u8; FRAME_HEADER_LEN + 1];
    recv.read_exact(&mut head)
        .await
        .map_err(|e| FrameError::Stream(e.to_string()))?;
    let [a, b, c, d, tag] = head;
    let parsed = FrameHead::parse([a, b, c, d], tag, expected)?;
    let mut body = vec![0u8; parsed.body_len];
    if let Some(first) = body.first_mut() {
        *first = tag;
    }
    if let Some(rest) = body.get_mut(1..) {
        recv.read_exact(rest)
            .await
            .map_err(|e| FrameError::Stream(e.to_string()))?;
    }
    Ok(decode_body(parsed, &body)?)
}

/// Writes one message.
pub async fn write_message(send: &mut SendStream, message: &Message) -> anyhow::Result<()> {
    send.write_all(&encode_frame(message)).await?;
    Ok(())
}
