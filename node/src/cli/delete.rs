//! `liaise delete DOC_ID [--from AGENCY]`: delete this node's copy of a received document.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The id of the received document (`liaise inbox` lists them).
    doc_id: String,
    /// The agency that sent the copy to delete; needed only when two senders used the same id.
    #[arg(long, value_name = "AGENCY")]
    from: Option<String>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(mut args: DeleteArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    super::check_doc_id(&mut args.doc_id)?;
    let result = client::call(
        &home,
        &Request::DeleteReceived {
            doc_id: args.doc_id.clone(),
            from: args.from.clone(),
        },
    )?;
    if args.json.json {
        return print_json(&result);
    }
    let sender = result.get("sender").and_then(Value::as_str).unwrap_or("?");
    let at = Timestamp(
        result
            .get("deleted_at")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    );
    if result.get("already_deleted").and_then(Value::as_bool) == Some(true) {
        println!(
            "Document {} from {sender} was deleted already, at {at}.",
            args.doc_id
        );
    } else {
        println!(
            "Deleted this node's copy of document {} from {sender}.",
            args.doc_id
        );
        println!("Its inbox line, the receipt this node signed and the log entries stay.");
    }
    Ok(ExitCode::SUCCESS)
}
