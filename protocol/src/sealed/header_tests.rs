//! Tests of the header: round trips, truncation, and every limit at the limit and one past.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::{AgencyId, Fingerprint, KemAlgorithm, SigningSecretKey, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::sealed::ErrorKind;

fn recipient(name: &str, kem: KemAlgorithm, sections: Vec<u8>) -> RecipientEntry {
    let n = sections.len();
    RecipientEntry {
        agency: AgencyId::new(name).unwrap(),
        key_fingerprint: Fingerprint([7; 32]),
        kem,
        policy: RecipientPolicy {
            sections,
            not_after: Some(Timestamp(5)),
            forward_to: vec![AgencyId::new("be.city.gent").unwrap()],
        },
        stanza: Stanza {
            enc: vec![1; kem.encapped_len()],
            ciphertext: vec![2; stanza_ciphertext_len(n)],
        },
    }
}

fn header(sections: usize, recipients: usize) -> Header {
    let all: Vec<u8> = (0..sections as u8).collect();
    Header {
        document_id: DocumentId([9; 16]),
        sender: AgencyId::new("nl.probation.utrecht").unwrap(),
        sender_key: SigningSecretKey::from_bytes(&[1; 32]).public_key(),
        created: Timestamp(1_790_000_000),
        label: "restricted".into(),
        purpose: "advice".into(),
        custody: KeyCustody::Originator,
        sections: (0..sections)
            .map(|i| SectionInfo {
                name: format!("s{i}"),
                padded_len: 1000,
            })
            .collect(),
        recipients: (0..recipients)
            .map(|i| recipient(&format!("nl.city.c{i}"), KemAlgorithm::X25519, all.clone()))
            .collect(),
    }
}

fn read(header: &Header) -> Result<ParsedHeader, OpenError> {
    read_framed(&codec::encode(header))
}

fn read_framed(body: &[u8]) -> Result<ParsedHeader, OpenError> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(body);
    read_header(&mut bytes.as_slice())
}

fn kind(result: Result<ParsedHeader, OpenError>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind())
}

#[test]
fn label_and_purpose_limits() {
    let mut h = header(1, 1);
    h.label = "l".repeat(MAX_LABEL_LEN);
    h.purpose = "p".repeat(MAX_PURPOSE_LEN);
    assert!(read(&h).is_ok());
    h.label.push('l');
    assert_eq!(kind(read(&h)), Some(ErrorKind::LimitExceeded));
    h.label = "l".repeat(MAX_LABEL_LEN);
    h.purpose.push('p');
    assert_eq!(kind(read(&h)), Some(ErrorKind::LimitExceeded));
    h.purpose = String::new();
    assert!(read(&h).is_ok());
    h.label = String::new();
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
    h.label = "bad\nlabel".into();
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
}

#[test]
fn clear_text_that_reorders_or_hides_what_is_shown_is_refused() {
    // "confidential" written backwards behind a right-to-left override, a zero-width space,
    // a bidirectional isolate, a byte-order mark.
    for spoof in [
        "\u{202E}laitnedifnoc",
        "public\u{200B}",
        "\u{2067}x\u{2069}",
        "\u{FEFF}label",
    ] {
        let mut h = header(1, 1);
        h.label = spoof.into();
        assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed), "{spoof:?}");
        let mut h = header(1, 1);
        h.purpose = spoof.into();
        assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed), "{spoof:?}");
    }
    // What right-to-left and other scripts need in ordinary words stays allowed: a
    // zero-width non-joiner (Persian), a right-to-left mark.
    let mut h = header(1, 1);
    h.label = "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}".into();
    h.purpose = "\u{05E2}\u{05D1}\u{05E8}\u{05D9}\u{05EA}\u{200F} 17".into();
    assert!(read(&h).is_ok());
}

#[test]
fn section_and_recipient_count_limits() {
    assert!(read(&header(MAX_SECTIONS, 1)).is_ok());
    assert_eq!(
        kind(read(&header(MAX_SECTIONS + 1, 1))),
        Some(ErrorKind::LimitExceeded)
    );
    assert!(read(&header(1, MAX_RECIPIENTS)).is_ok());
    assert_eq!(
        kind(read(&header(1, MAX_RECIPIENTS + 1))),
        Some(ErrorKind::LimitExceeded)
    );
    assert_eq!(kind(read(&header(0, 1))), Some(ErrorKind::Malformed));
    assert_eq!(kind(read(&header(1, 0))), Some(ErrorKind::Malformed));
}

#[test]
fn a_header_of_many_tiny_sections_is_refused_before_they_are_decoded() {
    // Sections named `a` are 3 bytes each: about 349 000 of them fit in a 1 MiB header.
    let mut h = header(1, 1);
    let count = (MAX_HEADER_LEN - 4096) / 3;
    h.sections = vec![
        SectionInfo {
            name: "a".into(),
            padded_len: 1,
        };
        count
    ];
    let body = codec::encode(&h);
    assert!(body.len() <= MAX_HEADER_LEN);
    match read_framed(&body) {
        Err(OpenError::LimitExceeded { what, len, max }) => {
            assert_eq!(
                (what, len, max),
                ("sections", count as u64, MAX_SECTIONS as u64)
            );
        }
        other => panic!("{other:?}"),
    }
    // Refused on the declared count alone, before the first section is decoded: with the
    // sections replaced by bytes that do not decode as one, it is still over the limit.
    let mut empty = h.clone();
    empty.sections.clear();
    let before_count = codec::encode(&empty).len() - 1 - codec::encode(&h.recipients).len();
    let mut garbage = body[..before_count + codec::encode(&count).len()].to_vec();
    garbage.resize(body.len(), 0xff);
    assert_eq!(kind(read_framed(&garbage)), Some(ErrorKind::LimitExceeded));
    // The refusal is not remembered by the next header read.
    let mut trailing = codec::encode(&header(1, 1));
    trailing.push(0);
    assert_eq!(kind(read_framed(&trailing)), Some(ErrorKind::Malformed));
}

#[test]
fn section_name_and_length_limits() {
    let mut h = header(1, 1);
    h.sections[0].name = "a".repeat(MAX_SECTION_NAME_LEN);
    assert!(read(&h).is_ok());
    h.sections[0].name.push('a');
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
    h.sections[0].name = "main".into();
    h.sections[0].padded_len = MAX_PADDED_SECTION_LEN;
    assert!(read(&h).is_ok());
    h.sections[0].padded_len += 1;
    assert_eq!(kind(read(&h)), Some(ErrorKind::LimitExceeded));
    h.sections[0].padded_len = 0;
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
}

#[test]
fn header_length_limit() {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&(MAX_HEADER_LEN as u32 + 1).to_be_bytes());
    assert_eq!(
        kind(read_header(&mut bytes.as_slice())),
        Some(ErrorKind::LimitExceeded)
    );
    // At the limit the length is accepted; the (missing) body is then truncated.
    let mut at = bytes.clone();
    at[13] -= 1;
    assert_eq!(
        kind(read_header(&mut at.as_slice())),
        Some(ErrorKind::Truncated)
    );
    // A body of exactly MAX_HEADER_LEN bytes is read, and refused as malformed padding.
    let mut body = codec::encode(&header(1, 1));
    body.resize(MAX_HEADER_LEN, 0);
    assert_eq!(kind(read_framed(&body)), Some(ErrorKind::Malformed));
}

#[test]
fn structural_rules() {
    let mut h = header(2, 2);
    h.recipients[1].stanza.ciphertext.pop();
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed), "short stanza");
    let mut h = header(2, 2);
    h.recipients[0].stanza.enc.push(0);
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed), "long enc");
    let mut h = header(2, 2);
    h.recipients[1].agency = h.recipients[0].agency.clone();
    assert_eq!(
        kind(read(&h)),
        Some(ErrorKind::Malformed),
        "duplicate recipient"
    );
    let mut h = header(2, 1);
    h.recipients[0] = recipient("nl.city.c0", KemAlgorithm::X25519, vec![1, 0]);
    assert_eq!(
        kind(read(&h)),
        Some(ErrorKind::Malformed),
        "unsorted sections"
    );
    let mut h = header(2, 1);
    h.recipients[0] = recipient("nl.city.c0", KemAlgorithm::X25519, vec![0, 2]);
    assert_eq!(
        kind(read(&h)),
        Some(ErrorKind::Malformed),
        "index out of range"
    );
    let mut h = header(2, 1);
    h.recipients[0] = recipient("nl.city.c0", KemAlgorithm::X25519, vec![0]);
    assert_eq!(
        kind(read(&h)),
        Some(ErrorKind::Malformed),
        "section without reader"
    );
    let mut trailing = codec::encode(&header(1, 1));
    trailing.push(0);
    assert_eq!(
        kind(read_framed(&trailing)),
        Some(ErrorKind::Malformed),
        "trailing bytes"
    );
}

#[test]
fn forwarding_list_rules_and_limit() {
    let list = |n: usize| -> Vec<AgencyId> {
        (0..n)
            .map(|i| AgencyId::new(&format!("be.city.f{i:02}")).unwrap())
            .collect()
    };
    let mut h = header(1, 1);
    h.recipients[0].policy.forward_to = list(MAX_FORWARD_TO);
    assert!(read(&h).is_ok());
    h.recipients[0].policy.forward_to = list(MAX_FORWARD_TO + 1);
    assert_eq!(kind(read(&h)), Some(ErrorKind::LimitExceeded));
    // Not increasing, the recipient itself, the sender: malformed.
    let mut reversed = list(2);
    reversed.reverse();
    h.recipients[0].policy.forward_to = reversed;
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
    h.recipients[0].policy.forward_to = vec![h.recipients[0].agency.clone()];
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
    h.recipients[0].policy.forward_to = vec![h.sender.clone()];
    assert_eq!(kind(read(&h)), Some(ErrorKind::Malformed));
}

#[test]
fn prelude_errors() {
    assert_eq!(
        kind(read_header(&mut &b"LIAISE"[..])),
        Some(ErrorKind::Truncated)
    );
    assert_eq!(
        kind(read_header(&mut &b"LIAIZE\xd0\x0c\0\x01"[..])),
        Some(ErrorKind::NotSealedDocument)
    );
    assert_eq!(
        kind(read_header(&mut &b"PK\x03\x04"[..])),
        Some(ErrorKind::NotSealedDocument)
    );
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&[0xff, 0xff]);
    assert_eq!(
        kind(read_header(&mut v.as_slice())),
        Some(ErrorKind::UnsupportedVersion)
    );
}

fn arb_header() -> impl Strategy<Value = Header> {
    (
        any::<[u8; 16]>(),
        "[a-z]{1,8}\\.[a-z][a-z0-9-]{0,8}",
        any::<[u8; 32]>(),
        any::<u64>(),
        ("[a-zA-Z0-9 äé-]{1,20}", any::<bool>()),
        "[ -~]{0,80}",
        prop::collection::vec(1u64..=MAX_PADDED_SECTION_LEN, 1..=4),
        prop::collection::vec(
            (
                any::<bool>(),
                any::<Option<u64>>(),
                any::<bool>(),
                any::<[u8; 32]>(),
            ),
            1..=4,
        ),
    )
        .prop_map(
            |(id, sender, key_seed, created, (label, offline), purpose, lens, recips)| {
                let all: Vec<u8> = (0..lens.len() as u8).collect();
                Header {
                    document_id: DocumentId(id),
                    sender: AgencyId::new(&sender).unwrap(),
                    sender_key: SigningSecretKey::from_bytes(&key_seed).public_key(),
                    created: Timestamp(created),
                    label,
                    purpose,
                    custody: if offline {
                        KeyCustody::Offline
                    } else {
                        KeyCustody::Originator
                    },
                    sections: lens
                        .iter()
                        .enumerate()
                        .map(|(i, &padded_len)| SectionInfo {
                            name: format!("section-{i}"),
                            padded_len,
                        })
                        .collect(),
                    recipients: recips
                        .iter()
                        .enumerate()
                        .map(|(i, (xwing, not_after, forward, fp))| {
                            let kem = if *xwing {
                                KemAlgorithm::XWing
                            } else {
                                KemAlgorithm::X25519
                            };
                            let mut r = recipient(&format!("be.agency.a{i}"), kem, all.clone());
                            r.key_fingerprint = Fingerprint(*fp);
                            r.policy.not_after = not_after.map(Timestamp);
                            r.policy.forward_to = if *forward {
                                vec![AgencyId::new("zz.forward.target").unwrap()]
                            } else {
                                Vec::new()
                            };
                            r
                        })
                        .collect(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn header_round_trips_and_every_prefix_is_truncated(h in arb_header()) {
        let bytes = h.encode_with_prelude().unwrap();
        let parsed = read_header(&mut bytes.as_slice()).unwrap();
        prop_assert_eq!(&parsed.header, &h);
        prop_assert_eq!(&parsed.signed_prefix, &bytes);
        for cut in (0..bytes.len()).step_by(7) {
            prop_assert_eq!(kind(read_header(&mut &bytes[..cut])), Some(ErrorKind::Truncated));
        }
    }
}
