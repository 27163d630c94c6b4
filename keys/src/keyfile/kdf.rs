//! Argon2id (RFC 9106, version 0x13): the cost parameters a key file may ask for, and the
//! derivation of the key-encryption key from a passphrase.

use argon2::{Algorithm, Argon2, Version};
use zeroize::Zeroizing;

use super::error::KeyFileError;
use super::format::SALT_LEN;
use super::passphrase::Passphrase;

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

/// Length of the key-encryption key.
pub(super) const KEY_LEN: usize = 32;

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

/// Argon2id of the passphrase into a 32-byte key, wiped on drop.
pub(super) fn derive_key(
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
