//! Sealing and opening key-file bytes: round trips, the header layout, and what a damaged,
//! foreign or hostile file yields.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;

use super::format::{Header, NONCE_LEN, SALT_LEN};
use super::*;

const PAYLOAD: &[u8] = b"signing key 0123456789abcdef0123456789abcdef";

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned()).unwrap()
}

fn sealed() -> Vec<u8> {
    seal_secret(PAYLOAD, &passphrase("correct horse"), KdfParams::MINIMUM).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn set_params(file: &mut [u8], memory_kib: u32, passes: u32, lanes: u32) {
    file[12..16].copy_from_slice(&memory_kib.to_le_bytes());
    file[16..20].copy_from_slice(&passes.to_le_bytes());
    file[20..24].copy_from_slice(&lanes.to_le_bytes());
}

#[test]
fn round_trip() {
    let file = sealed();
    assert_eq!(file.len(), MIN_KEY_FILE_LEN + PAYLOAD.len());
    assert_eq!(&file[..MAGIC.len()], MAGIC);
    assert_eq!(file[MAGIC.len()], FORMAT_VERSION);
    let opened = open_secret(&file, &passphrase("correct horse")).unwrap();
    assert_eq!(opened.as_slice(), PAYLOAD);
}

#[test]
fn empty_payload_round_trips() {
    let file = seal_secret(b"", &passphrase("correct horse"), KdfParams::MINIMUM).unwrap();
    assert_eq!(file.len(), MIN_KEY_FILE_LEN);
    assert!(
        open_secret(&file, &passphrase("correct horse"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn default_params_round_trip() {
    let file = seal_secret(PAYLOAD, &passphrase("correct horse"), KdfParams::default());
    let file = file.unwrap();
    assert_eq!(&file[12..24], &[0, 0, 1, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(
        open_secret(&file, &passphrase("correct horse"))
            .unwrap()
            .as_slice(),
        PAYLOAD
    );
}

#[test]
fn each_seal_uses_fresh_salt_and_nonce() {
    assert_ne!(sealed()[24..64], sealed()[24..64]);
}

#[test]
fn payload_never_appears_in_the_file() {
    let file = sealed();
    assert!(!contains(&file, PAYLOAD));
    assert!(!contains(&file, &PAYLOAD[..8]));
}

#[test]
fn wrong_passphrase_is_refused() {
    let err = open_secret(&sealed(), &passphrase("correct horsf")).unwrap_err();
    assert!(matches!(err, KeyFileError::WrongPassphrase), "{err:?}");
    assert_eq!(
        err.to_string(),
        "wrong passphrase for key file (or the file was altered or cut short)"
    );
}

#[test]
fn every_truncated_prefix_fails() {
    let file = sealed();
    for len in 0..file.len() {
        let err = open_secret(&file[..len], &passphrase("correct horse")).unwrap_err();
        match err {
            KeyFileError::Truncated { len: got, min } => {
                assert_eq!((got, min), (len, MIN_KEY_FILE_LEN));
                assert!(len < MIN_KEY_FILE_LEN);
            }
            KeyFileError::WrongPassphrase => assert!(len >= MIN_KEY_FILE_LEN),
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn every_flipped_byte_fails() {
    let file = sealed();
    for at in 0..file.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = file.clone();
            bad[at] ^= flip;
            let err = open_secret(&bad, &passphrase("correct horse")).unwrap_err();
            let expected = match at {
                0..11 => matches!(err, KeyFileError::NotAKeyFile),
                11 => matches!(err, KeyFileError::UnsupportedVersion { .. }),
                12..24 => matches!(
                    err,
                    KeyFileError::KdfParamsOutOfRange { .. } | KeyFileError::WrongPassphrase
                ),
                _ => matches!(err, KeyFileError::WrongPassphrase),
            };
            assert!(expected, "byte {at} ^ {flip:#x}: {err:?}");
        }
    }
}

#[test]
fn appended_bytes_fail() {
    let mut file = sealed();
    file.push(0);
    assert!(matches!(
        open_secret(&file, &passphrase("correct horse")),
        Err(KeyFileError::WrongPassphrase)
    ));
}

#[test]
fn unknown_version_is_reported_as_such() {
    let mut file = sealed();
    file[MAGIC.len()] = 2;
    let err = open_secret(&file, &passphrase("correct horse")).unwrap_err();
    assert!(
        matches!(err, KeyFileError::UnsupportedVersion { version: 2 }),
        "{err:?}"
    );
    // Even when too short for version 1: another version may lay out differently.
    let err = open_secret(&file[..MAGIC.len() + 1], &passphrase("correct horse"));
    assert!(matches!(
        err,
        Err(KeyFileError::UnsupportedVersion { version: 2 })
    ));
}

#[test]
fn other_files_are_not_key_files() {
    for bytes in [
        &b"-----BEGIN PRIVATE KEY-----"[..],
        b"liaise-kex",
        &[0u8; 100],
    ] {
        let err = open_secret(bytes, &passphrase("correct horse")).unwrap_err();
        assert!(matches!(err, KeyFileError::NotAKeyFile), "{err:?}");
    }
    let err = open_secret(b"", &passphrase("correct horse")).unwrap_err();
    assert!(
        matches!(err, KeyFileError::Truncated { len: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn hostile_params_are_refused_before_running_the_kdf() {
    for (m, t, p) in [
        (MAX_KDF_MEMORY_KIB + 1, 1, 1),
        (8, MAX_KDF_PASSES + 1, 1),
        (8, 1, 0),
    ] {
        let mut file = sealed();
        set_params(&mut file, m, t, p);
        let err = open_secret(&file, &passphrase("correct horse")).unwrap_err();
        let expected = KeyFileError::KdfParamsOutOfRange {
            memory_kib: m,
            passes: t,
            lanes: p,
        };
        assert_eq!(err.to_string(), expected.to_string());
    }
}

#[test]
fn edited_params_within_range_are_detected() {
    let mut file = sealed();
    set_params(&mut file, 16, 1, 1);
    assert!(matches!(
        open_secret(&file, &passphrase("correct horse")),
        Err(KeyFileError::WrongPassphrase)
    ));
}

#[test]
fn payload_at_and_past_its_limit() {
    let pass = passphrase("correct horse");
    let max = vec![7u8; MAX_PAYLOAD_LEN];
    let file = seal_secret(&max, &pass, KdfParams::MINIMUM).unwrap();
    assert_eq!(file.len(), MAX_KEY_FILE_LEN);
    assert_eq!(
        open_secret(&file, &pass).unwrap().as_slice(),
        max.as_slice()
    );
    let err = seal_secret(&[7u8; MAX_PAYLOAD_LEN + 1], &pass, KdfParams::MINIMUM);
    assert!(matches!(err, Err(KeyFileError::PayloadTooLarge { .. })));
    let mut too_long = file;
    too_long.push(0);
    let err = open_secret(&too_long, &pass).unwrap_err();
    assert!(matches!(err, KeyFileError::TooLarge { .. }), "{err:?}");
}

#[test]
fn header_layout_is_as_documented() {
    let header = Header {
        params: KdfParams::new(0x0001_0203, 5, 6).unwrap(),
        salt: [0xaa; SALT_LEN],
        nonce: [0xbb; NONCE_LEN],
    }
    .encode();
    assert_eq!(&header[..11], MAGIC);
    assert_eq!(header[11], FORMAT_VERSION);
    assert_eq!(&header[12..24], &[3, 2, 1, 0, 5, 0, 0, 0, 6, 0, 0, 0]);
    assert_eq!(&header[24..40], &[0xaa; 16]);
    assert_eq!(&header[40..64], &[0xbb; 24]);
    let parsed = Header::parse(&[&header[..], &[0; TAG_LEN]].concat()).unwrap();
    assert_eq!(parsed.params, KdfParams::new(0x0001_0203, 5, 6).unwrap());
    assert_eq!(parsed.salt, [0xaa; SALT_LEN]);
    assert_eq!(parsed.nonce, [0xbb; NONCE_LEN]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_payload_and_passphrase_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        text in "\\PC{8,40}",
    ) {
        let pass = Passphrase::new(text).unwrap();
        let file = seal_secret(&payload, &pass, KdfParams::MINIMUM).unwrap();
        let opened = open_secret(&file, &pass).unwrap();
        prop_assert_eq!(opened.as_slice(), payload.as_slice());
    }
}
