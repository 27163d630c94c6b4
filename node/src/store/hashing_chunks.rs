//! A file read in chunks for a [`BufRead`] consumer (the signature check of a submitted
//! document) while a second thread takes the content hash of the same chunks: the two
//! passes over every byte run side by side instead of one after the other, and no byte is
//! copied for either.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use liaise_protocol::wire::ContentHasher;

/// Bytes read from the file at a time.
pub const CHUNK_LEN: usize = 1024 * 1024;
/// Chunks queued for the hashing thread before the reader waits for it.
const HASH_QUEUE_LEN: usize = 4;

/// A file's bytes in order, hashed on a thread of their own as they are read.
#[derive(Debug)]
pub struct HashingChunks {
    file: File,
    current: Arc<Vec<u8>>,
    at: usize,
    len: u64,
    to_hasher: Option<SyncSender<Arc<Vec<u8>>>>,
    hasher: Option<JoinHandle<[u8; 32]>>,
}

impl HashingChunks {
    /// Reads `file` from where it stands.
    pub fn new(file: File) -> io::Result<Self> {
        let (to_hasher, chunks) = sync_channel::<Arc<Vec<u8>>>(HASH_QUEUE_LEN);
        let hasher = std::thread::Builder::new()
            .name("liaise-hash".into())
            .spawn(move || {
                let mut hasher = ContentHasher::new();
                for chunk in chunks {
                    hasher.update(&chunk);
                }
                hasher.finalize()
            })?;
        Ok(Self {
            file,
            current: Arc::default(),
            at: 0,
            len: 0,
            to_hasher: Some(to_hasher),
            hasher: Some(hasher),
        })
    }

    /// Reads the rest of the file: the content hash and length of all of it, and the file.
    pub fn finish(mut self) -> io::Result<([u8; 32], u64, File)> {
        loop {
            let n = self.fill_buf()?.len();
            if n == 0 {
                break;
            }
            self.consume(n);
        }
        self.to_hasher = None;
        let hash = self
            .hasher
            .take()
            .ok_or_else(|| io::Error::other("the hashing thread is gone"))?
            .join()
            .map_err(|_| io::Error::other("the hashing thread failed"))?;
        Ok((hash, self.len, self.file))
    }

    /// The next chunk of the file (empty at its end), handed to the hashing thread too.
    fn next_chunk(&mut self) -> io::Result<Arc<Vec<u8>>> {
        let mut chunk = Vec::with_capacity(CHUNK_LEN);
        (&mut self.file)
            .take(CHUNK_LEN as u64)
            .read_to_end(&mut chunk)?;
        let chunk = Arc::new(chunk);
        if !chunk.is_empty() {
            self.len += chunk.len() as u64;
            let sent = self
                .to_hasher
                .as_ref()
                .is_some_and(|hasher| hasher.send(Arc::clone(&chunk)).is_ok());
            if !sent {
                return Err(io::Error::other("the hashing thread stopped"));
            }
        }
        Ok(chunk)
    }
}

impl BufRead for HashingChunks {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at >= self.current.len() {
            self.current = self.next_chunk()?;
            self.at = 0;
        }
        Ok(self.current.get(self.at..).unwrap_or_default())
    }

    fn consume(&mut self, amount: usize) {
        self.at = self.at.saturating_add(amount).min(self.current.len());
    }
}

impl Read for HashingChunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::buffered::read_buffered(self, buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Write;

    use liaise_protocol::wire::content_hash;

    use super::*;

    #[test]
    fn every_byte_is_read_in_order_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc");
        // Three and a half chunks, so that reads end inside and at the end of chunks.
        let bytes: Vec<u8> = (0..CHUNK_LEN * 7 / 2).map(|i| (i % 253) as u8).collect();
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        let mut chunks = HashingChunks::new(File::open(&path).unwrap()).unwrap();
        // A consumer reads part of it through `Read`, in odd sizes...
        let mut head = vec![0u8; 1_000_003];
        chunks.read_exact(&mut head).unwrap();
        assert_eq!(head, bytes[..head.len()]);
        // ... and the rest is read by `finish`, which hashes every byte.
        let (hash, len, _) = chunks.finish().unwrap();
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(hash, content_hash(&bytes));
        // An empty file.
        let empty = dir.path().join("empty");
        File::create(&empty).unwrap();
        let (hash, len, _) = HashingChunks::new(File::open(&empty).unwrap())
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!((hash, len), (content_hash(b""), 0));
    }
}
