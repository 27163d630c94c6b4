//! Checks against the roster: who may have signed a document, and whose receipt this is.

use anyhow::{Context, Result};
use liaise_keys::AgencyId;
use liaise_keys::roster::Roster;
use liaise_protocol::wire::{ReceiptBody, SignedReceipt};

/// The roster check for document signers lives in `protocol`, shared with the evidence verifier.
pub use liaise_protocol::RosterSignerCheck;

/// This agency's own entry in `roster`, or why it has none: revoked, or not (yet) a member.
/// `held_by` names who holds the roster in the message (`node`, `home`).
pub fn own_member<'a>(
    roster: &'a Roster,
    agency: &AgencyId,
    held_by: &str,
) -> Result<&'a liaise_keys::roster::Member> {
    roster
        .member(agency)
        .with_context(|| match roster.revocation_of_agency(agency) {
            Some(revoked) => format!(
                "{agency} is revoked in the roster this {held_by} holds (serial {}, since {}); ask \
             your stewards, a rebuilt node joins again with new keys (`liaise init`)",
                roster.serial(),
                revoked.revoked_at
            ),
            None => format!(
                "{agency} is not a member in the roster this {held_by} holds (serial {}); import \
             the roster that admits it (`liaise roster import`)",
                roster.serial()
            ),
        })
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
