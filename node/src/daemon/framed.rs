//! Reading and writing wire frames on QUIC streams, with the state's allowed messages and a
//! timeout on every read, and on opening a stream and writing to it in outgoing exchanges.

use std::time::Duration;

use anyhow::anyhow;
use liaise_protocol::wire::{
    CloseCode, FRAME_HEADER_LEN, FrameHead, Message, MessageKind, WireError, decode_body,
    encode_frame,
};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes reserved for a frame body before it arrives; it grows as bytes come.
const INITIAL_BODY_CAPACITY: usize = 4096;
/// How long a peer may take to send the next frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer broke the protocol (garbage, wrong order, oversized).
    #[error("protocol violation: {0}")]
    Violation(WireError),
    /// The peer sent no frame, or took none of ours, for [`FRAME_TIMEOUT`].
    #[error("stream stalled: {0}")]
    Stalled(String),
    /// The stream ended or failed (the peer finished or reset it, or gave its side up), or
    /// this node could not serve it.
    #[error("stream failed: {0}")]
    Stream(String),
}

// Not `#[from]`: that would also make it the error's source, and the message already ends with
// it, so `{:#}` would print it twice.
impl From<WireError> for FrameError {
    fn from(e: WireError) -> Self {
        Self::Violation(e)
    }
}

impl FrameError {
    /// The close or reset code to answer with.
    pub fn code(&self) -> VarInt {
        match self {
            Self::Violation(_) => VarInt::from_u32(CloseCode::ProtocolViolation.code()),
            Self::Stalled(_) | Self::Stream(_) => VarInt::from_u32(CloseCode::Internal.code()),
        }
    }

    /// Whether the whole connection goes: a peer that broke the protocol or holds a stream
    /// without sending does; a stream the peer ended or gave up, or that this node could not
    /// serve, ends alone, and the deliveries running on the connection go on.
    pub fn closes_connection(&self) -> bool {
        !matches!(self, Self::Stream(_))
    }
}

/// The slowest rate at which a receiver is assumed to read back a document it holds (to hash
/// a resumed partial before `Accept`, to verify the whole before `Receipt`).
pub const SLOWEST_READ_BYTES_PER_SEC: u64 = 100 * 1024 * 1024;

/// How long a sender waits for `Accept` or `Receipt` on a document of `sealed_len` bytes:
/// [`FRAME_TIMEOUT`] plus a second per [`SLOWEST_READ_BYTES_PER_SEC`] bytes.
pub fn answer_timeout(sealed_len: u64) -> Duration {
    FRAME_TIMEOUT + Duration::from_secs(sealed_len / SLOWEST_READ_BYTES_PER_SEC)
}

/// Reads one message that must be one of `expected`.
pub async fn read_message(
    recv: &mut RecvStream,
    expected: &'static [MessageKind],
) -> Result<Message, FrameError> {
    read_message_within(recv, expected, FRAME_TIMEOUT).await
}

/// [`read_message`] with another timeout.
pub async fn read_message_within(
    recv: &mut RecvStream,
    expected: &'static [MessageKind],
    timeout: Duration,
) -> Result<Message, FrameError> {
    match tokio::time::timeout(timeout, read_inner(recv, expected)).await {
        Ok(result) => result,
        Err(_) => Err(FrameError::Stalled("timed out waiting for a frame".into())),
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
    let body = read_body(recv, tag, parsed.body_len).await?;
    Ok(decode_body(parsed, &body)?)
}

/// Reads the rest of a frame body after its tag. Memory grows with the bytes that actually
/// arrived, never up front to the announced length, so a peer cannot make this node hold
/// megabytes per stream by announcing them.
async fn read_body<R: AsyncRead + Unpin>(
    recv: &mut R,
    tag: u8,
    body_len: usize,
) -> Result<Vec<u8>, FrameError> {
    let rest = body_len.saturating_sub(1);
    let mut body = Vec::with_capacity(rest.min(INITIAL_BODY_CAPACITY) + 1);
    body.push(tag);
    let got = recv
        .take(rest as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| FrameError::Stream(e.to_string()))?;
    if got < rest {
        return Err(FrameError::Stream(format!(
            "stream ended {got} bytes into a {body_len}-byte frame"
        )));
    }
    Ok(body)
}

/// Asks one question on a fresh bi-stream of `conn`: sends `message`, then reads the one
/// answer, which must be one of `expected`, within `timeout`. The request/response shape of
/// share requests, deletion requests and forward requests. Opening the stream and writing
/// the question each give up after [`FRAME_TIMEOUT`] without progress.
pub async fn request(
    conn: &quinn::Connection,
    message: &Message,
    expected: &'static [MessageKind],
    timeout: Duration,
) -> anyhow::Result<Message> {
    let (mut send, mut recv) = open_stream(conn, FRAME_TIMEOUT).await?;
    write_message_within(&mut send, message, FRAME_TIMEOUT).await?;
    let _ = send.finish();
    read_message_within(&mut recv, expected, timeout)
        .await
        .map_err(|e| anyhow!("{}", closing_on_violation(conn, e)))
}

/// `error` as it is, after closing `conn` with code 1 if the peer broke the protocol
/// (garbage, an unexpected message, a field out of its rules): the dialling side closes such
/// a connection as the accepting side does (`wire.md`), and a retry dials a new one.
pub fn closing_on_violation(conn: &quinn::Connection, error: FrameError) -> FrameError {
    if let FrameError::Violation(violation) = &error {
        let reason = format!("protocol violation: {violation}");
        conn.close(error.code(), reason.as_bytes());
    }
    error
}

/// Opens a bi-stream on `conn`, giving up after `stall`: a peer that completed the handshake
/// but grants no stream (no stream credit) must not hold the caller for good.
pub async fn open_stream(
    conn: &quinn::Connection,
    stall: Duration,
) -> anyhow::Result<(SendStream, RecvStream)> {
    match tokio::time::timeout(stall, conn.open_bi()).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(anyhow!("cannot open a stream: {e}")),
        Err(_) => Err(anyhow!(
            "cannot open a stream: the peer granted none for {} s",
            stall.as_secs()
        )),
    }
}

/// Writes one message, giving up when the peer takes none of it for `stall`.
pub async fn write_message_within(
    send: &mut SendStream,
    message: &Message,
    stall: Duration,
) -> anyhow::Result<()> {
    write_progressing(send, encode_frame(message), stall).await
}

/// Writes `bytes` whole, handed to the stream as they are (not copied), giving up when the
/// peer lets no byte through (no flow-control credit) for `stall`. The limit is on each wait
/// for progress, not on the whole write: a slow but moving transfer is never cut.
pub async fn write_progressing(
    send: &mut SendStream,
    bytes: Vec<u8>,
    stall: Duration,
) -> anyhow::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    // `write_chunks` returns as soon as some bytes went in, and leaves the rest in `rest`;
    // it is cancel safe, so a timed-out call wrote nothing.
    let mut rest = [bytes.into()];
    loop {
        match tokio::time::timeout(stall, send.write_chunks(&mut rest)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                let stalled = format!("the peer took no data for {} s", stall.as_secs());
                return Err(FrameError::Stalled(stalled).into());
            }
        }
        if rest.iter().all(|chunk| chunk.is_empty()) {
            return Ok(());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_to_a_large_document_may_take_longer() {
        assert_eq!(answer_timeout(0), FRAME_TIMEOUT);
        let step = SLOWEST_READ_BYTES_PER_SEC;
        assert_eq!(answer_timeout(step - 1), FRAME_TIMEOUT);
        assert_eq!(answer_timeout(step), FRAME_TIMEOUT + Duration::from_secs(1));
        // 64 GiB, hashed at the slowest assumed rate, fits.
        let max = liaise_protocol::wire::MAX_DOCUMENT_LEN;
        assert!(answer_timeout(max) >= Duration::from_secs(max / step));
    }

    #[tokio::test]
    async fn a_body_is_read_whole_and_a_short_one_fails() {
        let bytes = vec![9u8; 100_000];
        let body = read_body(&mut bytes.as_slice(), 3, 100_001).await.unwrap();
        assert_eq!(body.len(), 100_001);
        assert_eq!(body.first(), Some(&3));
        // The announced length caps what is read: the next frame's bytes stay in the stream.
        let mut input = bytes.as_slice();
        let body = read_body(&mut input, 3, 11).await.unwrap();
        assert_eq!(body.len(), 11);
        assert_eq!(input.len(), 100_000 - 10);
        // Announced 8 MiB, 10 bytes came: an error.
        let err = read_body(&mut &bytes[..10], 3, 8 * 1024 * 1024)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("stream ended 10 bytes"), "{err}");
    }
}
