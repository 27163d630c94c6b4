//! Durable, private file writes and bounded reads.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Creates a directory (and parents) readable only by its owner. An existing directory that
/// others may read is tightened to 0700, since the node keeps its state there.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))?;
    let meta = fs::metadata(path).with_context(|| format!("cannot inspect {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (chmod 700)", path.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a new private temporary sibling with an unguessable
/// name, fsync, rename, fsync of the directory. A crash leaves either the old file or the new
/// one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, |out| out.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes, through a buffer: a document streamed from the
/// store into a file a user named, say.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    write_through_temporary(path, mode, write, |tmp, path| fs::rename(tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// [`write_atomic_with`], but never replaces a file: if `path` exists (even one created
/// meanwhile), nothing is written and the error says to choose another `--out`. For files a
/// user names, where a slip of the keyboard must not destroy a key file or a report.
pub fn write_new_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    // Written whole into a file without a name, which is then linked to the name (failing if
    // it is taken): an interrupted write leaves nothing. Where files cannot be unnamed, into
    // a hidden temporary sibling; then the name is claimed with create_new (which fails if
    // it is taken, on any file system, FAT included) and the file renamed over the claim.
    let placed = if let Some(file) = unnamed_file(parent_dir(path), mode) {
        write_unnamed(file, path, write)
    } else {
        write_through_temporary(path, mode, write, |tmp, path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)?;
            fs::rename(tmp, path).inspect_err(|_| {
                let _ = fs::remove_file(path);
            })
        })
    };
    match placed {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists; choose another --out, or remove it first (nothing was written)",
            path.display()
        ),
        other => other.with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Writes a file a user named with `--out`: a new file ([`write_new_with`]), or a
/// replacement ([`write_atomic_with`]) of one that `is_own` recognises as what this command
/// writes (a bundle by a newer bundle, a roster by a newer roster). Any other file is left
/// alone: a key file, a report, a folder are never overwritten by a mistyped path.
pub fn write_out_with(
    path: &Path,
    mode: u32,
    kind: &str,
    is_own: impl FnOnce(&Path) -> bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return write_new_with(path, mode, write);
    }
    if !(path.is_file() && is_own(path)) {
        bail!(
            "{} already exists and is not {kind}; choose another --out (nothing was written)",
            path.display()
        );
    }
    write_atomic_with(path, mode, write)
}

/// Whether the file at `path` starts with `prefix`.
pub fn starts_with(path: &Path, prefix: &[u8]) -> bool {
    let mut start = vec![0u8; prefix.len()];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|()| start == prefix)
}

/// Writes into `file` (from [`unnamed_file`]), fsyncs it, names it `path` (never replacing a
/// file) and fsyncs the directory.
fn write_unnamed(
    file: File,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    name_unnamed(&file, path)?;
    File::open(parent_dir(path))?.sync_all()
}

/// Writes into a new private temporary sibling of `path`, fsyncs it, puts it in place with
/// `place(temporary, path)`, and fsyncs the directory. The temporary file is removed on
/// failure.
fn write_through_temporary(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    place: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temporary_sibling(path).map_err(std::io::Error::other)?;
    let result = (|| -> std::io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        place(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Where a process sees its own open files by number; giving an unnamed file a name goes
/// through it.
const OWN_FDS: &str = "/proc/self/fd";

/// A new file in `dir` that has no name yet (Linux `O_TMPFILE`), so that a process stopped
/// while writing it, by Ctrl-C or even `kill -9`, leaves nothing behind. `None` where the
/// kernel or the file system has no such files: the caller then writes a hidden temporary
/// sibling instead.
pub fn unnamed_file(dir: &Path, mode: u32) -> Option<File> {
    if !Path::new(OWN_FDS).is_dir() {
        return None;
    }
    OpenOptions::new()
        .write(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::TMPFILE.bits() as i32)
        .open(dir)
        .ok()
}

/// Gives `file`, from [`unnamed_file`], the name `path`. Never replaces a file: if `path`
/// exists, this fails with [`std::io::ErrorKind::AlreadyExists`].
pub fn name_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    rustix::fs::linkat(
        rustix::fs::CWD,
        Path::new(OWN_FDS).join(file.as_raw_fd().to_string()),
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(std::io::Error::from)
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// `.NAME.RANDOM.tmp` next to `path`.
pub fn temporary_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let suffix = u64::from_le_bytes(liaise_keys::random::random_bytes());
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{suffix:016x}.tmp"));
    Ok(path.with_file_name(tmp))
}

/// Reads a whole regular file of at most `max` bytes. Devices, pipes and directories are
/// refused, and the read itself is bounded, so `/dev/zero` or a FIFO cannot exhaust memory.
pub fn read_limited(path: &Path, max: usize, what: &str) -> Result<Vec<u8>> {
    let context = || format!("cannot read {what} {}", path.display());
    // Looked at before it is opened: opening a FIFO would wait for a writer.
    if !fs::metadata(path).with_context(context)?.is_file() {
        bail!("{what} {} is not a regular file", path.display());
    }
    let file = File::open(path).with_context(context)?;
    let meta = file.metadata().with_context(context)?;
    if !meta.is_file() {
        bail!("{what} {} is not a regular file", path.display());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(max).min(max));
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(context)?;
    if bytes.len() > max {
        bail!(
            "{what} {} is larger than the limit of {max} bytes",
            path.display()
        );
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What a file being written leaves if the process stops: nothing, until it is named.
    #[test]
    fn an_unnamed_file_shows_only_once_named_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let Some(mut file) = unnamed_file(dir.path(), 0o600) else {
            // A file system without unnamed files: the callers write a temporary sibling.
            return;
        };
        file.write_all(b"sealed bytes").unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let path = dir.path().join("r.liaise");
        name_unnamed(&file, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"sealed bytes");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut other = unnamed_file(dir.path(), 0o600).unwrap();
        other.write_all(b"other").unwrap();
        let err = name_unnamed(&other, &path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"sealed bytes");
        drop(other);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_limited_refuses_devices_and_oversize() {
        let err = read_limited(Path::new("/dev/zero"), 1024, "roster").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, [1u8; 10]).unwrap();
        assert_eq!(read_limited(&path, 10, "x").unwrap().len(), 10);
        assert!(read_limited(&path, 9, "x").is_err());
        // A FIFO is refused before it is opened (an open would wait for a writer).
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_limited(&fifo, 1024, "roster").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn atomic_write_is_private_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dir_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("home");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_new_file_never_replaces_one_and_a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle");
        write_new_with(&path, 0o600, |out| out.write_all(b"first")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        let refused = write_new_with(&path, 0o600, |out| out.write_all(b"second")).unwrap_err();
        assert!(refused.to_string().contains("already exists"), "{refused}");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        // A write that fails half-way: neither the claimed name nor a temporary file stays.
        let other = dir.path().join("other");
        let failed = write_new_with(&other, 0o600, |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert!(!other.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_out_file_replaces_only_its_own_kind() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
        fs::write(&ours, b"LIAISE old list").unwrap();
        fs::write(&theirs, b"a key file").unwrap();
        let own = |p: &Path| starts_with(p, b"LIAISE");
        write_out_with(&ours, 0o644, "a list", own, |out| {
            out.write_all(b"LIAISE new")
        })
        .unwrap();
        assert_eq!(fs::read(&ours).unwrap(), b"LIAISE new");
        let refused = write_out_with(&theirs, 0o644, "a list", own, |out| {
            out.write_all(b"LIAISE x")
        })
        .unwrap_err();
        assert!(refused.to_string().contains("is not a list"), "{refused}");
        assert_eq!(fs::read(&theirs).unwrap(), b"a key file");
        // A folder is never "its own kind".
        let folder = dir.path().join("folder");
        fs::create_dir(&folder).unwrap();
        assert!(write_out_with(&folder, 0o644, "a list", |_| true, |_| Ok(())).is_err());
        assert!(folder.is_dir());
    }
}
