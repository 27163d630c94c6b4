//! Witnessing while connections stay open (`docs/spec/log.md`, "Witnessing"): entries a node
//! logs after its connections were made still get a peer's countersignature, so an insider
//! cannot quietly delete them.

use std::time::{Duration, Instant};

use super::nodes::{DEBUG_LOG, TestFederation, accepted_connections, wait_accepted};

/// How long the nodes' own connections at start may take to show in their logs.
const LOG_WAIT: Duration = Duration::from_secs(20);

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";

#[test]
fn entries_logged_over_an_open_connection_are_witnessed_within_minutes() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    // Logging at debug level, to count the connections each node accepts.
    let _nodes = [
        fed.start_with(city, DEBUG_LOG, Some("city.log")),
        fed.start_with(probation, DEBUG_LOG, Some("probation.log")),
    ];
    let connections =
        || ["city.log", "probation.log"].map(|log| accepted_connections(&fed.sandbox, log));
    // The exchange at the start of the city's connection has its log countersigned.
    fed.deliver_text(city, PROBATION, "one.txt", b"Case file one");
    let countersigned = || fed.json(city, &["log", "verify"])["countersignatures"].as_u64();
    let first = wait(Duration::from_secs(30), || {
        countersigned().filter(|n| *n > 0)
    });
    // Each node dialled the other once at its start: the city's connection carries the
    // documents.
    let dialled =
        ["city.log", "probation.log"].map(|log| wait_accepted(&fed.sandbox, log, 1, LOG_WAIT));
    assert_eq!(dialled, [1, 1], "each node dialled the other once");
    // (That the countersigned entries this logs call for no witness in turn, so that two
    // idle nodes do not witness each other for ever, is a unit test of the log.)
    // The second goes over the same connection: no new connection, no exchange at its start.
    // The send and its receipt are entries no peer has countersigned yet; the city has them
    // witnessed on the open connection.
    fed.deliver_text(city, PROBATION, "two.txt", b"Case file two");
    let started = Instant::now();
    wait(Duration::from_secs(150), || {
        countersigned().filter(|n| *n > first)
    });
    eprintln!("witnessed again after {:?}", started.elapsed());
    // Over the open connection: neither node accepted another one since the first.
    assert_eq!(connections(), dialled, "a new connection was dialled");
}

fn wait<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "not witnessed within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
