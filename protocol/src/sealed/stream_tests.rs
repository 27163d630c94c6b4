//! Tests of STREAM: round trips, chunk and batch boundaries, truncation, tampering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::*;
use crate::sealed::batch::BATCH_TEXT_LEN;
use crate::sealed::derive::payload_key;

fn encrypt(plain: &[u8]) -> (Vec<u8>, CiphertextHash) {
    let key = Zeroizing::new([5u8; 32]);
    let id = [6u8; 16];
    let mut out = Vec::new();
    let mut enc = StreamEncryptor::new(&payload_key(&key, &id, 0), plain.len() as u64, &mut out);
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
        assert_eq!(digest, ciphertext_hash(&ct));
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

// Batching: the helper thread runs for sections longer than BATCH_CHUNKS chunks.

const B: usize = BATCH_TEXT_LEN;

fn test_key() -> [u8; 32] {
    *payload_key(&Zeroizing::new([5u8; 32]), &[6u8; 16], 0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// STREAM written out plainly, one chunk at a time, to hold the batched code to.
fn reference_encrypt(plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(&test_key().into());
    let count = plain.len().div_ceil(CHUNK_LEN);
    let mut out = Vec::new();
    for (i, chunk) in plain.chunks(CHUNK_LEN).enumerate() {
        let mut buf = chunk.to_vec();
        let tag = cipher
            .encrypt_inout_detached(
                &nonce(i as u64, i + 1 == count),
                &[],
                buf.as_mut_slice().into(),
            )
            .unwrap();
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
    }
    out
}

/// Everything the decryptor hands out before it stops, and why it stopped.
fn decrypt_until_error(ct: &[u8], padded_len: u64) -> (Vec<u8>, Result<(), OpenError>) {
    let key = test_key();
    let mut input = ct;
    let mut dec = StreamDecryptor::new(&key, padded_len, &mut input);
    let mut plain = Vec::new();
    loop {
        match dec.read_some(CHUNK_LEN) {
            Ok([]) => break,
            Ok(part) => plain.extend_from_slice(part),
            Err(e) => return (plain, Err(e)),
        }
    }
    (plain, dec.finish_with_zero_padding().map(|_| ()))
}

/// A reader that hands out at most `step` bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn batches_match_chunk_by_chunk_stream_at_batch_boundaries() {
    for len in [
        B - 1,
        B,
        B + 1,
        2 * B - 1,
        2 * B,
        2 * B + CHUNK_LEN + 3,
        3 * B + 1,
    ] {
        let plain = pattern(len);
        let expected = reference_encrypt(&plain);
        let (ct, digest) = encrypt(&plain);
        assert!(ct == expected, "ciphertext differs at len {len}");
        assert_eq!(digest, ciphertext_hash(&ct));
        let (back, digest2) = decrypt(&ct, len as u64).unwrap();
        assert!(back == plain, "plaintext differs at len {len}");
        assert_eq!(digest, digest2);
    }
}

#[test]
fn content_is_read_straight_in_and_hashed() {
    let key = test_key();
    for (len, step) in [(2 * B + 5, 4099), (B + 1, B + 7), (100, 1)] {
        let plain = pattern(len);
        let mut out = Vec::new();
        let mut enc = StreamEncryptor::new(&key, len as u64, &mut out);
        let mut reader = Trickle { data: &plain, step };
        let digest = enc.push_from(&mut reader, len as u64).unwrap();
        enc.finish().unwrap();
        assert!(out == reference_encrypt(&plain));
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&plain)));
    }
    // Content that ends early, or fails, is reported as such.
    let plain = pattern(B + 10);
    let mut out = Vec::new();
    let mut enc = StreamEncryptor::new(&key, 2 * B as u64, &mut out);
    let mut reader = Trickle {
        data: &plain,
        step: 5000,
    };
    let result = enc.push_from(&mut reader, 2 * B as u64);
    assert!(matches!(result, Err(FeedError::ShortContent)));
    let mut failing = Trickle { data: &[], step: 1 }.chain(FailingReader);
    let mut enc = StreamEncryptor::new(&key, 10, &mut out);
    let result = enc.push_from(&mut failing, 10);
    assert!(matches!(result, Err(FeedError::Read(_))));
}

#[test]
fn content_between_other_plaintext_is_hashed_alone_and_in_order() {
    // As when sealing: a prefix, the content (read in, vectored when the reader can), a
    // suffix. The content spans several batches, so the caller and the helper share its hash.
    let key = test_key();
    for (prefix, content_len, suffix) in [
        (11, 5 * B + 3, 300),
        (B - 1, 2 * B + 2, 1),
        (CHUNK_LEN, B, CHUNK_LEN),
        (5, 10, 5),
    ] {
        let plain = pattern(prefix + content_len + suffix);
        let content = &plain[prefix..prefix + content_len];
        for vectored in [true, false] {
            let mut out = Vec::new();
            let mut enc = StreamEncryptor::new(&key, plain.len() as u64, &mut out);
            enc.push(&plain[..prefix]).unwrap();
            let digest = if vectored {
                enc.push_from(&mut &content[..], content_len as u64)
            } else {
                let mut reader = Trickle {
                    data: content,
                    step: 3 * CHUNK_LEN + 1,
                };
                enc.push_from(&mut reader, content_len as u64)
            }
            .unwrap();
            enc.push(&plain[prefix + content_len..]).unwrap();
            enc.finish().unwrap();
            assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(content)));
            assert!(out == reference_encrypt(&plain), "{prefix} {content_len}");
        }
    }
}

struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn truncation_mid_batch_hands_out_only_whole_verified_chunks() {
    let len = 2 * B + CHUNK_LEN + 3; // 34 chunks: batches of 16, 16 and 2
    let plain = pattern(len);
    let ct = reference_encrypt(&plain);
    let slot = CHUNK_LEN + TAG_LEN;
    for cut in [
        0,
        100,
        5 * slot + 100,
        16 * slot,
        16 * slot + 1,
        20 * slot - 1,
        32 * slot,
        33 * slot + 10,
        ct.len() - 1,
    ] {
        let (got, result) = decrypt_until_error(&ct[..cut], len as u64);
        assert!(matches!(result, Err(OpenError::Truncated)), "cut {cut}");
        assert_eq!(got.len(), cut / slot * CHUNK_LEN, "cut {cut}");
        assert!(got == plain[..got.len()], "cut {cut}");
    }
}

#[test]
fn tampering_mid_batch_stops_before_the_bad_chunk() {
    let len = 2 * B + CHUNK_LEN + 3;
    let plain = pattern(len);
    let ct = reference_encrypt(&plain);
    let slot = CHUNK_LEN + TAG_LEN;
    for bad_chunk in [0, 1, 15, 16, 17, 31, 32, 33] {
        let mut bad = ct.clone();
        bad[bad_chunk * slot + 2] ^= 0x01;
        let (got, result) = decrypt_until_error(&bad, len as u64);
        assert!(
            matches!(result, Err(OpenError::VerificationFailed)),
            "chunk {bad_chunk}"
        );
        assert!(got == plain[..bad_chunk * CHUNK_LEN], "chunk {bad_chunk}");
        // A bad chunk before a truncation is reported first, as chunk by chunk would.
        let (got, result) = decrypt_until_error(&bad[..33 * slot + 1], len as u64);
        if bad_chunk < 33 {
            assert!(matches!(result, Err(OpenError::VerificationFailed)));
        } else {
            assert!(matches!(result, Err(OpenError::Truncated)));
        }
        assert_eq!(got.len(), bad_chunk * CHUNK_LEN);
    }
    // Declaring the section a batch shorter: its new last chunk was sealed as non-final.
    let (got, result) = decrypt_until_error(&ct[..16 * slot], B as u64);
    assert!(matches!(result, Err(OpenError::VerificationFailed)));
    assert!(got == plain[..15 * CHUNK_LEN]);
}

#[test]
fn decryptor_reads_exactly_its_section_and_dropping_midway_returns() {
    let len = 2 * B + 7;
    let plain = pattern(len);
    let mut input = reference_encrypt(&plain);
    input.extend_from_slice(b"next section");
    let key = test_key();
    let mut reader = input.as_slice();
    let dec = StreamDecryptor::new(&key, len as u64, &mut reader);
    let digest = dec.finish_with_zero_padding();
    // The content is not zero padding, but the whole section was still read, no more.
    assert!(matches!(digest, Err(OpenError::VerificationFailed)));
    let mut reader = input.as_slice();
    let mut dec = StreamDecryptor::new(&key, len as u64, &mut reader);
    assert_eq!(dec.read_some(10).unwrap(), &plain[..10]);
    drop(dec); // joins the helper thread with a batch still in flight
    let mut reader = input.as_slice();
    let mut dec = StreamDecryptor::new(&key, len as u64, &mut reader);
    let mut back = vec![0u8; len];
    dec.read_exact(&mut back).unwrap();
    assert!(back == plain);
    dec.finish_with_zero_padding().unwrap();
    assert_eq!(reader, b"next section");

    let mut out = Vec::new();
    let mut enc = StreamEncryptor::new(&key, 3 * B as u64, &mut out);
    enc.push(&pattern(2 * B)).unwrap();
    drop(enc); // the same on the sealing side
    assert!(out.len() <= 2 * B + 32 * TAG_LEN);
}
