//! The foundation: agencies, key files, and the signed federation roster, driven through
//! the CLI exactly as a steward and an agency's IT would.

use std::os::unix::fs::PermissionsExt;

use liaise_tests::{PASSPHRASE, Sandbox};

/// A federation of 3 stewards (2 must sign) with two agencies, roster 1 published.
fn two_agency_federation(s: &Sandbox) -> String {
    let fp = s.federation("fed", 3, 2);
    s.agency("city", "nl.city.utrecht", "city", "127.0.0.1:7401");
    s.agency("prison", "nl.prison.vught", "prison", "127.0.0.1:7402");
    let first = s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "city/membership.toml",
        "--group",
        "case-conference",
    ]);
    assert!(
        first
            .ok()
            .contains("in group case-conference (a new group: check its spelling)"),
        "{}",
        first.ok()
    );
    // The second member joins the group the first one made: nothing new.
    let second = s
        .liaise(&[
            "federation",
            "add",
            "--dir",
            "fed",
            "prison/membership.toml",
            "--group",
            "case-conference",
            "--json",
        ])
        .json();
    assert_eq!(second["groups"], serde_json::json!(["case-conference"]));
    assert_eq!(second["new_groups"], serde_json::json!([]));
    s.publish("fed", "r1.liaise");
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
    // Even the roster held already is not taken as another federation's.
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "city",
        "r2.liaise",
        "--federation-fingerprint",
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ])
    .fails_with("matches neither the federation this node follows");
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
    assert!(human.contains("(xwing)"), "{human}");

    // The steward compares, by phone, the fingerprint `add` computes from the key with what
    // the agency's `init` showed, not the request's comment, which anyone could change.
    let court = s
        .liaise(&[
            "init",
            "--home",
            "court",
            "--agency",
            "nl.court.utrecht",
            "--name",
            "Court",
            "--kind",
            "court",
            "--country",
            "NL",
            "--address",
            "127.0.0.1:7403",
            "--json",
        ])
        .json();
    let request = String::from_utf8(s.read("court/membership.toml")).unwrap();
    let shown_fp = court["signing_key_fingerprint"].as_str().unwrap();
    assert!(request.contains(shown_fp), "{request}");
    std::fs::write(
        s.path("court/membership.toml"),
        request.replace(shown_fp, "SHA256:FAKEFAKEFAKE"),
    )
    .unwrap();
    let added = s
        .liaise(&[
            "federation",
            "add",
            "--dir",
            "fed",
            "court/membership.toml",
            "--json",
        ])
        .json();
    assert_eq!(added["signing_key_fingerprint"], shown_fp);
    // A group name that a roster may not carry is refused when it is given, not at the next
    // publish, which could then never succeed.
    s.liaise(&[
        "federation",
        "add",
        "--dir",
        "fed",
        "court/membership.toml",
        "--group",
        "Case Conference",
    ])
    .fails_with("group `Case Conference` is invalid: a group name is 1-64 characters");
    assert_eq!(
        added["signing_key_fingerprint_spoken"],
        court["signing_key_fingerprint_spoken"]
    );

    // Publishing replaces an older roster file at --out, and nothing else.
    let publish = |out: &str| s.liaise(&["federation", "publish", "--dir", "fed", "--out", out]);
    let older = s.read("r2.liaise");
    publish("r2.liaise").ok();
    assert_ne!(
        s.read("r2.liaise"),
        older,
        "the older roster file was not replaced"
    );
    // What is there now is the new roster, with the court: serial 3.
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    // A fingerprint given with an update must still be the federation's: a mismatch means
    // the user expects another federation, and nothing is imported.
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "prison",
        "r2.liaise",
        "--federation-fingerprint",
        shown_fp,
    ])
    .fails_with("matches neither the federation this node follows");
    assert_eq!(
        s.liaise(&["roster", "show", "--home", "prison", "--json"])
            .json()["serial"],
        1
    );
    s.liaise(&[
        "roster",
        "import",
        "--home",
        "prison",
        "r2.liaise",
        "--federation-fingerprint",
        &fp,
    ])
    .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(shown["serial"], 3, "{shown:#}");
    assert!(
        shown["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["agency"] == "nl.court.utrecht"),
        "{shown:#}"
    );
    let request = s.read("court/membership.toml");
    publish("court/membership.toml").fails_with("already exists and is not a roster");
    assert_eq!(s.read("court/membership.toml"), request);
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

    // The untouched file is taken; then tampered copies of the next roster are refused as
    // updates too, and the held roster stays in force until the untouched one comes.
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
    s.publish("fed", "r2.liaise");
    let next = s.read("r2.liaise");
    let serial = || {
        s.liaise(&["roster", "show", "--home", "city", "--json"])
            .json()["serial"]
            .clone()
    };
    let step = (next.len() / 20).max(1);
    for pos in (0..next.len()).step_by(step) {
        let mut bad = next.clone();
        bad[pos] ^= 0x20;
        std::fs::write(s.path("bad2.liaise"), &bad).unwrap();
        let err = s
            .liaise(&["roster", "import", "--home", "city", "bad2.liaise"])
            .fails_with("refused")
            .to_owned();
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
        assert_eq!(serial(), 1, "after a tampered byte at {pos}: {err}");
    }
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    assert_eq!(serial(), 2);
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
    .fails_as_usage("--valid-for");
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
    s.publish("fed", "r2.liaise");
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    // The prison, importing the roster that revokes it, is told so, and its node says why
    // it cannot start (not that the prison was never admitted).
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
    let imported = s.liaise(&["roster", "import", "--home", "prison", "r2.liaise"]);
    assert!(
        imported
            .ok()
            .contains("nl.prison.vught is revoked in this roster"),
        "{}",
        imported.ok()
    );
    s.liaise(&["node", "run", "--home", "prison", "--listen", "127.0.0.1:0"])
        .fails_with("nl.prison.vught is revoked in the roster this node holds");
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
    s.publish("fed", "r2.liaise");
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
fn a_steward_rotation_without_numbers_keeps_the_federation_as_strong() {
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
    // Replacing copied keys, the steward gives no numbers: still 2 of 3, not 1 of 1.
    let rotated = s
        .liaise(&["federation", "rotate-stewards", "--dir", "fed", "--json"])
        .json();
    assert_eq!(rotated["stewards"], 3);
    assert_eq!(rotated["threshold"], 2);
    s.publish("fed", "r2.liaise");
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(
        shown["federation_fingerprint"],
        rotated["new_federation_fingerprint"]
    );
    assert_eq!(shown["stewards"]["threshold"], 2, "{shown}");
    assert_eq!(shown["stewards"]["keys"].as_array().unwrap().len(), 3);
    assert_eq!(
        std::fs::read_dir(s.path("fed/stewards")).unwrap().count(),
        3
    );
    // Lowering the threshold is allowed when asked for, with a warning.
    let lower = s.liaise(&[
        "federation",
        "rotate-stewards",
        "--dir",
        "fed",
        "--stewards",
        "1",
        "--threshold",
        "1",
    ]);
    lower.ok();
    assert!(
        lower.stderr.contains("lower than the current one (2 of 3)"),
        "{}",
        lower.stderr
    );
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
    s.publish("fed", "r2.liaise");
    s.liaise(&["roster", "import", "--home", "city", "r2.liaise"])
        .ok();
    let shown = s
        .liaise(&["roster", "show", "--home", "city", "--json"])
        .json();
    assert_eq!(shown["federation_fingerprint"], new_fp.as_str());
    // Later rosters are signed by the new stewards only, and still accepted.
    s.publish("fed", "r3.liaise");
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

    // A passphrase file works; one that others can read works with a warning.
    std::fs::write(s.path("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
    for mode in [0o644, 0o600] {
        std::fs::set_permissions(s.path("pass.txt"), std::fs::Permissions::from_mode(mode))
            .unwrap();
        let mut cmd = s.command(&[
            "keys",
            "rotate",
            "--home",
            "city",
            "--passphrase-file",
            "pass.txt",
        ]);
        let out = cmd.env_remove("LIAISE_PASSPHRASE").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            stderr.contains("can be read by other users (mode 644)"),
            mode == 0o644,
            "{stderr}"
        );
    }

    // A passphrase file that is missing or too short: one line, naming the file once.
    std::fs::write(s.path("short.txt"), "short\n").unwrap();
    std::fs::set_permissions(s.path("short.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    for (file, cause) in [
        ("missing.txt", "No such file or directory"),
        ("short.txt", "too short"),
    ] {
        let out = s
            .command(&[
                "keys",
                "rotate",
                "--home",
                "city",
                "--passphrase-file",
                file,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(cause), "{stderr}");
        assert_eq!(stderr.matches(file).count(), 1, "{stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
    }

    // A new passphrase: the old one no longer opens the key file, the new one does.
    std::fs::write(s.path("new-pass.txt"), "a new passphrase for city\n").unwrap();
    s.liaise(&[
        "keys",
        "passphrase",
        "--home",
        "city",
        "--new-passphrase-file",
        "new-pass.txt",
    ])
    .ok();
    s.liaise(&["keys", "rotate", "--home", "city"])
        .fails_with("wrong passphrase");
    let with_new = |args: &[&str]| {
        let mut cmd = s.command(args);
        cmd.env("LIAISE_PASSPHRASE", "a new passphrase for city")
            .output()
            .unwrap()
    };
    assert!(
        with_new(&["keys", "rotate", "--home", "city"])
            .status
            .success()
    );
    // The same passphrase again is refused, and nothing changes.
    let mut cmd = s.command(&["keys", "passphrase", "--home", "city"]);
    let same = cmd
        .env("LIAISE_PASSPHRASE", "a new passphrase for city")
        .env("LIAISE_NEW_PASSPHRASE", "a new passphrase for city")
        .output()
        .unwrap();
    assert!(
        !same.status.success() && String::from_utf8_lossy(&same.stderr).contains("is the old one"),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    // Back to the sandbox's passphrase, from the environment, for the checks below.
    let mut cmd = s.command(&["keys", "passphrase", "--home", "city"]);
    let back = cmd
        .env("LIAISE_PASSPHRASE", "a new passphrase for city")
        .env("LIAISE_NEW_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    assert!(
        !with_new(&["keys", "rotate", "--home", "city"])
            .status
            .success()
    );
    s.liaise(&["keys", "rotate", "--home", "city"]).ok();

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

/// `liaise init --home h` with these values, and `--name x`.
fn init_args<'a>(
    agency: &'a str,
    kind: &'a str,
    country: &'a str,
    address: &'a str,
) -> [&'a str; 13] {
    [
        "init",
        "--home",
        "h",
        "--agency",
        agency,
        "--name",
        "x",
        "--kind",
        kind,
        "--country",
        country,
        "--address",
        address,
    ]
}

#[test]
fn invalid_init_arguments_show_the_rule() {
    let s = Sandbox::new();
    let init =
        |agency, kind, country, address| s.liaise(&init_args(agency, kind, country, address));
    init("Utrecht", "city", "NL", "127.0.0.1:1").fails_with("lowercase");
    init("nl.a.b", "bank", "NL", "127.0.0.1:1").fails_as_usage("city, probation, prison");
    init("nl.a.b", "city", "NLD", "127.0.0.1:1").fails_as_usage("ISO 3166-1");
    // Two letters, but no country's code.
    init("nl.a.b", "city", "QQ", "127.0.0.1:1")
        .fails_as_usage("not an ISO 3166-1 alpha-2 country code");
    init("nl.a.b", "city", "NL", "nowhere").fails_with("HOST:PORT");
    assert!(!s.path("h/keys.liaise-key").exists());
    // A passphrase refused as too short leaves no empty home behind.
    let short = s
        .command(&init_args("nl.a.b", "city", "NL", "127.0.0.1:1"))
        .env("LIAISE_PASSPHRASE", "short")
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("too short"));
    assert!(!s.path("h").exists());
    s.agency("h", "nl.a.b", "city", "127.0.0.1:1");
    init("nl.a.c", "city", "NL", "127.0.0.1:1").fails_with("already holds an agency");

    // An address changed by hand in agency.toml (deploy/README.md, "A node moves") is checked
    // as init checks it, before `keys rotate` changes any key or writes a request the
    // stewards would refuse.
    let profile = std::fs::read_to_string(s.path("h/agency.toml")).unwrap();
    let (keys, request) = (s.read("h/keys.liaise-key"), s.read("h/membership.toml"));
    for (addresses, rule) in [
        (r#"["127.0.0.1"]"#, "use HOST:PORT"),
        ("[]", "1 to 8 addresses"),
    ] {
        let edited = profile.replace(r#"["127.0.0.1:1"]"#, addresses);
        assert_ne!(edited, profile);
        std::fs::write(s.path("h/agency.toml"), edited).unwrap();
        let rotated = s.liaise(&["keys", "rotate", "--home", "h"]);
        let line = rotated.fails_with("correct `addresses` there, then rotate");
        assert!(line.contains(rule), "{line}");
        assert_eq!(s.read("h/keys.liaise-key"), keys);
        assert_eq!(s.read("h/membership.toml"), request);
    }
}

#[test]
fn stolen_disk_finds_no_private_key_in_the_clear() {
    let s = Sandbox::new();
    let pass = liaise_keys::keyfile::Passphrase::new(PASSPHRASE.into()).unwrap();
    // Decrypt the key file with the real passphrase before and after each rotation, to learn
    // every secret the agency has ever held, including keys a rotation dropped.
    s.agency("city", "nl.city.utrecht", "city", "127.0.0.1:7401");
    let mut keys = agency_private_keys(&s, &pass);
    for _ in 0..2 {
        s.liaise(&["keys", "rotate", "--home", "city"]).ok();
        keys.extend(agency_private_keys(&s, &pass));
    }
    s.federation("fed", 3, 2);
    keys.extend(steward_private_keys(&s, &pass));
    keys.sort_by_key(|k| k.secret);
    keys.dedup_by(|a, b| a.secret == b.secret);
    // Signing key, three transport keys, three X-Wing keys, three steward keys.
    assert_eq!(
        keys.len(),
        10,
        "{:?}",
        keys.iter().map(|k| &k.what).collect::<Vec<_>>()
    );
    let needles: Vec<(String, Vec<u8>)> = keys.iter().flat_map(PrivateKey::needles).collect();

    let files = files_under(s.root());
    let temporary: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temporary.is_empty(), "left behind: {temporary:?}");
    for path in &files {
        let content = std::fs::read(path).unwrap();
        for (what, needle) in &needles {
            assert!(
                !contains(&content, needle),
                "{} holds {what} in the clear",
                path.display()
            );
        }
    }
    // HOME: agency.toml, keys, membership.toml; FED: federation.toml, three steward keys.
    assert!(files.len() >= 7, "{files:?}");
    // The search itself works: the public signing key is found, as base64, where it belongs.
    let profile = String::from_utf8(s.read("city/membership.toml")).unwrap();
    let public = keys
        .iter()
        .find(|k| k.what == "agency signing key")
        .unwrap()
        .public
        .clone();
    let public_forms = text_forms("public key", &public);
    assert!(
        public_forms
            .iter()
            .any(|(_, form)| contains(profile.as_bytes(), form))
    );
}

/// A private key the test learned by decrypting a key file, and what it is derived into.
struct PrivateKey {
    what: String,
    secret: [u8; 32],
    public: Vec<u8>,
    /// Other byte strings that are as secret as the key (expanded and keypair forms).
    derived: Vec<(&'static str, Vec<u8>)>,
}

impl PrivateKey {
    /// An Ed25519 key (signing, transport, steward): also its 64-byte `secret || public` form.
    fn ed25519(what: &str, secret: [u8; 32]) -> Self {
        let public = liaise_keys::SigningSecretKey::from_bytes(&secret)
            .public_key()
            .to_bytes()
            .to_vec();
        let keypair = [&secret[..], &public[..]].concat();
        Self {
            what: what.to_owned(),
            secret,
            public,
            derived: vec![("keypair (secret || public)", keypair)],
        }
    }

    /// An HPKE encryption key. X-Wing keys are also searched for in their expanded form.
    fn encryption(key: &liaise_keys::EncryptionSecretKey) -> Self {
        let secret = *key.to_bytes();
        let public = key.public_key().as_bytes().to_vec();
        let derived = match key.algorithm() {
            liaise_keys::KemAlgorithm::XWing => xwing_expanded(&secret, &public),
            // A DHKEM(X25519) secret is the scalar itself: nothing more to derive.
            liaise_keys::KemAlgorithm::X25519 => vec![],
        };
        Self {
            what: format!("{:?} encryption key", key.algorithm()),
            secret,
            public,
            derived,
        }
    }

    /// Every byte string whose presence on disk would reveal this key.
    fn needles(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = text_forms(&self.what, &self.secret);
        for (form, bytes) in &self.derived {
            out.extend(text_forms(&format!("{} {form}", self.what), bytes));
        }
        out
    }
}

/// Every secret in the agency's key file as it is now.
fn agency_private_keys(s: &Sandbox, pass: &liaise_keys::keyfile::Passphrase) -> Vec<PrivateKey> {
    let payload =
        liaise_keys::keyfile::read_key_file(&s.path("city/keys.liaise-key"), pass).unwrap();
    let secrets = liaise_keys::AgencySecrets::from_bytes(&payload).unwrap();
    let mut keys = vec![
        PrivateKey::ed25519("agency signing key", *secrets.signing.to_bytes()),
        PrivateKey::ed25519("transport key", *secrets.transport.to_bytes()),
    ];
    if let Some(previous) = &secrets.previous_transport {
        keys.push(PrivateKey::ed25519(
            "previous transport key",
            *previous.to_bytes(),
        ));
    }
    keys.extend(secrets.encryption.iter().map(PrivateKey::encryption));
    keys
}

/// The steward keys in FED/stewards: each key file's payload is the 32-byte Ed25519 secret.
fn steward_private_keys(s: &Sandbox, pass: &liaise_keys::keyfile::Passphrase) -> Vec<PrivateKey> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(s.path("fed/stewards")).unwrap() {
        let path = entry.unwrap().path();
        assert!(path.to_string_lossy().ends_with(".liaise-key"), "{path:?}");
        let payload = liaise_keys::keyfile::read_key_file(&path, pass).unwrap();
        keys.push(PrivateKey::ed25519(
            "steward key",
            payload.as_slice().try_into().unwrap(),
        ));
    }
    assert_eq!(keys.len(), 3);
    keys
}

/// The X-Wing secret key expanded as draft-connolly-cfrg-xwing-kem does: SHAKE256 of the
/// 32-byte seed gives the ML-KEM-768 seed `d || z` and the X25519 secret. The derivation is
/// checked against the public key, so the needles are the real halves.
fn xwing_expanded(seed: &[u8; 32], public: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use ml_kem::KeyExport;
    use shake::{ExtendableOutput, Update, XofReader};

    let mut shake = shake::Shake256::default();
    shake.update(seed);
    let mut expanded = [0u8; 96];
    shake.finalize_xof().read(&mut expanded);
    let (mlkem_seed, x25519) = expanded.split_at(64);
    let dk = ml_kem::ml_kem_768::DecapsulationKey::from_seed(mlkem_seed.try_into().unwrap());
    let (public_mlkem, public_x25519) = public.split_at(1184);
    assert_eq!(dk.encapsulation_key().to_bytes().as_slice(), public_mlkem);
    let x25519: [u8; 32] = x25519.try_into().unwrap();
    let x25519_public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(x25519));
    assert_eq!(x25519_public.as_bytes(), public_x25519);
    // FIPS 203's expanded decapsulation key: dk_pke (1152 bytes) || ek || H(ek) || z.
    #[allow(deprecated)]
    let dk_expanded = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&dk);
    vec![
        ("X25519 half", x25519.to_vec()),
        ("ML-KEM seed d", mlkem_seed[..32].to_vec()),
        ("ML-KEM seed z", mlkem_seed[32..].to_vec()),
        ("ML-KEM dk_pke start", dk_expanded[..32].to_vec()),
        ("ML-KEM dk_pke end", dk_expanded[1120..1152].to_vec()),
    ]
}

/// `bytes` raw, as lower- and upper-case hex, and as standard and URL-safe base64. For base64,
/// besides the padded and unpadded encodings of the bytes alone, the whole 4-character groups
/// that each of the three alignments yields are searched: they appear whatever precedes the
/// key in a longer encoded blob (and they are substrings of the padded and unpadded forms).
fn text_forms(what: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![
        (format!("{what} (raw)"), bytes.to_vec()),
        (format!("{what} (hex)"), hex.clone().into_bytes()),
        (format!("{what} (HEX)"), hex.to_uppercase().into_bytes()),
    ];
    for (name, engine) in [
        ("base64", &STANDARD),
        ("base64 unpadded", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE),
        ("base64url unpadded", &URL_SAFE_NO_PAD),
    ] {
        out.push((
            format!("{what} ({name})"),
            engine.encode(bytes).into_bytes(),
        ));
    }
    for (name, engine) in [
        ("base64", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE_NO_PAD),
    ] {
        for skip in 1..3 {
            let aligned = &bytes[skip..];
            let whole = aligned.len() / 3 * 3;
            let encoded = engine.encode(&aligned[..whole]);
            out.push((
                format!("{what} ({name} at offset {skip})"),
                encoded.into_bytes(),
            ));
        }
        let whole = bytes.len() / 3 * 3;
        let encoded = engine.encode(&bytes[..whole]);
        out.push((format!("{what} ({name} at offset 0)"), encoded.into_bytes()));
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `root`, hidden ones included, following no symbolic links.
fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

#[test]
fn a_reader_that_goes_away_or_a_full_disk_ends_a_command_with_no_panic() {
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
    // `liaise ... | head -1` after head has gone: the pipe has no reader left.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = s
        .command(&["roster", "show", "--home", "city", "--json"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    // `liaise ... > out.json` on a full disk: one error line, exit 1, not a panic.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = s
        .command(&["roster", "show", "--home", "city", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: cannot write the output: No space left on device (os error 28)"
    );
}
