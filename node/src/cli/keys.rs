//! `liaise keys rotate`: new transport and encryption keys under the same identity.
//! `liaise keys passphrase`: the same keys under a new passphrase.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use liaise_keys::Timestamp;
use liaise_keys::keyfile::ExistingFile;
use liaise_keys::roster::TRANSPORT_KEY_OVERLAP;
use serde_json::json;

use super::{HomeArg, JsonArg, print_json};
use crate::fsutil::write_atomic;
use crate::passphrase::PassphraseSource;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make new certified transport and encryption keys and write an updated
    /// membership request. Old encryption keys are kept so earlier documents still open.
    /// The request certifies the old transport key for 60 more days, and the node presents
    /// it until then, so peers that do not hold the new roster yet still reach it.
    Rotate {
        #[command(flatten)]
        home: HomeArg,
        /// Do not certify the old transport key any longer (e.g. it may be compromised: also
        /// ask your steward to revoke it). Peers reach this node again only once they hold
        /// the roster with the new key.
        #[arg(long)]
        no_overlap: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Encrypt the key file under a new passphrase, e.g. when someone who knew the old one
    /// leaves. The keys stay the same. The new passphrase comes from --new-passphrase-file,
    /// `LIAISE_NEW_PASSPHRASE`, or is asked twice on the terminal.
    Passphrase {
        #[command(flatten)]
        home: HomeArg,
        /// Read the new passphrase from this file.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

pub fn run(cmd: KeysCommand, passphrase: &PassphraseSource) -> Result<ExitCode> {
    match cmd {
        KeysCommand::Rotate {
            home,
            no_overlap,
            json,
        } => rotate(home, no_overlap, json, passphrase),
        KeysCommand::Passphrase {
            home,
            new_passphrase_file,
        } => change_passphrase(home, new_passphrase_file.as_deref(), passphrase),
    }
}

fn change_passphrase(
    home: HomeArg,
    new_file: Option<&Path>,
    passphrase: &PassphraseSource,
) -> Result<ExitCode> {
    let home = home.resolve()?;
    let what = format!("the keys in {}", home.root().display());
    let old = passphrase.unlock(&what)?;
    let secrets = home.unlock_with(&old)?;
    let new = PassphraseSource::replacement(new_file, &format!("{what} (new)"))?;
    if new.is_same(&old) {
        bail!("the new passphrase is the old one; nothing was changed");
    }
    home.store_secrets(&secrets, &new, ExistingFile::Replace)?;
    println!(
        "The key file {} now opens with the new passphrase only.",
        home.key_file_path().display()
    );
    println!(
        "A running node keeps its keys until it restarts; update its passphrase credential \
         (deploy/README.md, step 4) before then."
    );
    Ok(ExitCode::SUCCESS)
}

fn rotate(
    home: HomeArg,
    no_overlap: bool,
    json: JsonArg,
    passphrase: &PassphraseSource,
) -> Result<ExitCode> {
    let home = home.resolve()?;
    let profile = home.profile()?;
    // The request goes to the stewards with these addresses (an address change is made in
    // agency.toml, then rotated): one they would refuse is caught here, before any key changes.
    super::init::check_addresses(&profile.addresses).with_context(|| {
        format!(
            "{} lists addresses the federation would refuse; correct `addresses` there, then \
             rotate",
            home.profile_path().display()
        )
    })?;
    let pass = passphrase.unlock(&format!("the keys in {}", home.root().display()))?;
    let mut secrets = home.unlock_with(&pass)?;
    let now = Timestamp::now();
    // An expired roster still says which keys peers know and which were revoked.
    let roster = home.roster_for_display().ok().flatten();
    // Rotating again before any roster listed the last new key: peers still know only the
    // key before it, so that one stays the previous key (the unpublished one is dropped).
    let certified = |key: &liaise_keys::TransportSecretKey| {
        roster.as_ref().is_some_and(|r| {
            r.member_by_transport_key(&key.public_key(), now)
                .is_ok_and(|m| m.id == profile.agency)
        })
    };
    let pending = !certified(&secrets.transport)
        && secrets.previous_transport.as_ref().is_some_and(certified);
    let keep = if pending {
        secrets.previous_transport.take()
    } else {
        None
    };
    let dropped = secrets.rotate(profile.kem);
    if keep.is_some() {
        secrets.previous_transport = keep;
    }
    for key in &dropped {
        eprintln!(
            "warning: dropped the oldest encryption key {} (at most {} are kept); documents sealed to it can no longer be opened",
            key.fingerprint(),
            liaise_keys::identity::MAX_ENCRYPTION_KEYS
        );
    }
    // A key the federation revoked is not offered again (the steward would refuse the
    // request); nor with --no-overlap.
    let previous_key = secrets.previous_transport.as_ref().map(|k| k.public_key());
    let previous = previous_key.as_ref().map(|k| k.fingerprint());
    let revoked = roster
        .as_ref()
        .zip(previous_key.as_ref())
        .and_then(|(r, key)| r.transport_key_revocation(key).map(|k| k.revoked_at));
    // The key peers know, which the overlap certifies: the one before this rotation, or
    // before the unpublished one.
    let old_transport = previous.map(|fp| fp.to_string()).unwrap_or_default();
    if let Some(at) = revoked {
        eprintln!(
            "note: the old transport key was revoked at {at}; the request lists only the new one"
        );
    }
    let old_until = (!no_overlap && revoked.is_none()).then(|| now.after(TRANSPORT_KEY_OVERLAP));
    let request = super::init::membership_request(&profile, &secrets, now, old_until);
    home.store_secrets(&secrets, &pass, ExistingFile::Replace)?;
    write_atomic(&home.membership_path(), request.to_toml().as_bytes(), 0o644)
        .context("cannot write the membership request")?;
    let new_transport = secrets.transport.public_key().fingerprint();
    let new_encryption = secrets
        .current_encryption()
        .map(|k| k.public_key().fingerprint().to_string())
        .unwrap_or_default();
    if json.json {
        return print_json(&json!({
            "agency": profile.agency.as_str(),
            "old_transport_key": old_transport,
            "transport_key": new_transport.to_string(),
            "encryption_key": new_encryption,
            "old_transport_key_until": old_until.map(Timestamp::to_rfc3339),
            "membership_request": home.membership_path(),
        }));
    }
    println!("Rotated the keys of {}.", profile.agency);
    println!("  transport key:  {new_transport}");
    println!("  encryption key: {new_encryption}");
    println!(
        "Send {} to your steward; peers use the new keys once the next roster lists them.",
        home.membership_path().display()
    );
    match old_until {
        Some(until) => println!(
            "The request certifies the old transport key until {until}: the node presents it \
             until a day before, so peers that hold an older roster still reach it."
        ),
        None => println!(
            "The request does not list the old transport key: peers reach this node again \
             once they hold the roster with the new key."
        ),
    }
    if crate::control::client::require_node(&home).is_ok() {
        match old_until {
            Some(until) => println!(
                "The running node goes on with its old keys: restart it, at any time before \
                 {until} and before the stewards revoke the old keys, to take up the new ones."
            ),
            None => println!(
                "The running node goes on with its old keys: restart it once the roster with \
                 the new keys is imported."
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
