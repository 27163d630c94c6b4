//! Sealed documents as files in a content-addressed folder.
//!
//! ```text
//! store/blobs/<content-hash-hex>                   complete sealed documents (read-only, 0600)
//! store/incoming/<sender>-<doc-id>-<hash>.partial    transfers in progress (resumable)
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
use liaise_protocol::wire::ContentHasher;

use super::install::Installer;
use crate::fsutil::create_private_dir;

/// Bytes read or written per step when copying and hashing.
pub const COPY_BUFFER_LEN: usize = 1024 * 1024;

/// The blob folders of a store.
#[derive(Debug, Clone)]
pub struct Blobs {
    blobs: PathBuf,
    incoming: PathBuf,
    staging: PathBuf,
    installer: Installer,
}

/// Lowercase hex of bytes (content hashes, document ids).
pub fn hex(bytes: &[u8]) -> String {
    // Two digits a byte written straight into one string: this runs for every id, hash and
    // receipt a node stores, and a formatted string per byte showed in its profile.
    let digit = |nibble: u8| char::from_digit(u32::from(nibble), 16).unwrap_or('0');
    let mut text = String::with_capacity(2 * bytes.len());
    for b in bytes {
        text.push(digit(b >> 4));
        text.push(digit(b & 0x0f));
    }
    text
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

/// Parses hex of any even length.
pub fn parse_hex_vec(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

impl Blobs {
    /// The folders under `store`, created private; stale staging files are removed.
    pub fn open(store: &Path) -> Result<Self> {
        let blobs = Self {
            blobs: store.join("blobs"),
            incoming: store.join("incoming"),
            staging: store.join("staging"),
            installer: Installer::start(store.join("blobs"))?,
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

    /// The folder the blobs are kept in (on the store's file system).
    pub fn dir(&self) -> &Path {
        &self.blobs
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
        let input =
            File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        self.put_reader(input)
            .with_context(|| format!("cannot store {}", source.display()))
    }

    /// Copies everything `input` yields into the store, hashing it on the way (durable before
    /// it returns; nothing is left behind on failure). Returns its hash and length.
    pub fn put_reader(&self, mut input: impl Read) -> Result<([u8; 32], u64)> {
        let tmp = self.staging.join(format!(
            "put-{}",
            hex(&liaise_keys::random::random_bytes::<8>())
        ));
        let result = (|| -> Result<([u8; 32], u64)> {
            let mut out = private_file(&tmp)?;
            let mut hasher = ContentHasher::new();
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
            let hash = hasher.finalize();
            self.install(&tmp, &hash)?;
            Ok((hash, len))
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Takes a file into the store by renaming it (no copy) after hashing and fsyncing it;
    /// copies when the file is on another filesystem.
    pub fn adopt_file(&self, source: &Path) -> Result<([u8; 32], u64)> {
        let (hash, len) = hash_and_sync(source)?;
        match self.install(source, &hash) {
            Ok(_) => Ok((hash, len)),
            Err(e) => self.after_failed_install(source, &hash, len, e),
        }
    }

    /// [`Self::adopt_file`] with the rename and folder fsyncs done in a group with other
    /// documents being installed at the same time (see [`super::install`]).
    pub async fn adopt_file_grouped(&self, source: PathBuf) -> Result<([u8; 32], u64)> {
        let hashed = source.clone();
        let (hash, len) = tokio::task::spawn_blocking(move || hash_and_sync(&hashed))
            .await
            .context("the store task failed")??;
        self.adopt_hashed_grouped(source, hash, len).await
    }

    /// [`Self::adopt_file_grouped`] for a file the caller has already hashed (`hash`, `len`,
    /// e.g. with a [`HashingReader`] while verifying it) and fsynced.
    pub async fn adopt_hashed_grouped(
        &self,
        source: PathBuf,
        hash: [u8; 32],
        len: u64,
    ) -> Result<([u8; 32], u64)> {
        match self.install_grouped(source.clone(), &hash).await {
            Ok(_) => Ok((hash, len)),
            Err(e) => {
                let blobs = self.clone();
                tokio::task::spawn_blocking(move || {
                    blobs.after_failed_install(&source, &hash, len, e)
                })
                .await
                .context("the store task failed")?
            }
        }
    }

    /// [`Self::install`] in a group with other documents being installed at the same time
    /// (see [`super::install`]).
    pub async fn install_grouped(&self, complete: PathBuf, hash: &[u8; 32]) -> Result<PathBuf> {
        self.installer.install(complete, self.path(hash)).await
    }

    /// `install` failed: if the source is still there the rename did not happen (another file
    /// system, say), so copy it; if it is gone, the blob is in place and only an fsync
    /// failed, so fsync again rather than copy a file that no longer exists.
    fn after_failed_install(
        &self,
        source: &Path,
        hash: &[u8; 32],
        len: u64,
        error: anyhow::Error,
    ) -> Result<([u8; 32], u64)> {
        if source.exists() {
            let copied = self.put_file(source)?;
            let _ = fs::remove_file(source);
            return Ok(copied);
        }
        if !self.path(hash).exists() {
            return Err(error.context(format!("{} vanished", source.display())));
        }
        sync_dir(&self.blobs).context(error)?;
        Ok((*hash, len))
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

/// A reader that hashes and counts every byte read through it: a document is hashed in the
/// same pass that verifies it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: ContentHasher,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: ContentHasher::new(),
            len: 0,
        }
    }

    /// Reads (and hashes) the rest of the input: the hash and length of all of it, and the
    /// inner reader.
    pub fn finish(mut self) -> std::io::Result<([u8; 32], u64, R)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((self.hasher.finalize(), self.len, self.inner))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.len += n as u64;
        Ok(n)
    }
}

/// Hashes a file and fsyncs it: its hash and length.
fn hash_and_sync(source: &Path) -> Result<([u8; 32], u64)> {
    let mut file =
        File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
    let mut hasher = ContentHasher::new();
    // A small document needs no 1 MiB buffer (one more byte, to see the end in one read).
    let size = file
        .metadata()
        .map_or(COPY_BUFFER_LEN as u64, |m| m.len() + 1);
    let mut buf =
        vec![0u8; usize::try_from(size).map_or(COPY_BUFFER_LEN, |s| s.min(COPY_BUFFER_LEN))];
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
    Ok((hasher.finalize(), len))
}

/// An incoming transfer in progress, as found in the `incoming` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialFile {
    /// The document id (hex).
    pub doc_id: String,
    /// The content hash it was offered with (hex).
    pub hash: String,
    /// Bytes held.
    pub len: u64,
    /// Where it is.
    pub path: PathBuf,
}

impl Blobs {
    /// The partial files held for transfers from `sender`.
    pub fn partials_of(&self, sender: &AgencyId) -> Vec<PartialFile> {
        let Ok(entries) = fs::read_dir(&self.incoming) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (from, doc_id, hash) = parse_partial_name(&name)?;
                if from != sender.as_str() {
                    return None;
                }
                let len = entry.metadata().ok()?.len();
                Some(PartialFile {
                    doc_id: doc_id.to_owned(),
                    hash: hash.to_owned(),
                    len,
                    path: entry.path(),
                })
            })
            .collect()
    }

    /// Deletes the partial files from `sender` under document `doc_id` offered with another
    /// hash than `hash` (all hex): a sender has one document per id, so at most one of them
    /// can ever complete, and a peer must not keep many under one id. Returns how many went.
    pub fn discard_other_partials(&self, sender: &AgencyId, doc_id: &str, hash: &str) -> usize {
        let mut deleted = 0;
        for other in self.partials_of(sender) {
            if other.doc_id == doc_id && other.hash != hash && fs::remove_file(&other.path).is_ok()
            {
                deleted += 1;
            }
        }
        deleted
    }

    /// Deletes partial files not written to for longer than `max_age` (transfers their
    /// senders gave up on). Returns how many were deleted.
    pub fn sweep_partials(&self, max_age: std::time::Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.incoming) else {
            return 0;
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if stale && fs::remove_file(entry.path()).is_ok() {
                deleted += 1;
            }
        }
        deleted
    }
}

/// `<sender>-<doc-id>-<hash>.partial` split into sender, document id and hash (hex).
fn parse_partial_name(name: &str) -> Option<(&str, &str, &str)> {
    let rest = name.strip_suffix(".partial")?;
    let (rest, hash) = rest.rsplit_once('-')?;
    let (sender, doc_id) = rest.rsplit_once('-')?;
    (hash.len() == 64 && doc_id.len() == 32).then_some((sender, doc_id, hash))
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
    use liaise_protocol::wire::content_hash;

    #[test]
    fn a_hashing_reader_hashes_what_was_read_and_the_rest() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = HashingReader::new(bytes.as_slice());
        let mut first = [0u8; 1000];
        reader.read_exact(&mut first).unwrap();
        let (hash, len, rest) = reader.finish().unwrap();
        assert_eq!(hash, content_hash(&bytes));
        assert_eq!(len, 100_000);
        assert!(rest.is_empty());
    }

    #[test]
    fn hex_round_trip_and_limits() {
        let id = [0xab_u8; 16];
        assert_eq!(hex(&[0x00, 0x09, 0x0a, 0xf0, 0xff]), "00090af0ff");
        assert_eq!(parse_hex::<16>(&hex(&id)), Some(id));
        assert_eq!(parse_hex::<16>(&hex(&id)[1..]), None);
        assert_eq!(parse_hex::<16>("zz".repeat(16).as_str()), None);
        assert_eq!(parse_hex::<16>("é".repeat(16).as_str()), None);
    }

    #[test]
    fn an_adopted_file_whose_fsync_failed_after_the_rename_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&dir.path().join("store")).unwrap();
        let src = dir.path().join("doc");
        fs::write(&src, b"sealed bytes").unwrap();
        let hash = content_hash(b"sealed bytes");
        // What `install` leaves when the rename went through and the folder fsync failed.
        fs::rename(&src, blobs.path(&hash)).unwrap();
        let failed = anyhow::anyhow!("cannot sync directory");
        let (got, len) = blobs.after_failed_install(&src, &hash, 12, failed).unwrap();
        assert_eq!((got, len), (hash, 12));
        assert_eq!(fs::read(blobs.path(&hash)).unwrap(), b"sealed bytes");
        // The source still there (the rename failed): copied instead.
        fs::write(&src, b"other bytes").unwrap();
        let other = content_hash(b"other bytes");
        let failed = anyhow::anyhow!("cross-device link");
        let (got, _) = blobs
            .after_failed_install(&src, &other, 11, failed)
            .unwrap();
        assert_eq!(got, other);
        assert!(!src.exists());
    }

    #[test]
    fn partials_are_listed_per_sender_and_stale_ones_swept() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&dir.path().join("store")).unwrap();
        let city = AgencyId::new("nl.city").unwrap();
        let city_x = AgencyId::new("nl.city-x").unwrap();
        let a = blobs.partial_path(&city, &[1; 16], &[2; 32]);
        let b = blobs.partial_path(&city_x, &[3; 16], &[4; 32]);
        fs::write(&a, vec![0u8; 10]).unwrap();
        fs::write(&b, vec![0u8; 20]).unwrap();
        assert_eq!(
            blobs.partials_of(&city),
            vec![PartialFile {
                doc_id: hex(&[1; 16]),
                hash: hex(&[2; 32]),
                len: 10,
                path: a.clone(),
            }]
        );
        assert_eq!(blobs.partials_of(&city_x).len(), 1);
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(blobs.sweep_partials(day), 0);
        let old = std::time::SystemTime::now() - 2 * day;
        File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(blobs.sweep_partials(day), 1);
        assert!(!a.exists() && b.exists());
    }

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&dir.path().join("store")).unwrap();
        let src = dir.path().join("doc");
        fs::write(&src, vec![5u8; 3 * COPY_BUFFER_LEN + 7]).unwrap();
        let (hash, len) = blobs.put_file(&src).unwrap();
        assert_eq!(len, 3 * COPY_BUFFER_LEN as u64 + 7);
        assert_eq!(hash, content_hash(&fs::read(&src).unwrap()));
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
