//! Passphrase rules and the bounds on Argon2id parameters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned()).unwrap()
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
