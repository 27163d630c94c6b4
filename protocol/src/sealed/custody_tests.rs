//! Originator custody and forwarding, in memory: masked stanzas, shares, consent stanzas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::{KemAlgorithm, Timestamp};

use super::tests::{
    CREATED, TestAgency, agency, city, court, policy, seal_contents_with, sender, trust,
};
use super::*;
use crate::wire::{CUSTODY_VERSION, ForwardConsentBody};

const REPORT: &[u8] = b"Pre-sentence report";
const ANNEX: &[u8] = b"Annex";

fn open_as(
    sealed: &[u8],
    who: &TestAgency,
    share: Option<&OriginatorShare>,
    forwarded: Option<&ForwardConsentBody>,
) -> Result<(OpenedDocument, Vec<Vec<u8>>), OpenError> {
    let opener = Opener {
        me: &who.id,
        keys: std::slice::from_ref(&who.encryption),
        signer: &trust(&sender()),
        now: Timestamp(CREATED.0 + 60),
        share,
        forwarded,
    };
    open_with(sealed, &opener, |_| Ok(Vec::new()))
}

#[test]
fn originator_custody_needs_the_right_share() {
    let (sealed, secrets) = seal_contents_with(
        &[("main", REPORT), ("annex", ANNEX)],
        &[
            (&court(), policy(&[0, 1], None)),
            (&city(), policy(&[0], None)),
        ],
        KeyCustody::Originator,
    )
    .unwrap();
    let secrets = secrets.unwrap();
    assert_eq!(secrets.masked_keys.len(), 2);
    let (doc, staged) = open_as(&sealed, &court(), Some(&secrets.share), None).unwrap();
    assert_eq!(doc.info.custody, KeyCustody::Originator);
    assert_eq!(staged, vec![REPORT.to_vec(), ANNEX.to_vec()]);
    assert_eq!(
        open_as(&sealed, &city(), None, None).unwrap_err().kind(),
        ErrorKind::ShareRequired
    );
    let wrong = OriginatorShare::from_bytes([0; 32]);
    assert_eq!(
        open_as(&sealed, &city(), Some(&wrong), None)
            .unwrap_err()
            .kind(),
        ErrorKind::VerificationFailed
    );
    // An offline document ignores a share.
    let (offline, none) = seal_contents_with(
        &[("main", REPORT)],
        &[(&city(), policy(&[0], None))],
        KeyCustody::Offline,
    )
    .unwrap();
    assert!(none.is_none());
    assert!(open_as(&offline, &city(), None, None).is_ok());
    assert!(open_as(&offline, &city(), Some(&wrong), None).is_ok());
}

#[test]
fn a_consent_stanza_opens_for_the_new_reader_only() {
    let (sealed, secrets) = seal_contents_with(
        &[("main", REPORT), ("annex", ANNEX)],
        &[
            (&court(), policy(&[0], None)),
            (
                &agency("be.city.gent", KemAlgorithm::X25519),
                policy(&[1], None),
            ),
        ],
        KeyCustody::Originator,
    )
    .unwrap();
    let secrets = secrets.unwrap();
    let info = verify(sealed.as_slice(), &trust(&sender())).unwrap();
    // The new reader: the city, given section 0 (the forwarder's) by the originator.
    let new_reader = city();
    let masked: Vec<_> = secrets
        .masked_keys
        .iter()
        .filter(|(i, _)| *i == 0)
        .cloned()
        .collect();
    let (enc, ciphertext) = seal_forward_stanza(
        new_reader.encryption.public_key(),
        info.document_id.0,
        &new_reader.id,
        &masked,
    )
    .unwrap();
    let consent = ForwardConsentBody {
        version: CUSTODY_VERSION,
        document_id: info.document_id.0,
        originator: sender().id,
        forwarder: court().id,
        new_reader: new_reader.id.clone(),
        sections: vec![0],
        not_after: None,
        reason: "joint supervision".into(),
        consented_at: CREATED,
        key_fingerprint: new_reader.encryption.public_key().fingerprint(),
        kem: KemAlgorithm::X25519,
        enc,
        ciphertext,
    };
    let (doc, staged) =
        open_as(&sealed, &new_reader, Some(&secrets.share), Some(&consent)).unwrap();
    assert_eq!(staged, vec![REPORT.to_vec()]);
    assert_eq!(doc.policy.sections, vec![0]);
    // Still needs the share.
    assert_eq!(
        open_as(&sealed, &new_reader, None, Some(&consent))
            .unwrap_err()
            .kind(),
        ErrorKind::ShareRequired
    );
    // Not for anyone else, nor for another document's consent.
    assert_eq!(
        open_as(&sealed, &court(), Some(&secrets.share), Some(&consent))
            .unwrap_err()
            .kind(),
        ErrorKind::NotAddressedToYou
    );
    let mut other = consent.clone();
    other.document_id[0] ^= 1;
    assert_eq!(
        open_as(&sealed, &new_reader, Some(&secrets.share), Some(&other))
            .unwrap_err()
            .kind(),
        ErrorKind::NotAddressedToYou
    );
    // A consent claiming the annex too does not fit its stanza.
    let mut greedy = consent.clone();
    greedy.sections = vec![0, 1];
    assert!(open_as(&sealed, &new_reader, Some(&secrets.share), Some(&greedy)).is_err());
    // The prefix round-trips.
    let mut file = forward_prefix(b"consent bytes");
    file.extend_from_slice(&sealed);
    assert!(is_forwarded(&file));
    let mut reader = file.as_slice();
    assert_eq!(read_forward_prefix(&mut reader).unwrap(), b"consent bytes");
    assert_eq!(reader, sealed.as_slice());
    assert!(read_forward_prefix(&mut &file[..12]).is_err());
}
