//! Sealing a secret payload under a passphrase into key-file bytes, and opening it again.

use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::error::KeyFileError;
use super::format::{
    HEADER_LEN, Header, MAX_PAYLOAD_LEN, MIN_KEY_FILE_LEN, NONCE_LEN, SALT_LEN, TAG_LEN,
};
use super::kdf::{KdfParams, derive_key};
use super::passphrase::Passphrase;
use crate::random::random_bytes;

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
