//! A roster address given as a host name that stands for several addresses (an AAAA and an A
//! record): a peer may listen on one of them only, and a dialling node must try the others.
//!
//! The dialling node runs in a mount namespace of its own, where `/etc/hosts` names
//! `twofold.test` as `::1` first and `127.0.0.1` second; the named node listens on
//! `127.0.0.1` only. Creating the namespace needs root (or CAP_SYS_ADMIN); where that is not
//! permitted the test says it is skipped and returns, or fails under
//! `LIAISE_E2E_REQUIRE_PRIVILEGES=1` (as in CI).

use std::process::Command;

use liaise_tests::{Sandbox, free_udp_port};

use super::nodes::start_node_in;

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
/// The name both records are under.
const NAME: &str = "twofold.test";

/// Whether this machine lets a test give a process its own `/etc/hosts`.
fn can_bind_hosts(s: &Sandbox) -> bool {
    std::fs::write(s.path("probe-hosts"), "127.0.0.1 probe.test\n").unwrap();
    Command::new("unshare")
        .args(["-m", "sh", "-c", r#"mount --bind "$0" /etc/hosts"#])
        .arg(s.path("probe-hosts"))
        .status()
        .is_ok_and(|status| status.success())
}

/// The addresses `NAME` resolves to under the hosts file `hosts`, in the resolver's order
/// (`getent ahosts`, which asks `getaddrinfo` as the node does).
fn resolved_under(hosts: &std::path::Path) -> Vec<String> {
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            r#"mount --bind "$0" /etc/hosts && getent ahosts "$1""#,
        ])
        .arg(hosts)
        .arg(NAME)
        .output()
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let addr = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !addr.is_empty() && !seen.contains(&addr) {
            seen.push(addr);
        }
    }
    seen
}

#[test]
fn a_name_with_two_addresses_is_dialled_at_the_second_when_the_first_does_not_answer() {
    let s = Sandbox::new();
    if !liaise_tests::skip_unless(
        can_bind_hosts(&s),
        "dns_names: cannot bind a hosts file in a mount namespace (needs root)",
    ) {
        return;
    }
    let fingerprint = s.federation("fed", 1, 1);
    let (city_port, probation_port) = (free_udp_port(), free_udp_port());
    s.agency("city", CITY, "city", &format!("127.0.0.1:{city_port}"));
    s.agency(
        "probation",
        PROBATION,
        "probation",
        &format!("{NAME}:{probation_port}"),
    );
    for home in ["city", "probation"] {
        let request = format!("{home}/membership.toml");
        s.liaise(&["federation", "add", "--dir", "fed", &request])
            .ok();
    }
    s.publish("fed", "fed/roster.liaise");
    for home in ["city", "probation"] {
        s.liaise(&[
            "roster",
            "import",
            "--home",
            home,
            "fed/roster.liaise",
            "--federation-fingerprint",
            &fingerprint,
        ])
        .ok();
    }
    // The probation node listens on the second record's address only.
    let probation_listen = format!("127.0.0.1:{probation_port}");
    let _probation = start_node_in(
        &s,
        "probation",
        &["--listen", &probation_listen],
        None,
        |node| node,
    );
    // The city resolves the name to ::1 first, where nothing listens, then 127.0.0.1; it
    // listens on [::], so it can send to both.
    std::fs::write(
        s.path("hosts"),
        format!("::1 {NAME}\n127.0.0.1 {NAME} localhost\n"),
    )
    .unwrap();
    let city_listen = format!("[::]:{city_port}");
    let hosts = s.path("hosts");
    // Only if the first address is the one nobody listens on does the test show anything:
    // with 127.0.0.1 first (a resolver that puts IPv4 first), dialling the first address
    // alone would pass too.
    assert_eq!(resolved_under(&hosts), ["::1", "127.0.0.1"]);
    let _city = start_node_in(&s, "city", &["--listen", &city_listen], None, |node| {
        let mut wrapped = Command::new("unshare");
        wrapped
            .current_dir(s.root())
            .args([
                "-m",
                "sh",
                "-c",
                r#"mount --bind "$0" /etc/hosts && exec "$@""#,
            ])
            .arg(&hosts)
            .arg(node.get_program())
            .args(node.get_args());
        for (key, value) in node.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
    });
    std::fs::write(s.path("report.txt"), b"Case 17, over the second address").unwrap();
    let sent = s.liaise(&[
        "send",
        "--home",
        "city",
        "--to",
        PROBATION,
        "--wait",
        "--timeout",
        "90s",
        "report.txt",
    ]);
    let doc_id = sent.ok().trim().to_owned();
    let inbox = s.liaise(&["inbox", "--home", "probation", "--json"]).json();
    assert_eq!(inbox[0]["doc_id"], doc_id.as_str(), "{inbox:#}");
}
