//! The `liaise` command line: argument parsing and dispatch. Each verb lives in its own file.

mod federation;
mod init;
mod keys;
mod roster;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::passphrase::PassphraseSource;

/// Federated, secure document exchange between agencies.
///
/// Each agency runs its own node. Documents are signed and encrypted for the agencies that
/// may read them, and anyone can verify who signed a document and that nothing changed.
#[derive(Debug, Parser)]
#[command(
    name = "liaise",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Read the key passphrase from this file instead of `LIAISE_PASSPHRASE` or a prompt.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an agency's keys in HOME and write HOME/membership.toml for the steward.
    Init(init::InitArgs),
    /// Steward tools: create a federation, add and revoke members, publish rosters.
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Import and inspect the federation roster this node trusts.
    #[command(subcommand)]
    Roster(roster::RosterCommand),
    /// Manage this agency's keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// `--home HOME`, defaulting to `$LIAISE_HOME`.
#[derive(Debug, Clone, Args)]
pub struct HomeArg {
    /// The agency's home directory (default: $LIAISE_HOME).
    #[arg(long, env = crate::home::HOME_ENV, value_name = "HOME")]
    pub home: Option<PathBuf>,
}

impl HomeArg {
    fn resolve(&self) -> Result<crate::home::Home> {
        crate::home::resolve(self.home.clone())
    }
}

/// `--json` for commands that print data.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let passphrase = PassphraseSource {
        file: cli.passphrase_file,
    };
    match cli.command {
        Command::Init(args) => init::run(args, &passphrase),
        Command::Federation(cmd) => federation::run(cmd, &passphrase),
        Command::Roster(cmd) => roster::run(cmd),
        Command::Keys(cmd) => keys::run(cmd, &passphrase),
    }
}

/// Prints a JSON value on stdout, one document per command.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}
