//! The cheap first look at a roster update, before the full parse.
//!
//! A full [`SignedRoster::parse`](super::SignedRoster::parse) of an 8 MiB roster decodes and
//! validates every key and verifies every certificate: up to a second of CPU. Any member can
//! push a roster to a node (`wire.md`, "Hello and roster gossip"), so before that work a node
//! checks, with at most one signature verification per steward of the roster it *holds*,
//! that the push can possibly pass:
//!
//! 1. magic, version and the outer structure decode, with the signatures kept as raw bytes
//!    (no point decompression);
//! 2. at most [`MAX_ROSTER_SIGNATURES`] signatures (the full check's bound: duplicates and
//!    outsiders' signatures are allowed, and only held stewards' are verified here);
//! 3. at least the held threshold of distinct held steward keys claim a signature, and the
//!    body's leading `serial` is higher than the held one (a replayed roster costs nothing);
//! 4. the claimed held stewards' signatures verify, one by one, stopping as soon as the held
//!    threshold is met; the first that does not verify refuses the roster (a roster with a
//!    broken signature is refused anyway, `roster.md` check 2);
//! 5. the body decodes, within its list limits, with a higher serial than the held one (last:
//!    decoding validates every key in it, which only a roster the stewards signed is worth).
//!
//! Passing says nothing more: the caller then runs the full
//! [`Roster::accept_update`](super::Roster::accept_update).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::signing::{Signature, SignatureDomain};

use super::error::RosterError;
use super::limits::*;
use super::model::{RosterBody, StewardSet};
use super::signed::read_envelope;

/// A steward signature as it is encoded, before its key is validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawStewardSignature {
    key: [u8; 32],
    signature: Signature,
}

/// Checks that `file` could be an update of a roster with steward set `held` and serial
/// `held_serial`, at the cost of at most `held.threshold` signature verifications.
pub fn precheck_update(
    held: &StewardSet,
    held_serial: u64,
    file: &[u8],
) -> Result<(), RosterError> {
    // The full check's own bound on signatures (in `read_envelope`): it accepts duplicates
    // and outsiders' signatures up to it, so a tighter one here would refuse rosters it
    // accepts. Only held stewards' signatures are verified below, at most the held threshold
    // of them, so the count costs nothing more.
    let (body_bytes, signatures): (Vec<u8>, Vec<RawStewardSignature>) = read_envelope(file)?;
    let held_keys: BTreeMap<[u8; 32], _> = held.keys.iter().map(|k| (k.to_bytes(), k)).collect();
    let threshold = usize::from(held.threshold);
    let claimed: BTreeSet<[u8; 32]> = signatures
        .iter()
        .map(|s| s.key)
        .filter(|k| held_keys.contains_key(k))
        .collect();
    if claimed.len() < threshold {
        return Err(RosterError::UnderThreshold {
            valid: claimed.len(),
            threshold: held.threshold,
            which: "current",
        });
    }
    // The serial, from the body's leading fields: a replayed genuine roster (older, or the
    // one held) is refused before its signatures are checked or its keys decoded.
    let (_federation, serial): (String, u64) = codec::decode_prefix("roster body", &body_bytes)?;
    if serial <= held_serial {
        return Err(RosterError::Rollback {
            offered: serial,
            held: held_serial,
        });
    }
    let mut counted = BTreeSet::new();
    for sig in &signatures {
        if counted.len() >= threshold {
            break;
        }
        let Some(key) = held_keys.get(&sig.key) else {
            continue;
        };
        if counted.contains(&sig.key) {
            continue;
        }
        key.verify(SignatureDomain::Roster, &body_bytes, &sig.signature)
            .map_err(|_| RosterError::BrokenSignature {
                key: key.fingerprint(),
            })?;
        counted.insert(sig.key);
    }
    // Decoding the body validates every key in it (point decompression for each): only for a
    // roster the held stewards did sign.
    let body: RosterBody = codec::decode("roster body", &body_bytes, MAX_ROSTER_LEN)?;
    super::validate::check_limits(&body)?;
    if body.serial <= held_serial {
        return Err(RosterError::Rollback {
            offered: body.serial,
            held: held_serial,
        });
    }
    Ok(())
}
