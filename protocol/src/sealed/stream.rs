//! STREAM payload encryption (spec: "Payload (STREAM)").
//!
//! A section's padded plaintext is cut into 64 KiB chunks, each sealed with ChaCha20-Poly1305
//! (RFC 8439) under the nonce `u88(counter) || u8(last)`. The padded length is known up front
//! (it is in the signed header), so both sides know exactly which chunk is the last one.
//! While streaming, the encryptor and decryptor also hash the ciphertext (SHA-256, for the
//! signature transcript).

use std::io::{self, Read, Write};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::sealed::error::OpenError;
use crate::sealed::{CHUNK_LEN, TAG_LEN};

/// SHA-256 of a section's ciphertext, as it goes into the signature transcript.
pub(crate) type CiphertextHash = [u8; 32];

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

/// Encrypts one section's padded plaintext to `out`, chunk by chunk.
pub(crate) struct StreamEncryptor<'w> {
    cipher: ChaCha20Poly1305,
    out: &'w mut dyn Write,
    padded_len: u64,
    consumed: u64,
    counter: u64,
    buf: Zeroizing<Vec<u8>>,
    ciphertext_hash: Sha256,
}

impl<'w> StreamEncryptor<'w> {
    pub(crate) fn new(payload_key: &[u8; 32], padded_len: u64, out: &'w mut dyn Write) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&(*payload_key).into()),
            out,
            padded_len,
            consumed: 0,
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK_LEN + TAG_LEN)),
            ciphertext_hash: Sha256::new(),
        }
    }

    /// Feeds plaintext. Fails if more than the padded length is fed.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        let remaining = self.padded_len - self.consumed;
        if data.len() as u64 > remaining {
            return Err(io::Error::other(
                "section plaintext longer than its padded length",
            ));
        }
        while !data.is_empty() {
            let room = CHUNK_LEN - self.buf.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            self.consumed += now.len() as u64;
            data = rest;
            let last = self.consumed == self.padded_len;
            if self.buf.len() == CHUNK_LEN || last {
                self.seal_chunk(last)?;
            }
        }
        Ok(())
    }

    /// Feeds `count` zero bytes (padding).
    pub(crate) fn push_zeros(&mut self, mut count: u64) -> io::Result<()> {
        let zeros = [0u8; 4096];
        while count > 0 {
            let n = count.min(zeros.len() as u64) as usize;
            self.push(zeros.get(..n).unwrap_or(&[]))?;
            count -= n as u64;
        }
        Ok(())
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &nonce(self.counter, last),
                &[],
                self.buf.as_mut_slice().into(),
            )
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        self.buf.extend_from_slice(&tag);
        self.ciphertext_hash.update(self.buf.as_slice());
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Ends the section; all `padded_len` bytes must have been fed.
    pub(crate) fn finish(self) -> io::Result<CiphertextHash> {
        if self.consumed != self.padded_len || self.padded_len == 0 {
            return Err(io::Error::other(
                "section plaintext shorter than its padded length",
            ));
        }
        Ok(self.ciphertext_hash.finalize().into())
    }
}

/// Decrypts one section from `input`, which must hold exactly its ciphertext next.
pub(crate) struct StreamDecryptor<'r, R: Read> {
    cipher: ChaCha20Poly1305,
    input: &'r mut R,
    padded_len: u64,
    chunks: u64,
    counter: u64,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    ciphertext_hash: Sha256,
}

impl<'r, R: Read> StreamDecryptor<'r, R> {
    pub(crate) fn new(payload_key: &[u8; 32], padded_len: u64, input: &'r mut R) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&(*payload_key).into()),
            input,
            padded_len,
            chunks: chunk_count(padded_len),
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK_LEN + TAG_LEN)),
            pos: 0,
            ciphertext_hash: Sha256::new(),
        }
    }

    /// Up to `max` bytes of plaintext (at least 1 unless the section is exhausted).
    pub(crate) fn read_some(&mut self, max: usize) -> Result<&[u8], OpenError> {
        if self.pos == self.buf.len() && self.counter < self.chunks {
            self.open_chunk()?;
        }
        let start = self.pos;
        let end = self.buf.len().min(start.saturating_add(max));
        self.pos = end;
        Ok(self.buf.get(start..end).unwrap_or(&[]))
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

    fn open_chunk(&mut self) -> Result<(), OpenError> {
        let last = self.counter + 1 == self.chunks;
        let plain_len = if last {
            self.padded_len - self.counter * CHUNK_LEN as u64
        } else {
            CHUNK_LEN as u64
        } as usize;
        self.buf.resize(plain_len + TAG_LEN, 0);
        self.input
            .read_exact(&mut self.buf)
            .map_err(OpenError::from_read)?;
        self.ciphertext_hash.update(self.buf.as_slice());
        let tag_bytes = self.buf.split_off(plain_len);
        let tag = Tag::try_from(tag_bytes.as_slice()).map_err(|_| OpenError::VerificationFailed)?;
        self.cipher
            .decrypt_inout_detached(
                &nonce(self.counter, last),
                &[],
                self.buf.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| OpenError::VerificationFailed)?;
        self.counter += 1;
        self.pos = 0;
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
        Ok(self.ciphertext_hash.finalize().into())
    }
}

/// Reads past a section this reader cannot decrypt, hashing its ciphertext.
pub(crate) fn skip_section<R: Read>(
    input: &mut R,
    padded_len: u64,
) -> Result<CiphertextHash, OpenError> {
    let mut remaining = ciphertext_len(padded_len);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK_LEN + TAG_LEN];
    while remaining > 0 {
        let n = remaining.min(buf.len() as u64) as usize;
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        input.read_exact(part).map_err(OpenError::from_read)?;
        hash.update(&*part);
        remaining -= n as u64;
    }
    Ok(hash.finalize().into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sealed::derive::payload_key;

    fn encrypt(plain: &[u8]) -> (Vec<u8>, CiphertextHash) {
        let key = Zeroizing::new([5u8; 32]);
        let id = [6u8; 16];
        let mut out = Vec::new();
        let mut enc =
            StreamEncryptor::new(&payload_key(&key, &id, 0), plain.len() as u64, &mut out);
        // Feed in odd-sized pieces to exercise buffering.
        for piece in plain.chunks(1000) {
            enc.push(piece).unwrap();
        }
        let digest = enc.finish().unwrap();
        (out, digest)
    }

    fn decrypt(ct: &[u8], padded_len: u64) -> Result<(Vec<u8>, CiphertextHash), OpenError> {
        let key = Zeroizing::new([5u8; 32]);
        let id = [6u8; 16];
        let mut input = ct;
        let mut dec = StreamDecryptor::new(&payload_key(&key, &id, 0), padded_len, &mut input);
        let mut plain = Vec::new();
        loop {
            let part = dec.read_some(777)?;
            if part.is_empty() {
                break;
            }
            plain.extend_from_slice(part);
        }
        let digest = dec.finish_with_zero_padding()?;
        Ok((plain, digest))
    }

    #[test]
    fn round_trip_at_chunk_boundaries() {
        for len in [
            1,
            100,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            2 * CHUNK_LEN,
            2 * CHUNK_LEN + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
            let (ct, digest) = encrypt(&plain);
            assert_eq!(ct.len() as u64, ciphertext_len(len as u64));
            let (back, digest2) = decrypt(&ct, len as u64).unwrap();
            assert_eq!(back, plain);
            assert_eq!(digest, digest2);
            assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&ct)));
        }
    }

    #[test]
    fn truncation_reordering_and_flips_fail() {
        let plain = vec![1u8; 2 * CHUNK_LEN + 10];
        let (ct, _) = encrypt(&plain);
        let len = plain.len() as u64;
        // Truncation at chunk boundaries is an early end.
        for cut in [
            0,
            1,
            CHUNK_LEN + TAG_LEN,
            2 * (CHUNK_LEN + TAG_LEN),
            ct.len() - 1,
        ] {
            assert!(
                matches!(decrypt(&ct[..cut], len), Err(OpenError::Truncated)),
                "cut {cut}"
            );
        }
        // Swapping the first two chunks fails authentication.
        let c = CHUNK_LEN + TAG_LEN;
        let mut swapped = ct[c..2 * c].to_vec();
        swapped.extend_from_slice(&ct[..c]);
        swapped.extend_from_slice(&ct[2 * c..]);
        assert!(matches!(
            decrypt(&swapped, len),
            Err(OpenError::VerificationFailed)
        ));
        // Dropping the final chunk and declaring the shorter length: the new last chunk
        // was sealed as non-final.
        assert!(matches!(
            decrypt(&ct[..2 * c], 2 * CHUNK_LEN as u64),
            Err(OpenError::VerificationFailed)
        ));
        for i in (0..ct.len()).step_by(4099) {
            let mut bad = ct.clone();
            bad[i] ^= 0x40;
            assert!(matches!(
                decrypt(&bad, len),
                Err(OpenError::VerificationFailed)
            ));
        }
    }

    #[test]
    fn nonzero_padding_is_refused_and_overlong_input_is_refused() {
        let key = Zeroizing::new([5u8; 32]);
        let id = [6u8; 16];
        for (plain, ok) in [(&[0u8, 0, 0][..], true), (&[0, 0, 7][..], false)] {
            let (ct, _) = encrypt(plain);
            let mut input = ct.as_slice();
            let dec = StreamDecryptor::new(&payload_key(&key, &id, 0), 3, &mut input);
            let result = dec.finish_with_zero_padding();
            assert_eq!(result.is_ok(), ok);
            assert!(ok || matches!(result, Err(OpenError::VerificationFailed)));
        }
        let mut out = Vec::new();
        let mut enc = StreamEncryptor::new(&payload_key(&key, &[0; 16], 0), 2, &mut out);
        assert!(enc.push(&[1, 2, 3]).is_err());
    }

    #[test]
    fn nonce_layout() {
        let n = nonce(0x0102, true);
        assert_eq!(n.as_slice(), &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1]);
        assert_eq!(nonce(0, false).as_slice(), &[0u8; 12]);
    }
}
