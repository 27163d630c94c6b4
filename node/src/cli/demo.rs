//! `liaise demo`: a narrated walkthrough on this machine. Three agencies (a city, a probation
//! service, a prison) form a federation, run their nodes on loopback, and exchange a case
//! document whose annex only the probation service may read.
//!
//! Every step runs the real `liaise` command line as a subprocess (this same binary), with a
//! demo passphrase in `LIAISE_PASSPHRASE`, so the demo exercises exactly what a user would
//! type; the walkthrough prints each command before its output. Everything happens in a
//! temporary folder that is removed at the end (unless `--keep`); the nodes are stopped with
//! SIGTERM, also when a step fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

/// The passphrase of every demo key file. Demo keys protect nothing.
pub const DEMO_PASSPHRASE: &str = "liaise demo passphrase, not a secret";
/// How long a demo node may take to answer on its control socket after starting.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM before it is killed.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(5);

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";
/// (home folder, agency id, display name, kind)
const AGENCIES: [(&str, &str, &str, &str); 3] = [
    ("city", CITY, "Gemeente Utrecht", "city"),
    ("probation", PROBATION, "Reclassering Utrecht", "probation"),
    ("prison", PRISON, "PI Vught", "prison"),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo folder (keys, stores, opened files) instead of removing it.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("liaise-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo")?;
    let mut demo = Demo {
        exe: std::env::current_exe().context("cannot find the liaise executable")?,
        root: dir.path().to_path_buf(),
        nodes: Vec::new(),
    };
    println!("Liaise demo: three agencies exchange a case document on this machine.");
    println!("Working folder: {}", demo.root.display());
    println!("Every step below is a real `liaise` command; you can type the same ones.");
    let result = demo.walk();
    demo.stop_nodes();
    if args.keep {
        let kept = dir.keep();
        println!("\nThe demo folder is kept: {}", kept.display());
    }
    result?;
    println!("\nDone. The nodes are stopped and the demo folder is removed.");
    Ok(ExitCode::SUCCESS)
}

/// The demo's state: where it runs and the node processes it started.
#[derive(Debug)]
struct Demo {
    exe: PathBuf,
    root: PathBuf,
    nodes: Vec<(String, Child)>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_nodes();
    }
}

impl Demo {
    fn walk(&mut self) -> Result<()> {
        step(
            1,
            "The steward creates the federation",
            "The steward coordinates the federation and signs its roster. The fingerprint \
             of its keys is what every agency pins; in real life it is read out on the phone.",
        );
        let fed = self.liaise_json(&[
            "federation",
            "init",
            "--dir",
            "fed",
            "--name",
            "Utrecht safety house (demo)",
            "--stewards",
            "1",
            "--threshold",
            "1",
            "--json",
        ])?;
        let fingerprint = fed
            .get("federation_fingerprint")
            .and_then(serde_json::Value::as_str)
            .context("federation init printed no fingerprint")?
            .to_owned();

        step(
            2,
            "Each agency creates its keys",
            "A signing key (its identity), a transport key for its node and encryption keys, \
             all in a passphrase-protected key file. membership.toml is the public request it \
             hands to the steward.",
        );
        for (home, id, name, kind) in AGENCIES {
            let address = format!("127.0.0.1:{}", free_udp_port()?);
            self.liaise(&[
                "init",
                "--home",
                home,
                "--agency",
                id,
                "--name",
                name,
                "--kind",
                kind,
                "--country",
                "NL",
                "--address",
                &address,
            ])?;
        }

        step(
            3,
            "The steward adds the members and publishes a signed roster",
            "The roster is the only source of who is who: members, keys, addresses, groups.",
        );
        for (home, ..) in AGENCIES {
            let membership = format!("{home}/membership.toml");
            self.liaise(&[
                "federation",
                "add",
                "--dir",
                "fed",
                &membership,
                "--group",
                "case-conference",
            ])?;
        }
        self.liaise(&[
            "federation",
            "publish",
            "--dir",
            "fed",
            "--out",
            "roster.liaise",
            "--valid-for",
            "30d",
        ])?;

        step(
            4,
            "Each agency imports the roster, pinning the federation by its fingerprint",
            "From now on a node refuses rosters not signed by these stewards, older rosters \
             and expired ones.",
        );
        for (home, ..) in AGENCIES {
            self.liaise(&[
                "roster",
                "import",
                "--home",
                home,
                "roster.liaise",
                "--federation-fingerprint",
                &fingerprint,
            ])?;
        }

        step(
            5,
            "Each agency starts its node",
            "Nodes talk QUIC over TLS 1.3; each side's key must be in the roster.",
        );
        for (home, ..) in AGENCIES {
            self.start_node(home)?;
        }
        self.liaise(&["status", "--home", "city"])?;

        step(
            6,
            "The city sends a case report; its annex is for the probation service only",
            "The document is signed by the city and encrypted per section: the prison gets \
             a key for the main report, the probation service for both parts.",
        );
        self.write("case-report.txt", CASE_REPORT)?;
        self.write("annex.txt", ANNEX)?;
        let out = self.send()?;
        let doc_id = document_id(&out).context("liaise send printed no document id")?;

        step(
            7,
            "The city sees where its document stands, and the signed receipts",
            "Each receiving node stored the sealed bytes durably and signed a receipt over \
             their hash.",
        );
        self.liaise(&["outbox", "--home", "city"])?;
        self.liaise(&["receipts", "--home", "city", &doc_id])?;

        step(
            8,
            "The probation service verifies and opens the document",
            "Nothing is written before the signature, the recipient binding and every byte \
             verified. The city keeps control: each open asks the city's node for its key \
             share and states a reason, which both sides record. --with-signatures also \
             writes each part's OpenSSH signature.",
        );
        self.liaise(&["inbox", "--home", "probation"])?;
        let probation_out = "probation-opened";
        self.liaise(&["verify", "--home", "probation", &doc_id])?;
        self.liaise(&[
            "open",
            "--home",
            "probation",
            &doc_id,
            "--out-dir",
            probation_out,
            "--with-signatures",
            "--reason",
            "supervision plan for the case conference",
        ])?;
        self.list(probation_out)?;

        step(
            9,
            "The prison opens the same document: the report, but not the annex",
            "The prison was never given the annex's key, so no software can show it the annex.",
        );
        let prison_out = "prison-opened";
        self.liaise(&[
            "open",
            "--home",
            "prison",
            &doc_id,
            "--out-dir",
            prison_out,
            "--reason",
            "release date and housing",
        ])?;
        let names = self.list(prison_out)?;
        if names.iter().any(|n| n.contains("annex")) {
            bail!("the prison could open the annex; that must never happen");
        }
        say("-> no annex here: the prison holds no key for it");

        step(
            10,
            "Anyone can check who signed each part, with stock OpenSSH",
            "The roster gives the signers' keys as an allowed-signers file for ssh-keygen.",
        );
        self.provenance(probation_out)?;

        step(
            11,
            "The nodes stop",
            "SIGTERM: each node stops accepting, closes its connections and its database.",
        );
        self.stop_nodes();
        say("all three nodes stopped");
        Ok(())
    }

    /// `liaise send`: the report as the main section, the annex for the probation service only.
    fn send(&self) -> Result<Output> {
        let to = format!("{PROBATION},{PRISON}");
        let annex_readers = format!("annex={PROBATION}");
        self.liaise(&[
            "send",
            "--home",
            "city",
            "--to",
            &to,
            "case-report.txt",
            "--section",
            "annex=annex.txt",
            "--section-readers",
            &annex_readers,
            "--label",
            "restricted",
            "--purpose",
            "release preparation: supervision plan",
            "--wait",
            "--timeout",
            "60s",
        ])
    }

    /// `ssh-keygen -Y verify` of every signature `open --with-signatures` wrote.
    fn provenance(&self, opened: &str) -> Result<()> {
        let signers = "allowed_signers";
        let has_keygen = Command::new("ssh-keygen")
            .arg("-?")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let dir = self.root.join(opened);
        if !has_keygen || !dir.is_dir() {
            say("skipped: ssh-keygen is not on PATH (Debian: openssh-client)");
            return Ok(());
        }
        let out = self.liaise(&["roster", "allowed-signers", "--home", "probation"])?;
        fs::write(self.root.join(signers), &out.stdout)?;
        let mut sigs: Vec<PathBuf> = fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sig"))
            .collect();
        sigs.sort();
        for sig in sigs {
            let content = sig.with_extension("");
            let (Some(sig_name), Some(content_name)) =
                (rel(&self.root, &sig), rel(&self.root, &content))
            else {
                continue;
            };
            show(&format!(
                "ssh-keygen -Y verify -f {signers} -I {CITY} -n liaise-document -s {sig_name} < {content_name}"
            ));
            let input = fs::File::open(&content)
                .with_context(|| format!("cannot read {}", content.display()))?;
            let output = Command::new("ssh-keygen")
                .current_dir(&self.root)
                .args(["-Y", "verify", "-f", signers, "-I", CITY, "-n"])
                .args(["liaise-document", "-s", &sig_name])
                .stdin(input)
                .output()?;
            print_output(&output);
            if !output.status.success() {
                bail!("ssh-keygen did not confirm the signature on {content_name}");
            }
        }
        Ok(())
    }

    fn start_node(&mut self, home: &str) -> Result<()> {
        let logs = self.root.join("logs");
        fs::create_dir_all(&logs)?;
        let log = fs::File::create(logs.join(format!("{home}.log")))?;
        show(&format!("liaise node run --home {home} &"));
        let child = self
            .command(&["-v", "node", "run", "--home", home])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start a node")?;
        self.nodes.push((home.to_owned(), child));
        let start = Instant::now();
        loop {
            let status = self
                .command(&["status", "--home", home, "--json"])
                .output()?;
            if status.status.success() {
                return Ok(());
            }
            let exited = self
                .nodes
                .last_mut()
                .and_then(|(_, c)| c.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > NODE_START_TIMEOUT {
                let log = fs::read_to_string(logs.join(format!("{home}.log"))).unwrap_or_default();
                bail!("the {home} node did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to every node, then a kill for any that does not stop in time.
    fn stop_nodes(&mut self) {
        for (_, child) in &self.nodes {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for (_, mut child) in self.nodes.drain(..) {
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < NODE_STOP_TIMEOUT {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.root)
            .args(args)
            .env(crate::passphrase::PASSPHRASE_ENV, DEMO_PASSPHRASE)
            .env_remove(crate::home::HOME_ENV)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Shows and runs `liaise ARGS`, prints its output; fails if it fails.
    fn liaise(&self, args: &[&str]) -> Result<Output> {
        show(&format!("liaise {}", quoted(args)));
        let output = self.command(args).output().context("cannot run liaise")?;
        print_output(&output);
        if !output.status.success() {
            bail!("`liaise {}` failed", quoted(args));
        }
        Ok(output)
    }

    fn liaise_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.liaise(args)?;
        serde_json::from_slice(&out.stdout).context("liaise printed malformed JSON")
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        show(&format!("cat > {name}    # {} bytes", text.len()));
        fs::write(self.root.join(name), text).with_context(|| format!("cannot write {name}"))
    }

    /// Lists a folder (as `ls -1` would) and returns the file names.
    fn list(&self, rel_dir: &str) -> Result<Vec<String>> {
        show(&format!("ls {rel_dir}"));
        let mut names: Vec<String> = fs::read_dir(self.root.join(rel_dir))
            .with_context(|| format!("cannot list {rel_dir}"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            say(name);
        }
        Ok(names)
    }
}

const CASE_REPORT: &str = "Case 2024-017: release preparation\n\n\
    Release date: in three weeks. Housing: arranged by the city.\n\
    Supervision: weekly meetings with the probation officer.\n";
const ANNEX: &str = "Annex: psychological assessment (probation service only)\n\n\
    Risk factors and protective factors, as discussed in the case conference.\n";

fn step(n: u32, title: &str, why: &str) {
    println!("\n[{n}] {title}");
    println!("    {why}");
}

fn show(command: &str) {
    println!("  $ {command}");
}

fn say(line: &str) {
    println!("      {line}");
}

fn print_output(output: &Output) {
    for text in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(text).lines() {
            say(line);
        }
    }
}

/// Arguments as a shell would need them typed.
fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'', '$', '&', ';', '<', '>']) {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 32-hex-digit document id `liaise send` printed.
fn document_id(output: &Output) -> Option<String> {
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned)
}

fn rel(root: &Path, path: &Path) -> Option<String> {
    path.strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn free_udp_port() -> Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP port")?;
    Ok(socket.local_addr()?.port())
}
