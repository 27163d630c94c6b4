//! `liaise evidence export` and `liaise evidence verify`: a document's evidence bundle for
//! a court, and its offline check against a roster with no private key.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use liaise_protocol::evidence::verify_bundle;
use serde_json::json;

use super::roster_file::{self, CheckedRoster};
use super::{HomeArg, JsonArg, print_json};
use crate::store::{db, parse_hex, sealed_document, store_dir};

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Write DOC_ID's evidence bundle: the sealed document, receipts, deletion receipts and
    /// this node's log entries about it with their proofs.
    Export(ExportArgs),
    /// Check a bundle offline against a roster file. No private key needed.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The document id.
    doc_id: String,
    /// Where to write the bundle.
    #[arg(long, value_name = "BUNDLE")]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle.
    bundle: PathBuf,
    /// The roster to check against.
    #[arg(long, value_name = "ROSTER")]
    roster: PathBuf,
    /// The fingerprint of the federation, as its steward reads it out (SHA256:... or the
    /// spoken digit groups): the roster must be that federation's. Without it, a roster file
    /// proves only that it is whole, and the verdict says which federation to check.
    #[arg(long, value_name = "FP")]
    federation_fingerprint: Option<String>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(cmd: EvidenceCommand) -> Result<ExitCode> {
    match cmd {
        EvidenceCommand::Export(args) => export(&args),
        EvidenceCommand::Verify(args) => verify(&args),
    }
}

fn export(args: &ExportArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let profile = home.profile()?;
    let id = parse_hex::<16>(&args.doc_id)
        .with_context(|| format!("`{}` is not a document id (32 hex digits)", args.doc_id))?;
    let blob = sealed_document(&home, &args.doc_id)?;
    let conn = db::open_reader(&store_dir(&home).join("liaise.db"))?;
    let done = crate::log::export::export(
        &conn,
        &store_dir(&home),
        &profile.agency,
        &id,
        &blob,
        &args.out,
    )?;
    if args.json.json {
        return print_json(&json!({
            "bundle": args.out.display().to_string(),
            "receipts": done.receipts,
            "deletion_receipts": done.deletion_receipts,
            "entries": done.entries,
            "unanchored_entries": done.unanchored,
        }));
    }
    println!(
        "Wrote {}: the sealed document, {}, {}, {} with proofs.",
        args.out.display(),
        count(done.receipts, "receipt"),
        count(done.deletion_receipts, "deletion receipt"),
        count(done.entries, "log entry"),
    );
    if done.unanchored > 0 {
        eprintln!(
            "note: {} not under a signed checkpoint yet, left out",
            count(done.unanchored, "newer log entry")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let CheckedRoster { roster, pinned } =
        roster_file::load(&args.roster, args.federation_fingerprint.as_deref())?;
    let file = File::open(&args.bundle)
        .with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let report = match verify_bundle(BufReader::with_capacity(1 << 20, file), &roster) {
        Ok(report) => report,
        Err(e) => {
            if args.json.json {
                print_json(&json!({ "valid": false, "error": e.to_string() }))?;
                return Ok(ExitCode::from(1));
            }
            return Err(anyhow::Error::new(e)
                .context(format!("{} is not valid evidence", args.bundle.display())));
        }
    };
    let document = report.document.as_ref().map(super::verify::describe);
    let entries: Vec<_> = report.entries.iter().map(super::log::describe).collect();
    if args.json.json {
        return print_json(&json!({
            "valid": true,
            "exporter": report.exporter,
            "document": document,
            "forwarded": report.forwarded.as_ref().map(super::forward::consent_json),
            "forwards": report.forwards.iter().map(super::forward::consent_json).collect::<Vec<_>>(),
            "receipts": report.receipts,
            "deletion_receipts": report.deletions,
            "entries": entries,
            "anchors": report.anchors,
            "roster_serial": roster.serial(),
            "federation_fingerprint": roster.federation_fingerprint().to_string(),
            "federation_pinned": pinned,
        }));
    }
    if let Some(doc) = &report.document {
        println!(
            "Document {} sealed by {} at {}",
            doc.document_id, doc.sender, doc.created
        );
    }
    if let Some(consent) = &report.forwarded {
        println!("  {}", super::forward::describe(consent));
    }
    let signer = report.document.as_ref().map(|d| d.sender.as_str());
    for r in &report.receipts {
        match r.sender.as_deref().filter(|s| Some(*s) != signer) {
            Some(by) => println!(
                "  delivered by {by} to {} at {} (signed receipt)",
                r.agency, r.at
            ),
            None => println!("  delivered to {} at {} (signed receipt)", r.agency, r.at),
        }
    }
    for consent in &report.forwards {
        println!("  {}", super::forward::describe(consent));
    }
    for r in &report.deletions {
        println!(
            "  deleted by {} at {} (signed deletion receipt)",
            r.agency, r.at
        );
    }
    println!("Log of {}:", report.exporter);
    for e in &report.entries {
        let reason = e
            .reason
            .as_ref()
            .map(|r| format!("  reason \"{r}\""))
            .unwrap_or_default();
        let agency = e
            .agency
            .as_ref()
            .map(|a| format!("  {a}"))
            .unwrap_or_default();
        println!(
            "  {:>6}  {}  {}{agency}{reason}",
            e.seq,
            e.time,
            e.kind.as_str()
        );
    }
    for a in &report.anchors {
        let by = if a.countersigned_by.is_empty() {
            "NOT countersigned by any peer".to_owned()
        } else {
            format!("countersigned by {}", a.countersigned_by.join(", "))
        };
        println!(
            "  proven under checkpoint {} signed {} ({by})",
            a.seq, a.time
        );
    }
    println!(
        "Verdict: VALID evidence (roster serial {} of \"{}\", federation {})",
        roster.serial(),
        roster.body().federation,
        roster.federation_fingerprint()
    );
    if !pinned {
        eprintln!("{}", roster_file::unpinned_note(&roster));
    }
    Ok(ExitCode::SUCCESS)
}

/// `1 receipt`, `2 receipts`, `3 log entries`.
fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "receipt"), "1 receipt");
        assert_eq!(count(0, "deletion receipt"), "0 deletion receipts");
        assert_eq!(count(3, "log entry"), "3 log entries");
        assert_eq!(count(1, "log entry"), "1 log entry");
    }
}
