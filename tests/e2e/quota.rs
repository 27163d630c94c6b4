//! One agency cannot fill another's node: each may keep at most its quota there (the
//! documents it delivered, its unfinished transfers, and a record's worth for every document
//! it ever delivered). A delivery over it waits at the
//! sender with the reason, as for a full disk; other agencies still deliver; and once the
//! agency's documents there are revoked, its waiting ones arrive.

use std::time::Duration;

use serde_json::Value;

use liaise_node::daemon::quota::RECORD_BYTES;

use super::nodes::{Agency, TestFederation, states};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// What each agency may keep on the prison's node.
const QUOTA: &str = "700KiB";
/// The city's first document: with either of the next two it is over the quota; those two
/// together are not (sealing adds a few percent).
const FIRST: usize = 650 * 1024;
/// A document over `INLINE_MAX_LEN`, so it takes the path of large documents (a partial file,
/// checked before `Accept`).
const LARGE: usize = 480 * 1024;
/// A document kept in the database, checked in the transaction that would store it.
const SMALL: usize = 100 * 1024;

fn send(fed: &TestFederation, from: &Agency, file: &str, len: usize, wait: bool) -> String {
    std::fs::write(fed.sandbox.path(file), vec![0x42u8; len]).unwrap();
    let mut args = vec!["send", "--home", &from.home, "--to", PRISON];
    if wait {
        args.extend(["--wait", "--timeout", "60s"]);
    }
    args.push(file);
    fed.sandbox.liaise(&args).ok().trim().to_owned()
}

/// The outbox row of `doc` once its first attempt has failed.
fn refused_row(fed: &TestFederation, from: &Agency, doc: &str) -> Value {
    let rows = fed.wait_outbox(from, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == doc && r["attempts"].as_u64() >= Some(1))
    });
    rows.into_iter().find(|r| r["doc_id"] == doc).unwrap()
}

#[test]
fn an_agency_over_its_quota_waits_and_others_still_deliver() {
    let fed = TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    );
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [
        fed.start(city),
        fed.start(probation),
        fed.start_with(prison, &["--agency-quota", QUOTA], None),
    ];

    // The city's first document fits.
    let first = send(&fed, city, "first.bin", FIRST, true);

    // Its next ones do not: refused before the transfer (large) and when it would be stored
    // (small), and kept queued with the reason.
    let large = send(&fed, city, "second.bin", LARGE, false);
    let small = send(&fed, city, "third.bin", SMALL, false);
    for doc in [&large, &small] {
        let row = refused_row(&fed, city, doc);
        assert_eq!(row["state"], "queued", "{row:#}");
        let error = row["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("{CITY} keeps")), "{error}");
        assert!(error.contains("--agency-quota"), "{error}");
    }

    // The probation service has a quota of its own.
    send(&fed, probation, "other.bin", FIRST, true);

    // The prison holds the city's first document only.
    let inbox = fed.json(prison, &["inbox"]);
    let from_city: Vec<&Value> = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["sender"] == CITY)
        .collect();
    assert_eq!(from_city.len(), 1, "{inbox:#}");
    assert_eq!(from_city[0]["doc_id"], first.as_str());
    // Its status says what each agency keeps there, and the limit.
    let status = fed.json(prison, &["status"]);
    assert_eq!(status["agency_quota_bytes"], 700 * 1024, "{status:#}");
    let field = |status: &Value, agency: &str, name: &str| {
        status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["agency"] == agency)
            .map(|p| p[name].as_u64().unwrap())
            .unwrap()
    };
    let kept = |status: &Value, agency: &str| field(status, agency, "kept_bytes");
    let first_len = from_city[0]["sealed_len"].as_u64().unwrap();
    assert_eq!(kept(&status, CITY), first_len, "{status:#}");
    // Its quota also carries the record every document leaves.
    assert_eq!(field(&status, CITY, "received_documents"), 1);
    assert_eq!(
        field(&status, CITY, "quota_used_bytes"),
        first_len + RECORD_BYTES,
        "{status:#}"
    );
    assert!(kept(&status, PROBATION) > FIRST as u64);

    // The city revokes its first document: the prison deletes its copy, which no longer
    // counts, and the waiting documents are delivered on their next attempt.
    fed.sandbox
        .liaise(&[
            "revoke",
            "--home",
            &city.home,
            &first,
            "--recipient",
            PRISON,
        ])
        .ok();
    fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &large) == ["delivered"] && states(rows, &small) == ["delivered"]
    });
    // The revoked copy no longer counts; the two delivered since do.
    let inbox = fed.json(prison, &["inbox"]);
    let now_kept: u64 = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["doc_id"] == large.as_str() || r["doc_id"] == small.as_str())
        .map(|r| r["sealed_len"].as_u64().unwrap())
        .sum();
    let status = fed.json(prison, &["status"]);
    assert_eq!(kept(&status, CITY), now_kept, "{status:#}");
    // The revoked copy's record stays, and counts with the two others.
    assert_eq!(field(&status, CITY, "received_documents"), 3);
    assert_eq!(
        field(&status, CITY, "quota_used_bytes"),
        now_kept + 3 * RECORD_BYTES,
        "{status:#}"
    );
}
