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

#[test]
fn the_demo_interrupted_stops_its_nodes_and_removes_its_folder() {
    use std::io::{BufRead, BufReader};
    let mut demo = Command::new(liaise_bin())
        .arg("demo")
        .env_remove("LIAISE_PASSPHRASE")
        .env_remove("LIAISE_HOME")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut folder = None;
    // Up to the step after the nodes started: three nodes run in the demo folder.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(f) = line.strip_prefix("Working folder: ") {
            folder = Some(std::path::PathBuf::from(f));
        }
        if line.starts_with("[6]") {
            break;
        }
    }
    let folder = folder.expect("the demo names its folder");
    let nodes = nodes_in(&folder);
    assert_eq!(nodes.len(), 3);
    // SIGTERM to the demo alone, as a service manager or `kill` would send it.
    let status = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = demo.wait().unwrap().code();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        !folder.exists(),
        "{} was left behind; the demo said:\n{stderr}",
        folder.display()
    );
    let left: Vec<_> = nodes.into_iter().filter(|pid| running(*pid)).collect();
    assert!(left.is_empty(), "nodes left running: {left:?}");
}

/// The `liaise node run` processes whose working folder is `folder`.
fn nodes_in(folder: &std::path::Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            let cwd = std::fs::read_link(p.path().join("cwd")).ok()?;
            (running(pid)
                && String::from_utf8_lossy(&cmdline).contains("node\0run")
                && cwd.starts_with(folder))
            .then_some(pid)
        })
        .collect()
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}
