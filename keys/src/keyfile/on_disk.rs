//! Key files on disk: written crash-safely with mode 0600, refused when others may read them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::KeyFileError;
use super::format::MAX_KEY_FILE_LEN;
use super::kdf::KdfParams;
use super::passphrase::Passphrase;
use super::seal::{open_secret, seal_secret};
use crate::random::random_bytes;

/// What [`write_key_file`] does when the target already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingFile {
    /// Fail with [`KeyFileError::AlreadyExists`] and leave the existing file alone.
    Refuse,
    /// Replace it atomically (key rotation, passphrase change).
    Replace,
}

/// Seals `payload` and writes it to `path` with mode 0600, crash-safely: a temporary sibling is
/// written and synced, then moved into place, then the directory is synced.
pub fn write_key_file(
    path: &Path,
    payload: &[u8],
    passphrase: &Passphrase,
    params: KdfParams,
    existing: ExistingFile,
) -> Result<(), KeyFileError> {
    if existing == ExistingFile::Refuse && path.symlink_metadata().is_ok() {
        return Err(KeyFileError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let sealed = seal_secret(payload, passphrase, params)?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let tmp = temporary_sibling(path)?;
    write_private(&tmp, &sealed)?;
    let installed = match existing {
        // A hard link never replaces an existing file, so a racing writer is not clobbered.
        ExistingFile::Refuse => {
            let linked = fs::hard_link(&tmp, path);
            let _ = fs::remove_file(&tmp);
            linked
        }
        ExistingFile::Replace => fs::rename(&tmp, path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        }),
    };
    installed.map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => KeyFileError::AlreadyExists {
            path: path.to_path_buf(),
        },
        _ => KeyFileError::Io {
            path: path.to_path_buf(),
            cause: source,
        },
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyFileError::Io {
            path: dir.to_path_buf(),
            cause: source,
        })
}

/// Reads the key file at `path` and opens it with `passphrase`, returning the payload.
///
/// Refuses the file before reading it if group or others may access it.
pub fn read_key_file(
    path: &Path,
    passphrase: &Passphrase,
) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let io_error = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let file = File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let too_large = |len| KeyFileError::TooLarge {
        len,
        max: MAX_KEY_FILE_LEN,
    };
    if metadata.len() > MAX_KEY_FILE_LEN as u64 {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(MAX_KEY_FILE_LEN + 1);
    file.take(MAX_KEY_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    open_secret(&bytes, passphrase)
}

/// A fresh, unpredictable name next to `path`: `.NAME.RANDOM.tmp`.
fn temporary_sibling(path: &Path) -> Result<PathBuf, KeyFileError> {
    let name = path.file_name().ok_or_else(|| KeyFileError::Io {
        path: path.to_path_buf(),
        cause: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let suffix = u64::from_le_bytes(random_bytes());
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{suffix:016x}.tmp"));
    Ok(path.with_file_name(tmp_name))
}

/// Creates a new file with mode 0600 from the start, writes `bytes` and syncs them. On failure
/// the new file is removed again.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    let io_error = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    if let Err(source) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = fs::remove_file(path);
        return Err(io_error(source));
    }
    Ok(())
}
