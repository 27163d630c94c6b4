//! Verifying an incoming document while it is written: the partial file's writer hands each
//! chunk it wrote to a thread running [`liaise_protocol::verify`] over them, so a fresh
//! transfer needs no second read of the whole file once it is complete. A resumed transfer
//! (bytes already on disk) is still verified by reading the complete file.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};
use std::thread::JoinHandle;

use liaise_keys::roster::Roster;
use liaise_protocol::DocumentInfo;

use super::block_buf::BlockBuf;
use crate::trust::RosterSignerCheck;

/// Chunks queued for the verifying thread before the writer waits for it.
pub const VERIFY_QUEUE_LEN: usize = 2;

/// What the verifying thread concluded: the document's claims, or why it does not verify.
pub type Verdict = Result<DocumentInfo, String>;

/// A chunk for the verifier, and where to send its buffer once read (for reuse).
type Chunk = (BlockBuf, Option<Sender<BlockBuf>>);

/// A verification running over the bytes of a transfer, in order, from its first byte.
#[derive(Debug)]
pub struct StreamVerifier {
    chunks: Option<SyncSender<Chunk>>,
    thread: JoinHandle<Verdict>,
}

impl StreamVerifier {
    /// Starts verifying against `roster` (signer checks as at the transfer's start; the
    /// caller checks the signer again against the roster in force at the end).
    pub fn start(roster: Arc<Roster>) -> std::io::Result<Self> {
        let (chunks, rx) = sync_channel(VERIFY_QUEUE_LEN);
        let thread = std::thread::Builder::new()
            .name("liaise-verify".into())
            .spawn(move || {
                // A forwarded document's consent is checked with its header, by the receiver.
                let mut reader = super::forwarded_in::skip_prefix(ChunkReader {
                    chunks: rx,
                    current: (BlockBuf::default(), None),
                    at: 0,
                })
                .map_err(|e| e.to_string())?;
                // Hashed in the chunks as they came, with no copy into a buffer of the verifier's own.
                let info =
                    liaise_protocol::verify_buffered(&mut reader, &RosterSignerCheck(&roster))
                        .map_err(|e| e.to_string())?;
                // Lengths were checked against the header; bytes after the trailer are refused.
                let mut rest = [0u8; 1];
                match reader.read(&mut rest) {
                    Ok(0) => Ok(info),
                    _ => Err("bytes after the end of the document".to_owned()),
                }
            })?;
        Ok(Self {
            chunks: Some(chunks),
            thread,
        })
    }

    /// Hands the next bytes over (waits while the verifier is [`VERIFY_QUEUE_LEN`] chunks
    /// behind); once read, the buffer is sent to `home`, if given, to be filled again. After
    /// the verifier has stopped (the document is already refused) this does nothing.
    pub fn feed(&mut self, bytes: BlockBuf, home: Option<&Sender<BlockBuf>>) {
        if let Some(chunks) = &self.chunks
            && chunks.send((bytes, home.cloned())).is_err()
        {
            self.chunks = None;
        }
    }

    /// Ends the input and waits for the verdict.
    pub fn finish(mut self) -> Verdict {
        self.chunks = None;
        self.thread
            .join()
            .unwrap_or_else(|_| Err("the verifying thread failed".to_owned()))
    }
}

/// `Read` over the chunks handed to the verifier; end of input when the writer is done.
struct ChunkReader {
    chunks: Receiver<Chunk>,
    current: Chunk,
    at: usize,
}

impl BufRead for ChunkReader {
    /// The rest of the current chunk, waiting for the next one once it is all read (the
    /// one read goes home for reuse); empty at the end of the input.
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.at >= self.current.0.len() {
            match self.chunks.recv() {
                Ok(next) => {
                    let (done, home) = std::mem::replace(&mut self.current, next);
                    if let Some(home) = home {
                        let _ = home.send(done);
                    }
                    self.at = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(self.current.0.get(self.at..).unwrap_or_default())
    }

    fn consume(&mut self, amount: usize) {
        self.at = self.at.saturating_add(amount).min(self.current.0.len());
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        crate::buffered::read_buffered(self, buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_reader_yields_every_byte_in_order_then_ends() {
        let (tx, rx) = sync_channel(8);
        let (home, returned) = std::sync::mpsc::channel();
        for part in [&b"ab"[..], b"", b"cde"] {
            tx.send((BlockBuf::from_slice(part), Some(home.clone())))
                .unwrap();
        }
        drop(tx);
        let mut reader = ChunkReader {
            chunks: rx,
            current: (BlockBuf::default(), None),
            at: 0,
        };
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcde");
        // Each buffer read to its end went home for reuse (the last one is still current).
        let back: Vec<Vec<u8>> = returned.try_iter().map(|b: BlockBuf| b.to_vec()).collect();
        assert_eq!(back, vec![b"ab".to_vec(), Vec::new()]);
    }
}
