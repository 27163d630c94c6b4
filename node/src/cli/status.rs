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
    if let Some(quota) = status.get("agency_quota_bytes").and_then(Value::as_u64) {
        println!(
            "quota         each other agency may keep {} here",
            binary_size(quota)
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
            bytes => format!(", keeps {} here", binary_size(bytes)),
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

/// `bytes` in the largest binary unit that keeps it at 1 or more, to one decimal.
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} bytes"),
        _ => format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"TiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::binary_size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(binary_size(0), "0 bytes");
        assert_eq!(binary_size(1023), "1023 bytes");
        assert_eq!(binary_size(1536), "1.5 KiB");
        assert_eq!(binary_size(700 * 1024), "700.0 KiB");
        assert_eq!(binary_size(25 << 30), "25.0 GiB");
        assert_eq!(binary_size(u64::MAX), "16777216.0 TiB");
    }
}
