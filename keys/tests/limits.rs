//! Every named limit at the limit (accepted) and one past it (refused with the expected error),
//! plus the structural refusals a security review asked to see pinned down: non-canonical
//! encodings, terminal escapes, inverted validity, duplicate group members, keys in two roles,
//! and the exact set of errors a tampered roster can produce.
//!
//! All keys come from fixed seeds, so every roster here is the same bytes on every run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use liaise_keys::agency::{AgencyError, MAX_AGENCY_ID_LEN, MAX_AGENCY_NAME_LEN, validate_name};
use liaise_keys::certificate::MAX_CERTIFICATE_BODY_LEN;
use liaise_keys::codec::{self, DecodeError};
use liaise_keys::identity::{MAX_ENCRYPTION_KEYS, MAX_SECRETS_LEN, SecretsError};
use liaise_keys::roster::{
    Group, MAX_ADDRESS_LEN, MAX_CERTIFICATES_PER_KIND, MAX_GROUP_NAME_LEN, MAX_MEMBERS,
    MAX_MEMBERSHIP_FILE_LEN, MAX_REVOKED, MAX_ROSTER_LEN, Member, MembershipError,
    MembershipRequest, ROSTER_MAGIC, RevokedKey, Roster, RosterBody, RosterError, SignedRoster,
    StewardSet, StewardSignature, certify, validate_address,
};
use liaise_keys::{
    AgencyId, AgencyKind, AgencySecrets, CertificateBody, CertifiedKey, Country,
    EncryptionSecretKey, Fingerprint, KemAlgorithm, KeyCertificate, Signature, SignatureDomain,
    SigningSecretKey, Timestamp, TransportPublicKey, TransportSecretKey,
};

const NOW: Timestamp = Timestamp(1_800_000_000);
const DAY: u64 = 86_400;
const STEWARD: u8 = 0xff;
const SIGNING: u8 = 1;
const TRANSPORT: u8 = 2;
const ENCRYPTION: u8 = 3;

// ----- helpers: deterministic keys, members and rosters -----

/// A fixed 32-byte seed for key number `i` of `kind`.
fn seed(kind: u8, i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = kind;
    s[1..9].copy_from_slice(&(i as u64).to_le_bytes());
    s
}

/// Agency number `i`'s keys: Ed25519 signing and transport, X25519 encryption.
fn secrets(i: usize) -> AgencySecrets {
    AgencySecrets {
        signing: SigningSecretKey::from_bytes(&seed(SIGNING, i)),
        transport: TransportSecretKey::from_bytes(&seed(TRANSPORT, i)),
        previous_transport: None,
        encryption: vec![
            EncryptionSecretKey::from_bytes(KemAlgorithm::X25519, &seed(ENCRYPTION, i)).unwrap(),
        ],
    }
}

/// A member with certificates its own signing key made, valid around `NOW`.
fn member_with_id(i: usize, id: &str) -> Member {
    let secrets = secrets(i);
    let id = AgencyId::new(id).unwrap();
    let (transport, encryption) = certify(
        &id,
        &secrets,
        Timestamp(NOW.0 - DAY),
        Timestamp(NOW.0 + 365 * DAY),
    );
    Member {
        id,
        name: format!("Agency {i}"),
        kind: AgencyKind::Probation,
        country: Country::new("NL").unwrap(),
        signing_key: secrets.signing.public_key(),
        transport: vec![transport],
        encryption: encryption.into_iter().collect(),
        addresses: vec!["127.0.0.1:7400".into()],
    }
}

fn member(i: usize) -> Member {
    member_with_id(i, &format!("nl.agency.a{i}"))
}

/// `MAX_MEMBERS + 1` distinct members with ids of exactly `MAX_AGENCY_ID_LEN` bytes, made once.
fn many_members() -> &'static [Member] {
    static MEMBERS: OnceLock<Vec<Member>> = OnceLock::new();
    MEMBERS.get_or_init(|| {
        (0..=MAX_MEMBERS)
            .map(|i| {
                let id = format!("{}.{}.m{i:04}", "a".repeat(32), "b".repeat(25));
                assert_eq!(id.len(), MAX_AGENCY_ID_LEN);
                member_with_id(1000 + i, &id)
            })
            .collect()
    })
}

fn stewards() -> Vec<SigningSecretKey> {
    (0..3)
        .map(|i| SigningSecretKey::from_bytes(&seed(STEWARD, i)))
        .collect()
}

/// A roster body with two members in one group, stewards 2 of 3.
fn body() -> RosterBody {
    body_with(vec![member(0), member(1)])
}

fn body_with(members: Vec<Member>) -> RosterBody {
    RosterBody {
        federation: "Limits federation".into(),
        serial: 1,
        issued_at: NOW,
        expires_at: Timestamp(NOW.0 + 30 * DAY),
        stewards: StewardSet {
            threshold: 2,
            keys: stewards()
                .iter()
                .map(SigningSecretKey::public_key)
                .collect(),
        },
        groups: vec![Group {
            name: "case-conference".into(),
            members: members.iter().map(|m| m.id.clone()).collect(),
        }],
        members,
        revoked: vec![],
    }
}

/// The file of `body` signed by the first two stewards.
fn publish(body: &RosterBody) -> Vec<u8> {
    let stewards = stewards();
    SignedRoster::sign(body, &[&stewards[0], &stewards[1]]).to_bytes()
}

fn parse(body: &RosterBody) -> Result<SignedRoster, RosterError> {
    SignedRoster::parse(&publish(body))
}

fn too_many(what: &'static str, len: usize, max: usize) -> Result<(), RosterError> {
    Err(RosterError::TooMany { what, len, max })
}

/// Parses and drops the value, keeping only the outcome.
fn outcome(body: &RosterBody) -> Result<(), RosterError> {
    parse(body).map(drop)
}

/// Rewrites the varint at `at` in one more byte than it needs (same value, not canonical).
fn lengthen_varint(bytes: &[u8], at: usize) -> Vec<u8> {
    let len = bytes[at..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut out = bytes[..at + len].to_vec();
    *out.last_mut().unwrap() |= 0x80;
    out.push(0x00);
    out.extend_from_slice(&bytes[at + len..]);
    out
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The length of the file of `body` signed by two stewards, without signing it.
fn file_len(body: &RosterBody) -> usize {
    let body_len = codec::encode(body).len();
    ROSTER_MAGIC.len() + 1 + varint_len(body_len) + body_len + 1 + 2 * (32 + 64)
}

/// The error's variant, with the inner decode error for `Decode`.
fn kind(err: &RosterError) -> String {
    let name = match err {
        RosterError::Decode(DecodeError::Truncated { what }) => {
            return format!("Decode(Truncated {what})");
        }
        RosterError::Decode(DecodeError::Malformed { what }) => {
            return format!("Decode(Malformed {what})");
        }
        RosterError::Decode(DecodeError::TrailingBytes { what, .. }) => {
            return format!("Decode(TrailingBytes {what})");
        }
        RosterError::Decode(DecodeError::NotCanonical { what }) => {
            return format!("Decode(NotCanonical {what})");
        }
        RosterError::Decode(DecodeError::TooLarge { what, .. }) => {
            return format!("Decode(TooLarge {what})");
        }
        RosterError::TooMany { what, .. } => return format!("TooMany {what}"),
        RosterError::NotARoster => "NotARoster",
        RosterError::UnsupportedVersion { .. } => "UnsupportedVersion",
        RosterError::BrokenSignature { .. } => "BrokenSignature",
        RosterError::UnderThreshold { .. } => "UnderThreshold",
        RosterError::WrongFederation { .. } => "WrongFederation",
        RosterError::BadCertificate { .. } => "BadCertificate",
        other => return format!("unexpected: {other:?}"),
    };
    name.to_owned()
}

// ----- roster list limits -----

#[test]
fn members_at_and_past_max_members() {
    let all = many_members();
    assert!(outcome(&body_with(all[..MAX_MEMBERS].to_vec())).is_ok());
    assert_eq!(
        outcome(&body_with(all.to_vec())),
        too_many("members", MAX_MEMBERS + 1, MAX_MEMBERS)
    );
}

#[test]
fn group_members_at_and_past_max_members() {
    let all = many_members();
    let mut body = body_with(all[..MAX_MEMBERS].to_vec());
    assert_eq!(body.groups[0].members.len(), MAX_MEMBERS);
    assert!(outcome(&body).is_ok());
    body.groups[0].members = all.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        outcome(&body),
        too_many("group members", MAX_MEMBERS + 1, MAX_MEMBERS)
    );
}

#[test]
fn revoked_keys_at_and_past_max_revoked() {
    let mut body = body();
    body.revoked = (0..MAX_REVOKED)
        .map(|i| RevokedKey {
            fingerprint: Fingerprint::of("test", &i.to_le_bytes()),
            agency: None,
            revoked_at: NOW,
        })
        .collect();
    assert!(outcome(&body).is_ok());
    body.revoked.push(RevokedKey {
        fingerprint: Fingerprint::of("test", b"one more"),
        agency: None,
        revoked_at: NOW,
    });
    assert_eq!(
        outcome(&body),
        too_many("revoked keys", MAX_REVOKED + 1, MAX_REVOKED)
    );
}

#[test]
fn certificates_per_kind_at_and_past_the_limit() {
    let owner = secrets(0);
    let id = AgencyId::new("nl.agency.a0").unwrap();
    let cert = |key: CertifiedKey| {
        KeyCertificate::issue(
            &owner.signing,
            CertificateBody {
                agency: id.clone(),
                key,
                not_before: NOW,
                not_after: Timestamp(NOW.0 + DAY),
            },
        )
    };
    let transport: Vec<KeyCertificate> = (0..=MAX_CERTIFICATES_PER_KIND)
        .map(|i| {
            let key = TransportSecretKey::from_bytes(&seed(TRANSPORT, 100 + i)).public_key();
            cert(CertifiedKey::Transport(key))
        })
        .collect();
    let encryption: Vec<KeyCertificate> = (0..=MAX_CERTIFICATES_PER_KIND)
        .map(|i| {
            let secret =
                EncryptionSecretKey::from_bytes(KemAlgorithm::X25519, &seed(ENCRYPTION, 100 + i))
                    .unwrap();
            cert(CertifiedKey::Encryption(secret.public_key().clone()))
        })
        .collect();

    let mut body = body();
    body.members[0].transport = transport[..MAX_CERTIFICATES_PER_KIND].to_vec();
    body.members[0].encryption = encryption[..MAX_CERTIFICATES_PER_KIND].to_vec();
    assert!(outcome(&body).is_ok());

    let mut past = body.clone();
    past.members[0].transport = transport.clone();
    let max = MAX_CERTIFICATES_PER_KIND;
    assert_eq!(
        outcome(&past),
        too_many("transport certificates", max + 1, max)
    );
    let mut past = body;
    past.members[0].encryption = encryption;
    assert_eq!(
        outcome(&past),
        too_many("encryption certificates", max + 1, max)
    );
}

#[test]
fn address_length_at_and_past_max_address_len() {
    let address = |len: usize| format!("{}:7400", "n".repeat(len - ":7400".len()));
    assert_eq!(address(MAX_ADDRESS_LEN).len(), MAX_ADDRESS_LEN);
    assert_eq!(validate_address(&address(MAX_ADDRESS_LEN)), Ok(()));
    let err = validate_address(&address(MAX_ADDRESS_LEN + 1)).unwrap_err();
    assert!(matches!(err, RosterError::BadAddress(_)), "{err:?}");

    let mut body = body();
    body.members[0].addresses = vec![address(MAX_ADDRESS_LEN)];
    assert!(outcome(&body).is_ok());
    body.members[0].addresses = vec![address(MAX_ADDRESS_LEN + 1)];
    assert!(matches!(outcome(&body), Err(RosterError::BadAddress(_))));
}

#[test]
fn group_and_federation_names_at_and_past_max_group_name_len() {
    let mut body = body();
    body.groups[0].name = "g".repeat(MAX_GROUP_NAME_LEN);
    body.federation = "F".repeat(MAX_GROUP_NAME_LEN);
    assert!(outcome(&body).is_ok());

    let mut long_group = body.clone();
    long_group.groups[0].name.push('g');
    assert!(matches!(
        outcome(&long_group),
        Err(RosterError::BadGroup { reason, .. }) if reason.contains("1-64 characters")
    ));
    let mut long_federation = body;
    long_federation.federation.push('F');
    assert_eq!(
        outcome(&long_federation),
        Err(RosterError::BadField {
            field: "federation"
        })
    );
}

/// A valid roster file of exactly `MAX_ROSTER_LEN` bytes is accepted; one byte more is refused
/// before anything is decoded.
#[test]
fn roster_file_at_and_past_max_roster_len() {
    let members = many_members()[..MAX_MEMBERS].to_vec();
    let ids: Vec<AgencyId> = members.iter().map(|m| m.id.clone()).collect();
    let mut body = body_with(members);
    body.groups.clear();
    for m in &mut body.members {
        m.name = "A".into();
    }
    // Coarse: whole groups of every member (about 66 KB each)...
    let whole_group_len = codec::encode(&Group {
        name: "g000".into(),
        members: ids.clone(),
    })
    .len();
    let whole_groups = (MAX_ROSTER_LEN - file_len(&body)) / whole_group_len;
    body.groups = (0..whole_groups)
        .map(|i| Group {
            name: format!("g{i:03}"),
            members: ids.clone(),
        })
        .collect();
    // ...then one partial group, 65 bytes a member...
    let deficit = MAX_ROSTER_LEN - file_len(&body);
    let per_id = MAX_AGENCY_ID_LEN + 1;
    let partial = (deficit - 1 - "last".len() - 2) / per_id;
    body.groups.push(Group {
        name: "last".into(),
        members: ids[..partial].to_vec(),
    });
    // ...then member names, one byte at a time of up to 127 (a one-byte length) each.
    let mut deficit = MAX_ROSTER_LEN - file_len(&body);
    for m in &mut body.members {
        let grow = deficit.min(127 - m.name.len());
        m.name.push_str(&"a".repeat(grow));
        deficit -= grow;
    }
    let file = publish(&body);
    assert_eq!(file.len(), MAX_ROSTER_LEN);
    let parsed = SignedRoster::parse(&file).unwrap();
    assert_eq!(parsed.body.groups.len(), body.groups.len());

    let grown = body
        .members
        .iter()
        .position(|m| m.name.len() < 127)
        .unwrap();
    body.members[grown].name.push('a');
    let file = publish(&body);
    assert_eq!(file.len(), MAX_ROSTER_LEN + 1);
    assert_eq!(
        SignedRoster::parse(&file).unwrap_err(),
        RosterError::TooMany {
            what: "bytes",
            len: MAX_ROSTER_LEN + 1,
            max: MAX_ROSTER_LEN
        }
    );
}

// ----- other files' limits -----

#[test]
fn membership_file_at_and_past_max_membership_file_len() {
    let owner = secrets(0);
    let m = member(0);
    let request = MembershipRequest {
        agency: m.id.clone(),
        name: m.name.clone(),
        kind: m.kind,
        country: m.country,
        addresses: m.addresses.clone(),
        signing_key: owner.signing.public_key(),
        transport: m.transport.clone(),
        encryption: m.encryption.clone(),
    };
    let text = request.to_toml();
    let padding = MAX_MEMBERSHIP_FILE_LEN - text.len() - "#\n".len();
    let at_limit = format!("{text}#{}\n", "x".repeat(padding));
    assert_eq!(at_limit.len(), MAX_MEMBERSHIP_FILE_LEN);
    assert_eq!(MembershipRequest::from_toml(&at_limit).unwrap(), request);
    let past = format!("{text}#{}\n", "x".repeat(padding + 1));
    assert_eq!(
        MembershipRequest::from_toml(&past),
        Err(MembershipError::Malformed("file too large".into()))
    );
}

/// No real certificate body reaches the limit (the largest, an X-Wing key under a 64-byte id,
/// is about 1.3 KB), so the limit's edge is shown with padded bodies: at the limit the size
/// check passes and decoding refuses the padding; one byte more is refused for its size.
#[test]
fn certificate_body_at_and_past_max_certificate_body_len() {
    let signer = SigningSecretKey::from_bytes(&seed(SIGNING, 0));
    let largest = KeyCertificate::issue(
        &signer,
        CertificateBody {
            agency: many_members()[0].id.clone(),
            key: CertifiedKey::Encryption(
                EncryptionSecretKey::from_bytes(KemAlgorithm::XWing, &seed(ENCRYPTION, 0))
                    .unwrap()
                    .public_key()
                    .clone(),
            ),
            not_before: Timestamp(u64::MAX - 1),
            not_after: Timestamp(u64::MAX),
        },
    );
    let largest_body_len = codec::encode(largest.body()).len();
    assert!(
        largest_body_len < MAX_CERTIFICATE_BODY_LEN,
        "{largest_body_len}"
    );
    assert_eq!(
        KeyCertificate::from_bytes(&largest.to_bytes()).unwrap(),
        largest
    );

    let padded = |len: usize| {
        let mut body = codec::encode(largest.body());
        body.resize(len, 0);
        codec::encode(&(&body, &Signature([0; 64])))
    };
    let at_limit = KeyCertificate::from_bytes(&padded(MAX_CERTIFICATE_BODY_LEN)).unwrap_err();
    assert!(
        matches!(
            at_limit,
            DecodeError::TrailingBytes {
                what: "key certificate body",
                ..
            }
        ),
        "{at_limit:?}"
    );
    assert_eq!(
        KeyCertificate::from_bytes(&padded(MAX_CERTIFICATE_BODY_LEN + 1)),
        Err(DecodeError::TooLarge {
            what: "key certificate body",
            len: MAX_CERTIFICATE_BODY_LEN + 1,
            max: MAX_CERTIFICATE_BODY_LEN
        })
    );
    // Inside a roster, certificates decode through serde: the same limit applies there.
    let oversized = padded(MAX_CERTIFICATE_BODY_LEN + 1);
    assert!(codec::decode::<KeyCertificate>("cert", &oversized, usize::MAX).is_err());
}

#[test]
fn encryption_keys_at_and_past_max_encryption_keys() {
    let mut bundle = secrets(0);
    bundle.encryption = (0..MAX_ENCRYPTION_KEYS)
        .map(|i| {
            EncryptionSecretKey::from_bytes(KemAlgorithm::X25519, &seed(ENCRYPTION, i)).unwrap()
        })
        .collect();
    bundle.previous_transport = Some(TransportSecretKey::from_bytes(&seed(TRANSPORT, 99)));
    let bytes = bundle.to_bytes();
    assert!(bytes.len() <= MAX_SECRETS_LEN, "{}", bytes.len());
    let back = AgencySecrets::from_bytes(&bytes).unwrap();
    assert_eq!(back.encryption.len(), MAX_ENCRYPTION_KEYS);

    bundle.encryption.push(
        EncryptionSecretKey::from_bytes(KemAlgorithm::X25519, &seed(ENCRYPTION, 99)).unwrap(),
    );
    let bytes = bundle.to_bytes();
    assert_eq!(
        AgencySecrets::from_bytes(&bytes).unwrap_err(),
        SecretsError::TooManyEncryptionKeys {
            count: MAX_ENCRYPTION_KEYS + 1
        }
    );
}

#[test]
fn secrets_bundle_at_and_past_max_secrets_len() {
    let mut bytes = secrets(0).to_bytes().to_vec();
    let valid_len = bytes.len();
    bytes.resize(MAX_SECRETS_LEN, 0);
    assert_eq!(
        AgencySecrets::from_bytes(&bytes).unwrap_err(),
        SecretsError::Decode(DecodeError::TrailingBytes {
            what: "agency secrets",
            extra: MAX_SECRETS_LEN - valid_len
        })
    );
    bytes.push(0);
    assert_eq!(
        AgencySecrets::from_bytes(&bytes).unwrap_err(),
        SecretsError::Decode(DecodeError::TooLarge {
            what: "agency secrets",
            len: MAX_SECRETS_LEN + 1,
            max: MAX_SECRETS_LEN
        })
    );
}

#[test]
fn agency_name_at_and_past_max_agency_name_len() {
    assert_eq!(validate_name(&"x".repeat(MAX_AGENCY_NAME_LEN)), Ok(()));
    assert_eq!(
        validate_name(&"x".repeat(MAX_AGENCY_NAME_LEN + 1)),
        Err(AgencyError::InvalidName)
    );
    // The limit is in bytes, not characters.
    let two_byte = "é".repeat(MAX_AGENCY_NAME_LEN / 2);
    assert_eq!(validate_name(&two_byte), Ok(()));
    assert_eq!(
        validate_name(&format!("{two_byte}x")),
        Err(AgencyError::InvalidName)
    );
}

#[test]
fn agency_id_at_and_past_max_agency_id_len() {
    let at_limit = &many_members()[0].id;
    assert_eq!(at_limit.as_str().len(), MAX_AGENCY_ID_LEN);
    assert_eq!(&AgencyId::new(at_limit.as_str()).unwrap(), at_limit);
    let past = format!("{at_limit}5");
    assert!(matches!(
        AgencyId::new(&past),
        Err(AgencyError::InvalidId { .. })
    ));
}

// ----- structural refusals -----

#[test]
fn non_canonical_roster_encodings_are_refused() {
    let body = body();
    let file = publish(&body);
    // The length of the signed body bytes, written one byte longer.
    let long_prefix = lengthen_varint(&file, ROSTER_MAGIC.len() + 1);
    assert_eq!(
        SignedRoster::parse(&long_prefix).unwrap_err(),
        RosterError::Decode(DecodeError::NotCanonical { what: "roster" })
    );
    // A body whose federation name length is written long, properly signed: the stewards
    // signed it, but it is a second encoding of the same roster and must not be accepted.
    let body_bytes = lengthen_varint(&codec::encode(&body), 0);
    let stewards = stewards();
    let signed = SignedRoster {
        signatures: [&stewards[0], &stewards[1]]
            .iter()
            .map(|k| StewardSignature {
                key: k.public_key(),
                signature: k.sign(SignatureDomain::Roster, &body_bytes),
            })
            .collect(),
        body_bytes,
        body,
    };
    assert_eq!(
        SignedRoster::parse(&signed.to_bytes()).unwrap_err(),
        RosterError::Decode(DecodeError::NotCanonical {
            what: "roster body"
        })
    );
}

#[test]
fn non_canonical_certificate_encodings_are_refused() {
    let m = member(0);
    let cert = &m.transport[0];
    let long_prefix = lengthen_varint(&cert.to_bytes(), 0);
    assert_eq!(
        KeyCertificate::from_bytes(&long_prefix),
        Err(DecodeError::NotCanonical {
            what: "key certificate"
        })
    );
    // The agency id's length written long inside a body the agency really signed.
    let body_bytes = lengthen_varint(&codec::encode(cert.body()), 0);
    let signature = secrets(0)
        .signing
        .sign(SignatureDomain::KeyCertificate, &body_bytes);
    assert_eq!(
        KeyCertificate::from_bytes(&codec::encode(&(&body_bytes, &signature))),
        Err(DecodeError::NotCanonical {
            what: "key certificate body"
        })
    );
}

#[test]
fn terminal_escapes_are_refused() {
    for escape in ["\u{1b}[31m", "\u{1b}]0;owned\u{7}", "\u{9b}2J"] {
        let address = format!("node{escape}.example.org:7400");
        let err = validate_address(&address).unwrap_err();
        assert!(matches!(err, RosterError::BadAddress(_)));
        assert!(
            !err.to_string().chars().any(char::is_control),
            "the error repeats the escape: {err:?}"
        );

        let mut with_address = body();
        with_address.members[0].addresses = vec![address];
        assert!(matches!(
            outcome(&with_address),
            Err(RosterError::BadAddress(_))
        ));

        let mut with_federation = body();
        with_federation.federation = format!("Federation{escape}");
        assert_eq!(
            outcome(&with_federation),
            Err(RosterError::BadField {
                field: "federation"
            })
        );

        let mut with_name = body();
        with_name.members[0].name = format!("Agency{escape}");
        assert_eq!(
            outcome(&with_name),
            Err(RosterError::BadField { field: "name" })
        );

        let mut with_group = body();
        with_group.groups[0].name = format!("group{escape}");
        assert!(matches!(
            outcome(&with_group),
            Err(RosterError::BadGroup { .. })
        ));
    }
}

#[test]
fn certificates_must_end_after_they_start() {
    let owner = secrets(0);
    let id = AgencyId::new("nl.agency.a0").unwrap();
    for (not_before, not_after, valid) in [
        (NOW, NOW, false),
        (NOW, Timestamp(NOW.0 - 1), false),
        (NOW, Timestamp(NOW.0 + 1), true),
    ] {
        let (transport, _) = certify(&id, &owner, not_before, not_after);
        let mut body = body();
        body.members[0].transport = vec![transport];
        let expected = if valid {
            Ok(())
        } else {
            Err(RosterError::BadCertificate { agency: id.clone() })
        };
        assert_eq!(outcome(&body), expected, "{not_before} .. {not_after}");
    }
}

#[test]
fn a_group_naming_an_agency_twice_is_refused() {
    let mut body = body();
    let first = body.members[0].id.clone();
    body.groups[0].members.push(first);
    assert_eq!(
        outcome(&body),
        Err(RosterError::BadGroup {
            group: "case-conference".into(),
            reason: "it names an agency twice"
        })
    );
}

#[test]
fn a_steward_key_that_is_a_member_key_is_refused() {
    let m = member(0);
    for steward_seed in [seed(TRANSPORT, 0), seed(SIGNING, 0)] {
        let steward = SigningSecretKey::from_bytes(&steward_seed);
        let mut body = body();
        body.stewards.keys[2] = steward.public_key();
        let others = stewards();
        let file = SignedRoster::sign(&body, &[&others[0], &steward]).to_bytes();
        assert_eq!(
            SignedRoster::parse(&file).unwrap_err(),
            RosterError::StewardKeyIsMemberKey {
                agency: m.id.clone(),
                fingerprint: steward.public_key().fingerprint()
            }
        );
    }
}

#[test]
fn one_agencys_signing_key_as_anothers_transport_key_is_refused() {
    let mut body = body();
    let victim = body.members[0].clone();
    let raw = victim.signing_key.to_bytes();
    let (mallory_secrets, mallory) = (secrets(1), &mut body.members[1]);
    // Mallory certifies the victim's identity key as her own transport key.
    mallory.transport.push(KeyCertificate::issue(
        &mallory_secrets.signing,
        CertificateBody {
            agency: mallory.id.clone(),
            key: CertifiedKey::Transport(TransportPublicKey::from_bytes(&raw).unwrap()),
            not_before: NOW,
            not_after: Timestamp(NOW.0 + DAY),
        },
    ));
    let mallory_id = mallory.id.clone();
    assert_eq!(
        outcome(&body),
        Err(RosterError::SharedKey {
            first: victim.id,
            second: mallory_id,
            fingerprint: Fingerprint::of("ed25519", &raw)
        })
    );
}

/// Flipping any bit of a roster signed by 3 stewards (2 required) gives one of a known set of
/// errors, each a single line. A change to which errors appear is a change to review.
#[test]
fn every_tampered_byte_gives_an_expected_single_line_error() {
    let stewards = stewards();
    let body = body();
    let file = SignedRoster::sign(&body, &[&stewards[0], &stewards[1], &stewards[2]]).to_bytes();
    let pin = body.stewards.fingerprint().to_string();
    assert!(Roster::accept_first(&file, &pin, NOW).is_ok());

    let mut seen = BTreeSet::new();
    for i in 0..file.len() {
        for mask in [0x01, 0x80] {
            let mut bad = file.clone();
            bad[i] ^= mask;
            let err = Roster::accept_first(&bad, &pin, NOW)
                .expect_err(&format!("flipping {mask:#04x} in byte {i} went unnoticed"));
            let text = err.to_string();
            assert_eq!(text.lines().count(), 1, "{text:?}");
            assert!(!text.chars().any(char::is_control), "{text:?}");
            seen.insert(kind(&err));
        }
    }
    let expected: BTreeSet<String> = [
        "NotARoster",
        "UnsupportedVersion",
        "BrokenSignature",
        "Decode(Truncated roster)",
        "Decode(Truncated roster body)",
        "Decode(TrailingBytes roster)",
        "Decode(Malformed roster)",
        "Decode(Malformed roster body)",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, expected);
}
