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
