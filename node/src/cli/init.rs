//! `liaise init`: create an agency's keys and its membership request.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use liaise_keys::keyfile::ExistingFile;
use liaise_keys::roster::{MembershipRequest, certify};
use liaise_keys::{AgencyId, AgencyKind, AgencySecrets, Country, KemAlgorithm, Timestamp};
use serde_json::json;

use super::{HomeArg, JsonArg, print_json};
use crate::fsutil::write_atomic;
use crate::home::AgencyProfile;
use crate::passphrase::PassphraseSource;

/// How long transport and encryption key certificates are valid by default.
pub const DEFAULT_KEY_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);
/// Certificates start this much before now, so peers with slightly slow clocks accept them.
pub const CERTIFICATE_BACKDATE_SECS: u64 = 300;

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    home: HomeArg,
    /// The agency id: dot-separated lowercase labels, e.g. nl.probation.utrecht.
    #[arg(long, value_name = "ID")]
    agency: String,
    /// The agency's display name.
    #[arg(long)]
    name: String,
    /// city, probation, prison, police, court, ngo or other.
    #[arg(long, value_parser = |text: &str| text.parse::<AgencyKind>().map_err(|e| e.to_string()))]
    kind: AgencyKind,
    /// ISO 3166-1 alpha-2 country code, e.g. NL (EU for a European Union agency).
    #[arg(long, value_name = "CC", value_parser = |text: &str| Country::assigned(text).map_err(|e| e.to_string()))]
    country: Country,
    /// Where this agency's node will listen, HOST:PORT (repeat for several).
    #[arg(long = "address", value_name = "HOST:PORT", required = true)]
    addresses: Vec<String>,
    /// Encryption key type: xwing (post-quantum hybrid, default) or x25519.
    #[arg(long, default_value = "xwing", value_parser = parse_kem)]
    kem: KemAlgorithm,
    #[command(flatten)]
    json: JsonArg,
}

pub(crate) fn parse_kem(text: &str) -> Result<KemAlgorithm, String> {
    match text {
        "xwing" | "x-wing" => Ok(KemAlgorithm::XWing),
        "x25519" => Ok(KemAlgorithm::X25519),
        _ => Err("use xwing or x25519".into()),
    }
}

/// The addresses a membership request may list, checked as the stewards' `federation add`
/// will: 1 to 8, each `HOST:PORT`.
pub(super) fn check_addresses(addresses: &[String]) -> Result<()> {
    let max = liaise_keys::roster::MAX_ADDRESSES;
    if !(1..=max).contains(&addresses.len()) {
        bail!(
            "a node lists 1 to {max} addresses (HOST:PORT), not {}",
            addresses.len()
        );
    }
    for address in addresses {
        liaise_keys::roster::validate_address(address)?;
    }
    Ok(())
}

pub fn run(args: InitArgs, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let agency = AgencyId::new(&args.agency)?;
    let (kind, country) = (args.kind, args.country);
    liaise_keys::agency::validate_name(&args.name)?;
    check_addresses(&args.addresses)?;
    let home = args.home.resolve()?;
    let existed = home.root().exists();
    home.create()?;
    let pass = match passphrase.create(&format!("the new keys of {agency}")) {
        Ok(pass) => pass,
        Err(e) => {
            // No empty home left behind by a refused passphrase (only removed if empty).
            if !existed {
                let _ = std::fs::remove_dir(home.root());
            }
            return Err(e);
        }
    };

    let secrets = AgencySecrets::generate(args.kem);
    let profile = AgencyProfile {
        agency: agency.clone(),
        name: args.name.clone(),
        kind,
        country,
        addresses: args.addresses.clone(),
        kem: args.kem,
    };
    let request = membership_request(&profile, &secrets, Timestamp::now(), None);
    // The same rules the steward's `federation add` applies, before anything is written.
    request.check()?;
    home.store_secrets(&secrets, &pass, ExistingFile::Refuse)?;
    home.write_profile(&profile)?;
    write_atomic(&home.membership_path(), request.to_toml().as_bytes(), 0o644)
        .context("cannot write the membership request")?;

    let fingerprint = secrets.signing.public_key().fingerprint();
    if args.json.json {
        return print_json(&json!({
            "agency": agency.as_str(),
            "home": home.root(),
            "signing_key": secrets.signing.public_key().to_string(),
            "signing_key_fingerprint": fingerprint.to_string(),
            "signing_key_fingerprint_spoken": fingerprint.spoken(),
            "membership_request": home.membership_path(),
        }));
    }
    println!("Created agency {agency} in {}", home.root().display());
    println!("  signing key fingerprint: {fingerprint}");
    println!("  spoken: {}", fingerprint.spoken());
    println!(
        "Next: send {} to your federation's steward,",
        home.membership_path().display()
    );
    println!("and confirm the fingerprint above with them by phone.");
    Ok(ExitCode::SUCCESS)
}

/// A membership request certifying the current transport and encryption keys, and, until
/// `previous_until`, the transport key the last rotation replaced.
pub(crate) fn membership_request(
    profile: &AgencyProfile,
    secrets: &AgencySecrets,
    now: Timestamp,
    previous_until: Option<Timestamp>,
) -> MembershipRequest {
    let agency = &profile.agency;
    let not_before = Timestamp(now.0.saturating_sub(CERTIFICATE_BACKDATE_SECS));
    let (transport, encryption) =
        certify(agency, secrets, not_before, now.after(DEFAULT_KEY_VALIDITY));
    let previous = previous_until.and_then(|until| {
        liaise_keys::roster::certify_previous_transport(agency, secrets, not_before, until)
    });
    MembershipRequest {
        agency: agency.clone(),
        name: profile.name.clone(),
        kind: profile.kind,
        country: profile.country,
        addresses: profile.addresses.clone(),
        signing_key: secrets.signing.public_key(),
        transport: std::iter::once(transport).chain(previous).collect(),
        encryption: encryption.into_iter().collect(),
    }
}
