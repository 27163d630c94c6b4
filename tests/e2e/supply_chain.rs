//! The dependency policy the README states, checked on what Cargo actually builds (for this
//! platform, with dev-dependencies): one generation of each crypto and transport crate, and
//! none of the crates `deny.toml` bans. `cargo deny check` (licenses, advisories) needs its
//! own install and the RustSec database from the network; this check needs neither.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crates that must never be built: why is in `deny.toml`.
const BANNED: &[&str] = &["bincode", "openssl", "openssl-sys", "ring"];

/// The one generation (major or 0.minor) of each crate the project chose.
const GENERATIONS: &[(&str, &str)] = &[
    ("rand_core", "0.10"),
    ("getrandom", "0.4"),
    ("ed25519-dalek", "3"),
    ("x25519-dalek", "3"),
    ("curve25519-dalek", "5"),
    ("chacha20poly1305", "0.11"),
    ("aead", "0.6"),
    ("sha2", "0.11"),
    ("digest", "0.11"),
    ("hpke", "0.15"),
    ("quinn", "0.11"),
    ("rustls", "0.23"),
    ("postcard", "1"),
];

/// Every (crate, version) in the workspace's build graph.
fn built_crates() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "tree",
            "--workspace",
            "--locked",
            "--offline",
            "-e",
            "normal,build,dev",
            "--prefix",
            "none",
            "--no-dedupe",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut words = line.split_whitespace();
        if let (Some(name), Some(version)) = (words.next(), words.next()) {
            let version = version.trim_start_matches('v').to_owned();
            crates.entry(name.to_owned()).or_default().insert(version);
        }
    }
    crates
}

/// `1.2.3` is of generation `1`; `0.10.1` of `0.10`.
fn generation(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}"),
        (Some(major), _) => major.to_owned(),
        _ => version.to_owned(),
    }
}

#[test]
fn one_generation_of_each_crypto_crate_and_nothing_banned_is_built() {
    let crates = built_crates();
    // The graph was read: the workspace's own crates are in it.
    assert!(crates.contains_key("liaise-protocol"), "{crates:?}");
    for banned in BANNED {
        assert!(
            !crates.contains_key(*banned),
            "{banned} is in the build graph: {:?}",
            crates[*banned]
        );
    }
    for (name, wanted) in GENERATIONS {
        let versions = crates
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is no longer built: update the policy"));
        let generations: BTreeSet<String> = versions.iter().map(|v| generation(v)).collect();
        assert_eq!(
            generations,
            BTreeSet::from([(*wanted).to_owned()]),
            "{name}: built in versions {versions:?}"
        );
    }
}

#[test]
fn generations_are_read_as_cargo_reads_compatibility() {
    assert_eq!(generation("0.10.1"), "0.10");
    assert_eq!(generation("3.0.0"), "3");
    assert_eq!(generation("0.11.0-rc.2"), "0.11");
}
