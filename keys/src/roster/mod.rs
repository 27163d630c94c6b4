//! The federation roster: the only source of who is who.
//!
//! A roster is signed by a threshold k-of-n of steward keys. A node accepts a new roster only
//! if the threshold signs it, its serial is higher than the one it holds (rollback refused), it
//! has not expired (freeze detected), and no two members share a key (key substitution
//! refused). Replacing steward keys needs the old and the new threshold. The first roster a
//! node imports is pinned by the fingerprint of its steward set, read out of band.
//! `docs/spec/roster.md` is the specification.

mod error;
mod limits;
mod membership;
mod model;
mod precheck;
mod signed;
mod validate;

pub use error::RosterError;
pub use limits::*;
pub use membership::{
    MAX_MEMBERSHIP_FILE_LEN, MembershipError, MembershipRequest, TRANSPORT_KEY_OVERLAP, certify,
    certify_previous_transport,
};
pub use model::{
    Group, Member, RevokedKey, RosterBody, StewardSet, StewardSignature, ed25519_fingerprints,
};
pub use precheck::precheck_update;
pub use signed::{ROSTER_MAGIC, ROSTER_VERSION, SignedRoster};
pub use validate::{GROUP_NAME_RULE, key_fingerprint, valid_group_name, validate_address};

use crate::agency::AgencyId;
use crate::fingerprint::Fingerprint;
use crate::signing::SigningPublicKey;
use crate::time::Timestamp;
use crate::transport::TransportPublicKey;

/// A roster that passed every check. Only [`Roster::accept_first`] and
/// [`Roster::accept_update`] make one.
#[derive(Debug, Clone)]
pub struct Roster {
    signed: SignedRoster,
    file: Vec<u8>,
}

/// Why a key could not be resolved to a member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No member holds the key.
    #[error("key {0} belongs to no member of the federation")]
    Unknown(Fingerprint),
    /// The key was revoked.
    #[error("key {fingerprint} of {agency} was revoked at {revoked_at}")]
    Revoked {
        /// The key's fingerprint as revoked: for an Ed25519 key revoked in its other role,
        /// that role's fingerprint.
        fingerprint: Fingerprint,
        /// Its agency, or `unknown agency`.
        agency: String,
        /// When.
        revoked_at: Timestamp,
    },
}

/// A revocation is for good: an update must keep every key the held roster revoked, revoked
/// from the same time or earlier. Otherwise a threshold of stewards (or of their stolen keys)
/// could quietly trust a compromised key again.
fn check_revocations_kept(held: &[RevokedKey], offered: &[RevokedKey]) -> Result<(), RosterError> {
    // A key revoked twice counts from its earlier revocation.
    let mut earliest: std::collections::BTreeMap<Fingerprint, Timestamp> = Default::default();
    for r in offered {
        let at = earliest.entry(r.fingerprint).or_insert(r.revoked_at);
        *at = (*at).min(r.revoked_at);
    }
    let offered = earliest;
    match held.iter().find(|r| {
        offered
            .get(&r.fingerprint)
            .is_none_or(|at| *at > r.revoked_at)
    }) {
        Some(dropped) => Err(RosterError::RevocationDropped {
            fingerprint: dropped.fingerprint,
        }),
        None => Ok(()),
    }
}

impl Roster {
    /// Accepts the first roster of a federation, pinned by the fingerprint a steward read
    /// out (either `SHA256:...` or the spoken digit groups).
    pub fn accept_first(file: &[u8], pinned: &str, now: Timestamp) -> Result<Self, RosterError> {
        if !Fingerprint::is_text(pinned) {
            return Err(RosterError::NotAFingerprint {
                given: pinned.chars().take(80).collect(),
            });
        }
        let signed = SignedRoster::parse(file)?;
        let found = signed.body.stewards.fingerprint();
        if !found.matches_text(pinned) {
            return Err(RosterError::WrongFederation {
                expected: pinned.chars().take(80).collect(),
            });
        }
        signed.check_threshold(&signed.body.stewards, "new")?;
        signed.check_time(now)?;
        Ok(Self {
            signed,
            file: file.to_vec(),
        })
    }

    /// Accepts a roster that replaces `self`: the held stewards' threshold and the new
    /// roster's own threshold must both be met, and the serial must increase. The cheap
    /// [`Self::precheck_update`] runs first, so a roster that cannot pass costs at most the
    /// held threshold's signature checks, never a full parse.
    pub fn accept_update(&self, file: &[u8], now: Timestamp) -> Result<Self, RosterError> {
        self.precheck_update(file)?;
        let signed = SignedRoster::parse(file)?;
        signed.check_threshold(&self.signed.body.stewards, "current")?;
        signed.check_threshold(&signed.body.stewards, "new")?;
        if signed.body.serial <= self.signed.body.serial {
            return Err(RosterError::Rollback {
                offered: signed.body.serial,
                held: self.signed.body.serial,
            });
        }
        check_revocations_kept(&self.signed.body.revoked, &signed.body.revoked)?;
        signed.check_time(now)?;
        Ok(Self {
            signed,
            file: file.to_vec(),
        })
    }

    /// Whether `file` can possibly be accepted by [`Self::accept_update`], checked cheaply:
    /// structure, signature count, a higher serial, and the held stewards' threshold (at most
    /// that many signature checks). See [`precheck_update`].
    pub fn precheck_update(&self, file: &[u8]) -> Result<(), RosterError> {
        precheck_update(&self.signed.body.stewards, self.signed.body.serial, file)
    }

    /// Re-checks a roster this node stored earlier (its own state), including expiry.
    pub fn load_stored(file: &[u8], now: Timestamp) -> Result<Self, RosterError> {
        let signed = SignedRoster::parse(file)?;
        signed.check_threshold(&signed.body.stewards, "new")?;
        signed.check_time(now)?;
        Ok(Self {
            signed,
            file: file.to_vec(),
        })
    }

    /// Like [`Self::load_stored`] but without the expiry check: for showing an expired
    /// roster to a person, never for trusting keys.
    pub fn load_stored_ignoring_expiry(file: &[u8]) -> Result<Self, RosterError> {
        let signed = SignedRoster::parse(file)?;
        signed.check_threshold(&signed.body.stewards, "new")?;
        Ok(Self {
            signed,
            file: file.to_vec(),
        })
    }

    /// The roster's content.
    pub fn body(&self) -> &RosterBody {
        &self.signed.body
    }

    /// The exact file bytes, for storing and passing on.
    pub fn file_bytes(&self) -> &[u8] {
        &self.file
    }

    /// The serial number.
    pub fn serial(&self) -> u64 {
        self.signed.body.serial
    }

    /// The federation fingerprint (of the steward set).
    pub fn federation_fingerprint(&self) -> Fingerprint {
        self.signed.body.stewards.fingerprint()
    }

    /// How many distinct stewards signed.
    pub fn signer_count(&self) -> usize {
        self.signed.valid_signers(&self.signed.body.stewards)
    }

    /// A member by id.
    pub fn member(&self, id: &AgencyId) -> Option<&Member> {
        self.signed.body.members.iter().find(|m| &m.id == id)
    }

    /// A group by name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.signed.body.groups.iter().find(|g| g.name == name)
    }

    /// The revocation entry for exactly this fingerprint, if revoked. An Ed25519 key is
    /// revoked in every role, under either of its fingerprints: for a signing or transport
    /// key use [`Self::signing_key_revocation`] or [`Self::transport_key_revocation`].
    pub fn revocation(&self, fingerprint: &Fingerprint) -> Option<&RevokedKey> {
        self.signed
            .body
            .revoked
            .iter()
            .find(|r| &r.fingerprint == fingerprint)
    }

    /// The revocation of a signing key, whether it was revoked as a signing or as a transport
    /// key (the earliest, if both).
    pub fn signing_key_revocation(&self, key: &SigningPublicKey) -> Option<&RevokedKey> {
        self.ed25519_revocation(&key.to_bytes())
    }

    /// The revocation of a transport key, whether it was revoked as a transport or as a
    /// signing key (the earliest, if both).
    pub fn transport_key_revocation(&self, key: &TransportPublicKey) -> Option<&RevokedKey> {
        self.ed25519_revocation(&key.to_bytes())
    }

    /// The earliest revocation of an Ed25519 key under either of its fingerprints: a key
    /// revoked in one role must not be trusted in the other.
    fn ed25519_revocation(&self, key: &[u8; 32]) -> Option<&RevokedKey> {
        let fingerprints = ed25519_fingerprints(key);
        self.signed
            .body
            .revoked
            .iter()
            .filter(|r| fingerprints.contains(&r.fingerprint))
            .min_by_key(|r| r.revoked_at)
    }

    /// The latest revocation of a key `agency` held, if the roster records one: why an agency
    /// that is not a member any more is not (as opposed to one not admitted yet).
    pub fn revocation_of_agency(&self, agency: &AgencyId) -> Option<&RevokedKey> {
        self.signed
            .body
            .revoked
            .iter()
            .filter(|r| r.agency.as_ref() == Some(agency))
            .max_by_key(|r| r.revoked_at)
    }

    /// The member whose identity key this is; revoked keys are refused with their date.
    pub fn member_by_signing_key(&self, key: &SigningPublicKey) -> Result<&Member, LookupError> {
        let fingerprint = key.fingerprint();
        refuse_revoked(self.signing_key_revocation(key))?;
        self.signed
            .body
            .members
            .iter()
            .find(|m| &m.signing_key == key)
            .ok_or(LookupError::Unknown(fingerprint))
    }

    /// The member whose transport key this is, if its certificate is valid at `now`.
    pub fn member_by_transport_key(
        &self,
        key: &TransportPublicKey,
        now: Timestamp,
    ) -> Result<&Member, LookupError> {
        let fingerprint = key.fingerprint();
        refuse_revoked(self.transport_key_revocation(key))?;
        self.signed
            .body
            .members
            .iter()
            .find(|m| m.valid_transport_keys(now).any(|k| &k == key))
            .ok_or(LookupError::Unknown(fingerprint))
    }
}

/// Refuses a looked-up key that `revocation` says is revoked. The error names the fingerprint
/// as revoked (in the roster's list), which for a key revoked in its other role is not the
/// fingerprint of the role it was looked up in.
fn refuse_revoked(revocation: Option<&RevokedKey>) -> Result<(), LookupError> {
    match revocation {
        Some(r) => Err(LookupError::Revoked {
            fingerprint: r.fingerprint,
            agency: r
                .agency
                .as_ref()
                .map_or_else(|| "unknown agency".to_owned(), ToString::to_string),
            revoked_at: r.revoked_at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod precheck_tests;
#[cfg(test)]
mod tests;
