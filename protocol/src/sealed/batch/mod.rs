//! Batches of STREAM chunks, sealed or opened on a helper thread.
//!
//! The format is unchanged by batching: each chunk is still sealed on its own under
//! `u88(counter) || u8(last)`. A batch is just up to [`BATCH_CHUNKS`] consecutive chunks of
//! one section, laid out as on the wire (each chunk's text followed by its tag), so that it
//! can be sealed or opened in place and written or hashed in one piece.
//!
//! Sections longer than one batch are processed by a [`ChunkPipeline`] with one helper
//! thread: while the caller's thread reads and writes, the helper encrypts or decrypts the
//! chunks and hashes the ciphertext (BLAKE3 for the transcript). When sealing, the work
//! that can go either way goes to whichever thread has time for it: the caller hashes a
//! batch's content (see [`crate::sealed::content_hash`]) and seals chunks itself while the
//! helper is still busy with earlier batches; otherwise the helper does both. This is
//! computation only: the helper does no I/O, sees no clock, and is joined before the
//! pipeline is dropped. The caller keeps at most [`BATCHES_IN_FLIGHT`] batches submitted, so
//! memory stays at a few MiB whatever the section length. Shorter sections are processed on
//! the caller's thread, without spawning anything.

mod buffer;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::{self, JoinHandle};

use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

use crate::sealed::content_hash::ContentHash;
use crate::sealed::stream::{CiphertextHash, CiphertextHasher};

#[cfg(test)]
pub(crate) use buffer::BATCH_TEXT_LEN;
pub(crate) use buffer::{BATCH_CHUNKS, Batch, SLOT_LEN};
use buffer::{open_chunk, seal_chunk};

/// Batches a caller may have submitted and not yet received back (one being processed, the
/// others waiting), on top of the one it is filling or reading: enough that a slow read or
/// write does not leave the helper idle.
pub(crate) const BATCHES_IN_FLIGHT: usize = 4;
/// How long the caller waits at a time for its turn at the content hash before it checks
/// whether the helper is still busy.
const TURN_POLL: std::time::Duration = std::time::Duration::from_millis(1);

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
        worker: Box<ChunkWorker>,
        done: VecDeque<Processed>,
    },
    /// Batches go to one helper thread, which returns its ciphertext hash when done.
    Threaded {
        jobs: Option<Sender<Batch>>,
        done: Receiver<Processed>,
        helper: Option<JoinHandle<CiphertextHasher>>,
    },
}

impl ChunkPipeline {
    /// A pipeline for a section of `chunks` chunks under `key`; it starts a helper thread
    /// only if the section spans more than one batch.
    pub(crate) fn new(key: &[u8; 32], direction: Direction, chunks: u64) -> Self {
        let content = Arc::new(ContentHash::new());
        let inline = || Engine::Inline {
            worker: Box::new(ChunkWorker::new(key, direction, Arc::clone(&content))),
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

    /// The BLAKE3 of all the ciphertext that went through, once everything was received.
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
    hash: CiphertextHasher,
    direction: Direction,
    content: Arc<ContentHash>,
}

impl ChunkWorker {
    fn new(key: &[u8; 32], direction: Direction, content: Arc<ContentHash>) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&(*key).into()),
            hash: CiphertextHasher::new(),
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
            Direction::Open => {
                self.hash.update(batch.wire());
            }
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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
