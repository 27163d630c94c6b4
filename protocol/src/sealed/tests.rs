//! End-to-end tests of sealing, opening and verifying, in memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::{
    AgencyId, EncryptionSecretKey, KemAlgorithm, SigningPublicKey, SigningSecretKey, Timestamp,
};
use std::io::BufRead;

use sha2::{Digest, Sha256};

use super::*;
use crate::sealed::header::read_header;
use crate::sealed::limits::*;

/// A test agency with keys derived from fixed seeds, as in the spec's test vectors.
pub(crate) struct TestAgency {
    pub(crate) id: AgencyId,
    pub(crate) signing: SigningSecretKey,
    pub(crate) encryption: EncryptionSecretKey,
}

pub(crate) fn agency(name: &str, kem: KemAlgorithm) -> TestAgency {
    let seed = |label: &str| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update(name.as_bytes());
        h.finalize().into()
    };
    TestAgency {
        id: AgencyId::new(name).unwrap(),
        signing: SigningSecretKey::from_bytes(&seed("liaise test signing key\n")),
        encryption: EncryptionSecretKey::from_bytes(kem, &seed("liaise test encryption key\n"))
            .unwrap(),
    }
}

pub(crate) fn sender() -> TestAgency {
    agency("nl.probation.utrecht", KemAlgorithm::XWing)
}
pub(crate) fn court() -> TestAgency {
    agency("nl.court.utrecht", KemAlgorithm::XWing)
}
pub(crate) fn city() -> TestAgency {
    agency("nl.city.utrecht", KemAlgorithm::X25519)
}

pub(crate) const CREATED: Timestamp = Timestamp(1_790_000_000);

pub(crate) fn policy(sections: &[u8], not_after: Option<u64>) -> RecipientPolicy {
    RecipientPolicy {
        sections: sections.to_vec(),
        not_after: not_after.map(Timestamp),
        forward_to: Vec::new(),
    }
}

pub(crate) fn trust(agency: &TestAgency) -> TrustedSigner {
    TrustedSigner {
        agency: agency.id.clone(),
        key: agency.signing.public_key(),
    }
}

/// Seals `contents` (section i named by `names[i]`) from `sender()` to `recipients`, offline.
pub(crate) fn seal_contents(
    contents: &[(&str, &[u8])],
    recipients: &[(&TestAgency, RecipientPolicy)],
) -> Result<Vec<u8>, SealError> {
    seal_contents_with(contents, recipients, KeyCustody::Offline).map(|(bytes, _)| bytes)
}

/// [`seal_contents`] with a choice of key custody; returns the originator's secrets too.
pub(crate) fn seal_contents_with(
    contents: &[(&str, &[u8])],
    recipients: &[(&TestAgency, RecipientPolicy)],
    custody: KeyCustody,
) -> Result<(Vec<u8>, Option<OriginatorSecrets>), SealError> {
    let from = sender();
    let mut readers: Vec<&[u8]> = contents.iter().map(|(_, c)| *c).collect();
    let sections = contents
        .iter()
        .zip(readers.iter_mut())
        .map(|((name, content), reader)| SectionInput {
            name: (*name).to_owned(),
            metadata: SectionMetadata {
                file_name: format!("{name}.txt"),
                media_type: "text/plain".into(),
                title: format!("The {name}"),
            },
            content_len: content.len() as u64,
            content: reader,
        })
        .collect();
    let request = SealRequest {
        sender: from.id.clone(),
        signing_key: &from.signing,
        created: CREATED,
        label: "restricted".into(),
        purpose: "pre-sentence advice".into(),
        custody,
        sections,
        recipients: recipients
            .iter()
            .map(|(a, p)| RecipientSpec {
                agency: a.id.clone(),
                key: a.encryption.public_key().clone(),
                policy: p.clone(),
            })
            .collect(),
    };
    let mut out = Vec::new();
    let summary = seal(request, &mut out)?;
    assert_eq!(summary.len, out.len() as u64);
    assert_eq!(
        summary.originator.is_some(),
        custody == KeyCustody::Originator
    );
    Ok((out, summary.originator))
}

fn open_as(
    sealed: &[u8],
    who: &TestAgency,
    now: u64,
) -> Result<(OpenedDocument, Vec<Vec<u8>>), OpenError> {
    open_in_memory(
        sealed,
        &who.id,
        std::slice::from_ref(&who.encryption),
        &trust(&sender()),
        Timestamp(now),
    )
}

fn two_section_doc() -> Vec<u8> {
    seal_contents(
        &[("main", b"the report"), ("annex", b"the annex")],
        &[
            (&court(), policy(&[0, 1], Some(CREATED.0 + 100))),
            (&city(), policy(&[0], None)),
        ],
    )
    .unwrap()
}

#[test]
fn each_recipient_reads_exactly_its_sections() {
    let sealed = two_section_doc();
    let (doc, staged) = open_as(&sealed, &court(), CREATED.0).unwrap();
    assert_eq!(staged, vec![b"the report".to_vec(), b"the annex".to_vec()]);
    assert_eq!(doc.sections.len(), 2);
    assert_eq!(doc.sections[1].metadata.file_name, "annex.txt");
    assert_eq!(doc.sections[1].metadata.title, "The annex");
    assert!(
        doc.sections[0]
            .sshsig_armored
            .starts_with("-----BEGIN SSH SIGNATURE-----")
    );
    assert_eq!(doc.info.sender, sender().id);
    assert_eq!(doc.info.label, "restricted");
    assert_eq!(doc.policy.sections, vec![0, 1]);

    let (doc, staged) = open_as(&sealed, &city(), CREATED.0 + 10_000).unwrap();
    assert_eq!(staged, vec![b"the report".to_vec()]);
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].name, "main");
}

/// After opening, stock `ssh-keygen -Y verify` confirms the origin of the content with an
/// allowed-signers line from the roster (skipped if ssh-keygen is not installed).
#[test]
fn opened_sections_verify_with_ssh_keygen() {
    use std::process::Command;
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        eprintln!("ssh-keygen not installed; skipping");
        return;
    }
    let sealed = two_section_doc();
    let (doc, staged) = open_as(&sealed, &court(), CREATED.0).unwrap();
    let dir = std::env::temp_dir().join(format!("liaise-open-sshsig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signers = dir.join("allowed_signers");
    let line = allowed_signers_line(&sender().id, &sender().signing.public_key());
    std::fs::write(&signers, format!("{line}\n")).unwrap();
    for (section, content) in doc.sections.iter().zip(&staged) {
        let name = sanitize_file_name(&section.metadata.file_name);
        std::fs::write(dir.join(&name), content).unwrap();
        std::fs::write(dir.join(format!("{name}.sig")), &section.sshsig_armored).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(&signers)
            .args(["-I", sender().id.as_str(), "-n", sshsig::NAMESPACE, "-s"])
            .arg(dir.join(format!("{name}.sig")))
            .stdin(std::fs::File::open(dir.join(&name)).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_without_private_keys() {
    let sealed = two_section_doc();
    let info = verify(sealed.as_slice(), &trust(&sender())).unwrap();
    assert_eq!(info.sender_key, sender().signing.public_key());
    assert_eq!(info.created, CREATED);
    assert_eq!(info.purpose, "pre-sentence advice");
    assert_eq!(
        info.sections
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["main", "annex"]
    );
    assert_eq!(info.recipients.len(), 2);
    assert_eq!(info.recipients[0].agency, court().id);
    assert_eq!(info.recipients[0].kem, KemAlgorithm::XWing);
    assert_eq!(info.recipients[1].kem, KemAlgorithm::X25519);
    assert_eq!(info.recipients[1].policy.sections, vec![0]);
    assert_eq!(
        info.recipients[0].key_fingerprint,
        court().encryption.public_key().fingerprint()
    );
}

#[test]
fn distinct_errors_for_the_reader() {
    let sealed = two_section_doc();
    let stranger = agency("be.city.gent", KemAlgorithm::X25519);
    assert!(matches!(
        open_as(&sealed, &stranger, CREATED.0),
        Err(OpenError::NotAddressedToYou { .. })
    ));
    // The right agency without the key the stanza was sealed to.
    let rotated = TestAgency {
        encryption: EncryptionSecretKey::generate(KemAlgorithm::XWing),
        ..court()
    };
    assert!(matches!(
        open_as(&sealed, &rotated, CREATED.0),
        Err(OpenError::NoMatchingKey { .. })
    ));
    // Expiry is inclusive of not_after.
    assert!(open_as(&sealed, &court(), CREATED.0 + 100).is_ok());
    assert!(matches!(
        open_as(&sealed, &court(), CREATED.0 + 101),
        Err(OpenError::Expired { .. })
    ));
    // The roster says the key is not the sender's.
    let wrong = TrustedSigner {
        agency: sender().id,
        key: court().signing.public_key(),
    };
    let err = verify(sealed.as_slice(), &wrong).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SignerRejected);
    let revoked = |_: &AgencyId, _: &SigningPublicKey, _: Timestamp| Err(SignerRejected::Revoked);
    assert!(matches!(
        verify(sealed.as_slice(), &revoked),
        Err(OpenError::SignerRejected {
            reason: SignerRejected::Revoked,
            ..
        })
    ));
    // Unknown version and foreign files.
    let mut v2 = sealed.clone();
    v2[9] = 2;
    assert!(matches!(
        verify(v2.as_slice(), &trust(&sender())),
        Err(OpenError::UnsupportedVersion { version: 2 })
    ));
    assert!(matches!(
        verify(&b"age-encryption.org/v1\n"[..], &trust(&sender())),
        Err(OpenError::NotSealedDocument)
    ));
    let mut extended = sealed;
    extended.push(0);
    assert!(matches!(
        open_as(&extended, &court(), CREATED.0),
        Err(OpenError::TrailingData)
    ));
}

#[test]
fn every_truncated_prefix_fails_as_truncated() {
    let sealed = seal_contents(&[("main", b"short")], &[(&city(), policy(&[0], None))]).unwrap();
    for cut in 0..sealed.len() {
        let prefix = &sealed[..cut];
        let err = open_as(prefix, &city(), CREATED.0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Truncated, "cut at {cut}: {err}");
        let err = verify(prefix, &trust(&sender())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Truncated, "cut at {cut}: {err}");
        let small_buffers = std::io::BufReader::with_capacity(5, prefix);
        let err = verify_buffered(small_buffers, &trust(&sender())).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Truncated,
            "cut at {cut}, buffered: {err}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_fails() {
    let sealed = seal_contents(
        &[("main", b"short"), ("notes", b"notes")],
        &[
            (&city(), policy(&[0, 1], None)),
            (&court(), policy(&[1], None)),
        ],
    )
    .unwrap();
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(
            open_as(&bad, &city(), CREATED.0).is_err(),
            "byte {i} as city"
        );
        assert!(
            verify(bad.as_slice(), &trust(&sender())).is_err(),
            "byte {i} verify"
        );
        let small_buffers = std::io::BufReader::with_capacity(3, bad.as_slice());
        assert!(
            verify_buffered(small_buffers, &trust(&sender())).is_err(),
            "byte {i} verify_buffered"
        );
    }
}

#[test]
fn buffered_verification_agrees_however_the_bytes_are_split() {
    // Three STREAM chunks in the first section, so buffers end inside and across chunks.
    let long: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let sealed = seal_contents(
        &[("main", &long), ("notes", b"notes")],
        &[(&city(), policy(&[0, 1], None))],
    )
    .unwrap();
    let expected = verify(sealed.as_slice(), &trust(&sender())).unwrap();
    for capacity in [1, 7, 4096, 65_552, 1 << 20] {
        let mut input = std::io::BufReader::with_capacity(capacity, sealed.as_slice());
        let info = verify_buffered(&mut input, &trust(&sender())).unwrap();
        assert_eq!(info, expected, "buffers of {capacity} bytes");
        // It stops right after the signature, as `verify` does: nothing is left to read.
        assert!(
            input.fill_buf().unwrap().is_empty(),
            "buffers of {capacity}"
        );
    }
    // A changed ciphertext byte in the middle of the long section is caught.
    let mut bad = sealed.clone();
    let middle = sealed.len() / 2;
    bad[middle] ^= 0x80;
    let err =
        verify_buffered(std::io::BufReader::new(bad.as_slice()), &trust(&sender())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VerificationFailed, "{err}");
}

#[test]
fn chunk_boundaries() {
    // Content lengths that put the padded plaintext exactly on, just under and just over
    // the 64 KiB chunk size (metadata "main.txt"/"text/plain"/"The main" is 28 bytes).
    let overhead = 12 + 28 + sshsig::SSHSIG_LEN;
    for content_len in [
        CHUNK_LEN - overhead - 1,
        CHUNK_LEN - overhead,
        CHUNK_LEN - overhead + 1,
        2 * CHUNK_LEN,
    ] {
        let content: Vec<u8> = (0..content_len).map(|i| (i % 253) as u8).collect();
        let sealed =
            seal_contents(&[("main", &content)], &[(&city(), policy(&[0], None))]).unwrap();
        let (_, staged) = open_as(&sealed, &city(), CREATED.0).unwrap();
        assert_eq!(staged[0], content);
        let parsed = read_header(&mut sealed.as_slice()).unwrap();
        let header_end = parsed.signed_prefix.len();
        let padded = parsed.header.sections[0].padded_len as usize;
        let chunks = padded.div_ceil(CHUNK_LEN);
        for k in 0..=chunks {
            let boundary = header_end + k * (CHUNK_LEN + TAG_LEN);
            for cut in [boundary.saturating_sub(1), boundary, boundary + 1] {
                if cut < sealed.len() {
                    let err = open_as(&sealed[..cut], &city(), CREATED.0).unwrap_err();
                    assert_eq!(
                        err.kind(),
                        ErrorKind::Truncated,
                        "len {content_len} cut {cut}"
                    );
                }
            }
        }
    }
}

#[test]
fn empty_content_and_streaming_large_content() {
    let sealed = seal_contents(&[("main", b"")], &[(&city(), policy(&[0], None))]).unwrap();
    let (doc, staged) = open_as(&sealed, &city(), CREATED.0).unwrap();
    assert!(staged[0].is_empty());
    assert_eq!(doc.sections[0].content_len, 0);
}

#[test]
fn declared_length_must_match_content() {
    let from = sender();
    for actual in [&b"abc"[..], &b"abcde"[..]] {
        let mut reader = actual;
        let request = SealRequest {
            sender: from.id.clone(),
            signing_key: &from.signing,
            created: CREATED,
            label: "restricted".into(),
            purpose: String::new(),
            custody: KeyCustody::Offline,
            sections: vec![SectionInput {
                name: "main".into(),
                metadata: SectionMetadata::default(),
                content_len: 4,
                content: &mut reader,
            }],
            recipients: vec![RecipientSpec {
                agency: city().id,
                key: city().encryption.public_key().clone(),
                policy: policy(&[0], None),
            }],
        };
        assert!(matches!(
            seal(request, &mut Vec::new()),
            Err(SealError::ContentLengthMismatch { .. })
        ));
    }
}

#[test]
fn seal_refuses_bad_requests() {
    let c = city();
    // Section index out of range, section without reader, duplicate recipient.
    assert!(seal_contents(&[("main", b"x")], &[(&c, policy(&[1], None))]).is_err());
    assert!(
        seal_contents(
            &[("main", b"x"), ("annex", b"y")],
            &[(&c, policy(&[0], None))]
        )
        .is_err()
    );
    assert!(
        seal_contents(
            &[("main", b"x")],
            &[(&c, policy(&[0], None)), (&c, policy(&[0], None))]
        )
        .is_err()
    );
    assert!(seal_contents(&[("Main", b"x")], &[(&c, policy(&[0], None))]).is_err());
    assert!(
        seal_contents(
            &[("main", b"x"), ("main", b"y")],
            &[(&c, policy(&[0, 1], None))]
        )
        .is_err()
    );
    assert!(seal_contents(&[("main", b"x")], &[(&c, policy(&[], None))]).is_err());
    assert!(seal_contents(&[("main", b"x")], &[]).is_err());
}

#[test]
fn section_and_recipient_limits() {
    let c = city();
    let names: Vec<String> = (0..=MAX_SECTIONS).map(|i| format!("s{i}")).collect();
    let contents: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let all: Vec<u8> = (0..MAX_SECTIONS as u8).collect();
    let sealed = seal_contents(&contents[..MAX_SECTIONS], &[(&c, policy(&all, None))]).unwrap();
    assert_eq!(
        open_as(&sealed, &c, CREATED.0).unwrap().1.len(),
        MAX_SECTIONS
    );
    let mut all_plus = all.clone();
    all_plus.push(MAX_SECTIONS as u8);
    assert!(matches!(
        seal_contents(&contents, &[(&c, policy(&all_plus, None))]),
        Err(SealError::LimitExceeded { .. })
    ));

    let many: Vec<TestAgency> = (0..=MAX_RECIPIENTS)
        .map(|i| agency(&format!("nl.city.c{i}"), KemAlgorithm::X25519))
        .collect();
    let specs: Vec<(&TestAgency, RecipientPolicy)> =
        many.iter().map(|a| (a, policy(&[0], None))).collect();
    let sealed = seal_contents(&[("main", b"x")], &specs[..MAX_RECIPIENTS]).unwrap();
    assert!(open_as(&sealed, &many[MAX_RECIPIENTS - 1], CREATED.0).is_ok());
    assert_eq!(
        verify(sealed.as_slice(), &trust(&sender()))
            .unwrap()
            .recipients
            .len(),
        MAX_RECIPIENTS
    );
    assert!(matches!(
        seal_contents(&[("main", b"x")], &specs),
        Err(SealError::LimitExceeded { .. })
    ));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any set of sections and any policies: each reader gets exactly its sections back.
        #[test]
        fn seal_open_round_trip(
            contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..=4),
            masks in prop::collection::vec(1u8..16, 1..=3),
        ) {
            let names: Vec<String> = (0..contents.len()).map(|i| format!("s{i}")).collect();
            let sections: Vec<(&str, &[u8])> =
                names.iter().zip(&contents).map(|(n, c)| (n.as_str(), c.as_slice())).collect();
            let agencies: Vec<TestAgency> = (0..masks.len())
                .map(|i| agency(&format!("nl.city.r{i}"), KemAlgorithm::X25519))
                .collect();
            let n = contents.len() as u8;
            let mut policies: Vec<Vec<u8>> = masks
                .iter()
                .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect::<Vec<u8>>())
                .collect();
            // Every section needs a reader and every reader a section: the first reads all.
            policies[0] = (0..n).collect();
            for p in &mut policies {
                if p.is_empty() {
                    p.push(0);
                }
            }
            let specs: Vec<(&TestAgency, RecipientPolicy)> =
                agencies.iter().zip(&policies).map(|(a, p)| (a, policy(p, None))).collect();
            let sealed = seal_contents(&sections, &specs).unwrap();
            for (a, p) in agencies.iter().zip(&policies) {
                let (doc, staged) = open_as(&sealed, a, CREATED.0).unwrap();
                let expected: Vec<Vec<u8>> = p.iter().map(|&i| contents[i as usize].clone()).collect();
                prop_assert_eq!(staged, expected);
                prop_assert_eq!(doc.sections.iter().map(|s| s.index).collect::<Vec<_>>(), p.clone());
            }
        }
    }
}
