//! `liaise status`: roster, peers, queues.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use liaise_keys::Timestamp;
use serde_json::Value;

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};
use indicatif::BinaryBytes;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Connect to every other member's node now (each address gives up after 10 s) and say
    /// which answer: to check addresses and firewalls. Without it, each peer shows what the
    /// last contact showed.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let status = client::call(&home, &Request::Status { check: args.check })?;
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
    let expires = n(&status, "roster_expires_at");
    println!(
        "roster        serial {}, expires {}, {} members{}",
        n(&status, "roster_serial"),
        Timestamp(expires),
        n(&status, "members"),
        expiry_note(expires, Timestamp::now().0)
    );
    for warning in status
        .get("key_warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        println!("keys          WARNING: {warning}");
    }
    let outbox = status.get("outbox").cloned().unwrap_or_default();
    println!(
        "outbox        {} queued, {} delivered, {} undeliverable",
        n(&outbox, "queued"),
        n(&outbox, "delivered"),
        n(&outbox, "undeliverable")
    );
    let inbox = n(&status, "inbox");
    let documents = if inbox == 1 { "document" } else { "documents" };
    println!("inbox         {inbox} {documents}");
    if let Some(quota) = status.get("agency_quota_bytes").and_then(Value::as_u64) {
        println!(
            "quota         each other agency may keep {} here",
            BinaryBytes(quota)
        );
    }
    for peer in status
        .get("peers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let state = match peer.get("reachable").and_then(Value::as_bool) {
            Some(true) => format!("reachable (checked {})", Timestamp(n(&peer, "checked_at"))),
            Some(false) => format!(
                "unreachable (checked {})",
                Timestamp(n(&peer, "checked_at"))
            ),
            None => "not contacted yet (`liaise status --check` tries now)".to_owned(),
        };
        let kept = match n(&peer, "kept_bytes") {
            0 => String::new(),
            bytes => format!(", keeps {} here", BinaryBytes(bytes)),
        };
        println!(
            "peer          {}  {state}{kept}",
            peer.get("agency").and_then(Value::as_str).unwrap_or("")
        );
        if let Some(error) = peer.get("error").and_then(Value::as_str) {
            println!("                {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Roster expiry is soon, within this: the operator should have the next one by then.
const EXPIRY_WARNING: u64 = crate::daemon::roster_expiry::EXPIRY_WARNING.as_secs();

/// What the roster's expiry at `expires` means at `now`, as a suffix of the roster line.
fn expiry_note(expires: u64, now: u64) -> &'static str {
    if expires <= now {
        "\n              EXPIRED: no peer accepts this node, nor this node any peer; import a \
         current roster (`liaise roster import`) from your stewards"
    } else if expires - now <= EXPIRY_WARNING {
        "\n              expires within 7 days: ask your stewards for the next roster"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_or_expiring_roster_is_called_so() {
        assert!(expiry_note(100, 100).contains("EXPIRED"));
        assert!(expiry_note(100, 5_000).contains("EXPIRED"));
        assert!(expiry_note(100 + EXPIRY_WARNING, 100).contains("within 7 days"));
        assert_eq!(expiry_note(101 + EXPIRY_WARNING, 100), "");
    }
}
