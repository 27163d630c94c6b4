//! Helpers for end-to-end tests: run the real `liaise` binary in a private temporary folder.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod chaos_proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The passphrase every test agency and federation uses.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The `liaise` binary of this workspace, built if it is not there yet.
pub fn liaise_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/e2e-HASH -> target/<profile>/liaise
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let bin = profile_dir.join("liaise");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        // The whole workspace's binaries, with dependencies' features unified as under
        // `cargo test --workspace`: `--examples` (there are none) brings in the
        // dev-dependencies, which turn on a few more. The binary `cargo test` built for
        // `node/tests/` is then current, and the end-to-end tests do not wait for a second
        // build of it.
        build.args(["build", "--quiet", "--workspace", "--bins", "--examples"]);
        if release {
            build.arg("--release");
        }
        // Always ask cargo: it is a no-op when the binary is current, and rebuilds a stale one.
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the liaise binary failed");
        bin
    })
    .clone()
}

/// The result of one `liaise` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "liaise failed:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts failure with a single-line error on stderr containing `needle`; returns it.
    #[track_caller]
    pub fn fails_with(&self, needle: &str) -> &str {
        assert_ne!(
            self.code,
            Some(0),
            "liaise unexpectedly succeeded:\nstdout: {}",
            self.stdout
        );
        let line = self.stderr.trim_end();
        assert!(
            line.contains(needle),
            "stderr does not mention {needle:?}:\n{}",
            self.stderr
        );
        let last = line.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: "),
            "the error line should start with `error: `: {last}"
        );
        line
    }

    /// Asserts a usage error (exit 2, as for any bad option value) whose message on stderr
    /// contains `needle` and points to `--help`.
    #[track_caller]
    pub fn fails_as_usage(&self, needle: &str) {
        assert_eq!(self.code, Some(2), "not a usage error:\n{}", self.stderr);
        assert!(
            self.stderr.starts_with("error: ") && self.stderr.contains(needle),
            "stderr does not mention {needle:?}:\n{}",
            self.stderr
        );
        assert!(self.stderr.contains("--help"), "{}", self.stderr);
    }
}

/// The environment variable that turns a skipped test into a failed one: set where the tests
/// run with the privileges every test needs (root in CI), so a test that could not exercise
/// its scenario is never counted as passed there.
pub const REQUIRE_PRIVILEGES: &str = "LIAISE_E2E_REQUIRE_PRIVILEGES";

/// Whether a test that needs `condition` (root, a tmpfs mount, ...) should go on. If the
/// condition holds, `true`. If not, the test cannot exercise its scenario: it prints
/// `SKIPPED: why` and returns `false` (the caller returns), unless
/// `LIAISE_E2E_REQUIRE_PRIVILEGES=1` is set, where it panics with `why` instead.
#[track_caller]
pub fn skip_unless(condition: bool, why: &str) -> bool {
    if condition {
        return true;
    }
    if std::env::var(REQUIRE_PRIVILEGES).is_ok_and(|v| v == "1") {
        panic!("{why} ({REQUIRE_PRIVILEGES}=1: this test may not be skipped)");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// A private temporary folder to run `liaise` in.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh folder.
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("liaise-e2e-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// A path inside the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A `liaise` command in this folder, with the test passphrase in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(liaise_bin());
        cmd.current_dir(self.dir.path())
            .args(args)
            .env("LIAISE_PASSPHRASE", PASSPHRASE)
            .env_remove("LIAISE_HOME")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs `liaise ARGS` to completion.
    pub fn liaise(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run liaise"))
    }

    /// Runs `liaise ARGS` on a terminal, as staff do: under `script` (util-linux, in every
    /// Debian), which gives it a pseudo-terminal and copies what it writes there, stdout and
    /// stderr together, to `Run::stdout`. The exit code is liaise's.
    pub fn liaise_on_terminal(&self, args: &[&str]) -> Run {
        let quoted: Vec<String> = std::iter::once(liaise_bin().display().to_string())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let mut cmd = Command::new("script");
        cmd.current_dir(self.dir.path())
            .args([
                "--quiet",
                "--return",
                "--command",
                &quoted.join(" "),
                "/dev/null",
            ])
            .env("LIAISE_PASSPHRASE", PASSPHRASE)
            .env_remove("LIAISE_HOME")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        Run::from(
            cmd.output()
                .expect("run script (util-linux) to give liaise a terminal"),
        )
    }

    /// Runs `liaise ARGS` without any passphrase source.
    pub fn liaise_without_passphrase(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.env_remove("LIAISE_PASSPHRASE")
            .stdin(std::process::Stdio::null());
        Run::from(cmd.output().expect("run liaise"))
    }

    /// Creates a federation in `fed` with `stewards` keys and `threshold`; returns its
    /// fingerprint as printed by `--json`.
    pub fn federation(&self, fed: &str, stewards: u8, threshold: u8) -> String {
        let out = self
            .liaise(&[
                "federation",
                "init",
                "--dir",
                fed,
                "--name",
                "Test federation",
                "--stewards",
                &stewards.to_string(),
                "--threshold",
                &threshold.to_string(),
                "--json",
            ])
            .json();
        out["federation_fingerprint"].as_str().unwrap().to_owned()
    }

    /// `liaise federation publish --dir fed --out out`, which must succeed.
    pub fn publish(&self, fed: &str, out: &str) {
        self.liaise(&["federation", "publish", "--dir", fed, "--out", out])
            .ok();
    }

    /// Creates an agency home `home` for `agency` listening on `address`.
    pub fn agency(&self, home: &str, agency: &str, kind: &str, address: &str) {
        self.liaise(&[
            "init",
            "--home",
            home,
            "--agency",
            agency,
            "--name",
            &format!("Agency {agency}"),
            "--kind",
            kind,
            "--country",
            "NL",
            "--address",
            address,
        ])
        .ok();
    }

    /// Reads a file in the folder.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// The sealed bytes the node in `home` holds under content hash `blob` (hex): a file in
    /// its blob folder or, for a small document, a row of its database; `None` if neither.
    pub fn stored(&self, home: &str, blob: &str) -> Option<Vec<u8>> {
        let store = self.path(home).join("store");
        let hash = liaise_node::store::parse_hex::<32>(blob).expect("a content hash");
        let conn = liaise_node::store::db::open_reader(&store.join("liaise.db")).expect("store");
        let held = liaise_node::store::stored_blob(&conn, &store, &hash).expect("read store")?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut held.open().expect("open"), &mut bytes).expect("read");
        Some(bytes)
    }
}

/// A free UDP port on loopback for a node to listen on.
///
/// A port bound and released to be bound again by the node could meanwhile be given to any
/// socket bound to port 0 (the nodes' own, the proxies'). So ports come from below the
/// kernel's ephemeral range, where no such socket lands, each at most once per test process,
/// starting at a point that depends on the process id; each is checked free by binding it.
/// Where the ephemeral range leaves no room below it, an ephemeral port (best effort).
pub fn free_udp_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let below = ephemeral_range_start().saturating_sub(1);
    if below > LOWEST + 1000 {
        let span = below - LOWEST;
        let start = std::process::id() % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = LOWEST + (start + n) % span;
            if let Ok(port) = u16::try_from(port)
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            {
                return port;
            }
        }
    }
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral UDP port")
}

/// The first port of the kernel's ephemeral range (Linux), or 32768.
fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}
