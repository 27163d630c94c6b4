//! Key files on disk: permissions, overwriting, passphrase files and what a stolen disk shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;

use liaise_keys::keyfile::{
    ExistingFile, KdfParams, KeyFileError, MAX_KEY_FILE_LEN, MAX_PASSPHRASE_LEN, Passphrase,
    open_secret, read_key_file, seal_secret, write_key_file,
};

const PAYLOAD: &[u8] = b"signing key 0123456789abcdef0123456789abcdef";

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned()).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn passphrase_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pass");
    fs::write(&path, "correct horse\n").unwrap();
    let sealed = seal_secret(PAYLOAD, &passphrase("correct horse"), KdfParams::MINIMUM).unwrap();
    let pass = Passphrase::from_file(&path).unwrap();
    assert_eq!(open_secret(&sealed, &pass).unwrap().as_slice(), PAYLOAD);

    fs::write(&path, "x".repeat(MAX_PASSPHRASE_LEN) + "\r\n").unwrap();
    assert!(Passphrase::from_file(&path).is_ok());
    fs::write(&path, "x".repeat(MAX_PASSPHRASE_LEN + 1) + "\n").unwrap();
    let err = Passphrase::from_file(&path).unwrap_err();
    assert!(
        matches!(err, KeyFileError::PassphraseTooLong { .. }),
        "{err:?}"
    );
    fs::write(&path, "x".repeat(10 * MAX_PASSPHRASE_LEN)).unwrap();
    let err = Passphrase::from_file(&path).unwrap_err();
    assert!(
        matches!(err, KeyFileError::PassphraseTooLong { .. }),
        "{err:?}"
    );
    fs::write(&path, b"correct horse\xff\n").unwrap();
    let err = Passphrase::from_file(&path).unwrap_err();
    assert!(
        matches!(err, KeyFileError::PassphraseNotUtf8 { .. }),
        "{err:?}"
    );
    let err = Passphrase::from_file(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, KeyFileError::Io { .. }), "{err:?}");
}

#[test]
fn written_file_round_trips_with_mode_0600_and_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agency.key");
    let pass = passphrase("correct horse");
    write_key_file(
        &path,
        PAYLOAD,
        &pass,
        KdfParams::MINIMUM,
        ExistingFile::Refuse,
    )
    .unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(read_key_file(&path, &pass).unwrap().as_slice(), PAYLOAD);
    // What a stolen disk shows: no file in the directory holds the payload or the passphrase,
    // and no temporary sibling is left behind.
    let entries: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries, std::slice::from_ref(&path));
    let bytes = fs::read(&path).unwrap();
    assert!(!contains(&bytes, PAYLOAD));
    assert!(!contains(&bytes, &PAYLOAD[..8]));
    assert!(!contains(&bytes, b"correct horse"));
}

#[test]
fn a_path_without_a_file_name_is_refused() {
    let err = write_key_file(
        std::path::Path::new("/"),
        PAYLOAD,
        &passphrase("correct horse"),
        KdfParams::MINIMUM,
        ExistingFile::Replace,
    );
    assert!(matches!(err, Err(KeyFileError::Io { .. })), "{err:?}");
}

#[test]
fn refuses_to_overwrite_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agency.key");
    let pass = passphrase("correct horse");
    write_key_file(
        &path,
        b"old",
        &pass,
        KdfParams::MINIMUM,
        ExistingFile::Refuse,
    )
    .unwrap();
    let err = write_key_file(
        &path,
        b"new",
        &pass,
        KdfParams::MINIMUM,
        ExistingFile::Refuse,
    );
    assert!(
        matches!(err, Err(KeyFileError::AlreadyExists { .. })),
        "{err:?}"
    );
    assert_eq!(read_key_file(&path, &pass).unwrap().as_slice(), b"old");

    let new_pass = passphrase("battery staple");
    write_key_file(
        &path,
        b"new",
        &new_pass,
        KdfParams::MINIMUM,
        ExistingFile::Replace,
    )
    .unwrap();
    assert_eq!(read_key_file(&path, &new_pass).unwrap().as_slice(), b"new");
    assert!(matches!(
        read_key_file(&path, &pass),
        Err(KeyFileError::WrongPassphrase)
    ));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn loose_permissions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agency.key");
    let pass = passphrase("correct horse");
    write_key_file(
        &path,
        PAYLOAD,
        &pass,
        KdfParams::MINIMUM,
        ExistingFile::Refuse,
    )
    .unwrap();
    for loose in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601] {
        fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
        let err = read_key_file(&path, &pass).unwrap_err();
        assert!(
            matches!(err, KeyFileError::LoosePermissions { mode, .. } if mode == loose),
            "{loose:o}: {err:?}"
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let shown = path.display();
    assert_eq!(
        read_key_file(&path, &pass).unwrap_err().to_string(),
        format!(
            "key file {shown} is accessible by other users (mode 0644); run `chmod 600 {shown}`"
        )
    );
    // Permissions are checked before the passphrase.
    let err = read_key_file(&path, &passphrase("wrong passphrase")).unwrap_err();
    assert!(
        matches!(err, KeyFileError::LoosePermissions { .. }),
        "{err:?}"
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(read_key_file(&path, &pass).unwrap().as_slice(), PAYLOAD);
}

#[test]
fn read_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.key");
    let err = read_key_file(&path, &passphrase("correct horse")).unwrap_err();
    assert!(
        matches!(&err, KeyFileError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().starts_with(&path.display().to_string()));
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.key");
    let file = File::create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    file.set_len(MAX_KEY_FILE_LEN as u64).unwrap();
    let err = read_key_file(&path, &passphrase("correct horse")).unwrap_err();
    assert!(matches!(err, KeyFileError::NotAKeyFile), "{err:?}");
    file.set_len(MAX_KEY_FILE_LEN as u64 + 1).unwrap();
    let err = read_key_file(&path, &passphrase("correct horse")).unwrap_err();
    assert!(matches!(err, KeyFileError::TooLarge { .. }), "{err:?}");
}

/// The files in `tests/keyfile-vectors/` were made by `generate.py` there with libargon2 and
/// libsodium, following the format documented in `keyfile.rs`. Each opens with `expect:`.
#[test]
fn test_vectors_from_independent_implementations() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keyfile-vectors");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "txt") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
                .unwrap_or_else(|| panic!("{}: no {name}", path.display()))
        };
        let pass = passphrase(field("passphrase"));
        let result = open_secret(&hex(field("file")), &pass);
        let name = path.display();
        match (field("expect"), result) {
            ("payload", Ok(payload)) => assert_eq!(*payload, hex(field("payload")), "{name}"),
            ("wrong passphrase", Err(KeyFileError::WrongPassphrase))
            | ("unsupported version", Err(KeyFileError::UnsupportedVersion { .. }))
            | ("kdf params out of range", Err(KeyFileError::KdfParamsOutOfRange { .. }))
            | ("truncated", Err(KeyFileError::Truncated { .. }))
            | ("not a key file", Err(KeyFileError::NotAKeyFile)) => {}
            (expect, got) => panic!("{name}: expected {expect}, got {got:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 10);
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_directory_is_not_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let err = read_key_file(dir.path(), &passphrase("correct horse")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
