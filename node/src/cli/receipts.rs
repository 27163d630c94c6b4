//! `liaise receipts DOC_ID`: the signed receipts for a sent document, verified against the
//! roster. With the node stopped, read from its store.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The document id `liaise send` printed.
    doc_id: String,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(mut args: ReceiptsArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    super::check_doc_id(&mut args.doc_id)?;
    let request = Request::Receipts {
        doc_id: args.doc_id.clone(),
    };
    let rows = client::call_or_read(&home, &request, |c| {
        let roster = home.roster_for_display()?.with_context(|| {
            format!(
                "no roster in {} to check the receipts against",
                home.root().display()
            )
        })?;
        crate::control::receipts::report(c, &roster, &args.doc_id)
    })?;
    if args.json.json {
        return print_json(&rows);
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("No receipts for {} yet.", args.doc_id);
    }
    for row in rows {
        let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let at = row.get("received_at").and_then(Value::as_u64).unwrap_or(0);
        println!(
            "{}  received {}  content hash {}  {}",
            s("recipient"),
            Timestamp(at),
            s("content_hash"),
            s("verification")
        );
    }
    Ok(ExitCode::SUCCESS)
}
