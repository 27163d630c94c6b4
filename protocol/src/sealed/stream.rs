//! STREAM payload encryption (spec: "Payload (STREAM)").
//!
//! A section's padded plaintext is cut into 64 KiB chunks, each sealed with ChaCha20-Poly1305
//! (RFC 8439) under the nonce `u88(counter) || u8(last)`. The padded length is known up front
//! (it is in the signed header), so both sides know exactly which chunk is the last one.
//! While streaming, the encryptor and decryptor also hash the ciphertext (BLAKE3, for the
//! signature transcript). Chunks travel in batches of 16 (see [`crate::sealed::batch`]), which
//! changes nothing on the wire.

use std::io::{self, BufRead, Read, Write};
use std::ops::Range;

use chacha20poly1305::Nonce;

use crate::sealed::batch::{
    BATCH_CHUNKS, BATCHES_IN_FLIGHT, Batch, ChunkPipeline, Direction, PipelineStopped, SLOT_LEN,
};
use crate::sealed::error::OpenError;
use crate::sealed::{CHUNK_LEN, TAG_LEN};

/// BLAKE3 of a section's ciphertext, as it goes into the signature transcript.
pub(crate) type CiphertextHash = [u8; 32];

/// The running hash of a section's ciphertext (BLAKE3, spec: "Conventions"): every verifier
/// hashes every ciphertext byte, so it is the fastest standard-track hash this machine has
/// (about 3.6 times SHA-256 with SHA-NI here), not SHA-256.
pub(crate) type CiphertextHasher = blake3::Hasher;

/// BLAKE3 of `bytes`, all at once.
#[cfg(test)]
pub(crate) fn ciphertext_hash(bytes: &[u8]) -> CiphertextHash {
    blake3::hash(bytes).into()
}

/// Number of chunks for a padded plaintext length (at least 1).
pub(crate) fn chunk_count(padded_len: u64) -> u64 {
    padded_len.div_ceil(CHUNK_LEN as u64).max(1)
}

/// Ciphertext length for a padded plaintext length.
pub(crate) fn ciphertext_len(padded_len: u64) -> u64 {
    padded_len.saturating_add(chunk_count(padded_len).saturating_mul(TAG_LEN as u64))
}

pub(crate) fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    for (slot, byte) in n.iter_mut().skip(3).zip(counter.to_be_bytes()) {
        *slot = byte;
    }
    if last {
        n[11] = 1;
    }
    Nonce::from(n)
}

/// Wire bytes a batch buffer needs for a section (or its rest) of `padded_len` bytes.
fn wire_capacity(padded_len: u64) -> usize {
    usize::try_from(ciphertext_len(padded_len))
        .unwrap_or(usize::MAX)
        .min(BATCH_CHUNKS * SLOT_LEN)
}

fn stopped(_: PipelineStopped) -> io::Error {
    io::Error::other("STREAM helper thread stopped")
}

/// Why content could not be fed from a reader.
#[derive(Debug)]
pub(crate) enum FeedError {
    /// Reading the content failed.
    Read(io::Error),
    /// The content ended before the length it was declared to have.
    ShortContent,
    /// Writing the ciphertext failed.
    Write(io::Error),
}

/// Encrypts one section's padded plaintext to `out`, a batch of chunks at a time.
///
/// Plaintext is placed straight into its chunk's place in a batch buffer (content is read
/// into all of a batch's chunks with one vectored read), sealed in place (on a helper thread
/// for sections longer than a batch, see [`ChunkPipeline`]), and the batch is written with
/// one `write_all`: no per-chunk allocation or copy.
pub(crate) struct StreamEncryptor<'w> {
    out: &'w mut dyn Write,
    padded_len: u64,
    consumed: u64,
    filling: Batch,
    /// Batches written out and free for reuse.
    spare: Vec<Batch>,
    /// Stream offsets of the content being fed by [`StreamEncryptor::push_from`].
    content: Option<Range<u64>>,
    pipeline: ChunkPipeline,
}

impl<'w> StreamEncryptor<'w> {
    pub(crate) fn new(payload_key: &[u8; 32], padded_len: u64, out: &'w mut dyn Write) -> Self {
        Self {
            out,
            padded_len,
            consumed: 0,
            filling: Batch::with_capacity(wire_capacity(padded_len)),
            spare: Vec::new(),
            content: None,
            pipeline: ChunkPipeline::new(payload_key, Direction::Seal, chunk_count(padded_len)),
        }
    }

    /// Feeds plaintext. Fails if more than the padded length is fed.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.check_room(data.len() as u64)?;
        while !data.is_empty() {
            let room = self.room(data.len() as u64)?;
            let (now, rest) = data
                .split_at_checked(room.len())
                .ok_or_else(|| io::Error::other("batch room larger than asked for"))?;
            room.copy_from_slice(now);
            let n = now.len();
            data = rest;
            self.advance(n)?;
        }
        Ok(())
    }

    /// Feeds `count` zero bytes (padding).
    pub(crate) fn push_zeros(&mut self, mut count: u64) -> io::Result<()> {
        self.check_room(count)?;
        while count > 0 {
            let room = self.room(count)?;
            room.fill(0);
            let n = room.len();
            count -= n as u64;
            self.advance(n)?;
        }
        Ok(())
    }

    /// Feeds exactly `len` bytes of content read from `input`, read straight into the
    /// batches, and returns their SHA-256 (hashed on whichever thread has time for it, see
    /// [`crate::sealed::content_hash`]).
    pub(crate) fn push_from(
        &mut self,
        input: &mut dyn Read,
        len: u64,
    ) -> Result<[u8; 32], FeedError> {
        self.check_room(len).map_err(FeedError::Write)?;
        let stopped_write = |stop| FeedError::Write(stopped(stop));
        self.pipeline
            .content_hash()
            .restart(self.consumed)
            .map_err(stopped_write)?;
        self.content = Some(self.consumed..self.consumed + len);
        let mut remaining = len;
        while remaining > 0 {
            let max = usize::try_from(remaining).unwrap_or(usize::MAX);
            let mut rooms = self.filling.rooms(max);
            let room_len: usize = rooms.iter().map(|r| r.len()).sum();
            if room_len == 0 {
                return Err(FeedError::Write(io::Error::other(
                    "no room in the STREAM batch",
                )));
            }
            let n = loop {
                match input.read_vectored(&mut rooms) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other.map_err(FeedError::Read)?,
                }
            };
            drop(rooms);
            if n == 0 {
                return Err(FeedError::ShortContent);
            }
            if n > room_len {
                return Err(FeedError::Read(io::Error::other(
                    "the content reader claims more bytes than it was given room for",
                )));
            }
            remaining -= n as u64;
            self.advance(n).map_err(FeedError::Write)?;
        }
        let digest = self.finish_content().map_err(FeedError::Write);
        self.content = None;
        digest
    }

    /// Once all content is fed: writes out the batches in flight (so that all of their
    /// content is hashed), hashes the content still in the batch being filled, and returns
    /// the digest.
    fn finish_content(&mut self) -> io::Result<[u8; 32]> {
        while self.pipeline.in_flight() > 0 {
            let batch = self.write_oldest()?;
            self.spare.push(batch);
        }
        self.mark_content(true);
        let hash = self.pipeline.content_hash();
        hash.hash_batch(&mut self.filling).map_err(stopped)?;
        hash.digest().map_err(stopped)
    }

    /// Marks which plaintext bytes of the batch being filled are content still to be hashed
    /// (if `unhashed`; none otherwise).
    fn mark_content(&mut self, unhashed: bool) {
        let batch = &mut self.filling;
        batch.content = 0..0;
        let Some(content) = self.content.as_ref().filter(|_| unhashed) else {
            return;
        };
        let start = batch.stream_offset(0);
        let end = batch.stream_offset(batch.text_len);
        let from = content.start.clamp(start, end) - start;
        let to = content.end.clamp(start, end) - start;
        if let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to)) {
            batch.content = from..to;
        }
    }

    fn check_room(&self, len: u64) -> io::Result<()> {
        if len > self.padded_len - self.consumed {
            return Err(io::Error::other(
                "section plaintext longer than its padded length",
            ));
        }
        Ok(())
    }

    /// Free room in the current chunk, at most `max` bytes and never empty.
    fn room(&mut self, max: u64) -> io::Result<&mut [u8]> {
        let max = usize::try_from(max.min(self.padded_len - self.consumed)).unwrap_or(usize::MAX);
        let room = self.filling.room(max);
        if room.is_empty() {
            return Err(io::Error::other("no room in the STREAM batch"));
        }
        Ok(room)
    }

    /// Accounts for `n` bytes just placed; hands the batch on when it is full or the last.
    fn advance(&mut self, n: usize) -> io::Result<()> {
        self.consumed += n as u64;
        self.filling.text_len += n;
        let last = self.consumed == self.padded_len;
        if !(self.filling.is_full() || last) {
            return Ok(());
        }
        let next_counter = self.filling.next_counter();
        self.filling.ends_section = last;
        // Content fed by `push_from` is hashed on the way, unless its last part is still
        // here when it ends (`finish_content` hashes that part).
        self.mark_content(self.content.is_some());
        let mut full = std::mem::replace(&mut self.filling, Batch::with_capacity(0));
        self.pipeline.assist(&mut full);
        self.pipeline.submit(full).map_err(stopped)?;
        if last {
            return Ok(());
        }
        self.filling = if self.pipeline.in_flight() >= BATCHES_IN_FLIGHT {
            self.write_oldest()?
        } else if let Some(spare) = self.spare.pop() {
            spare
        } else {
            Batch::with_capacity(wire_capacity(self.padded_len - self.consumed))
        };
        self.filling.reset(next_counter);
        Ok(())
    }

    /// Writes the oldest sealed batch out and returns it for reuse.
    fn write_oldest(&mut self) -> io::Result<Batch> {
        let (batch, good) = self.pipeline.receive().map_err(stopped)?;
        if good != batch.chunks() {
            return Err(io::Error::other("chunk encryption failed"));
        }
        self.out.write_all(batch.wire())?;
        Ok(batch)
    }

    /// Ends the section; all `padded_len` bytes must have been fed.
    pub(crate) fn finish(mut self) -> io::Result<CiphertextHash> {
        if self.consumed != self.padded_len || self.padded_len == 0 {
            return Err(io::Error::other(
                "section plaintext shorter than its padded length",
            ));
        }
        while self.pipeline.in_flight() > 0 {
            self.write_oldest()?;
        }
        self.pipeline.finish().map_err(stopped)
    }
}

/// Decrypts one section from `input`, which must hold exactly its ciphertext next.
///
/// Reads a batch ahead: while the caller takes the plaintext of one batch, the next is
/// verified and decrypted (on a helper thread for sections longer than a batch). Plaintext
/// is handed out only from chunks whose tag verified, in order; a failure is reported where
/// the chunk-by-chunk reading would have met it.
pub(crate) struct StreamDecryptor<'r, R: Read> {
    input: &'r mut R,
    padded_len: u64,
    chunks: u64,
    /// Chunks read from `input` and submitted.
    read_chunks: u64,
    /// The batch being handed out, and how far into its plaintext.
    current: Option<Batch>,
    pos: usize,
    /// A free buffer for the next read.
    spare: Option<Batch>,
    /// Reading stopped with this error; reported after the batches read before it.
    read_error: Option<OpenError>,
    /// A chunk right after the current batch's plaintext failed to verify.
    failed: bool,
    pipeline: ChunkPipeline,
}

impl<'r, R: Read> StreamDecryptor<'r, R> {
    pub(crate) fn new(payload_key: &[u8; 32], padded_len: u64, input: &'r mut R) -> Self {
        let chunks = chunk_count(padded_len);
        Self {
            input,
            padded_len,
            chunks,
            read_chunks: 0,
            current: None,
            pos: 0,
            spare: None,
            read_error: None,
            failed: false,
            pipeline: ChunkPipeline::new(payload_key, Direction::Open, chunks),
        }
    }

    /// Up to `max` bytes of plaintext (at least 1 unless the section is exhausted).
    pub(crate) fn read_some(&mut self, max: usize) -> Result<&[u8], OpenError> {
        if self
            .current
            .as_ref()
            .is_none_or(|batch| self.pos >= batch.text_len)
        {
            self.next_batch()?;
        }
        let Some(batch) = self.current.as_mut() else {
            return Ok(&[]);
        };
        let part = batch.text_from(self.pos, max);
        self.pos += part.len();
        Ok(part)
    }

    /// Exactly `out.len()` bytes of plaintext; running out is a verification failure (the
    /// framing inside the authenticated plaintext disagrees with the signed length).
    pub(crate) fn read_exact(&mut self, out: &mut [u8]) -> Result<(), OpenError> {
        let mut filled = 0;
        while filled < out.len() {
            let chunk = self.read_some(out.len() - filled)?;
            if chunk.is_empty() {
                return Err(OpenError::VerificationFailed);
            }
            let n = chunk.len();
            if let Some(dst) = out.get_mut(filled..filled + n) {
                dst.copy_from_slice(chunk);
            }
            filled += n;
        }
        Ok(())
    }

    /// Moves on to the next verified batch; leaves `current` empty at the section's end.
    fn next_batch(&mut self) -> Result<(), OpenError> {
        if self.failed {
            return Err(OpenError::VerificationFailed);
        }
        if let Some(done) = self.current.take() {
            self.spare = Some(done);
        }
        self.pos = 0;
        self.read_ahead()?;
        if self.pipeline.in_flight() == 0 {
            return self.read_error.take().map_or(Ok(()), Err);
        }
        let (mut batch, good) = self.pipeline.receive().map_err(helper_stopped)?;
        if good < batch.chunks() {
            // Chunks before the failed one are whole chunks, and verified.
            self.failed = true;
            batch.text_len = good * CHUNK_LEN;
            if good == 0 {
                return Err(OpenError::VerificationFailed);
            }
        }
        self.current = Some(batch);
        Ok(())
    }

    /// Reads and submits batches until [`BATCHES_IN_FLIGHT`] are in flight, the section's
    /// ciphertext is all read, or reading fails (what was read whole is still submitted).
    fn read_ahead(&mut self) -> Result<(), OpenError> {
        while self.pipeline.in_flight() < BATCHES_IN_FLIGHT
            && self.read_chunks < self.chunks
            && self.read_error.is_none()
        {
            let rest = self.padded_len - self.read_chunks * CHUNK_LEN as u64;
            let mut batch = self
                .spare
                .take()
                .unwrap_or_else(|| Batch::with_capacity(wire_capacity(rest)));
            batch.reset(self.read_chunks);
            let n = (self.chunks - self.read_chunks).min(BATCH_CHUNKS as u64) as usize;
            let ends = self.read_chunks + n as u64 == self.chunks;
            let text_len = if ends {
                usize::try_from(rest).unwrap_or(usize::MAX)
            } else {
                n * CHUNK_LEN
            };
            let wire_len = text_len + n * TAG_LEN;
            let room = batch.wire_room(0, wire_len);
            if room.len() != wire_len {
                return Err(helper_stopped(PipelineStopped));
            }
            match read_full(self.input, room) {
                (_, None) => {
                    batch.text_len = text_len;
                    batch.ends_section = ends;
                }
                (filled, Some(err)) => {
                    self.read_error = Some(OpenError::from_read(err));
                    batch.text_len = (filled / SLOT_LEN).min(n.saturating_sub(1)) * CHUNK_LEN;
                }
            }
            self.read_chunks += batch.chunks() as u64;
            if batch.chunks() == 0 {
                self.spare = Some(batch);
                break;
            }
            self.pipeline.submit(batch).map_err(helper_stopped)?;
        }
        Ok(())
    }

    /// Reads the rest of the section, which must be zero padding, and returns its digest.
    pub(crate) fn finish_with_zero_padding(mut self) -> Result<CiphertextHash, OpenError> {
        loop {
            let rest = self.read_some(CHUNK_LEN)?;
            if rest.is_empty() {
                break;
            }
            if rest.iter().any(|b| *b != 0) {
                return Err(OpenError::VerificationFailed);
            }
        }
        self.pipeline.finish().map_err(helper_stopped)
    }
}

fn helper_stopped(stop: PipelineStopped) -> OpenError {
    OpenError::Read(stopped(stop))
}

/// Reads until `buf` is full; returns how much was read and, if it was not filled, why.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match input.read(rest) {
            Ok(0) => return (filled, Some(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// Reads past a section this reader cannot decrypt, hashing its ciphertext.
pub(crate) fn skip_section<R: Read>(
    input: &mut R,
    padded_len: u64,
) -> Result<CiphertextHash, OpenError> {
    let mut remaining = ciphertext_len(padded_len);
    let mut hash = CiphertextHasher::new();
    let mut buf = vec![0u8; wire_capacity(padded_len)];
    while remaining > 0 {
        let n = remaining.min(buf.len() as u64) as usize;
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        input.read_exact(part).map_err(OpenError::from_read)?;
        hash.update(&*part);
        remaining -= n as u64;
    }
    Ok(hash.finalize().into())
}

/// [`skip_section`] over buffered input: hashes the ciphertext in the input's own buffers.
pub(crate) fn skip_section_buffered<R: BufRead>(
    input: &mut R,
    padded_len: u64,
) -> Result<CiphertextHash, OpenError> {
    let mut remaining = ciphertext_len(padded_len);
    let mut hash = CiphertextHasher::new();
    while remaining > 0 {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(OpenError::from_read(e)),
        };
        if available.is_empty() {
            return Err(OpenError::Truncated);
        }
        let n = usize::try_from(remaining).map_or(available.len(), |r| r.min(available.len()));
        hash.update(available.get(..n).unwrap_or_default());
        input.consume(n);
        remaining -= n as u64;
    }
    Ok(hash.finalize().into())
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
