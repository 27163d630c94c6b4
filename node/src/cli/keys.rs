//! `liaise keys rotate`: new transport and encryption keys under the same identity.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use liaise_keys::Timestamp;
use liaise_keys::keyfile::ExistingFile;
use serde_json::json;

use super::{HomeArg, JsonArg, print_json};
use crate::fsutil::write_atomic;
use crate::passphrase::PassphraseSource;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make new certified transport and encryption keys and write an updated
    /// membership request. Old encryption keys are kept so earlier documents still open.
    Rotate {
        #[command(flatten)]
        home: HomeArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

pub fn run(cmd: KeysCommand, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let KeysCommand::Rotate { home, json } = cmd;
    let home = home.resolve()?;
    let profile = home.profile()?;
    let pass = passphrase.unlock(&format!("the keys in {}", home.root().display()))?;
    let mut secrets = home.unlock_with(&pass)?;
    let old_transport = secrets.transport.public_key().fingerprint();
    let dropped = secrets.rotate(profile.kem);
    for key in &dropped {
        eprintln!(
            "warning: dropped the oldest encryption key {} (at most {} are kept); documents sealed to it can no longer be opened",
            key.fingerprint(),
            liaise_keys::identity::MAX_ENCRYPTION_KEYS
        );
    }
    let request = super::init::membership_request(
        &profile.agency,
        &profile.name,
        profile.kind,
        profile.country,
        &profile.addresses,
        &secrets,
        Timestamp::now(),
    );
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
            "old_transport_key": old_transport.to_string(),
            "transport_key": new_transport.to_string(),
            "encryption_key": new_encryption,
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
    Ok(ExitCode::SUCCESS)
}
