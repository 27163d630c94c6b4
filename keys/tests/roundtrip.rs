//! Property tests: every value that is written to a file or sent over the network comes back
//! unchanged from its binary form (`codec`) and, where it has one, from its text form (Display
//! and FromStr, TOML and JSON). Each binary encoding is also checked to be strict: every
//! truncated prefix fails to decode, and so does the encoding with one byte appended.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::str::FromStr;

use liaise_keys::agency::{MAX_AGENCY_ID_LABEL_LEN, MAX_AGENCY_ID_LEN};
use liaise_keys::codec::{self, DecodeError};
use liaise_keys::roster::{
    Group, MAX_GROUP_NAME_LEN, Member, RevokedKey, Roster, RosterBody, SignedRoster, StewardSet,
    StewardSignature, certify,
};
use liaise_keys::{
    AgencyId, AgencyKind, AgencySecrets, CertificateBody, CertifiedKey, Country,
    EncryptionSecretKey, Fingerprint, KemAlgorithm, KeyCertificate, Signature, SignatureDomain,
    SigningPublicKey, SigningSecretKey, Timestamp, TransportPublicKey, TransportSecretKey,
};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A decode limit larger than anything these tests encode.
const NO_LIMIT: usize = 1 << 24;
/// `9999-12-31T23:59:59Z`, the last second the RFC 3339 form can show.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

// ----- helpers: the round-trip assertions -----

/// Encodes `value`, decodes it back, and checks the encoding is strict. Returns the bytes.
fn assert_binary_round_trip<T>(value: &T) -> Vec<u8>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = codec::encode(value);
    let back: T = codec::decode("value", &bytes, NO_LIMIT).unwrap();
    assert_eq!(&back, value);
    assert_strict_encoding(&bytes, |b| codec::decode::<T>("value", b, NO_LIMIT).is_ok());
    assert_eq!(
        codec::decode::<T>("value", &appended(&bytes), NO_LIMIT),
        Err(DecodeError::TrailingBytes {
            what: "value",
            extra: 1
        })
    );
    bytes
}

/// Every strict prefix of `bytes` and `bytes` plus one byte are refused by `accepts`.
fn assert_strict_encoding(bytes: &[u8], accepts: impl Fn(&[u8]) -> bool) {
    for cut in 0..bytes.len() {
        assert!(
            !accepts(&bytes[..cut]),
            "a {cut}-byte prefix of {} bytes was accepted",
            bytes.len()
        );
    }
    for extra in [0x00, 0x01, 0xff] {
        let mut longer = bytes.to_vec();
        longer.push(extra);
        assert!(!accepts(&longer), "a trailing {extra:#04x} was accepted");
    }
}

fn appended(bytes: &[u8]) -> Vec<u8> {
    let mut longer = bytes.to_vec();
    longer.push(0);
    longer
}

/// `Display` then `FromStr` gives the value back. Returns the text.
fn assert_text_round_trip<T>(value: &T) -> String
where
    T: Display + FromStr + PartialEq + Debug,
    T::Err: Debug,
{
    let text = value.to_string();
    assert_eq!(&text.parse::<T>().unwrap(), value, "text {text:?}");
    text
}

/// A one-field document, since TOML needs a table at the top.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Doc<T> {
    value: T,
}

/// The value survives TOML and JSON (serde's human-readable path). Returns the JSON value.
fn assert_serde_text_round_trip<T>(value: &T) -> serde_json::Value
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone,
{
    let doc = Doc {
        value: value.clone(),
    };
    let toml_text = toml::to_string(&doc).unwrap();
    assert_eq!(
        toml::from_str::<Doc<T>>(&toml_text).unwrap(),
        doc,
        "{toml_text}"
    );
    let json_text = serde_json::to_string(&doc).unwrap();
    assert_eq!(serde_json::from_str::<Doc<T>>(&json_text).unwrap(), doc);
    serde_json::to_value(value).unwrap()
}

/// For keys: the JSON/TOML form is exactly the `Display` form.
fn assert_serde_text_is_display<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone + Display,
{
    let json = assert_serde_text_round_trip(value);
    assert_eq!(json, serde_json::Value::String(value.to_string()));
}

// ----- helpers: strategies -----

fn seed() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn kem() -> impl Strategy<Value = KemAlgorithm> {
    prop_oneof![Just(KemAlgorithm::XWing), Just(KemAlgorithm::X25519)]
}

fn agency_kind() -> impl Strategy<Value = AgencyKind> {
    prop::sample::select(vec![
        AgencyKind::City,
        AgencyKind::Probation,
        AgencyKind::Prison,
        AgencyKind::Police,
        AgencyKind::Court,
        AgencyKind::Ngo,
        AgencyKind::Other,
    ])
}

/// Ids that follow `AGENCY_ID_RULE`.
fn agency_id_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z][a-z0-9-]{0,31}", 2..=4)
        .prop_map(|labels| labels.join("."))
        .prop_filter("at most MAX_AGENCY_ID_LEN bytes", |id| {
            id.len() <= MAX_AGENCY_ID_LEN
        })
}

fn agency_id() -> impl Strategy<Value = AgencyId> {
    agency_id_text().prop_map(|id| AgencyId::new(&id).unwrap())
}

/// Ids that break `AGENCY_ID_RULE` in one way each.
fn invalid_agency_id_text() -> impl Strategy<Value = String> {
    let forbidden = prop::sample::select(vec!['A', 'Z', '_', ' ', '/', ':', 'é', '\u{1b}', '\0']);
    prop_oneof![
        // A single label.
        "[a-z][a-z0-9-]{0,31}",
        // A label starting with a digit or '-'.
        (agency_id_text(), "[0-9-][a-z0-9-]{0,5}").prop_map(|(id, bad)| format!("{bad}.{id}")),
        // An empty label at the start, the end or the middle.
        agency_id_text().prop_map(|id| format!(".{id}")),
        agency_id_text().prop_map(|id| format!("{id}.")),
        agency_id_text().prop_map(|id| id.replacen('.', "..", 1)),
        // A character that is never allowed, anywhere.
        (agency_id_text(), any::<prop::sample::Index>(), forbidden).prop_map(|(id, at, c)| {
            let mut id = id;
            id.insert(at.index(id.len() + 1), c);
            id
        }),
        // A label over MAX_AGENCY_ID_LABEL_LEN.
        ("[a-z]{33,40}", "[a-z]{1,10}").prop_map(|(long, short)| format!("{short}.{long}")),
        // Valid labels, too long in all.
        prop::collection::vec("[a-z]{20,32}", 4..=5).prop_map(|labels| labels.join(".")),
    ]
}

/// Seconds that RFC 3339 (years 1970 to 9999) can show.
fn rfc3339_timestamp() -> impl Strategy<Value = Timestamp> {
    (0..=LAST_RFC3339_SECOND).prop_map(Timestamp)
}

fn signature() -> impl Strategy<Value = Signature> {
    prop::collection::vec(any::<u8>(), 64).prop_map(|v| Signature(v.try_into().unwrap()))
}

fn group_name() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,64}"
}

/// A key certificate of either kind, from seeds (so failures reproduce).
fn key_certificate() -> impl Strategy<Value = KeyCertificate> {
    let key = prop_oneof![
        seed()
            .prop_map(|s| CertifiedKey::Transport(TransportSecretKey::from_bytes(&s).public_key())),
        (kem(), seed()).prop_map(|(kem, s)| CertifiedKey::Encryption(
            EncryptionSecretKey::from_bytes(kem, &s)
                .unwrap()
                .public_key()
                .clone()
        )),
    ];
    (seed(), agency_id(), key, any::<u64>(), any::<u64>()).prop_map(
        |(signer, agency, key, not_before, not_after)| {
            KeyCertificate::issue(
                &SigningSecretKey::from_bytes(&signer),
                CertificateBody {
                    agency,
                    key,
                    not_before: Timestamp(not_before),
                    not_after: Timestamp(not_after),
                },
            )
        },
    )
}

fn revoked_key() -> impl Strategy<Value = RevokedKey> {
    (
        any::<[u8; 32]>(),
        prop::option::of(agency_id()),
        rfc3339_timestamp(),
    )
        .prop_map(|(fingerprint, agency, revoked_at)| RevokedKey {
            fingerprint: Fingerprint(fingerprint),
            agency,
            revoked_at,
        })
}

/// What a member is made from: its id and profile, key seeds and certificate validity.
type MemberSeed = (
    String,
    AgencyKind,
    String,
    Vec<String>,
    [u8; 32],
    [u8; 32],
    [u8; 32],
    (u64, u64),
);

fn member_seed() -> impl Strategy<Value = MemberSeed> {
    (
        "[A-Za-z][A-Za-z .'-]{0,60}",
        agency_kind(),
        "[A-Z]{2}",
        prop::collection::vec("[a-z][a-z0-9.-]{0,30}:[1-9][0-9]{0,3}", 0..=3),
        seed(),
        seed(),
        seed(),
        (0..LAST_RFC3339_SECOND).prop_flat_map(|nb| (Just(nb), nb + 1..=LAST_RFC3339_SECOND)),
    )
}

/// A member whose certificates its own (X25519) keys really signed.
fn member(id: AgencyId, seed: MemberSeed) -> Member {
    let (name, kind, country, addresses, signing, transport, encryption, (nb, na)) = seed;
    let secrets = AgencySecrets {
        signing: SigningSecretKey::from_bytes(&signing),
        transport: TransportSecretKey::from_bytes(&transport),
        previous_transport: None,
        encryption: vec![
            EncryptionSecretKey::from_bytes(KemAlgorithm::X25519, &encryption).unwrap(),
        ],
    };
    let (transport, encryption) = certify(&id, &secrets, Timestamp(nb), Timestamp(na));
    Member {
        id,
        name,
        kind,
        country: Country::new(&country).unwrap(),
        signing_key: secrets.signing.public_key(),
        transport: vec![transport],
        encryption: encryption.into_iter().collect(),
        addresses,
    }
}

/// A valid roster body built from real keys, and the steward keys that may sign it.
fn roster_body() -> impl Strategy<Value = (RosterBody, Vec<SigningSecretKey>)> {
    let members = prop::collection::btree_set(agency_id(), 0..=4).prop_flat_map(|ids| {
        let n = ids.len();
        (Just(ids), prop::collection::vec(member_seed(), n))
    });
    let groups = prop::collection::btree_map(group_name(), any::<u8>(), 0..=3);
    (
        "[A-Za-z0-9 .-]{1,64}",
        any::<u64>(),
        (0..LAST_RFC3339_SECOND).prop_flat_map(|at| (Just(at), at + 1..=LAST_RFC3339_SECOND)),
        prop::collection::vec(seed(), 1..=3),
        any::<prop::sample::Index>(),
        members,
        groups,
        prop::collection::vec(revoked_key(), 0..=4),
    )
        .prop_map(
            |(
                federation,
                serial,
                (issued, expires),
                steward_seeds,
                threshold,
                members,
                groups,
                revoked,
            )| {
                let stewards: Vec<SigningSecretKey> = steward_seeds
                    .iter()
                    .map(SigningSecretKey::from_bytes)
                    .collect();
                let (ids, seeds) = members;
                let ids: Vec<AgencyId> = ids.into_iter().collect();
                let members: Vec<Member> = ids
                    .iter()
                    .cloned()
                    .zip(seeds)
                    .map(|(id, s)| member(id, s))
                    .collect();
                let groups = groups
                    .into_iter()
                    .map(|(name, mask)| Group {
                        name,
                        members: ids
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, id)| id.clone())
                            .collect(),
                    })
                    .collect();
                let body = RosterBody {
                    federation,
                    serial,
                    issued_at: Timestamp(issued),
                    expires_at: Timestamp(expires),
                    stewards: StewardSet {
                        threshold: u8::try_from(threshold.index(stewards.len()) + 1).unwrap(),
                        keys: stewards.iter().map(SigningSecretKey::public_key).collect(),
                    },
                    members,
                    groups,
                    revoked,
                };
                (body, stewards)
            },
        )
}

fn public_keys(secrets: &AgencySecrets) -> Vec<String> {
    let mut out = vec![
        secrets.signing.public_key().to_string(),
        secrets.transport.public_key().to_string(),
        format!(
            "{:?}",
            secrets
                .previous_transport
                .as_ref()
                .map(TransportSecretKey::public_key)
        ),
    ];
    out.extend(
        secrets
            .encryption
            .iter()
            .map(|k| k.public_key().to_string()),
    );
    out
}

// ----- identities -----

proptest! {
    #[test]
    fn agency_id_round_trips(text in agency_id_text()) {
        let id = AgencyId::new(&text).unwrap();
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(assert_text_round_trip(&id), text.clone());
        let bytes = assert_binary_round_trip(&id);
        prop_assert_eq!(bytes, codec::encode(&text));
        prop_assert_eq!(assert_serde_text_round_trip(&id), serde_json::Value::String(text));
    }

    #[test]
    fn invalid_agency_ids_are_refused_everywhere(text in invalid_agency_id_text()) {
        prop_assert!(AgencyId::new(&text).is_err(), "{:?} was accepted", text);
        prop_assert!(text.parse::<AgencyId>().is_err());
        // Decoding validates too: a file cannot smuggle in an id the constructor refuses.
        let decoded = codec::decode::<AgencyId>("id", &codec::encode(&text), NO_LIMIT);
        prop_assert_eq!(decoded, Err(DecodeError::Malformed { what: "id" }));
        prop_assert!(serde_json::from_value::<AgencyId>(serde_json::Value::String(text)).is_err());
    }

    #[test]
    fn agency_id_label_limit_is_per_label(label in "[a-z]{1,40}") {
        let id = format!("nl.{label}");
        prop_assert_eq!(AgencyId::new(&id).is_ok(), label.len() <= MAX_AGENCY_ID_LABEL_LEN);
    }

    #[test]
    fn country_round_trips(code in "[a-zA-Z]{2}") {
        let country = Country::new(&code).unwrap();
        let upper = code.to_ascii_uppercase();
        prop_assert_eq!(country.as_str(), upper.as_str());
        prop_assert_eq!(assert_text_round_trip(&country), upper.clone());
        assert_binary_round_trip(&country);
        assert_serde_text_round_trip(&country);
        // People may type lower case; files and messages carry upper case only.
        let decoded = codec::decode::<Country>("country", &codec::encode(&code), NO_LIMIT);
        prop_assert_eq!(decoded.is_ok(), code == upper);
    }

    #[test]
    fn invalid_countries_are_refused(code in ".{0,4}") {
        let two_letters = code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic());
        prop_assert_eq!(Country::new(&code).is_ok(), two_letters);
        if !two_letters {
            prop_assert!(codec::decode::<Country>("c", &codec::encode(&code), NO_LIMIT).is_err());
        }
    }
}

// ----- time -----

proptest! {
    #[test]
    fn timestamp_rfc3339_round_trips(t in rfc3339_timestamp()) {
        let text = t.to_rfc3339();
        prop_assert_eq!(text.len(), "2026-11-25T12:00:00Z".len());
        prop_assert_eq!(Timestamp::parse_rfc3339(&text), Some(t));
        prop_assert_eq!(t.to_string(), text.clone());
        // The date alone means midnight UTC.
        let date = &text[..10];
        prop_assert_eq!(Timestamp::parse_rfc3339(date), Some(Timestamp(t.0 - t.0 % 86_400)));
        assert_binary_round_trip(&t);
        assert_serde_text_round_trip(&t);
    }

    #[test]
    fn timestamp_text_sorts_like_the_number(a in rfc3339_timestamp(), b in rfc3339_timestamp()) {
        prop_assert_eq!(a.cmp(&b), a.to_rfc3339().cmp(&b.to_rfc3339()));
    }

    #[test]
    fn timestamps_after_9999_do_not_parse_back(t in LAST_RFC3339_SECOND + 1..) {
        prop_assert_eq!(Timestamp::parse_rfc3339(&Timestamp(t).to_rfc3339()), None);
        assert_binary_round_trip(&Timestamp(t));
    }
}

// ----- public keys, signatures, fingerprints -----

proptest! {
    #[test]
    fn signing_public_key_round_trips(s in seed()) {
        let key = SigningSecretKey::from_bytes(&s).public_key();
        prop_assert!(assert_text_round_trip(&key).starts_with("ed25519:"));
        prop_assert_eq!(assert_binary_round_trip(&key), key.to_bytes().to_vec());
        assert_serde_text_is_display(&key);
        prop_assert!(key.to_string().parse::<TransportPublicKey>().is_err());
    }

    #[test]
    fn arbitrary_32_bytes_decode_as_a_signing_key_only_if_valid(bytes in any::<[u8; 32]>()) {
        let direct = SigningPublicKey::from_bytes(&bytes);
        let decoded = codec::decode::<SigningPublicKey>("key", &bytes, 32);
        prop_assert_eq!(direct.is_ok(), decoded.is_ok());
        if let Ok(key) = direct {
            assert_binary_round_trip(&key);
        }
    }

    #[test]
    fn transport_public_key_round_trips(s in seed()) {
        let key = TransportSecretKey::from_bytes(&s).public_key();
        prop_assert!(assert_text_round_trip(&key).starts_with("tls-ed25519:"));
        prop_assert_eq!(assert_binary_round_trip(&key), key.to_bytes().to_vec());
        assert_serde_text_is_display(&key);
        prop_assert!(key.to_string().parse::<SigningPublicKey>().is_err());

        let der = key.to_spki_der();
        prop_assert_eq!(der.len(), 44);
        prop_assert_eq!(TransportPublicKey::from_spki_der(&der).unwrap(), key);
        assert_strict_encoding(&der, |d| TransportPublicKey::from_spki_der(d).is_ok());
    }

    #[test]
    fn signature_round_trips(sig in signature()) {
        prop_assert_eq!(assert_binary_round_trip(&sig), sig.0.to_vec());
        let json = assert_serde_text_round_trip(&sig);
        prop_assert!(json.as_str().unwrap().starts_with("sig:"));
    }

    #[test]
    fn real_signatures_verify_after_a_round_trip(s in seed(), message in prop::collection::vec(any::<u8>(), 0..64)) {
        let key = SigningSecretKey::from_bytes(&s);
        let sig = key.sign(SignatureDomain::Document, &message);
        let back: Signature = codec::decode("sig", &codec::encode(&sig), 64).unwrap();
        prop_assert!(key.public_key().verify(SignatureDomain::Document, &message, &back).is_ok());
    }

    #[test]
    fn fingerprint_round_trips_and_matches_its_texts(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let fp = Fingerprint(a);
        let text = assert_text_round_trip(&fp);
        prop_assert!(text.starts_with("SHA256:"));
        prop_assert_eq!(assert_binary_round_trip(&fp), a.to_vec());
        assert_serde_text_is_display(&fp);

        let spoken = fp.spoken();
        prop_assert_eq!(spoken.len(), 8 * 5 + 7);
        for form in [&text, &spoken, &spoken.replace(' ', "-"), &spoken.replace(' ', "")] {
            prop_assert!(fp.matches_text(form), "{} does not match {}", fp, form);
        }
        prop_assume!(a != b);
        let other = Fingerprint(b);
        prop_assert!(!fp.matches_text(&other.to_string()));
        prop_assert!(!fp.matches_text(&other.spoken()));
    }

    #[test]
    fn steward_signature_round_trips(s in seed(), signature in signature()) {
        let sig = StewardSignature { key: SigningSecretKey::from_bytes(&s).public_key(), signature };
        prop_assert_eq!(assert_binary_round_trip(&sig).len(), 32 + 64);
        assert_serde_text_round_trip(&sig);
    }
}

proptest! {
    // X-Wing key expansion costs about a millisecond: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn encryption_public_key_round_trips(kem in kem(), s in seed()) {
        let secret = EncryptionSecretKey::from_bytes(kem, &s).unwrap();
        let key = secret.public_key();
        prop_assert_eq!(key.algorithm(), kem);
        let text = assert_text_round_trip(key);
        let prefix = match kem {
            KemAlgorithm::XWing => "xwing:",
            KemAlgorithm::X25519 => "x25519:",
        };
        prop_assert!(text.starts_with(prefix), "{}", text);
        assert_binary_round_trip(key);
        assert_serde_text_is_display(key);
        // The secret half restores to the same public key.
        let restored = EncryptionSecretKey::from_bytes(kem, &secret.to_bytes()).unwrap();
        prop_assert_eq!(restored.public_key(), key);
    }

    #[test]
    fn agency_secrets_round_trip(first in kem(), rotations in prop::collection::vec(kem(), 0..4)) {
        let mut secrets = AgencySecrets::generate(first);
        for kem in &rotations {
            prop_assert!(secrets.rotate(*kem).is_empty());
        }
        prop_assert_eq!(secrets.encryption.len(), rotations.len() + 1);
        prop_assert_eq!(secrets.previous_transport.is_some(), !rotations.is_empty());
        let bytes = secrets.to_bytes();
        let back = AgencySecrets::from_bytes(&bytes).unwrap();
        prop_assert_eq!(public_keys(&back), public_keys(&secrets));
        prop_assert_eq!(&*back.to_bytes(), &*bytes);
        assert_strict_encoding(&bytes, |b| AgencySecrets::from_bytes(b).is_ok());
    }
}

// ----- certificates and roster parts -----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn key_certificate_round_trips(cert in key_certificate(), signer in seed()) {
        let bytes = cert.to_bytes();
        prop_assert_eq!(&codec::encode(&cert), &bytes);
        let back = KeyCertificate::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &cert);
        assert_strict_encoding(&bytes, |b| KeyCertificate::from_bytes(b).is_ok());
        assert_binary_round_trip(&cert);
        let json = assert_serde_text_round_trip(&cert);
        prop_assert!(json.as_str().unwrap().starts_with("cert:"));
        // Only the issuer's key verifies it, before and after the trip.
        let wrong = SigningSecretKey::from_bytes(&signer).public_key();
        prop_assert!(back.verify(&wrong).is_err());
    }

    #[test]
    fn issued_certificates_verify_after_a_round_trip(s in seed(), agency in agency_id(), nb in any::<u64>(), na in any::<u64>()) {
        let signer = SigningSecretKey::from_bytes(&s);
        let key = CertifiedKey::Transport(TransportSecretKey::from_bytes(&s).public_key());
        let body = CertificateBody { agency, key, not_before: Timestamp(nb), not_after: Timestamp(na) };
        let cert = KeyCertificate::issue(&signer, body.clone());
        let back = KeyCertificate::from_bytes(&cert.to_bytes()).unwrap();
        prop_assert_eq!(back.body(), &body);
        prop_assert!(back.verify(&signer.public_key()).is_ok());
    }

    #[test]
    fn revoked_key_round_trips(revoked in revoked_key()) {
        assert_binary_round_trip(&revoked);
        let json = assert_serde_text_round_trip(&revoked);
        prop_assert_eq!(json["agency"].is_null(), revoked.agency.is_none());
    }

    #[test]
    fn group_round_trips(name in group_name(), members in prop::collection::vec(agency_id(), 0..8)) {
        prop_assert!(name.len() <= MAX_GROUP_NAME_LEN);
        let group = Group { name, members };
        assert_binary_round_trip(&group);
        assert_serde_text_round_trip(&group);
    }
}

proptest! {
    // Each case makes up to 3 stewards and 4 members with certificates.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn signed_roster_round_trips((body, stewards) in roster_body()) {
        assert_binary_round_trip(&body);
        let json = serde_json::to_string(&body).unwrap();
        prop_assert_eq!(&serde_json::from_str::<RosterBody>(&json).unwrap(), &body);

        let signers: Vec<&SigningSecretKey> = stewards.iter().collect();
        let file = SignedRoster::sign(&body, &signers).to_bytes();
        let parsed = SignedRoster::parse(&file).unwrap();
        prop_assert_eq!(&parsed.body, &body);
        prop_assert_eq!(parsed.to_bytes(), file.clone());
        assert_strict_encoding(&file, |f| SignedRoster::parse(f).is_ok());

        let pin = body.stewards.fingerprint().to_string();
        let roster = Roster::accept_first(&file, &pin, body.issued_at).unwrap();
        prop_assert_eq!(roster.file_bytes(), &file[..]);
        prop_assert_eq!(roster.signer_count(), stewards.len());
        let ids: BTreeSet<&AgencyId> = body.members.iter().map(|m| &m.id).collect();
        for id in ids {
            prop_assert!(roster.member(id).is_some());
        }
    }
}
