//! `liaise status`: roster, peers, queues.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    home: HomeArg,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let status = client::call(&home, &Request::Status)?;
    if args.json.json {
        return print_json(&status);
    }
    let s = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    println!("agency        {}", s("agency"));
    println!("listening on  {}", s("listen"));
    println!(
        "roster        serial {}, expires {}, {} members",
        n(&status, "roster_serial"),
        Timestamp(n(&status, "roster_expires_at")),
        n(&status, "members")
    );
    let outbox = status.get("outbox").cloned().unwrap_or_default();
    println!(
        "outbox        {} queued, {} delivered, {} undeliverable",
        n(&outbox, "queued"),
        n(&outbox, "delivered"),
        n(&outbox, "undeliverable")
    );
    println!("inbox         {} documents", n(&status, "inbox"));
    for peer in status
        .get("peers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let reachable = peer
            .get("reachable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        println!(
            "peer          {}  {} (checked {})",
            peer.get("agency").and_then(Value::as_str).unwrap_or(""),
            if reachable {
                "reachable"
            } else {
                "unreachable"
            },
            Timestamp(n(&peer, "checked_at"))
        );
    }
    Ok(ExitCode::SUCCESS)
}
