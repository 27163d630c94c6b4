//! The `liaise` binary's help: every verb the README and the acceptance scripts name has it.
//!
//! An integration test of this package, so `cargo test` builds the binary along with the
//! tests' other crates (the end-to-end tests then find it built).

use std::process::Command;

/// Each verb, with the flags its help must mention.
const VERBS: &[(&[&str], &[&str])] = &[
    (
        &[],
        &[
            "send", "outbox", "inbox", "open", "verify", "receipts", "status", "demo",
        ],
    ),
    (&["init"], &["--home"]),
    (&["federation", "publish"], &[]),
    (&["roster", "import"], &["--federation-fingerprint"]),
    (&["keys", "rotate"], &[]),
    (&["node", "run"], &["--home"]),
    (&["send"], &["--to", "--wait", "--timeout"]),
    (&["outbox"], &["--json"]),
    (&["inbox"], &["--json"]),
    (&["open"], &["--out-dir"]),
    (&["verify"], &["--home"]),
    (&["receipts"], &["--json"]),
    (&["status"], &["--json"]),
    (&["demo"], &[]),
    (&["log"], &["--home", "--doc", "--json"]),
    (&["log", "verify"], &["--home", "--json"]),
    (&["revoke"], &["--recipient"]),
    (&["forward"], &["--to", "--reason"]),
    (&["evidence", "export"], &["--out"]),
    (&["evidence", "verify"], &["--roster"]),
];

#[test]
fn help_is_there_for_every_verb() {
    for (verb, flags) in VERBS {
        let out = Command::new(env!("CARGO_BIN_EXE_liaise"))
            .args(verb.iter().chain(&["--help"]))
            .output()
            .unwrap_or_else(|e| panic!("cannot run liaise: {e}"));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{verb:?}: {out:?}");
        assert!(help.contains("Usage:"), "{verb:?}: {help}");
        for flag in *flags {
            assert!(help.contains(flag), "{verb:?} --help lacks {flag}: {help}");
        }
    }
}

fn liaise(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_liaise"))
        .args(args)
        .env_remove("LIAISE_HOME")
        .output()
        .unwrap_or_else(|e| panic!("cannot run liaise: {e}"))
}

/// A value outside a fixed list (an agency kind, an ISO country code) or not a duration is a
/// usage error, exit 2, naming the option; scripts tell it from a failed operation (exit 1).
#[test]
fn values_outside_their_list_are_usage_errors() {
    let init = |kind: &str, country: &str| {
        let home = std::env::temp_dir().join(format!("liaise-help-{}", std::process::id()));
        let home = home.to_string_lossy().into_owned();
        liaise(&[
            "init",
            "--home",
            &home,
            "--agency",
            "nl.city.utrecht",
            "--name",
            "City",
            "--kind",
            kind,
            "--country",
            country,
            "--address",
            "127.0.0.1:7400",
        ])
    };
    for (out, expected) in [
        (init("town", "NL"), "--kind"),
        (init("city", "QQ"), "not an ISO 3166-1 alpha-2 country code"),
        (init("city", "NLD"), "--country"),
        (
            liaise(&["send", "--home", "h", "--to", "a", "f", "--timeout", "1m30"]),
            "--timeout",
        ),
        (
            liaise(&["log", "--doc", "00", "verify"]),
            "--doc only narrows",
        ),
        (liaise(&["log", "verify", "--doc", "00"]), "--doc"),
    ] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// `--home` and `--json` go before or after `log verify`, as with the other verbs; a home
/// that is not there is named as such.
#[test]
fn log_verify_takes_home_before_or_after_the_verb_and_a_missing_home_is_named() {
    let missing = std::env::temp_dir().join("liaise-help-no-such-home");
    let missing = missing.to_string_lossy().into_owned();
    for args in [
        ["log", "--home", missing.as_str(), "verify", "--json"],
        ["log", "verify", "--home", missing.as_str(), "--json"],
        // Not "no roster imported yet": the home itself is missing.
        ["roster", "show", "--home", missing.as_str(), "--json"],
    ] {
        let out = liaise(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Parsed, then refused for the missing home (exit 1), not a usage error (exit 2).
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is not a Liaise home"),
            "{args:?}: {stderr}"
        );
    }
}
