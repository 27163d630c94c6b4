//! Sealed documents as files in a content-addressed folder.
//!
//! ```text
//! store/blobs/<sha256-hex>                         complete sealed documents (read-only, 0600)
//! store/incoming/<sender>-<doc-id>-<sha256>.partial  transfers in progress (resumable)
//! store/staging/                                   private temporary files, emptied at start
//! ```
//!
//! A blob appears only by `rename` of a complete, fsynced file, followed by an fsync of the
//! folder: a crash leaves either nothing or the whole document.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use liaise_keys::AgencyId;
use sha2::{Digest, Sha256};

use crate::fsutil::create_private_dir;

/// Bytes read or written per step when copying and hashing.
pub const COPY_BUFFER_LEN: usize = 1024 * 1024;

/// The blob folders of a store.
#[derive(Debug, Clone)]
pub struct Blobs {
    blobs: PathBuf,
    incoming: PathBuf,
    staging: PathBuf,
}

/// Lowercase hex of bytes (content hashes, document ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase or uppercase hex of exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Blobs {
    /// The folders under `store`, created private; stale staging files are removed.
    pub fn open(store: &Path) -> Result<Self> {
        let blobs = Self {
            blobs: store.join("blobs"),
            incoming: store.join("incoming"),
            staging: store.join("staging"),
        };
        for dir in [&blobs.blobs, &blobs.incoming, &blobs.staging] {
            create_private_dir(dir)?;
        }
        if let Ok(entries) = fs::read_dir(&blobs.staging) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(blobs)
    }

    /// Where the blob with this content hash lives.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.blobs.join(hex(hash))
    }

    /// Where an incoming transfer is kept until it is complete.
    pub fn partial_path(&self, sender: &AgencyId, doc_id: &[u8; 16], hash: &[u8; 32]) -> PathBuf {
        // Agency ids are dot-separated `a-z0-9-` labels: safe in a file name.
        self.incoming.join(format!(
            "{}-{}-{}.partial",
            sender.as_str(),
            hex(doc_id),
            hex(hash)
        ))
    }

    /// Copies a file into the store, hashing it on the way. Returns its hash and length.
    pub fn put_file(&self, source: &Path) -> Result<([u8; 32], u64)> {
        let mut input =
            File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        let tmp = self.staging.join(format!(
            "put-{}",
            hex(&liaise_keys::random::random_bytes::<8>())
        ));
        let result = (|| -> Result<([u8; 32], u64)> {
            let mut out = private_file(&tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; COPY_BUFFER_LEN];
            let mut len = 0u64;
            loop {
                let n = input.read(&mut buf)?;
                let Some(chunk) = buf.get(..n) else { break };
                if n == 0 {
                    break;
                }
                hasher.update(chunk);
                out.write_all(chunk)?;
                len += n as u64;
            }
            out.sync_all()?;
            let hash: [u8; 32] = hasher.finalize().into();
            self.install(&tmp, &hash)?;
            Ok((hash, len))
        })();
        let _ = fs::remove_file(&tmp);
        result.with_context(|| format!("cannot store {}", source.display()))
    }

    /// Takes a file into the store by renaming it (no copy) after hashing and fsyncing it;
    /// copies when the file is on another filesystem.
    pub fn adopt_file(&self, source: &Path) -> Result<([u8; 32], u64)> {
        let mut file =
            File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; COPY_BUFFER_LEN];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            len += n as u64;
        }
        file.sync_all()?;
        let hash: [u8; 32] = hasher.finalize().into();
        match self.install(source, &hash) {
            Ok(_) => Ok((hash, len)),
            Err(_) => {
                let copied = self.put_file(source)?;
                let _ = fs::remove_file(source);
                Ok(copied)
            }
        }
    }

    /// Moves a complete, fsynced file into place as the blob `hash` (keeping an existing
    /// identical blob), and fsyncs the folders.
    pub fn install(&self, complete: &Path, hash: &[u8; 32]) -> Result<PathBuf> {
        let target = self.path(hash);
        if target.exists() {
            fs::remove_file(complete).ok();
        } else {
            fs::rename(complete, &target)
                .with_context(|| format!("cannot move a document into {}", target.display()))?;
        }
        sync_dir(&self.blobs)?;
        if let Some(parent) = complete.parent() {
            sync_dir(parent)?;
        }
        Ok(target)
    }
}

/// Creates (or truncates) a private file.
pub fn private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// fsyncs a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_limits() {
        let id = [0xab_u8; 16];
        assert_eq!(parse_hex::<16>(&hex(&id)), Some(id));
        assert_eq!(parse_hex::<16>(&hex(&id)[1..]), None);
        assert_eq!(parse_hex::<16>("zz".repeat(16).as_str()), None);
        assert_eq!(parse_hex::<16>("é".repeat(16).as_str()), None);
    }

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&dir.path().join("store")).unwrap();
        let src = dir.path().join("doc");
        fs::write(&src, vec![5u8; 3 * COPY_BUFFER_LEN + 7]).unwrap();
        let (hash, len) = blobs.put_file(&src).unwrap();
        assert_eq!(len, 3 * COPY_BUFFER_LEN as u64 + 7);
        assert_eq!(
            hash,
            <[u8; 32]>::from(Sha256::digest(fs::read(&src).unwrap()))
        );
        assert_eq!(blobs.put_file(&src).unwrap().0, hash);
        assert_eq!(
            fs::read(blobs.path(&hash)).unwrap(),
            fs::read(&src).unwrap()
        );
        assert_eq!(
            fs::read_dir(dir.path().join("store/staging"))
                .unwrap()
                .count(),
            0
        );
    }
}
