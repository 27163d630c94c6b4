//! The roster file: magic, version, the exact signed body bytes, and steward signatures.
//!
//! ```text
//! roster-file = "liaise-roster" 0x00 version(1 byte = 0x01) postcard(body-bytes, signatures)
//! ```
//! Signatures cover `SignatureDomain::Roster`'s tag followed by the body bytes as they appear
//! in the file; nothing is re-encoded to be verified.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::signing::{SignatureDomain, SigningSecretKey};
use crate::time::Timestamp;

use super::error::RosterError;
use super::limits::*;
use super::model::{RosterBody, StewardSet, StewardSignature};

/// The first bytes of every roster file.
pub const ROSTER_MAGIC: &[u8] = b"liaise-roster\0";
/// The roster format version this build writes and reads.
pub const ROSTER_VERSION: u8 = 1;

/// A roster file taken apart, not yet checked.
#[derive(Debug, Clone)]
pub struct SignedRoster {
    /// The exact signed bytes.
    pub body_bytes: Vec<u8>,
    /// The decoded body.
    pub body: RosterBody,
    /// The stewards' signatures.
    pub signatures: Vec<StewardSignature>,
}

impl SignedRoster {
    /// Encodes and signs a body with the given steward keys.
    pub fn sign(body: &RosterBody, stewards: &[&SigningSecretKey]) -> Self {
        let body_bytes = codec::encode(body);
        let signatures = stewards
            .iter()
            .map(|k| StewardSignature {
                key: k.public_key(),
                signature: k.sign(SignatureDomain::Roster, &body_bytes),
            })
            .collect();
        Self {
            body_bytes,
            body: body.clone(),
            signatures,
        }
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = ROSTER_MAGIC.to_vec();
        out.push(ROSTER_VERSION);
        out.extend(codec::encode(&(&self.body_bytes, &self.signatures)));
        out
    }

    /// Parses a roster file completely (magic, version, structure, limits), without checking
    /// any signature.
    pub fn parse(file: &[u8]) -> Result<Self, RosterError> {
        let (body_bytes, signatures): (Vec<u8>, Vec<StewardSignature>) = read_envelope(file)?;
        // Full recognition first: a garbled body is a decoding error, never a signature error.
        let body: RosterBody = codec::decode("roster body", &body_bytes, MAX_ROSTER_LEN)?;
        super::validate::check_limits(&body)?;
        // Every attached signature must verify, whoever made it: a roster carrying a broken
        // signature has been altered, even if enough other signatures remain.
        for sig in &signatures {
            sig.key
                .verify(SignatureDomain::Roster, &body_bytes, &sig.signature)
                .map_err(|_| RosterError::BrokenSignature {
                    key: sig.key.fingerprint(),
                })?;
        }
        super::validate::check_body(&body)?;
        Ok(Self {
            body_bytes,
            body,
            signatures,
        })
    }

    /// How many distinct keys of `set` made a valid signature. Each key counts once however
    /// many signatures it made; signatures by other keys count for nothing.
    pub fn valid_signers(&self, set: &StewardSet) -> usize {
        let members: HashMap<[u8; 32], _> = set.keys.iter().map(|k| (k.to_bytes(), k)).collect();
        let mut counted = BTreeSet::new();
        for sig in &self.signatures {
            let id = sig.key.to_bytes();
            if counted.contains(&id) {
                continue;
            }
            // `parse` has verified every attached signature; `sign` made them. Verify again
            // anyway when the value was built by hand (tests), it is cheap next to I/O.
            if let Some(key) = members.get(&id)
                && key
                    .verify(SignatureDomain::Roster, &self.body_bytes, &sig.signature)
                    .is_ok()
            {
                counted.insert(id);
            }
        }
        counted.len()
    }

    /// Checks that `set`'s threshold is met.
    pub fn check_threshold(
        &self,
        set: &StewardSet,
        which: &'static str,
    ) -> Result<(), RosterError> {
        let valid = self.valid_signers(set);
        if valid < usize::from(set.threshold) {
            return Err(RosterError::UnderThreshold {
                valid,
                threshold: set.threshold,
                which,
            });
        }
        Ok(())
    }

    /// Checks freshness at `now`: not expired, not issued in the future.
    pub fn check_time(&self, now: Timestamp) -> Result<(), RosterError> {
        if now >= self.body.expires_at {
            return Err(RosterError::Expired {
                serial: self.body.serial,
                expires_at: self.body.expires_at,
            });
        }
        if self.body.issued_at.0 > now.0.saturating_add(CLOCK_TOLERANCE_SECS) {
            return Err(RosterError::IssuedInFuture {
                issued_at: self.body.issued_at,
            });
        }
        Ok(())
    }
}

/// A roster file's envelope: magic, version and size checked, then the body bytes and the
/// signatures (as `S`: validated keys for the full parse, raw bytes for the pre-check), at
/// most [`MAX_ROSTER_SIGNATURES`] of them.
///
/// The size limit is this version's: a later version may allow larger rosters, so a file of
/// another version is reported as unsupported (upgrade), never as too large. Looking at the
/// first bytes of an oversized file costs nothing.
pub(super) fn read_envelope<S: DeserializeOwned + Serialize>(
    file: &[u8],
) -> Result<(Vec<u8>, Vec<S>), RosterError> {
    let rest = file
        .strip_prefix(ROSTER_MAGIC)
        .ok_or(RosterError::NotARoster)?;
    let (&version, rest) = rest.split_first().ok_or(RosterError::NotARoster)?;
    if version != ROSTER_VERSION {
        return Err(RosterError::UnsupportedVersion { version });
    }
    if file.len() > MAX_ROSTER_LEN {
        return Err(RosterError::TooMany {
            what: "bytes",
            len: file.len(),
            max: MAX_ROSTER_LEN,
        });
    }
    let (body_bytes, signatures): (Vec<u8>, Vec<S>) =
        codec::decode("roster", rest, MAX_ROSTER_LEN)?;
    if signatures.len() > MAX_ROSTER_SIGNATURES {
        return Err(RosterError::TooMany {
            what: "signatures",
            len: signatures.len(),
            max: MAX_ROSTER_SIGNATURES,
        });
    }
    Ok((body_bytes, signatures))
}
