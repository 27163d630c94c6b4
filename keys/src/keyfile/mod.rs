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

mod error;
mod format;
mod kdf;
mod on_disk;
mod passphrase;
mod seal;

pub use error::KeyFileError;
pub use format::{
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_KEY_FILE_LEN, MAX_PAYLOAD_LEN, MIN_KEY_FILE_LEN, TAG_LEN,
};
pub use kdf::{
    KdfParams, MAX_KDF_LANES, MAX_KDF_MEMORY_KIB, MAX_KDF_PASSES, MIN_KDF_LANES,
    MIN_KDF_MEMORY_KIB, MIN_KDF_PASSES,
};
pub use on_disk::{ExistingFile, read_key_file, write_key_file};
pub use passphrase::{MAX_PASSPHRASE_LEN, MIN_PASSPHRASE_LEN, Passphrase};
pub use seal::{open_secret, seal_secret};

#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod passphrase_tests;
