//! The tamper-evident log and evidence bundles between real nodes: a log edited on disk is
//! caught by `liaise log verify`, a rewritten log is caught by the peer that countersigned
//! it, and an evidence bundle with any byte changed fails `liaise evidence verify`.

use std::time::Duration;

use liaise_keys::keyfile::Passphrase;
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, Timestamp};
use liaise_node::home::Home;
use liaise_protocol::log::{
    CHECKPOINT_VERSION, CheckpointBody, GENESIS_HEAD, LogEntry, SignedCheckpoint, leaf_hash,
    next_head,
};
use liaise_tests::PASSPHRASE;
use rusqlite::{Connection, params};

use super::nodes::TestFederation;

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";

/// Two nodes; the city sends one document to probation and both stop cleanly. Returns the
/// federation and the document id.
fn delivered() -> (TestFederation, String) {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let nodes = [fed.start(city), fed.start(probation)];
    std::fs::write(fed.sandbox.path("report.txt"), b"Case 17").unwrap();
    let doc = fed
        .sandbox
        .liaise(&[
            "send",
            "--home",
            &city.home,
            "--to",
            PROBATION,
            "--wait",
            "--timeout",
            "30s",
            "report.txt",
        ])
        .ok()
        .trim()
        .to_owned();
    for node in nodes {
        node.terminate();
    }
    (fed, doc)
}

fn db_path(fed: &TestFederation, i: usize) -> std::path::PathBuf {
    fed.sandbox
        .path(&format!("{}/store/liaise.db", fed.agencies[i].home))
}

/// Opens a stopped node's database as an attacker would: triggers dropped.
fn attacker(fed: &TestFederation, i: usize) -> Connection {
    let conn = Connection::open(db_path(fed, i)).unwrap();
    conn.execute_batch(
        "PRAGMA wal_checkpoint(TRUNCATE);
         DROP TRIGGER IF EXISTS log_entries_no_update;
         DROP TRIGGER IF EXISTS log_entries_no_delete;",
    )
    .unwrap();
    conn
}

fn row(conn: &Connection, seq: i64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    conn.query_row(
        "SELECT entry, leaf, head FROM log_entries WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// Changes entry `seq`'s reason and recomputes every leaf and head from there on, as an
/// attacker who knows the format would.
fn rewrite(conn: &Connection, seq: i64) {
    let mut entry = LogEntry::decode(&row(conn, seq).0).unwrap();
    entry.reason = Some("nothing happened here".into());
    let bytes = entry.encode().unwrap();
    conn.execute(
        "UPDATE log_entries SET entry = ?1 WHERE seq = ?2",
        params![bytes, seq],
    )
    .unwrap();
    let mut head: [u8; 32] = if seq == 0 {
        GENESIS_HEAD
    } else {
        row(conn, seq - 1).2.try_into().unwrap()
    };
    let last: i64 = conn
        .query_row("SELECT max(seq) FROM log_entries", [], |r| r.get(0))
        .unwrap();
    for s in seq..=last {
        let leaf = leaf_hash(&row(conn, s).0);
        head = next_head(&head, &leaf);
        conn.execute(
            "UPDATE log_entries SET leaf = ?1, head = ?2 WHERE seq = ?3",
            params![leaf.as_slice(), head.as_slice(), s],
        )
        .unwrap();
    }
}

#[test]
fn a_log_edited_on_disk_is_detected() {
    let (fed, _doc) = delivered();
    let sb = &fed.sandbox;
    let home = fed.agencies[0].home.clone();
    let verify = || sb.liaise(&["log", "verify", "--home", &home]);
    verify().ok();
    let listed = sb.liaise(&["log", "--home", &home, "--json"]).json();
    let kinds: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"send") && kinds.contains(&"receipt"),
        "{kinds:?}"
    );
    let _ = attacker(&fed, 0);
    let pristine = std::fs::read(db_path(&fed, 0)).unwrap();
    let restore = || std::fs::write(db_path(&fed, 0), &pristine).unwrap();

    attacker(&fed, 0)
        .execute("DELETE FROM log_entries WHERE seq = 1", [])
        .unwrap();
    verify().fails_with("entry 1 was removed");

    restore();
    let conn = attacker(&fed, 0);
    let (a, b) = (row(&conn, 1), row(&conn, 2));
    for (seq, (entry, leaf, head)) in [(1, b), (2, a)] {
        conn.execute(
            "UPDATE log_entries SET entry = ?1, leaf = ?2, head = ?3 WHERE seq = ?4",
            params![entry, leaf, head, seq],
        )
        .unwrap();
    }
    drop(conn);
    verify().fails_with("reordered");

    restore();
    let conn = attacker(&fed, 0);
    let mut entry = LogEntry::decode(&row(&conn, 1).0).unwrap();
    entry.detail = "{}".into();
    conn.execute(
        "UPDATE log_entries SET entry = ?1 WHERE seq = 1",
        params![entry.encode().unwrap()],
    )
    .unwrap();
    drop(conn);
    verify().fails_with("entry 1 was changed");

    // Every hash recomputed: the signed checkpoints still give it away.
    restore();
    rewrite(&attacker(&fed, 0), 1);
    verify().fails_with("no longer matches the signed checkpoint");

    // The last entries cut off: a checkpoint covers entries that are gone.
    restore();
    attacker(&fed, 0)
        .execute(
            "DELETE FROM log_entries WHERE seq = (SELECT max(seq) FROM log_entries)",
            [],
        )
        .unwrap();
    verify().fails_with("removed from the end");
}

#[test]
fn a_rewritten_log_contradicts_the_peers_countersignature() {
    let (fed, _doc) = delivered();
    let sb = &fed.sandbox;
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    // The city rewrites its history and re-signs every checkpoint with its own key.
    let conn = attacker(&fed, 0);
    rewrite(&conn, 1);
    let secrets = Home::new(sb.path(&city.home))
        .unlock_with(&Passphrase::new(PASSPHRASE.into()).unwrap())
        .unwrap();
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM log_checkpoints")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for seq in seqs {
        let head: [u8; 32] = row(&conn, seq).2.try_into().unwrap();
        let body = CheckpointBody {
            version: CHECKPOINT_VERSION,
            agency: AgencyId::new(CITY).unwrap(),
            seq: seq as u64,
            head,
            time: Timestamp::now(),
        };
        let forged = SignedCheckpoint::sign(&body, &secrets.signing).to_bytes();
        conn.execute(
            "UPDATE log_checkpoints SET checkpoint = ?1 WHERE seq = ?2",
            params![forged, seq],
        )
        .unwrap();
    }
    drop(conn);
    // Its own verify catches it through the peer's countersignature ...
    sb.liaise(&["log", "verify", "--home", &city.home])
        .fails_with(&format!("contradicts the one {PROBATION} countersigned"));
    // ... and so does the peer, the next time they connect.
    let _nodes = [fed.start(city), fed.start(probation)];
    fed.deliver_text(city, PROBATION, "second.txt", b"Case 18");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = sb
            .liaise(&["log", "--home", &probation.home, "--json"])
            .json();
        let fork = log
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "fork-detected" && e["agency"] == CITY);
        if fork {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fork detected: {log:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sb.liaise(&["log", "verify", "--home", &probation.home]);
    assert!(out.ok().contains("ALERT"), "{}", out.stdout);
}

#[test]
fn an_evidence_bundle_with_any_byte_changed_fails() {
    let (fed, doc) = delivered();
    let sb = &fed.sandbox;
    let city = &fed.agencies[0];
    let export = || {
        sb.liaise(&[
            "evidence",
            "export",
            "--home",
            &city.home,
            &doc,
            "--out",
            "case.evidence",
        ])
        .ok()
        .to_owned()
    };
    export();
    let report = sb
        .liaise(&[
            "evidence",
            "verify",
            "case.evidence",
            "--roster",
            "fed/roster.liaise",
            "--json",
        ])
        .json();
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["receipts"][0]["agency"], PROBATION);
    // Readable by its owner only (it lists agencies and times of a case), and replaced
    // whole by a second export, with no temporary file left beside it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.path("case.evidence"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let before = sb.read("case.evidence");
    // An earlier export cut short (still a bundle by its first bytes) is rewritten whole.
    std::fs::write(sb.path("case.evidence"), &before[..before.len() / 2]).unwrap();
    export();
    assert_eq!(sb.read("case.evidence"), before);
    let names: Vec<_> = std::fs::read_dir(sb.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("case.evidence"))
        .collect();
    assert_eq!(names, ["case.evidence"]);
    // Any other file at --out (a mistyped path onto the key file, say) is left alone.
    let key_file = format!("{}/keys.liaise-key", city.home);
    let key = sb.read(&key_file);
    sb.liaise(&[
        "evidence", "export", "--home", &city.home, &doc, "--out", &key_file,
    ])
    .fails_with("already exists and is not an evidence bundle; choose another --out");
    assert_eq!(sb.read(&key_file), key);
    assert!(
        report["anchors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["countersigned_by"][0] == PROBATION),
        "{report:#}"
    );
    let kinds: Vec<&str> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"send") && kinds.contains(&"receipt"),
        "{kinds:?}"
    );

    // Every byte, in process, against the pure verifier.
    let bundle = sb.read("case.evidence");
    let roster = Roster::load_stored_ignoring_expiry(&sb.read("fed/roster.liaise")).unwrap();
    assert!(liaise_protocol::evidence::verify_bundle(&bundle[..], &roster).is_ok());
    for i in 0..bundle.len() {
        let mut bad = bundle.clone();
        bad[i] ^= 0x01;
        assert!(
            liaise_protocol::evidence::verify_bundle(&bad[..], &roster).is_err(),
            "flip at {i} of {} accepted",
            bundle.len()
        );
    }
    assert!(
        liaise_protocol::evidence::verify_bundle(&bundle[..bundle.len() - 1], &roster).is_err()
    );
    let mut longer = bundle.clone();
    longer.push(0);
    assert!(liaise_protocol::evidence::verify_bundle(&longer[..], &roster).is_err());

    // A few spread positions through the real command line.
    for i in [0, 20, bundle.len() / 2, bundle.len() - 1] {
        let mut bad = bundle.clone();
        bad[i] ^= 0x80;
        std::fs::write(sb.path("bad.evidence"), &bad).unwrap();
        sb.liaise(&[
            "evidence",
            "verify",
            "bad.evidence",
            "--roster",
            "fed/roster.liaise",
        ])
        .fails_with("not valid evidence");
    }

    // Against a roster without the probation service (here: one that revoked it), the
    // refusal names the signer and the roster, not a tampered signature.
    sb.liaise(&["federation", "revoke", "--dir", "fed", PROBATION])
        .ok();
    sb.publish("fed", "fed/without.liaise");
    sb.liaise(&[
        "evidence",
        "verify",
        "case.evidence",
        "--roster",
        "fed/without.liaise",
    ])
    .fails_with(&format!(
        "signed by {PROBATION}, not a member in roster serial 2"
    ));
}
