//! `liaise delete`: a receiving agency deletes its copy of a document once it no longer needs
//! it. The sealed bytes go; the inbox line, the receipts and the log, which prove the exchange
//! happened, stay.

use serde_json::Value;

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
