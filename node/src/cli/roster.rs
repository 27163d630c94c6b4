//! `liaise roster import|show`: the roster this node trusts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use liaise_keys::Timestamp;
use liaise_keys::roster::{MAX_ROSTER_LEN, Roster};
use serde_json::{Value, json};

use super::{HomeArg, JsonArg, print_json};
use crate::control::{Request, client};
use crate::fsutil::read_limited;

/// The first line of what `roster allowed-signers` writes (a comment to `ssh-keygen`), then
/// the federation's name: a file that starts so may be replaced by a newer list.
const ALLOWED_SIGNERS_HEADER: &str = "# Liaise allowed signers: ";

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Accept a roster published by the stewards. The first import pins the federation.
    #[command(after_help = super::examples::ROSTER_IMPORT)]
    Import {
        #[command(flatten)]
        home: HomeArg,
        /// The roster file.
        roster: PathBuf,
        /// Required on the first import: the federation fingerprint your steward read out
        /// (SHA256:... or the spoken digit groups).
        #[arg(long, value_name = "FP")]
        federation_fingerprint: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show the roster this node holds: members, keys, groups, revocations.
    Show {
        #[command(flatten)]
        home: HomeArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Print an OpenSSH allowed-signers file of every member's signing key, so that
    /// `ssh-keygen -Y verify -n liaise-document` can check opened files without Liaise.
    AllowedSigners {
        #[command(flatten)]
        home: HomeArg,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: RosterCommand) -> Result<ExitCode> {
    match cmd {
        RosterCommand::Import {
            home,
            roster,
            federation_fingerprint,
            json,
        } => {
            let home = home.resolve()?;
            home.profile()?;
            let bytes = read_limited(&roster, MAX_ROSTER_LEN, "roster")?;
            let now = Timestamp::now();
            let accepted = match home.roster_for_display()? {
                Some(held)
                    if held.file_bytes() == bytes.as_slice()
                        && federation_fingerprint
                            .as_ref()
                            .is_none_or(|fp| held.federation_fingerprint().matches_text(fp)) =>
                {
                    if json.json {
                        return print_json(&json!({ "serial": held.serial(), "unchanged": true }));
                    }
                    println!(
                        "Already holding roster serial {}; nothing to do.",
                        held.serial()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Some(held) => {
                    // The update is checked against the stewards of the roster held. A
                    // fingerprint given all the same must name them, or the new roster's
                    // stewards (after a rotation): else the user expects another federation,
                    // and that is said first, whatever else is wrong with the file.
                    let update = held.accept_update(&bytes, now);
                    match &federation_fingerprint {
                        Some(fp)
                            if !held.federation_fingerprint().matches_text(fp)
                                && !update
                                    .as_ref()
                                    .is_ok_and(|u| u.federation_fingerprint().matches_text(fp)) =>
                        {
                            Err(anyhow::anyhow!(
                                "--federation-fingerprint {fp} matches neither the federation \
                                 this node follows ({}) nor this roster's stewards; check it \
                                 with your steward, or leave it out",
                                held.federation_fingerprint(),
                            ))
                        }
                        _ => update.map_err(anyhow::Error::from),
                    }
                }
                None => {
                    let Some(fp) = federation_fingerprint else {
                        bail!(
                            "this node has no roster yet: pass --federation-fingerprint FP, \
                             as your federation's steward reads it out to you"
                        );
                    };
                    Roster::accept_first(&bytes, &fp, now).map_err(anyhow::Error::from)
                }
            }
            .with_context(|| format!("roster {} refused", roster.display()))?;
            home.store_roster(&accepted)?;
            let profile = home.profile()?;
            let listed = accepted.member(&profile.agency).is_some();
            // A running node takes it at once, with the same checks as a roster from a peer.
            let node_serial = match client::require_node(&home) {
                Ok(()) => Some(
                    client::call(&home, &Request::AdoptRoster)
                        .ok()
                        .and_then(|v| v.get("serial").and_then(Value::as_u64)),
                ),
                Err(_) => None,
            };
            if json.json {
                return print_json(&json!({
                    "serial": accepted.serial(),
                    "federation": accepted.body().federation,
                    "members": accepted.body().members.len(),
                    "expires_at": accepted.body().expires_at.to_rfc3339(),
                    "self_listed": listed,
                    "node_serial": node_serial.flatten(),
                }));
            }
            println!(
                "Accepted roster serial {} of \"{}\": {} members, valid until {}.",
                accepted.serial(),
                accepted.body().federation,
                accepted.body().members.len(),
                accepted.body().expires_at
            );
            if !listed {
                match accepted.revocation_of_agency(&profile.agency) {
                    Some(revoked) => println!(
                        "Note: {} is revoked in this roster (since {}): its node cannot \
                         exchange with the federation. Ask your stewards; a rebuilt node joins \
                         again with new keys (`liaise init`).",
                        profile.agency, revoked.revoked_at
                    ),
                    None => println!("Note: {} is not in this roster yet.", profile.agency),
                }
            }
            match node_serial {
                Some(Some(serial)) if serial >= accepted.serial() => {
                    println!("The running node uses it now.");
                }
                Some(held) => eprintln!(
                    "warning: the running node kept roster serial {}; see its log, or restart \
                     it (`liaise node run --home {}`) to use the new one",
                    held.map_or_else(|| "?".to_owned(), |s| s.to_string()),
                    home.root().display()
                ),
                None => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        RosterCommand::AllowedSigners { home, out } => {
            let home = home.resolve()?;
            home.profile()?; // "not a Liaise home" before "no roster"
            let roster = home.require_roster(Timestamp::now())?;
            let mut text = format!("{ALLOWED_SIGNERS_HEADER}{}\n", roster.body().federation);
            for member in &roster.body().members {
                // What `ssh-keygen -Y verify` prints for this key, to check it against.
                text.push_str(&format!(
                    "# {}: {}\n",
                    member.id,
                    liaise_protocol::openssh_fingerprint(&member.signing_key)
                ));
                text.push_str(&liaise_protocol::allowed_signers_line(
                    &member.id,
                    &member.signing_key,
                ));
                text.push('\n');
            }
            match out {
                Some(path) => crate::fsutil::write_out_with(
                    &path,
                    0o644,
                    "an allowed-signers file this command wrote",
                    |p| crate::fsutil::starts_with(p, ALLOWED_SIGNERS_HEADER.as_bytes()),
                    |file| file.write_all(text.as_bytes()),
                )?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        RosterCommand::Show { home, json } => {
            let home = home.resolve()?;
            home.profile()?; // "not a Liaise home" before "no roster"
            let Some(roster) = home.roster_for_display()? else {
                bail!(
                    "no roster imported yet; run `liaise roster import --home {} ROSTER --federation-fingerprint FP`",
                    home.root().display()
                );
            };
            let now = Timestamp::now();
            let value = describe(&roster, now);
            if json.json {
                return print_json(&value);
            }
            print_human(&roster, now);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The roster as stable JSON.
pub fn describe(roster: &Roster, now: Timestamp) -> Value {
    let body = roster.body();
    let fp = roster.federation_fingerprint();
    json!({
        "federation": body.federation,
        "serial": body.serial,
        "issued_at": body.issued_at.to_rfc3339(),
        "expires_at": body.expires_at.to_rfc3339(),
        "expired": now >= body.expires_at,
        "federation_fingerprint": fp.to_string(),
        "federation_fingerprint_spoken": fp.spoken(),
        "stewards": {
            "threshold": body.stewards.threshold,
            "keys": body.stewards.keys.iter().map(|k| k.fingerprint().to_string()).collect::<Vec<_>>(),
        },
        "members": body.members.iter().map(|m| json!({
            "agency": m.id.as_str(),
            "name": m.name,
            "kind": m.kind.as_str(),
            "country": m.country.as_str(),
            "addresses": m.addresses,
            "signing_key": m.signing_key.to_string(),
            "signing_key_fingerprint": m.signing_key.fingerprint().to_string(),
            "transport_key": m.current_transport_key(now).map(|k| k.fingerprint().to_string()),
            "encryption_key": m.current_encryption_key(now).map(|k| k.fingerprint().to_string()),
            "encryption_algorithm": m.current_encryption_key(now).map(|k| kem_name(k.algorithm())),
        })).collect::<Vec<_>>(),
        "groups": body.groups.iter().map(|g| json!({
            "name": g.name,
            "members": g.members.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "revoked": body.revoked.iter().map(|r| json!({
            "fingerprint": r.fingerprint.to_string(),
            "agency": r.agency.as_ref().map(|a| a.as_str()),
            "revoked_at": r.revoked_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
    })
}

fn print_human(roster: &Roster, now: Timestamp) {
    let body = roster.body();
    let fp = roster.federation_fingerprint();
    println!(
        "Federation \"{}\", roster serial {}",
        body.federation, body.serial
    );
    let state = if now >= body.expires_at {
        "EXPIRED"
    } else {
        "valid"
    };
    println!(
        "  issued {}, {state} until {}",
        body.issued_at, body.expires_at
    );
    println!("  fingerprint {fp}");
    println!("  spoken      {}", fp.spoken());
    println!(
        "  stewards    {} of {} must sign",
        body.stewards.threshold,
        body.stewards.keys.len()
    );
    println!("Members ({}):", body.members.len());
    for m in &body.members {
        println!(
            "  {:<28} {} ({}, {})",
            m.id.as_str(),
            m.name,
            m.kind,
            m.country
        );
        println!("    signing key {}", m.signing_key.fingerprint());
        if let Some(k) = m.current_transport_key(now) {
            println!("    transport   {}", k.fingerprint());
        }
        if let Some(k) = m.current_encryption_key(now) {
            println!(
                "    encryption  {} ({})",
                k.fingerprint(),
                kem_name(k.algorithm())
            );
        }
        println!("    addresses   {}", m.addresses.join(", "));
    }
    if !body.groups.is_empty() {
        println!("Groups:");
        for g in &body.groups {
            let names: Vec<&str> = g.members.iter().map(|m| m.as_str()).collect();
            println!("  {}: {}", g.name, names.join(", "));
        }
    }
    if !body.revoked.is_empty() {
        println!("Revoked keys:");
        for r in &body.revoked {
            let who = r.agency.as_ref().map_or("unknown agency", |a| a.as_str());
            println!("  {} ({who}, since {})", r.fingerprint, r.revoked_at);
        }
    }
}

/// How `roster show` names a key-encapsulation algorithm (as `liaise init --kem` takes it).
fn kem_name(algorithm: liaise_keys::KemAlgorithm) -> &'static str {
    match algorithm {
        liaise_keys::KemAlgorithm::XWing => "xwing",
        liaise_keys::KemAlgorithm::X25519 => "x25519",
    }
}
