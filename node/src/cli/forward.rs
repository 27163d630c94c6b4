//! `liaise forward DOC_ID --to AGENCY --reason TEXT`: forward a received document with its
//! originator's consent, as a forwarded document (the originator's signed consent in front of
//! the unchanged sealed document), delivered node to node — or written to a file with
//! `--out`, for a new reader reached by other means. And what `open` and `verify` need to read
//! one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use liaise_keys::roster::Roster;
use liaise_protocol::wire::ForwardConsentBody;
use liaise_protocol::{forward_prefix, is_forwarded, read_forward_prefix};
use serde_json::{Value, json};

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    home: HomeArg,
    /// A document this node received.
    doc_id: String,
    /// The agency to forward it to; the sender's policy must allow it.
    #[arg(long, value_name = "AGENCY")]
    to: String,
    /// Why you forward it; the originator records it.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Write the forwarded document to this file (for a new reader reached by other means)
    /// instead of delivering it to the new reader's node.
    #[arg(long, value_name = "OUT.liaise", conflicts_with = "wait")]
    out: Option<PathBuf>,
    #[command(flatten)]
    wait: super::send::WaitArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(mut args: ForwardArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    super::check_doc_id(&mut args.doc_id)?;
    // A misspelt new reader is said here, not after a round trip to the originator.
    if let Some(roster) = home.roster_for_display()?
        && liaise_keys::AgencyId::new(&args.to)
            .ok()
            .and_then(|to| roster.member(&to))
            .is_none()
    {
        bail!(
            "{} is not a member in this node's roster (serial {}); see `liaise roster show`",
            args.to,
            roster.serial()
        );
    }
    let timeout = args.wait.timeout();
    if let Some(out) = &args.out
        && std::fs::symlink_metadata(out).is_ok()
    {
        bail!(
            "{} already exists; choose another --out (nothing was forwarded)",
            out.display()
        );
    }
    let answer = client::call(
        &home,
        &Request::Forward {
            doc_id: args.doc_id.clone(),
            to: args.to.clone(),
            reason: args.reason.clone(),
            deliver: args.out.is_none(),
        },
    )?;
    let text = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or_default();
    let originator = text("originator").to_owned();
    let Some(out) = &args.out else {
        // A forward asked for before is where it stands (delivered, say), not queued again.
        let state = Some(text("state"))
            .filter(|s| !s.is_empty())
            .unwrap_or("queued");
        return delivered(&args, &home, &originator, state, timeout);
    };
    let consent = crate::store::parse_hex_vec(text("consent"))
        .context("the node sent a malformed consent")?;
    let hash = crate::store::parse_hex::<32>(text("sealed_blob"))
        .context("the node named a malformed stored document")?;
    let store = crate::store::store_dir(&home);
    let conn = crate::store::db::open_reader(&store.join("liaise.db"))?;
    let sealed = crate::store::stored_blob(&conn, &store, &hash)?
        .context("the node's store no longer holds the document")?;
    write_forwarded(&consent, &sealed, out)?;
    if args.json.json {
        return print_json(&json!({
            "doc_id": args.doc_id, "to": args.to, "originator": originator, "out": out,
        }));
    }
    println!(
        "Forwarded {} to {} with {originator}'s consent: {}",
        args.doc_id,
        args.to,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reports a forward queued at the node; with `--wait`, waits for the new reader's receipt.
fn delivered(
    args: &ForwardArgs,
    home: &crate::home::Home,
    originator: &str,
    state: &str,
    timeout: std::time::Duration,
) -> Result<ExitCode> {
    let outcome = if args.wait.waits() {
        match super::send::wait_for_receipts(home, &args.doc_id, Some(&args.to), timeout) {
            Ok((outcome, _)) => outcome,
            Err(e) => {
                if args.json.json {
                    print_json(&json!({
                        "doc_id": args.doc_id, "to": args.to, "originator": originator,
                        "outcome": super::send::LOST_NODE,
                    }))?;
                }
                return Ok(super::send::lost_node(home, &args.doc_id, &e));
            }
        }
    } else {
        state
    };
    if args.json.json {
        print_json(&json!({
            "doc_id": args.doc_id, "to": args.to, "originator": originator, "outcome": outcome,
        }))?;
    } else {
        println!(
            "Forwarding {} to {} with {originator}'s consent: {outcome}",
            args.doc_id, args.to
        );
    }
    Ok(super::send::wait_exit_code(outcome))
}

fn write_forwarded(consent: &[u8], sealed: &crate::store::Held, out: &Path) -> Result<()> {
    let mut input = sealed.open()?;
    crate::fsutil::write_new_with(out, 0o600, |file| {
        file.write_all(&forward_prefix(consent))?;
        std::io::copy(&mut input, file).map(|_| ())
    })
}

/// If `file` (at its start) is a forwarded document: reads its prefix, leaving `file` at the
/// start of the sealed document, and returns the consent verified against the roster
/// (signed by the originator it names). `None` (and `file` back at its start) otherwise.
pub fn read_consent<R: Read + std::io::Seek + ?Sized>(
    file: &mut R,
    roster: &Roster,
) -> Result<Option<ForwardConsentBody>> {
    use std::io::SeekFrom;
    let mut start = [0u8; 8];
    let n = file.read(&mut start)?;
    file.seek(SeekFrom::Start(0))?;
    if !is_forwarded(start.get(..n).unwrap_or(&[])) {
        return Ok(None);
    }
    let bytes =
        read_forward_prefix(&mut &mut *file).context("cannot read the forwarded document")?;
    let consent =
        crate::daemon::forwarded_in::verify_consent(&bytes, roster).map_err(anyhow::Error::msg)?;
    if roster.member(&consent.forwarder).is_none() {
        bail!("the forwarder {} is not in the roster", consent.forwarder);
    }
    Ok(Some(consent))
}

/// A verified consent in `--json` output (`docs/json.md`, `verify`).
pub fn consent_json(consent: &ForwardConsentBody) -> Value {
    json!({
        "forwarder": consent.forwarder.as_str(),
        "new_reader": consent.new_reader.as_str(),
        "consented_by": consent.originator.as_str(),
        "consented_at": consent.consented_at.to_rfc3339(),
        "reason": consent.reason,
    })
}

/// One line for people: who signed, who forwarded, with whose consent.
pub fn describe(consent: &ForwardConsentBody) -> String {
    format!(
        "forwarded by {} with {}'s consent at {} (to {}, reason: {})",
        consent.forwarder,
        consent.originator,
        consent.consented_at,
        consent.new_reader,
        consent.reason
    )
}
