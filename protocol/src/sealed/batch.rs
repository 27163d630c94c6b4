//! Batches of STREAM chunks, sealed or opened on a helper thread.
//!
//! The format is unchanged by batching: each chunk is still sealed on its own under
//! `u88(counter) || u8(last)`. A batch is just up to [`BATCH_CHUNKS`] consecutive chunks of
//! one section, laid out as on the wire (each chunk's text followed by its tag), so that it
//! can be sealed or opened in place and written or hashed in one piece.
//!
//! Sections longer than one batch are processed by a [`ChunkPipeline`] with one helper
//! thread: while the caller's thread reads and writes, the helper encrypts or decrypts the
//! chunks and hashes the ciphertext (SHA-256 for the transcript). When sealing, the work
//! that can go either way goes to whichever thread has time for it: the caller hashes a
//! batch's content (see [`crate::sealed::content_hash`]) and seals chunks itself while the
//! helper is still busy with earlier batches; otherwise the helper does both. This is
//! computation only: the helper does no I/O, sees no clock, and is joined before the
//! pipeline is dropped. The caller keeps at most [`BATCHES_IN_FLIGHT`] batches submitted, so
//! memory stays at a few MiB whatever the section length. Shorter sections are processed on
//! the caller's thread, without spawning anything.

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::{self, JoinHandle};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::sealed::content_hash::ContentHash;
use crate::sealed::stream::{CiphertextHash, nonce};
use crate::sealed::{CHUNK_LEN, TAG_LEN};

/// Chunks per batch: 16 × 64 KiB, so 1 MiB of plaintext is handed over at a time.
pub(crate) const BATCH_CHUNKS: usize = 16;
/// Batches a caller may have submitted and not yet received back (one being processed, the
/// others waiting), on top of the one it is filling or reading: enough that a slow read or
/// write does not leave the helper idle.
pub(crate) const BATCHES_IN_FLIGHT: usize = 4;
/// How long the caller waits at a time for its turn at the content hash before it checks
/// whether the helper is still busy.
const TURN_POLL: std::time::Duration = std::time::Duration::from_millis(1);
/// Wire bytes of one full chunk.
pub(crate) const SLOT_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Plaintext bytes of one full batch.
pub(crate) const BATCH_TEXT_LEN: usize = BATCH_CHUNKS * CHUNK_LEN;

/// Consecutive chunks of one section, as on the wire.
pub(crate) struct Batch {
    /// Room for the wire bytes; only the first [`Batch::wire_len`] bytes are in use.
    buf: Zeroizing<Vec<u8>>,
    /// Plaintext bytes in the batch.
    pub(crate) text_len: usize,
    /// STREAM counter of the first chunk.
    pub(crate) first_counter: u64,
    /// Whether the batch's last chunk is the section's last chunk.
    pub(crate) ends_section: bool,
    /// Chunks at the end of the batch already sealed by the caller's thread.
    presealed: usize,
    /// Plaintext positions of section content not yet added to the content hash (sealing).
    pub(crate) content: Range<usize>,
}

impl Batch {
    /// An empty batch with room for `capacity` wire bytes (at most one full batch).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Zeroizing::new(vec![0u8; capacity.min(BATCH_CHUNKS * SLOT_LEN)]),
            text_len: 0,
            first_counter: 0,
            ends_section: false,
            presealed: 0,
            content: 0..0,
        }
    }

    /// Empties the batch for reuse, starting at chunk `first_counter`.
    pub(crate) fn reset(&mut self, first_counter: u64) {
        self.text_len = 0;
        self.first_counter = first_counter;
        self.ends_section = false;
        self.presealed = 0;
        self.content = 0..0;
    }

    /// Chunks in the batch (a partly filled chunk counts).
    pub(crate) fn chunks(&self) -> usize {
        self.text_len.div_ceil(CHUNK_LEN)
    }

    /// Counter of the chunk after this batch.
    pub(crate) fn next_counter(&self) -> u64 {
        self.first_counter + self.chunks() as u64
    }

    /// Wire bytes in use: text plus one tag per chunk.
    pub(crate) fn wire_len(&self) -> usize {
        self.text_len + self.chunks() * TAG_LEN
    }

    /// The chunks in use, as on the wire.
    pub(crate) fn wire(&self) -> &[u8] {
        self.buf.get(..self.wire_len()).unwrap_or(&[])
    }

    /// Room for `len` more wire bytes to be read in, after `filled` already read (for
    /// opening: the caller sets `text_len` from what it managed to read).
    pub(crate) fn wire_room(&mut self, filled: usize, len: usize) -> &mut [u8] {
        let end = filled.saturating_add(len);
        self.buf.get_mut(filled..end).unwrap_or(&mut [])
    }

    /// Stream offset of plaintext byte `pos` of the batch.
    pub(crate) fn stream_offset(&self, pos: usize) -> u64 {
        self.first_counter
            .saturating_mul(CHUNK_LEN as u64)
            .saturating_add(pos as u64)
    }

    /// Where plaintext byte `pos` of the batch lives, and how many bytes follow it in its
    /// chunk (up to `text_len`, or a full chunk while filling).
    fn text_at(&mut self, pos: usize, limit: usize) -> &mut [u8] {
        let span = text_span(pos, limit);
        self.buf.get_mut(span).unwrap_or(&mut [])
    }

    /// The plaintext bytes at positions `range`, one piece per chunk.
    pub(crate) fn text(&self, range: Range<usize>) -> impl Iterator<Item = &[u8]> {
        let mut pos = range.start;
        std::iter::from_fn(move || {
            let span = text_span(pos, range.end);
            pos += span.len();
            self.buf.get(span).filter(|part| !part.is_empty())
        })
    }

    /// Free room while filling, up to `max` bytes, one piece per chunk (to be read into in
    /// one call); empty when the batch is full.
    pub(crate) fn rooms(&mut self, max: usize) -> Vec<IoSliceMut<'_>> {
        let limit = BATCH_TEXT_LEN.min(self.text_len.saturating_add(max));
        let mut pos = self.text_len;
        let mut rooms = Vec::with_capacity(BATCH_CHUNKS);
        let first_slot = pos / CHUNK_LEN;
        for (slot_index, slot) in self.buf.chunks_mut(SLOT_LEN).enumerate().skip(first_slot) {
            // Each piece but the last fills its chunk, so the next starts a chunk.
            let Some(in_chunk) = pos
                .checked_sub(slot_index * CHUNK_LEN)
                .filter(|_| pos < limit)
            else {
                break;
            };
            let len = (CHUNK_LEN - in_chunk).min(limit.saturating_sub(pos));
            let Some(room) = slot
                .get_mut(in_chunk..in_chunk + len)
                .filter(|r| !r.is_empty())
            else {
                break;
            };
            rooms.push(IoSliceMut::new(room));
            pos += len;
        }
        rooms
    }

    /// Free room in the current chunk while filling, at most `max` bytes; empty when the
    /// batch is full.
    pub(crate) fn room(&mut self, max: usize) -> &mut [u8] {
        let pos = self.text_len;
        let limit = BATCH_TEXT_LEN.min(pos.saturating_add(max));
        self.text_at(pos, limit)
    }

    /// Plaintext from byte `pos` to the end of its chunk (or of the text), at most `max`.
    pub(crate) fn text_from(&mut self, pos: usize, max: usize) -> &[u8] {
        let limit = self.text_len.min(pos.saturating_add(max));
        self.text_at(pos, limit)
    }

    /// Whether the batch holds a full batch of plaintext.
    pub(crate) fn is_full(&self) -> bool {
        self.text_len >= BATCH_TEXT_LEN
    }
}

/// Where in a batch's buffer plaintext byte `pos` lives, up to the end of its chunk or
/// `limit`.
fn text_span(pos: usize, limit: usize) -> Range<usize> {
    let in_chunk = pos % CHUNK_LEN;
    let start = (pos / CHUNK_LEN) * SLOT_LEN + in_chunk;
    let len = (CHUNK_LEN - in_chunk).min(limit.saturating_sub(pos));
    start..start.saturating_add(len)
}

/// Which way a pipeline works.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    /// Encrypt each chunk, then hash the ciphertext.
    Seal,
    /// Hash the ciphertext, then verify and decrypt each chunk.
    Open,
}

/// The helper thread stopped (it cannot be made to by any input; a bug or no memory).
#[derive(Debug)]
pub(crate) struct PipelineStopped;

/// Seals or opens batches in submission order, hashing the ciphertext as it goes.
pub(crate) struct ChunkPipeline {
    engine: Engine,
    in_flight: usize,
    /// The running hash of the section's content, shared with the helper (sealing).
    content: Arc<ContentHash>,
    /// The caller's own copy of the cipher, to seal chunks while the helper is busy.
    assist: Option<ChaCha20Poly1305>,
    /// The oldest batches, taken back early while checking whether the helper was busy.
    early: VecDeque<Processed>,
}

/// A processed batch and how many of its chunks are good (all, when sealing).
pub(crate) type Processed = (Batch, usize);

enum Engine {
    /// Each batch is processed on the caller's thread when submitted.
    Inline {
        worker: ChunkWorker,
        done: VecDeque<Processed>,
    },
    /// Batches go to one helper thread, which returns its ciphertext hash when done.
    Threaded {
        jobs: Option<Sender<Batch>>,
        done: Receiver<Processed>,
        helper: Option<JoinHandle<Sha256>>,
    },
}

impl ChunkPipeline {
    /// A pipeline for a section of `chunks` chunks under `key`; it starts a helper thread
    /// only if the section spans more than one batch.
    pub(crate) fn new(key: &[u8; 32], direction: Direction, chunks: u64) -> Self {
        let content = Arc::new(ContentHash::new());
        let inline = || Engine::Inline {
            worker: ChunkWorker::new(key, direction, Arc::clone(&content)),
            done: VecDeque::with_capacity(BATCHES_IN_FLIGHT),
        };
        let engine = if chunks <= BATCH_CHUNKS as u64 {
            inline()
        } else {
            let (jobs, job_rx) = mpsc::channel::<Batch>();
            let (done_tx, done) = mpsc::channel();
            let mut worker = ChunkWorker::new(key, direction, Arc::clone(&content));
            let spawned = thread::Builder::new()
                .name("liaise-stream".into())
                .spawn(move || {
                    while let Ok(mut batch) = job_rx.recv() {
                        let good = worker.process(&mut batch);
                        if done_tx.send((batch, good)).is_err() {
                            break;
                        }
                    }
                    worker.hash
                });
            match spawned {
                Ok(helper) => Engine::Threaded {
                    jobs: Some(jobs),
                    done,
                    helper: Some(helper),
                },
                // No thread to be had: do the work here instead.
                Err(_) => inline(),
            }
        };
        let assist = match (&engine, direction) {
            (Engine::Threaded { .. }, Direction::Seal) => {
                Some(ChaCha20Poly1305::new(&(*key).into()))
            }
            _ => None,
        };
        Self {
            engine,
            in_flight: 0,
            content,
            assist,
            early: VecDeque::new(),
        }
    }

    /// Batches submitted and not yet received.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The running hash of the section's content.
    pub(crate) fn content_hash(&self) -> &ContentHash {
        &self.content
    }

    /// Hands a batch over; the caller must keep at most [`BATCHES_IN_FLIGHT`] in flight.
    pub(crate) fn submit(&mut self, mut batch: Batch) -> Result<(), PipelineStopped> {
        match &mut self.engine {
            Engine::Inline { worker, done } => {
                let good = worker.process(&mut batch);
                done.push_back((batch, good));
            }
            Engine::Threaded { jobs, .. } => jobs
                .as_ref()
                .ok_or(PipelineStopped)?
                .send(batch)
                .map_err(|_| PipelineStopped)?,
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Before submitting `batch` to be sealed: while the helper is still busy with an
    /// earlier batch, hashes the batch's content and then seals its chunks from the back on
    /// the caller's thread, so that the two threads share the work whatever their other
    /// loads (reading, writing). Does nothing without a helper thread or when opening.
    pub(crate) fn assist(&mut self, batch: &mut Batch) {
        if self.assist.is_none() || !self.take_content(batch) {
            return;
        }
        while batch.presealed < batch.chunks() && self.helper_busy() {
            let Some(cipher) = &self.assist else {
                return;
            };
            let k = batch.chunks() - 1 - batch.presealed;
            if !seal_chunk(cipher, batch, k) {
                return;
            }
            batch.presealed += 1;
        }
    }

    /// Hashes the batch's content on the caller's thread if the helper is busy, waiting for
    /// its turn while the helper hashes earlier content; returns whether it did (or the
    /// batch has no content to hash). With the helper idle, it is left to the helper.
    fn take_content(&mut self, batch: &mut Batch) -> bool {
        while self.helper_busy() {
            if self.content.try_hash_batch(batch) {
                return true;
            }
            self.content.wait_for_turn(batch, TURN_POLL);
        }
        false
    }

    /// Whether the helper still has batches to process (taking back those it is done with).
    fn helper_busy(&mut self) -> bool {
        let Engine::Threaded { done, .. } = &self.engine else {
            return false;
        };
        while self.early.len() < self.in_flight {
            match done.try_recv() {
                Ok(processed) => self.early.push_back(processed),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        false
    }

    /// The oldest submitted batch, processed; waits for it if needed.
    pub(crate) fn receive(&mut self) -> Result<Processed, PipelineStopped> {
        if self.in_flight == 0 {
            return Err(PipelineStopped);
        }
        if let Some(processed) = self.early.pop_front() {
            self.in_flight -= 1;
            return Ok(processed);
        }
        let processed = match &mut self.engine {
            Engine::Inline { done, .. } => done.pop_front().ok_or(PipelineStopped)?,
            Engine::Threaded { done, .. } => done.recv().map_err(|_| PipelineStopped)?,
        };
        self.in_flight -= 1;
        Ok(processed)
    }

    /// The SHA-256 of all the ciphertext that went through, once everything was received.
    pub(crate) fn finish(mut self) -> Result<CiphertextHash, PipelineStopped> {
        if self.in_flight != 0 {
            return Err(PipelineStopped);
        }
        let hash = match &mut self.engine {
            Engine::Inline { worker, .. } => std::mem::take(&mut worker.hash),
            Engine::Threaded { jobs, helper, .. } => {
                drop(jobs.take());
                helper
                    .take()
                    .ok_or(PipelineStopped)?
                    .join()
                    .map_err(|_| PipelineStopped)?
            }
        };
        Ok(hash.finalize().into())
    }
}

impl Drop for ChunkPipeline {
    /// Stops and joins the helper, so that no thread outlives the section (and with it the
    /// plaintext it might still hold; batches wipe themselves when dropped).
    fn drop(&mut self) {
        if let Engine::Threaded { jobs, helper, .. } = &mut self.engine {
            drop(jobs.take());
            if let Some(helper) = helper.take() {
                let _ = helper.join();
            }
        }
    }
}

/// What processes a batch: the section's cipher, the running ciphertext hash, and the
/// running content hash shared with the caller.
struct ChunkWorker {
    cipher: ChaCha20Poly1305,
    hash: Sha256,
    direction: Direction,
    content: Arc<ContentHash>,
}

impl ChunkWorker {
    fn new(key: &[u8; 32], direction: Direction, content: Arc<ContentHash>) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&(*key).into()),
            hash: Sha256::new(),
            direction,
            content,
        }
    }

    /// Seals or opens the chunks of `batch` in place (when sealing, first hashes its
    /// content unless the caller did, and seals all chunks but the last `presealed`, which
    /// the caller sealed); returns how many chunks are good, from the front (opening stops
    /// at the first chunk that fails to verify).
    fn process(&mut self, batch: &mut Batch) -> usize {
        let chunks = batch.chunks();
        match self.direction {
            Direction::Open => self.hash.update(batch.wire()),
            Direction::Seal => {
                if self.content.hash_batch(batch).is_err() {
                    return 0;
                }
            }
        }
        let todo = match self.direction {
            Direction::Seal => chunks.saturating_sub(batch.presealed),
            Direction::Open => chunks,
        };
        for k in 0..todo {
            let ok = match self.direction {
                Direction::Seal => seal_chunk(&self.cipher, batch, k),
                Direction::Open => open_chunk(&self.cipher, batch, k),
            };
            if !ok {
                return k;
            }
        }
        if let Direction::Seal = self.direction {
            self.hash.update(batch.wire());
        }
        chunks
    }
}

/// Chunk `k` of `batch` as (text, tag), and its nonce.
fn chunk_parts(batch: &mut Batch, k: usize) -> Option<(&mut [u8], &mut [u8], Nonce)> {
    let last = batch.ends_section && k + 1 == batch.chunks();
    let counter = batch.first_counter + k as u64;
    let start = k.checked_mul(SLOT_LEN)?;
    let end = start.saturating_add(SLOT_LEN).min(batch.wire_len());
    let slot = batch.buf.get_mut(start..end)?;
    let (text, tag) = slot.split_at_mut_checked(slot.len().checked_sub(TAG_LEN)?)?;
    Some((text, tag, nonce(counter, last)))
}

/// Encrypts chunk `k` in place and writes its tag.
fn seal_chunk(cipher: &ChaCha20Poly1305, batch: &mut Batch, k: usize) -> bool {
    let Some((text, tag, nonce)) = chunk_parts(batch, k) else {
        return false;
    };
    cipher
        .encrypt_inout_detached(&nonce, &[], text.into())
        .map(|t| tag.copy_from_slice(&t))
        .is_ok()
}

/// Verifies chunk `k` and decrypts it in place.
fn open_chunk(cipher: &ChaCha20Poly1305, batch: &mut Batch, k: usize) -> bool {
    let Some((text, tag, nonce)) = chunk_parts(batch, k) else {
        return false;
    };
    Tag::try_from(&*tag).is_ok_and(|t| {
        cipher
            .decrypt_inout_detached(&nonce, &[], text.into(), &t)
            .is_ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn full_batch(text_len: usize, ends_section: bool) -> Batch {
        let mut batch = Batch::with_capacity(BATCH_CHUNKS * SLOT_LEN);
        batch.reset(7);
        while batch.text_len < text_len {
            let room = batch.room(text_len - batch.text_len);
            let n = room.len();
            for (i, b) in room.iter_mut().enumerate() {
                *b = (i % 253) as u8;
            }
            batch.text_len += n;
        }
        batch.ends_section = ends_section;
        batch
    }

    #[test]
    fn chunks_sealed_by_the_caller_match_chunks_sealed_by_the_worker() {
        let key = [9u8; 32];
        for (text_len, ends) in [
            (BATCH_TEXT_LEN, true),
            (BATCH_TEXT_LEN, false),
            (BATCH_TEXT_LEN - 1, true),
            (3 * CHUNK_LEN + 1, true),
        ] {
            let mut reference = full_batch(text_len, ends);
            let mut worker = ChunkWorker::new(&key, Direction::Seal, Arc::new(ContentHash::new()));
            assert_eq!(worker.process(&mut reference), reference.chunks());
            let caller = ChaCha20Poly1305::new(&key.into());
            for presealed in [1, 2, reference.chunks() - 1, reference.chunks()] {
                let mut batch = full_batch(text_len, ends);
                for k in (batch.chunks() - presealed..batch.chunks()).rev() {
                    assert!(seal_chunk(&caller, &mut batch, k));
                }
                batch.presealed = presealed;
                let mut worker =
                    ChunkWorker::new(&key, Direction::Seal, Arc::new(ContentHash::new()));
                assert_eq!(worker.process(&mut batch), batch.chunks());
                assert!(batch.wire() == reference.wire(), "{text_len} {presealed}");
                let mut opener =
                    ChunkWorker::new(&key, Direction::Open, Arc::new(ContentHash::new()));
                assert_eq!(opener.process(&mut batch), batch.chunks());
                assert!(
                    batch.wire()[..CHUNK_LEN] == full_batch(text_len, ends).wire()[..CHUNK_LEN]
                );
            }
        }
    }

    #[test]
    fn batch_layout_leaves_room_for_each_tag() {
        let mut batch = full_batch(CHUNK_LEN + 5, true);
        assert_eq!(batch.chunks(), 2);
        assert_eq!(batch.wire_len(), CHUNK_LEN + 5 + 2 * TAG_LEN);
        assert_eq!(batch.next_counter(), 9);
        assert_eq!(batch.text_from(CHUNK_LEN - 3, 100).len(), 3);
        assert_eq!(batch.text_from(CHUNK_LEN, 100).len(), 5);
        assert!(!batch.is_full());
        assert!(full_batch(BATCH_TEXT_LEN, false).is_full());
    }
}
