//! The SHA-256 of a section's content while sealing, taken by whichever thread is free.
//!
//! The content hash (the SSHSIG message hash, spec: "Section plaintext") must see the content
//! in order, and before its chunks are encrypted in place. When a long section is sealed,
//! each batch says which of its plaintext bytes are content ([`Batch::content`]); the
//! caller's thread hashes them if the helper thread is still busy with earlier batches, and
//! otherwise the helper hashes them before it encrypts the batch. So the work goes to the
//! thread that has time for it, whether reading and writing or encrypting is slower.
//!
//! The running hash is shared behind a mutex together with the stream offset it has reached,
//! and a batch's content is hashed only when its turn has come: never twice, never out of
//! order. The caller hashes a batch before submitting it or not at all (it may wait for its
//! turn while the helper hashes the batch before), and the helper takes batches in
//! submission order, so the helper always finds the turn at its batch.

use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::sealed::batch::{Batch, PipelineStopped};

/// The running content hash of one section, shared by the caller and the helper thread.
pub(crate) struct ContentHash {
    running: Mutex<Running>,
    /// Signalled whenever the hash moves on.
    moved: Condvar,
}

struct Running {
    hash: Sha256,
    /// Stream offset of the next content byte to hash.
    through: u64,
}

impl ContentHash {
    pub(crate) fn new() -> Self {
        Self {
            running: Mutex::new(Running {
                hash: Sha256::new(),
                through: 0,
            }),
            moved: Condvar::new(),
        }
    }

    /// Starts a new hash, of content that begins at stream offset `start`.
    pub(crate) fn restart(&self, start: u64) -> Result<(), PipelineStopped> {
        let mut running = self.running.lock().map_err(|_| PipelineStopped)?;
        running.hash = Sha256::new();
        running.through = start;
        Ok(())
    }

    /// Hashes the content bytes of `batch`, waiting for the hash if another thread holds
    /// it. It must be the batch's turn (anything else is a bug: sealing stops).
    pub(crate) fn hash_batch(&self, batch: &mut Batch) -> Result<(), PipelineStopped> {
        if batch.content.is_empty() {
            return Ok(());
        }
        let running = self.running.lock().map_err(|_| PipelineStopped)?;
        if self.hash_if_turn(running, batch) {
            Ok(())
        } else {
            Err(PipelineStopped)
        }
    }

    /// Hashes the content bytes of `batch` if the hash is free and it is the batch's turn;
    /// returns whether the batch's content is now hashed (true if it has none).
    pub(crate) fn try_hash_batch(&self, batch: &mut Batch) -> bool {
        if batch.content.is_empty() {
            return true;
        }
        match self.running.try_lock() {
            Ok(running) => self.hash_if_turn(running, batch),
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => false,
        }
    }

    /// Waits until it is the turn of `batch`, or at most `timeout`.
    pub(crate) fn wait_for_turn(&self, batch: &Batch, timeout: Duration) {
        let turn = batch.stream_offset(batch.content.start);
        if let Ok(running) = self.running.lock() {
            let _ = self
                .moved
                .wait_timeout_while(running, timeout, |r| r.through != turn);
        }
    }

    /// The digest of everything hashed since the last [`ContentHash::restart`].
    pub(crate) fn digest(&self) -> Result<[u8; 32], PipelineStopped> {
        let mut running = self.running.lock().map_err(|_| PipelineStopped)?;
        Ok(std::mem::take(&mut running.hash).finalize().into())
    }

    fn hash_if_turn(&self, mut running: MutexGuard<'_, Running>, batch: &mut Batch) -> bool {
        let range = batch.content.clone();
        if running.through != batch.stream_offset(range.start) {
            return false;
        }
        let mut hashed = 0;
        for part in batch.text(range.clone()) {
            running.hash.update(part);
            hashed += part.len();
        }
        if hashed != range.len() {
            return false;
        }
        running.through = batch.stream_offset(range.end);
        batch.content = range.end..range.end;
        drop(running);
        self.moved.notify_all();
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sealed::CHUNK_LEN;
    use crate::sealed::batch::{BATCH_CHUNKS, SLOT_LEN};

    fn batch(first_counter: u64, text_len: usize, content: std::ops::Range<usize>) -> Batch {
        let mut batch = Batch::with_capacity(BATCH_CHUNKS * SLOT_LEN);
        batch.reset(first_counter);
        while batch.text_len < text_len {
            let pos = batch.text_len;
            let room = batch.room(text_len - pos);
            let n = room.len();
            for (i, b) in room.iter_mut().enumerate() {
                *b = ((pos + i) % 251) as u8;
            }
            batch.text_len += n;
        }
        batch.content = content;
        batch
    }

    #[test]
    fn batches_are_hashed_in_turn_only_and_once() {
        let hash = ContentHash::new();
        let start = 3 * CHUNK_LEN as u64 + 10;
        hash.restart(start).unwrap();
        // Two consecutive batches of 2 chunks; the content starts 10 bytes into the first.
        let mut first = batch(3, 2 * CHUNK_LEN, 10..2 * CHUNK_LEN);
        let mut second = batch(5, 2 * CHUNK_LEN, 0..CHUNK_LEN + 7);
        assert!(!hash.try_hash_batch(&mut second), "not its turn yet");
        assert!(hash.hash_batch(&mut second).is_err());
        assert!(hash.try_hash_batch(&mut first));
        assert!(first.content.is_empty());
        assert!(hash.try_hash_batch(&mut first), "nothing left to hash");
        hash.hash_batch(&mut second).unwrap();
        let mut expected = Sha256::new();
        for (len, skip, take) in [
            (2 * CHUNK_LEN, 10, 2 * CHUNK_LEN - 10),
            (2 * CHUNK_LEN, 0, CHUNK_LEN + 7),
        ] {
            let text: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            expected.update(&text[skip..skip + take]);
        }
        assert_eq!(
            hash.digest().unwrap(),
            <[u8; 32]>::from(expected.finalize())
        );
    }
}
