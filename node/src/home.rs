//! An agency's home directory: its profile, encrypted keys, membership request and roster.
//!
//! ```text
//! HOME/agency.toml        public profile (id, name, kind, country, addresses)
//! HOME/keys.liaise-key    all secret keys, encrypted under the passphrase (mode 0600)
//! HOME/membership.toml    the public request a steward needs to add the agency
//! HOME/roster.liaise      the current federation roster, as signed by the stewards
//! HOME/rosters/N.liaise   every roster this node accepted, by serial
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use liaise_keys::keyfile::{self, ExistingFile, KdfParams};
use liaise_keys::roster::{MAX_ROSTER_LEN, Roster};
use liaise_keys::{AgencyId, AgencyKind, AgencySecrets, Country, KemAlgorithm, Timestamp};
use serde::{Deserialize, Serialize};

use crate::fsutil::{create_private_dir, read_limited, write_atomic};
use crate::passphrase::PassphraseSource;

/// The environment variable that names the home directory when `--home` is absent.
pub const HOME_ENV: &str = "LIAISE_HOME";

/// The public profile of the agency this home belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyProfile {
    /// The agency id.
    pub agency: AgencyId,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: AgencyKind,
    /// Country.
    pub country: Country,
    /// Where this node listens, `host:port`.
    pub addresses: Vec<String>,
    /// KEM for new encryption keys.
    pub kem: KemAlgorithm,
}

/// An agency's home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home at `root` (which may not exist yet).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `HOME/agency.toml`.
    pub fn profile_path(&self) -> PathBuf {
        self.root.join("agency.toml")
    }

    /// `HOME/keys.liaise-key`.
    pub fn key_file_path(&self) -> PathBuf {
        self.root.join("keys.liaise-key")
    }

    /// `HOME/membership.toml`.
    pub fn membership_path(&self) -> PathBuf {
        self.root.join("membership.toml")
    }

    /// `HOME/roster.liaise`.
    pub fn roster_path(&self) -> PathBuf {
        self.root.join("roster.liaise")
    }

    /// Creates the directory, refusing one that already holds an agency.
    pub fn create(&self) -> Result<()> {
        if self.profile_path().exists() {
            bail!(
                "{} already holds an agency; choose another --home, or use `liaise keys rotate`",
                self.root.display()
            );
        }
        if self.key_file_path().exists() {
            bail!(
                "{} holds a key file but no agency.toml (an interrupted `liaise init`?); \
                 if no document was ever sent with it, remove {} and run init again",
                self.root.display(),
                self.key_file_path().display()
            );
        }
        create_private_dir(&self.root)
    }

    /// Reads the profile; the error says to run `liaise init` if there is none.
    pub fn profile(&self) -> Result<AgencyProfile> {
        let path = self.profile_path();
        if !path.exists() {
            bail!(
                "{} is not a Liaise home (no agency.toml); run `liaise init --home {}` first",
                self.root.display(),
                self.root.display()
            );
        }
        let text = String::from_utf8(read_limited(&path, 64 * 1024, "profile")?)
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is malformed", path.display()))
    }

    /// Writes the profile.
    pub fn write_profile(&self, profile: &AgencyProfile) -> Result<()> {
        let text = toml::to_string(profile).context("cannot encode the profile")?;
        write_atomic(&self.profile_path(), text.as_bytes(), 0o644)
    }

    /// Decrypts the secret keys with the passphrase.
    pub fn unlock(&self, passphrase: &PassphraseSource) -> Result<AgencySecrets> {
        let path = self.key_file_path();
        if !path.exists() {
            bail!("no key file at {}; run `liaise init` first", path.display());
        }
        let pass = passphrase.unlock(&format!("the keys in {}", self.root.display()))?;
        self.unlock_with(&pass)
    }

    /// Decrypts the secret keys with a passphrase already obtained.
    pub fn unlock_with(&self, pass: &keyfile::Passphrase) -> Result<AgencySecrets> {
        let path = self.key_file_path();
        let bytes = keyfile::read_key_file(&path, pass)
            .with_context(|| format!("cannot open key file {}", path.display()))?;
        AgencySecrets::from_bytes(&bytes)
            .with_context(|| format!("cannot use key file {}", path.display()))
    }

    /// Encrypts and writes the secret keys.
    pub fn store_secrets(
        &self,
        secrets: &AgencySecrets,
        passphrase: &keyfile::Passphrase,
        existing: ExistingFile,
    ) -> Result<()> {
        let path = self.key_file_path();
        keyfile::write_key_file(
            &path,
            &secrets.to_bytes(),
            passphrase,
            KdfParams::DEFAULT,
            existing,
        )
        .with_context(|| format!("cannot write key file {}", path.display()))
    }

    /// The stored roster, checked again (signatures and expiry). `None` if none was imported.
    pub fn roster(&self, now: Timestamp) -> Result<Option<Roster>> {
        let path = self.roster_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_limited(&path, MAX_ROSTER_LEN, "roster")?;
        Roster::load_stored(&bytes, now)
            .map(Some)
            .with_context(|| format!("stored roster {} is not usable", path.display()))
    }

    /// The stored roster, or an error telling the user how to import one.
    pub fn require_roster(&self, now: Timestamp) -> Result<Roster> {
        self.roster(now)?.with_context(|| {
            format!(
                "no roster in {}; run `liaise roster import --home {} ROSTER --federation-fingerprint FP`",
                self.root.display(),
                self.root.display()
            )
        })
    }

    /// The stored roster without the expiry check, for display only.
    pub fn roster_for_display(&self) -> Result<Option<Roster>> {
        let path = self.roster_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_limited(&path, MAX_ROSTER_LEN, "roster")?;
        Roster::load_stored_ignoring_expiry(&bytes)
            .map(Some)
            .with_context(|| format!("stored roster {} is not usable", path.display()))
    }

    /// Stores an accepted roster as current and in the history. The current roster only
    /// moves forward: `roster import` (the CLI) and a running node taking a roster from a peer
    /// both write it, each after checking it against the one it read before. Under an
    /// exclusive lock, the one held now is read again, and a roster older than it is refused:
    /// otherwise the slower of two overlapping writers would put back the older roster, and
    /// after a restart the node would trust a key the newer one revoked.
    pub fn store_roster(&self, roster: &Roster) -> Result<()> {
        let history = self.root.join("rosters");
        create_private_dir(&history)?;
        write_atomic(
            &history.join(format!("{}.liaise", roster.serial())),
            roster.file_bytes(),
            0o644,
        )?;
        let lock_path = self.root.join(ROSTER_LOCK);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        if let Some(held) = self.roster_for_display()?
            && held.serial() > roster.serial()
        {
            bail!(
                "a newer roster (serial {}) was stored meanwhile; roster {} is not taken",
                held.serial(),
                roster.serial()
            );
        }
        write_atomic(&self.roster_path(), roster.file_bytes(), 0o644)
    }
}

/// The file whose lock [`Home::store_roster`] holds while it replaces the current roster.
const ROSTER_LOCK: &str = "roster.lock";

/// Resolves `--home` or `$LIAISE_HOME`.
pub fn resolve(home: Option<PathBuf>) -> Result<Home> {
    home.map(Home::new)
        .with_context(|| format!("no home directory: pass --home HOME or set {HOME_ENV}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_current_roster_never_goes_back_to_an_older_one() {
        let fed = crate::log::signer_keys::tests::readmitted();
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        home.store_roster(&fed.first).unwrap();
        home.store_roster(&fed.current).unwrap();
        // A writer that checked the older one against what it read before (an import racing
        // a roster taken from a peer) comes second: refused, and the newer one stays.
        let err = home.store_roster(&fed.first).unwrap_err().to_string();
        assert!(err.contains("a newer roster"), "{err}");
        let held = home.roster_for_display().unwrap().unwrap();
        assert_eq!(held.serial(), fed.current.serial());
        assert!(fed.first.serial() < fed.current.serial());
        // Storing the same one again is no step back.
        home.store_roster(&fed.current).unwrap();
    }
}
