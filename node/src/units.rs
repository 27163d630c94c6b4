//! Sizes as people read them, for messages and listings.

/// `bytes` in the largest binary unit that keeps it at 1 or more, to one decimal.
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} bytes"),
        _ => format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"TiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::binary_size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(binary_size(0), "0 bytes");
        assert_eq!(binary_size(1023), "1023 bytes");
        assert_eq!(binary_size(1536), "1.5 KiB");
        assert_eq!(binary_size(700 * 1024), "700.0 KiB");
        assert_eq!(binary_size(25 << 30), "25.0 GiB");
        assert_eq!(binary_size(u64::MAX), "16777216.0 TiB");
    }
}
