//! Checks against the roster: who may have signed a document, and whose receipt this is.

use anyhow::{Context, Result};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, SigningPublicKey, Timestamp};
use liaise_protocol::wire::{ReceiptBody, SignedReceipt};
use liaise_protocol::{SignerCheck, SignerRejected};

/// Trusts a document signer if the roster lists the key as the agency's signing key and the
/// key was not revoked at (or before) the claimed signing time.
#[derive(Debug, Clone, Copy)]
pub struct RosterSignerCheck<'a>(pub &'a Roster);

impl SignerCheck for RosterSignerCheck<'_> {
    fn check(
        &self,
        agency: &AgencyId,
        key: &SigningPublicKey,
        signed_at: Timestamp,
    ) -> Result<(), SignerRejected> {
        let member = self.0.member(agency).ok_or(SignerRejected::NotInRoster)?;
        if &member.signing_key != key {
            return Err(SignerRejected::WrongKey);
        }
        if let Some(revoked) = self.0.revocation(&key.fingerprint())
            && revoked.revoked_at <= signed_at
        {
            return Err(SignerRejected::Revoked);
        }
        Ok(())
    }
}

/// Verifies a receipt for exactly this delivery against the recipient's signing key in
/// the roster.
pub fn verify_receipt(
    roster: &Roster,
    receipt: &[u8],
    document_id: &[u8; 16],
    content_hash: &[u8; 32],
    sealed_len: u64,
    sender: &AgencyId,
    recipient: &AgencyId,
) -> Result<ReceiptBody> {
    let member = roster
        .member(recipient)
        .with_context(|| format!("{recipient} is not in the roster"))?;
    let signed = SignedReceipt::from_bytes(receipt)?;
    Ok(signed.verify_for(
        &member.signing_key,
        document_id,
        content_hash,
        sealed_len,
        sender,
        recipient,
    )?)
}
