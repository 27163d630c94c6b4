//! `liaise send`: seal a file for other agencies and hand it to the local node's outbox.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use liaise_keys::AgencySecrets;
use liaise_keys::Timestamp;
use liaise_protocol::SealedSummary;
use serde_json::{Value, json};

use super::sealing::{
    SealOptions, register_custody, seal_to_file, seal_to_memory, write_sealed_file,
};
use super::{HomeArg, JsonArg, print_json};
use crate::control::{INLINE_MAX_LEN, Request, client, staging_dir};
use crate::home::Home;
use crate::passphrase::PassphraseSource;

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    home: HomeArg,
    #[command(flatten)]
    options: SealOptions,
    #[command(flatten)]
    wait: WaitArgs,
    /// The file to send (the `main` section).
    file: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: SendArgs, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let profile = home.profile()?;
    let now = Timestamp::now();
    let roster = home.require_roster(now)?;
    // Not a member: the roster is what it lacks, not a running node.
    crate::trust::own_member(&roster, &profile.agency, "home")?;
    let plan = args
        .options
        .plan(&args.file, &roster, &profile.agency, now)?;
    let timeout = args.wait.timeout();
    let staging = staging_dir(&home);
    if !staging.exists() {
        bail!(
            "no node store in {}; start the node first (`liaise node run --home {}`)",
            home.root().display(),
            home.root().display()
        );
    }
    // Before the keys are unlocked and a key share is recorded for a document that would
    // then go nowhere.
    client::require_node(&home)?;
    let secrets = home.unlock(passphrase)?;
    let submitted = if plan.input_len()? <= INLINE_MAX_LEN {
        // Small: sealed in memory and handed over on the socket, no file in between.
        let (summary, sealed) =
            seal_to_memory(plan, &args.options, &profile.agency, &secrets, now)?;
        if sealed.len() as u64 <= INLINE_MAX_LEN {
            register_custody(&home, &summary, &secrets.signing)?;
            client::submit_sealed(&home, &sealed).map_err(|e| maybe_queued(e, &home, &summary))?
        } else {
            // Very many recipients can make a small file's sealed form too large for that.
            submit_staged(&home, &staging, &secrets, |path| {
                write_sealed_file(&sealed, path).map(|()| summary)
            })?
        }
    } else {
        submit_staged(&home, &staging, &secrets, |path| {
            seal_to_file(plan, &args.options, &profile.agency, &secrets, now, path)
        })?
    };
    let doc_id = submitted
        .get("doc_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    if !args.wait.waits() {
        if args.json.json {
            return print_json(&submitted);
        }
        println!("{doc_id}");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json.json {
        // Now, not after the wait: an interrupted wait must not leave the user without the
        // id of a document that is queued all the same.
        println!("{doc_id}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
    let outcome = match wait_for_receipts(&home, &doc_id, None, timeout) {
        Ok(outcome) => outcome,
        Err(e) => {
            if args.json.json {
                print_json(&json!({ "doc_id": doc_id, "outcome": LOST_NODE, "recipients": [] }))?;
            }
            return Ok(lost_node(&home, &doc_id, &e));
        }
    };
    if args.json.json {
        print_json(&json!({ "doc_id": doc_id, "outcome": outcome.0, "recipients": outcome.1 }))?;
    } else {
        if outcome.0 == "delivered" {
            eprintln!("{}", outcome.0);
        } else {
            // One `error:` line, as every failure, with who is missing and why.
            let missing = pending(&outcome.1);
            if missing.is_empty() {
                eprintln!("error: {}", outcome.0);
            } else {
                eprintln!("error: {} ({})", outcome.0, missing.join("; "));
            }
        }
    }
    Ok(wait_exit_code(outcome.0))
}

/// The `--wait` outcome when the node stopped answering during the wait.
pub(super) const LOST_NODE: &str = "node stopped: the document stays queued";

/// Says on stderr that a wait lost its node and the document stays queued; exit 75.
pub(super) fn lost_node(home: &Home, doc_id: &str, e: &anyhow::Error) -> ExitCode {
    eprintln!(
        "error: cannot follow the delivery: {e:#}; document {doc_id} stays queued: once the \
         node runs, see `liaise outbox --home {}`",
        home.root().display()
    );
    ExitCode::from(super::originator::EXIT_TEMPFAIL)
}

/// Each recipient without a receipt: its state, attempts and last error, so that a timeout or
/// a refusal says who is missing and why.
fn pending(rows: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows.as_array().into_iter().flatten() {
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default();
        if text("state") == "delivered" {
            continue;
        }
        let attempts = row.get("attempts").and_then(Value::as_u64).unwrap_or(0);
        let mut line = format!("{}: {}", text("recipient"), text("state"));
        if attempts > 0 {
            line.push_str(&format!(", {attempts} attempts"));
        }
        if !text("last_error").is_empty() {
            line.push_str(&format!(", last error: {}", text("last_error")));
        } else if attempts == 0 && text("state") == "queued" {
            // Dialling an address that does not answer takes up to 10 s per address.
            line.push_str(", first attempt still under way");
        }
        out.push(line);
    }
    out
}

/// The exit code of `--wait`: 0 delivered; 75 (`EX_TEMPFAIL`, as `open` with its originator
/// unreachable) when the time ran out and the document stays queued; 1 when a recipient's
/// delivery was given up. Distinct from 2, which is a command-line usage error.
pub(super) fn wait_exit_code(outcome: &str) -> ExitCode {
    match outcome {
        "delivered" | "queued" => ExitCode::SUCCESS,
        "undeliverable" => ExitCode::FAILURE,
        _ => ExitCode::from(super::originator::EXIT_TEMPFAIL),
    }
}

/// Writes the sealed document into the node's staging folder with `write`, registers its
/// custody, and hands its path to the node. The staging copy is removed either way.
fn submit_staged(
    home: &Home,
    staging: &Path,
    secrets: &AgencySecrets,
    write: impl FnOnce(&Path) -> Result<SealedSummary>,
) -> Result<Value> {
    let path = staging.join(format!(
        "send-{}.sealed",
        crate::store::hex(&liaise_keys::random::random_bytes::<8>())
    ));
    let submitted = write(&path).and_then(|summary| {
        register_custody(home, &summary, &secrets.signing)?;
        client::call(home, &Request::Submit { path: path.clone() })
            .map_err(|e| maybe_queued(e, home, &summary))
    });
    let _ = std::fs::remove_file(&path);
    submitted
}

/// A submission whose answer was lost may have been queued: the user is told which
/// document to look for before sealing it again (a new id, a second delivery).
fn maybe_queued(error: anyhow::Error, home: &Home, summary: &SealedSummary) -> anyhow::Error {
    if !client::no_answer(&error) {
        return error;
    }
    error.context(format!(
        "document {} may be queued all the same: see `liaise outbox --home {}` before you \
         send it again",
        summary.info.document_id,
        home.root().display()
    ))
}

/// `--wait [--timeout DURATION]`: wait for the delivery receipts.
#[derive(Debug, Args)]
pub(super) struct WaitArgs {
    /// Wait until the receipts have arrived (exit 75 on timeout: the document stays queued;
    /// exit 1 if a recipient's delivery was given up).
    #[arg(long)]
    wait: bool,
    /// How long to wait for the receipts, e.g. 60s, 10m, or seconds (implies --wait)
    /// [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = super::timeout_value)]
    timeout: Option<Duration>,
}

/// How long `--wait` waits when no `--timeout` is given.
const DEFAULT_WAIT: Duration = Duration::from_secs(600);

impl WaitArgs {
    /// Whether to wait for the receipts: `--wait`, or a `--timeout` given alone (a script
    /// that names how long to wait means to wait).
    pub(super) fn waits(&self) -> bool {
        self.wait || self.timeout.is_some()
    }

    /// How long to wait.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_WAIT)
    }
}

/// Polls the node until every recipient of `doc_id` is delivered ("delivered"), one is
/// undeliverable ("undeliverable"), or the timeout passes ("timeout").
/// With `recipient`, only that recipient's delivery counts.
pub(super) fn wait_for_receipts(
    home: &Home,
    doc_id: &str,
    recipient: Option<&str>,
    timeout: Duration,
) -> Result<(&'static str, Value)> {
    let start = Instant::now();
    let mut progress: Option<indicatif::ProgressBar> = None;
    let outcome = loop {
        let asked = client::call(
            home,
            &Request::OutboxOf {
                doc_id: doc_id.to_owned(),
            },
        );
        let rows = match asked {
            Ok(rows) => rows,
            Err(e) => {
                // Gone before the error line that follows, not left drawn under it.
                if let Some(bar) = progress {
                    bar.finish_and_clear();
                }
                return Err(e);
            }
        };
        let mine: Vec<Value> = rows
            .as_array()
            .map(|a| {
                // Only this document's lines come back (`outbox_of`).
                a.iter()
                    .filter(|r| {
                        recipient.is_none()
                            || r.get("recipient").and_then(Value::as_str) == recipient
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let state = |r: &Value| {
            r.get("state")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        if !mine.is_empty() && mine.iter().all(|r| state(r) == "delivered") {
            break ("delivered", json!(mine));
        }
        if mine.iter().any(|r| state(r) == "undeliverable") {
            break ("undeliverable", json!(mine));
        }
        if start.elapsed() >= timeout {
            break ("timeout: the document stays queued", json!(mine));
        }
        let (arrived, total) = bytes_arrived(&mine);
        progress
            .get_or_insert_with(|| super::sealing::progress_bar(total, "delivering"))
            .set_position(arrived);
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(outcome)
}

/// How many bytes of one document's outbox lines `rows` have reached their recipients or are
/// on their way (a delivered line counts whole, one being sent its `bytes_sent`), and of how
/// many in all.
fn bytes_arrived(rows: &[Value]) -> (u64, u64) {
    let field = |r: &Value, name: &str| r.get(name).and_then(Value::as_u64).unwrap_or(0);
    rows.iter().fold((0, 0), |(arrived, total), r| {
        let len = field(r, "sealed_len");
        let done = match r.get("state").and_then(Value::as_str) {
            Some("delivered") => len,
            Some("sending") => field(r, "bytes_sent").min(len),
            _ => 0,
        };
        (arrived + done, total + len)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn line(state: &str, sealed_len: u64, bytes_sent: Option<u64>) -> Value {
        let mut row = json!({ "state": state, "sealed_len": sealed_len });
        if let Some(sent) = bytes_sent {
            row["bytes_sent"] = json!(sent);
        }
        row
    }

    #[test]
    fn delivery_progress_counts_delivered_lines_whole_and_sending_ones_as_far_as_sent() {
        assert_eq!(bytes_arrived(&[]), (0, 0));
        let rows = [
            line("delivered", 1000, None),
            line("sending", 1000, Some(250)),
            line("queued", 1000, None),
        ];
        assert_eq!(bytes_arrived(&rows), (1250, 3000));
        // A resumed transfer's count never runs past the document.
        assert_eq!(
            bytes_arrived(&[line("sending", 1000, Some(5000))]),
            (1000, 1000)
        );
        // A line given up counts in the total, not as arrived.
        assert_eq!(
            bytes_arrived(&[line("undeliverable", 1000, None)]),
            (0, 1000)
        );
    }
}
