//! `liaise node run` under a service manager: systemd's readiness protocol (`Type=notify`,
//! `deploy/liaise-node.service`), so that `systemctl start` waits for a node that is up and
//! fails for one that never comes up, and log priorities the journal understands.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::nodes::TestFederation;

#[test]
fn a_node_tells_the_service_manager_when_it_is_up_and_when_it_stops() {
    let fed = TestFederation::new(
        &[
            ("nl.city.utrecht", "city"),
            ("nl.probation.utrecht", "probation"),
        ],
        &[],
    );
    let city = &fed.agencies[0];
    let socket = fed.sandbox.path("notify.sock");
    let manager = UnixDatagram::bind(&socket).unwrap();
    let mut buf = [0u8; 256];

    // A wrong passphrase: the node never comes up, and never says it did.
    let wrong = fed
        .sandbox
        .command(&["node", "run", "--home", &city.home])
        .env("NOTIFY_SOCKET", &socket)
        .env("LIAISE_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    manager.set_nonblocking(true).unwrap();
    assert!(manager.recv(&mut buf).is_err(), "a failed start said READY");
    manager.set_nonblocking(false).unwrap();

    manager
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The journal reads the node's stderr: systemd names that stream in $JOURNAL_STREAM.
    let log = std::fs::File::create(fed.sandbox.path("journal.log")).unwrap();
    let stream = {
        use std::os::unix::fs::MetadataExt;
        let meta = log.metadata().unwrap();
        format!("{}:{}", meta.dev(), meta.ino())
    };
    let mut node = fed
        .sandbox
        .command(&["-v", "node", "run", "--home", &city.home])
        .env("NOTIFY_SOCKET", &socket)
        .env("JOURNAL_STREAM", &stream)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let n = manager.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means ready: the node answers at once.
    fed.sandbox
        .liaise(&["status", "--home", &city.home, "--json"])
        .ok();
    let term = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let n = manager.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(node.wait().unwrap().success());
    // Each log line carries its syslog priority for the journal (`journalctl -p`).
    let journal = String::from_utf8(fed.sandbox.read("journal.log")).unwrap();
    let running = journal
        .lines()
        .find(|l| l.contains("node running"))
        .unwrap_or_else(|| panic!("{journal}"));
    assert!(running.starts_with("<6>"), "{journal}");

    // A node that cannot start (a wrong passphrase) says so as an error the journal files
    // as one, so that `journalctl -p err` shows why the service failed.
    let log = std::fs::File::create(fed.sandbox.path("failed.log")).unwrap();
    let stream = {
        use std::os::unix::fs::MetadataExt;
        let meta = log.metadata().unwrap();
        format!("{}:{}", meta.dev(), meta.ino())
    };
    let failed = fed
        .sandbox
        .command(&["node", "run", "--home", &city.home])
        .env("LIAISE_PASSPHRASE", "not the passphrase")
        .env("JOURNAL_STREAM", &stream)
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert!(!failed.success());
    let journal = String::from_utf8(fed.sandbox.read("failed.log")).unwrap();
    assert!(
        journal
            .lines()
            .any(|l| l.starts_with("<3>error: ") && l.contains("passphrase")),
        "{journal}"
    );
}
