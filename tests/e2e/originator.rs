//! Originator control with real nodes: every open of a document asks its sender's node for a
//! key share and states a reason; revocation, expiry, crypto-shredding and deletion receipts;
//! `--offline` documents that open without the sender; replayed and forged share requests.

use std::time::{Duration, Instant};

use liaise_keys::{AgencyId, Timestamp};
use liaise_protocol::wire::{
    CUSTODY_VERSION, Message, MessageKind, REQUEST_WINDOW_SECS, ShareRequestBody, Signed,
    decode_frame, encode_frame,
};
use serde_json::Value;

use super::nodes::{Agency, TestFederation};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

fn three() -> TestFederation {
    TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    )
}

/// `liaise send` from `from` to `to` (plus `extra` options), waiting for the receipts.
fn send(fed: &TestFederation, from: &Agency, to: &str, extra: &[&str]) -> String {
    let sb = &fed.sandbox;
    if !sb.path("report.txt").exists() {
        std::fs::write(sb.path("report.txt"), b"Case 17: pre-sentence advice").unwrap();
    }
    let mut args = vec!["send", "--home", &from.home, "--to", to, "--wait"];
    args.extend_from_slice(&["--timeout", "60s"]);
    args.extend_from_slice(extra);
    args.push("report.txt");
    sb.liaise(&args).ok().trim().to_owned()
}

fn open(
    fed: &TestFederation,
    who: &Agency,
    doc: &str,
    reason: Option<&str>,
    out: &str,
) -> liaise_tests::Run {
    let mut args = vec!["open", "--home", &who.home, doc, "--out-dir", out];
    if let Some(reason) = reason {
        args.extend_from_slice(&["--reason", reason]);
    }
    fed.sandbox.liaise(&args)
}

/// The log entries about `doc` on `who`'s node.
fn log_of(fed: &TestFederation, who: &Agency, doc: &str) -> Vec<Value> {
    fed.json(who, &["log", "--doc", doc])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn has_entry(entries: &[Value], kind: &str, needle: &str) -> bool {
    entries
        .iter()
        .any(|e| e["kind"] == kind && e.to_string().contains(needle))
}

/// Polls `liaise custody DOC --json` on the originator until `check` holds.
fn wait_custody(
    fed: &TestFederation,
    a: &Agency,
    doc: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = fed.json(a, &["custody", doc]);
        if check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "custody never reached the state: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn reader<'a>(custody: &'a Value, agency: &str) -> &'a Value {
    custody["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agency"] == agency)
        .unwrap()
}

#[test]
fn open_asks_the_originator_with_a_reason_and_waits_for_it() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let city_node = fed.start(city);
    let _others = [fed.start(probation), fed.start(prison)];
    let doc = send(&fed, city, PROBATION, &[]);
    let sb = &fed.sandbox;

    let verified = sb.liaise(&["verify", "--home", &probation.home, &doc]);
    assert!(
        verified.ok().contains("custody    originator"),
        "{}",
        verified.stdout
    );

    // No reason: refused before anything is asked.
    open(&fed, probation, &doc, None, "out-0").fails_with("give --reason TEXT");
    assert!(!sb.path("out-0").exists());

    // An output folder it cannot write into: refused before the originator is asked, so
    // neither node logs an open or a release that never happened.
    std::fs::write(sb.path("not-a-folder"), b"").unwrap();
    open(&fed, probation, &doc, Some("wrong folder"), "not-a-folder").fails_with("is not a folder");
    assert!(!has_entry(
        &log_of(&fed, city, &doc),
        "share-released",
        "wrong folder"
    ));
    assert!(!has_entry(
        &log_of(&fed, probation, &doc),
        "open",
        "wrong folder"
    ));

    // With a reason: the share is released and the document opens.
    open(&fed, probation, &doc, Some("hearing on 12 March"), "out-1").ok();
    assert_eq!(sb.read("out-1/report.txt"), b"Case 17: pre-sentence advice");
    // Recorded on both sides, with the reason.
    let at_city = log_of(&fed, city, &doc);
    assert!(
        has_entry(&at_city, "share-released", "hearing on 12 March"),
        "{at_city:#?}"
    );
    let at_probation = log_of(&fed, probation, &doc);
    assert!(
        has_entry(&at_probation, "open", "hearing on 12 March"),
        "{at_probation:#?}"
    );

    // A non-recipient holding the file: told so at once, without asking the originator (the
    // originator's own refusal of a node that asks all the same is in control_socket.rs).
    let blob = fed.json(city, &["receipts", &doc])[0]["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        sb.path("copy.liaise"),
        sb.stored(&probation.home, &blob).unwrap(),
    )
    .unwrap();
    let run = open(&fed, prison, "copy.liaise", Some("curious"), "out-2");
    run.fails_with(&format!("the document is not addressed to you ({PRISON})"));
    assert!(!sb.path("out-2").exists());
    assert!(!has_entry(
        &log_of(&fed, city, &doc),
        "share-refused",
        PRISON
    ));

    // A damaged copy (a byte of its trailer flipped; the header still names the reader):
    // the originator releases the share, the open then fails and writes nothing, and the
    // reader's log says so, so the release is not the last word on that open.
    let mut damaged = sb.stored(&probation.home, &blob).unwrap();
    let at = damaged.len() - 70;
    damaged[at] ^= 0x01;
    std::fs::write(sb.path("damaged.liaise"), &damaged).unwrap();
    open(
        &fed,
        probation,
        "damaged.liaise",
        Some("damaged copy"),
        "out-4",
    )
    .fails_with("verification failed");
    assert!(!sb.path("out-4").exists());
    assert!(has_entry(
        &log_of(&fed, city, &doc),
        "share-released",
        "damaged copy"
    ));
    let unwritten: Vec<_> = log_of(&fed, probation, &doc)
        .into_iter()
        .filter(|e| e["kind"] == "open" && e["reason"] == "damaged copy")
        .collect();
    assert_eq!(
        unwritten.len(),
        2,
        "the open, then its failure: {unwritten:#?}"
    );
    assert_eq!(unwritten[1]["detail"]["written"], false, "{unwritten:#?}");
    assert!(
        unwritten[1]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("verification failed"),
        "{unwritten:#?}"
    );
    let text = sb.liaise(&["log", "--home", &probation.home, "--doc", &doc]);
    assert!(
        text.ok().contains("no file written: "),
        "the text log says so too: {}",
        text.stdout
    );

    // The originator's node is down: a clear temporary error, then success once it is back.
    city_node.kill();
    let run = open(&fed, probation, &doc, Some("second look"), "out-3");
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("originator unreachable, try later: {CITY}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("verification failed"));
    let _city_again = fed.start(city);
    open(&fed, probation, &doc, Some("second look"), "out-3").ok();
    assert_eq!(sb.read("out-3/report.txt"), b"Case 17: pre-sentence advice");
}

#[test]
fn an_originator_whose_roster_refuses_the_reader_is_a_refusal_not_try_later() {
    let fed = three();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let city_node = fed.start(city);
    let _probation_node = fed.start(probation);
    let sb = &fed.sandbox;
    let doc = send(&fed, city, PROBATION, &[]);

    // The stewards revoke the probation service; only the city's node takes up that roster
    // (started again, so no connection from before it survives).
    sb.liaise(&["federation", "revoke", "--dir", "fed", PROBATION])
        .ok();
    fed.publish();
    fed.import(city);
    city_node.kill();
    let _city_node = fed.start(city);

    // The city's node refuses the probation node's key at the handshake: asking again will not
    // help until a roster changes, so this is no "unreachable, try later" (exit 75) but a
    // refusal (exit 77) that says why.
    let run = open(&fed, probation, &doc, Some("hearing on 12 March"), "out");
    assert_eq!(run.code, Some(77), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("refused this node at the handshake: its roster does not accept"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("try later"), "{}", run.stderr);
    assert!(!sb.path("out").exists());
    assert!(has_entry(
        &log_of(&fed, probation, &doc),
        "open",
        "refused at the handshake"
    ));
}

#[test]
fn revocation_and_expiry_shred_the_share_and_readers_delete_with_receipts() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation), fed.start(prison)];
    let sb = &fed.sandbox;
    let doc = send(&fed, city, &format!("{PROBATION},{PRISON}"), &[]);
    // Someone at the prison keeps a copy of the sealed file before the revocation.
    let blob = fed.json(city, &["receipts", &doc])[0]["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        sb.path("prison-kept.liaise"),
        sb.stored(&prison.home, &blob).unwrap(),
    )
    .unwrap();

    // Revoke the prison only: it can no longer open, and deletes its copy with a receipt.
    sb.liaise(&["revoke", "--home", &city.home, &doc, "--recipient", PRISON])
        .ok();
    let custody = wait_custody(&fed, city, &doc, |v| {
        reader(v, PRISON)["deletion"] == "done"
    });
    assert_eq!(reader(&custody, PRISON)["access"], "revoked");
    assert_eq!(reader(&custody, PRISON)["deletion_receipt_verified"], true);
    assert_eq!(reader(&custody, PROBATION)["access"], "open");
    assert_eq!(custody["share"], "held");
    open(&fed, prison, &doc, Some("intake"), "out-p").fails_with("was deleted from this node");
    // That refusal is in the prison's log, with its reason, as every open is.
    let at_prison = log_of(&fed, prison, &doc);
    assert!(
        at_prison.iter().any(|e| e["kind"] == "open"
            && e["reason"] == "intake"
            && e["agency"] == CITY
            && e["detail"]["refused"] == "copy deleted"),
        "{at_prison:#?}"
    );
    // The kept copy does not open either: the originator, still holding the share for
    // probation, refuses the prison, and logs it.
    open(&fed, prison, "prison-kept.liaise", Some("intake"), "out-k")
        .fails_with("revoked by the originator");
    assert!(!sb.path("out-k").exists());
    let at_city = log_of(&fed, city, &doc);
    assert!(
        at_city
            .iter()
            .any(|e| e["kind"] == "share-refused" && e["agency"] == PRISON),
        "{at_city:#?}"
    );
    let inbox = fed.json(prison, &["inbox"]);
    let row = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["doc_id"] == doc.as_str())
        .unwrap();
    assert_eq!(row["verification"], "deleted", "{inbox:#}");
    // The bytes are gone from the prison's store (a small document: from its database), and
    // still held by probation.
    let blob = fed.json(city, &["receipts", &doc])[0]["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sb.stored(&prison.home, &blob), None);
    assert!(sb.stored(&probation.home, &blob).is_some());
    assert!(has_entry(
        &log_of(&fed, prison, &doc),
        "deletion",
        "revoked"
    ));
    // Probation still opens.
    open(&fed, probation, &doc, Some("case review"), "out-1").ok();

    // Revoke everyone: the share is shredded; even a kept copy cannot be opened.
    let blob = fed.json(city, &["receipts", &doc])[0]["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        sb.path("kept.liaise"),
        sb.stored(&probation.home, &blob).unwrap(),
    )
    .unwrap();
    let db = sb.path(&format!("{}/store/liaise.db", city.home));
    let sealed_share: Vec<u8> = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT share FROM custody_documents WHERE doc_id = ?1",
            [&doc],
            |r| r.get(0),
        )
        .unwrap();
    let revoked = fed.json(city, &["revoke", &doc]);
    assert_eq!(revoked["share_shredded"], true, "{revoked:#}");
    // Shredded in the database file and gone from its write-ahead log too, whose old page
    // images would otherwise keep the (sealed) share until SQLite wrote over them.
    let wal = sb.path(&format!("{}/store/liaise.db-wal", city.home));
    let holds_share = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes.windows(sealed_share.len()).any(|w| w == sealed_share)
    };
    let shredded_by = Instant::now() + Duration::from_secs(30);
    while holds_share(&wal) || holds_share(&db) {
        assert!(
            Instant::now() < shredded_by,
            "the shredded share is still in {}",
            if holds_share(&db) {
                "the database"
            } else {
                "its log"
            }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    open(
        &fed,
        probation,
        "kept.liaise",
        Some("one more look"),
        "out-2",
    )
    .fails_with("revoked by the originator");
    let custody = wait_custody(&fed, city, &doc, |v| {
        reader(v, PROBATION)["deletion"] == "done"
    });
    assert_eq!(custody["share"], "shredded");
    assert!(has_entry(
        &log_of(&fed, city, &doc),
        "share-refused",
        "revoked"
    ));
    assert!(has_entry(&log_of(&fed, city, &doc), "revoke", PROBATION));

    // Expiry works the same way at the not-after time, with room before it for a slow
    // machine to deliver the document and open it once.
    let short = send(&fed, city, PROBATION, &["--expires", "30s"]);
    let verified = fed.json(probation, &["verify", &short]);
    let not_after = verified["recipients"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["agency"] == PROBATION))
        .and_then(|r| r["expires"].as_str())
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or_else(|| panic!("no expiry: {verified:#}"));
    open(&fed, probation, &short, Some("before expiry"), "out-3").ok();
    // Access ends once the not-after second (times are whole seconds) has passed; one second
    // more for the margin.
    while Timestamp::now().0 <= not_after.0 + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = open(&fed, probation, &short, Some("after expiry"), "out-4");
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("expired") || run.stderr.contains("was deleted"),
        "{}",
        run.stderr
    );
    let custody = wait_custody(&fed, city, &short, |v| {
        v["share"] == "shredded" && reader(v, PROBATION)["deletion"] == "done"
    });
    assert_eq!(custody["shred_reason"], "expired");
    assert_eq!(reader(&custody, PROBATION)["deletion_reason"], "expired");

    // The evidence bundle of the revoked document carries both readers' deletion receipts
    // (once a signed checkpoint covers their log entries: within 30 s while the node runs).
    let deadline = Instant::now() + Duration::from_secs(45);
    let exported = loop {
        let run = sb.liaise(&[
            "evidence",
            "export",
            "--home",
            &city.home,
            &doc,
            "--out",
            "revoked.evidence",
            "--json",
        ]);
        if run.code == Some(0) {
            let exported = run.json();
            if exported["unanchored_entries"] == 0 {
                break exported;
            }
        }
        assert!(Instant::now() < deadline, "{} {}", run.stdout, run.stderr);
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(exported["deletion_receipts"], 2, "{exported:#}");
    // The city's log holds each signed deletion receipt itself, not only that one came.
    let with_receipt = log_of(&fed, city, &doc)
        .iter()
        .filter(|e| e["kind"] == "deletion-receipt" && e["detail"]["receipt"].is_string())
        .count();
    assert_eq!(with_receipt, 2);
}

#[test]
fn offline_documents_open_without_the_originator_and_cannot_be_revoked() {
    let fed = three();
    let [city, probation, _] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"Case 17: pre-sentence advice").unwrap();

    // `seal` under originator control (the default) records the share in the store, with no
    // node running; `seal --offline` gives recipients the whole key.
    for (out, extra) in [
        ("controlled.liaise", None),
        ("offline.liaise", Some("--offline")),
    ] {
        let mut args = vec![
            "seal", "--home", &city.home, "--to", PROBATION, "--out", out,
        ];
        args.extend(extra);
        args.push("report.txt");
        sb.liaise(&args).ok();
    }
    let verified = sb.liaise(&["verify", "--home", &probation.home, "offline.liaise"]);
    assert!(
        verified.ok().contains("custody    offline"),
        "{}",
        verified.stdout
    );

    // No node runs anywhere: the offline file opens, without a reason.
    open(&fed, probation, "offline.liaise", None, "out-1").ok();
    assert_eq!(sb.read("out-1/report.txt"), b"Case 17: pre-sentence advice");
    // The controlled file needs the probation node to ask the city's node.
    open(
        &fed,
        probation,
        "controlled.liaise",
        Some("court order 4"),
        "out-2",
    )
    .fails_with("no node is running");
    // A mistyped home is not taken for a stopped node.
    sb.liaise(&["status", "--home", "no-such-home"])
        .fails_with("no-such-home is not a Liaise home");
    let _nodes = [fed.start(city), fed.start(probation)];
    open(
        &fed,
        probation,
        "controlled.liaise",
        Some("court order 4"),
        "out-2",
    )
    .ok();
    assert_eq!(sb.read("out-2/report.txt"), b"Case 17: pre-sentence advice");

    // An offline document cannot be revoked.
    let doc = send(&fed, city, PROBATION, &["--offline"]);
    sb.liaise(&["revoke", "--home", &city.home, &doc])
        .fails_with("cannot be revoked");
    // Nor forwarded with consent: its originator keeps no share to consent with, and the
    // reader's node says so without asking it.
    sb.liaise(&[
        "forward",
        "--home",
        &probation.home,
        &doc,
        "--to",
        PRISON,
        "--reason",
        "case transfer",
    ])
    .fails_with(&format!(
        "was sealed --offline: its readers hold its whole key and {CITY} keeps no share"
    ));
}

/// Speaks QUIC to a node with another member's keys, like that member's node would.
struct Member {
    endpoint: quinn::Endpoint,
    secrets: liaise_keys::AgencySecrets,
}

impl Member {
    fn new(home: &std::path::Path) -> Self {
        let (endpoint, secrets) = super::nodes::member_client(home);
        Self { endpoint, secrets }
    }

    /// Sends one share request on a fresh stream and returns the answer.
    async fn ask(&self, conn: &quinn::Connection, request: Vec<u8>) -> Message {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&encode_frame(&Message::ShareRequest { request }))
            .await
            .unwrap();
        let _ = send.finish();
        let bytes = recv.read_to_end(1 << 20).await.unwrap();
        decode_frame(&bytes, &[MessageKind::ShareRelease, MessageKind::Refused])
            .unwrap()
            .0
    }
}

fn refusal(answer: &Message) -> String {
    match answer {
        Message::Refused { reason, .. } => reason.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn replayed_and_forged_share_requests_are_refused_and_logged() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation)];
    let doc = send(&fed, city, PROBATION, &[]);
    let address = fed.address(city);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let as_probation = Member::new(&fed.sandbox.path(&probation.home));
    let prison_keys = Member::new(&fed.sandbox.path(&prison.home));
    let document_id: [u8; 16] = (0..16)
        .map(|i| u8::from_str_radix(&doc[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let body = |requester: &str| ShareRequestBody {
        version: CUSTODY_VERSION,
        document_id,
        originator: AgencyId::new(CITY).unwrap(),
        requester: AgencyId::new(requester).unwrap(),
        reason: "replay test".into(),
        requested_at: Timestamp::now(),
        nonce: liaise_keys::random::random_bytes::<16>(),
    };
    rt.block_on(async {
        let conn = as_probation
            .endpoint
            .connect(address.parse().unwrap(), CITY)
            .unwrap()
            .await
            .unwrap();
        // The real node says hello first; the originator does not need it for share requests.
        let genuine = Signed::sign(&body(PROBATION), &as_probation.secrets.signing).to_bytes();
        let first = as_probation.ask(&conn, genuine.clone()).await;
        assert!(matches!(first, Message::ShareRelease { .. }), "{first:?}");
        // The same request again: a replay.
        let again = as_probation.ask(&conn, genuine).await;
        assert_eq!(refusal(&again), "replayed request");
        // Signed by the prison's key, sent over probation's connection: refused.
        let forged = Signed::sign(&body(PRISON), &prison_keys.secrets.signing).to_bytes();
        let answer = as_probation.ask(&conn, forged).await;
        assert_eq!(refusal(&answer), "bad request");
        // Naming probation but signed with the prison's key: refused.
        let wrong_key = Signed::sign(&body(PROBATION), &prison_keys.secrets.signing).to_bytes();
        let answer = as_probation.ask(&conn, wrong_key).await;
        assert_eq!(refusal(&answer), "bad request");
        // Outside the time window: refused.
        let mut stale = body(PROBATION);
        stale.requested_at = Timestamp(stale.requested_at.0 - 3600);
        let stale = Signed::sign(&stale, &as_probation.secrets.signing).to_bytes();
        assert_eq!(
            refusal(&as_probation.ask(&conn, stale).await),
            "bad request"
        );
        // Near the window's edges, with a few seconds' margin for the real clocks (the exact
        // limit is a unit test of `within_request_window`): inside answered, outside refused.
        for (shift, answered) in [
            (-(REQUEST_WINDOW_SECS as i64 - 5), true),
            (REQUEST_WINDOW_SECS as i64 - 5, true),
            (REQUEST_WINDOW_SECS as i64 + 5, false),
            (-(REQUEST_WINDOW_SECS as i64 + 5), false),
        ] {
            let mut edge = body(PROBATION);
            edge.requested_at = Timestamp(edge.requested_at.0.checked_add_signed(shift).unwrap());
            let edge = Signed::sign(&edge, &as_probation.secrets.signing).to_bytes();
            let answer = as_probation.ask(&conn, edge).await;
            if answered {
                assert!(
                    matches!(answer, Message::ShareRelease { .. }),
                    "{shift}: {answer:?}"
                );
            } else {
                assert_eq!(refusal(&answer), "bad request", "{shift}");
            }
        }
    });
    let at_city = log_of(&fed, city, &doc);
    assert!(
        has_entry(&at_city, "share-refused", "replayed request"),
        "{at_city:#?}"
    );
    let refusals = fed.json(city, &["log"]).to_string();
    assert!(
        refusals.contains("not signed by the requester"),
        "{refusals}"
    );
}

#[test]
fn forwarding_with_consent_shows_the_chain_and_verifies_offline() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let city_node = fed.start(city);
    let _others = [fed.start(probation), fed.start(prison)];
    let sb = &fed.sandbox;
    let allowed = send(&fed, city, PROBATION, &["--allow-forward-to", PRISON]);
    let not_allowed = send(&fed, city, PROBATION, &[]);

    // Not in the policy: refused by the originator, nothing written.
    sb.liaise(&[
        "forward",
        "--home",
        &probation.home,
        &not_allowed,
        "--to",
        PRISON,
        "--reason",
        "joint supervision",
        "--out",
        "no.liaise",
    ])
    .fails_with("does not allow forwarding to nl.prison.vught");
    assert!(!sb.path("no.liaise").exists());

    // Allowed: the city's node consents and the prison becomes a reader.
    sb.liaise(&[
        "forward",
        "--home",
        &probation.home,
        &allowed,
        "--to",
        PRISON,
        "--reason",
        "joint supervision",
        "--out",
        "fwd.liaise",
    ])
    .ok();
    let custody = fed.json(city, &["custody", &allowed]);
    assert_eq!(reader(&custody, PRISON)["origin"], "forwarded");
    assert_eq!(reader(&custody, PRISON)["forwarded_by"], PROBATION);
    assert!(has_entry(
        &log_of(&fed, city, &allowed),
        "forward",
        "joint supervision"
    ));

    // The prison opens it (asking the city for the share) and sees the chain.
    let opened = open(
        &fed,
        prison,
        "fwd.liaise",
        Some("intake interview"),
        "out-1",
    );
    let line = opened.ok();
    assert!(
        line.contains(&format!("signed by {CITY}"))
            && line.contains(&format!("forwarded by {PROBATION} with {CITY}'s consent")),
        "{line}"
    );
    assert_eq!(sb.read("out-1/report.txt"), b"Case 17: pre-sentence advice");
    assert!(has_entry(
        &log_of(&fed, city, &allowed),
        "share-released",
        "intake interview"
    ));

    // Offline, with the roster alone: both signatures and the chain verify.
    city_node.kill();
    let verified = sb
        .liaise(&[
            "verify",
            "fwd.liaise",
            "--roster",
            "fed/roster.liaise",
            "--json",
        ])
        .json();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["signer"], CITY);
    assert_eq!(verified["forwarded"]["forwarder"], PROBATION);
    assert_eq!(verified["forwarded"]["consented_by"], CITY);
    assert_eq!(verified["forwarded"]["new_reader"], PRISON);
    let text = sb.liaise(&["verify", "fwd.liaise", "--roster", "fed/roster.liaise"]);
    assert!(
        text.ok().contains(&format!(
            "Signed by {CITY}, forwarded by {PROBATION} with {CITY}'s consent"
        )),
        "{}",
        text.stdout
    );
    // A consent changed by one bit no longer verifies.
    let mut bytes = sb.read("fwd.liaise");
    bytes[40] ^= 1;
    std::fs::write(sb.path("tampered.liaise"), &bytes).unwrap();
    let run = sb.liaise(&["verify", "tampered.liaise", "--roster", "fed/roster.liaise"]);
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    // For a script, the same verdict as any other document that does not verify.
    let run = sb.liaise(&[
        "verify",
        "tampered.liaise",
        "--roster",
        "fed/roster.liaise",
        "--json",
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let verdict: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["valid"], false, "{verdict:#}");
    assert_eq!(verdict["error_kind"], "forwarding consent rejected");
}

#[test]
fn a_send_with_no_node_running_records_no_key_share() {
    let fed = three();
    let city = &fed.agencies[0];
    let sb = &fed.sandbox;
    // The node has run (its store exists) but is down now.
    fed.start(city).kill();
    std::fs::write(sb.path("report.txt"), b"Case 17: pre-sentence advice").unwrap();
    sb.liaise(&[
        "send",
        "--home",
        &city.home,
        "--to",
        PROBATION,
        "report.txt",
    ])
    .fails_with("no node is running");
    // Nothing was sealed for nobody: no key share of a document no one will ever see.
    let db = sb.path(&format!("{}/store/liaise.db", city.home));
    let conn = rusqlite::Connection::open(db).unwrap();
    let shares: i64 = conn
        .query_row("SELECT count(*) FROM custody_documents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shares, 0);
}

#[test]
fn an_open_interrupted_after_the_share_was_released_is_logged_as_not_written() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _nodes = [fed.start(city), fed.start(probation)];
    let sb = &fed.sandbox;
    // Large enough that the open is still decrypting when it is stopped.
    let content = b"Case 18, a long assessment. ".repeat((96 << 20) / 28);
    let doc = fed.deliver_text(city, PROBATION, "big.bin", &content);
    drop(content);
    let mut open = sb
        .command(&[
            "open",
            "--home",
            &probation.home,
            &doc,
            "--out-dir",
            "out",
            "--reason",
            "interrupted review",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Decrypting means the originator released the share: both logs have the open.
    let run = sb.path(&format!("{}/run", probation.home));
    super::sealed::wait_until_decrypting(&mut open, &run);
    let stopped = std::process::Command::new("kill")
        .args(["-INT", &open.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert_eq!(open.wait().unwrap().code(), Some(130));
    assert!(!sb.path("out").exists());
    assert!(has_entry(
        &log_of(&fed, city, &doc),
        "share-released",
        "interrupted review"
    ));
    // The reader's log does not leave the release as the last word: the open wrote nothing,
    // because it was interrupted.
    let opens: Vec<_> = log_of(&fed, probation, &doc)
        .into_iter()
        .filter(|e| e["kind"] == "open" && e["reason"] == "interrupted review")
        .collect();
    assert_eq!(opens.len(), 2, "the open, then its end: {opens:#?}");
    assert_eq!(opens[1]["detail"]["written"], false, "{opens:#?}");
    assert_eq!(opens[1]["detail"]["error"], "interrupted", "{opens:#?}");
}
