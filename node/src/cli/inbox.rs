//! `liaise inbox`: documents this node received.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct InboxArgs {
    #[command(flatten)]
    home: HomeArg,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: InboxArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let rows = client::call_or_read(&home, &Request::Inbox, |c| {
        Ok(serde_json::to_value(crate::store::records::list_inbox(c)?)?)
    })?;
    if args.json.json {
        return print_json(&rows);
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("The inbox is empty.");
    }
    for row in rows {
        let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let n = |k: &str| row.get(k).and_then(Value::as_u64).unwrap_or(0);
        let from = match row.get("forwarded_by").and_then(Value::as_str) {
            Some(forwarder) => format!("{} (forwarded by {forwarder})", s("sender")),
            None => s("sender"),
        };
        println!(
            "{}  from {from}  [{}]  {} bytes  received {}  {}",
            s("doc_id"),
            s("label"),
            n("sealed_len"),
            Timestamp(n("received_at")),
            s("verification")
        );
    }
    Ok(ExitCode::SUCCESS)
}
