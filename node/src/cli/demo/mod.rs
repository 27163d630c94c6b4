//! `liaise demo`: a narrated walkthrough on this machine. Three agencies (a city, a probation
//! service, a prison) form a federation, run their nodes on loopback, and exchange a case
//! document whose annex only the probation service may read.
//!
//! Every step runs the real `liaise` command line as a subprocess (this same binary), with a
//! demo passphrase in `LIAISE_PASSPHRASE`, so the demo exercises exactly what a user would
//! type; the walkthrough prints each command before its output. Everything happens in a
//! temporary folder that is removed at the end (unless `--keep`); the nodes are stopped with
//! SIGTERM, also when a step fails.

mod exchange;
mod federation;
mod interrupt;
mod narration;
mod nodes;
mod provenance;

use std::path::PathBuf;
use std::process::{Child, ExitCode};

use anyhow::{Context, Result};
use clap::Args;

/// The passphrase of every demo key file. Demo keys protect nothing.
pub const DEMO_PASSPHRASE: &str = "liaise demo passphrase, not a secret";

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
        children: interrupt::ChildPids::default(),
    };
    println!("Liaise demo: three agencies exchange a case document on this machine.");
    println!("Working folder: {}", demo.root.display());
    println!("Every step below is a real `liaise` command; you can type the same ones.");
    interrupt::on_signal_clean_up(demo.root.clone(), args.keep, demo.children.clone())?;
    let result = demo.walk();
    if demo.children.stopping() {
        interrupt::wait_for_clean_up();
    }
    demo.stop_nodes();
    let kept = args.keep.then(|| dir.keep());
    result?;
    match kept {
        Some(kept) => println!(
            "\nDone. The nodes are stopped; the demo folder is kept: {}\n\
             Its keys' passphrase: LIAISE_PASSPHRASE='{DEMO_PASSPHRASE}'",
            kept.display()
        ),
        None => println!(
            "\nDone. The nodes are stopped and the demo folder is removed \
             (`liaise demo --keep` keeps it, to try the commands there)."
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's state: where it runs and the node processes it started.
#[derive(Debug)]
struct Demo {
    exe: PathBuf,
    root: PathBuf,
    nodes: Vec<(String, Child)>,
    /// The process ids of the nodes and of the step command running now, for the clean-up
    /// on Ctrl-C or SIGTERM.
    children: interrupt::ChildPids,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_nodes();
    }
}

impl Demo {
    /// The steps, in order; each group of steps lives in the module named beside it.
    fn walk(&mut self) -> Result<()> {
        // Steps 1 to 4: federation, keys, roster, import (`federation`).
        self.form_federation()?;
        // Step 5: the nodes start (`nodes`).
        self.start_all_nodes()?;
        // Steps 6 to 9: send, follow, open (`exchange`).
        let opened = self.exchange_case_report()?;
        // Step 10: signatures checked with OpenSSH (`provenance`).
        self.check_provenance(opened)?;
        // Step 11: the nodes stop (`nodes`).
        self.stop_all_nodes();
        Ok(())
    }
}
