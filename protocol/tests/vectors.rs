//! Reads every test vector in `tests/vectors/` and checks its expected outcome, using only the
//! public API, as a second implementation would (spec: "Test vectors").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use liaise_keys::{
    AgencyId, EncryptionSecretKey, KemAlgorithm, SigningPublicKey, SigningSecretKey, Timestamp,
};
use liaise_protocol::{OpenError, OriginatorShare, SignerRejected, open_with_share, verify};
use sha2::{Digest, Sha256};

fn seed(label: &str, agency: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(agency.as_bytes());
    h.finalize().into()
}

/// The spec's test roster: every agency's signing key is derived from its id.
fn test_roster(
    agency: &AgencyId,
    key: &SigningPublicKey,
    _at: Timestamp,
) -> Result<(), SignerRejected> {
    let expected =
        SigningSecretKey::from_bytes(&seed("liaise test signing key\n", agency.as_str()));
    if expected.public_key() == *key {
        Ok(())
    } else {
        Err(SignerRejected::WrongKey)
    }
}

struct Vector {
    name: String,
    expect: String,
    verify: String,
    open_as: String,
    key: KemAlgorithm,
    now: u64,
    share: Option<OriginatorShare>,
    sections: Vec<(u8, String)>,
    body: Vec<u8>,
}

fn parse(name: String, file: &[u8]) -> Vector {
    let split = file
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("blank line");
    let text = std::str::from_utf8(&file[..split]).unwrap();
    let mut v = Vector {
        name,
        expect: String::new(),
        verify: String::new(),
        open_as: String::new(),
        key: KemAlgorithm::X25519,
        now: 0,
        share: None,
        sections: Vec::new(),
        body: file[split + 2..].to_vec(),
    };
    for line in text.lines() {
        let (key, value) = line.split_once(": ").expect("key: value");
        match key {
            "expect" => v.expect = value.into(),
            "verify" => v.verify = value.into(),
            "open-as" => v.open_as = value.into(),
            "key" => {
                v.key = if value == "xwing" {
                    KemAlgorithm::XWing
                } else {
                    KemAlgorithm::X25519
                }
            }
            "now" => v.now = value.parse().unwrap(),
            "share" => {
                let bytes: Vec<u8> = (0..value.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&value[i..i + 2], 16).unwrap())
                    .collect();
                v.share = Some(OriginatorShare::from_slice(&bytes).unwrap());
            }
            "section" => {
                let (i, hash) = value.split_once(' ').unwrap();
                v.sections.push((i.parse().unwrap(), hash.into()));
            }
            "comment" => {}
            other => panic!("unknown line {other}"),
        }
    }
    v
}

fn outcome<T>(result: &Result<T, OpenError>) -> String {
    match result {
        Ok(_) => "success".into(),
        Err(e) => e.kind().as_str().into(),
    }
}

#[test]
fn every_vector_has_its_expected_outcome() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.len() >= 30,
        "expected the full vector set, found {}",
        names.len()
    );
    let mut failures = Vec::new();
    for name in names {
        let v = parse(name.clone(), &std::fs::read(dir.join(&name)).unwrap());
        let me = AgencyId::new(&v.open_as).unwrap();
        let key = EncryptionSecretKey::from_bytes(
            v.key,
            &seed("liaise test encryption key\n", &v.open_as),
        )
        .unwrap();
        let opened = open_with_share(
            v.body.as_slice(),
            &me,
            &[key],
            &test_roster,
            Timestamp(v.now),
            v.share.as_ref(),
            |_| Ok(Vec::new()),
        );
        let got = outcome(&opened);
        if got != v.expect {
            failures.push(format!(
                "{}: open gave `{got}`, expected `{}`",
                v.name, v.expect
            ));
        }
        if let Ok((doc, staged)) = &opened {
            let hashes: Vec<(u8, String)> = doc
                .sections
                .iter()
                .zip(staged)
                .map(|(s, c)| {
                    (
                        s.index,
                        Sha256::digest(c)
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect(),
                    )
                })
                .collect();
            if hashes != v.sections {
                failures.push(format!("{}: opened sections differ", v.name));
            }
        }
        let verified = outcome(&verify(v.body.as_slice(), &test_roster));
        if verified != v.verify {
            failures.push(format!(
                "{}: verify gave `{verified}`, expected `{}`",
                v.name, v.verify
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
