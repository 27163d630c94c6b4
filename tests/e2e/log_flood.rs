//! A member trying to grow another node's append-only log without end (`log.md`, "How fast
//! peers can make the log grow"). The test holds the city's keys and speaks QUIC to the
//! probation node itself: witness exchanges on one connection are served (nodes witness each
//! other again on open connections) but rate-limited; contradicting checkpoints offered again
//! and again are recorded once; a flood of share requests is recorded up to the rate and then
//! once more, not once per request.

use std::net::SocketAddr;
use std::path::Path;

use liaise_keys::{AgencyId, AgencySecrets, Timestamp};
use liaise_node::log::rate::{
    MAX_LOGGED_REQUESTS_PER_MINUTE, MAX_WITNESS_EXCHANGES_PER_MINUTE, TOO_MANY_REQUESTS,
};
use liaise_protocol::log::{CHECKPOINT_VERSION, CheckpointBody, SignedCheckpoint};
use liaise_protocol::wire::{Message, MessageKind, decode_frame, encode_frame};
use serde_json::Value;

use super::nodes::TestFederation;

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";

/// The city's keys in the test's hands, dialling the probation node.
struct RawPeer {
    endpoint: quinn::Endpoint,
    secrets: AgencySecrets,
    target: SocketAddr,
}

impl RawPeer {
    fn new(home: &Path, target: &str) -> Self {
        let (endpoint, secrets) = super::nodes::member_client(home);
        Self {
            endpoint,
            secrets,
            target: target.parse().unwrap(),
        }
    }

    async fn connect(&self) -> quinn::Connection {
        self.endpoint
            .connect(self.target, PROBATION)
            .unwrap()
            .await
            .unwrap()
    }

    /// The city's checkpoint of a log with `seq + 1` entries and head `head`.
    fn checkpoint(&self, seq: u64, head: [u8; 32]) -> Vec<u8> {
        let body = CheckpointBody {
            version: CHECKPOINT_VERSION,
            agency: AgencyId::new(CITY).unwrap(),
            seq,
            head,
            time: Timestamp::now(),
        };
        SignedCheckpoint::sign(&body, &self.secrets.signing).to_bytes()
    }

    /// One witness exchange on `conn`: refuses to countersign the node's checkpoint, then
    /// offers the city's checkpoint (`seq`, `head`). Returns what the node answered.
    async fn witness_exchange(
        &self,
        conn: &quinn::Connection,
        seq: u64,
        head: [u8; 32],
    ) -> Message {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&encode_frame(&Message::WitnessRequest { since: None }))
            .await
            .unwrap();
        let offer = read(
            &mut recv,
            &[MessageKind::CheckpointOffer, MessageKind::CheckpointRefused],
        )
        .await;
        if matches!(offer, Message::CheckpointOffer { .. }) {
            let refused = Message::CheckpointRefused {
                detail: "not now".into(),
            };
            send.write_all(&encode_frame(&refused)).await.unwrap();
        }
        let Message::WitnessRequest { .. } = read(&mut recv, &[MessageKind::WitnessRequest]).await
        else {
            unreachable!()
        };
        let offer = Message::CheckpointOffer {
            checkpoint: self.checkpoint(seq, head),
            proof: vec![],
        };
        send.write_all(&encode_frame(&offer)).await.unwrap();
        let answer = read(
            &mut recv,
            &[
                MessageKind::Countersignature,
                MessageKind::CheckpointRefused,
            ],
        )
        .await;
        let _ = send.finish();
        answer
    }
}

/// Reads one whole frame.
async fn read(recv: &mut quinn::RecvStream, expected: &'static [MessageKind]) -> Message {
    let mut frame = vec![0u8; 4];
    recv.read_exact(&mut frame).await.unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    frame.resize(4 + len, 0);
    recv.read_exact(&mut frame[4..]).await.unwrap();
    decode_frame(&frame, expected).unwrap().0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The probation node's log entries of `kind` about the city.
fn entries(fed: &TestFederation, kind: &str) -> Vec<Value> {
    let log = fed.json(&fed.agencies[1], &["log"]);
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["agency"] == CITY)
        .cloned()
        .collect()
}

#[test]
fn witness_exchanges_are_rate_limited_and_a_fork_is_recorded_once() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = RawPeer::new(&fed.sandbox.path(&city.home), &fed.address(probation));
    rt.block_on(async {
        let conn = peer.connect().await;
        let answer = peer.witness_exchange(&conn, 5, [1; 32]).await;
        assert!(
            matches!(answer, Message::Countersignature { .. }),
            "{answer:?}"
        );
        // Nodes witness each other again on open connections: a second exchange on this
        // one is served, and the same checkpoint countersigned again is not logged again.
        let again = peer.witness_exchange(&conn, 5, [1; 32]).await;
        assert!(
            matches!(again, Message::Countersignature { .. }),
            "{again:?}"
        );
        // Contradictions of the countersigned checkpoint, on fresh connections: another head
        // at the same seq (a fork), a rollback, and another fork.
        for (seq, head) in [(5, [2; 32]), (3, [3; 32]), (5, [4; 32])] {
            let conn = peer.connect().await;
            let answer = peer.witness_exchange(&conn, seq, head).await;
            assert!(
                matches!(answer, Message::CheckpointRefused { .. }),
                "{answer:?}"
            );
            conn.close(0u32.into(), b"done");
        }
        // Five exchanges so far. Past the agency's rate, an exchange is refused at its start,
        // and the connection stays open.
        let mut admitted = 5;
        let refused = loop {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(&encode_frame(&Message::WitnessRequest { since: None }))
                .await
                .unwrap();
            let first = read(
                &mut recv,
                &[MessageKind::CheckpointOffer, MessageKind::CheckpointRefused],
            )
            .await;
            if let Message::CheckpointRefused { detail } = first {
                break detail;
            }
            let _ = send.reset(0u32.into());
            admitted += 1;
            assert!(admitted <= 2 * MAX_WITNESS_EXCHANGES_PER_MINUTE as usize);
        };
        assert_eq!(refused, TOO_MANY_REQUESTS);
        // A bucket of 12 that refills one every 5 s: 12, or 13 on a slow machine.
        assert!(
            (MAX_WITNESS_EXCHANGES_PER_MINUTE as usize
                ..=MAX_WITNESS_EXCHANGES_PER_MINUTE as usize + 1)
                .contains(&admitted),
            "{admitted} exchanges admitted"
        );
        assert!(conn.close_reason().is_none());
    });
    assert_eq!(entries(&fed, "countersigned").len(), 1);
    let forks = entries(&fed, "fork-detected");
    assert_eq!(forks.len(), 1, "{forks:#?}");
}

#[test]
fn a_flood_of_share_requests_is_recorded_up_to_the_rate_and_once_more() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = RawPeer::new(&fed.sandbox.path(&city.home), &fed.address(probation));
    let rate = MAX_LOGGED_REQUESTS_PER_MINUTE as usize;
    let started = std::time::Instant::now();
    let details = rt.block_on(async {
        let conn = peer.connect().await;
        let mut details = Vec::new();
        for _ in 0..rate + 10 {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let request = Message::ShareRequest {
                request: vec![0xee; 40],
            };
            send.write_all(&encode_frame(&request)).await.unwrap();
            let _ = send.finish();
            let Message::Refused { detail, .. } = read(&mut recv, &[MessageKind::Refused]).await
            else {
                unreachable!()
            };
            details.push(detail);
        }
        details
    });
    // The bucket refills while the requests go out: a slow machine may see a few more
    // admitted than the rate.
    let refill = (started.elapsed().as_secs_f64() * rate as f64 / 60.0).ceil() as usize;
    let admitted = details.iter().filter(|d| *d != TOO_MANY_REQUESTS).count();
    assert!(
        (rate..=rate + refill).contains(&admitted),
        "{admitted} admitted, rate {rate}, refill {refill}"
    );
    assert!(
        details[..rate].iter().all(|d| d != TOO_MANY_REQUESTS),
        "{details:?}"
    );
    assert_eq!(details.last().map(String::as_str), Some(TOO_MANY_REQUESTS));
    // Each admitted request is recorded, and the run of refusals once: tokens that came back
    // during the run do not start new runs (the bucket was never full again).
    let refused = entries(&fed, "share-refused");
    let runs = refused
        .iter()
        .filter(|e| e["detail"]["outcome"] == "too many requests")
        .count();
    assert_eq!(runs, 1, "{refused:#?}");
    assert_eq!(refused.len(), admitted + runs);
}
