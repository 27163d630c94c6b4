//! A roster file named on the command line (`verify --roster`, `evidence verify --roster`):
//! the trust anchor of a check made with no node.
//!
//! Its stewards' signatures prove only that the file is whole and self-consistent. Anyone can
//! start a federation of their own whose roster lists a real agency's name under a key they
//! hold, and sign documents "as" that agency. What tells the real federation from such a copy
//! is the fingerprint of its steward set, read out of band (as for `roster import`). So such a
//! check always names the federation's fingerprint, pins it when given
//! `--federation-fingerprint`, and says so when it was not pinned.

use std::path::Path;

use anyhow::{Context, Result, bail};
use liaise_keys::Fingerprint;
use liaise_keys::roster::{MAX_ROSTER_LEN, Roster};

use crate::fsutil::read_limited;

/// A roster to check against, and whether its federation was pinned.
#[derive(Debug)]
pub struct CheckedRoster {
    pub roster: Roster,
    /// The federation fingerprint was given and matched, or the roster is the one a node
    /// imported (pinned then).
    pub pinned: bool,
}

/// Loads the roster file at `path`, expired or not (courts check documents years later; its
/// signatures and rules are checked all the same), and checks it belongs to the federation
/// `pin` names, if given.
pub fn load(path: &Path, pin: Option<&str>) -> Result<CheckedRoster> {
    let bytes = read_limited(path, MAX_ROSTER_LEN, "roster")?;
    let roster = Roster::load_stored_ignoring_expiry(&bytes)
        .with_context(|| format!("roster {} is not usable", path.display()))?;
    let pinned = match pin {
        Some(pin) => {
            check_pin(&roster, pin, &path.display().to_string())?;
            true
        }
        None => false,
    };
    Ok(CheckedRoster { roster, pinned })
}

/// Checks that `roster` (from `source`) belongs to the federation whose fingerprint is `pin`.
pub fn check_pin(roster: &Roster, pin: &str, source: &str) -> Result<()> {
    if !Fingerprint::is_text(pin) {
        bail!(
            "--federation-fingerprint `{}` is not a fingerprint: give SHA256:... or the spoken \
             digit groups, as your federation's steward reads them out",
            pin.chars().take(80).collect::<String>()
        );
    }
    let found = roster.federation_fingerprint();
    if !found.matches_text(pin) {
        bail!(
            "roster {source} is of federation {found} (\"{}\"), not the one \
             --federation-fingerprint names: it is not your federation's roster, and proves nothing",
            roster.body().federation
        );
    }
    Ok(())
}

/// The line printed under a verdict made against a roster file that was not pinned.
pub fn unpinned_note(roster: &Roster) -> String {
    format!(
        "note: the roster was not pinned: its signatures prove only that it is whole. Check that \
         {} is your federation's fingerprint, or pass --federation-fingerprint FP",
        roster.federation_fingerprint()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::signer_keys::tests::{CITY, Stewards, identity, roster};

    #[test]
    fn a_roster_of_another_federation_is_refused_when_pinned() {
        let city = identity(CITY);
        let (ours, theirs) = (Stewards::generate(), Stewards::generate());
        let real = roster(1, &ours, &ours.quorum(), &[&city], vec![]);
        // A copy made by someone else: the same agency name, their own stewards.
        let forged = roster(1, &theirs, &theirs.quorum(), &[&city], vec![]);
        let pin = real.federation_fingerprint();
        check_pin(&real, &pin.to_string(), "r").unwrap();
        check_pin(&real, &pin.spoken(), "r").unwrap();
        let err = check_pin(&forged, &pin.to_string(), "forged.liaise")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not your federation's roster"), "{err}");
        let err = check_pin(&real, "not a fingerprint", "r")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a fingerprint"), "{err}");
    }
}
