//! `liaise delete`: a receiving agency deletes its copy of a document once it no longer needs
//! it. The sealed bytes go; the inbox line, the receipts and the log, which prove the exchange
//! happened, stay.

use liaise_protocol::wire::{Message, MessageKind, encode_frame};
use serde_json::Value;

use super::hardening::{Member, read_frame, runtime};
use super::nodes::TestFederation;

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

#[test]
fn an_operator_deletes_a_received_copy_and_the_proof_of_the_exchange_stays() {
    let fed = TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    );
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _nodes = [fed.start(city), fed.start(probation)];
    let sb = &fed.sandbox;
    // A small document (held in the database) and a large one (a file of its own).
    let small = fed.deliver_text(city, PROBATION, "report.txt", b"Case 17: risk assessment");
    let large = fed.deliver_text(city, PROBATION, "annex.bin", &vec![7u8; 300 * 1024]);
    let inbox = fed.json(probation, &["inbox"]);
    let blob = |doc: &str| -> String {
        let row = inbox
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["doc_id"] == doc);
        row.unwrap()["blob"].as_str().unwrap().to_owned()
    };
    let blobs = [blob(&small), blob(&large)];
    for blob in &blobs {
        assert!(sb.stored(&probation.home, blob).is_some());
    }

    for doc in [&small, &large] {
        let deleted = fed.json(probation, &["delete", doc]);
        assert_eq!(deleted["doc_id"], doc.as_str());
        assert_eq!(deleted["sender"], CITY);
        assert_eq!(deleted["already_deleted"], false);
        assert!(deleted["deleted_at"].as_u64().unwrap() > 0, "{deleted}");
    }
    // The sealed bytes are gone, the inbox lines stay and say so.
    for blob in &blobs {
        assert!(sb.stored(&probation.home, blob).is_none(), "{blob}");
    }
    let inbox = fed.json(probation, &["inbox"]);
    let states: Vec<&Value> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["verification"])
        .collect();
    assert_eq!(states, ["deleted", "deleted"], "{inbox:#}");
    let out = sb.path("opened");
    let out = out.to_str().unwrap();
    sb.liaise(&["open", "--home", &probation.home, &small, "--out-dir", out])
        .fails_with("deleted from this node at");
    sb.liaise(&["verify", "--home", &probation.home, &large])
        .fails_with("(by its operator)");

    // A sender that lost the receipt and delivers the same bytes again gets the receipt it
    // is owed, and the copy is not stored again.
    let rt = runtime();
    let _in_runtime = rt.enter();
    let city_at_probation = Member::new(&fed, city, probation);
    for (doc, blob) in [(&small, &blobs[0]), (&large, &blobs[1])] {
        let bytes = sb.stored(&city.home, blob).unwrap();
        let receipt = rt.block_on(redeliver(&city_at_probation, doc, &bytes));
        let held = fed.json(city, &["receipts", doc]);
        assert_eq!(
            held[0]["receipt"].as_str().unwrap(),
            liaise_node::store::hex(&receipt)
        );
        assert!(sb.stored(&probation.home, blob).is_none(), "{blob}");
    }
    let inbox = fed.json(probation, &["inbox"]);
    assert!(
        inbox
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verification"] == "deleted"),
        "{inbox:#}"
    );

    // Deleting again changes nothing, and says when it was done.
    let first = fed.json(probation, &["delete", &small]);
    assert_eq!(first["already_deleted"], true);
    let text = sb.liaise(&["delete", "--home", &probation.home, &small]);
    assert!(text.ok().contains("was deleted already"), "{}", text.ok());

    // The log records each deletion once, and still verifies.
    let entries = fed.json(probation, &["log", "--doc", &small]);
    let deletions: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deletion")
        .collect();
    assert_eq!(deletions.len(), 1, "{entries:#}");
    assert_eq!(deletions[0]["detail"]["why"], "operator");
    assert_eq!(deletions[0]["agency"], CITY);
    let verified = fed.json(probation, &["log", "verify"]);
    assert_eq!(verified["intact"], true, "{verified:#}");
    // The sender's proof of delivery is untouched.
    let receipts = fed.json(city, &["receipts", &small]);
    assert_eq!(receipts[0]["verification"], "verified");

    // What cannot be deleted here is refused, saying why.
    sb.liaise(&["delete", "--home", &probation.home, &"f".repeat(32)])
        .fails_with("received no document");
    sb.liaise(&["delete", "--home", &probation.home, "case-17"])
        .fails_with("is not a document id");
    sb.liaise(&["delete", "--home", &city.home, &small])
        .fails_with("liaise revoke");
    sb.liaise(&[
        "delete",
        "--home",
        &probation.home,
        &small,
        "--from",
        PRISON,
    ])
    .fails_with("from nl.city.utrecht, not from nl.prison.vught");
}

/// Delivers `bytes` as document `doc` over a stream of its own, sending what the receiver
/// asks for; returns the receipt it answers with.
async fn redeliver(peer: &Member, doc: &str, bytes: &[u8]) -> Vec<u8> {
    let conn = peer.connect().await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let offer = Message::Offer {
        document_id: liaise_node::store::parse_hex(doc).unwrap(),
        sealed_len: bytes.len() as u64,
        content_hash: liaise_protocol::wire::content_hash(bytes),
    };
    send.write_all(&encode_frame(&offer)).await.unwrap();
    let Message::Accept { resume_offset } = read_frame(&mut recv, &[MessageKind::Accept]).await
    else {
        panic!("not accepted");
    };
    send.write_all(&bytes[resume_offset as usize..])
        .await
        .unwrap();
    send.finish().unwrap();
    match read_frame(&mut recv, &[MessageKind::Receipt, MessageKind::Reject]).await {
        Message::Receipt { receipt } => receipt,
        other => panic!("{doc}: {other:?}"),
    }
}
