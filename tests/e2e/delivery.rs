//! Delivery between real nodes on loopback: send, receive, receipts, groups, offline peers,
//! revoked members.

use std::net::SocketAddr;
use std::time::Duration;

use liaise_tests::chaos_proxy::{Chaos, ChaosProxy};
use liaise_tests::free_udp_port;
use serde_json::Value;

use super::nodes::{TestFederation, states};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// How long the node's dial of one address may take.
const DIAL_TIMEOUT: Duration = liaise_node::daemon::DIAL_TIMEOUT;

fn three() -> TestFederation {
    TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[("case-conference", &[0, 1, 2])],
    )
}

#[test]
fn three_nodes_send_receive_and_receipts() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let [city_node, _probation_node, _prison_node] =
        [fed.start(city), fed.start(probation), fed.start(prison)];
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"Case 17: pre-sentence advice").unwrap();
    std::fs::write(sb.path("annex.txt"), b"Medical annex: probation only").unwrap();

    let sent = sb.liaise(&[
        "send",
        "--home",
        &city.home,
        "--to",
        &format!("{PROBATION},{PRISON}"),
        "--section",
        "annex=annex.txt",
        "--section-readers",
        &format!("annex={PROBATION}"),
        "--wait",
        "--timeout",
        "60s",
        "report.txt",
    ]);
    let doc_id = sent.ok().trim().to_owned();
    assert_eq!(doc_id.len(), 32, "{doc_id}");

    for receiver in [probation, prison] {
        let inbox = fed.json(receiver, &["inbox"]);
        let rows = inbox.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{inbox:#}");
        assert_eq!(rows[0]["doc_id"], doc_id.as_str());
        assert_eq!(rows[0]["sender"], CITY);
        assert_eq!(rows[0]["verification"], "verified");
    }
    let receipts = fed.json(city, &["receipts", &doc_id]);
    let receipts = receipts.as_array().unwrap();
    assert_eq!(receipts.len(), 2);
    for r in receipts {
        assert_eq!(r["verification"], "verified");
        assert_eq!(r["sender"], CITY);
    }
    // A document this node never sent has no receipts to show: an error, not "none yet".
    sb.liaise(&["receipts", "--home", &city.home, &"f".repeat(32)])
        .fails_with("was sent by this node");
    // The sealed bytes at both receivers are identical to what the sender stored.
    let hashes: Vec<_> = receipts.iter().map(|r| r["content_hash"].clone()).collect();
    assert_eq!(hashes[0], hashes[1]);
    let blob = hashes[0].as_str().unwrap();
    let sent_bytes = sb.stored(&city.home, blob).unwrap();
    for receiver in [probation, prison] {
        assert_eq!(sb.stored(&receiver.home, blob).unwrap(), sent_bytes);
    }

    // Probation opens both parts; the prison only the main part, never the annex.
    let opened = fed.json(
        probation,
        &[
            "open",
            &doc_id,
            "--reason",
            "case conference",
            "--out-dir",
            "probation-out",
            "--with-signatures",
        ],
    );
    assert_eq!(opened["files"].as_array().unwrap().len(), 2, "{opened:#}");
    assert_eq!(
        sb.read("probation-out/annex.txt"),
        b"Medical annex: probation only"
    );
    assert_eq!(
        sb.read("probation-out/report.txt"),
        b"Case 17: pre-sentence advice"
    );
    assert!(sb.path("probation-out/report.txt.sig").exists());
    let opened = fed.json(
        prison,
        &[
            "open",
            &doc_id,
            "--reason",
            "intake",
            "--out-dir",
            "prison-out",
        ],
    );
    assert_eq!(opened["files"].as_array().unwrap().len(), 1, "{opened:#}");
    assert_eq!(opened["unreadable_sections"][0], "annex");
    assert_eq!(
        sb.read("prison-out/report.txt"),
        b"Case 17: pre-sentence advice"
    );
    assert!(!sb.path("prison-out/annex.txt").exists());
    // Anyone can verify the stored document against the roster, no key needed.
    let verified = fed.json(prison, &["verify", &doc_id]);
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["signer"], CITY);
    // Recipients are listed in agency-id order: the prison, then probation.
    assert_eq!(verified["recipients"][0]["agency"], PRISON);
    assert_eq!(
        verified["recipients"][0]["sections"],
        serde_json::json!(["main"])
    );
    assert_eq!(verified["recipients"][1]["agency"], PROBATION);
    assert_eq!(
        verified["recipients"][1]["sections"],
        serde_json::json!(["main", "annex"])
    );

    // A group send reaches every other member.
    std::fs::write(sb.path("minutes.txt"), b"Case conference minutes").unwrap();
    let group_doc = sb
        .liaise(&[
            "send",
            "--home",
            &prison.home,
            "--to-group",
            "case-conference",
            "--wait",
            "--timeout",
            "60s",
            "minutes.txt",
        ])
        .ok()
        .trim()
        .to_owned();
    let rows = fed.json(prison, &["outbox"]);
    assert_eq!(
        states(rows.as_array().unwrap(), &group_doc),
        vec!["delivered", "delivered"]
    );
    for member in [city, probation] {
        let inbox = fed.json(member, &["inbox"]);
        assert!(
            inbox
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["doc_id"] == group_doc.as_str() && r["verification"] == "verified"),
            "{inbox:#}"
        );
    }

    // Status reports the roster and queues, and with --check, every other member as reachable.
    let status = fed.json(city, &["status", "--check"]);
    assert_eq!(status["agency"], CITY);
    assert_eq!(status["roster_expired"], false);
    // Keys certified for a year a moment ago: nothing to warn about.
    assert_eq!(status["key_warnings"], serde_json::json!([]), "{status}");
    assert_eq!(status["outbox"]["delivered"], 2);
    assert_eq!(status["inbox"], 1);
    let peers = status["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{status:#}");
    for peer in peers {
        assert_eq!(peer["reachable"], true, "{status:#}");
        assert!(peer["error"].is_null(), "{status:#}");
    }
    // A later --check is a new contact over the open connections: its time moves on.
    std::thread::sleep(Duration::from_millis(1100));
    let later = fed.json(city, &["status", "--check"]);
    for (before, after) in peers.iter().zip(later["peers"].as_array().unwrap()) {
        assert!(
            after["checked_at"].as_u64() > before["checked_at"].as_u64(),
            "{before:#} then {after:#}"
        );
    }

    // With the city's node stopped, its receipts are still there to show, checked the same.
    let online = fed.json(city, &["receipts", &doc_id]);
    city_node.terminate();
    let offline = sb.liaise(&["receipts", "--home", &city.home, &doc_id, "--json"]);
    assert!(
        offline.stderr.contains("no node is running"),
        "{}",
        offline.stderr
    );
    assert_eq!(offline.json(), online);
    sb.liaise(&["receipts", "--home", &city.home, &"f".repeat(32)])
        .fails_with("was sent by this node");
}

#[test]
fn offline_recipient_gets_the_document_when_it_starts() {
    let fed = three();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city_node = fed.start(city);
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"queued while the receiver is down").unwrap();
    let doc_id = sb
        .liaise(&[
            "send",
            "--home",
            &city.home,
            "--to",
            PROBATION,
            "report.txt",
        ])
        .ok()
        .trim()
        .to_owned();
    // An operator checking the network sees which member does not answer, and why.
    let status = fed.json(city, &["status", "--check"]);
    let peer = peer_status;
    let down = peer(&status, PROBATION);
    assert_eq!(down["reachable"], false, "{status:#}");
    assert!(
        down["error"].as_str().unwrap().contains("cannot reach"),
        "{status:#}"
    );
    // A failed attempt is recorded and the document stays queued.
    fed.wait_outbox(city, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == doc_id.as_str() && r["attempts"].as_u64() >= Some(1))
    });
    assert_eq!(
        states(
            &fed.json(city, &["outbox"]).as_array().unwrap().clone(),
            &doc_id
        ),
        vec!["queued"]
    );
    // --wait gives up with "try again later" (75, not 2, which is a usage error) and the
    // document stays queued. A --timeout alone means to wait as long.
    std::fs::write(sb.path("second.txt"), b"second").unwrap();
    let timed_out = sb.liaise(&[
        "send",
        "--home",
        &city.home,
        "--to",
        PROBATION,
        // A plain number is seconds, as for timeout(1).
        "--timeout",
        "1",
        "second.txt",
    ]);
    assert_eq!(timed_out.code, Some(75), "{}", timed_out.stderr);
    assert!(
        timed_out
            .stderr
            .contains("error: timeout: the document stays queued"),
        "{}",
        timed_out.stderr
    );
    // It says who has no receipt yet, on its one error line.
    assert!(
        timed_out.stderr.contains(&format!("{PROBATION}: queued")),
        "{}",
        timed_out.stderr
    );
    assert_eq!(
        timed_out.stderr.trim_end().lines().count(),
        1,
        "{}",
        timed_out.stderr
    );

    let _probation_node = fed.start(probation);
    fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        rows.len() == 2 && rows.iter().all(|r| r["state"] == "delivered")
    });
    let inbox = fed.json(probation, &["inbox"]);
    assert_eq!(inbox.as_array().unwrap().len(), 2);
}

#[test]
fn a_wait_that_loses_its_node_has_printed_the_id_and_says_the_document_stays_queued() {
    use std::io::{BufRead, BufReader};
    let fed = three();
    let city = &fed.agencies[0];
    let city_node = fed.start(city);
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"for a recipient that is down").unwrap();
    // The probation service's node is down, so the wait goes on until the city's node stops.
    let wait_for_probation = |extra: &[&str]| {
        let mut args = vec![
            "send",
            "--home",
            &city.home,
            "--to",
            PROBATION,
            "--wait",
            "--timeout",
            "2m",
        ];
        args.extend_from_slice(extra);
        args.push("report.txt");
        sb.command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut send = wait_for_probation(&[]);
    let mut first = String::new();
    BufReader::new(send.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let doc_id = first.trim().to_owned();
    assert_eq!(doc_id.len(), 32, "{first:?}");
    // The id came while the wait still runs, so an interrupted wait leaves it on the screen.
    assert!(send.try_wait().unwrap().is_none());
    // A script's wait (--json) prints its JSON with the id when the wait is cut short too.
    let scripted = wait_for_probation(&["--json"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fed.json(city, &["outbox"]).as_array().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second send never queued"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    city_node.terminate();
    let out = send.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("stays queued"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&doc_id), "{stderr}");
    let out = scripted.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "node stopped: the document stays queued");
    let other = json["doc_id"].as_str().unwrap();
    assert!(other.len() == 32 && other != doc_id, "{json}");
    assert!(stderr.contains(other), "{stderr}");

    // With the node down, `outbox` and `inbox` still show what its store last recorded.
    let outbox = fed
        .sandbox
        .liaise(&["outbox", "--home", &city.home, "--json"]);
    assert!(
        outbox.stderr.contains("no node is running"),
        "{}",
        outbox.stderr
    );
    assert_eq!(
        states(outbox.json().as_array().unwrap(), &doc_id),
        ["queued"]
    );
    let inbox = fed.sandbox.liaise(&["inbox", "--home", &city.home]);
    assert!(
        inbox.ok().contains("The inbox is empty."),
        "{}",
        inbox.stdout
    );
    // Started again, the node answers with the same row.
    let _city_node = fed.start(city);
    let rows = fed.json(city, &["outbox"]).as_array().unwrap().clone();
    assert_eq!(states(&rows, &doc_id), ["queued"]);
}

#[test]
fn a_roster_imported_while_the_node_runs_is_in_force_at_once() {
    let fed = three();
    let [city, prison] = [&fed.agencies[0], &fed.agencies[2]];
    let _city_node = fed.start(city);
    assert_eq!(fed.json(city, &["status"])["roster_serial"], 1);
    // The stewards revoke the prison; the city's IT imports serial 2 with its node running.
    fed.sandbox
        .liaise(&["federation", "revoke", "--dir", "fed", PRISON])
        .ok();
    fed.publish();
    let imported = fed.sandbox.liaise(&[
        "roster",
        "import",
        "--home",
        &city.home,
        "fed/roster.liaise",
    ]);
    assert!(
        imported.ok().contains("The running node uses it now."),
        "{}",
        imported.stderr
    );
    // No restart: the node's status and its refusal of the prison follow serial 2 at once.
    assert_eq!(fed.json(city, &["status"])["roster_serial"], 2);
    let _prison_node = fed.start(prison);
    let doc_id = fed.send_text(prison, CITY, "x.txt", b"from a revoked member");
    let rows = fed.wait_outbox(prison, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == doc_id.as_str() && r["attempts"].as_u64() >= Some(1))
    });
    assert_eq!(states(&rows, &doc_id), vec!["queued"], "{rows:#?}");
    // Refused for what it is, under serial 2: the city's node no longer accepts its key.
    assert!(refused_at_handshake(&rows, &doc_id), "{rows:#?}");
    assert_eq!(fed.json(city, &["inbox"]).as_array().unwrap().len(), 0);

    // The next roster, imported with --json: the answer names the serial the node now uses.
    fed.sandbox.publish("fed", "fed/r3.liaise");
    let json = fed
        .sandbox
        .liaise(&[
            "roster",
            "import",
            "--home",
            &city.home,
            "fed/r3.liaise",
            "--json",
        ])
        .json();
    assert_eq!(json["serial"], 3, "{json:#}");
    assert_eq!(json["node_serial"], 3, "{json:#}");
}

#[test]
fn a_second_node_on_a_home_is_refused_and_logs_carry_no_colour_codes() {
    let fed = three();
    let city = &fed.agencies[0];
    let _city_node = fed.start_with(city, &[], Some("city.log"));
    let second = fed.sandbox.liaise(&["node", "run", "--home", &city.home]);
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    assert!(
        second.stderr.contains("a node is already running for"),
        "{}",
        second.stderr
    );
    assert_eq!(second.stderr.trim().lines().count(), 1, "{}", second.stderr);
    // The first node is unaffected, and its log (not a terminal) is plain text.
    assert_eq!(fed.json(city, &["status"])["roster_serial"], 1);
    let log = String::from_utf8(fed.sandbox.read("city.log")).unwrap();
    assert!(log.contains("node running"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");

    // A node told to listen on an address this machine does not have (TEST-NET-1) says so,
    // on one line, and what to do.
    let probation = &fed.agencies[1];
    let elsewhere = fed.sandbox.liaise(&[
        "node",
        "run",
        "--home",
        &probation.home,
        "--listen",
        "192.0.2.10:17405",
    ]);
    let error = elsewhere.fails_with("cannot listen on 192.0.2.10:17405");
    assert!(error.contains("not an address of this machine"), "{error}");
    assert!(error.contains("--listen IP:PORT"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
}

/// Two outages, side by side, with the backoff of a production node (up to 10 minutes between
/// attempts): the probation service's network fails while its node runs, and the prison's
/// node is down. Documents queued for either go out once it answers again, not when their
/// backoff ends: the prison's as soon as its node starts (it dials its peers at start, and
/// the city's node dials back the peer it could not reach), the probation service's as soon
/// as the city's node reaches it again for a new document.
#[test]
fn documents_backed_off_for_a_recipient_are_retried_once_it_answers_again() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    // Probation cannot be reached: its node runs, but behind a proxy (at the address the
    // roster gives) that drops every packet, as a network outage would. So when it answers
    // again, nothing as slow as starting a node falls in the backoff window measured below.
    let front: SocketAddr = fed.address(probation).parse().unwrap();
    let real: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let calm = Chaos {
        seed: 11,
        drop: 0,
        duplicate: 0,
        corrupt: 0,
        max_delay: Duration::ZERO,
    };
    let proxy = ChaosProxy::start(front, real, calm).unwrap();
    proxy.partition();
    let _probation_node = fed.start_with(probation, &["--listen", &real.to_string()], None);
    // The city's node as in production: backoff up to 10 minutes between attempts.
    let _city_node = fed.start_with(city, &["--max-retry-interval", "10m"], Some("city.log"));
    let early = fed.send_text(
        city,
        PROBATION,
        "early.txt",
        b"sent while probation is unreachable",
    );
    let for_prison = fed.send_text(city, PRISON, "prison.txt", b"sent while the prison is down");
    // Five failed attempts each (each dial gives up after 10 s): the next ones wait 8 to 16 s.
    // Each step below starts while its document has at least MARGIN of backoff left (else
    // after its next failure, which waits 16 to 32 s), and no attempt is under way (one would
    // leave the due time in the past): room for a node to start on a loaded machine.
    const MARGIN: u64 = 10;
    let backed_off = |doc: &str| {
        let rows = fed.wait_outbox(city, Duration::from_secs(150), |rows| {
            rows.iter().any(|r| {
                r["doc_id"] == doc
                    && r["attempts"].as_u64() >= Some(5)
                    && r["next_attempt_at"].as_u64() >= Some(unix_now() + MARGIN)
            })
        });
        let row = rows.iter().find(|r| r["doc_id"] == doc).unwrap();
        row["next_attempt_at"].as_u64().unwrap()
    };
    let delivered_at = |rows: &[Value], doc: &str| {
        let row = rows.iter().find(|r| r["doc_id"] == doc).unwrap();
        row["delivered_at"].as_u64().unwrap()
    };

    // Probation answers again, and a new document reaches it at once; the early one follows
    // it then, not when its backoff ends.
    let early_due = backed_off(&early);
    proxy.heal();
    fed.deliver_text(city, PROBATION, "late.txt", b"sent once probation answers");
    let rows = fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &early) == ["delivered"]
    });
    let at = delivered_at(&rows, &early);
    assert!(
        at < early_due,
        "delivered at {at}, its backoff ended at {early_due}"
    );

    // The prison's node starts: its document is delivered at once.
    let prison_due = backed_off(&for_prison);
    let _prison_node = fed.start(prison);
    let rows = fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &for_prison) == ["delivered"]
    });
    let at = delivered_at(&rows, &for_prison);
    assert!(
        at < prison_due,
        "delivered at {at}, its backoff ended at {prison_due}"
    );
    // And why: the node rescheduled what waited for each peer once a dial reached it again,
    // rather than the backoff happening to end meanwhile; the prison's node was dialled back
    // because it connected.
    let log = super::nodes::read_log(&fed.sandbox, "city.log");
    let retried = log
        .lines()
        .filter(|l| l.contains("a peer answers again: its deliveries are retried now"))
        .count();
    assert_eq!(retried, 2, "{log}");
    assert!(
        log.lines().any(|l| l.contains(PRISON)
            && l.contains("a peer this node could not reach connected; dialling it back")),
        "{log}"
    );
}

#[test]
fn an_offline_recipients_queue_holds_up_others_for_one_dial_at_most() {
    let fed = three();
    let [city, prison] = [&fed.agencies[0], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(prison)];
    // More documents for the offline probation service than one agency may have in flight
    // (MAX_PER_AGENCY), submitted in-process (one key unlock, not one per document).
    let in_flight = liaise_node::daemon::MAX_PER_AGENCY;
    let for_probation = super::nodes::submit_many(&fed, city, PROBATION, in_flight + 8, 13);
    let sent_at = std::time::Instant::now();
    let for_prison = fed.send_text(city, PRISON, "prison.txt", b"for the prison");
    // The deliveries waiting for the same dial share its failure (one DIAL_TIMEOUT) instead
    // of dialling again one after another, each holding a slot: the prison's document, queued
    // behind them, is delivered once that one dial has failed. The bounds below only tell
    // the two apart: a few DIAL_TIMEOUTs against MAX_PER_AGENCY (128) of them.
    fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &for_prison) == ["delivered"]
    });
    assert!(
        sent_at.elapsed() < DIAL_TIMEOUT * 3,
        "{:?}",
        sent_at.elapsed()
    );
    // The probation deliveries in flight fail together with their one dial, not one after
    // another (a dial of 10 s each).
    let tried = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["recipient"] == PROBATION && r["attempts"].as_u64() >= Some(1))
            .cloned()
            .collect()
    };
    let rows = fed.wait_outbox(city, Duration::from_secs(90), |rows| {
        tried(rows).len() >= in_flight
    });
    assert!(
        sent_at.elapsed() < DIAL_TIMEOUT * 9 / 2,
        "{:?}",
        sent_at.elapsed()
    );
    for doc in &for_probation {
        assert_eq!(states(&rows, doc), ["queued"]);
    }
    let tried = tried(&rows);
    assert!(
        tried.iter().all(|r| r["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach")),
        "{rows:#?}"
    );
}

#[test]
fn a_revoked_member_cannot_deliver() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    // Revoke the prison; only the city learns of it (roster serial 2).
    fed.sandbox
        .liaise(&["federation", "revoke", "--dir", "fed", PRISON])
        .ok();
    fed.publish();
    fed.import(city);
    let _city_node = fed.start(city);
    let _prison_node = fed.start(prison);
    let sb = &fed.sandbox;
    std::fs::write(sb.path("x.txt"), b"from a revoked agency").unwrap();
    let doc_id = sb
        .liaise(&["send", "--home", &prison.home, "--to", CITY, "x.txt"])
        .ok()
        .trim()
        .to_owned();
    let rows = fed.wait_outbox(prison, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == doc_id.as_str() && r["attempts"].as_u64() >= Some(2))
    });
    assert_eq!(states(&rows, &doc_id), vec!["queued"], "{rows:#?}");
    // Refused for what it is: the city's roster does not accept the prison's key.
    assert!(refused_at_handshake(&rows, &doc_id), "{rows:#?}");
    assert_eq!(fed.json(city, &["inbox"]).as_array().unwrap().len(), 0);

    // The probation service (still on serial 1) learns of the revocation by gossip when the
    // city connects to it, and then refuses the prison too.
    let _probation_node = fed.start(probation);
    fed.deliver_text(city, PROBATION, "y.txt", b"to probation");
    fed.wait_node_serial(probation, 2, Duration::from_secs(30));
    let doc2 = sb
        .liaise(&["send", "--home", &prison.home, "--to", PROBATION, "x.txt"])
        .ok()
        .trim()
        .to_owned();
    let rows = fed.wait_outbox(prison, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == doc2.as_str() && r["attempts"].as_u64() >= Some(1))
    });
    assert_eq!(states(&rows, &doc2), vec!["queued"]);
    assert!(refused_at_handshake(&rows, &doc2), "{rows:#?}");
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 1);
}

/// Whether `doc_id`'s outbox row says its last attempt was refused at the handshake.
fn refused_at_handshake(rows: &[Value], doc_id: &str) -> bool {
    rows.iter().any(|r| {
        r["doc_id"] == doc_id
            && r["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("refused this node at the handshake"))
    })
}

#[test]
fn status_shows_a_peer_whose_node_stopped_as_unreachable_without_a_check() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city_node = fed.start_with(city, &[], Some("city.log"));
    let probation_node = fed.start(probation);
    let peer = |status: &Value| peer_status(status, PROBATION);
    let doc = fed.send_text(city, PROBATION, "a.txt", b"first");
    fed.wait_outbox(city, Duration::from_secs(30), |rows| {
        states(rows, &doc) == vec!["delivered"]
    });
    let status = fed.json(city, &["status"]);
    assert_eq!(peer(&status)["reachable"], true, "{status:#}");
    // The probation service's node stops; nothing is sent to it. A plain `status`, as a
    // monitoring script runs it, shows it down once its node has closed the connection.
    assert_eq!(probation_node.terminate(), Some(0));
    let stopped = std::time::Instant::now();
    // The bound only tells the node's own close at shutdown (at once) from the connection
    // timing out (IDLE_TIMEOUT, 30 s); the log shows which it was.
    let within = liaise_node::transport::IDLE_TIMEOUT / 3;
    loop {
        let status = fed.json(city, &["status"]);
        if peer(&status)["reachable"] == false {
            break;
        }
        assert!(
            stopped.elapsed() < within,
            "still reachable {within:?} after its node stopped: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = super::nodes::read_log(&fed.sandbox, "city.log");
    let down = log
        .lines()
        .find(|l| l.contains("the peer's node is unreachable"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!down.contains("timed out"), "{down}");
    // Back up, it is reachable again with the next contact.
    let _probation_node = fed.start(probation);
    let doc = fed.send_text(city, PROBATION, "b.txt", b"second");
    fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &doc) == vec!["delivered"]
    });
    let status = fed.json(city, &["status"]);
    assert_eq!(peer(&status)["reachable"], true, "{status:#}");
}

#[test]
fn send_says_what_is_wrong_before_it_needs_a_node() {
    let fed = TestFederation::city_and_probation();
    let city = &fed.agencies[0];
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"a report").unwrap();
    // A prison set up but not yet in the roster: the roster is what it lacks, not a node.
    sb.agency("prison", PRISON, "prison", "127.0.0.1:9");
    fed.import(&super::nodes::Agency {
        id: PRISON.into(),
        home: "prison".into(),
    });
    sb.liaise(&["send", "--home", "prison", "--to", PROBATION, "report.txt"])
        .fails_with("nl.prison.vught is not a member in the roster this home holds");
    // A malformed --timeout is a usage error, like any other bad option value.
    sb.liaise(&[
        "send",
        "--home",
        &city.home,
        "--to",
        PROBATION,
        "report.txt",
        "--wait",
        "--timeout",
        "soon",
    ])
    .fails_as_usage("--timeout");
    // So is an --expires that is neither a duration nor a date.
    sb.liaise(&[
        "send",
        "--home",
        &city.home,
        "--to",
        PROBATION,
        "report.txt",
        "--expires",
        "soon",
    ])
    .fails_as_usage("--expires");
}

/// What `status --json` says of the peer `agency`.
fn peer_status(status: &Value, agency: &str) -> Value {
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["agency"] == agency)
        .cloned()
        .unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test]
fn a_large_send_and_open_show_progress_on_a_terminal() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _nodes = [fed.start(city), fed.start(probation)];
    let sb = &fed.sandbox;
    let content: Vec<u8> = (0..48u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(sb.path("big.bin"), &content).unwrap();
    let send = [
        "send",
        "--home",
        &city.home,
        "--to",
        PROBATION,
        "--wait",
        "--timeout",
        "300s",
        "big.bin",
    ];
    let shown = sb.liaise_on_terminal(&send);
    let screen = shown.ok();
    // Both bars were drawn, then cleared before the outcome. The delivery's counts the sealed
    // document's bytes (Padmé-padded: 49.01 MiB). How far it got in each drawing depends on
    // this machine's speed; what it counts is `send`'s unit tests'.
    assert!(screen.contains("sealing"), "{screen}");
    let drawn = screen
        .split("delivering")
        .skip(1)
        .any(|bar| bar.contains("B/49.01 MiB"));
    assert!(drawn, "no delivery progress: {screen}");
    assert!(screen.contains("delivered"), "{screen}");
    // Off a terminal (a script, a pipe), no bar: only the id, and the outcome on stderr.
    let piped = sb.liaise(&send);
    let doc_id = piped.ok().trim().to_owned();
    assert_eq!(doc_id.len(), 32, "{doc_id}");
    assert!(!piped.stderr.contains("delivering"), "{}", piped.stderr);
    assert!(!piped.stderr.contains("sealing"), "{}", piped.stderr);
    // The reader's open of it has a bar too, for the bytes it reads and checks.
    let opened = sb.liaise_on_terminal(&[
        "open",
        "--home",
        &probation.home,
        &doc_id,
        "--out-dir",
        "opened",
        "--reason",
        "case 17",
    ]);
    let screen = opened.ok();
    let drawn = screen
        .split("opening")
        .skip(1)
        .any(|bar| bar.contains("B/49.01 MiB"));
    assert!(drawn, "no progress while opening: {screen}");
    assert!(screen.contains("Verified: signed by"), "{screen}");
    assert!(std::fs::read(sb.path("opened/big.bin")).unwrap() == content);
}
