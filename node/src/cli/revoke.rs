//! `liaise revoke DOC_ID [--recipient AGENCY]` and `liaise custody DOC_ID`: revoke a document
//! sent under originator control, and see who may still open it and who confirmed deletion.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The document id `liaise send` or `liaise seal` printed.
    doc_id: String,
    /// Revoke only this reader (default: every reader).
    #[arg(long, value_name = "AGENCY")]
    recipient: Option<String>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(mut args: RevokeArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    super::check_doc_id(&mut args.doc_id)?;
    let result = client::call(
        &home,
        &Request::Revoke {
            doc_id: args.doc_id.clone(),
            recipient: args.recipient.clone(),
        },
    )?;
    if args.json.json {
        return print_json(&result);
    }
    let revoked: Vec<&str> = result
        .get("revoked")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if revoked.is_empty() {
        println!(
            "Nothing to revoke: no reader of {} had access.",
            args.doc_id
        );
    } else {
        println!("Revoked {} for {}.", args.doc_id, revoked.join(", "));
    }
    if result.get("share_shredded").and_then(Value::as_bool) == Some(true) {
        println!("The key share is deleted: nobody can open this document any more.");
    }
    println!(
        "Readers' nodes are asked to delete their copies (see `liaise custody {}`).",
        args.doc_id
    );
    println!("Revocation cannot undo a reading that already happened.");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct CustodyArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The document id.
    doc_id: String,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run_custody(mut args: CustodyArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    super::check_doc_id(&mut args.doc_id)?;
    let result = client::call(
        &home,
        &Request::Custody {
            doc_id: args.doc_id.clone(),
        },
    )?;
    if args.json.json {
        return print_json(&result);
    }
    let share = result.get("share").and_then(Value::as_str).unwrap_or("");
    println!("Document {}: key share {share}", args.doc_id);
    for reader in result
        .get("readers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let s = |k: &str| {
            reader
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "  {:<28} {:<10} access {:<8} deletion {}",
            s("agency"),
            s("origin"),
            s("access"),
            s("deletion")
        );
    }
    Ok(ExitCode::SUCCESS)
}
