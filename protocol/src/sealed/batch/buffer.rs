//! One batch: up to [`BATCH_CHUNKS`] consecutive STREAM chunks of one section, laid out as
//! on the wire (each chunk's text followed by its tag), and sealing or opening one chunk of it
//! in place under `u88(counter) || u8(last)`.

use std::io::IoSliceMut;
use std::ops::Range;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use zeroize::Zeroizing;

use crate::sealed::stream::nonce;
use crate::sealed::{CHUNK_LEN, TAG_LEN};

/// Chunks per batch: 16 × 64 KiB, so 1 MiB of plaintext is handed over at a time.
pub(crate) const BATCH_CHUNKS: usize = 16;
/// Wire bytes of one full chunk.
pub(crate) const SLOT_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Plaintext bytes of one full batch.
pub(crate) const BATCH_TEXT_LEN: usize = BATCH_CHUNKS * CHUNK_LEN;

/// Consecutive chunks of one section, as on the wire.
pub(crate) struct Batch {
    /// Room for the wire bytes; only the first [`Batch::wire_len`] bytes are in use.
    pub(super) buf: Zeroizing<Vec<u8>>,
    /// Plaintext bytes in the batch.
    pub(crate) text_len: usize,
    /// STREAM counter of the first chunk.
    pub(crate) first_counter: u64,
    /// Whether the batch's last chunk is the section's last chunk.
    pub(crate) ends_section: bool,
    /// Chunks at the end of the batch already sealed by the caller's thread.
    pub(super) presealed: usize,
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
pub(super) fn seal_chunk(cipher: &ChaCha20Poly1305, batch: &mut Batch, k: usize) -> bool {
    let Some((text, tag, nonce)) = chunk_parts(batch, k) else {
        return false;
    };
    cipher
        .encrypt_inout_detached(&nonce, &[], text.into())
        .map(|t| tag.copy_from_slice(&t))
        .is_ok()
}

/// Verifies chunk `k` and decrypts it in place.
pub(super) fn open_chunk(cipher: &ChaCha20Poly1305, batch: &mut Batch, k: usize) -> bool {
    let Some((text, tag, nonce)) = chunk_parts(batch, k) else {
        return false;
    };
    Tag::try_from(&*tag).is_ok_and(|t| {
        cipher
            .decrypt_inout_detached(&nonce, &[], text.into(), &t)
            .is_ok()
    })
}
