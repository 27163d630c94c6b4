//! Tests of the originator's store: registration, nonces, revocation, expiry and shredding,
//! on a real SQLite database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::{AgencyId, EncryptionSecretKey, KemAlgorithm, SigningSecretKey, Timestamp};
use liaise_protocol::{
    KeyCustody, RecipientPolicy, RecipientSpec, SealRequest, SectionInput, SectionMetadata,
};

use super::*;
use crate::store::custody_key::CustodyKey;

const NOW: u64 = 1_800_000_000;

fn sealed(not_after: [Option<u64>; 2]) -> liaise_protocol::SealedSummary {
    let signing = SigningSecretKey::generate();
    let mut content: &[u8] = b"case file";
    let recipients = ["nl.court.utrecht", "nl.city.utrecht"]
        .iter()
        .zip(not_after)
        .map(|(a, t)| RecipientSpec {
            agency: AgencyId::new(a).unwrap(),
            key: EncryptionSecretKey::generate(KemAlgorithm::X25519)
                .public_key()
                .clone(),
            policy: RecipientPolicy {
                sections: vec![0],
                not_after: t.map(Timestamp),
                forward_to: Vec::new(),
            },
        })
        .collect();
    let request = SealRequest {
        sender: AgencyId::new("nl.probation.utrecht").unwrap(),
        signing_key: &signing,
        created: Timestamp(NOW),
        label: "restricted".into(),
        purpose: String::new(),
        custody: KeyCustody::Originator,
        sections: vec![SectionInput {
            name: "main".into(),
            metadata: SectionMetadata::default(),
            content_len: 9,
            content: &mut content,
        }],
        recipients,
    };
    liaise_protocol::seal(request, &mut Vec::new()).unwrap()
}

/// The custody key of the tests' agency.
fn key() -> CustodyKey {
    CustodyKey::derive(&SigningSecretKey::from_bytes(&[9; 32]))
}

fn store(summary: &liaise_protocol::SealedSummary) -> (tempfile::TempDir, Connection, String) {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::store::db::open_writer(&dir.path().join("t.db")).unwrap();
    let secrets = summary.originator.as_ref().unwrap();
    register(
        &conn,
        &summary.info,
        &summary.signed_header,
        secrets,
        &key(),
        NOW,
    )
    .unwrap();
    (dir, conn, summary.info.document_id.to_string())
}

#[test]
fn register_keeps_the_share_sealed_and_the_readers() {
    let summary = sealed([None, Some(NOW + 10)]);
    let (dir, conn, doc) = store(&summary);
    let originator = summary.originator.unwrap();
    let held = document(&conn, &doc).unwrap().unwrap();
    assert_eq!(
        held.open_share(&key()).unwrap(),
        Some(originator.share.clone())
    );
    assert!(liaise_protocol::parse_stored_header(&held.header).is_ok());
    let masked = held.open_masked_keys(&key()).unwrap().unwrap();
    assert!(masked_keys_for(&masked, &[0]).is_some());
    assert!(masked_keys_for(&masked, &[1]).is_none());
    // Another agency's key opens neither.
    let other = CustodyKey::derive(&SigningSecretKey::from_bytes(&[8; 32]));
    assert!(held.open_share(&other).is_err());
    assert!(held.open_masked_keys(&other).is_err());
    // Neither secret is anywhere in the database file in the clear.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let file = std::fs::read(dir.path().join("t.db")).unwrap();
    let share = originator.share.expose_bytes();
    assert!(!file.windows(share.len()).any(|w| w == &share[..]));
    let (_, first_masked) = &originator.masked_keys[0];
    assert!(!file.windows(32).any(|w| w == &first_masked[..]));
    let all = readers(&conn, &doc).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        reader(&conn, &doc, "nl.city.utrecht")
            .unwrap()
            .unwrap()
            .not_after,
        Some(NOW + 10)
    );
    assert!(reader(&conn, &doc, "be.city.gent").unwrap().is_none());
}

#[test]
fn a_nonce_is_accepted_once_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::store::db::open_writer(&dir.path().join("t.db")).unwrap();
    assert!(nonce_is_fresh(&conn, "nl.court.utrecht", &[1; 16], NOW).unwrap());
    assert!(!nonce_is_fresh(&conn, "nl.court.utrecht", &[1; 16], NOW).unwrap());
    // Another agency's identical nonce is its own.
    assert!(nonce_is_fresh(&conn, "nl.city.utrecht", &[1; 16], NOW).unwrap());
    // Still remembered at the edge of twice the window, forgotten one second later.
    let edge = NOW + 2 * REQUEST_WINDOW_SECS;
    assert!(!nonce_is_fresh(&conn, "nl.court.utrecht", &[1; 16], edge).unwrap());
    assert!(nonce_is_fresh(&conn, "nl.court.utrecht", &[1; 16], edge + 1).unwrap());
}

#[test]
fn revoking_every_reader_shreds_the_share() {
    let summary = sealed([None, None]);
    let (_dir, conn, doc) = store(&summary);
    let court = AgencyId::new("nl.court.utrecht").unwrap();
    assert_eq!(
        revoke(&conn, &doc, Some(&court), NOW).unwrap(),
        vec![court.to_string()]
    );
    assert_eq!(shred_if_unneeded(&conn, &doc, NOW).unwrap(), None);
    assert!(document(&conn, &doc).unwrap().unwrap().share.is_some());
    // Revoking again changes nothing; revoking all revokes the other reader.
    assert!(revoke(&conn, &doc, Some(&court), NOW).unwrap().is_empty());
    assert_eq!(
        revoke(&conn, &doc, None, NOW).unwrap(),
        vec!["nl.city.utrecht".to_owned()]
    );
    assert_eq!(
        shred_if_unneeded(&conn, &doc, NOW).unwrap(),
        Some("revoked")
    );
    let held = document(&conn, &doc).unwrap().unwrap();
    assert!(held.share.is_none() && held.masked_keys.is_none());
    assert_eq!(held.shred_reason.as_deref(), Some("revoked"));
    let due = deletions_due(&conn, NOW, 10, &[]).unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|d| d.reason == "revoked"));
    // A reader with a request in flight is left out until it ends.
    let busy = vec![due[0].agency.clone()];
    let rest = deletions_due(&conn, NOW, 10, &busy).unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].agency, busy[0]);
}

#[test]
fn revoking_a_reader_revokes_the_readers_it_forwarded_to() {
    let summary = sealed([None, None]);
    let (_dir, conn, doc) = store(&summary);
    add_forwarded_reader(&conn, &doc, "be.prison.gent", "nl.court.utrecht", None).unwrap();
    add_forwarded_reader(&conn, &doc, "be.city.gent", "nl.city.utrecht", None).unwrap();
    let court = AgencyId::new("nl.court.utrecht").unwrap();
    let mut revoked = revoke(&conn, &doc, Some(&court), NOW).unwrap();
    revoked.sort();
    assert_eq!(revoked, vec!["be.prison.gent", "nl.court.utrecht"]);
    // The other reader's forward stands.
    assert!(
        reader(&conn, &doc, "be.city.gent")
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    let due = deletions_due(&conn, NOW, 10, &[]).unwrap();
    let mut asked: Vec<&str> = due.iter().map(|d| d.agency.as_str()).collect();
    asked.sort_unstable();
    assert_eq!(asked, vec!["be.prison.gent", "nl.court.utrecht"]);
}

#[test]
fn expiry_queues_deletions_and_shreds_when_the_last_reader_expires() {
    let summary = sealed([Some(NOW + 5), Some(NOW + 10)]);
    let (_dir, conn, doc) = store(&summary);
    // At not_after a reader may still open: nothing happens.
    assert!(queue_expired(&conn, NOW + 5).unwrap().is_empty());
    assert_eq!(queue_expired(&conn, NOW + 6).unwrap().len(), 1);
    assert_eq!(shred_if_unneeded(&conn, &doc, NOW + 6).unwrap(), None);
    assert_eq!(queue_expired(&conn, NOW + 11).unwrap().len(), 1);
    assert_eq!(
        shred_if_unneeded(&conn, &doc, NOW + 11).unwrap(),
        Some("expired")
    );
    let due = deletions_due(&conn, NOW + 11, 10, &[]).unwrap();
    assert!(due.iter().all(|d| d.reason == "expired"));
    deletion_done(&conn, &doc, "nl.court.utrecht", b"receipt").unwrap();
    assert_eq!(deletions_due(&conn, NOW + 11, 10, &[]).unwrap().len(), 1);
}

#[test]
fn a_readers_copy_is_due_for_deletion_only_once_its_time_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let conn = super::super::db::open_writer(&dir.path().join("t.db")).unwrap();
    let row = |doc: &str, not_after: Option<u64>| super::super::records::InboxRow {
        doc_id: doc.into(),
        sender: "nl.probation.utrecht".into(),
        forwarded_by: None,
        blob: "00".repeat(32),
        sealed_len: 100,
        label: "restricted".into(),
        created: NOW,
        received_at: NOW,
        verification: "verified".into(),
        not_after,
    };
    for (doc, not_after) in [
        ("past", Some(NOW - 1)),
        ("now", Some(NOW)),
        ("later", Some(NOW + 60)),
        ("never", None),
    ] {
        super::super::records::inbox_insert(&conn, &row(doc, not_after), b"receipt").unwrap();
    }
    // Due once `now` is past the time, not at it; never for a copy without one.
    let due = expired_inbox(&conn, NOW).unwrap();
    assert_eq!(
        due,
        vec![("past".to_owned(), "nl.probation.utrecht".to_owned())]
    );
    assert_eq!(expired_inbox(&conn, u64::MAX).unwrap().len(), 3);
    // A deleted copy is no longer due; nothing here lacks an expiry time.
    record_inbox_deletion(
        &conn,
        "past",
        "nl.probation.utrecht",
        liaise_protocol::wire::DeletionReason::Expired.as_str(),
        NOW,
    )
    .unwrap();
    assert!(expired_inbox(&conn, NOW).unwrap().is_empty());
    assert!(inbox_without_expiry(&conn).unwrap().is_empty());
    // A row recorded before expiry times were kept is read once, then recorded.
    conn.execute(
        "UPDATE inbox SET not_after = NULL WHERE doc_id = 'later'",
        [],
    )
    .unwrap();
    assert_eq!(inbox_without_expiry(&conn).unwrap().len(), 1);
    set_inbox_not_after(&conn, "later", "nl.probation.utrecht", Some(NOW + 60)).unwrap();
    assert!(inbox_without_expiry(&conn).unwrap().is_empty());
}

#[test]
fn shares_stored_in_the_clear_by_an_earlier_version_are_sealed() {
    let summary = sealed([None, None]);
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::store::db::open_writer(&dir.path().join("t.db")).unwrap();
    let originator = summary.originator.as_ref().unwrap();
    register(
        &conn,
        &summary.info,
        &summary.signed_header,
        originator,
        &key(),
        NOW,
    )
    .unwrap();
    let doc = summary.info.document_id.to_string();
    // As an earlier version stored them.
    let mut clear_masked = Vec::new();
    for (index, k) in &originator.masked_keys {
        clear_masked.push(*index);
        clear_masked.extend_from_slice(&k[..]);
    }
    conn.execute(
        "UPDATE custody_documents SET share = ?2, masked_keys = ?3 WHERE doc_id = ?1",
        rusqlite::params![doc, &originator.share.expose_bytes()[..], clear_masked],
    )
    .unwrap();
    assert_eq!(seal_clear_rows(&conn, &key()).unwrap(), 1);
    let held = document(&conn, &doc).unwrap().unwrap();
    assert!(held.share.as_ref().unwrap().len() > SHARE_LEN);
    assert_eq!(
        held.open_share(&key()).unwrap(),
        Some(originator.share.clone())
    );
    assert_eq!(
        &held.open_masked_keys(&key()).unwrap().unwrap()[..],
        &clear_masked[..]
    );
    // Sealed rows are left as they are.
    assert_eq!(seal_clear_rows(&conn, &key()).unwrap(), 0);
}

#[test]
fn a_shredded_document_is_revoked_for_whoever_asks_reader_or_not() {
    use crate::daemon::share::admit_reader;
    use liaise_protocol::wire::Refusal;
    let summary = sealed([None, None]);
    let (_dir, conn, doc) = store(&summary);
    let id = summary.info.document_id.0;
    let reader = AgencyId::new("nl.court.utrecht").unwrap();
    let stranger = AgencyId::new("be.city.gent").unwrap();
    // Before: a reader is admitted, anyone else is no reader.
    assert!(
        admit_reader(&conn, &id, &reader, &[1; 16], NOW)
            .unwrap()
            .is_ok()
    );
    let refused = admit_reader(&conn, &id, &stranger, &[2; 16], NOW)
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason, Refusal::NotRecipient);
    // Shredded: the spec's check 4 comes before check 5, for the stranger too.
    shred(&conn, &doc, "revoked", NOW).unwrap();
    for (asker, nonce) in [(&reader, [3; 16]), (&stranger, [4; 16])] {
        let refused = admit_reader(&conn, &id, asker, &nonce, NOW)
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.reason, Refusal::Revoked, "{asker}");
    }
}
