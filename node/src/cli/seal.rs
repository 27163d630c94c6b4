//! `liaise seal`: seal a file for other agencies, offline, into a `.liaise` file that can
//! travel by any route (the node sends the same files).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::json;

use super::sealing::{SealOptions, register_custody, seal_to_file};
use super::{HomeArg, JsonArg, print_json};
use crate::passphrase::PassphraseSource;

#[derive(Debug, Args)]
pub struct SealArgs {
    #[command(flatten)]
    home: HomeArg,
    #[command(flatten)]
    options: SealOptions,
    /// The main document.
    file: PathBuf,
    /// Where to write the sealed document, e.g. report.liaise.
    #[arg(long, value_name = "OUT.liaise")]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: SealArgs, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let profile = home.profile()?;
    let now = Timestamp::now();
    let roster = home.require_roster(now)?;
    let plan = args
        .options
        .plan(&args.file, &roster, &profile.agency, now)?;
    if args.out.exists() {
        anyhow::bail!(
            "{} already exists; choose another --out",
            args.out.display()
        );
    }
    let secrets = home.unlock(passphrase)?;
    let summary = seal_to_file(
        plan,
        &args.options,
        &profile.agency,
        &secrets,
        now,
        &args.out,
    )?;
    // Under originator control the share goes into this agency's node store (the database
    // works whether or not the node runs); recipients' opens ask the node for it.
    if let Err(e) = register_custody(&home, &summary, &secrets.signing) {
        let _ = std::fs::remove_file(&args.out);
        return Err(e);
    }
    let info = &summary.info;
    if args.json.json {
        return print_json(&json!({
            "doc_id": info.document_id.to_string(),
            "out": args.out,
            "len": summary.len,
            "custody": info.custody.as_str(),
            "recipients": super::verify::recipients_json(info),
        }));
    }
    println!("{}", info.document_id);
    eprintln!(
        "Sealed {} for {} recipient(s) into {} ({} bytes).",
        args.file.display(),
        info.recipients.len(),
        args.out.display(),
        summary.len
    );
    Ok(ExitCode::SUCCESS)
}
