//! Helpers for multi-node tests: a federation of agencies, each with a running node.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use liaise_tests::{Sandbox, free_udp_port};
use serde_json::Value;

/// One agency of a test federation.
#[derive(Debug, Clone)]
pub struct Agency {
    /// Its id.
    pub id: String,
    /// Its home, relative to the sandbox.
    pub home: String,
}

/// A running `liaise node run`; killed on drop.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
}

impl NodeProcess {
    /// Stops the node with SIGKILL and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the node with SIGTERM (clean shutdown); returns its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A federation in a sandbox: the stewards' folder `fed`, one home per agency.
#[derive(Debug)]
pub struct TestFederation {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The agencies, in creation order.
    pub agencies: Vec<Agency>,
    fingerprint: String,
}

impl TestFederation {
    /// Creates agencies `(id, kind)` and a roster with all of them (and `groups` as
    /// `(group, [member index])`), imported by every agency.
    pub fn new(members: &[(&str, &str)], groups: &[(&str, &[usize])]) -> Self {
        let sandbox = Sandbox::new();
        let fingerprint = sandbox.federation("fed", 1, 1);
        let mut agencies = Vec::new();
        for (i, (id, kind)) in members.iter().enumerate() {
            let home = format!("home-{i}");
            let address = format!("127.0.0.1:{}", free_udp_port());
            sandbox.agency(&home, id, kind, &address);
            let mut args = vec![
                "federation".to_owned(),
                "add".into(),
                "--dir".into(),
                "fed".into(),
                format!("{home}/membership.toml"),
            ];
            for (group, idx) in groups {
                if idx.contains(&i) {
                    args.push("--group".into());
                    args.push((*group).to_owned());
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sandbox.liaise(&args).ok();
            agencies.push(Agency {
                id: (*id).to_owned(),
                home,
            });
        }
        let fed = Self {
            sandbox,
            agencies,
            fingerprint,
        };
        fed.publish_and_import_all();
        fed
    }

    /// A federation of a city and a probation service, the pair most delivery tests need.
    pub fn city_and_probation() -> Self {
        Self::new(
            &[
                ("nl.city.utrecht", "city"),
                ("nl.probation.utrecht", "probation"),
            ],
            &[],
        )
    }

    /// Publishes a new roster and imports it into every agency's home.
    pub fn publish_and_import_all(&self) {
        self.publish();
        for agency in &self.agencies {
            self.import(agency);
        }
    }

    /// `federation add` of the agency's current membership request (an update if it is known).
    pub fn add_member(&self, agency: &Agency) {
        self.sandbox
            .liaise(&[
                "federation",
                "add",
                "--dir",
                "fed",
                &format!("{}/membership.toml", agency.home),
            ])
            .ok();
    }

    /// The serial of the roster the agency's running node uses.
    pub fn node_serial(&self, agency: &Agency) -> u64 {
        self.json(agency, &["status"])["roster_serial"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until the agency's running node uses roster `serial`; panics after `within`.
    pub fn wait_node_serial(&self, agency: &Agency, serial: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.node_serial(agency) != serial {
            assert!(
                Instant::now() < deadline,
                "the node of {} never took up roster {serial}",
                agency.id
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Publishes the next roster to `fed/roster.liaise`.
    pub fn publish(&self) {
        self.sandbox.publish("fed", "fed/roster.liaise");
    }

    /// Imports the last published roster into one home.
    pub fn import(&self, agency: &Agency) {
        self.sandbox
            .liaise(&[
                "roster",
                "import",
                "--home",
                &agency.home,
                "fed/roster.liaise",
                "--federation-fingerprint",
                &self.fingerprint,
            ])
            .ok();
    }

    /// Starts an agency's node and waits until it answers on its control socket.
    pub fn start(&self, agency: &Agency) -> NodeProcess {
        start_node(&self.sandbox, &agency.home, &[], None)
    }

    /// Starts an agency's node with extra `node run` arguments (e.g. `--listen`), logging at
    /// info level to `log` (a file in the sandbox) if given.
    pub fn start_with(&self, agency: &Agency, extra: &[&str], log: Option<&str>) -> NodeProcess {
        start_node(&self.sandbox, &agency.home, extra, log)
    }

    /// The first address the roster lists for `agency` (`host:port`).
    pub fn address(&self, agency: &Agency) -> String {
        let roster = self.json(agency, &["roster", "show"]);
        let members = roster["members"].as_array().unwrap();
        let me = members
            .iter()
            .find(|m| m["agency"] == agency.id.as_str())
            .unwrap();
        me["addresses"][0].as_str().unwrap().to_owned()
    }

    /// `liaise ARGS --home HOME --json` for an agency, parsed.
    pub fn json(&self, agency: &Agency, verb: &[&str]) -> Value {
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(["--home", &agency.home, "--json"]);
        self.sandbox.liaise(&args).json()
    }

    /// Writes `text` to `file` in the sandbox and `liaise send`s it from `from` to `to`
    /// without waiting; returns the document id.
    pub fn send_text(&self, from: &Agency, to: &str, file: &str, text: &[u8]) -> String {
        std::fs::write(self.sandbox.path(file), text).unwrap();
        self.sandbox
            .liaise(&["send", "--home", &from.home, "--to", to, file])
            .ok()
            .trim()
            .to_owned()
    }

    /// Writes `text` to `file` in the sandbox and `liaise send --wait`s it from `from` to
    /// `to`: returns the document id once every recipient's receipt arrived (within 60 s).
    pub fn deliver_text(&self, from: &Agency, to: &str, file: &str, text: &[u8]) -> String {
        std::fs::write(self.sandbox.path(file), text).unwrap();
        self.sandbox
            .liaise(&[
                "send",
                "--home",
                &from.home,
                "--to",
                to,
                "--wait",
                "--timeout",
                "60s",
                file,
            ])
            .ok()
            .trim()
            .to_owned()
    }

    /// Polls until `check` holds for the agency's outbox, or panics after `timeout`.
    pub fn wait_outbox(
        &self,
        agency: &Agency,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self
                .json(agency, &["outbox"])
                .as_array()
                .cloned()
                .unwrap_or_default();
            if check(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "outbox never reached the expected state: {rows:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Opens `doc_id` at `agency` (stating a reason, as a document under originator control
    /// needs) and asserts that the file it gives equals `sent`, the file given to `send`.
    pub fn assert_opens_as_sent(&self, agency: &Agency, doc_id: &str, sent: &str) {
        let out = format!("opened-{doc_id}");
        self.sandbox
            .liaise(&[
                "open",
                "--home",
                &agency.home,
                doc_id,
                "--out-dir",
                &out,
                "--reason",
                "test",
            ])
            .ok();
        assert!(
            std::fs::read(self.sandbox.path(&format!("{out}/{sent}"))).unwrap()
                == std::fs::read(self.sandbox.path(sent)).unwrap(),
            "{doc_id} opened at {} differs from the {sent} sent",
            agency.home
        );
    }

    /// The files in the agency's folder of transfers in progress.
    pub fn incoming_files(&self, agency: &Agency) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(
            self.sandbox
                .path(&format!("{}/store/incoming", agency.home)),
        )
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect()
    }
}

/// The state of every outbox row for `doc_id`.
pub fn states(rows: &[Value], doc_id: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r["doc_id"] == doc_id)
        .map(|r| r["state"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The text of the sandbox file `log` (a node's log), empty if it is not there yet.
pub fn read_log(sandbox: &Sandbox, log: &str) -> String {
    std::fs::read_to_string(sandbox.path(log)).unwrap_or_default()
}

/// Polls the sandbox file `log` (a node's log) until `check` holds for its text, or panics
/// after `within`, saying `what` was awaited. Returns the text.
#[track_caller]
pub fn wait_log(
    sandbox: &Sandbox,
    log: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = read_log(sandbox, log);
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{log} never showed {what} within {within:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Extra `node run` arguments that, with a log file, make a node log at debug level. (Both
/// `-v`s here: clap's count of a global flag given after the subcommand replaces the one
/// before it, [`start_node`]'s, rather than adding to it.) At that level the node logs each
/// connection it serves ([`accepted_connections`]).
pub const DEBUG_LOG: &[&str] = &["-vv"];

/// How many connections from peers the node logging to the sandbox file `log` (started with
/// [`DEBUG_LOG`]) has accepted and served so far: its "connection accepted" lines.
pub fn accepted_connections(sandbox: &Sandbox, log: &str) -> usize {
    read_log(sandbox, log)
        .lines()
        .filter(|l| l.contains("connection accepted"))
        .count()
}

/// Waits until the node logging to `log` (at debug level) has accepted `n` connections, and
/// returns how many it has then.
#[track_caller]
pub fn wait_accepted(sandbox: &Sandbox, log: &str, n: usize, within: Duration) -> usize {
    let what = format!("{n} accepted connections");
    wait_log(sandbox, log, within, &what, |text| {
        text.lines()
            .filter(|l| l.contains("connection accepted"))
            .count()
            >= n
    });
    accepted_connections(sandbox, log)
}

/// Starts `liaise node run --home HOME EXTRA...` in `sandbox` and waits until it answers on
/// its control socket; with `log`, at info level into that sandbox file.
pub fn start_node(sandbox: &Sandbox, home: &str, extra: &[&str], log: Option<&str>) -> NodeProcess {
    start_node_in(sandbox, home, extra, log, |node| node)
}

/// [`start_node`], run through `wrap` (which may put the node's command inside another, e.g.
/// in namespaces of its own).
pub fn start_node_in(
    sandbox: &Sandbox,
    home: &str,
    extra: &[&str],
    log: Option<&str>,
    wrap: impl FnOnce(std::process::Command) -> std::process::Command,
) -> NodeProcess {
    let mut args = vec!["node", "run", "--home", home];
    // Retries every second at most, so tests need not wait for backoff; unless a test sets it.
    if !extra.contains(&"--max-retry-interval") {
        args.extend(["--max-retry-interval", "1s"]);
    }
    args.extend_from_slice(extra);
    if log.is_some() {
        args.insert(0, "-v");
    }
    let stderr = match log {
        Some(file) => Stdio::from(std::fs::File::create(sandbox.path(file)).expect("log file")),
        None => Stdio::null(),
    };
    let child = wrap(sandbox.command(&args))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start node");
    let node = NodeProcess { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = sandbox.liaise(&["status", "--home", home, "--json"]);
        if run.code == Some(0) {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "node {home} did not start: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seals `count` small documents of `len` bytes of content from `from` to `to` in this process
/// (the keys unlocked once, not once per `liaise send`, each of which runs Argon2 over 64 MiB)
/// and hands each to the running node over its socket, as `liaise send` does. Returns their
/// ids.
pub fn submit_many(
    fed: &TestFederation,
    from: &Agency,
    to: &str,
    count: usize,
    len: usize,
) -> Vec<String> {
    use liaise_protocol::{
        KeyCustody, RecipientPolicy, RecipientSpec, SealRequest, SectionInput, SectionMetadata,
    };
    let home = liaise_node::home::Home::new(fed.sandbox.path(&from.home));
    let secrets = home
        .unlock_with(
            &liaise_keys::keyfile::Passphrase::new(liaise_tests::PASSPHRASE.into()).unwrap(),
        )
        .unwrap();
    let now = liaise_keys::Timestamp::now();
    let to = liaise_keys::AgencyId::new(to).unwrap();
    let key = home
        .require_roster(now)
        .unwrap()
        .member(&to)
        .unwrap()
        .current_encryption_key(now)
        .unwrap()
        .clone();
    (0..count)
        .map(|i| {
            let mut text = format!("small document {i} ").into_bytes();
            text.resize(len.max(text.len()), b'.');
            let mut content = text.as_slice();
            let request = SealRequest {
                sender: liaise_keys::AgencyId::new(&from.id).unwrap(),
                signing_key: &secrets.signing,
                created: now,
                label: "restricted".into(),
                purpose: "test".into(),
                custody: KeyCustody::Offline,
                sections: vec![SectionInput {
                    name: "main".into(),
                    metadata: SectionMetadata {
                        file_name: format!("s-{i}.txt"),
                        media_type: String::new(),
                        title: String::new(),
                    },
                    content_len: text.len() as u64,
                    content: &mut content,
                }],
                recipients: vec![RecipientSpec {
                    agency: to.clone(),
                    key: key.clone(),
                    policy: RecipientPolicy {
                        sections: vec![0],
                        not_after: None,
                        forward_to: Vec::new(),
                    },
                }],
            };
            let mut sealed = Vec::new();
            liaise_protocol::seal(request, &mut sealed).unwrap();
            let answer = liaise_node::control::client::submit_sealed(&home, &sealed).unwrap();
            answer["doc_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A member's keys in a test's hands: its unlocked secrets and a QUIC client endpoint that
/// presents its transport key and pins peers to its roster, as its node would.
pub fn member_client(home: &std::path::Path) -> (quinn::Endpoint, liaise_keys::AgencySecrets) {
    let home = liaise_node::home::Home::new(home.to_path_buf());
    let secrets = home
        .unlock_with(
            &liaise_keys::keyfile::Passphrase::new(liaise_tests::PASSPHRASE.into()).unwrap(),
        )
        .unwrap();
    let roster = liaise_node::transport::SharedRoster::new(
        home.require_roster(liaise_keys::Timestamp::now()).unwrap(),
    );
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(
        liaise_node::transport::client_config(
            &liaise_node::transport::PresentedKey::only(
                &liaise_node::transport::crypto_provider(),
                &secrets.transport,
            )
            .unwrap(),
            &roster,
        )
        .unwrap(),
    );
    (endpoint, secrets)
}
