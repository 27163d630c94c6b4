//! Forwarding with consent, node to node: `liaise forward DOC --to AGENCY --reason TEXT`
//! delivers the forwarded document to the new reader's node, which checks the originator's
//! consent before it takes a byte more than the header; revoking the forwarder revokes the
//! readers it forwarded to.

use std::time::{Duration, Instant};

use liaise_protocol::wire::{Message, MessageKind, RejectReason, encode_frame};
use serde_json::Value;

use super::hardening::{Member, read_frame, runtime};
use super::nodes::{Agency, TestFederation};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";
const CONTENT: &[u8] = b"Case 17: pre-sentence advice";

pub(super) fn three() -> TestFederation {
    TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    )
}

/// The city sends the report to probation, allowing it to forward to the prison.
pub(super) fn send_forwardable(fed: &TestFederation, city: &Agency) -> String {
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), CONTENT).unwrap();
    sb.liaise(&[
        "send",
        "--home",
        &city.home,
        "--to",
        PROBATION,
        "--allow-forward-to",
        PRISON,
        "--wait",
        "--timeout",
        "60s",
        "report.txt",
    ])
    .ok()
    .trim()
    .to_owned()
}

/// `liaise forward DOC --to PRISON --reason ... EXTRA...` run by probation.
fn run_forward(
    fed: &TestFederation,
    probation: &Agency,
    doc: &str,
    extra: &[&str],
) -> liaise_tests::Run {
    let mut args = vec![
        "forward",
        "--home",
        &probation.home,
        doc,
        "--to",
        PRISON,
        "--reason",
        "joint supervision",
    ];
    args.extend_from_slice(extra);
    fed.sandbox.liaise(&args)
}

/// Forwarded node to node, waiting for the prison's receipt; the `--json` answer.
pub(super) fn forward(fed: &TestFederation, probation: &Agency, doc: &str) -> Value {
    run_forward(
        fed,
        probation,
        doc,
        &["--wait", "--timeout", "60s", "--json"],
    )
    .json()
}

/// `liaise forward --out`: probation gets the city's consent and writes the forwarded document
/// for the prison to a file; returns its bytes.
fn forward_to_file(fed: &TestFederation, probation: &Agency, doc: &str) -> Vec<u8> {
    run_forward(fed, probation, doc, &["--out", "fwd.liaise"]).ok();
    fed.sandbox.read("fwd.liaise")
}

fn inbox_rows(fed: &TestFederation, who: &Agency, doc: &str) -> Vec<Value> {
    fed.json(who, &["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["doc_id"] == doc)
        .cloned()
        .collect()
}

#[test]
fn a_forward_is_delivered_to_the_new_readers_node_and_opens_with_the_chain() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation), fed.start(prison)];
    let sb = &fed.sandbox;
    let doc = send_forwardable(&fed, city);

    // Typos are caught here, before the originator is asked.
    sb.liaise(&[
        "forward",
        "--home",
        &probation.home,
        &doc,
        "--to",
        "nl.polce.utrecht",
        "--reason",
        "joint case",
    ])
    .fails_with("nl.polce.utrecht is not a member in this node's roster");
    sb.liaise(&[
        "forward",
        "--home",
        &probation.home,
        "report.txt",
        "--to",
        PRISON,
        "--reason",
        "joint case",
    ])
    .fails_with("`report.txt` is not a document id");

    // An id typed in upper case is the same document, and comes back in lower case.
    let forwarded = forward(&fed, probation, &doc.to_uppercase());
    assert_eq!(forwarded["outcome"], "delivered", "{forwarded:#}");
    assert_eq!(forwarded["originator"], CITY);
    assert_eq!(forwarded["doc_id"], doc.as_str());

    // The prison's inbox names the signer and the forwarder; probation holds its receipt.
    let rows = inbox_rows(&fed, prison, &doc);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["sender"], CITY);
    assert_eq!(rows[0]["forwarded_by"], PROBATION);
    assert_eq!(rows[0]["verification"], "verified");
    let listed = sb
        .liaise(&["inbox", "--home", &prison.home])
        .ok()
        .to_owned();
    assert!(
        listed.contains(&format!("from {CITY} (forwarded by {PROBATION})")),
        "{listed}"
    );
    let receipts = fed.json(probation, &["receipts", &doc]);
    assert!(receipts.to_string().contains(PRISON), "{receipts:#}");

    // Opened by id (asking the city for the share), it shows who signed and who forwarded.
    let opened = sb
        .liaise(&[
            "open",
            "--home",
            &prison.home,
            &doc,
            "--out-dir",
            "out",
            "--reason",
            "intake interview",
        ])
        .ok()
        .to_owned();
    assert!(
        opened.contains(&format!("forwarded by {PROBATION} with {CITY}'s consent")),
        "{opened}"
    );
    assert_eq!(sb.read("out/report.txt"), CONTENT);
    let verified = fed.json(prison, &["verify", &doc]);
    assert_eq!(verified["valid"], true, "{verified:#}");
    assert_eq!(verified["signer"], CITY);
    assert_eq!(verified["forwarded"]["forwarder"], PROBATION);

    // Forwarding again is answered from the outbox: nothing is delivered twice.
    let again = forward(&fed, probation, &doc);
    assert_eq!(again["outcome"], "delivered", "{again:#}");
    assert_eq!(inbox_rows(&fed, prison, &doc).len(), 1);

    // Revoking the forwarder revokes the prison too: its copy is deleted, with a receipt.
    sb.liaise(&[
        "revoke",
        "--home",
        &city.home,
        &doc,
        "--recipient",
        PROBATION,
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = inbox_rows(&fed, prison, &doc);
        if !rows.is_empty() && rows.iter().all(|r| r["verification"] == "deleted") {
            break;
        }
        assert!(Instant::now() < deadline, "never deleted: {rows:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The prison's deletion receipt reaches the city only after the deletion: the city is
    // asked until it has verified it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let prison_reader = loop {
        let custody = fed.json(city, &["custody", &doc]);
        let prison_reader = custody["readers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["agency"] == PRISON)
            .cloned();
        if let Some(reader) = prison_reader
            && reader["deletion_receipt_verified"] == true
        {
            break reader;
        }
        assert!(
            Instant::now() < deadline,
            "the city never verified the prison's deletion receipt: {custody:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(prison_reader["access"], "revoked", "{prison_reader:#}");
    sb.liaise(&[
        "open",
        "--home",
        &prison.home,
        &doc,
        "--out-dir",
        "out-2",
        "--reason",
        "second look",
    ])
    .fails_with("was deleted from this node");

    // The forwarder's copy went too. It is still listed as sent (the forward), so opening it
    // by id must say it was deleted, not that the store lost its bytes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inbox_rows(&fed, probation, &doc)
        .iter()
        .all(|r| r["verification"] == "deleted")
        || inbox_rows(&fed, probation, &doc).is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the forwarder's copy was never deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sb.liaise(&[
        "open",
        "--home",
        &probation.home,
        &doc,
        "--out-dir",
        "out-3",
        "--reason",
        "third look",
    ])
    .fails_with("was deleted from this node");
}

/// Offers `bytes` to `peer`'s target under `doc_id` and sends all of it; returns the answer.
async fn offer(peer: &Member, doc_id: [u8; 16], bytes: &[u8]) -> Message {
    let conn = peer.connect().await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let offer = Message::Offer {
        document_id: doc_id,
        sealed_len: bytes.len() as u64,
        content_hash: liaise_protocol::wire::content_hash(bytes),
    };
    send.write_all(&encode_frame(&offer)).await.unwrap();
    let accept = read_frame(&mut recv, &[MessageKind::Accept]).await;
    assert!(matches!(accept, Message::Accept { resume_offset: 0 }));
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    tokio::time::timeout(
        Duration::from_secs(20),
        read_frame(&mut recv, &[MessageKind::Reject, MessageKind::Receipt]),
    )
    .await
    .expect("no answer from the node")
}

#[test]
fn a_forwarded_document_from_anyone_but_the_named_forwarder_is_refused() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation), fed.start(prison)];
    let doc = send_forwardable(&fed, city);
    let bytes = forward_to_file(&fed, probation, &doc);
    let doc_id: [u8; 16] = liaise_node::store::parse_hex(&doc).unwrap();
    let rt = runtime();
    let _in_runtime = rt.enter();
    rt.block_on(async {
        // The city holds a valid consent, but it names probation as the forwarder.
        let answer = offer(&Member::new(&fed, city, prison), doc_id, &bytes).await;
        let Message::Reject { reason, detail } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(reason, RejectReason::BadDocument);
        assert!(
            detail.contains("the consent lets nl.probation.utrecht forward it"),
            "{detail}"
        );
        // Probation's node could deliver it; the consent is not for the city's node.
        let answer = offer(&Member::new(&fed, probation, city), doc_id, &bytes).await;
        let Message::Reject { detail, .. } = answer else {
            panic!("{answer:?}")
        };
        assert!(
            detail.contains("the consent is for nl.prison.vught"),
            "{detail}"
        );
        // A consent changed by one bit does not verify.
        let mut tampered = bytes.clone();
        tampered[40] ^= 1;
        let answer = offer(&Member::new(&fed, probation, prison), doc_id, &tampered).await;
        assert!(
            matches!(
                answer,
                Message::Reject {
                    reason: RejectReason::BadDocument,
                    ..
                }
            ),
            "{answer:?}"
        );
        // The same bytes from the forwarder itself are taken, with a receipt.
        let answer = offer(&Member::new(&fed, probation, prison), doc_id, &bytes).await;
        assert!(matches!(answer, Message::Receipt { .. }), "{answer:?}");
    });
    let rows = inbox_rows(&fed, prison, &doc);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["forwarded_by"], PROBATION);
    assert!(inbox_rows(&fed, city, &doc).is_empty());
}

/// The city's custody line for the prison, once its deletion receipt verified.
fn wait_prison_deletion_receipt(fed: &TestFederation, city: &Agency, doc: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let custody = fed.json(city, &["custody", doc]);
        let done = custody["readers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["agency"] == PRISON && r["deletion_receipt_verified"] == true);
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no deletion receipt: {custody:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_forward_arriving_after_the_new_readers_deletion_receipt_is_refused() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation), fed.start(prison)];
    let sb = &fed.sandbox;
    let doc = send_forwardable(&fed, city);
    // Probation gets the consent (as its outbox would, before the prison was reachable)...
    let bytes = forward_to_file(&fed, probation, &doc);
    // ...then the city revokes probation, so the prison too, and the prison signs that it
    // deleted its copy (it held none yet).
    sb.liaise(&[
        "revoke",
        "--home",
        &city.home,
        &doc,
        "--recipient",
        PROBATION,
    ])
    .ok();
    wait_prison_deletion_receipt(&fed, city, &doc);
    // The forwarded document arriving now is refused: the receipt must stay true.
    let doc_id: [u8; 16] = liaise_node::store::parse_hex(&doc).unwrap();
    let rt = runtime();
    let _in_runtime = rt.enter();
    let answer = rt.block_on(offer(&Member::new(&fed, probation, prison), doc_id, &bytes));
    let Message::Reject { reason, detail } = answer else {
        panic!("a deleted document was stored again: {answer:?}")
    };
    assert_eq!(reason, RejectReason::NotRecipient, "{detail}");
    assert!(detail.contains("deleted its copy"), "{detail}");
    assert!(inbox_rows(&fed, prison, &doc).is_empty());
    let blob = liaise_node::store::hex(&liaise_protocol::wire::content_hash(&bytes));
    assert_eq!(
        sb.stored(&prison.home, &blob),
        None,
        "the deleted copy is back"
    );
}

#[test]
fn a_forwarders_copy_deleted_on_request_takes_its_queued_forwards_with_it() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    // The prison's node is down: the forward waits in probation's outbox.
    let _nodes = [fed.start(city), fed.start(probation)];
    let sb = &fed.sandbox;
    let doc = send_forwardable(&fed, city);
    let queued = run_forward(&fed, probation, &doc, &["--json"]).json();
    assert_eq!(queued["outcome"], "queued", "{queued:#}");
    assert_eq!(forwarded_copies_held(&fed, probation), 1);
    sb.liaise(&[
        "revoke",
        "--home",
        &city.home,
        &doc,
        "--recipient",
        PROBATION,
    ])
    .ok();
    // Once probation signed that it deleted its copy, it holds no forwarded copy either and
    // will not deliver one.
    let rows = fed.wait_outbox(probation, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == doc.as_str() && r["state"] == "undeliverable")
    });
    let line = rows
        .iter()
        .find(|r| r["doc_id"] == doc.as_str() && r["recipient"] == PRISON)
        .unwrap();
    assert!(
        line["last_error"].as_str().unwrap().contains("deleted"),
        "{line:#}"
    );
    assert_eq!(
        forwarded_copies_held(&fed, probation),
        0,
        "a forwarded copy is left"
    );
    let _ = prison;
}

/// How many forwarded copies (consent and sealed document) `who`'s store holds: a small one
/// is kept in its database, a larger one as a file in its blob folder.
fn forwarded_copies_held(fed: &TestFederation, who: &Agency) -> usize {
    let store = fed.sandbox.path(&who.home).join("store");
    let conn = liaise_node::store::db::open_reader(&store.join("liaise.db")).unwrap();
    let mut held: Vec<Vec<u8>> = conn
        .prepare("SELECT bytes FROM inline_blobs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for entry in std::fs::read_dir(store.join("blobs")).unwrap() {
        held.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    held.iter()
        .filter(|bytes| liaise_protocol::is_forwarded(bytes))
        .count()
}
