//! Delivery through a hostile network: a UDP proxy between two nodes drops, delays,
//! reorders, duplicates and corrupts packets, and partitions the link for a while. Every
//! document still arrives exactly once, byte-identical, with one verified receipt.
//!
//! The roster lists the proxy's address for the probation service; its node listens
//! elsewhere (`node run --listen`) and the proxy forwards there. A few seeds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use liaise_tests::chaos_proxy::{Chaos, ChaosProxy, SplitMix64};
use liaise_tests::free_udp_port;

use liaise_node::transport::IDLE_TIMEOUT;

use super::nodes::{TestFederation, read_log, states, wait_log};

const PROBATION: &str = "nl.probation.utrecht";
/// Documents per seed, sizes from a few bytes to 256 KiB.
const DOCUMENTS: usize = 6;

#[test]
fn every_document_arrives_exactly_once_through_chaos() {
    // The seeds run side by side: each mostly waits on the network.
    std::thread::scope(|scope| {
        for seed in [3_u64, 17, 2024] {
            scope.spawn(move || run_seed(seed));
        }
    });
}

fn run_seed(seed: u64) {
    let started = Instant::now();
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let sb = &fed.sandbox;
    let front: SocketAddr = fed.address(probation).parse().unwrap();
    let real: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let chaos = Chaos {
        seed,
        drop: 50,
        duplicate: 30,
        corrupt: 20,
        max_delay: Duration::from_millis(10),
    };
    let proxy = ChaosProxy::start(front, real, chaos).unwrap();
    let _probation = fed.start_with(probation, &["--listen", &real.to_string()], None);
    let _city = fed.start(city);

    let mut rng = SplitMix64::new(seed);
    let mut doc_ids = Vec::new();
    for i in 0..DOCUMENTS {
        let len = match i {
            0 => 10,
            1 => 256 * 1024,
            _ => 1 + rng.below(64 * 1024) as usize,
        };
        let content: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let name = format!("doc-{i}.bin");
        std::fs::write(sb.path(&name), &content).unwrap();
        let id = sb
            .liaise(&["send", "--home", &city.home, "--to", PROBATION, &name])
            .ok()
            .trim()
            .to_owned();
        doc_ids.push(id);
        // A partition in the middle of the batch, healed after a while.
        if i == DOCUMENTS / 2 {
            proxy.partition();
            std::thread::sleep(Duration::from_millis(1500 + rng.below(1500)));
            proxy.heal();
        }
    }

    let rows = fed.wait_outbox(city, Duration::from_secs(90), |rows| {
        doc_ids
            .iter()
            .all(|id| states(rows, id) == vec!["delivered"])
    });
    assert_eq!(rows.len(), DOCUMENTS, "seed {seed}: {rows:#?}");
    let inbox = fed.json(probation, &["inbox"]);
    let inbox = inbox.as_array().unwrap();
    assert_eq!(inbox.len(), DOCUMENTS, "seed {seed}: {inbox:#?}");
    for id in &doc_ids {
        let got: Vec<_> = inbox
            .iter()
            .filter(|r| r["doc_id"] == id.as_str())
            .collect();
        assert_eq!(
            got.len(),
            1,
            "seed {seed}: {id} received {} times",
            got.len()
        );
        assert_eq!(got[0]["verification"], "verified");
        let blob = got[0]["blob"].as_str().unwrap();
        assert_eq!(
            sb.stored(&probation.home, blob).unwrap(),
            sb.stored(&city.home, blob).unwrap(),
            "seed {seed}: bytes differ"
        );
        let receipts = fed.json(city, &["receipts", id]);
        assert_eq!(receipts.as_array().unwrap().len(), 1, "seed {seed}");
        assert_eq!(receipts[0]["verification"], "verified");
    }
    let stats = &proxy.stats;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "chaos seed {seed}: {} forwarded, {} dropped, {} duplicated, {} corrupted, {:?}",
        n(&stats.forwarded),
        n(&stats.dropped),
        n(&stats.duplicated),
        n(&stats.corrupted),
        started.elapsed()
    );
    assert!(n(&stats.dropped) > 0 && n(&stats.duplicated) > 0 && n(&stats.corrupted) > 0);
}

/// A partition longer than the connection's idle timeout, in the middle of a large transfer:
/// the connection is given up on both sides, and after the heal the sender dials again and
/// resumes from what the receiver holds. The document arrives once, as sent.
#[test]
fn a_partition_longer_than_the_idle_timeout_ends_in_a_resumed_transfer() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let sb = &fed.sandbox;
    let (proxy, _probation, _) = probation_behind_a_calm_proxy(&fed);
    let _city = fed.start_with(city, &[], Some("city.log"));
    let len = 128 * 1024 * 1024;
    let content: Vec<u8> = (0..len).map(|i: usize| (i * 13 % 251) as u8).collect();
    let id = fed.send_text(city, PROBATION, "big.bin", &content);
    drop(content);
    let point = super::crash::wait_for_transfer(&fed, &probation.home, 4 * 1024 * 1024);
    proxy.partition();
    let super::crash::KillPoint::MidTransfer(held) = point else {
        panic!("the transfer ended before the partition: {point:?}")
    };
    // The partition lasts until both sides have given the connection up, as their logs say:
    // the receiver's transfer ends for want of bytes, and the sender's attempt fails. Each
    // takes the idle (or frame) timeout of 30 s; the deadline is only there so that a node
    // that never gives up fails the test instead of hanging it.
    let gave_up = IDLE_TIMEOUT * 3;
    let city_before = read_log(sb, "city.log").len();
    let probation_before = read_log(sb, "probation.log").len();
    wait_log(
        sb,
        "probation.log",
        gave_up,
        "the receiver giving the transfer up",
        |log| {
            log.get(probation_before..)
                .is_some_and(|new| new.contains("transfer interrupted"))
        },
    );
    wait_log(
        sb,
        "city.log",
        gave_up,
        "the sender's attempt failing",
        |log| {
            log.get(city_before..)
                .is_some_and(|new| new.contains("delivery failed"))
        },
    );
    let dropped = proxy
        .stats
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    proxy.heal();
    assert!(dropped > 0, "nothing crossed the partition");

    fed.wait_outbox(city, Duration::from_secs(120), |rows| {
        states(rows, &id) == vec!["delivered"]
    });
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 1);
    fed.assert_opens_as_sent(probation, &id, "big.bin");
    // A later attempt resumed from every byte the receiver held when the partition began,
    // not from the start.
    let probation_log = read_log(sb, "probation.log");
    let resumed_at = super::crash::resumed_at(&probation_log)
        .unwrap_or_else(|| panic!("no resumed transfer: {probation_log}"));
    assert!(
        resumed_at >= held && resumed_at < len as u64,
        "resumed at {resumed_at}, held {held} when partitioned"
    );
}

/// The probation service's node (logging to `probation.log`) behind a proxy that only
/// forwards: the proxy, the node, and the proxy's and the node's addresses.
fn probation_behind_a_calm_proxy(
    fed: &TestFederation,
) -> (ChaosProxy, super::nodes::NodeProcess, [SocketAddr; 2]) {
    let probation = &fed.agencies[1];
    let front: SocketAddr = fed.address(probation).parse().unwrap();
    let real: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let proxy = ChaosProxy::start(front, real, calm()).unwrap();
    let node = fed.start_with(
        probation,
        &["--listen", &real.to_string()],
        Some("probation.log"),
    );
    (proxy, node, [front, real])
}

/// A proxy that only forwards.
fn calm() -> Chaos {
    Chaos {
        seed: 5,
        drop: 0,
        duplicate: 0,
        corrupt: 0,
        max_delay: Duration::ZERO,
    }
}

#[test]
fn a_sender_restarted_behind_a_new_address_resumes_at_once() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let (proxy, _probation, [front, real]) = probation_behind_a_calm_proxy(&fed);
    let sender = fed.start(city);
    let len = 128 * 1024 * 1024;
    let content: Vec<u8> = (0..len).map(|i: usize| (i * 7 % 253) as u8).collect();
    let id = fed.send_text(city, PROBATION, "big.bin", &content);
    drop(content);
    let point = super::crash::wait_for_transfer(&fed, &probation.home, len as u64 / 5);
    let super::crash::KillPoint::MidTransfer(held) = point else {
        panic!("the transfer ended before the kill: {point:?}")
    };
    // The sender dies, and its traffic comes back from another source port, as through a
    // NAT that rebinds: the receiver's old connection now leads nowhere, and nothing tells
    // it so before its idle timeout (30 s).
    sender.kill();
    drop(proxy);
    let _proxy = ChaosProxy::start(front, real, calm()).unwrap();
    let _sender = fed.start_with(city, &[], Some("city.log"));
    let restarted = Instant::now();
    // The restarted sender's offer supersedes the old connection's transfer at once,
    // instead of being refused as busy until that connection times out: the receiver
    // resumes within seconds, from every byte it held.
    let (resumed, log) = super::crash::wait_resumed_within(
        &fed,
        "probation.log",
        restarted,
        super::crash::RESUME_WITHIN,
    );
    assert!(log.contains("superseded by a new connection"), "{log}");
    assert!(
        resumed >= held && resumed < len as u64,
        "resumed at {resumed}, held {held}: {log}"
    );
    fed.wait_outbox(city, super::crash::DELIVERY_DEADLINE, |rows| {
        states(rows, &id) == vec!["delivered"]
    });
    eprintln!("delivered {:?} after the restart", restarted.elapsed());
    // The restarted sender's offer was never refused as busy while the old connection lived.
    let city_log = read_log(&fed.sandbox, "city.log");
    assert!(
        !city_log.contains(super::crash::REFUSED_AS_BUSY),
        "{city_log}"
    );
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 1);
    fed.assert_opens_as_sent(probation, &id, "big.bin");
    assert!(fed.incoming_files(probation).is_empty());
}
