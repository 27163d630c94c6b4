//! Tests of the cheap roster-update pre-check (`precheck.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::tests::{NOW, federation};
use super::*;
use crate::codec;
use crate::signing::{Signature, SignatureDomain, SigningSecretKey};

/// A roster file with `body` and the given (key, signature) pairs, keys as raw bytes: what an
/// attacker can put on the wire, including keys that are not valid points.
fn file_with(body_bytes: &[u8], signatures: &[([u8; 32], [u8; 64])]) -> Vec<u8> {
    let sigs: Vec<([u8; 32], Signature)> = signatures
        .iter()
        .map(|(k, s)| (*k, Signature(*s)))
        .collect();
    let mut out = ROSTER_MAGIC.to_vec();
    out.push(ROSTER_VERSION);
    out.extend(codec::encode(&(body_bytes, &sigs)));
    out
}

fn sig(key: &SigningSecretKey, body_bytes: &[u8]) -> ([u8; 32], [u8; 64]) {
    (
        key.public_key().to_bytes(),
        key.sign(SignatureDomain::Roster, body_bytes).0,
    )
}

#[test]
fn a_genuine_update_passes_and_is_accepted() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();
    let next = fed.publish(&fed.body(2), &[1, 2]);
    held.precheck_update(&next).unwrap();
    assert_eq!(held.accept_update(&next, NOW).unwrap().serial(), 2);
}

#[test]
fn outsider_signatures_are_refused_before_any_is_checked() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();
    let body_bytes = codec::encode(&fed.body(2));
    // Self-made "stewards" whose signatures do not even verify: the full parse would report a
    // broken signature after decoding everything; the pre-check never looks at them.
    let outsiders: Vec<([u8; 32], [u8; 64])> = (0..3)
        .map(|_| {
            (
                SigningSecretKey::generate().public_key().to_bytes(),
                [7; 64],
            )
        })
        .collect();
    let file = file_with(&body_bytes, &outsiders);
    assert!(matches!(
        SignedRoster::parse(&file),
        Err(RosterError::BrokenSignature { .. })
    ));
    let expected = RosterError::UnderThreshold {
        valid: 0,
        threshold: 2,
        which: "current",
    };
    assert_eq!(held.precheck_update(&file).unwrap_err(), expected);
    assert_eq!(held.accept_update(&file, NOW).unwrap_err(), expected);
    // One held steward is not the threshold of two.
    let mut one = outsiders.clone();
    one.push(sig(&fed.stewards[0], &body_bytes));
    assert!(matches!(
        held.precheck_update(&file_with(&body_bytes, &one)),
        Err(RosterError::UnderThreshold { valid: 1, .. })
    ));
}

#[test]
fn signatures_up_to_the_full_checks_bound_pass_and_one_more_is_refused() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();
    let body_bytes = codec::encode(&fed.body(2));
    // Duplicates count toward the bound but are allowed, as the full check allows them.
    let mut sigs = vec![
        sig(&fed.stewards[0], &body_bytes),
        sig(&fed.stewards[1], &body_bytes),
    ];
    sigs.resize(MAX_ROSTER_SIGNATURES, sig(&fed.stewards[2], &body_bytes));
    let file = file_with(&body_bytes, &sigs);
    held.precheck_update(&file).unwrap();
    held.accept_update(&file, NOW).unwrap();
    sigs.push(sig(&fed.stewards[2], &body_bytes));
    assert_eq!(
        held.precheck_update(&file_with(&body_bytes, &sigs))
            .unwrap_err(),
        RosterError::TooMany {
            what: "signatures",
            len: MAX_ROSTER_SIGNATURES + 1,
            max: MAX_ROSTER_SIGNATURES
        }
    );
    // A flood of garbage "signatures" (invalid points, never decompressed) is refused by count.
    let flood = vec![([0xff; 32], [0; 64]); 80_000];
    assert!(matches!(
        held.accept_update(&file_with(&body_bytes, &flood), NOW),
        Err(RosterError::TooMany {
            what: "signatures",
            ..
        })
    ));
}

#[test]
fn a_broken_held_steward_signature_is_refused_and_checking_stops_at_the_threshold() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();
    let body_bytes = codec::encode(&fed.body(2));
    let broken = (fed.stewards[2].public_key().to_bytes(), [9; 64]);
    // The broken one comes first: refused at once.
    let first = vec![
        broken,
        sig(&fed.stewards[0], &body_bytes),
        sig(&fed.stewards[1], &body_bytes),
    ];
    assert!(matches!(
        held.precheck_update(&file_with(&body_bytes, &first)),
        Err(RosterError::BrokenSignature { .. })
    ));
    // After the threshold is met the pre-check looks no further; the full check still refuses.
    let last = vec![
        sig(&fed.stewards[0], &body_bytes),
        sig(&fed.stewards[1], &body_bytes),
        broken,
    ];
    let file = file_with(&body_bytes, &last);
    held.precheck_update(&file).unwrap();
    assert!(matches!(
        held.accept_update(&file, NOW),
        Err(RosterError::BrokenSignature { .. })
    ));
}

#[test]
fn forged_claims_are_refused_before_the_body_is_decoded_and_old_serials_after() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(5), &[0, 1]), &fed.pin(), NOW).unwrap();
    // Claimed by the held stewards but not verifying: refused on the first signature, whose
    // check costs less than decoding (and validating every key of) the body.
    let body_bytes = codec::encode(&fed.body(6));
    let claims = vec![
        (fed.stewards[0].public_key().to_bytes(), [1; 64]),
        (fed.stewards[1].public_key().to_bytes(), [1; 64]),
    ];
    assert!(matches!(
        held.precheck_update(&file_with(&body_bytes, &claims)),
        Err(RosterError::BrokenSignature { .. })
    ));
    // An older or equal serial is refused from the body's leading fields, before any
    // signature is checked (these claims would not verify) or any key decoded.
    for serial in [4, 5] {
        let body_bytes = codec::encode(&fed.body(serial));
        assert_eq!(
            held.precheck_update(&file_with(&body_bytes, &claims))
                .unwrap_err(),
            RosterError::Rollback {
                offered: serial,
                held: 5
            }
        );
    }
    // A genuine older or equal roster (a replay) is refused for its serial.
    for serial in [4, 5] {
        let file = fed.publish(&fed.body(serial), &[0, 1]);
        assert_eq!(
            held.precheck_update(&file).unwrap_err(),
            RosterError::Rollback {
                offered: serial,
                held: 5
            }
        );
    }
}

#[test]
fn garbage_is_refused_as_by_the_full_parse() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();
    assert_eq!(
        held.precheck_update(b"not a roster").unwrap_err(),
        RosterError::NotARoster
    );
    let mut file = fed.publish(&fed.body(2), &[0, 1]);
    file[ROSTER_MAGIC.len()] = 9;
    assert_eq!(
        held.precheck_update(&file).unwrap_err(),
        RosterError::UnsupportedVersion { version: 9 }
    );
    let file = fed.publish(&fed.body(2), &[0, 1]);
    assert!(matches!(
        held.precheck_update(&file[..file.len() - 1]),
        Err(RosterError::Decode(_))
    ));
    let mut too_long = ROSTER_MAGIC.to_vec();
    too_long.push(ROSTER_VERSION);
    too_long.resize(MAX_ROSTER_LEN + 1, 0);
    assert!(matches!(
        held.precheck_update(&too_long),
        Err(RosterError::TooMany { what: "bytes", .. })
    ));
    // A later version may allow larger rosters: upgrading is the remedy, not a smaller file.
    too_long[ROSTER_MAGIC.len()] = 2;
    assert_eq!(
        held.precheck_update(&too_long).unwrap_err(),
        RosterError::UnsupportedVersion { version: 2 }
    );
}
