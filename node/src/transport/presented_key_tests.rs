//! Which transport key a node presents during a rotation, against real signed rosters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::roster::{RevokedKey, certify, certify_previous_transport};

use liaise_keys::{KemAlgorithm, TransportPublicKey};

use super::*;
use crate::log::signer_keys::tests::{CITY, Identity, NOW, Stewards, identity, roster};
use crate::transport::crypto_provider;

const DAY: u64 = 86_400;
/// Until when the rotated city's request certifies its previous transport key.
const OVERLAP_END: Timestamp = Timestamp(NOW.0 + 60 * DAY);

/// The city after `liaise keys rotate`: the roster entry lists the new transport key and, if
/// `previous_until` is given, the previous one until then.
fn rotated(previous_until: Option<Timestamp>) -> (Identity, TransportPublicKey) {
    let mut city = identity(CITY);
    let previous = city.secrets.transport.public_key();
    city.secrets.rotate(KemAlgorithm::X25519);
    let agency = city.member.id.clone();
    let not_before = Timestamp(NOW.0 - DAY);
    let (transport, _) = certify(&agency, &city.secrets, not_before, NOW.after(DAY_365));
    city.member.transport = std::iter::once(transport)
        .chain(previous_until.and_then(|until| {
            certify_previous_transport(&agency, &city.secrets, not_before, until)
        }))
        .collect();
    (city, previous)
}

const DAY_365: Duration = Duration::from_secs(365 * DAY);

fn shared(members: &[&Identity], revoked: Vec<RevokedKey>) -> SharedRoster {
    let stewards = Stewards::generate();
    SharedRoster::new(roster(1, &stewards, &stewards.quorum(), members, revoked))
}

/// The public key `presented` shows in a handshake at `now`.
fn shown(presented: &PresentedKey, now: Timestamp) -> Vec<u8> {
    presented.at(now).cert[0].as_ref().to_vec()
}

fn spki(key: &TransportPublicKey) -> Vec<u8> {
    key.to_spki_der().to_vec()
}

#[test]
fn the_previous_key_is_presented_until_a_day_before_its_certificate_ends() {
    let (city, previous) = rotated(Some(OVERLAP_END));
    let current = city.secrets.transport.public_key();
    let roster = shared(&[&city], vec![]);
    let presented = PresentedKey::rotating(
        &crypto_provider(),
        &city.member.id,
        &city.secrets.transport,
        city.secrets.previous_transport.as_ref(),
        &roster,
    )
    .unwrap();
    assert!(presents_previous(
        &roster.current(),
        &city.member.id,
        &previous,
        NOW
    ));
    let switch = OVERLAP_END.0 - SWITCH_MARGIN.as_secs();
    assert_eq!(shown(&presented, NOW), spki(&previous));
    assert_eq!(shown(&presented, Timestamp(switch - 1)), spki(&previous));
    // What the node checks against its own roster is what it shows.
    assert_eq!(presented.public_at(Timestamp(switch - 1)), previous);
    assert_eq!(presented.public_at(Timestamp(switch)), current);
    assert_eq!(shown(&presented, Timestamp(switch)), spki(&current));
    assert_eq!(shown(&presented, OVERLAP_END), spki(&current));
    // The roster still names the new key as the current one.
    let member = roster.current().member(&city.member.id).cloned().unwrap();
    assert_eq!(member.current_transport_key(NOW), Some(current));
}

#[test]
fn the_new_key_is_presented_once_the_roster_no_longer_certifies_the_previous_one() {
    // A request made with --no-overlap: the roster lists the new key alone.
    let (city, previous) = rotated(None);
    let roster = shared(&[&city], vec![]);
    assert!(!presents_previous(
        &roster.current(),
        &city.member.id,
        &previous,
        NOW
    ));
    // A key certified for another agency is never taken for ours.
    let (city, previous) = rotated(Some(OVERLAP_END));
    let probation = identity(crate::log::signer_keys::tests::PROBATION);
    let roster = shared(&[&city, &probation], vec![]);
    assert!(!presents_previous(
        &roster.current(),
        &probation.member.id,
        &previous,
        NOW
    ));
}

#[test]
fn a_node_that_never_rotated_presents_its_one_key() {
    let city = identity(CITY);
    let key = city.secrets.transport.public_key();
    let presented = PresentedKey::only(&crypto_provider(), &city.secrets.transport).unwrap();
    assert_eq!(shown(&presented, NOW), spki(&key));
    let roster = shared(&[&city], vec![]);
    let rotating = PresentedKey::rotating(
        &crypto_provider(),
        &city.member.id,
        &city.secrets.transport,
        None,
        &roster,
    )
    .unwrap();
    assert_eq!(shown(&rotating, NOW), spki(&key));
}
