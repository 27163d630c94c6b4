//! Where a stored sealed document's bytes are: a file in the blob folder, or, for a document
//! of at most [`INLINE_MAX_LEN`] bytes, a row of the database.
//!
//! A small document held as a file costs more than its bytes: creating the file, an fsync of
//! it, a rename and an fsync of the folder, on each node. In the database it is written in the
//! same group commit as its outbox or inbox row, so a thousand small documents arriving
//! together share a few fsyncs and create no file at all. SQLite documents the same effect
//! for blobs of this size ("35% Faster Than The Filesystem", <https://sqlite.org/fasterthanfs.html>).
//! Larger documents stay files: they stream in constant memory and resume from a partial file.
//! So do the forwarded documents a forwarder queues for a new reader (rare, and written by
//! copying the held document behind the consent).
//!
//! Both kinds are named by the same content hash, so every reader asks for a hash and gets
//! a [`Held`]; nothing outside this module needs to know which kind it got.

use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::blobs::hex;

/// The largest document kept in the database instead of a file of its own.
pub const INLINE_MAX_LEN: u64 = 256 * 1024;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inline_blobs (
    hash TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
";

/// A reader of a held document that can also seek (to skip a forwarding consent and back).
pub trait ReadSeek: Read + Seek + Send {}

impl<T: Read + Seek + Send> ReadSeek for T {}

/// A sealed document's bytes: a file, or the bytes themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// A file: a blob in the store, or a file a user named.
    File(PathBuf),
    /// The bytes of a small document kept in the database.
    Inline(Vec<u8>),
}

impl Held {
    /// Reads the document from its first byte.
    pub fn open(&self) -> Result<Box<dyn ReadSeek + '_>> {
        match self {
            Self::File(path) => {
                let file = open_regular(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Ok(Box::new(file))
            }
            Self::Inline(bytes) => Ok(Box::new(Cursor::new(bytes.as_slice()))),
        }
    }

    /// The document's length in bytes.
    pub fn sealed_len(&self) -> Result<u64> {
        match self {
            Self::File(path) => Ok(std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .len()),
            Self::Inline(bytes) => Ok(bytes.len() as u64),
        }
    }
}

/// Opens `path` for reading only if it is a regular file, without blocking on the way (a
/// FIFO put in its place would hold the open for ever).
fn open_regular(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    // Regular files never block; the flag is cleared all the same.
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok(file)
}

/// Keeps `bytes` (a document of at most [`INLINE_MAX_LEN`]) under its content hash; a
/// document held already is kept as it is. Part of the caller's transaction.
pub fn put(conn: &Connection, hash: &[u8; 32], bytes: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO inline_blobs (hash, bytes) VALUES (?1, ?2)")?
        .execute(params![hex(hash), bytes])
        .context("cannot store the document in the database")?;
    Ok(())
}

/// The bytes held in the database under `hash`, if any.
pub fn get(conn: &Connection, hash: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT bytes FROM inline_blobs WHERE hash = ?1")?
        .query_row([hex(hash)], |r| r.get(0))
        .optional()
        .context("cannot read a document from the database")
}

/// Removes the bytes held in the database under `hash`. With `secure_delete` on, SQLite
/// zeroes the freed pages of the database file; the write-ahead log keeps its frames until
/// they are checkpointed and overwritten, as a deleted file's blocks stay on disk until reused.
pub fn remove(conn: &Connection, hash: &[u8; 32]) -> Result<()> {
    conn.prepare_cached("DELETE FROM inline_blobs WHERE hash = ?1")?
        .execute([hex(hash)])
        .context("cannot delete a document from the database")?;
    Ok(())
}

/// The document with content hash `hash`: in the database, else the file `blob` in the blob
/// folder; `None` if neither holds it.
pub fn find(conn: &Connection, hash: &[u8; 32], blob: &Path) -> Result<Option<Held>> {
    if let Some(bytes) = get(conn, hash)? {
        return Ok(Some(Held::Inline(bytes)));
    }
    Ok(blob.exists().then(|| Held::File(blob.to_path_buf())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_found_in_the_database_or_as_a_file_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::db::open_writer(&dir.path().join("t.db")).unwrap();
        let (small, large) = ([1u8; 32], [2u8; 32]);
        let file = dir.path().join("large");
        std::fs::write(&file, b"file bytes").unwrap();
        put(&conn, &small, b"inline bytes").unwrap();
        // The same hash again keeps the first bytes (content-addressed: they are the same).
        put(&conn, &small, b"other").unwrap();

        let inline = find(&conn, &small, &dir.path().join("absent"))
            .unwrap()
            .unwrap();
        let on_disk = find(&conn, &large, &file).unwrap().unwrap();
        for (held, want) in [
            (inline, &b"inline bytes"[..]),
            (on_disk, &b"file bytes"[..]),
        ] {
            let mut read = Vec::new();
            held.open().unwrap().read_to_end(&mut read).unwrap();
            assert_eq!(read, want);
            assert_eq!(held.sealed_len().unwrap(), want.len() as u64);
        }
        assert_eq!(
            find(&conn, &[3; 32], &dir.path().join("absent")).unwrap(),
            None
        );

        remove(&conn, &small).unwrap();
        assert_eq!(get(&conn, &small).unwrap(), None);
    }
}
