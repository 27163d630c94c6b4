//! Padmé padding (Nikitin et al., PETS 2019, §4): lengths are rounded up so that only the top
//! `O(log log L)` bits of a section's length show, for at most about 12 % overhead.

/// The padded length for a plaintext of `len` bytes.
pub(crate) fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = u64::from(63 - len.leading_zeros()); // floor(log2 len), len >= 2 so e >= 1
    let s = u64::from(63 - e.leading_zeros()) + 1; // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    len.saturating_add(mask) & !mask
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // Values from the PURBs paper's definition, computed by hand.
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(2), 2);
        assert_eq!(padme(7), 7);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(100), 104);
        assert_eq!(padme(1000), 1024);
        assert_eq!(padme(65_536), 65_536);
        assert_eq!(padme(65_537), 67_584);
        assert_eq!(padme(300_250), 303_104);
        assert_eq!(padme(1 << 40), 1 << 40);
    }

    proptest! {
        #[test]
        fn never_shrinks_and_overhead_is_bounded(len in 1u64..(1 << 42)) {
            let padded = padme(len);
            prop_assert!(padded >= len);
            // At most 1/2^(S-1) overhead, i.e. ≤ 12.5 % once len ≥ 256.
            if len >= 256 {
                prop_assert!((padded - len) * 8 <= len);
            }
            // Idempotent: a padded length pads to itself.
            prop_assert_eq!(padme(padded), padded);
        }
    }
}
