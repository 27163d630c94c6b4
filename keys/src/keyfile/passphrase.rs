//! The passphrase that unlocks key files.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::{Zeroize, Zeroizing};

use super::error::KeyFileError;

/// Fewest characters (Unicode scalar values) a passphrase may have.
pub const MIN_PASSPHRASE_LEN: usize = 8;
/// Most bytes a passphrase may have (after its trailing newline is stripped).
pub const MAX_PASSPHRASE_LEN: usize = 1024;

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
            cause: source,
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

    /// Whether `other` is the same passphrase (for refusing a "change" to the same one).
    pub fn is_same(&self, other: &Passphrase) -> bool {
        self.0.as_bytes() == other.0.as_bytes()
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}
