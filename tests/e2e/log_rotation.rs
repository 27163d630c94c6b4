//! `liaise log verify` across key changes (`docs/spec/log.md`, "Which key checks a
//! signature"): a rotation of transport and encryption keys, and a witness revoked and
//! admitted again with a new signing key, leave an intact log intact; a checkpoint re-signed
//! with a key the agency never held, or a countersignature dated after its key's revocation,
//! is still reported.

use std::time::Duration;

use liaise_keys::keyfile::Passphrase;
use liaise_keys::{AgencyId, Timestamp};
use liaise_node::home::Home;
use liaise_protocol::log::{SignedCheckpoint, SignedCountersignature};
use liaise_tests::{PASSPHRASE, free_udp_port};
use rusqlite::{Connection, params};

use super::nodes::{Agency, TestFederation};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";

#[test]
fn log_verify_holds_across_rotation_and_readmission_and_catches_wrong_keys() {
    let mut fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let city = fed.agencies[0].clone();
    exchange(&fed, "one.txt");
    let first = verified(&fed, &city);
    assert!(
        first["countersignatures"].as_u64().unwrap() > 0,
        "{first:#}"
    );

    // Both rotate their transport and encryption keys; the stewards list the new keys.
    for agency in fed.agencies.clone() {
        fed.sandbox
            .liaise(&["keys", "rotate", "--home", &agency.home])
            .ok();
        fed.add_member(&agency);
    }
    fed.publish_and_import_all();
    exchange(&fed, "two.txt");
    let rotated = verified(&fed, &city);
    assert!(
        rotated["checkpoints"].as_u64() > first["checkpoints"].as_u64(),
        "{rotated:#}"
    );
    verified(&fed, &fed.agencies[1]);

    // Probation is revoked and admitted again under a new signing key. Every countersignature
    // its old key made is dated before the revocation, so it still counts.
    std::thread::sleep(Duration::from_millis(1100));
    fed.sandbox
        .liaise(&["federation", "revoke", "--dir", "fed", PROBATION])
        .ok();
    let old_probation = fed.agencies[1].clone();
    let readmitted = Agency {
        id: PROBATION.to_owned(),
        home: "home-1-readmitted".to_owned(),
    };
    let address = format!("127.0.0.1:{}", free_udp_port());
    fed.sandbox
        .agency(&readmitted.home, PROBATION, "probation", &address);
    fed.add_member(&readmitted);
    fed.publish();
    fed.import(&city);
    fed.import(&readmitted);
    if let Some(slot) = fed.agencies.get_mut(1) {
        *slot = readmitted.clone();
    }
    verified(&fed, &city);
    exchange(&fed, "three.txt");
    let after = verified(&fed, &city);
    assert!(
        after["countersignatures"].as_u64() > rotated["countersignatures"].as_u64(),
        "{after:#}"
    );
    // The re-admitted agency's node starts a new log under its new key: the city witnesses
    // it from its first checkpoint, and what it countersigned of the old log is no reason
    // to call the new one a fork.
    let city_log = fed.json(&city, &["log"]);
    let entries = city_log.as_array().unwrap();
    assert!(
        !entries.iter().any(|e| e["kind"] == "fork-detected"),
        "{city_log:#}"
    );
    let new_log = verified(&fed, &readmitted);
    assert!(
        new_log["countersignatures"].as_u64() > Some(0),
        "{new_log:#}"
    );

    let db = fed.sandbox.path(&format!("{}/store/liaise.db", city.home));
    drop(open_db(&db));
    let pristine = std::fs::read(&db).unwrap();
    let old_key = Home::new(fed.sandbox.path(&old_probation.home))
        .unlock_with(&Passphrase::new(PASSPHRASE.into()).unwrap())
        .unwrap()
        .signing;
    let conn = open_db(&db);
    let (seq, checkpoint): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, checkpoint FROM log_checkpoints ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let checkpoint = SignedCheckpoint::from_bytes(&checkpoint).unwrap();

    // The old probation key signs a countersignature dated now, after its revocation.
    let late = SignedCountersignature::sign(
        &checkpoint,
        &AgencyId::new(PROBATION).unwrap(),
        Timestamp::now(),
        &old_key,
    );
    conn.execute(
        "INSERT OR REPLACE INTO log_countersignatures (seq, witness, countersignature) VALUES (?1, ?2, ?3)",
        params![seq, PROBATION, late.to_bytes()],
    )
    .unwrap();
    drop(conn);
    fed.sandbox
        .liaise(&["log", "verify", "--home", &city.home])
        .fails_with(&format!(
            "countersignature of {PROBATION} on checkpoint {seq} does not verify"
        ));

    // A checkpoint re-signed with a key the city never held.
    std::fs::write(&db, &pristine).unwrap();
    let conn = open_db(&db);
    let body = checkpoint.body_unverified().unwrap();
    let forged = SignedCheckpoint::sign(&body, &old_key);
    conn.execute(
        "UPDATE log_checkpoints SET checkpoint = ?1 WHERE seq = ?2",
        params![forged.to_bytes(), seq],
    )
    .unwrap();
    drop(conn);
    fed.sandbox
        .liaise(&["log", "verify", "--home", &city.home])
        .fails_with(&format!(
            "checkpoint {seq} does not carry a valid signature of {CITY}"
        ));

    std::fs::write(&db, &pristine).unwrap();
    verified(&fed, &city);
}

/// Starts both nodes, sends `name` from the city to probation and waits for the receipt,
/// then stops both cleanly (which signs and exchanges checkpoints).
fn exchange(fed: &TestFederation, name: &str) {
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let nodes = [fed.start(city), fed.start(probation)];
    fed.deliver_text(
        city,
        PROBATION,
        name,
        format!("Case file {name}").as_bytes(),
    );
    for node in nodes {
        node.terminate();
    }
}

/// `log verify --json` must report an intact log; returns the report.
fn verified(fed: &TestFederation, agency: &Agency) -> serde_json::Value {
    let report = fed.json(agency, &["log", "verify"]);
    assert_eq!(report["intact"], true, "{report:#}");
    report
}

/// Opens a stopped node's database as someone with the disk would.
fn open_db(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    conn
}
