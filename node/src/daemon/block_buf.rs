//! A byte buffer whose first byte sits at an address aligned for direct I/O, so that a chunk
//! read from the network can be written to disk with `O_DIRECT` as it is, without a copy into
//! an aligned buffer first (see [`super::direct_append`]).

use std::ops::{Deref, DerefMut};

use super::direct_append::DIRECT_ALIGN;

/// Up to `capacity` bytes, the first at a [`DIRECT_ALIGN`]ed address (where the allocator
/// allows it; [`Self::is_aligned`] says).
#[derive(Debug, Default)]
pub struct BlockBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl BlockBuf {
    /// An aligned buffer of `capacity` bytes (zeroed), holding none yet.
    pub fn with_capacity(capacity: usize) -> Self {
        let storage = vec![0u8; capacity + DIRECT_ALIGN];
        let start = storage
            .as_ptr()
            .align_offset(DIRECT_ALIGN)
            .min(DIRECT_ALIGN);
        Self {
            storage,
            start,
            len: 0,
        }
    }

    /// How many bytes it can hold.
    pub fn capacity(&self) -> usize {
        self.storage.len().saturating_sub(self.start)
    }

    /// Makes its length `len` (at most the capacity). The bytes it gains are whatever the
    /// buffer held there before: the caller overwrites them.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity());
    }

    /// Whether its first byte is at a [`DIRECT_ALIGN`]ed address.
    #[cfg(test)]
    pub fn is_aligned(&self) -> bool {
        (self.storage.as_ptr() as usize + self.start).is_multiple_of(DIRECT_ALIGN)
    }

    /// A buffer holding a copy of `bytes` (for tests).
    #[cfg(test)]
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut buf = Self::with_capacity(bytes.len());
        buf.set_len(bytes.len());
        buf.copy_from_slice(bytes);
        buf
    }
}

impl Deref for BlockBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.storage
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

impl DerefMut for BlockBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.storage
            .get_mut(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_block_buffer_is_aligned_and_holds_what_its_length_says() {
        for capacity in [0, 1, DIRECT_ALIGN, 256 * 1024 + 7] {
            let mut buf = BlockBuf::with_capacity(capacity);
            assert!(buf.is_aligned());
            assert!(buf.capacity() >= capacity);
            assert!(buf.is_empty());
            buf.set_len(capacity);
            assert_eq!(buf.len(), capacity);
            buf.fill(7);
            buf.set_len(capacity / 2);
            assert_eq!(&*buf, vec![7u8; capacity / 2].as_slice());
            buf.set_len(usize::MAX);
            assert_eq!(buf.len(), buf.capacity());
        }
        assert_eq!(&*BlockBuf::from_slice(b"abc"), b"abc");
    }
}
