//! Which signing key checks a checkpoint or countersignature made before the current roster
//! (`docs/spec/log.md`, "Which key checks a signature"): every signing key the signer held in
//! the node's roster history, unless the current roster revoked it at or before the date the
//! signature carries.

use std::path::Path;

use anyhow::{Context, Result};
use liaise_keys::roster::{MAX_ROSTER_LEN, Roster, SignedRoster};
use liaise_keys::{AgencyId, SigningPublicKey, Timestamp};

use crate::fsutil::read_limited;
use crate::home::Home;

/// The signing keys of every agency in the node's chained roster history.
#[derive(Debug, Clone)]
pub struct SignerKeys {
    /// `(agency, key)`, newest roster first, each pair once.
    keys: Vec<(AgencyId, SigningPublicKey)>,
    /// The current roster: the authority on revocations.
    current: Roster,
}

/// Why no key of the key history accepts a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerProblem {
    /// The agency is in no roster of the history.
    NotInRoster,
    /// No key the agency held, and that was not revoked at the signature's date, verifies it.
    DoesNotVerify,
}

impl SignerKeys {
    /// The key history of `home`: `current` and the stored rosters in `HOME/rosters/` that
    /// chain to it. A stored roster that cannot be read is left out; the walk then checks the
    /// next older one against the newer one it reached.
    pub fn load(home: &Home, current: &Roster) -> Result<Self> {
        let dir = home.root().join("rosters");
        let mut stored = Vec::new();
        if dir.exists() {
            let listing = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot list {}", dir.display()))?;
            for item in listing {
                let path = item
                    .with_context(|| format!("cannot list {}", dir.display()))?
                    .path();
                if let Some(roster) = stored_roster(&path) {
                    stored.push(roster);
                }
            }
        }
        Ok(Self::from_history(current, stored))
    }

    /// The key history from `current` and older rosters in any order (pure).
    pub fn from_history(current: &Roster, mut older: Vec<Roster>) -> Self {
        older.retain(|r| r.serial() < current.serial());
        older.sort_by_key(|r| std::cmp::Reverse(r.serial()));
        let mut keys: Vec<(AgencyId, SigningPublicKey)> = Vec::new();
        let mut add = |roster: &Roster| {
            for member in &roster.body().members {
                let pair = (member.id.clone(), member.signing_key);
                if !keys.contains(&pair) {
                    keys.push(pair);
                }
            }
        };
        add(current);
        let mut newer = current.clone();
        for roster in older {
            // The serial order was established by the sort; a tie means two files claim the
            // same serial, and only one of them can chain.
            if roster.serial() >= newer.serial() || !chains(&newer, &roster) {
                break;
            }
            add(&roster);
            newer = roster;
        }
        Self {
            keys,
            current: current.clone(),
        }
    }

    /// Runs `check` with each key `agency` held that is not revoked at `time`, newest first,
    /// and returns the first success.
    pub fn verify<T, E>(
        &self,
        agency: &AgencyId,
        time: Timestamp,
        check: impl Fn(&SigningPublicKey) -> Result<T, E>,
    ) -> Result<T, SignerProblem> {
        let mut held = self.keys.iter().filter(|(id, _)| id == agency).peekable();
        if held.peek().is_none() {
            return Err(SignerProblem::NotInRoster);
        }
        held.filter(|(_, key)| !self.revoked_at(key, time))
            .find_map(|(_, key)| check(key).ok())
            .ok_or(SignerProblem::DoesNotVerify)
    }

    fn revoked_at(&self, key: &SigningPublicKey, time: Timestamp) -> bool {
        // Revoked in either role (`roster.md`): as a signing or as a transport key.
        self.current
            .signing_key_revocation(key)
            .is_some_and(|r| r.revoked_at <= time)
    }
}

/// True if `newer` carries the threshold of `older`'s stewards and a higher serial: what
/// `Roster::accept_update` required when the node moved from `older` to `newer`.
fn chains(newer: &Roster, older: &Roster) -> bool {
    newer.serial() > older.serial()
        && SignedRoster::parse(newer.file_bytes())
            .is_ok_and(|s| s.check_threshold(&older.body().stewards, "held").is_ok())
}

fn stored_roster(path: &Path) -> Option<Roster> {
    if path.extension().and_then(|e| e.to_str()) != Some("liaise") {
        return None;
    }
    let bytes = read_limited(path, MAX_ROSTER_LEN, "roster").ok()?;
    Roster::load_stored_ignoring_expiry(&bytes).ok()
}

#[cfg(test)]
#[path = "signer_keys_tests.rs"]
pub(crate) mod tests;
