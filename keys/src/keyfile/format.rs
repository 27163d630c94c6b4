//! The key-file layout: constants, and the header that is also the AEAD associated data.

use super::error::KeyFileError;
use super::kdf::KdfParams;

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

/// Length of the random Argon2id salt.
pub(super) const SALT_LEN: usize = 16;
/// Length of the random XChaCha20-Poly1305 nonce.
pub(super) const NONCE_LEN: usize = 24;
const _: () = assert!(MAGIC.len() + 1 + 3 * 4 + SALT_LEN + NONCE_LEN == HEADER_LEN);

/// The parsed header of a key file.
pub(super) struct Header {
    pub(super) params: KdfParams,
    pub(super) salt: [u8; SALT_LEN],
    pub(super) nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Parses and checks everything before the ciphertext: magic, version, lengths, parameters.
    pub(super) fn parse(file: &[u8]) -> Result<Self, KeyFileError> {
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

    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        let fields: [&[u8]; 7] = [
            MAGIC,
            &[FORMAT_VERSION],
            &self.params.memory_kib().to_le_bytes(),
            &self.params.passes().to_le_bytes(),
            &self.params.lanes().to_le_bytes(),
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
