//! The operating system's random number generator, as a `rand_core` 0.10 `CryptoRng`.

use getrandom::SysRng;
use rand_core::UnwrapErr;

/// The OS RNG. A failing OS RNG is unrecoverable for a crypto tool, so it panics (inside
/// `UnwrapErr`) rather than produce weak keys; no input from a file or the network reaches it.
pub fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// `N` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand_core::Rng;
    let mut out = [0u8; N];
    os_rng().fill_bytes(&mut out);
    out
}
