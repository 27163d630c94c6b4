//! `liaise log`: list this node's tamper-evident log, or `liaise log verify` it. Reads the
//! database directly, so it works whether or not the node is running.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use liaise_protocol::log::LogEntry;
use serde_json::{Value, json};

use super::print_json;
use crate::home::Home;
use crate::log::signer_keys::SignerKeys;
use crate::log::{entries, seqs_for_doc, verify::verify_log};
use crate::store::{db, hex, parse_hex, store_dir};

/// `--home` and `--json` are global, so both `liaise log --home H verify` and
/// `liaise log verify --home H` work.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: Option<LogCommand>,
    /// The agency's home directory (default: $LIAISE_HOME).
    #[arg(long, env = crate::home::HOME_ENV, value_name = "HOME", global = true)]
    home: Option<PathBuf>,
    /// Only the entries about this document (when listing).
    #[arg(long, value_name = "DOC_ID")]
    doc: Option<String>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Check the whole chain, every checkpoint and every countersignature.
    Verify,
}

pub fn run(args: LogArgs) -> Result<ExitCode> {
    if args.doc.is_some() && args.command.is_some() {
        // A usage error (exit 2), as `log verify --doc X` is.
        use clap::CommandFactory;
        super::Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "`log verify` checks the whole log; --doc only narrows `liaise log`",
            )
            .exit();
    }
    let home = crate::home::resolve(args.home.clone())?;
    match args.command {
        Some(LogCommand::Verify) => verify(&home, args.json),
        None => list(&home, &args),
    }
}

fn open(home: &Home) -> Result<rusqlite::Connection> {
    let path = store_dir(home).join("liaise.db");
    if !path.exists() {
        bail!(
            "no store in {}; has the node run yet?",
            home.root().display()
        );
    }
    db::open_reader(&path)
}

fn list(home: &Home, args: &LogArgs) -> Result<ExitCode> {
    let conn = open(home)?;
    let rows = match &args.doc {
        Some(doc) => {
            let id = parse_hex::<16>(doc)
                .with_context(|| format!("`{doc}` is not a document id (32 hex digits)"))?;
            let mut out = Vec::new();
            for seq in seqs_for_doc(&conn, &id)? {
                out.extend(entries(&conn, seq, seq)?);
            }
            out
        }
        None => entries(&conn, 0, u64::MAX)?,
    };
    let mut shown = Vec::new();
    for row in rows {
        let entry = LogEntry::decode(&row.bytes).with_context(|| {
            format!(
                "log entry {} is unreadable; run `liaise log verify`",
                row.seq
            )
        })?;
        shown.push(describe(&entry));
    }
    if args.json {
        return print_json(&json!(shown));
    }
    if shown.is_empty() {
        println!(
            "The log has no entries{}.",
            if args.doc.is_some() {
                " about this document"
            } else {
                ""
            }
        );
    }
    for e in &shown {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let mut line = format!("{:>6}  {}  {:<16}", e["seq"], s("time"), s("kind"));
        for (key, label) in [("doc_id", "doc"), ("agency", "agency")] {
            if !s(key).is_empty() {
                line.push_str(&format!("  {label} {}", s(key)));
            }
        }
        if !s("reason").is_empty() {
            line.push_str(&format!("  reason \"{}\"", s("reason")));
        }
        // An open of a document under originator control says whether the key share came:
        // an open the originator refused or could not be asked is not an open.
        if let Some(share) = e["detail"].get("share").and_then(Value::as_str) {
            line.push_str(&format!("  (share {share})"));
        }
        // ... or that it was refused here, the copy being deleted.
        if let Some(refused) = e["detail"].get("refused").and_then(Value::as_str) {
            line.push_str(&format!("  (refused: {refused})"));
        }
        // ... and an open that failed after its share came, that it wrote nothing.
        if e["detail"].get("written").and_then(Value::as_bool) == Some(false) {
            let error = e["detail"].get("error").and_then(Value::as_str);
            line.push_str(&format!(
                "  no file written: {}",
                error.unwrap_or("unknown error")
            ));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One entry as stable JSON.
pub fn describe(entry: &LogEntry) -> Value {
    let detail =
        serde_json::from_str::<Value>(&entry.detail).unwrap_or_else(|_| json!(entry.detail));
    json!({
        "seq": entry.seq,
        "time": entry.time.to_rfc3339(),
        "kind": entry.kind.as_str(),
        "doc_id": entry.doc_id.map(|d| hex(&d)),
        "agency": entry.agency.as_ref().map(|a| a.as_str()),
        "reason": entry.reason,
        "detail": if entry.detail.is_empty() { Value::Null } else { detail },
    })
}

fn verify(home: &Home, json_out: bool) -> Result<ExitCode> {
    let profile = home.profile()?;
    let roster = home
        .roster_for_display()?
        .with_context(|| format!("no roster in {}", home.root().display()))?;
    let conn = open(home)?;
    let signers = SignerKeys::load(home, &roster)?;
    let report = verify_log(&conn, &profile.agency, &signers)?;
    if json_out {
        let mut value = serde_json::to_value(&report)?;
        if let Some(o) = value.as_object_mut() {
            o.insert("intact".into(), json!(report.intact()));
        }
        print_json(&value)?;
        return Ok(if report.intact() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    for alert in &report.alerts {
        println!("ALERT: {alert}");
    }
    if let Some(first) = report.problems.first() {
        for more in report.problems.iter().skip(1) {
            eprintln!("also: {more}");
        }
        bail!("the log of {} was tampered with: {first}", profile.agency);
    }
    println!(
        "Log of {} intact: {} entries, head {}, {} checkpoints, {} countersignatures checked.",
        profile.agency, report.entries, report.head, report.checkpoints, report.countersignatures
    );
    Ok(ExitCode::SUCCESS)
}
