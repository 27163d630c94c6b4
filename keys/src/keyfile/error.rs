//! Why a key file or passphrase could not be used.

use std::io;
use std::path::PathBuf;

use super::{
    FORMAT_VERSION, MAX_KDF_LANES, MAX_KDF_MEMORY_KIB, MAX_KDF_PASSES, MIN_KDF_LANES,
    MIN_KDF_MEMORY_KIB, MIN_KDF_PASSES,
};
// Named only by the variants' doc links.
#[cfg(doc)]
use super::{MAGIC, MAX_KEY_FILE_LEN, MAX_PASSPHRASE_LEN, MAX_PAYLOAD_LEN, MIN_PASSPHRASE_LEN};

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
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        cause: io::Error,
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
    KeyDerivation(argon2::Error),
}
