//! Sealed documents offline: `liaise seal`, `open`, `verify` and `roster allowed-signers`,
//! with real key files and rosters, as a person moving a file by USB stick would use them.

use liaise_tests::Sandbox;

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// Three agencies in one federation, each holding roster 1; a report and an annex on disk.
fn federation() -> Sandbox {
    let s = Sandbox::new();
    let fp = s.federation("fed", 1, 1);
    for (home, id, kind) in [
        ("city", CITY, "city"),
        ("probation", PROBATION, "probation"),
        ("prison", PRISON, "prison"),
    ] {
        s.agency(home, id, kind, "127.0.0.1:7400");
        s.liaise(&[
            "federation",
            "add",
            "--dir",
            "fed",
            &format!("{home}/membership.toml"),
            "--group",
            "case-conference",
        ])
        .ok();
    }
    s.publish("fed", "roster.liaise");
    for home in ["city", "probation", "prison"] {
        s.liaise(&[
            "roster",
            "import",
            "--home",
            home,
            "roster.liaise",
            "--federation-fingerprint",
            &fp,
        ])
        .ok();
    }
    std::fs::write(s.path("report.pdf"), b"%PDF-1.7 risk assessment of case 17").unwrap();
    std::fs::write(s.path("annex.txt"), b"medical annex, probation only").unwrap();
    s
}

fn seal_report(s: &Sandbox, out: &str, extra: &[&str]) -> String {
    let to = format!("{PROBATION},{PRISON}");
    let mut args = vec![
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        &to,
        "--section",
        "annex=annex.txt",
        "--section-readers",
        "annex=nl.probation.utrecht",
        "--label",
        "restricted",
        "--purpose",
        "release planning",
        "report.pdf",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    s.liaise(&args).ok().trim().to_owned()
}

#[test]
fn seal_verify_open_with_per_section_readers() {
    let s = federation();
    let doc_id = seal_report(&s, "report.liaise", &[]);
    assert_eq!(doc_id.len(), 32);

    // Verify needs no key: a roster file is enough.
    let v = s
        .liaise(&[
            "verify",
            "report.liaise",
            "--roster",
            "roster.liaise",
            "--json",
        ])
        .json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["doc_id"], doc_id.as_str());
    assert_eq!(v["signer"], CITY);
    assert_eq!(v["label"], "restricted");
    assert_eq!(v["purpose"], "release planning");
    assert_eq!(v["recipients"][0]["agency"], PRISON);
    assert_eq!(v["recipients"][0]["sections"], serde_json::json!(["main"]));
    assert_eq!(
        v["recipients"][1]["sections"],
        serde_json::json!(["main", "annex"])
    );
    // With $LIAISE_HOME set, as the guide suggests, --roster still decides.
    let with_home = s
        .command(&[
            "verify",
            "report.liaise",
            "--roster",
            "roster.liaise",
            "--json",
        ])
        .env("LIAISE_HOME", s.path("prison"))
        .output()
        .unwrap();
    assert!(
        with_home.status.success(),
        "{}",
        String::from_utf8_lossy(&with_home.stderr)
    );
    let human = s
        .liaise(&["verify", "report.liaise", "--home", "prison"])
        .ok()
        .to_owned();
    assert!(
        human.contains("Verdict: VALID") && human.contains("signed by  nl.city.utrecht"),
        "{human}"
    );

    // Probation reads both parts, the prison only the main part.
    let o = s
        .liaise(&[
            "open",
            "--home",
            "probation",
            "report.liaise",
            "--out-dir",
            "p",
            "--json",
        ])
        .json();
    assert_eq!(o["files"].as_array().unwrap().len(), 2);
    assert_eq!(s.read("p/report.pdf"), s.read("report.pdf"));
    assert_eq!(s.read("p/annex.txt"), s.read("annex.txt"));
    let o = s
        .liaise(&[
            "open",
            "--home",
            "prison",
            "report.liaise",
            "--out-dir",
            "q",
            "--json",
        ])
        .json();
    assert_eq!(o["files"].as_array().unwrap().len(), 1);
    assert_eq!(o["unreadable_sections"], serde_json::json!(["annex"]));
    assert!(!s.path("q/annex.txt").exists());

    // Opening into a folder that already holds the file writes nothing.
    s.liaise(&[
        "open",
        "--home",
        "prison",
        "report.liaise",
        "--out-dir",
        "q",
    ])
    .fails_with("already exists");
    assert_eq!(std::fs::read_dir(s.path("q")).unwrap().count(), 1);

    // Private by default; for staff who read under their own accounts, group-readable, in
    // the group of their set-group-id folder (deploy/README.md), which they may delete from.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = |rel: &str| std::fs::metadata(s.path(rel)).unwrap();
    let mode = |rel: &str| meta(rel).permissions().mode() & 0o7777;
    assert_eq!(mode("q/report.pdf"), 0o600);
    // So is its signature file.
    let with_signatures = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "open",
            "--home",
            "prison",
            "report.liaise",
            "--out-dir",
            out,
            "--with-signatures",
        ];
        args.extend_from_slice(extra);
        s.liaise(&args).ok();
    };
    with_signatures("signed", &[]);
    assert_eq!(mode("signed/report.pdf.sig"), 0o600);
    std::fs::create_dir(s.path("staff")).unwrap();
    // Root gives the folder another group, as `install -g liaise-staff` does (where the user
    // namespace maps one); anyone else keeps their own.
    let staff_gid = match std::os::unix::fs::chown(s.path("staff"), None, Some(54321)) {
        Ok(()) => 54321,
        Err(_) => meta("staff").gid(),
    };
    std::fs::set_permissions(s.path("staff"), std::fs::Permissions::from_mode(0o2770)).unwrap();
    with_signatures("staff/case-17", &["--group-readable"]);
    assert_eq!(mode("staff/case-17"), 0o2770);
    assert_eq!(mode("staff/case-17/report.pdf"), 0o640);
    assert_eq!(mode("staff/case-17/report.pdf.sig"), 0o640);
    assert_eq!(meta("staff/case-17/report.pdf").gid(), staff_gid);
    // Nothing of the staging is left in the staff folder.
    let left: Vec<_> = std::fs::read_dir(s.path("staff/case-17"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["report.pdf", "report.pdf.sig"]);
}

#[test]
fn not_addressed_to_you_and_wrong_roster() {
    let s = federation();
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .ok();
    s.liaise(&[
        "open",
        "--home",
        "probation",
        "r.liaise",
        "--out-dir",
        "out",
    ])
    .fails_with("not addressed to you (nl.probation.utrecht)");
    assert!(
        !s.path("out").exists(),
        "the output folder was not left behind"
    );
    // A roster of another federation does not know the signer.
    let other = Sandbox::new();
    other.federation("fed", 1, 1);
    other.agency("x", "nl.other.agency", "other", "127.0.0.1:1");
    other
        .liaise(&["federation", "add", "--dir", "fed", "x/membership.toml"])
        .ok();
    other.publish("fed", "roster.liaise");
    std::fs::copy(other.path("roster.liaise"), s.path("other-roster.liaise")).unwrap();
    s.liaise(&["verify", "r.liaise", "--roster", "other-roster.liaise"])
        .fails_with("not in the roster");
}

/// A forger makes a federation of their own whose roster names the city under the forger's
/// key, and signs a report "as" the city. Checked against that roster alone, it verifies: the
/// verdict names the forged federation's fingerprint and says it was not pinned. Pinned to the
/// real federation's fingerprint, the forged roster is refused.
#[test]
fn a_forged_federation_naming_a_real_agency_is_told_apart_by_its_fingerprint() {
    let s = federation();
    seal_report(&s, "real.liaise", &[]);
    let real = s
        .liaise(&["verify", "--home", "probation", "real.liaise", "--json"])
        .json();
    let real_fp = real["federation_fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(real["federation_pinned"], true, "{real}");

    let forger = Sandbox::new();
    let forged_fp = forger.federation("fed", 1, 1);
    forger.agency("fake-city", CITY, "city", "127.0.0.1:1");
    forger.agency("fake-probation", PROBATION, "probation", "127.0.0.1:1");
    for home in ["fake-city", "fake-probation"] {
        forger
            .liaise(&[
                "federation",
                "add",
                "--dir",
                "fed",
                &format!("{home}/membership.toml"),
            ])
            .ok();
    }
    forger.publish("fed", "forged.liaise");
    forger
        .liaise(&[
            "roster",
            "import",
            "--home",
            "fake-city",
            "forged.liaise",
            "--federation-fingerprint",
            &forged_fp,
        ])
        .ok();
    std::fs::write(forger.path("report.pdf"), b"%PDF-1.7 a forged assessment").unwrap();
    forger
        .liaise(&[
            "seal",
            "--offline",
            "--home",
            "fake-city",
            "--to",
            PROBATION,
            "report.pdf",
            "--out",
            "forged-report.liaise",
        ])
        .ok();
    std::fs::copy(forger.path("forged.liaise"), s.path("forged.liaise")).unwrap();
    std::fs::copy(
        forger.path("forged-report.liaise"),
        s.path("forged-report.liaise"),
    )
    .unwrap();

    // Against the forged roster alone: whole and self-consistent, and said to be unpinned.
    let run = s.liaise(&[
        "verify",
        "forged-report.liaise",
        "--roster",
        "forged.liaise",
    ]);
    let out = run.ok().to_owned();
    assert!(out.contains("Verdict: VALID"), "{out}");
    assert!(!out.contains(&real_fp), "{out}");
    assert!(run.stderr.contains("was not pinned"), "{}", run.stderr);
    let json = s
        .liaise(&[
            "verify",
            "forged-report.liaise",
            "--roster",
            "forged.liaise",
            "--json",
        ])
        .json();
    assert_eq!(json["federation_pinned"], false, "{json}");
    assert_eq!(json["federation_fingerprint"], forged_fp.as_str(), "{json}");
    assert_ne!(forged_fp, real_fp);

    // Pinned to the real federation: the forged roster is refused, for the document and for
    // an evidence check alike; the real roster passes the same pin.
    for verb in [&["verify"][..], &["evidence", "verify"]] {
        let mut args = verb.to_vec();
        args.extend([
            "forged-report.liaise",
            "--roster",
            "forged.liaise",
            "--federation-fingerprint",
            &real_fp,
        ]);
        s.liaise(&args).fails_with("not your federation's roster");
    }
    let pinned = s
        .liaise(&[
            "verify",
            "real.liaise",
            "--roster",
            "roster.liaise",
            "--federation-fingerprint",
            &real_fp,
            "--json",
        ])
        .json();
    assert_eq!(pinned["federation_pinned"], true, "{pinned}");
    // And the forged document against the real federation: its signer key is not the city's.
    s.liaise(&["verify", "forged-report.liaise", "--home", "probation"])
        .fails_with("signer");
}

#[test]
fn tampering_truncation_and_versions_are_refused_and_nothing_is_written() {
    let s = federation();
    seal_report(&s, "r.liaise", &[]);
    let good = s.read("r.liaise");
    // One flipped byte in each region: prelude (the format version), header (the signer's
    // name, the reader's name in its recipient entry), ciphertext, trailer; each refused for
    // what is wrong with it. A changed recipient entry is tampering, not a document for
    // someone else.
    let reader_entry = good
        .windows(PROBATION.len())
        .position(|w| w == PROBATION.as_bytes())
        .unwrap();
    let refusals = [
        (9, "unsupported version 0 of the sealed-document format"),
        (40, "is not trusted"),
        (reader_entry, "verification failed"),
        (
            good.len() / 2,
            "verification failed: the document is corrupt",
        ),
        (
            good.len() - 70,
            "verification failed: the document is corrupt",
        ),
        (
            good.len() - 1,
            "verification failed: the document is corrupt",
        ),
    ];
    for (pos, why) in refusals {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        std::fs::write(s.path("bad.liaise"), &bad).unwrap();
        let v = s.liaise(&[
            "verify",
            "bad.liaise",
            "--roster",
            "roster.liaise",
            "--json",
        ]);
        assert_eq!(v.code, Some(1), "byte {pos}");
        let v: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
        assert_eq!(v["valid"], false, "byte {pos}");
        let error = s
            .liaise(&[
                "open",
                "--home",
                "probation",
                "bad.liaise",
                "--out-dir",
                "out",
            ])
            .fails_with("cannot open bad.liaise")
            .to_owned();
        assert!(error.contains(why), "byte {pos}: {error}");
        assert!(
            !s.path("out").exists(),
            "byte {pos}: nothing may be written"
        );
        // No plaintext released before everything verified: no staging folder is left in
        // the reader's HOME/run, and no file in the sandbox but the inputs holds any of it.
        let staging: Vec<_> = std::fs::read_dir(s.path("probation/run"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".liaise-open-"))
            .collect();
        assert!(staging.is_empty(), "byte {pos}: {staging:?}");
        let leaks = files_holding(&s, &[b"risk assessment of case 17", b"medical annex"]);
        assert_eq!(
            leaks,
            [s.path("annex.txt"), s.path("report.pdf")],
            "byte {pos}: plaintext outside the input files"
        );
    }
    std::fs::write(s.path("short.liaise"), &good[..good.len() - 10]).unwrap();
    s.liaise(&["verify", "short.liaise", "--roster", "roster.liaise"])
        .fails_with("truncated");
    let mut v2 = good.clone();
    v2[9] = 2; // version u16 big-endian after the 8-byte magic
    std::fs::write(s.path("v2.liaise"), &v2).unwrap();
    s.liaise(&["verify", "v2.liaise", "--roster", "roster.liaise"])
        .fails_with("unsupported version 2");
    std::fs::write(s.path("notes.txt"), b"just text").unwrap();
    s.liaise(&["verify", "notes.txt", "--roster", "roster.liaise"])
        .fails_with("not a sealed document");
    s.liaise(&["verify", "", "--roster", "roster.liaise"])
        .fails_with("no document named: give a sealed document's file");
}

/// Every file under the sandbox (links not followed) that holds any of `needles`, sorted.
fn files_holding(s: &Sandbox, needles: &[&[u8]]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![s.root().to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                if needles
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == *n))
                {
                    found.push(entry.path());
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn expiry_is_enforced_at_open() {
    let s = federation();
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "--expires",
        "1s",
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    s.liaise(&["open", "--home", "prison", "r.liaise", "--out-dir", "out"])
        .fails_with("expired");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "--expires",
        "2020-01-01",
        "report.pdf",
        "--out",
        "x.liaise",
    ])
    .fails_with("in the past");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "--expires",
        "someday",
        "report.pdf",
        "--out",
        "x.liaise",
    ])
    .fails_as_usage("--expires");
}

#[test]
fn revoked_signer_is_refused_by_verify() {
    let s = federation();
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .ok();
    // Times are whole seconds: the revocation comes in a later one than the signature.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.liaise(&["federation", "revoke", "--dir", "fed", CITY])
        .ok();
    s.publish("fed", "roster2.liaise");
    s.liaise(&["roster", "import", "--home", "prison", "roster2.liaise"])
        .ok();
    // Signed before the revocation, by the signer's word: a revoked key could backdate, so
    // that is refused too, and says so.
    s.liaise(&["verify", "r.liaise", "--home", "prison"])
        .fails_with("signer nl.city.utrecht is not trusted: the agency was revoked with its signing key after the claimed signing time");
    s.liaise(&["open", "--home", "prison", "r.liaise", "--out-dir", "out"])
        .fails_with("not trusted");
    // Signed after it (the city's own roster still lists it): the key was revoked then.
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "report.pdf",
        "--out",
        "r2.liaise",
    ])
    .ok();
    s.liaise(&["verify", "r2.liaise", "--home", "prison"])
        .fails_with(
            "signer nl.city.utrecht is not trusted: the signing key was revoked at signing time",
        );
}

#[test]
fn a_signer_name_altered_in_the_file_is_called_altered() {
    let s = federation();
    seal_report(&s, "report.liaise", &[]);
    let mut bytes = s.read("report.liaise");
    let at = bytes
        .windows(CITY.len())
        .position(|w| w == CITY.as_bytes())
        .unwrap();
    bytes[at..at + CITY.len()].copy_from_slice(b"nl.city.uurecht");
    std::fs::write(s.path("altered.liaise"), &bytes).unwrap();
    s.liaise(&["verify", "altered.liaise", "--roster", "roster.liaise"])
        .fails_with("the signer's name was altered");
}

#[test]
fn recipients_and_sections_options_are_checked() {
    let s = federation();
    // A section named twice, and `main` (which is the FILE), each with the hint that fits.
    std::fs::write(s.path("annex.txt"), b"annex").unwrap();
    let twice = |sections: &[&str]| {
        let mut args = vec!["seal", "--offline", "--home", "city", "--to", PRISON];
        for section in sections {
            args.extend(["--section", section]);
        }
        args.extend(["report.pdf", "--out", "r.liaise"]);
        s.liaise(&args)
    };
    twice(&["annex=annex.txt", "annex=annex.txt"])
        .fails_with("--section annex: the section name is used twice");
    twice(&["main=annex.txt"]).fails_with("`main` is the FILE given last");
    assert!(!s.path("r.liaise").exists());
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .fails_with("no recipients");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        "nl.nobody.here",
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .fails_with("not in the roster");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "--section-readers",
        "annex=nl.prison.vught",
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .fails_with("there is no section annex");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to",
        PRISON,
        "--section",
        "annex=annex.txt",
        "--section-readers",
        "annex=nl.probation.utrecht",
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .fails_with("is not a recipient");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        "--to-group",
        "no-such-group",
        "report.pdf",
        "--out",
        "r.liaise",
    ])
    .fails_with("no such group");
    // Each rule is stated where it is broken.
    let seal_with = |extra: &[&str], file: &str| {
        let mut args = vec!["seal", "--offline", "--home", "city", "--to", PRISON];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[file, "--out", "r.liaise"]);
        s.liaise(&args)
    };
    seal_with(&["--section", "Bijlage 1=annex.txt"], "report.pdf")
        .fails_with("a section name is a-z, 0-9 and `-`, starts with a letter");
    seal_with(
        &[
            "--section",
            "annex=annex.txt",
            "--section-readers",
            "annex=",
        ],
        "report.pdf",
    )
    .fails_with("name the agencies that may read annex");
    std::fs::write(s.path("two\nlines.txt"), b"x").unwrap();
    seal_with(&[], "two\nlines.txt")
        .fails_with("\"two\\nlines.txt\": the file name holds a control character");
    assert!(!s.path("r.liaise").exists());
    // A group resolves to its members other than the sender.
    let v = {
        s.liaise(&[
            "seal",
            "--offline",
            "--home",
            "city",
            "--to-group",
            "case-conference",
            "report.pdf",
            "--out",
            "g.liaise",
        ])
        .ok();
        s.liaise(&["verify", "g.liaise", "--roster", "roster.liaise", "--json"])
            .json()
    };
    let agencies: Vec<&str> = v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["agency"].as_str().unwrap())
        .collect();
    assert_eq!(agencies, [PRISON, PROBATION]);
}

#[test]
fn provenance_checks_out_with_stock_ssh_keygen() {
    let s = federation();
    seal_report(&s, "r.liaise", &[]);
    s.liaise(&[
        "open",
        "--home",
        "probation",
        "r.liaise",
        "--out-dir",
        "out",
        "--with-signatures",
    ])
    .ok();
    s.liaise(&[
        "roster",
        "allowed-signers",
        "--home",
        "probation",
        "--out",
        "allowed_signers",
    ])
    .ok();
    // Written again, it replaces its own earlier list; any other file it leaves alone.
    let allowed_signers = |out: &str| {
        s.liaise(&[
            "roster",
            "allowed-signers",
            "--home",
            "probation",
            "--out",
            out,
        ])
    };
    // An earlier list (here cut down to its first line, which marks it as this command's) is
    // rewritten whole.
    let written = String::from_utf8(s.read("allowed_signers")).unwrap();
    let first_line = written.lines().next().unwrap();
    std::fs::write(s.path("allowed_signers"), format!("{first_line}\n")).unwrap();
    allowed_signers("allowed_signers").ok();
    assert_eq!(
        String::from_utf8(s.read("allowed_signers")).unwrap(),
        written
    );
    let sealed = s.read("r.liaise");
    allowed_signers("r.liaise")
        .fails_with("already exists and is not an allowed-signers file this command wrote");
    assert_eq!(s.read("r.liaise"), sealed);
    let signers = String::from_utf8(s.read("allowed_signers")).unwrap();
    // One line per member, each after a comment with the fingerprint ssh-keygen shows for it.
    let keys: Vec<&str> = signers.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys.len(), 3, "{signers}");
    assert!(
        signers.contains(r#"nl.city.utrecht namespaces="liaise-document" ssh-ed25519 "#),
        "{signers}"
    );
    for file in ["report.pdf", "annex.txt"] {
        let check = |content: &str| {
            std::process::Command::new("ssh-keygen")
                .args([
                    "-Y",
                    "verify",
                    "-f",
                    "allowed_signers",
                    "-I",
                    CITY,
                    "-n",
                    "liaise-document",
                    "-s",
                ])
                .arg(s.path(&format!("out/{file}.sig")))
                .current_dir(s.root())
                .stdin(std::fs::File::open(s.path(content)).unwrap())
                .output()
                .expect("ssh-keygen (openssh-client) must be installed")
        };
        let ok = check(&format!("out/{file}"));
        assert!(
            ok.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        // The key ssh-keygen names is the one the file lists for the city, and `liaise verify`
        // shows the same OpenSSH fingerprint for the signer.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ok.stdout),
            String::from_utf8_lossy(&ok.stderr)
        );
        let listed = signers
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {CITY}: ")))
            .unwrap();
        assert!(said.contains(listed), "{said} / {listed}");
        let verified = s
            .liaise(&["verify", "r.liaise", "--roster", "roster.liaise", "--json"])
            .json();
        assert_eq!(verified["signing_key_openssh_fingerprint"], listed);
        // Not one byte may change.
        let mut altered = s.read(&format!("out/{file}"));
        altered[0] ^= 1;
        std::fs::write(s.path("altered"), altered).unwrap();
        assert!(
            !check("altered").status.success(),
            "{file}: an altered copy must not verify"
        );
    }
}

/// The `.liaise-open-*` staging folders in `folder`.
fn staging_in(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".liaise-open-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The staging folder (under `.liaise-open-`) of an unnamed file process `pid` holds open with
/// more than `len` bytes in it, if any: `/proc/PID/fd/N` names it `DIR/#INODE (deleted)`.
fn unnamed_part_in_staging(pid: u32, len: u64) -> Option<std::path::PathBuf> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().find_map(|fd| {
        let target = std::fs::read_link(fd.path()).ok()?;
        let text = target.to_string_lossy();
        let big = std::fs::metadata(fd.path()).is_ok_and(|m| m.len() > len);
        (big && text.contains("/.liaise-open-") && text.ends_with("(deleted)"))
            .then(|| target.parent().map(std::path::Path::to_path_buf))
            .flatten()
    })
}

/// Seals 96 MiB of `marker` repeated for the probation service, offline, as `big.liaise`:
/// large enough that an open of it is still decrypting when the test stops it.
fn seal_big_document(s: &Sandbox, marker: &[u8]) {
    let big = marker.repeat((96 << 20) / marker.len());
    std::fs::write(s.path("big.bin"), &big).unwrap();
    drop(big);
    seal_offline_for_probation(s, "big.bin", "big.liaise");
    std::fs::remove_file(s.path("big.bin")).unwrap();
}

/// Seals `input` for the probation service, offline, as `out`.
fn seal_offline_for_probation(s: &Sandbox, input: &str, out: &str) {
    let to = format!("--to={PROBATION}");
    s.liaise(&[
        "seal",
        "--offline",
        "--home",
        "city",
        &to,
        input,
        "--out",
        out,
    ])
    .ok();
}

/// Starts the probation service's open of `big.liaise` into `out_dir`.
fn spawn_open_of_big(s: &Sandbox, out_dir: &str) -> std::process::Child {
    s.command(&[
        "open",
        "--home",
        "probation",
        "big.liaise",
        "--out-dir",
        out_dir,
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

/// Waits until the open `open` has written a megabyte of plaintext: into a file with no name
/// (O_TMPFILE), seen only through the process's open files, or, where the file system makes
/// none, into a named part in its staging folder under `run`. Its staging folder, and
/// whether the part is unnamed.
pub(super) fn wait_until_decrypting(
    open: &mut std::process::Child,
    run: &std::path::Path,
) -> (std::path::PathBuf, bool) {
    let pid = open.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let named = staging_in(run).into_iter().find(|dir| {
            std::fs::read_dir(dir).is_ok_and(|parts| {
                parts
                    .flatten()
                    .any(|p| p.metadata().is_ok_and(|m| m.len() > 1 << 20))
            })
        });
        if let Some(dir) = named {
            return (dir, false);
        }
        if let Some(dir) = unnamed_part_in_staging(pid, 1 << 20) {
            return (dir, true);
        }
        assert!(
            open.try_wait().unwrap().is_none(),
            "the open ended before it was stopped"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the open never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn an_interrupted_open_leaves_no_folder_and_no_plaintext() {
    let s = federation();
    let marker = b"case 18, interrupted while it was decrypted. ";
    seal_big_document(&s, marker);
    let run = s.path("probation/run");
    std::fs::create_dir(s.path("new")).unwrap();
    // Ctrl-C at a terminal, then a service manager's stop.
    for signal in ["-INT", "-TERM"] {
        let mut open = spawn_open_of_big(&s, "new/out");
        let (staging, _) = wait_until_decrypting(&mut open, &run);
        let sent = std::process::Command::new("kill")
            .args([signal, &open.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let ended = open.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&ended.stderr);
        assert_eq!(ended.status.code(), Some(130), "{signal}: {stderr}");
        assert!(
            stderr.contains("interrupted: no file was written to new/out"),
            "{signal}: {stderr}"
        );
        // At once, not at the next open: the staging folder and its plaintext, and the output
        // folder the open created (not its parent, which was there before).
        assert!(!staging.exists(), "{signal}: the staging folder stayed");
        assert_eq!(staging_in(&run), Vec::<std::path::PathBuf>::new());
        assert!(
            !s.path("new/out").exists(),
            "{signal}: the created folder stayed"
        );
        assert!(s.path("new").is_dir());
        assert_eq!(
            files_holding(&s, &[&marker[..]]),
            Vec::<std::path::PathBuf>::new(),
            "{signal}"
        );
    }
    // An existing output folder is kept, empty as it was.
    std::fs::create_dir(s.path("kept")).unwrap();
    let mut open = spawn_open_of_big(&s, "kept");
    wait_until_decrypting(&mut open, &run);
    std::process::Command::new("kill")
        .args(["-INT", &open.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(open.wait().unwrap().code(), Some(130));
    assert_eq!(std::fs::read_dir(s.path("kept")).unwrap().count(), 0);
}

#[test]
fn a_killed_opens_plaintext_is_removed_by_the_next_open() {
    let s = federation();
    let marker = b"case 17, decrypted and not yet verified. ";
    seal_big_document(&s, marker);
    seal_offline_for_probation(&s, "report.pdf", "small.liaise");
    let mut open = spawn_open_of_big(&s, "out");
    // Killed once a megabyte of plaintext is written.
    let run = s.path("probation/run");
    let (staging, unnamed) = wait_until_decrypting(&mut open, &run);
    open.kill().unwrap();
    open.wait().unwrap();
    let in_out = std::fs::read_dir(s.path("out")).map_or(0, |e| e.count());
    assert_eq!(in_out, 0, "nothing in the output folder");
    // Unnamed where the file system makes them, and only there: a fallback taken by mistake
    // would leave named plaintext behind where it need not.
    assert_eq!(
        unnamed,
        liaise_node::open_staging::unnamed_files_supported(&run),
        "unnamed parts: {unnamed}"
    );
    if unnamed {
        // The plaintext had no name, and went with the process: its staging folder holds
        // nothing, and no file anywhere in the sandbox holds it.
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        assert_eq!(
            files_holding(&s, &[&marker[..]]),
            Vec::<std::path::PathBuf>::new()
        );
    } else {
        let part = std::fs::read_dir(&staging)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let held = std::fs::read(&part).unwrap();
        assert!(held.windows(marker.len()).any(|w| w == marker), "plaintext");
    }

    // The next open, a minute later (backdated here), removes it: no process holds it.
    let backdated = std::process::Command::new("touch")
        .args(["-h", "-d", "2 minutes ago"])
        .arg(&staging)
        .status()
        .unwrap();
    assert!(backdated.success());
    s.liaise(&[
        "open",
        "--home",
        "probation",
        "small.liaise",
        "--out-dir",
        "out",
    ])
    .ok();
    assert!(!staging.exists(), "the killed open's plaintext stayed");
    assert_eq!(staging_in(&run), Vec::<std::path::PathBuf>::new());
    let written: Vec<_> = std::fs::read_dir(s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(written, ["report.pdf"]);
}
