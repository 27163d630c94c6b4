//! Batches sealed on either thread match, and their layout.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::sealed::{CHUNK_LEN, TAG_LEN};

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
            let mut worker = ChunkWorker::new(&key, Direction::Seal, Arc::new(ContentHash::new()));
            assert_eq!(worker.process(&mut batch), batch.chunks());
            assert!(batch.wire() == reference.wire(), "{text_len} {presealed}");
            let mut opener = ChunkWorker::new(&key, Direction::Open, Arc::new(ContentHash::new()));
            assert_eq!(opener.process(&mut batch), batch.chunks());
            assert!(batch.wire()[..CHUNK_LEN] == full_batch(text_len, ends).wire()[..CHUNK_LEN]);
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
