#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::agency::{AgencyKind, Country};
use crate::encryption::KemAlgorithm;
use crate::identity::AgencySecrets;
use crate::signing::SigningSecretKey;
use crate::transport::TransportSecretKey;

pub(super) const NOW: Timestamp = Timestamp(1_800_000_000);
const DAY: u64 = 86_400;

pub(super) struct Federation {
    pub(super) stewards: Vec<SigningSecretKey>,
    members: Vec<(AgencySecrets, Member)>,
}

fn member(id: &str, kem: KemAlgorithm) -> (AgencySecrets, Member) {
    member_with(id, AgencySecrets::generate(kem))
}

fn member_with(id: &str, secrets: AgencySecrets) -> (AgencySecrets, Member) {
    let agency = AgencyId::new(id).unwrap();
    let (transport, encryption) = certify(
        &agency,
        &secrets,
        Timestamp(NOW.0 - DAY),
        Timestamp(NOW.0 + 365 * DAY),
    );
    let member = Member {
        id: agency,
        name: format!("Agency {id}"),
        kind: AgencyKind::Probation,
        country: Country::new("NL").unwrap(),
        signing_key: secrets.signing.public_key(),
        transport: vec![transport],
        encryption: encryption.into_iter().collect(),
        addresses: vec!["127.0.0.1:7000".into()],
    };
    (secrets, member)
}

pub(super) fn federation() -> Federation {
    Federation {
        stewards: (0..3).map(|_| SigningSecretKey::generate()).collect(),
        members: vec![
            member("nl.city.utrecht", KemAlgorithm::X25519),
            member("nl.probation.utrecht", KemAlgorithm::X25519),
        ],
    }
}

impl Federation {
    fn steward_set(&self) -> StewardSet {
        StewardSet {
            threshold: 2,
            keys: self
                .stewards
                .iter()
                .map(SigningSecretKey::public_key)
                .collect(),
        }
    }

    pub(super) fn body(&self, serial: u64) -> RosterBody {
        RosterBody {
            federation: "Utrecht safety house".into(),
            serial,
            issued_at: NOW,
            expires_at: Timestamp(NOW.0 + 30 * DAY),
            stewards: self.steward_set(),
            members: self.members.iter().map(|(_, m)| m.clone()).collect(),
            groups: vec![Group {
                name: "case-conference".into(),
                members: self.members.iter().map(|(_, m)| m.id.clone()).collect(),
            }],
            revoked: vec![],
        }
    }

    pub(super) fn publish(&self, body: &RosterBody, signers: &[usize]) -> Vec<u8> {
        let keys: Vec<&SigningSecretKey> = signers.iter().map(|&i| &self.stewards[i]).collect();
        SignedRoster::sign(body, &keys).to_bytes()
    }

    pub(super) fn pin(&self) -> String {
        self.steward_set().fingerprint().to_string()
    }
}

#[test]
fn first_import_pins_the_federation() {
    let fed = federation();
    let file = fed.publish(&fed.body(1), &[0, 1]);
    let roster = Roster::accept_first(&file, &fed.pin(), NOW).unwrap();
    assert_eq!(roster.serial(), 1);
    assert_eq!(roster.signer_count(), 2);
    // The spoken form works as well as the SHA256 form.
    let spoken = fed.steward_set().fingerprint().spoken();
    assert!(Roster::accept_first(&file, &spoken, NOW).is_ok());

    let other = federation();
    let err = Roster::accept_first(&file, &other.pin(), NOW).unwrap_err();
    assert!(matches!(err, RosterError::WrongFederation { .. }), "{err}");
    assert!(err.to_string().contains("check the fingerprint"));
    // It never shows the roster's own fingerprint, which a user could paste back.
    let found = fed.steward_set().fingerprint();
    assert!(!err.to_string().contains(&found.to_string()), "{err}");
    assert!(!err.to_string().contains(&found.spoken()), "{err}");

    // Text in neither form is refused as such, before any comparison.
    for bad in [
        "23246 23239 ...",
        "",
        "12345",
        "SHA256:abc",
        "1234512345123451234512345123451234512345x",
    ] {
        let err = Roster::accept_first(&file, bad, NOW).unwrap_err();
        assert!(
            matches!(err, RosterError::NotAFingerprint { .. }),
            "{bad}: {err}"
        );
    }
    let dashed = spoken.replace(' ', "-");
    assert!(Roster::accept_first(&file, &dashed, NOW).is_ok());
}

#[test]
fn any_tampered_byte_is_refused() {
    let fed = federation();
    let file = fed.publish(&fed.body(1), &[0, 1]);
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x04;
        assert!(
            Roster::accept_first(&bad, &fed.pin(), NOW).is_err(),
            "flipping byte {i} of {} went unnoticed",
            file.len()
        );
    }
}

#[test]
fn any_tampered_byte_is_refused_even_with_spare_signatures() {
    // All three stewards sign though two suffice: breaking one signature must still be noticed.
    let fed = federation();
    let file = fed.publish(&fed.body(1), &[0, 1, 2]);
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x20;
        assert!(
            Roster::accept_first(&bad, &fed.pin(), NOW).is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
}

#[test]
fn every_truncated_prefix_fails_to_decode() {
    let fed = federation();
    let file = fed.publish(&fed.body(1), &[0, 1]);
    for cut in 0..file.len() {
        assert!(SignedRoster::parse(&file[..cut]).is_err(), "prefix {cut}");
    }
    // The message says what is wrong once: the decode error is in it, and is not also its
    // source (an error chain printed with `{:#}` would repeat it).
    let err = SignedRoster::parse(&file[..file.len() / 2]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(std::error::Error::source(&err).is_none(), "{err}");
    let mut longer = file.clone();
    longer.push(0);
    assert!(matches!(
        SignedRoster::parse(&longer),
        Err(RosterError::Decode(_))
    ));
}

#[test]
fn under_threshold_and_double_counted_signatures_are_refused() {
    let fed = federation();
    let one = fed.publish(&fed.body(1), &[0]);
    let err = Roster::accept_first(&one, &fed.pin(), NOW).unwrap_err();
    assert_eq!(
        err,
        RosterError::UnderThreshold {
            valid: 1,
            threshold: 2,
            which: "new"
        }
    );
    assert!(err.to_string().contains("signed by 1 of the 2 required"));

    // The same steward signing twice still counts once.
    let twice = fed.publish(&fed.body(1), &[0, 0]);
    assert!(matches!(
        Roster::accept_first(&twice, &fed.pin(), NOW),
        Err(RosterError::UnderThreshold { valid: 1, .. })
    ));

    // A signature by an outsider counts for nothing.
    let mut signed = SignedRoster::sign(&fed.body(1), &[&fed.stewards[0]]);
    let outsider = SigningSecretKey::generate();
    signed.signatures.push(StewardSignature {
        key: outsider.public_key(),
        signature: outsider.sign(crate::SignatureDomain::Roster, &signed.body_bytes),
    });
    assert!(matches!(
        Roster::accept_first(&signed.to_bytes(), &fed.pin(), NOW),
        Err(RosterError::UnderThreshold { valid: 1, .. })
    ));
}

#[test]
fn rollback_is_refused_and_newer_accepted() {
    let fed = federation();
    let v5 = Roster::accept_first(&fed.publish(&fed.body(5), &[0, 1]), &fed.pin(), NOW).unwrap();
    let v4 = fed.publish(&fed.body(4), &[1, 2]);
    assert_eq!(
        v5.accept_update(&v4, NOW).unwrap_err(),
        RosterError::Rollback {
            offered: 4,
            held: 5
        }
    );
    let same = fed.publish(&fed.body(5), &[1, 2]);
    assert!(matches!(
        v5.accept_update(&same, NOW),
        Err(RosterError::Rollback { .. })
    ));
    let v6 = v5
        .accept_update(&fed.publish(&fed.body(6), &[1, 2]), NOW)
        .unwrap();
    assert_eq!(v6.serial(), 6);
}

#[test]
fn expired_roster_is_refused() {
    let fed = federation();
    let file = fed.publish(&fed.body(1), &[0, 1]);
    let later = Timestamp(NOW.0 + 30 * DAY);
    let err = Roster::accept_first(&file, &fed.pin(), later).unwrap_err();
    assert!(matches!(err, RosterError::Expired { serial: 1, .. }));
    assert!(err.to_string().contains("expired"));
    let early = Timestamp(NOW.0 - CLOCK_TOLERANCE_SECS - 1);
    assert!(matches!(
        Roster::accept_first(&file, &fed.pin(), early),
        Err(RosterError::IssuedInFuture { .. })
    ));
}

#[test]
fn two_members_with_the_same_key_are_refused() {
    let fed = federation();
    let mut body = fed.body(1);
    // A malicious member claims another agency's signing key as its own.
    body.members[1].signing_key = body.members[0].signing_key;
    let err = Roster::accept_first(&fed.publish(&body, &[0, 1]), &fed.pin(), NOW).unwrap_err();
    // Its certificates were not made by that key, so they are caught first or the sharing is.
    assert!(
        matches!(
            err,
            RosterError::BadCertificate { .. } | RosterError::SharedKey { .. }
        ),
        "{err}"
    );

    // The same transport certificate copied under a second agency: certificate names agency 0.
    let mut body = fed.body(1);
    body.members[1].transport = body.members[0].transport.clone();
    assert!(matches!(
        Roster::accept_first(&fed.publish(&body, &[0, 1]), &fed.pin(), NOW),
        Err(RosterError::BadCertificate { .. })
    ));

    // Two member entries that are honestly the same keys under two ids.
    let mut body = fed.body(1);
    let mut clone = body.members[0].clone();
    clone.id = AgencyId::new("nl.city.clone").unwrap();
    clone.transport.clear();
    clone.encryption.clear();
    body.members.push(clone);
    let err = Roster::accept_first(&fed.publish(&body, &[0, 1]), &fed.pin(), NOW).unwrap_err();
    assert!(matches!(err, RosterError::SharedKey { .. }), "{err}");
    assert!(err.to_string().contains("key substitution refused"));
}

#[test]
fn revoked_keys_are_refused_in_lookups_and_cannot_stay_listed() {
    let fed = federation();
    let (_, revoked_member) = &fed.members[1];
    let mut body = fed.body(2);
    body.members.retain(|m| m.id != revoked_member.id);
    body.groups[0].members.retain(|m| m != &revoked_member.id);
    body.revoked = revoked_member
        .key_fingerprints()
        .into_iter()
        .map(|fingerprint| RevokedKey {
            fingerprint,
            agency: Some(revoked_member.id.clone()),
            revoked_at: NOW,
        })
        .collect();
    let roster = Roster::accept_first(&fed.publish(&body, &[0, 2]), &fed.pin(), NOW).unwrap();
    let err = roster
        .member_by_signing_key(&revoked_member.signing_key)
        .unwrap_err();
    assert!(matches!(err, LookupError::Revoked { .. }));
    assert!(err.to_string().contains("was revoked at"));
    let transport = revoked_member.current_transport_key(NOW).unwrap();
    assert!(matches!(
        roster.member_by_transport_key(&transport, NOW),
        Err(LookupError::Revoked { .. })
    ));
    // The other member still resolves.
    let ok = &fed.members[0].1;
    assert_eq!(
        roster.member_by_signing_key(&ok.signing_key).unwrap().id,
        ok.id
    );

    // A roster that lists a revoked key for a member is refused outright.
    let mut body = fed.body(3);
    body.revoked.push(RevokedKey {
        fingerprint: revoked_member.signing_key.fingerprint(),
        agency: None,
        revoked_at: NOW,
    });
    assert!(matches!(
        Roster::accept_first(&fed.publish(&body, &[0, 1]), &fed.pin(), NOW),
        Err(RosterError::RevokedKeyInUse { .. })
    ));
}

/// A member whose signing key is `key` (so its certificates verify).
fn member_signing_with(id: &str, key: &[u8; 32]) -> Member {
    let mut secrets = AgencySecrets::generate(KemAlgorithm::X25519);
    secrets.signing = SigningSecretKey::from_bytes(key);
    member_with(id, secrets).1
}

#[test]
fn a_key_revoked_in_one_role_is_revoked_in_the_other() {
    let fed = federation();
    let (gone_secrets, gone) = &fed.members[1];
    let without_gone = |serial: u64| {
        let mut body = fed.body(serial);
        body.members.retain(|m| m.id != gone.id);
        body.groups[0].members.retain(|m| m != &gone.id);
        body
    };
    let revoke = |fingerprint| RevokedKey {
        fingerprint,
        agency: Some(gone.id.clone()),
        revoked_at: NOW,
    };
    let transport = gone_secrets.transport.to_bytes();
    let transport_revoked = revoke(gone_secrets.transport.public_key().fingerprint());
    let signing = gone_secrets.signing.to_bytes();
    let signing_revoked = revoke(gone.signing_key.fingerprint());

    // The revoked transport key comes back as a new member's signing key.
    let mut body = without_gone(2);
    body.revoked = vec![transport_revoked.clone()];
    body.members
        .push(member_signing_with("nl.police.utrecht", &transport));
    assert_eq!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])).unwrap_err(),
        RosterError::RevokedKeyInUse {
            agency: AgencyId::new("nl.police.utrecht").unwrap(),
            fingerprint: transport_revoked.fingerprint,
        }
    );
    // ...or as a steward key.
    let mut body = without_gone(2);
    body.revoked = vec![transport_revoked.clone()];
    body.stewards.keys[2] = SigningSecretKey::from_bytes(&transport).public_key();
    assert_eq!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])).unwrap_err(),
        RosterError::BadStewardSet {
            reason: "a steward key is revoked"
        }
    );

    // The revoked signing key comes back as another member's transport key.
    let (kept_secrets, kept) = &fed.members[0];
    let mut body = without_gone(2);
    body.revoked = vec![signing_revoked.clone()];
    let reused = TransportSecretKey::from_bytes(&signing).public_key();
    body.members[0].transport.push(crate::KeyCertificate::issue(
        &kept_secrets.signing,
        crate::CertificateBody {
            agency: kept.id.clone(),
            key: crate::CertifiedKey::Transport(reused),
            not_before: NOW,
            not_after: Timestamp(NOW.0 + DAY),
        },
    ));
    assert_eq!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])).unwrap_err(),
        RosterError::RevokedKeyInUse {
            agency: kept.id.clone(),
            fingerprint: signing_revoked.fingerprint,
        }
    );

    // Lookups refuse the key in either role, naming the fingerprint that was revoked.
    let mut body = without_gone(2);
    body.revoked = vec![transport_revoked.clone(), signing_revoked.clone()];
    let roster = Roster::accept_first(&fed.publish(&body, &[0, 1]), &fed.pin(), NOW).unwrap();
    let as_signing = SigningSecretKey::from_bytes(&transport).public_key();
    assert_eq!(
        roster.signing_key_revocation(&as_signing),
        Some(&transport_revoked)
    );
    assert!(matches!(
        roster.member_by_signing_key(&as_signing),
        Err(LookupError::Revoked { fingerprint, .. }) if fingerprint == transport_revoked.fingerprint
    ));
    assert_eq!(
        roster.transport_key_revocation(&reused),
        Some(&signing_revoked)
    );
    assert!(matches!(
        roster.member_by_transport_key(&reused, NOW),
        Err(LookupError::Revoked { fingerprint, .. }) if fingerprint == signing_revoked.fingerprint
    ));
    // A key that was not revoked in either role is not.
    assert_eq!(roster.signing_key_revocation(&kept.signing_key), None);
}

#[test]
fn an_update_cannot_undo_a_revocation() {
    let fed = federation();
    let (_, gone) = &fed.members[1];
    let revocations = |at: Timestamp| -> Vec<RevokedKey> {
        gone.key_fingerprints()
            .into_iter()
            .map(|fingerprint| RevokedKey {
                fingerprint,
                agency: Some(gone.id.clone()),
                revoked_at: at,
            })
            .collect()
    };
    let without = |serial: u64, revoked: Vec<RevokedKey>| {
        let mut body = fed.body(serial);
        body.members.retain(|m| m.id != gone.id);
        body.groups[0].members.retain(|m| m != &gone.id);
        body.revoked = revoked;
        fed.publish(&body, &[0, 1])
    };
    let held = Roster::accept_first(&without(2, revocations(NOW)), &fed.pin(), NOW).unwrap();
    // Dropping the revocations, or moving them later, is refused, however well signed.
    for revoked in [vec![], revocations(Timestamp(NOW.0 + 1))] {
        assert!(matches!(
            held.accept_update(&without(3, revoked), NOW),
            Err(RosterError::RevocationDropped { .. })
        ));
    }
    // Keeping them, or dating them earlier, is an update like any other.
    let kept = held
        .accept_update(&without(3, revocations(NOW)), NOW)
        .unwrap();
    assert_eq!(kept.serial(), 3);
    assert!(
        kept.accept_update(&without(4, revocations(Timestamp(NOW.0 - 1))), NOW)
            .is_ok()
    );
}

#[test]
fn a_revoked_steward_key_cannot_sign() {
    let fed = federation();
    let mut body = fed.body(1);
    body.revoked.push(RevokedKey {
        fingerprint: fed.stewards[2].public_key().fingerprint(),
        agency: None,
        revoked_at: NOW,
    });
    assert_eq!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])).unwrap_err(),
        RosterError::BadStewardSet {
            reason: "a steward key is revoked"
        }
    );
}

#[test]
fn steward_rotation_needs_old_and_new_threshold() {
    let fed = federation();
    let held = Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();

    let new_stewards: Vec<SigningSecretKey> =
        (0..3).map(|_| SigningSecretKey::generate()).collect();
    let mut body = fed.body(2);
    body.stewards = StewardSet {
        threshold: 2,
        keys: new_stewards
            .iter()
            .map(SigningSecretKey::public_key)
            .collect(),
    };
    let sign = |keys: &[&SigningSecretKey]| SignedRoster::sign(&body, keys).to_bytes();

    let old_only = sign(&[&fed.stewards[0], &fed.stewards[1]]);
    assert_eq!(
        held.accept_update(&old_only, NOW).unwrap_err(),
        RosterError::UnderThreshold {
            valid: 0,
            threshold: 2,
            which: "new"
        }
    );
    let new_only = sign(&[&new_stewards[0], &new_stewards[1]]);
    assert_eq!(
        held.accept_update(&new_only, NOW).unwrap_err(),
        RosterError::UnderThreshold {
            valid: 0,
            threshold: 2,
            which: "current"
        }
    );
    let both = sign(&[
        &fed.stewards[0],
        &fed.stewards[2],
        &new_stewards[1],
        &new_stewards[2],
    ]);
    let rotated = held.accept_update(&both, NOW).unwrap();
    assert_ne!(
        rotated.federation_fingerprint(),
        held.federation_fingerprint()
    );

    // After the rotation, the old stewards alone can no longer publish.
    let mut next = body.clone();
    next.serial = 3;
    let by_old = SignedRoster::sign(&next, &[&fed.stewards[0], &fed.stewards[1]]).to_bytes();
    assert!(rotated.accept_update(&by_old, NOW).is_err());
}

#[test]
fn unsupported_version_is_reported_as_such() {
    let fed = federation();
    let mut file = fed.publish(&fed.body(1), &[0, 1]);
    file[ROSTER_MAGIC.len()] = 2;
    assert_eq!(
        SignedRoster::parse(&file).unwrap_err(),
        RosterError::UnsupportedVersion { version: 2 }
    );
    assert_eq!(
        SignedRoster::parse(b"hello").unwrap_err(),
        RosterError::NotARoster
    );
    // Magic and version come before this version's size limit: a later version may allow
    // larger rosters, and upgrading is the remedy, not a smaller file.
    file.resize(MAX_ROSTER_LEN + 1, 0);
    assert_eq!(
        SignedRoster::parse(&file).unwrap_err(),
        RosterError::UnsupportedVersion { version: 2 }
    );
    let mut oversized = vec![0; MAX_ROSTER_LEN + 1];
    assert_eq!(
        SignedRoster::parse(&oversized).unwrap_err(),
        RosterError::NotARoster
    );
    oversized[..ROSTER_MAGIC.len()].copy_from_slice(ROSTER_MAGIC);
    oversized[ROSTER_MAGIC.len()] = ROSTER_VERSION;
    assert!(matches!(
        SignedRoster::parse(&oversized).unwrap_err(),
        RosterError::TooMany { what: "bytes", .. }
    ));
}

#[test]
fn steward_set_rules() {
    let fed = federation();
    let mut body = fed.body(1);
    body.stewards.threshold = 4;
    assert!(matches!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1, 2])),
        Err(RosterError::BadStewardSet { .. })
    ));
    let mut body = fed.body(1);
    body.stewards.keys.push(body.stewards.keys[0]);
    assert!(matches!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])),
        Err(RosterError::BadStewardSet { .. })
    ));
}

#[test]
fn limits_at_and_past_the_limit() {
    let fed = federation();
    // Stewards: MAX_STEWARDS is accepted, one more is refused.
    let many: Vec<SigningSecretKey> = (0..=MAX_STEWARDS)
        .map(|_| SigningSecretKey::generate())
        .collect();
    let mut body = fed.body(1);
    body.stewards = StewardSet {
        threshold: 1,
        keys: many[..MAX_STEWARDS]
            .iter()
            .map(SigningSecretKey::public_key)
            .collect(),
    };
    assert!(SignedRoster::parse(&SignedRoster::sign(&body, &[&many[0]]).to_bytes()).is_ok());
    body.stewards.keys.push(many[MAX_STEWARDS].public_key());
    assert!(matches!(
        SignedRoster::parse(&SignedRoster::sign(&body, &[&many[0]]).to_bytes()),
        Err(RosterError::TooMany {
            what: "stewards",
            ..
        })
    ));

    // Addresses per member.
    let mut body = fed.body(1);
    body.members[0].addresses = (0..MAX_ADDRESSES)
        .map(|i| format!("10.0.0.{i}:7000"))
        .collect();
    assert!(SignedRoster::parse(&fed.publish(&body, &[0, 1])).is_ok());
    body.members[0].addresses.push("10.0.0.99:7000".into());
    assert!(matches!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])),
        Err(RosterError::TooMany {
            what: "addresses",
            ..
        })
    ));

    // Groups.
    let mut body = fed.body(1);
    body.groups = (0..MAX_GROUPS)
        .map(|i| Group {
            name: format!("g{i}"),
            members: vec![],
        })
        .collect();
    assert!(SignedRoster::parse(&fed.publish(&body, &[0, 1])).is_ok());
    body.groups.push(Group {
        name: "one-more".into(),
        members: vec![],
    });
    assert!(matches!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])),
        Err(RosterError::TooMany { what: "groups", .. })
    ));

    // Signatures attached.
    let signed = SignedRoster::sign(&fed.body(1), &[&fed.stewards[0]]);
    let mut at_limit = signed.clone();
    at_limit.signatures = vec![signed.signatures[0].clone(); MAX_ROSTER_SIGNATURES];
    assert!(SignedRoster::parse(&at_limit.to_bytes()).is_ok());
    at_limit.signatures.push(signed.signatures[0].clone());
    assert!(matches!(
        SignedRoster::parse(&at_limit.to_bytes()),
        Err(RosterError::TooMany {
            what: "signatures",
            ..
        })
    ));
}

#[test]
fn groups_must_name_members() {
    let fed = federation();
    let mut body = fed.body(1);
    body.groups[0]
        .members
        .push(AgencyId::new("nl.nobody.here").unwrap());
    assert!(matches!(
        SignedRoster::parse(&fed.publish(&body, &[0, 1])),
        Err(RosterError::BadGroup { .. })
    ));
}

#[test]
fn lookups_follow_certificates_and_rotation() {
    let fed = federation();
    let roster =
        Roster::accept_first(&fed.publish(&fed.body(1), &[0, 1]), &fed.pin(), NOW).unwrap();
    let (secrets, m) = &fed.members[0];
    let t = secrets.transport.public_key();
    assert_eq!(roster.member_by_transport_key(&t, NOW).unwrap().id, m.id);
    // Outside the certificate's validity the transport key is unknown.
    assert!(
        roster
            .member_by_transport_key(&t, Timestamp(NOW.0 + 400 * DAY))
            .is_err()
    );
    let enc = roster
        .member(&m.id)
        .unwrap()
        .current_encryption_key(NOW)
        .unwrap();
    assert_eq!(enc, secrets.current_encryption().unwrap().public_key());
    assert_eq!(roster.group("case-conference").unwrap().members.len(), 2);
    let stranger = SigningSecretKey::generate().public_key();
    assert!(matches!(
        roster.member_by_signing_key(&stranger),
        Err(LookupError::Unknown(_))
    ));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn roster_body_round_trips(serial in any::<u64>(), name in "[a-zA-Z ]{1,40}", threshold in 1u8..=3) {
            let fed = federation();
            let mut body = fed.body(serial);
            body.federation = name;
            body.stewards.threshold = threshold;
            let file = fed.publish(&body, &[0, 1, 2]);
            let parsed = SignedRoster::parse(&file).unwrap();
            prop_assert_eq!(&parsed.body, &body);
            prop_assert_eq!(parsed.to_bytes(), file);
        }

        #[test]
        fn membership_request_round_trips(addr_port in 1u16..) {
            let (secrets, mut m) = member("be.prison.gent", KemAlgorithm::XWing);
            m.addresses = vec![format!("node.gent.example:{addr_port}")];
            let req = MembershipRequest {
                agency: m.id.clone(), name: m.name.clone(), kind: m.kind, country: m.country,
                addresses: m.addresses.clone(), signing_key: secrets.signing.public_key(),
                transport: m.transport.clone(), encryption: m.encryption.clone(),
            };
            let text = req.to_toml();
            let back = MembershipRequest::from_toml(&text).unwrap();
            prop_assert_eq!(back.to_member(), m);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SignedRoster::parse(&bytes);
            let mut with_magic = ROSTER_MAGIC.to_vec();
            with_magic.push(ROSTER_VERSION);
            with_magic.extend(&bytes);
            let _ = SignedRoster::parse(&with_magic);
        }
    }
}

#[test]
fn membership_request_refuses_foreign_certificates() {
    let (secrets, m) = member("be.prison.gent", KemAlgorithm::X25519);
    let (other, om) = member("be.city.gent", KemAlgorithm::X25519);
    let mut req = MembershipRequest {
        agency: m.id.clone(),
        name: m.name.clone(),
        kind: m.kind,
        country: m.country,
        addresses: m.addresses.clone(),
        signing_key: secrets.signing.public_key(),
        transport: m.transport.clone(),
        encryption: m.encryption.clone(),
    };
    assert!(req.check().is_ok());
    // Claiming another agency's signing key: its certificates do not verify under it.
    req.signing_key = other.signing.public_key();
    assert!(matches!(
        req.check(),
        Err(MembershipError::BadCertificate(_))
    ));
    req.signing_key = secrets.signing.public_key();
    req.encryption = om.encryption.clone();
    assert!(matches!(
        req.check(),
        Err(MembershipError::BadCertificate(_))
    ));
}
