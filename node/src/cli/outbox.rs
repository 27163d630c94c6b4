//! `liaise outbox`: per document and recipient, where delivery stands.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    home: HomeArg,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: OutboxArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let rows = client::call_or_read(&home, &Request::Outbox, |c| {
        Ok(serde_json::to_value(crate::store::records::list_outbox(
            c,
        )?)?)
    })?;
    if args.json.json {
        return print_json(&rows);
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("The outbox is empty.");
    }
    for row in rows {
        let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let n = |k: &str| row.get(k).and_then(Value::as_u64);
        let detail = match s("state").as_str() {
            "sending" => format!(
                "sending ({} of {} bytes)",
                n("bytes_sent").unwrap_or(0),
                n("sealed_len").unwrap_or(0)
            ),
            "delivered" => format!("delivered ({})", Timestamp(n("delivered_at").unwrap_or(0))),
            "undeliverable" => format!("undeliverable ({})", s("last_error")),
            _ => match row.get("last_error").and_then(Value::as_str) {
                Some(e) => format!(
                    "queued (attempt {} failed: {e})",
                    n("attempts").unwrap_or(0)
                ),
                None => "queued".to_owned(),
            },
        };
        println!("{}  {}  {}", s("doc_id"), s("recipient"), detail);
    }
    Ok(ExitCode::SUCCESS)
}
