//! `liaise federation ...`: the steward's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use liaise_keys::fingerprint::Fingerprint;
use liaise_keys::roster::{MembershipRequest, RevokedKey, key_fingerprint};
use liaise_keys::{AgencyId, Timestamp};
use serde_json::json;

use super::{JsonArg, print_json};
use crate::federation_dir::FederationDir;
use crate::fsutil::{read_limited, write_out_with};
use crate::passphrase::PassphraseSource;

/// How long a published roster is valid unless `--valid-for` says otherwise.
pub const DEFAULT_ROSTER_VALIDITY: &str = "30d";

#[derive(Debug, Args)]
pub struct DirArg {
    /// The federation directory.
    #[arg(long, value_name = "FED")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Create a federation directory with fresh steward keys.
    Init {
        #[command(flatten)]
        dir: DirArg,
        /// The federation's display name.
        #[arg(long)]
        name: String,
        /// How many steward keys to create.
        #[arg(long, default_value_t = 1)]
        stewards: u8,
        /// How many stewards must sign each roster.
        #[arg(long, default_value_t = 1)]
        threshold: u8,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add (or update) a member from its membership.toml.
    Add {
        #[command(flatten)]
        dir: DirArg,
        /// The agency's membership request (membership.toml).
        request: PathBuf,
        /// Put the agency in this group (repeat for several). Groups are created as needed.
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Revoke an agency (all its keys) or one key by fingerprint.
    #[command(
        override_usage = "liaise federation revoke --dir <FED> <AGENCY>\n       liaise federation revoke --dir <FED> --key <FINGERPRINT>"
    )]
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        /// The agency to remove from the federation.
        #[arg(required_unless_present = "key", conflicts_with = "key")]
        agency: Option<String>,
        /// Revoke just this key (SHA256:... as `roster show` prints it).
        #[arg(long, value_name = "FINGERPRINT")]
        key: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Sign and write the next roster.
    Publish {
        #[command(flatten)]
        dir: DirArg,
        /// Where to write the roster file.
        #[arg(long, value_name = "ROSTER")]
        out: PathBuf,
        /// How long nodes accept it, e.g. 30d, 12h, 8w.
        #[arg(
            long,
            value_name = "DURATION",
            default_value = DEFAULT_ROSTER_VALIDITY,
            value_parser = super::duration_value
        )]
        valid_for: std::time::Duration,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Replace the steward keys. The next published roster is signed by the old and the
    /// new threshold; after that only the new keys count.
    RotateStewards {
        #[command(flatten)]
        dir: DirArg,
        /// How many new steward keys [default: as many as now].
        #[arg(long)]
        stewards: Option<u8>,
        /// How many of them must sign [default: as many as now, at most --stewards].
        #[arg(long)]
        threshold: Option<u8>,
        #[command(flatten)]
        json: JsonArg,
    },
}

pub fn run(cmd: FederationCommand, passphrase: &PassphraseSource) -> Result<ExitCode> {
    match cmd {
        FederationCommand::Init {
            dir,
            name,
            stewards,
            threshold,
            json,
        } => {
            if name.is_empty()
                || name.len() > liaise_keys::roster::MAX_GROUP_NAME_LEN
                || name.chars().any(char::is_control)
            {
                bail!("--name must be 1 to 64 bytes without control characters");
            }
            let fed = FederationDir::new(dir.dir);
            let pass = passphrase.create("the steward keys")?;
            let state = fed.create(&name, stewards, threshold, &pass)?;
            let fp = state.stewards.to_set().fingerprint();
            if json.json {
                return print_json(&json!({
                    "federation": name,
                    "dir": fed.root(),
                    "stewards": stewards,
                    "threshold": threshold,
                    "federation_fingerprint": fp.to_string(),
                    "federation_fingerprint_spoken": fp.spoken(),
                }));
            }
            println!(
                "Created federation \"{name}\" in {} ({threshold} of {stewards} stewards sign).",
                fed.root().display()
            );
            print_fingerprint(&fp);
            Ok(ExitCode::SUCCESS)
        }
        FederationCommand::Add {
            dir,
            request,
            groups,
            json,
        } => add(dir, request, groups, json),
        FederationCommand::Revoke {
            dir,
            agency,
            key,
            json,
        } => revoke(dir, agency, key, json),
        FederationCommand::Publish {
            dir,
            out,
            valid_for,
            json,
        } => {
            // Roster times count whole seconds.
            if valid_for.as_secs() == 0 {
                bail!("--valid-for must be at least a second, e.g. 30d");
            }
            // A roster file replaces an older one (publishing to the same place each time);
            // anything else at --out is left alone, checked before a serial is used up.
            let is_roster = |path: &std::path::Path| {
                read_limited(path, liaise_keys::roster::MAX_ROSTER_LEN, "roster").is_ok_and(
                    |bytes| {
                        liaise_keys::roster::Roster::load_stored_ignoring_expiry(&bytes).is_ok()
                    },
                )
            };
            if std::fs::symlink_metadata(&out).is_ok() && !is_roster(&out) {
                bail!(
                    "{} already exists and is not a roster; choose another --out (nothing was \
                     published)",
                    out.display()
                );
            }
            let fed = FederationDir::new(dir.dir);
            let mut state = fed.load()?;
            let pass = passphrase.unlock("the steward keys")?;
            let (file, body) = fed.publish(&mut state, &pass, Timestamp::now(), valid_for)?;
            write_out_with(&out, 0o644, "a roster", is_roster, |f| f.write_all(&file))?;
            let fp = body.stewards.fingerprint();
            if json.json {
                return print_json(&json!({
                    "serial": body.serial,
                    "out": out,
                    "members": body.members.len(),
                    "issued_at": body.issued_at.to_rfc3339(),
                    "expires_at": body.expires_at.to_rfc3339(),
                    "federation_fingerprint": fp.to_string(),
                    "federation_fingerprint_spoken": fp.spoken(),
                }));
            }
            println!(
                "Published roster serial {} with {} members to {} (valid until {}).",
                body.serial,
                body.members.len(),
                out.display(),
                body.expires_at
            );
            print_fingerprint(&fp);
            Ok(ExitCode::SUCCESS)
        }
        FederationCommand::RotateStewards {
            dir,
            stewards,
            threshold,
            json,
        } => {
            let fed = FederationDir::new(dir.dir);
            let mut state = fed.load()?;
            if state.next_stewards.is_some() {
                bail!("a steward rotation is already under way; publish a roster to complete it");
            }
            // Unless told otherwise, the new set is as strong as the current one: a rotation
            // meant to replace lost or copied keys must not quietly lower the threshold.
            let current = state.stewards.to_set();
            let current_count = u8::try_from(current.keys.len()).unwrap_or(u8::MAX);
            let stewards = stewards.unwrap_or(current_count);
            let threshold = threshold.unwrap_or(current.threshold.min(stewards));
            let pass = passphrase.unlock("the steward keys")?;
            // Prove the passphrase opens the current keys before making new ones with it.
            fed.unlock_stewards("stewards", &pass)?;
            let next = fed.generate_stewards("stewards-next", stewards, threshold, &pass)?;
            if threshold < current.threshold {
                eprintln!(
                    "warning: the new threshold ({threshold} of {stewards}) is lower than the current one ({} of {current_count})",
                    current.threshold
                );
            }
            let fp = next.to_set().fingerprint();
            state.next_stewards = Some(next);
            fed.save(&state)?;
            if json.json {
                return print_json(&json!({
                    "new_federation_fingerprint": fp.to_string(),
                    "new_federation_fingerprint_spoken": fp.spoken(),
                    "stewards": stewards,
                    "threshold": threshold,
                }));
            }
            println!(
                "New steward keys made ({threshold} of {stewards} must sign); the next `liaise federation publish` is signed by old and new stewards."
            );
            print_fingerprint(&fp);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_fingerprint(fp: &Fingerprint) {
    println!("Federation fingerprint (nodes pin it on their first `liaise roster import`):");
    println!("  {fp}");
    println!("  spoken: {}", fp.spoken());
}

fn add(dir: DirArg, request: PathBuf, groups: Vec<String>, json: JsonArg) -> Result<ExitCode> {
    if let Some(bad) = groups
        .iter()
        .find(|g| !liaise_keys::roster::valid_group_name(g))
    {
        bail!(
            "group `{}` is invalid: {}",
            bad.escape_debug(),
            liaise_keys::roster::GROUP_NAME_RULE
        );
    }
    let fed = FederationDir::new(dir.dir);
    let mut state = fed.load()?;
    let bytes = read_limited(
        &request,
        liaise_keys::roster::MAX_MEMBERSHIP_FILE_LEN,
        "membership request",
    )?;
    let text = String::from_utf8(bytes).context("membership request is not UTF-8")?;
    let request = MembershipRequest::from_toml(&text)
        .with_context(|| format!("cannot add {}", request.display()))?;

    // Under either role for an Ed25519 key: one revoked in one role is revoked in both, and a
    // roster that lists it is refused by nodes (and by `publish`).
    let new_keys: Vec<Fingerprint> = request.to_member().revocable_fingerprints();
    if let Some(revoked) = state
        .revoked
        .iter()
        .find(|r| new_keys.contains(&r.fingerprint))
    {
        let signing = liaise_keys::roster::ed25519_fingerprints(&request.signing_key.to_bytes());
        if signing.contains(&revoked.fingerprint) {
            bail!(
                "{} uses revoked key {} (its signing key, which `liaise keys rotate` keeps); \
                 the agency joins again with new keys: `liaise init` in a new HOME, and send \
                 that request",
                request.agency,
                revoked.fingerprint
            );
        }
        bail!(
            "{} uses revoked key {}; the agency must run `liaise keys rotate` and send a new request",
            request.agency,
            revoked.fingerprint
        );
    }
    let mut replaced = false;
    if let Some(existing) = state.members.iter().find(|m| m.agency == request.agency) {
        if existing.signing_key != request.signing_key {
            bail!(
                "{} is already a member with a different signing key; revoke it first with \
                 `liaise federation revoke --dir {} {}`",
                request.agency,
                fed.root().display(),
                request.agency
            );
        }
        replaced = true;
    }
    for other in state.members.iter().filter(|m| m.agency != request.agency) {
        let theirs = other.to_member().key_fingerprints();
        if let Some(shared) = new_keys.iter().find(|k| theirs.contains(k)) {
            bail!(
                "{} uses key {shared}, which belongs to {}; refused (key substitution)",
                request.agency,
                other.agency
            );
        }
    }
    let agency = request.agency.clone();
    // Computed from the key itself, not taken from the request's comment: what the steward
    // compares, by phone, with what the agency's `liaise init` showed.
    let fingerprint = request.signing_key.fingerprint();
    if replaced {
        state.members.retain(|m| m.agency != agency);
    }
    state.members.push(request);
    // Groups named for the first time: a typo would otherwise make a new group silently.
    let mut new_groups: Vec<String> = Vec::new();
    for group in &groups {
        if !state.groups.contains_key(group) && !new_groups.contains(group) {
            new_groups.push(group.clone());
        }
    }
    for group in &groups {
        let members = state.groups.entry(group.clone()).or_default();
        if !members.contains(&agency) {
            members.push(agency.clone());
        }
    }
    fed.save(&state)?;
    if json.json {
        return print_json(&json!({
            "agency": agency.as_str(),
            "signing_key_fingerprint": fingerprint.to_string(),
            "signing_key_fingerprint_spoken": fingerprint.spoken(),
            "updated": replaced,
            "groups": groups,
            "new_groups": new_groups,
        }));
    }
    let verb = if replaced { "Updated" } else { "Added" };
    println!("{verb} {agency}.");
    println!("  signing key fingerprint: {fingerprint}");
    println!("  spoken: {}", fingerprint.spoken());
    if !replaced {
        println!(
            "Confirm this fingerprint with {agency} by phone before you publish: it must be \
             the one their `liaise init` showed."
        );
    }
    println!("Run `liaise federation publish` to hand out a roster with it.");
    let mut listed: Vec<&String> = Vec::new();
    for group in &groups {
        if listed.contains(&group) {
            continue;
        }
        listed.push(group);
        let new = if new_groups.contains(group) {
            " (a new group: check its spelling)"
        } else {
            ""
        };
        println!("  in group {group}{new}");
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(
    dir: DirArg,
    agency: Option<String>,
    key: Option<String>,
    json: JsonArg,
) -> Result<ExitCode> {
    let fed = FederationDir::new(dir.dir);
    let mut state = fed.load()?;
    let now = Timestamp::now();
    let mut revoked = Vec::new();
    if let Some(agency) = agency {
        let id = AgencyId::new(&agency)?;
        let Some(pos) = state.members.iter().position(|m| m.agency == id) else {
            bail!("{id} is not a member of this federation");
        };
        let member = state.members.remove(pos).to_member();
        revoked = member.key_fingerprints();
        for fingerprint in &revoked {
            state.revoked.push(RevokedKey {
                fingerprint: *fingerprint,
                agency: Some(id.clone()),
                revoked_at: now,
            });
        }
        for members in state.groups.values_mut() {
            members.retain(|m| m != &id);
        }
    } else if let Some(text) = key {
        let fingerprint: Fingerprint = text.parse()?;
        let Some(member) = state
            .members
            .iter_mut()
            .find(|m| m.to_member().key_fingerprints().contains(&fingerprint))
        else {
            bail!("no member holds key {fingerprint}; `liaise roster show` lists every key");
        };
        let id = member.agency.clone();
        if member.signing_key.fingerprint() == fingerprint {
            bail!(
                "{fingerprint} is the identity key of {id}; revoke the agency instead: `liaise federation revoke --dir FED {id}`"
            );
        }
        member
            .transport
            .retain(|c| key_fingerprint(&c.body().key) != fingerprint);
        member
            .encryption
            .retain(|c| key_fingerprint(&c.body().key) != fingerprint);
        state.revoked.push(RevokedKey {
            fingerprint,
            agency: Some(id),
            revoked_at: now,
        });
        revoked.push(fingerprint);
    }
    fed.save(&state)?;
    if json.json {
        let keys: Vec<String> = revoked.iter().map(ToString::to_string).collect();
        return print_json(&json!({ "revoked_keys": keys }));
    }
    println!(
        "Revoked {} key(s). Publish a roster so nodes learn of it:",
        revoked.len()
    );
    println!(
        "  liaise federation publish --dir {} --out ROSTER",
        fed.root().display()
    );
    Ok(ExitCode::SUCCESS)
}
