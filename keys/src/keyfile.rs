//! Key files at rest: a secret payload sealed under a passphrase.
//!
//! The key-encryption key is Argon2id (RFC 9106, version 0x13) of the passphrase; the payload is
//! sealed with XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, the extended-nonce form of the
//! ChaCha20-Poly1305 AEAD of RFC 8439). The payload is opaque here: the caller encodes its
//! secret keys into it.
//!
//! # Format, version 1
//!
//! All integers are little-endian. The header is bytes 0..64.
//!
//! | offset | length | field                                           |
//! |--------|--------|-------------------------------------------------|
//! | 0      | 11     | magic `liaise-key\0`                            |
//! | 11     | 1      | format version, `1`                             |
//! | 12     | 4      | Argon2id memory `m`, in KiB                     |
//! | 16     | 4      | Argon2id passes `t`                             |
//! | 20     | 4      | Argon2id lanes `p`                              |
//! | 24     | 16     | salt, random                                    |
//! | 40     | 24     | nonce, random                                   |
//! | 64     | n + 16 | ciphertext of the n-byte payload, then the tag  |
//!
//! ```text
//! key        = Argon2id(password = passphrase as UTF-8, salt, m, t, p, tag length 32)
//! ciphertext = XChaCha20-Poly1305-Seal(key, nonce, associated data = header, payload)
//! ```
//!
//! The whole header is associated data, so editing the KDF parameters, salt or nonce is detected.
//! A reader checks magic, then version (an unknown version is reported as such), then lengths,
//! then that the KDF parameters lie within [`KdfParams::new`]'s bounds, and only then runs the
//! KDF. Reading accepts any in-range parameters, including weak ones: the parameters only slow
//! down guessing, the writer chose them, and someone able to replace the file gains nothing by
//! weakening them. Writers use [`KdfParams::DEFAULT`].
//!
//! On disk the file is created with mode 0600, written to a temporary sibling, synced, moved into
//! place and the directory synced; a reader refuses a file that group or others may access.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Version};
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::random::random_bytes;

/// First bytes of every key file.
pub const MAGIC: &[u8; 11] = b"liaise-key\0";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the header (magic through nonce), which is also the AEAD associated data.
pub const HEADER_LEN: usize = 64;
/// Length of the Poly1305 tag that ends every key file.
pub const TAG_LEN: usize = 16;
/// Shortest well-formed key file: a header and the tag of an empty payload.
pub const MIN_KEY_FILE_LEN: usize = HEADER_LEN + TAG_LEN;
/// Largest secret payload a key file may hold.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// Largest key file a reader accepts.
pub const MAX_KEY_FILE_LEN: usize = MIN_KEY_FILE_LEN + MAX_PAYLOAD_LEN;

/// Fewest characters (Unicode scalar values) a passphrase may have.
pub const MIN_PASSPHRASE_LEN: usize = 8;
/// Most bytes a passphrase may have (after its trailing newline is stripped).
pub const MAX_PASSPHRASE_LEN: usize = 1024;

/// Least Argon2id memory, in KiB, and per lane (RFC 9106 requires m >= 8p).
pub const MIN_KDF_MEMORY_KIB: u32 = 8;
/// Most Argon2id memory, in KiB, a key file may ask for: 1 GiB.
pub const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;
/// Fewest Argon2id passes.
pub const MIN_KDF_PASSES: u32 = 1;
/// Most Argon2id passes a key file may ask for.
pub const MAX_KDF_PASSES: u32 = 10;
/// Fewest Argon2id lanes.
pub const MIN_KDF_LANES: u32 = 1;
/// Most Argon2id lanes a key file may ask for.
pub const MAX_KDF_LANES: u32 = 16;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const _: () = assert!(MAGIC.len() + 1 + 3 * 4 + SALT_LEN + NONCE_LEN == HEADER_LEN);

/// Why a key file or passphrase could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The AEAD tag did not verify. A wrong passphrase and an altered file look the same.
    #[error("wrong passphrase for key file (or the file was altered or cut short)")]
    WrongPassphrase,
    /// The bytes end before a complete key file.
    #[error("key file is truncated: {len} bytes, at least {min} expected")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Fewest bytes of a well-formed key file.
        min: usize,
    },
    /// The bytes are longer than any key file may be.
    #[error("key file is too large: {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Bytes present (or the file's size).
        len: u64,
        /// [`MAX_KEY_FILE_LEN`].
        max: usize,
    },
    /// The bytes do not start with [`MAGIC`].
    #[error("not a liaise key file")]
    NotAKeyFile,
    /// The file has a format version this code does not know.
    #[error("unsupported key file version {version} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// Argon2id parameters outside the accepted bounds.
    #[error(
        "key file KDF parameters out of range: m = {memory_kib} KiB, t = {passes}, p = {lanes} \
         (allowed: m {MIN_KDF_MEMORY_KIB}..={MAX_KDF_MEMORY_KIB} KiB and at least \
         {MIN_KDF_MEMORY_KIB} KiB per lane, t {MIN_KDF_PASSES}..={MAX_KDF_PASSES}, \
         p {MIN_KDF_LANES}..={MAX_KDF_LANES})"
    )]
    KdfParamsOutOfRange {
        /// Memory in KiB.
        memory_kib: u32,
        /// Passes.
        passes: u32,
        /// Lanes.
        lanes: u32,
    },
    /// The payload to seal is larger than [`MAX_PAYLOAD_LEN`].
    #[error("secret payload is too large: {len} bytes, at most {max} allowed")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// [`MAX_PAYLOAD_LEN`].
        max: usize,
    },
    /// Group or others may access the key file.
    #[error(
        "key file {} is accessible by other users (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    LoosePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Writing would replace a file, and the caller asked not to.
    #[error("key file {} already exists; refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The passphrase is empty (after its trailing newline is stripped).
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The passphrase has fewer than [`MIN_PASSPHRASE_LEN`] characters.
    #[error("the passphrase is too short: at least {min} characters are required")]
    PassphraseTooShort {
        /// [`MIN_PASSPHRASE_LEN`].
        min: usize,
    },
    /// The passphrase has more than [`MAX_PASSPHRASE_LEN`] bytes.
    #[error("the passphrase is too long: at most {max} bytes are allowed")]
    PassphraseTooLong {
        /// [`MAX_PASSPHRASE_LEN`].
        max: usize,
    },
    /// A passphrase file is not valid UTF-8.
    #[error("passphrase file {} is not valid UTF-8", path.display())]
    PassphraseNotUtf8 {
        /// The passphrase file.
        path: PathBuf,
    },
    /// Argon2id failed to run, e.g. it could not allocate its memory.
    #[error("key derivation failed: {0}")]
    KeyDerivation(#[source] argon2::Error),
}

/// A passphrase that unlocks key files. Wiped on drop; `Debug` prints `Passphrase(..)`.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Takes a passphrase, stripping one trailing `\n` or `\r\n` (so passphrase files work).
    ///
    /// Refuses an empty passphrase, fewer than [`MIN_PASSPHRASE_LEN`] characters, or more than
    /// [`MAX_PASSPHRASE_LEN`] bytes. The text is used as its UTF-8 bytes, unnormalised.
    pub fn new(text: String) -> Result<Self, KeyFileError> {
        let mut text = Zeroizing::new(text);
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        if text.is_empty() {
            return Err(KeyFileError::EmptyPassphrase);
        }
        if text.len() > MAX_PASSPHRASE_LEN {
            return Err(KeyFileError::PassphraseTooLong {
                max: MAX_PASSPHRASE_LEN,
            });
        }
        if text.chars().count() < MIN_PASSPHRASE_LEN {
            return Err(KeyFileError::PassphraseTooShort {
                min: MIN_PASSPHRASE_LEN,
            });
        }
        Ok(Self(text))
    }

    /// Reads a passphrase from a file, stripping one trailing newline.
    ///
    /// The file's permissions are not checked: secrets managers often hand out root-owned files
    /// of mode 0440 or 0444, and the key file it unlocks is itself private.
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let io_error = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Room for the longest passphrase, "\r\n", and one byte to detect anything longer.
        let cap = MAX_PASSPHRASE_LEN + 3;
        let mut bytes = Zeroizing::new(Vec::with_capacity(cap));
        File::open(path)
            .and_then(|file| file.take(cap as u64).read_to_end(&mut bytes))
            .map_err(io_error)?;
        if bytes.len() > MAX_PASSPHRASE_LEN + 2 {
            return Err(KeyFileError::PassphraseTooLong {
                max: MAX_PASSPHRASE_LEN,
            });
        }
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Self::new(text),
            Err(not_utf8) => {
                not_utf8.into_bytes().zeroize();
                Err(KeyFileError::PassphraseNotUtf8 {
                    path: path.to_path_buf(),
                })
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Argon2id cost parameters, validated against the `*_KDF_*` bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
}

impl KdfParams {
    /// What key files are written with: m = 64 MiB, t = 3 (RFC 9106 §4, second recommended
    /// option), with p = 1 since the lanes are computed one after another here.
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };
    /// The cheapest accepted parameters. For tests only: far too weak to protect a real key.
    pub const MINIMUM: Self = Self {
        memory_kib: MIN_KDF_MEMORY_KIB,
        passes: MIN_KDF_PASSES,
        lanes: MIN_KDF_LANES,
    };

    /// Checks memory (KiB), passes and lanes against the `MIN_KDF_*`/`MAX_KDF_*` bounds,
    /// including RFC 9106's at least 8 KiB of memory per lane.
    pub fn new(memory_kib: u32, passes: u32, lanes: u32) -> Result<Self, KeyFileError> {
        let lanes_ok = (MIN_KDF_LANES..=MAX_KDF_LANES).contains(&lanes);
        let memory_ok = (MIN_KDF_MEMORY_KIB..=MAX_KDF_MEMORY_KIB).contains(&memory_kib)
            && u64::from(memory_kib) >= u64::from(MIN_KDF_MEMORY_KIB) * u64::from(lanes);
        let passes_ok = (MIN_KDF_PASSES..=MAX_KDF_PASSES).contains(&passes);
        if lanes_ok && memory_ok && passes_ok {
            Ok(Self {
                memory_kib,
                passes,
                lanes,
            })
        } else {
            Err(KeyFileError::KdfParamsOutOfRange {
                memory_kib,
                passes,
                lanes,
            })
        }
    }

    /// Memory in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Passes over memory.
    pub fn passes(&self) -> u32 {
        self.passes
    }

    /// Lanes.
    pub fn lanes(&self) -> u32 {
        self.lanes
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What [`write_key_file`] does when the target already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingFile {
    /// Fail with [`KeyFileError::AlreadyExists`] and leave the existing file alone.
    Refuse,
    /// Replace it atomically (key rotation, passphrase change).
    Replace,
}

/// Seals `payload` under `passphrase` into the bytes of a key file, with a fresh salt and nonce.
pub fn seal_secret(
    payload: &[u8],
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<Vec<u8>, KeyFileError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(KeyFileError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    let salt: [u8; SALT_LEN] = random_bytes();
    let nonce: [u8; NONCE_LEN] = random_bytes();
    let header = Header {
        params,
        salt,
        nonce,
    }
    .encode();
    let cipher = XChaCha20Poly1305::new((&*derive_key(passphrase, &salt, params)?).into());
    // Encrypted in place; the capacity includes the tag so the plaintext is never reallocated.
    let mut body = Zeroizing::new(Vec::with_capacity(payload.len() + TAG_LEN));
    body.extend_from_slice(payload);
    cipher
        .encrypt_in_place(&XNonce::from(nonce), &header, &mut *body)
        .map_err(|_| KeyFileError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        })?;
    let mut file = Vec::with_capacity(HEADER_LEN + body.len());
    file.extend_from_slice(&header);
    file.extend_from_slice(&body);
    Ok(file)
}

/// Opens the bytes of a key file with `passphrase`, returning the payload.
pub fn open_secret(
    file: &[u8],
    passphrase: &Passphrase,
) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let header = Header::parse(file)?;
    let (header_bytes, sealed) =
        file.split_at_checked(HEADER_LEN)
            .ok_or(KeyFileError::Truncated {
                len: file.len(),
                min: MIN_KEY_FILE_LEN,
            })?;
    let cipher =
        XChaCha20Poly1305::new((&*derive_key(passphrase, &header.salt, header.params)?).into());
    let mut payload = Zeroizing::new(sealed.to_vec());
    cipher
        .decrypt_in_place(&XNonce::from(header.nonce), header_bytes, &mut *payload)
        .map_err(|_| KeyFileError::WrongPassphrase)?;
    Ok(payload)
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
            source,
        },
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyFileError::Io {
            path: dir.to_path_buf(),
            source,
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
        source,
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
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
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
        source,
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

/// The parsed header of a key file.
struct Header {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Parses and checks everything before the ciphertext: magic, version, lengths, parameters.
    fn parse(file: &[u8]) -> Result<Self, KeyFileError> {
        let truncated = || KeyFileError::Truncated {
            len: file.len(),
            min: MIN_KEY_FILE_LEN,
        };
        if !MAGIC.starts_with(file.get(..MAGIC.len()).unwrap_or(file)) {
            return Err(KeyFileError::NotAKeyFile);
        }
        let version = *file.get(MAGIC.len()).ok_or_else(truncated)?;
        if version != FORMAT_VERSION {
            return Err(KeyFileError::UnsupportedVersion { version });
        }
        if file.len() < MIN_KEY_FILE_LEN {
            return Err(truncated());
        }
        if file.len() > MAX_KEY_FILE_LEN {
            return Err(KeyFileError::TooLarge {
                len: file.len() as u64,
                max: MAX_KEY_FILE_LEN,
            });
        }
        let mut fields = file
            .get(MAGIC.len() + 1..HEADER_LEN)
            .ok_or_else(truncated)?;
        let memory_kib = u32::from_le_bytes(take_array(&mut fields).ok_or_else(truncated)?);
        let passes = u32::from_le_bytes(take_array(&mut fields).ok_or_else(truncated)?);
        let lanes = u32::from_le_bytes(take_array(&mut fields).ok_or_else(truncated)?);
        let params = KdfParams::new(memory_kib, passes, lanes)?;
        let salt = take_array(&mut fields).ok_or_else(truncated)?;
        let nonce = take_array(&mut fields).ok_or_else(truncated)?;
        Ok(Self {
            params,
            salt,
            nonce,
        })
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let fields: [&[u8]; 7] = [
            MAGIC,
            &[FORMAT_VERSION],
            &self.params.memory_kib.to_le_bytes(),
            &self.params.passes.to_le_bytes(),
            &self.params.lanes.to_le_bytes(),
            &self.salt,
            &self.nonce,
        ];
        let mut out = [0u8; HEADER_LEN];
        for (dst, src) in out.iter_mut().zip(fields.into_iter().flatten()) {
            *dst = *src;
        }
        out
    }
}

/// Takes the next `N` bytes off the front of `rest`.
fn take_array<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (field, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*field)
}

/// Argon2id of the passphrase into a 32-byte key, wiped on drop.
fn derive_key(
    passphrase: &Passphrase,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyFileError> {
    let out_of_range = KeyFileError::KdfParamsOutOfRange {
        memory_kib: params.memory_kib,
        passes: params.passes,
        lanes: params.lanes,
    };
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.passes,
        params.lanes,
        Some(KEY_LEN),
    )
    .map_err(|_| out_of_range)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *key)
        .map_err(KeyFileError::KeyDerivation)?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PAYLOAD: &[u8] = b"signing key 0123456789abcdef0123456789abcdef";

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.to_owned()).unwrap()
    }

    fn sealed() -> Vec<u8> {
        seal_secret(PAYLOAD, &passphrase("correct horse"), KdfParams::MINIMUM).unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn set_params(file: &mut [u8], memory_kib: u32, passes: u32, lanes: u32) {
        file[12..16].copy_from_slice(&memory_kib.to_le_bytes());
        file[16..20].copy_from_slice(&passes.to_le_bytes());
        file[20..24].copy_from_slice(&lanes.to_le_bytes());
    }

    #[test]
    fn round_trip() {
        let file = sealed();
        assert_eq!(file.len(), MIN_KEY_FILE_LEN + PAYLOAD.len());
        assert_eq!(&file[..MAGIC.len()], MAGIC);
        assert_eq!(file[MAGIC.len()], FORMAT_VERSION);
        let opened = open_secret(&file, &passphrase("correct horse")).unwrap();
        assert_eq!(opened.as_slice(), PAYLOAD);
    }

    #[test]
    fn empty_payload_round_trips() {
        let file = seal_secret(b"", &passphrase("correct horse"), KdfParams::MINIMUM).unwrap();
        assert_eq!(file.len(), MIN_KEY_FILE_LEN);
        assert!(
            open_secret(&file, &passphrase("correct horse"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn default_params_round_trip() {
        let file = seal_secret(PAYLOAD, &passphrase("correct horse"), KdfParams::default());
        let file = file.unwrap();
        assert_eq!(&file[12..24], &[0, 0, 1, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            open_secret(&file, &passphrase("correct horse"))
                .unwrap()
                .as_slice(),
            PAYLOAD
        );
    }

    #[test]
    fn each_seal_uses_fresh_salt_and_nonce() {
        assert_ne!(sealed()[24..64], sealed()[24..64]);
    }

    #[test]
    fn payload_never_appears_in_the_file() {
        let file = sealed();
        assert!(!contains(&file, PAYLOAD));
        assert!(!contains(&file, &PAYLOAD[..8]));
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let err = open_secret(&sealed(), &passphrase("correct horsf")).unwrap_err();
        assert!(matches!(err, KeyFileError::WrongPassphrase), "{err:?}");
        assert_eq!(
            err.to_string(),
            "wrong passphrase for key file (or the file was altered or cut short)"
        );
    }

    #[test]
    fn every_truncated_prefix_fails() {
        let file = sealed();
        for len in 0..file.len() {
            let err = open_secret(&file[..len], &passphrase("correct horse")).unwrap_err();
            match err {
                KeyFileError::Truncated { len: got, min } => {
                    assert_eq!((got, min), (len, MIN_KEY_FILE_LEN));
                    assert!(len < MIN_KEY_FILE_LEN);
                }
                KeyFileError::WrongPassphrase => assert!(len >= MIN_KEY_FILE_LEN),
                other => panic!("prefix of {len} bytes: {other:?}"),
            }
        }
    }

    #[test]
    fn every_flipped_byte_fails() {
        let file = sealed();
        for at in 0..file.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = file.clone();
                bad[at] ^= flip;
                let err = open_secret(&bad, &passphrase("correct horse")).unwrap_err();
                let expected = match at {
                    0..11 => matches!(err, KeyFileError::NotAKeyFile),
                    11 => matches!(err, KeyFileError::UnsupportedVersion { .. }),
                    12..24 => matches!(
                        err,
                        KeyFileError::KdfParamsOutOfRange { .. } | KeyFileError::WrongPassphrase
                    ),
                    _ => matches!(err, KeyFileError::WrongPassphrase),
                };
                assert!(expected, "byte {at} ^ {flip:#x}: {err:?}");
            }
        }
    }

    #[test]
    fn appended_bytes_fail() {
        let mut file = sealed();
        file.push(0);
        assert!(matches!(
            open_secret(&file, &passphrase("correct horse")),
            Err(KeyFileError::WrongPassphrase)
        ));
    }

    #[test]
    fn unknown_version_is_reported_as_such() {
        let mut file = sealed();
        file[MAGIC.len()] = 2;
        let err = open_secret(&file, &passphrase("correct horse")).unwrap_err();
        assert!(
            matches!(err, KeyFileError::UnsupportedVersion { version: 2 }),
            "{err:?}"
        );
        // Even when too short for version 1: another version may lay out differently.
        let err = open_secret(&file[..MAGIC.len() + 1], &passphrase("correct horse"));
        assert!(matches!(
            err,
            Err(KeyFileError::UnsupportedVersion { version: 2 })
        ));
    }

    #[test]
    fn other_files_are_not_key_files() {
        for bytes in [
            &b"-----BEGIN PRIVATE KEY-----"[..],
            b"liaise-kex",
            &[0u8; 100],
        ] {
            let err = open_secret(bytes, &passphrase("correct horse")).unwrap_err();
            assert!(matches!(err, KeyFileError::NotAKeyFile), "{err:?}");
        }
        let err = open_secret(b"", &passphrase("correct horse")).unwrap_err();
        assert!(
            matches!(err, KeyFileError::Truncated { len: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn kdf_params_at_and_past_their_limits() {
        assert!(KdfParams::new(MAX_KDF_MEMORY_KIB, MAX_KDF_PASSES, MAX_KDF_LANES).is_ok());
        assert!(KdfParams::new(MIN_KDF_MEMORY_KIB, MIN_KDF_PASSES, MIN_KDF_LANES).is_ok());
        assert!(KdfParams::new(MIN_KDF_MEMORY_KIB * MAX_KDF_LANES, 1, MAX_KDF_LANES).is_ok());
        for (m, t, p) in [
            (MAX_KDF_MEMORY_KIB + 1, 1, 1),
            (MIN_KDF_MEMORY_KIB - 1, 1, 1),
            (8 * 1024, MAX_KDF_PASSES + 1, 1),
            (8 * 1024, MIN_KDF_PASSES - 1, 1),
            (8 * 1024, 1, MAX_KDF_LANES + 1),
            (8 * 1024, 1, MIN_KDF_LANES - 1),
            (MIN_KDF_MEMORY_KIB * 2 - 1, 1, 2),
            (u32::MAX, u32::MAX, u32::MAX),
        ] {
            let err = KdfParams::new(m, t, p).unwrap_err();
            assert!(
                matches!(err, KeyFileError::KdfParamsOutOfRange { .. }),
                "{m} {t} {p}"
            );
        }
        let d = KdfParams::DEFAULT;
        assert_eq!(
            KdfParams::new(d.memory_kib(), d.passes(), d.lanes()).unwrap(),
            d
        );
    }

    #[test]
    fn hostile_params_are_refused_before_running_the_kdf() {
        for (m, t, p) in [
            (MAX_KDF_MEMORY_KIB + 1, 1, 1),
            (8, MAX_KDF_PASSES + 1, 1),
            (8, 1, 0),
        ] {
            let mut file = sealed();
            set_params(&mut file, m, t, p);
            let err = open_secret(&file, &passphrase("correct horse")).unwrap_err();
            let expected = KeyFileError::KdfParamsOutOfRange {
                memory_kib: m,
                passes: t,
                lanes: p,
            };
            assert_eq!(err.to_string(), expected.to_string());
        }
    }

    #[test]
    fn edited_params_within_range_are_detected() {
        let mut file = sealed();
        set_params(&mut file, 16, 1, 1);
        assert!(matches!(
            open_secret(&file, &passphrase("correct horse")),
            Err(KeyFileError::WrongPassphrase)
        ));
    }

    #[test]
    fn payload_at_and_past_its_limit() {
        let pass = passphrase("correct horse");
        let max = vec![7u8; MAX_PAYLOAD_LEN];
        let file = seal_secret(&max, &pass, KdfParams::MINIMUM).unwrap();
        assert_eq!(file.len(), MAX_KEY_FILE_LEN);
        assert_eq!(
            open_secret(&file, &pass).unwrap().as_slice(),
            max.as_slice()
        );
        let err = seal_secret(&[7u8; MAX_PAYLOAD_LEN + 1], &pass, KdfParams::MINIMUM);
        assert!(matches!(err, Err(KeyFileError::PayloadTooLarge { .. })));
        let mut too_long = file;
        too_long.push(0);
        let err = open_secret(&too_long, &pass).unwrap_err();
        assert!(matches!(err, KeyFileError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn passphrase_rules() {
        assert!(matches!(
            Passphrase::new(String::new()),
            Err(KeyFileError::EmptyPassphrase)
        ));
        assert!(matches!(
            Passphrase::new("\n".into()),
            Err(KeyFileError::EmptyPassphrase)
        ));
        assert!(matches!(
            Passphrase::new("\r\n".into()),
            Err(KeyFileError::EmptyPassphrase)
        ));
        let short = "x".repeat(MIN_PASSPHRASE_LEN - 1);
        assert!(matches!(
            Passphrase::new(short),
            Err(KeyFileError::PassphraseTooShort { .. })
        ));
        // Characters, not bytes: seven two-byte characters are too short.
        let short = "é".repeat(MIN_PASSPHRASE_LEN - 1);
        assert!(matches!(
            Passphrase::new(short),
            Err(KeyFileError::PassphraseTooShort { .. })
        ));
        assert!(Passphrase::new("x".repeat(MIN_PASSPHRASE_LEN)).is_ok());
        assert!(Passphrase::new("x".repeat(MAX_PASSPHRASE_LEN)).is_ok());
        let long = "x".repeat(MAX_PASSPHRASE_LEN + 1);
        assert!(matches!(
            Passphrase::new(long),
            Err(KeyFileError::PassphraseTooLong { .. })
        ));
    }

    #[test]
    fn passphrase_strips_exactly_one_trailing_newline() {
        assert_eq!(passphrase("correct horse\n").as_bytes(), b"correct horse");
        assert_eq!(passphrase("correct horse\r\n").as_bytes(), b"correct horse");
        assert_eq!(
            passphrase("correct horse\n\n").as_bytes(),
            b"correct horse\n"
        );
        assert_eq!(passphrase(" correct horse ").as_bytes(), b" correct horse ");
    }

    #[test]
    fn passphrase_debug_hides_the_secret() {
        assert_eq!(
            format!("{:?}", passphrase("correct horse")),
            "Passphrase(..)"
        );
    }

    #[test]
    fn header_layout_is_as_documented() {
        let header = Header {
            params: KdfParams::new(0x0001_0203, 5, 6).unwrap(),
            salt: [0xaa; SALT_LEN],
            nonce: [0xbb; NONCE_LEN],
        }
        .encode();
        assert_eq!(&header[..11], MAGIC);
        assert_eq!(header[11], FORMAT_VERSION);
        assert_eq!(&header[12..24], &[3, 2, 1, 0, 5, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(&header[24..40], &[0xaa; 16]);
        assert_eq!(&header[40..64], &[0xbb; 24]);
        let parsed = Header::parse(&[&header[..], &[0; TAG_LEN]].concat()).unwrap();
        assert_eq!(parsed.params, KdfParams::new(0x0001_0203, 5, 6).unwrap());
        assert_eq!(parsed.salt, [0xaa; SALT_LEN]);
        assert_eq!(parsed.nonce, [0xbb; NONCE_LEN]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn any_payload_and_passphrase_round_trip(
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            text in "\\PC{8,40}",
        ) {
            let pass = Passphrase::new(text).unwrap();
            let file = seal_secret(&payload, &pass, KdfParams::MINIMUM).unwrap();
            let opened = open_secret(&file, &pass).unwrap();
            prop_assert_eq!(opened.as_slice(), payload.as_slice());
        }
    }
}
