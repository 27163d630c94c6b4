//! The foundation: agencies, key files, and the signed federation roster, driven through
//! the CLI exactly as a steward and an agency's IT would.

use std::os::unix::fs::PermissionsExt;

use liaise_tests::{PASSPHRASE, Sandbox};

/// A federation of 3 stewards (2 must sign) with two agencies, roster 1 published.
fn two_agency_federation(s: &Sandbox) -> String {
    let fp = s.federation("fed", 3, 2);
    s.agency("city", "nl.city.utrecht", "city", "127.0.0.1:7401");
    s.agency("prison", "nl.prison.vught", "prison", "127.0.0.1:7402");
    s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "city/membership.toml",
        "--group",
        "case-conference",
    ])
    .ok();
    s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "prison/membership.toml",
        "--group",
        "case-conference",
    ])
    .ok();
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "r1.liaise",
    ])
    .ok();
    fp
}

#[test]
fn walkthrough_init_add_publish_import_show() {
    let s = Sandbox::new();
    let fp = two_agency_federation(&s);
    let spoken = s
        .liaise(&[
            "federation",
            "publish",
            "--dir",
            "fed",
            "--out",
            "r2.liaise",
            "--json",
        ])
        .json()["federation_fingerprint_spoken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        spoken.split(' ').count(),
        8,
        "spoken form is eight digit groups: {spoken}"
    );

    // The first import pins the federation; the spoken form is accepted as read out on the phone.
    let imported = s
        .liaise(&[
            "roster",
            "import",
            "--home",
            "city",
            "r1.liaise",
            "--federation-fingerprint",
            &spoken,
            "--json",
        ])
        .json();
    assert_eq!(imported["serial"], 1);
    assert_eq!(imported["self_listed"], true);
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "prison",
        "r1.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .ok();

    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(shown["serial"], 1);
    assert_eq!(shown["federation_fingerprint"], fp.as_str());
    assert_eq!(shown["stewards"]["threshold"], 2);
    assert_eq!(shown["stewards"]["keys"].as_array().unwrap().len(), 3);
    let members: Vec<&str> = shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["agency"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["nl.city.utrecht", "nl.prison.vught"]);
    assert_eq!(shown["members"][1]["kind"], "prison");
    assert_eq!(shown["members"][1]["encryption_algorithm"], "xwing");
    assert_eq!(shown["members"][0]["addresses"][0], "127.0.0.1:7401");
    assert_eq!(shown["groups"][0]["name"], "case-conference");
    assert_eq!(shown["groups"][0]["members"].as_array().unwrap().len(), 2);

    // A newer roster is accepted, the same one again is a no-op, an older one is a rollback.
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    assert!(
        s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
            .ok()
            .contains("nothing to do")
    );
    s.liaise(&["roster", "import", "--home", "city", "r1.liaise"])
        .fails_with("rollback refused");
    assert_eq!(
        s.liaise(&["roster", "show", "--home", "city", "--json"])
            .json()["serial"],
        2
    );
    let human = s
        .liaise(&["roster", "show", "--home", "city"])
        .ok()
        .to_owned();
    assert!(
        human.contains("nl.prison.vught") && human.contains("2 of 3 must sign"),
        "{human}"
    );
}

#[test]
fn first_import_needs_the_right_fingerprint() {
    let s = Sandbox::new();
    two_agency_federation(&s);
    s.liaise(&["roster", "import", "--home", "city", "r1.liaise"])
        .fails_with("--federation-fingerprint");
    let other = Sandbox::new();
    let wrong = other.federation("fed", 1, 1);
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "r1.liaise",
        "--federation-fingerprint",
        &wrong,
    ])
    .fails_with("check the fingerprint with your steward");
    s.liaise(&["roster", "show", "--home", "city"])
        .fails_with("no roster imported yet");
}

#[test]
fn tampered_roster_is_refused_and_the_held_roster_kept() {
    let s = Sandbox::new();
    let fp = two_agency_federation(&s);
    let good = s.read("r1.liaise");
    // Flip one byte at a spread of positions across the whole file (the library test flips
    // every byte; here each position costs a process).
    let step = (good.len() / 40).max(1);
    for pos in (0..good.len()).step_by(step) {
        let mut bad = good.clone();
        bad[pos] ^= 0x20;
        std::fs::write(s.path("bad.liaise"), &bad).unwrap();
        let run = s.liaise(&[
            "roster",
            "import",
            "--home",
            "city",
            "bad.liaise",
            "--federation-fingerprint",
            &fp,
        ]);
        let err = run.fails_with("refused");
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    }
    assert!(!s.path("city/roster.liaise").exists(), "nothing was stored");
    // A truncated roster is refused too.
    std::fs::write(s.path("short.liaise"), &good[..good.len() / 2]).unwrap();
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "short.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .fails_with("truncated");
}

#[test]
fn expired_roster_is_refused() {
    let s = Sandbox::new();
    let fp = two_agency_federation(&s);
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "short.liaise",
        "--valid-for",
        "1s",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "short.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .fails_with("expired");
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "x",
        "--valid-for",
        "soon",
    ])
    .fails_with("--valid-for");
}

#[test]
fn publishing_needs_the_threshold_of_steward_keys() {
    let s = Sandbox::new();
    two_agency_federation(&s);
    // Two of the three steward keys are lost: one key cannot reach the threshold of two.
    std::fs::remove_file(s.path("fed/stewards/1.liaise-key")).unwrap();
    std::fs::remove_file(s.path("fed/stewards/2.liaise-key")).unwrap();
    s.liaise(&["federation", "publish", "--dir", "fed", "--out", "r.liaise"])
        .fails_with("signed by 1 of the 2 required");
    assert!(!s.path("r.liaise").exists());
}

#[test]
fn revoked_agency_leaves_the_roster_and_cannot_rejoin_with_its_keys() {
    let s = Sandbox::new();
    let fp = two_agency_federation(&s);
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "r1.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .ok();
    let revoked = s
        .liaise(&[
            "federation",
            "revoke",
            "--dir",
            "fed",
            "nl.prison.vught",
            "--json",
        ])
        .json();
    assert_eq!(
        revoked["revoked_keys"].as_array().unwrap().len(),
        3,
        "signing, transport, encryption"
    );
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "r2.liaise",
    ])
    .ok();
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(shown["members"].as_array().unwrap().len(), 1);
    assert_eq!(shown["revoked"].as_array().unwrap().len(), 3);
    assert_eq!(shown["revoked"][0]["agency"], "nl.prison.vught");
    assert!(
        shown["groups"][0]["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m != "nl.prison.vught")
    );
    // The same keys cannot come back.
    s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "prison/membership.toml",
    ])
    .fails_with("revoked key");
    // After rotating its keys the agency still cannot: its identity key stays revoked.
    s.liaise(&["keys", "rotate", "--home", "prison"]).ok();
    s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "prison/membership.toml",
    ])
    .fails_with("revoked key");
}

#[test]
fn revoking_a_single_key_by_fingerprint() {
    let s = Sandbox::new();
    let fp = two_agency_federation(&s);
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "r1.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    let transport = shown["members"][1]["transport_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let signing = shown["members"][1]["signing_key_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    s.liaise(&["federation", "revoke", "--dir", "fed", "--key", &signing])
        .fails_with("revoke the agency instead");
    s.liaise(&["federation", "revoke", "--dir", "fed", "--key", &transport])
        .ok();
    s.liaise(&["federation", "revoke", "--dir", "fed", "--key", &transport])
        .fails_with("no member holds key");
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "r2.liaise",
    ])
    .ok();
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(shown["members"].as_array().unwrap().len(), 2);
    assert!(shown["members"][1]["transport_key"].is_null());
    assert_eq!(shown["revoked"][0]["fingerprint"], transport.as_str());
}

#[test]
fn key_substitution_is_refused() {
    let s = Sandbox::new();
    two_agency_federation(&s);
    // The prison submits a request claiming the city's signing key as its own.
    let city = String::from_utf8(s.read("city/membership.toml")).unwrap();
    let prison = String::from_utf8(s.read("prison/membership.toml")).unwrap();
    let city_key = city.lines().find(|l| l.starts_with("signing_key")).unwrap();
    let forged: String = prison
        .lines()
        .map(|l| {
            if l.starts_with("signing_key") {
                city_key.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(s.path("forged.toml"), forged).unwrap();
    s.liaise(&["federation", "add", "--dir", "fed", "forged.toml"])
        .fails_with("signing key did not make");
    // A new agency re-using the prison's whole key set under another id is refused too.
    let copied = prison.replace("nl.prison.vught", "nl.prison.copy");
    std::fs::write(s.path("copied.toml"), copied).unwrap();
    s.liaise(&["federation", "add", "--dir", "fed", "copied.toml"])
        .fails_with("did not make");
    // And the real prison cannot be replaced by a different identity under its id.
    s.agency("impostor", "nl.prison.vught", "prison", "127.0.0.1:7409");
    s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "impostor/membership.toml",
    ])
    .fails_with("already a member with a different signing key");
}

#[test]
fn steward_rotation_through_the_cli() {
    let s = Sandbox::new();
    let fp = two_agency_federation(&s);
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "r1.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .ok();
    let rotated = s
        .liaise(&[
            "federation",
            "rotate-stewards",
            "--dir",
            "fed",
            "--stewards",
            "2",
            "--threshold",
            "2",
            "--json",
        ])
        .json();
    let new_fp = rotated["new_federation_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_fp, fp);
    // The transition roster is signed by old and new stewards: the node follows it.
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "r2.liaise",
    ])
    .ok();
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(shown["federation_fingerprint"], new_fp.as_str());
    // Later rosters are signed by the new stewards only, and still accepted.
    s.liaise(&[
        "federation",
        "publish",
        "--dir",
        "fed",
        "--out",
        "r3.liaise",
    ])
    .ok();
    s.liaise(&["roster", "import", "--home", "city", "r3.liaise"])
        .ok();
    // The old steward keys are gone from the directory.
    let count = std::fs::read_dir(s.path("fed/stewards")).unwrap().count();
    assert_eq!(count, 2);
}

#[test]
fn key_file_errors_are_clear() {
    let s = Sandbox::new();
    s.agency("city", "nl.city.utrecht", "city", "127.0.0.1:7401");
    let key = s.path("city/keys.liaise-key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Wrong passphrase.
    let mut cmd = s.command(&["keys", "rotate", "--home", "city"]);
    let out = cmd
        .env("LIAISE_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("wrong passphrase"),
        "{stderr}"
    );

    // No passphrase source and no terminal.
    s.liaise_without_passphrase(&["keys", "rotate", "--home", "city"])
        .fails_with("LIAISE_PASSPHRASE");

    // A passphrase file works.
    std::fs::write(s.path("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
    let mut cmd = s.command(&[
        "keys",
        "rotate",
        "--home",
        "city",
        "--passphrase-file",
        "pass.txt",
    ]);
    let out = cmd.env_remove("LIAISE_PASSPHRASE").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Loose permissions.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.liaise(&["keys", "rotate", "--home", "city"])
        .fails_with("chmod 600");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Truncated key file.
    let bytes = std::fs::read(&key).unwrap();
    std::fs::write(&key, &bytes[..40]).unwrap();
    s.liaise(&["keys", "rotate", "--home", "city"])
        .fails_with("truncated");
    // A corrupted one (one byte of the ciphertext changed).
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&key, &bad).unwrap();
    s.liaise(&["keys", "rotate", "--home", "city"])
        .fails_with("wrong passphrase for key file (or the file was altered or cut short)");
}

#[test]
fn invalid_init_arguments_show_the_rule() {
    let s = Sandbox::new();
    s.liaise(&[
        "init",
        "--home",
        "h",
        "--agency",
        "Utrecht",
        "--name",
        "x",
        "--kind",
        "city",
        "--country",
        "NL",
        "--address",
        "127.0.0.1:1",
    ])
    .fails_with("lowercase");
    s.liaise(&[
        "init",
        "--home",
        "h",
        "--agency",
        "nl.a.b",
        "--name",
        "x",
        "--kind",
        "bank",
        "--country",
        "NL",
        "--address",
        "127.0.0.1:1",
    ])
    .fails_with("city, probation, prison");
    s.liaise(&[
        "init",
        "--home",
        "h",
        "--agency",
        "nl.a.b",
        "--name",
        "x",
        "--kind",
        "city",
        "--country",
        "NLD",
        "--address",
        "127.0.0.1:1",
    ])
    .fails_with("ISO 3166-1");
    s.liaise(&[
        "init",
        "--home",
        "h",
        "--agency",
        "nl.a.b",
        "--name",
        "x",
        "--kind",
        "city",
        "--country",
        "NL",
        "--address",
        "nowhere",
    ])
    .fails_with("HOST:PORT");
    assert!(!s.path("h/keys.liaise-key").exists());
    s.agency("h", "nl.a.b", "city", "127.0.0.1:1");
    s.liaise(&[
        "init",
        "--home",
        "h",
        "--agency",
        "nl.a.c",
        "--name",
        "x",
        "--kind",
        "city",
        "--country",
        "NL",
        "--address",
        "127.0.0.1:1",
    ])
    .fails_with("already holds an agency");
}

#[test]
fn stolen_disk_finds_no_private_key_in_the_clear() {
    let s = Sandbox::new();
    s.agency("city", "nl.city.utrecht", "city", "127.0.0.1:7401");
    s.liaise(&["keys", "rotate", "--home", "city"]).ok();
    // Decrypt the key file with the real passphrase to learn every secret, then search every
    // file in HOME for any of them.
    let pass = liaise_keys::keyfile::Passphrase::new(PASSPHRASE.into()).unwrap();
    let payload =
        liaise_keys::keyfile::read_key_file(&s.path("city/keys.liaise-key"), &pass).unwrap();
    let secrets = liaise_keys::AgencySecrets::from_bytes(&payload).unwrap();
    let mut needles: Vec<Vec<u8>> = vec![
        secrets.signing.to_bytes().to_vec(),
        secrets.transport.to_bytes().to_vec(),
    ];
    needles.extend(secrets.encryption.iter().map(|k| k.to_bytes().to_vec()));
    assert_eq!(needles.len(), 4);
    let mut files = 0;
    let mut stack = vec![s.path("city")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let content = std::fs::read(&path).unwrap();
            for needle in &needles {
                assert!(
                    !content
                        .windows(needle.len())
                        .any(|w| w == needle.as_slice()),
                    "{} holds a private key in the clear",
                    path.display()
                );
                let b64 = base64_std(needle);
                assert!(
                    !String::from_utf8_lossy(&content).contains(&b64[..40]),
                    "{} holds a base64 private key",
                    path.display()
                );
            }
        }
    }
    assert!(files >= 3, "agency.toml, keys, membership.toml");
}

fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn help_is_there_for_every_verb() {
    let s = Sandbox::new();
    for verb in [
        &["--help"][..],
        &["init", "--help"],
        &["federation", "publish", "--help"],
        &["roster", "import", "--help"],
        &["keys", "rotate", "--help"],
    ] {
        let out = s.liaise(verb);
        assert!(out.ok().contains("Usage:"), "{verb:?}");
    }
}
