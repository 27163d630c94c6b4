//! Tests of the originator-control statements: signing, binding, limits, flipped bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::{AgencyId, EncryptionSecretKey, KemAlgorithm, SigningSecretKey, Timestamp};

use super::*;

fn request() -> ShareRequestBody {
    ShareRequestBody {
        version: CUSTODY_VERSION,
        document_id: [7; 16],
        originator: AgencyId::new("nl.probation.utrecht").unwrap(),
        requester: AgencyId::new("nl.court.utrecht").unwrap(),
        reason: "hearing on 12 March".into(),
        requested_at: Timestamp(1_800_000_000),
        nonce: [9; 16],
    }
}

#[test]
fn share_release_round_trip_and_binding() {
    for kem in [KemAlgorithm::XWing, KemAlgorithm::X25519] {
        let originator = SigningSecretKey::generate();
        let reader = EncryptionSecretKey::generate(kem);
        let share = OriginatorShare::from_bytes([42; 32]);
        let req = request();
        let body = ShareReleaseBody::wrap(&req, &share, reader.public_key(), Timestamp(1)).unwrap();
        let bytes = Signed::sign(&body, &originator).to_bytes();
        assert!(bytes.len() <= MAX_SIGNED_LEN);
        let signed = Signed::from_bytes(&bytes, "share release").unwrap();
        let back: ShareReleaseBody = signed.verify(&originator.public_key()).unwrap();
        let got = back
            .unwrap_for(&req, std::slice::from_ref(&reader))
            .unwrap();
        assert_eq!(got, share);
        // Another request (nonce), another reader key: refused.
        let mut other = req.clone();
        other.nonce = [1; 16];
        assert!(
            back.unwrap_for(&other, std::slice::from_ref(&reader))
                .is_err()
        );
        let stranger = EncryptionSecretKey::generate(kem);
        assert!(back.unwrap_for(&req, &[stranger]).is_err());
        // Another signer: refused; another domain: refused.
        assert!(
            signed
                .verify::<ShareReleaseBody>(&SigningSecretKey::generate().public_key())
                .is_err()
        );
        assert!(
            signed
                .verify::<ShareRequestBody>(&originator.public_key())
                .is_err()
        );
    }
}

#[test]
fn flipped_and_truncated_requests_fail() {
    let key = SigningSecretKey::generate();
    let bytes = Signed::sign(&request(), &key).to_bytes();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let ok = Signed::from_bytes(&bad, "share request")
            .and_then(|s| s.verify::<ShareRequestBody>(&key.public_key()))
            .is_ok();
        assert!(!ok, "flip at {i} accepted");
    }
    for cut in 0..bytes.len() {
        assert!(Signed::from_bytes(&bytes[..cut], "share request").is_err());
    }
}

#[test]
fn reason_limits() {
    assert!(check_reason(&"r".repeat(MAX_REASON_LEN)).is_ok());
    assert_eq!(
        check_reason(&"r".repeat(MAX_REASON_LEN + 1)),
        Err(CustodyError::BadReason)
    );
    assert!(check_reason("").is_err());
    assert!(check_reason("   ").is_err());
    assert!(check_reason("line\nbreak").is_err());
    // Shown in logs and evidence: nothing that shows its words in another order.
    assert!(check_reason("court order \u{202E}9102\u{202C}").is_err());
    assert!(check_reason("αίτημα δικαστηρίου").is_ok());
}

#[test]
fn signed_statement_limit() {
    let key = SigningSecretKey::generate();
    let mut req = request();
    req.reason = "r".repeat(MAX_REASON_LEN);
    let bytes = Signed::sign(&req, &key).to_bytes();
    assert!(bytes.len() <= MAX_SIGNED_LEN);
    let mut big = vec![0u8; MAX_SIGNED_LEN + 1];
    big[..bytes.len()].copy_from_slice(&bytes);
    assert!(Signed::from_bytes(&big, "share request").is_err());
}

#[test]
fn a_request_is_answered_up_to_the_window_and_not_one_second_past_it() {
    let now = Timestamp(1_800_000_000);
    let at = |offset: i64| Timestamp(now.0.checked_add_signed(offset).unwrap());
    let window = i64::try_from(REQUEST_WINDOW_SECS).unwrap();
    for offset in [0, window, -window] {
        assert!(within_request_window(at(offset), now), "{offset}");
    }
    for offset in [window + 1, -(window + 1)] {
        assert!(!within_request_window(at(offset), now), "{offset}");
    }
    // Clocks near the ends of the range do not wrap.
    assert!(!within_request_window(Timestamp(0), Timestamp(u64::MAX)));
    assert!(!within_request_window(Timestamp(u64::MAX), Timestamp(0)));
    assert!(within_request_window(
        Timestamp(u64::MAX),
        Timestamp(u64::MAX)
    ));
}

/// A statement of a later version may have another layout: named unsupported from its
/// leading version byte, not reported as malformed.
#[test]
fn a_later_version_is_named_whatever_its_layout() {
    let key = SigningSecretKey::generate();
    let later = vec![CUSTODY_VERSION + 1, 0xff, 0xff, 0xff];
    let signed = Signed {
        signature: key.sign(ShareRequestBody::DOMAIN, &later),
        body: later,
    };
    assert_eq!(
        signed.body_unverified::<ShareRequestBody>(),
        Err(CustodyError::UnsupportedVersion {
            what: ShareRequestBody::WHAT,
            version: CUSTODY_VERSION + 1
        })
    );
    let garbled = Signed {
        body: vec![CUSTODY_VERSION, 0xff, 0xff, 0xff],
        signature: signed.signature,
    };
    assert!(matches!(
        garbled.body_unverified::<DeletionReceiptBody>(),
        Err(CustodyError::Malformed { .. })
    ));
}
