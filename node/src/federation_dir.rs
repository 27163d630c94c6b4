//! A steward's federation directory: the state from which rosters are published.
//!
//! ```text
//! FED/federation.toml          name, threshold, steward public keys, members, groups, revocations
//! FED/stewards/N.liaise-key    steward signing keys, encrypted under the passphrase
//! FED/stewards-next/...        new steward keys during a steward rotation
//! FED/rosters/N.liaise         every published roster
//! ```
//! In a real federation each steward keeps their key offline on their own machine; keeping
//! them together here is what a single coordinating body (or a demo) does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use liaise_keys::keyfile::{self, ExistingFile, KdfParams, Passphrase};
use liaise_keys::roster::{MembershipRequest, RevokedKey, RosterBody, SignedRoster, StewardSet};
use liaise_keys::{AgencyId, SigningPublicKey, SigningSecretKey};
use serde::{Deserialize, Serialize};

use crate::fsutil::{create_private_dir, read_limited, write_atomic};

/// What `FED/federation.toml` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationState {
    /// The federation's display name.
    pub name: String,
    /// The serial of the last published roster (0 before the first).
    pub last_serial: u64,
    /// The stewards who sign.
    pub stewards: StewardKeys,
    /// A steward rotation under way: the next roster names these and both sets sign it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stewards: Option<StewardKeys>,
    /// Groups: name to member ids.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<AgencyId>>,
    /// Revoked keys.
    #[serde(default)]
    pub revoked: Vec<RevokedKey>,
    /// Accepted membership requests.
    #[serde(default)]
    pub members: Vec<MembershipRequest>,
}

/// A steward set as kept in the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StewardKeys {
    /// k of n.
    pub threshold: u8,
    /// The public keys.
    pub keys: Vec<SigningPublicKey>,
}

impl StewardKeys {
    /// As the roster's type.
    pub fn to_set(&self) -> StewardSet {
        StewardSet {
            threshold: self.threshold,
            keys: self.keys.clone(),
        }
    }
}

/// A federation directory.
#[derive(Debug, Clone)]
pub struct FederationDir {
    root: PathBuf,
}

impl FederationDir {
    /// The directory at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `FED/federation.toml`.
    pub fn state_path(&self) -> PathBuf {
        self.root.join("federation.toml")
    }

    /// Where the published roster with `serial` is kept.
    pub fn roster_path(&self, serial: u64) -> PathBuf {
        self.root.join("rosters").join(format!("{serial}.liaise"))
    }

    /// Reads the state.
    pub fn load(&self) -> Result<FederationState> {
        let path = self.state_path();
        if !path.exists() {
            bail!(
                "{} is not a federation directory; create one with `liaise federation init --dir {}`",
                self.root.display(),
                self.root.display()
            );
        }
        let text = String::from_utf8(read_limited(&path, 64 * 1024 * 1024, "federation state")?)
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        let state: FederationState =
            toml::from_str(&text).with_context(|| format!("{} is malformed", path.display()))?;
        // A rotation whose roster was published but whose key folders were not yet swapped.
        if state.next_stewards.is_none()
            && (self.root.join("stewards-next").exists()
                || self.root.join("stewards-retired").exists())
        {
            self.finish_rotation()?;
        }
        Ok(state)
    }

    /// Writes the state atomically.
    pub fn save(&self, state: &FederationState) -> Result<()> {
        let text = toml::to_string(state).context("cannot encode the federation state")?;
        write_atomic(&self.state_path(), text.as_bytes(), 0o600)
    }

    /// Creates the directory with `count` fresh steward keys.
    pub fn create(
        &self,
        name: &str,
        count: u8,
        threshold: u8,
        passphrase: &Passphrase,
    ) -> Result<FederationState> {
        if self.state_path().exists() {
            bail!("{} already holds a federation", self.root.display());
        }
        let stewards = self.generate_stewards("stewards", count, threshold, passphrase)?;
        let state = FederationState {
            name: name.to_owned(),
            last_serial: 0,
            stewards,
            next_stewards: None,
            groups: BTreeMap::new(),
            revoked: Vec::new(),
            members: Vec::new(),
        };
        self.save(&state)?;
        Ok(state)
    }

    /// Makes `count` steward keys in `FED/<sub>/` and returns their public set.
    pub fn generate_stewards(
        &self,
        sub: &str,
        count: u8,
        threshold: u8,
        passphrase: &Passphrase,
    ) -> Result<StewardKeys> {
        if count == 0 || threshold == 0 || threshold > count {
            bail!("--threshold must be between 1 and --stewards (got {threshold} of {count})");
        }
        if usize::from(count) > liaise_keys::roster::MAX_STEWARDS {
            bail!(
                "at most {} stewards are supported",
                liaise_keys::roster::MAX_STEWARDS
            );
        }
        let dir = self.root.join(sub);
        if dir.exists() {
            bail!("{} already exists", dir.display());
        }
        create_private_dir(&dir)?;
        let mut keys = Vec::new();
        for i in 1..=count {
            let key = SigningSecretKey::generate();
            let path = dir.join(format!("{i}.liaise-key"));
            keyfile::write_key_file(
                &path,
                &*key.to_bytes(),
                passphrase,
                KdfParams::DEFAULT,
                ExistingFile::Refuse,
            )
            .with_context(|| format!("cannot write steward key {}", path.display()))?;
            keys.push(key.public_key());
        }
        Ok(StewardKeys { threshold, keys })
    }

    /// Decrypts every steward key in `FED/<sub>/`. Each key is boxed: a vector that grows or
    /// is joined to another moves its elements bit by bit and frees the old buffer unwiped, so
    /// keys held inline would leave copies behind; a box moves only its pointer, and wipes the
    /// one copy when dropped.
    pub fn unlock_stewards(
        &self,
        sub: &str,
        passphrase: &Passphrase,
    ) -> Result<Vec<Box<SigningSecretKey>>> {
        let dir = self.root.join(sub);
        let mut keys = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list steward keys in {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "liaise-key"))
            .collect();
        entries.sort();
        for path in entries {
            let bytes = keyfile::read_key_file(&path, passphrase)
                .with_context(|| format!("cannot open steward key {}", path.display()))?;
            let array: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(
                bytes
                    .as_slice()
                    .try_into()
                    .with_context(|| format!("{} is not a steward key", path.display()))?,
            );
            keys.push(Box::new(SigningSecretKey::from_bytes(&array)));
        }
        Ok(keys)
    }

    /// Builds, signs and stores the next roster. Returns its bytes and serial.
    pub fn publish(
        &self,
        state: &mut FederationState,
        passphrase: &Passphrase,
        issued_at: liaise_keys::Timestamp,
        valid_for: std::time::Duration,
    ) -> Result<(Vec<u8>, RosterBody)> {
        let mut signers = self.unlock_stewards("stewards", passphrase)?;
        let stewards = match &state.next_stewards {
            Some(next) => {
                signers.extend(self.unlock_stewards("stewards-next", passphrase)?);
                next.to_set()
            }
            None => state.stewards.to_set(),
        };
        let body = RosterBody {
            federation: state.name.clone(),
            serial: state.last_serial.checked_add(1).with_context(|| {
                format!(
                    "federation.toml's last_serial is {}, the largest possible: it was edited; \
                     put back the serial of the roster last published",
                    state.last_serial
                )
            })?,
            issued_at,
            expires_at: issued_at.after(valid_for),
            stewards,
            members: state
                .members
                .iter()
                .map(MembershipRequest::to_member)
                .collect(),
            groups: state
                .groups
                .iter()
                .map(|(name, members)| liaise_keys::roster::Group {
                    name: name.clone(),
                    members: members.clone(),
                })
                .collect(),
            revoked: state.revoked.clone(),
        };
        let refs: Vec<&SigningSecretKey> = signers.iter().map(AsRef::as_ref).collect();
        let file = SignedRoster::sign(&body, &refs).to_bytes();
        // Check what we are about to hand out with the same rules every node applies.
        let signed = SignedRoster::parse(&file).context("the roster would be refused by nodes")?;
        signed
            .check_threshold(&state.stewards.to_set(), "current")
            .and_then(|()| signed.check_threshold(&body.stewards, "new"))
            .context("not enough steward keys in this directory to publish")?;
        create_private_dir(&self.root.join("rosters"))?;
        write_atomic(&self.roster_path(body.serial), &file, 0o644)?;
        // Record the new state first, then swap the key folders: a crash in between leaves a
        // state that `finish_rotation` completes, never one that points at destroyed keys.
        state.last_serial = body.serial;
        let rotated = state.next_stewards.take();
        if let Some(next) = rotated.clone() {
            state.stewards = next;
        }
        self.save(state)?;
        if rotated.is_some() {
            self.finish_rotation()?;
        }
        Ok((file, body))
    }

    /// Moves `stewards-next/` into place and removes the retired keys. Idempotent: safe to
    /// run again after an interruption.
    pub fn finish_rotation(&self) -> Result<()> {
        let current = self.root.join("stewards");
        let next = self.root.join("stewards-next");
        let retired = self.root.join("stewards-retired");
        if next.exists() {
            if current.exists() {
                if retired.exists() {
                    remove_retired_keys(&retired)?;
                }
                std::fs::rename(&current, &retired)
                    .context("cannot retire the old steward keys")?;
            }
            std::fs::rename(&next, &current).context("cannot install the new steward keys")?;
            std::fs::File::open(&self.root)
                .and_then(|d| d.sync_all())
                .context("cannot sync the federation directory")?;
        }
        if retired.exists() {
            remove_retired_keys(&retired)?;
        }
        Ok(())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Removes retired steward key files, overwriting each in place with zeros and syncing first.
/// The files are encrypted under the passphrase anyway; on SSDs and copy-on-write file systems
/// the overwrite is best effort only, so old keys may remain recoverable from the raw device.
/// Only regular files are overwritten: a symbolic link placed there is removed, not written
/// through (it could point at any file the steward may write).
fn remove_retired_keys(dir: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path);
            if let Ok(mut file) = opened {
                let mut left = file.metadata().map(|m| m.len()).unwrap_or(0);
                let zeros = [0u8; 4096];
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    if file.write_all(zeros.get(..n).unwrap_or_default()).is_err() {
                        break;
                    }
                    left -= n as u64;
                }
                let _ = file.sync_all();
            }
        }
        if kind.is_file() || kind.is_symlink() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove retired key {}", path.display()))?;
        }
    }
    std::fs::remove_dir(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retiring_keys_wipes_the_files_and_never_writes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let retired = dir.path().join("stewards-retired");
        std::fs::create_dir(&retired).unwrap();
        std::fs::write(retired.join("steward-1.key"), b"encrypted key").unwrap();
        // A link someone placed among them, to a file the steward may write.
        let elsewhere = dir.path().join("roster.liaise");
        std::fs::write(&elsewhere, b"the published roster").unwrap();
        std::os::unix::fs::symlink(&elsewhere, retired.join("steward-2.key")).unwrap();

        remove_retired_keys(&retired).unwrap();
        assert!(!retired.exists());
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"the published roster");
    }
}
