//! How the caller tells the format whether a document's claimed signer is trusted.
//!
//! The protocol crate knows no roster: the header names a sender agency and a signing key,
//! and the caller checks both against its roster (the key is that agency's, and was not
//! revoked at the claimed signing time).

use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, SigningPublicKey, Timestamp};

/// Why the roster refused a document's signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerRejected {
    /// The agency is not a member of the federation.
    #[error("not in the roster")]
    NotInRoster,
    /// The agency is not a member, but the key is another member's signing key: the name in
    /// the document is not the one that member signed under (it was altered).
    #[error(
        "not in the roster, yet its signing key is another member's: the signer's name was altered"
    )]
    KeyOfAnotherMember,
    /// The key is not the agency's signing key in the roster.
    #[error("the signing key is not the agency's key in the roster")]
    WrongKey,
    /// The key had been revoked at the time the document claims it was signed.
    #[error("the signing key was revoked at signing time")]
    Revoked,
    /// The agency was revoked, with its key, after the time the document claims it was
    /// signed. That time is the signer's word: a revoked key could backdate a document, so
    /// none it signed is trusted any more.
    #[error(
        "the agency was revoked with its signing key after the claimed signing time, and a \
         revoked key is trusted for no date (it could backdate a document)"
    )]
    RevokedLater,
}

/// Decides whether `agency` signing with `key` at `signed_at` is trusted.
pub trait SignerCheck {
    /// `Ok` if trusted, else why not.
    fn check(
        &self,
        agency: &AgencyId,
        key: &SigningPublicKey,
        signed_at: Timestamp,
    ) -> Result<(), SignerRejected>;
}

impl<F> SignerCheck for F
where
    F: Fn(&AgencyId, &SigningPublicKey, Timestamp) -> Result<(), SignerRejected>,
{
    fn check(
        &self,
        agency: &AgencyId,
        key: &SigningPublicKey,
        signed_at: Timestamp,
    ) -> Result<(), SignerRejected> {
        self(agency, key, signed_at)
    }
}

/// Trusts exactly one agency with exactly one key (for tests and single-sender tools).
#[derive(Debug, Clone)]
pub struct TrustedSigner {
    /// The trusted agency.
    pub agency: AgencyId,
    /// Its signing key.
    pub key: SigningPublicKey,
}

impl SignerCheck for TrustedSigner {
    fn check(
        &self,
        agency: &AgencyId,
        key: &SigningPublicKey,
        _signed_at: Timestamp,
    ) -> Result<(), SignerRejected> {
        if *agency != self.agency {
            Err(SignerRejected::NotInRoster)
        } else if *key != self.key {
            Err(SignerRejected::WrongKey)
        } else {
            Ok(())
        }
    }
}

/// Trusts a signer if the roster lists the key as the agency's signing key and had not revoked
/// it by the claimed signing time. The one roster check used by the node, the CLI and the
/// evidence verifier.
#[derive(Debug, Clone, Copy)]
pub struct RosterSignerCheck<'a>(pub &'a Roster);

impl SignerCheck for RosterSignerCheck<'_> {
    fn check(
        &self,
        agency: &AgencyId,
        key: &SigningPublicKey,
        signed_at: Timestamp,
    ) -> Result<(), SignerRejected> {
        let Some(member) = self.0.member(agency) else {
            // A revoked agency leaves the members: its key is known by its revocation.
            if let Some(revoked) = self.0.signing_key_revocation(key)
                && revoked.agency.as_ref().is_none_or(|a| a == agency)
            {
                return Err(if revoked.revoked_at <= signed_at {
                    SignerRejected::Revoked
                } else {
                    SignerRejected::RevokedLater
                });
            }
            return Err(match self.0.member_by_signing_key(key) {
                Ok(_) => SignerRejected::KeyOfAnotherMember,
                Err(_) => SignerRejected::NotInRoster,
            });
        };
        if &member.signing_key != key {
            return Err(SignerRejected::WrongKey);
        }
        // Revoked in either role (`roster.md`).
        if let Some(revoked) = self.0.signing_key_revocation(key)
            && revoked.revoked_at <= signed_at
        {
            return Err(SignerRejected::Revoked);
        }
        Ok(())
    }
}
