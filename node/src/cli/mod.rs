//! The `liaise` command line: argument parsing and dispatch. Each verb lives in its own file.

mod delete;
mod demo;
pub mod disk_full;
mod evidence;
mod examples;
mod federation;
mod forward;
mod inbox;
mod init;
mod interrupted;
mod keys;
mod log;
mod node;
mod open;
mod originator;
mod outbox;
mod receipts;
mod revoke;
mod roster;
mod roster_file;
mod seal;
mod sealing;
mod send;
mod service;
mod status;
mod verify;

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
    /// More log output on stderr (-v: info, -vv: debug; `node run` logs info without -v).
    /// `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Read the key passphrase from this file instead of `LIAISE_PASSPHRASE` or a prompt.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// How much to log, as a count of -v: a node logs what it delivers, receives and
    /// refuses (info) without -v; the other commands only warnings.
    pub fn log_verbosity(&self) -> u8 {
        match self.command {
            Command::Node(_) => self.verbose.max(1),
            _ => self.verbose,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A narrated demo: three agencies exchange a case document on this machine.
    Demo(demo::DemoArgs),
    /// Create an agency's keys in HOME and write HOME/membership.toml for the steward.
    #[command(after_help = examples::INIT)]
    Init(init::InitArgs),
    /// Steward tools: create a federation, add and revoke members, publish rosters.
    #[command(subcommand, after_help = examples::FEDERATION)]
    Federation(federation::FederationCommand),
    /// Import and inspect the federation roster this node trusts.
    #[command(subcommand)]
    Roster(roster::RosterCommand),
    /// Manage this agency's keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Seal a file for other agencies into a .liaise file, offline (no node needed).
    #[command(after_help = examples::SEAL)]
    Seal(seal::SealArgs),
    /// Decrypt the sections of a sealed document (a file or a received DOC_ID) you may read.
    #[command(after_help = examples::OPEN)]
    Open(open::OpenArgs),
    /// Check who signed a sealed document, for whom, and that nothing changed. No key needed.
    #[command(after_help = examples::VERIFY)]
    Verify(verify::VerifyArgs),
    /// Run this agency's node.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Seal a file for other agencies and queue it for delivery; prints the document id.
    ///
    /// The node delivers to each recipient's node directly. One it cannot reach is tried
    /// again with growing waits (by default at most 5 minutes apart), across restarts, until
    /// the recipients' --expires date or for 14 days; then that delivery is undeliverable,
    /// with the reason (`liaise outbox`).
    #[command(after_help = examples::SEND)]
    Send(send::SendArgs),
    /// Where each sent document stands, per recipient.
    Outbox(outbox::OutboxArgs),
    /// Documents this node received.
    Inbox(inbox::InboxArgs),
    /// The signed receipts for a sent document.
    Receipts(receipts::ReceiptsArgs),
    /// Roster, peers and queue sizes of the running node.
    #[command(after_help = examples::STATUS)]
    Status(status::StatusArgs),
    /// Stop further opens of a document you sent (or of one reader), delete its key share and
    /// ask readers to delete their copies.
    #[command(after_help = examples::REVOKE)]
    Revoke(revoke::RevokeArgs),
    /// Who may open a document you sent under originator control, and who confirmed deletion.
    Custody(revoke::CustodyArgs),
    /// Delete this node's copy of a document it received, when the agency no longer needs it.
    ///
    /// The sealed document goes; the inbox line (shown as deleted), the receipt this node
    /// signed and the log stay, as proof of the exchange. The copy is never stored again,
    /// and cannot be opened, forwarded or exported any more. The sender is not told.
    Delete(delete::DeleteArgs),
    /// Forward a received document to another agency, with its originator's consent.
    #[command(after_help = examples::FORWARD)]
    Forward(forward::ForwardArgs),
    /// This node's tamper-evident log; `liaise log verify` checks it.
    #[command(after_help = examples::LOG)]
    Log(log::LogArgs),
    /// Evidence bundles for a court: export one for a document, or verify one offline.
    #[command(subcommand, after_help = examples::EVIDENCE)]
    Evidence(evidence::EvidenceCommand),
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
        Command::Demo(args) => demo::run(args),
        Command::Init(args) => init::run(args, &passphrase),
        Command::Federation(cmd) => federation::run(cmd, &passphrase),
        Command::Roster(cmd) => roster::run(cmd),
        Command::Keys(cmd) => keys::run(cmd, &passphrase),
        Command::Seal(args) => seal::run(args, &passphrase),
        Command::Open(args) => open::run(args, &passphrase),
        Command::Verify(args) => verify::run(args),
        Command::Node(cmd) => node::run(cmd, &passphrase),
        Command::Send(args) => send::run(args, &passphrase),
        Command::Outbox(args) => outbox::run(args),
        Command::Inbox(args) => inbox::run(args),
        Command::Receipts(args) => receipts::run(args),
        Command::Status(args) => status::run(args),
        Command::Revoke(args) => revoke::run(args),
        Command::Custody(args) => revoke::run_custody(args),
        Command::Delete(args) => delete::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Log(args) => log::run(args),
        Command::Evidence(cmd) => evidence::run(cmd),
    }
}

/// Refuses, before asking the node, a DOC_ID that cannot be one (a typo, a file name), and
/// writes a valid one in lower case.
pub(crate) fn check_doc_id(doc_id: &mut String) -> Result<()> {
    let hex_digits = doc_id.len() == 32 && doc_id.chars().all(|c| c.is_ascii_hexdigit());
    let Some(id) = crate::store::parse_hex::<16>(doc_id).filter(|_| hex_digits) else {
        anyhow::bail!("`{doc_id}` is not a document id (32 hex digits, as `liaise send` prints)");
    };
    // The store and every output use lower case; an id typed in upper case is the same one.
    *doc_id = crate::store::hex(&id);
    Ok(())
}

/// A DURATION option's value (60s, 10m, 30d, 8w), parsed by clap: a malformed one is a usage
/// error (exit 2, with the usage), as any other bad option value is.
pub(crate) fn duration_value(text: &str) -> Result<std::time::Duration, String> {
    liaise_keys::time::parse_duration(text)
        .ok_or_else(|| "use a number and a unit, e.g. 60s, 10m, 1h30m, 30d, 8w".to_owned())
}

/// A `--timeout` value: a DURATION, or a plain number of seconds (`30`), as `timeout(1)` and
/// `curl --max-time` take it. Only for waits: a bare number for an expiry or a validity
/// would too easily mean days to the user and seconds to the node.
pub(crate) fn timeout_value(text: &str) -> Result<std::time::Duration, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| "too large a number of seconds".to_owned());
    }
    duration_value(text)
        .map_err(|_| "use seconds (30) or a number and a unit, e.g. 60s, 10m, 1h30m".to_owned())
}

/// Prints a JSON value on stdout, one document per command.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}
