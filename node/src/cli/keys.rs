//! `liaise keys rotate`: new transport and encryption keys under the same identity.
//! `liaise keys passphrase`: the same keys under a new passphrase.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
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
        KeysCommand::Rotate { home, json } => rotate(home, json, passphrase),
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

fn rotate(home: HomeArg, json: JsonArg, passphrase: &PassphraseSource) -> Result<ExitCode> {
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
    if crate::control::client::require_node(&home).is_ok() {
        println!(
            "The running node keeps its old keys: restart it once the roster with the new \
             keys is imported."
        );
    }
    Ok(ExitCode::SUCCESS)
}
