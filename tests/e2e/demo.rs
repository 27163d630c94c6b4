//! `liaise demo`, the README's first command: it must run to the end on a fresh machine,
//! show every step, and leave no node running and no folder behind.

use std::process::Command;

use liaise_tests::liaise_bin;

#[test]
fn the_demo_runs_to_the_end() {
    let output = Command::new(liaise_bin())
        .arg("demo")
        .env_remove("LIAISE_PASSPHRASE")
        .env_remove("LIAISE_HOME")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for needle in [
        "$ liaise federation init",
        "$ liaise send --home city --to nl.probation.utrecht,nl.prison.vught",
        "--section annex=annex.txt --section-readers annex=nl.probation.utrecht",
        "delivered",
        "verified",
        "Verdict: VALID",
        "probation-opened/annex.txt",
        "annex: not for nl.prison.vught",
        "no annex here",
        "all three nodes stopped",
        "the demo folder is removed",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    if which_ssh_keygen() {
        assert!(
            stdout.contains("Good \"liaise-document\" signature for nl.city.utrecht"),
            "{stdout}"
        );
    }
    let folder = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Working folder: "))
        .unwrap();
    assert!(
        !std::path::Path::new(folder).exists(),
        "{folder} was left behind"
    );
}

fn which_ssh_keygen() -> bool {
    Command::new("ssh-keygen").arg("-?").output().is_ok()
}
