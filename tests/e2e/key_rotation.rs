//! `liaise keys rotate` in a running federation (`docs/spec/roster.md`, "Key rotation"): the
//! rotated node presents its previous transport key while its roster certifies it, so a peer
//! that still holds the roster from before the rotation reaches it and learns the new roster
//! from it; with `--no-overlap` the peer must hold the new roster first.

use std::time::{Duration, Instant};

use liaise_keys::Timestamp;

use super::nodes::{Agency, TestFederation, read_log, states};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";

#[test]
fn a_rotated_node_is_reached_by_peers_that_still_hold_the_old_roster() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let before = roster_serial(&fed, probation);

    let first = fed.json(city, &["keys", "rotate"]);
    let until = first["old_transport_key_until"].as_str().unwrap();
    let days = (Timestamp::parse_rfc3339(until).unwrap().0 - Timestamp::now().0) / 86_400;
    assert!((59..=60).contains(&days), "{first:#}");
    // Rotated again before the steward published: the old key is still the one peers know.
    let rotated = fed.json(city, &["keys", "rotate"]);
    assert_eq!(rotated["old_transport_key"], first["old_transport_key"]);
    assert_ne!(rotated["transport_key"], first["transport_key"]);
    // The steward lists the new keys; only the city has the new roster. Its node starts
    // afresh, with the new keys loaded.
    fed.add_member(city);
    fed.publish();
    fed.import(city);
    let _nodes = [fed.start(city), fed.start(probation)];

    // The probation node knows only the city's old transport key: the city presents it.
    fed.deliver_text(
        city,
        PROBATION,
        "report.txt",
        b"Risk assessment, after rotation",
    );
    // ... and the connection brought the new roster over.
    wait_for(
        || fed.node_serial(probation) == before + 1,
        "the new roster",
    );
    // Documents to the city are now sealed to its new encryption key, and open.
    let id = fed.deliver_text(probation, CITY, "reply.txt", b"Reply to the new keys");
    fed.sandbox
        .liaise(&[
            "open",
            "--home",
            &city.home,
            &id,
            "--out-dir",
            "opened",
            "--reason",
            "case review",
        ])
        .ok();
    assert_eq!(
        fed.sandbox.read("opened/reply.txt"),
        b"Reply to the new keys"
    );
    let verified = fed.json(city, &["verify", &id]);
    let new_key = rotated["encryption_key"].as_str().unwrap();
    assert!(
        verified.to_string().contains(new_key),
        "sealed to the new key {new_key}: {verified:#}"
    );
}

#[test]
fn without_overlap_a_rotated_node_is_reached_once_the_peer_holds_the_new_roster() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let rotated = fed.json(city, &["keys", "rotate", "--no-overlap"]);
    assert_eq!(rotated["old_transport_key_until"], serde_json::Value::Null);
    fed.add_member(city);
    fed.publish();
    fed.import(city);
    let _nodes = [fed.start(city), fed.start(probation)];

    // The city's new key is unknown to the probation node: nothing gets through.
    let id = fed.send_text(city, PROBATION, "report.txt", b"Risk assessment");
    let rows = fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == id.as_str() && r["attempts"].as_u64() >= Some(2))
    });
    assert_eq!(states(&rows, &id), ["queued"], "{rows:#?}");
    let row = rows.iter().find(|r| r["doc_id"] == id.as_str()).unwrap();
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused this node at the handshake")),
        "{row:#}"
    );
    // Once it holds the new roster (a running node takes an import at once), it is.
    fed.import(probation);
    fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &id) == ["delivered"]
    });
}

#[test]
fn a_rotated_node_whose_old_key_is_revoked_meanwhile_switches_to_its_new_key() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let rotated = fed.json(city, &["keys", "rotate"]);
    fed.add_member(city);
    fed.publish_and_import_all();
    // The old key leaks: the stewards revoke it, and only probation holds that roster yet.
    let old_key = rotated["old_transport_key"].as_str().unwrap();
    fed.sandbox
        .liaise(&["federation", "revoke", "--dir", "fed", "--key", old_key])
        .ok();
    fed.publish();
    fed.import(probation);
    let revoking = roster_serial(&fed, probation);
    let _nodes = [
        fed.start_with(city, &[], Some("city.log")),
        fed.start(probation),
    ];

    // The city's roster still certifies the old key, so the city presents it first; the
    // probation node refuses it, and the city's next attempt presents the new key, gets in,
    // and takes up the revoking roster.
    fed.deliver_text(city, PROBATION, "report.txt", b"After the leak");
    wait_for(|| fed.node_serial(city) == revoking, "the revoking roster");
    // It got in by switching keys on the refusal, not by some other way round it.
    let log = read_log(&fed.sandbox, "city.log");
    assert!(
        log.contains(
            "the peer refused this node's old transport key; dialling again with the new one"
        ),
        "{log}"
    );
}

fn roster_serial(fed: &TestFederation, agency: &Agency) -> u64 {
    fed.json(agency, &["roster", "show"])["serial"]
        .as_u64()
        .unwrap()
}

fn wait_for(check: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_running_through_a_rotation_opens_documents_sealed_to_its_new_key() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let _nodes = [fed.start(city), fed.start(probation)];
    // The city rotates while its node runs, and does not restart it: the node keeps the keys
    // it loaded, the key file holds the new ones, and every roster lists the new ones.
    let rotated = fed.json(city, &["keys", "rotate"]);
    fed.add_member(city);
    fed.publish_and_import_all();
    // Its status says the node still presents the old transport key, and to restart it.
    let status = fed.json(city, &["status"]);
    let warnings = status["key_warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("newer transport key") && w.contains("restart the node"))),
        "{status:#}"
    );
    // Probation seals to the city's new encryption key; the share the originator releases is
    // wrapped to it too. The city opens it with its key file.
    let id = fed.deliver_text(probation, CITY, "reply.txt", b"Sealed to the new key");
    let verified = fed.json(city, &["verify", &id]);
    let new_key = rotated["encryption_key"].as_str().unwrap();
    assert!(verified.to_string().contains(new_key), "{verified:#}");
    fed.sandbox
        .liaise(&[
            "open",
            "--home",
            &city.home,
            &id,
            "--out-dir",
            "opened",
            "--reason",
            "case review",
        ])
        .ok();
    assert_eq!(
        fed.sandbox.read("opened/reply.txt"),
        b"Sealed to the new key"
    );
    // The city's log says the open had its key share.
    let log = fed
        .sandbox
        .liaise(&["log", "--home", &city.home, "--doc", &id])
        .ok()
        .to_owned();
    assert!(
        log.lines()
            .any(|l| l.contains("open") && l.contains("reason \"case review\"  (share released)")),
        "{log}"
    );
}

#[test]
fn a_node_whose_loaded_key_is_revoked_says_to_restart_it() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let city_node = fed.start(city);
    let _probation_node = fed.start(probation);
    // The city rotates without restarting its node, and the stewards revoke the old key.
    let rotated = fed.json(city, &["keys", "rotate"]);
    fed.add_member(city);
    fed.publish_and_import_all();
    let old_key = rotated["old_transport_key"].as_str().unwrap();
    fed.sandbox
        .liaise(&["federation", "revoke", "--dir", "fed", "--key", old_key])
        .ok();
    fed.publish_and_import_all();
    // The running node still presents the revoked key; it says what to do about it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = fed.json(city, &["status", "--check"]);
        let error = status["peers"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if error.contains("restart the node to load them") {
            assert!(error.contains("revoked"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "{status:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Restarted, it loads the new keys and delivers.
    city_node.terminate();
    let _city_node = fed.start(city);
    fed.deliver_text(city, PROBATION, "report.txt", b"After the restart");
    // And no longer says to restart it.
    let status = fed.json(city, &["status"]);
    assert!(
        !status["key_warnings"].to_string().contains("restart"),
        "{status:#}"
    );
}

#[test]
fn a_node_restarted_after_a_rotation_before_the_new_roster_is_not_told_to_restart() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let city = &fed.agencies[0];
    // Rotated, and started before the stewards list the new keys: it presents its old key
    // (the one the roster certifies) and holds the new one; a restart would change nothing.
    fed.json(city, &["keys", "rotate"]);
    let _node = fed.start(city);
    let status = fed.json(city, &["status"]);
    assert_eq!(status["key_warnings"], serde_json::json!([]), "{status:#}");
}

#[test]
fn a_rotated_node_presenting_its_previous_key_raises_no_alarm_when_a_roster_arrives() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    // Rotated and restarted before the stewards publish: it presents its previous key, which
    // the roster certifies.
    fed.json(city, &["keys", "rotate"]);
    let _city_node = fed.start_with(city, &[], Some("city.log"));
    let _probation_node = fed.start(probation);
    // A roster arrives that still lists only the previous key (the stewards changed something
    // else): nothing is wrong with the key this node presents.
    let serial = fed.node_serial(city);
    fed.publish();
    fed.import(city);
    fed.wait_node_serial(city, serial + 1, Duration::from_secs(30));
    fed.deliver_text(city, PROBATION, "report.txt", b"Sent with the previous key");
    let log = read_log(&fed.sandbox, "city.log");
    assert!(!log.contains("refused by its own roster"), "{log}");
    let status = fed.json(city, &["status", "--check"]);
    assert_eq!(status["key_warnings"], serde_json::json!([]), "{status:#}");
    assert_eq!(status["peers"][0]["reachable"], true, "{status:#}");
}

#[test]
fn a_node_rotated_again_before_the_second_rotation_is_published_is_not_told_to_restart() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let city = &fed.agencies[0];
    // A first rotation, published: the roster certifies the new key, and the one before it
    // for the overlap.
    fed.json(city, &["keys", "rotate"]);
    fed.add_member(city);
    fed.publish_and_import_all();
    // A second one soon after, and a restart before the stewards publish it: the key file
    // now holds the second key and the first; the roster still certifies the original key
    // (the key file's no longer) and the first. Nothing a restart would change.
    fed.json(city, &["keys", "rotate"]);
    let _node = fed.start(city);
    let status = fed.json(city, &["status"]);
    assert_eq!(status["key_warnings"], serde_json::json!([]), "{status:#}");
}
