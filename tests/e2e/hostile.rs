//! An authenticated but misbehaving member. The test holds the prison's keys and speaks QUIC
//! to the probation node itself (with the node's own TLS settings): garbage, messages out of
//! order, oversized frames and offers, and a thousand idle streams. The node closes each such
//! connection with an error code and keeps serving the city, whose deliveries go through
//! while the hostile peer is at it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use liaise_node::daemon::{
    MAX_LARGE_TRANSFERS_PER_AGENCY, MAX_PARTIAL_FILES_PER_PEER, MAX_SMALL_BYTES_PER_AGENCY,
};
use liaise_node::transport::MAX_STREAMS_PER_CONNECTION;
use liaise_protocol::wire::{
    CloseCode, MAX_DOCUMENT_LEN, MAX_FRAME_LEN, Message, MessageKind, PROTOCOL_VERSION,
    RejectReason, decode_frame, encode_frame,
};

use super::nodes::TestFederation;

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// A member's keys in the test's hands, dialling one node.
struct HostilePeer {
    endpoint: quinn::Endpoint,
    target: SocketAddr,
    target_agency: String,
}

impl HostilePeer {
    fn new(home: &Path, target: &str, target_agency: &str) -> Self {
        let (endpoint, _) = super::nodes::member_client(home);
        Self {
            endpoint,
            target: target.parse().unwrap(),
            target_agency: target_agency.to_owned(),
        }
    }

    /// The prison's keys, dialling the probation service's node.
    fn prison_at_probation(fed: &TestFederation) -> Self {
        let [probation, prison] = [&fed.agencies[1], &fed.agencies[2]];
        Self::new(
            &fed.sandbox.path(&prison.home),
            &fed.address(probation),
            PROBATION,
        )
    }

    async fn connect(&self) -> quinn::Connection {
        self.endpoint
            .connect(self.target, &self.target_agency)
            .unwrap()
            .await
            .unwrap()
    }

    /// Writes `bytes` on a new stream of a new connection; returns the code the node closed
    /// the connection with.
    async fn close_code_after(&self, bytes: &[u8]) -> u64 {
        let conn = self.connect().await;
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let _ = send.write_all(bytes).await;
        close_code(&conn, Duration::from_secs(10)).await
    }

    /// A new connection with a proper hello said on its first stream, still open.
    async fn connect_with_hello(&self) -> (quinn::Connection, quinn::SendStream) {
        let conn = self.connect().await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            roster_serial: 1,
        };
        send.write_all(&encode_frame(&hello)).await.unwrap();
        let mut head = [0u8; 5];
        recv.read_exact(&mut head).await.unwrap();
        assert_eq!(head[4], 1, "a HelloAck comes back");
        (conn, send)
    }

    /// Says a proper hello, then writes `bytes` on the same stream.
    async fn close_code_after_hello(&self, bytes: &[u8]) -> u64 {
        let (conn, mut send) = self.connect_with_hello().await;
        let _ = send.write_all(bytes).await;
        close_code(&conn, Duration::from_secs(10)).await
    }
}

async fn close_code(conn: &quinn::Connection, within: Duration) -> u64 {
    close_code_and_reason(conn, within).await.0
}

/// The code and reason the node closed `conn` with (or panics after `within`).
async fn close_code_and_reason(conn: &quinn::Connection, within: Duration) -> (u64, Vec<u8>) {
    match tokio::time::timeout(within, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => {
            (close.error_code.into_inner(), close.reason.to_vec())
        }
        other => panic!("the node did not close the connection as expected: {other:?}"),
    }
}

/// The hostile inputs, each with the close code the node must answer with.
fn hostile_inputs(seed: u64) -> Vec<(&'static str, Vec<u8>)> {
    let violation = |m: &Message| encode_frame(m);
    let mut random = vec![0xffu8]; // a length prefix far over any limit, then noise
    let mut s = seed | 1;
    for _ in 0..255 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        random.push(s.to_le_bytes()[0]);
    }
    // A well-sized Offer frame whose body is not an Offer (an over-long varint).
    let mut malformed = 50u32.to_be_bytes().to_vec();
    malformed.push(4);
    malformed.extend([0xab; 16]);
    malformed.extend([0xff; 33]);
    let mut oversized = u32::try_from(MAX_FRAME_LEN + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    oversized.push(3);
    oversized.extend([0u8; 64]);
    vec![
        ("random garbage", random),
        ("malformed offer body", malformed),
        ("frame longer than MAX_FRAME_LEN", oversized),
        (
            "offer over MAX_DOCUMENT_LEN",
            violation(&Message::Offer {
                document_id: [7; 16],
                sealed_len: MAX_DOCUMENT_LEN + 1,
                content_hash: [9; 32],
            }),
        ),
        (
            "receipt as the first message",
            violation(&Message::Receipt {
                receipt: vec![1; 100],
            }),
        ),
        (
            "accept as the first message",
            violation(&Message::Accept { resume_offset: 0 }),
        ),
        (
            "hello with another version",
            violation(&Message::Hello {
                version: PROTOCOL_VERSION + 1,
                roster_serial: 1,
            }),
        ),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn federation() -> TestFederation {
    TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    )
}

/// Sends `count` documents from the city to the probation service, each waited for.
fn legit_deliveries(fed: &TestFederation, count: usize) {
    let city = &fed.agencies[0];
    for i in 0..count {
        let name = format!("legit-{i}.txt");
        fed.deliver_text(
            city,
            PROBATION,
            &name,
            format!("case document {i}").as_bytes(),
        );
    }
}

#[test]
fn hostile_frames_close_the_connection_and_others_are_served() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city = fed.start(city);
    let _probation = fed.start_with(probation, &[], Some("probation.log"));
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = HostilePeer::prison_at_probation(&fed);
    let violation = u64::from(CloseCode::ProtocolViolation.code());
    // The member's deliveries start once the first round of the attack is over, and the
    // attack goes on until they end. (If the first round fails, the channel closes and the
    // deliveries never start.)
    let (attacked, under_attack) = std::sync::mpsc::channel::<()>();
    let rounds_during = std::thread::scope(|scope| {
        let fed = &fed;
        let legit = scope.spawn(move || {
            if under_attack.recv().is_ok() {
                legit_deliveries(fed, 5);
            }
        });
        let (mut rounds, mut rounds_during) = (0u64, 0u64);
        // Until the member's deliveries end, whether they all arrived or one failed (its
        // panic fails the test at the join below, rather than the attack going on for ever).
        loop {
            rt.block_on(async {
                for (what, bytes) in hostile_inputs(rounds + 1) {
                    let code = peer.close_code_after(&bytes).await;
                    assert_eq!(code, violation, "{what}");
                }
                // Out of order after a proper hello: an offer where a roster message may come.
                let offer = encode_frame(&Message::Offer {
                    document_id: [1; 16],
                    sealed_len: 10,
                    content_hash: [2; 32],
                });
                let code = peer.close_code_after_hello(&offer).await;
                assert_eq!(code, violation, "offer inside the hello exchange");
            });
            rounds += 1;
            if rounds == 1 {
                attacked.send(()).unwrap();
            } else if legit.is_finished() {
                break;
            } else {
                rounds_during += 1;
            }
        }
        legit.join().unwrap();
        eprintln!("{rounds} rounds of attack, {rounds_during} of them while the deliveries ran");
        rounds_during
    });
    // Whole rounds of the attack ran while the member's documents were being delivered: the
    // node served them under attack, not only after it.
    assert!(
        rounds_during >= 1,
        "no round of the attack ran during the deliveries"
    );
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 5);
    let log = String::from_utf8_lossy(&fed.sandbox.read("probation.log")).into_owned();
    assert!(log.contains("protocol violation"), "{log}");
}

#[test]
fn a_thousand_idle_streams_are_capped_and_closed() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city = fed.start(city);
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = HostilePeer::prison_at_probation(&fed);
    let started = Instant::now();
    let (conn, streams) = rt.block_on(async {
        let conn = peer.connect().await;
        let mut streams = Vec::new();
        for _ in 0..1000 {
            let Ok(Ok((mut send, recv))) =
                tokio::time::timeout(Duration::from_millis(200), conn.open_bi()).await
            else {
                break;
            };
            // Two bytes of a frame header, then nothing.
            send.write_all(&[0, 0]).await.unwrap();
            streams.push((send, recv));
        }
        (conn, streams)
    });
    assert_eq!(
        streams.len(),
        MAX_STREAMS_PER_CONNECTION as usize,
        "the node grants only its stream limit"
    );
    // The node keeps serving others meanwhile.
    legit_deliveries(&fed, 2);
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 2);
    // The stalled streams time out (the node's frame timeout, 30 s) and the node closes the
    // connection for that reason: not busy, not idle, not done. (The deadline only keeps a
    // hung test from waiting for ever; the reason shows which mechanism closed it.)
    let (code, reason) = rt.block_on(close_code_and_reason(&conn, Duration::from_secs(60)));
    assert_eq!(
        (code, reason.as_slice()),
        (
            u64::from(CloseCode::Internal.code()),
            &b"stream stalled"[..]
        ),
        "closed with {:?}",
        String::from_utf8_lossy(&reason)
    );
    eprintln!("closed as stalled after {:?}", started.elapsed());
    drop(streams);
}

#[test]
fn a_stream_the_peer_gives_up_ends_alone_and_the_connection_serves_on() {
    let fed = federation();
    let _probation = fed.start_with(&fed.agencies[1], &[], Some("probation.log"));
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = HostilePeer::prison_at_probation(&fed);
    rt.block_on(async {
        let (conn, mut hello) = peer.connect_with_hello().await;
        hello.finish().unwrap();
        let mut head = [0u8; 5];

        // The checkpoint exchange, given up once the node answered (as a node does whose
        // exchange timed out or whose database was busy).
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let request = Message::WitnessRequest { since: None };
        send.write_all(&encode_frame(&request)).await.unwrap();
        recv.read_exact(&mut head).await.unwrap();
        recv.stop(0u32.into()).unwrap();
        send.reset(0u32.into()).unwrap();
        // And a stream reset before its first frame was whole. (The node logs nothing for
        // this one: it is not seen to reach the node's reader at all, so only the connection
        // serving on below speaks for it.)
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0, 0]).await.unwrap();
        send.reset(0u32.into()).unwrap();
        // The node has seen the given-up exchange end on its own (and nothing closed the
        // connection for it).
        let deadline = Instant::now() + Duration::from_secs(30);
        let log = loop {
            let log = super::nodes::read_log(&fed.sandbox, "probation.log");
            if log.contains("stream ended: stream failed: stream reset by peer") {
                break log;
            }
            assert!(
                Instant::now() < deadline,
                "the node never saw the given-up exchange end:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!log.contains("closing connection"), "{log}");

        // The connection still serves: an offer on it is answered.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let offer = Message::Offer {
            document_id: [7; 16],
            sealed_len: 10,
            content_hash: [8; 32],
        };
        send.write_all(&encode_frame(&offer)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), recv.read_exact(&mut head))
            .await
            .expect("the node answers the offer")
            .unwrap_or_else(|e| panic!("the connection was closed: {e}"));
        assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());
        // Accept (5) or Reject (6): an answer to the offer.
        assert!(matches!(head[4], 5 | 6), "tag {}", head[4]);
    });
}

/// Offers a 1 MiB document `n` on a new stream of `conn` and reads the node's answer; the
/// streams stay open (no byte of the document follows).
async fn offer_large(
    conn: &quinn::Connection,
    n: u8,
) -> (Message, (quinn::SendStream, quinn::RecvStream)) {
    offer(conn, n, 1 << 20, Duration::from_secs(10)).await
}

/// Offers a document `n` of `len` bytes on a new stream of `conn` and reads the node's answer
/// (within `within`); the streams stay open (no byte of the document follows).
async fn offer(
    conn: &quinn::Connection,
    n: u8,
    len: u64,
    within: Duration,
) -> (Message, (quinn::SendStream, quinn::RecvStream)) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let offer = Message::Offer {
        document_id: [n; 16],
        sealed_len: len,
        content_hash: [n; 32],
    };
    send.write_all(&encode_frame(&offer)).await.unwrap();
    let mut frame = vec![0u8; 4];
    tokio::time::timeout(within, recv.read_exact(&mut frame))
        .await
        .expect("the node answers the offer")
        .unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    frame.resize(4 + len, 0);
    recv.read_exact(&mut frame[4..]).await.unwrap();
    const ANSWERS: &[MessageKind] = &[MessageKind::Accept, MessageKind::Reject];
    let (answer, _) = decode_frame(&frame, ANSWERS).unwrap();
    (answer, (send, recv))
}

#[test]
fn a_member_offering_more_large_documents_than_its_share_is_told_busy_and_others_are_served() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city = fed.start(city);
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = HostilePeer::prison_at_probation(&fed);
    let per_connection = MAX_STREAMS_PER_CONNECTION as usize;
    let held = rt.block_on(async {
        // Its share of large transfers, each accepted and then left without a byte (each
        // holds a thread writing its partial file), on as many connections as it takes.
        let mut conns = Vec::new();
        let mut open = Vec::new();
        for n in 0..MAX_LARGE_TRANSFERS_PER_AGENCY {
            if n % per_connection == 0 {
                conns.push(peer.connect().await);
            }
            let (answer, streams) = offer_large(conns.last().unwrap(), n as u8).await;
            assert!(
                matches!(answer, Message::Accept { .. }),
                "offer {n}: {answer:?}"
            );
            open.push(streams);
        }
        // One more, on a connection with room for it: busy, and why.
        let conn = peer.connect().await;
        let (answer, _streams) = offer_large(&conn, 200).await;
        match answer {
            Message::Reject { reason, detail } => {
                assert_eq!(reason, RejectReason::Busy);
                assert!(detail.contains("too many large documents"), "{detail}");
            }
            other => panic!("not refused: {other:?}"),
        }
        (conns, open)
    });
    // The other members are served meanwhile.
    legit_deliveries(&fed, 2);
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 2);
    drop(held);
}

/// A small document is held in memory whole while it is received: the bytes one member may
/// have offered at once are bounded, not only its streams. Offers past that wait for room and
/// are then told busy; one that ends makes room; the other members are served meanwhile.
#[test]
fn a_member_offering_more_small_documents_than_its_bytes_allow_waits_and_is_told_busy() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city = fed.start(city);
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = HostilePeer::prison_at_probation(&fed);
    let biggest = liaise_node::control::INLINE_MAX_LEN;
    let fit = (MAX_SMALL_BYTES_PER_AGENCY / biggest) as usize;
    assert!(fit < MAX_STREAMS_PER_CONNECTION as usize);
    let conn = rt.block_on(peer.connect());
    // As many of the largest small documents as fit, each accepted and then left without a
    // byte: the node holds room for each.
    let mut held: Vec<_> = (0..fit)
        .map(|n| {
            let (answer, streams) =
                rt.block_on(offer(&conn, n as u8, biggest, Duration::from_secs(10)));
            assert!(
                matches!(answer, Message::Accept { .. }),
                "offer {n}: {answer:?}"
            );
            streams
        })
        .collect();
    // One more, on the same connection, which has streams to spare: it waits for room, then
    // is told busy and why.
    let asked = Instant::now();
    let (answer, _streams) = rt.block_on(offer(&conn, 200, biggest, Duration::from_secs(25)));
    match answer {
        Message::Reject { reason, detail } => {
            assert_eq!(reason, RejectReason::Busy);
            assert!(detail.contains("too many documents"), "{detail}");
        }
        other => panic!("not refused: {other:?}"),
    }
    assert!(
        asked.elapsed() >= Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    // The other members are served meanwhile.
    legit_deliveries(&fed, 2);
    // One of the held transfers given up: room for the next offer, which is accepted at once.
    let (mut send, mut recv) = held.pop().unwrap();
    send.reset(0u32.into()).unwrap();
    recv.stop(0u32.into()).unwrap();
    // (Without the room it would wait as the one before did, and be told busy: the answer
    // being Accept is what shows the room was made.)
    let (answer, _streams) = rt.block_on(offer(&conn, 201, biggest, Duration::from_secs(10)));
    assert!(matches!(answer, Message::Accept { .. }), "{answer:?}");
    drop(held);
}

#[test]
fn large_offers_given_up_before_their_first_byte_leave_no_partial_files() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _city = fed.start(city);
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = HostilePeer::prison_at_probation(&fed);
    let incoming = fed.sandbox.path(&probation.home).join("store/incoming");
    let partials = || {
        std::fs::read_dir(&incoming)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(PRISON)
            })
            .count()
    };
    // More large documents than a peer may leave partial files of, each offered under a new
    // id, accepted, and given up without a byte: each accepted transfer creates its file, and
    // each must go again, or the peer could fill the folder with empty files.
    let offers = MAX_PARTIAL_FILES_PER_PEER + MAX_LARGE_TRANSFERS_PER_AGENCY;
    rt.block_on(async {
        let conn = peer.connect().await;
        for n in 0..offers {
            let (answer, (mut send, mut recv)) = offer_large(&conn, n as u8).await;
            assert!(
                matches!(answer, Message::Accept { .. }),
                "offer {n}: {answer:?}"
            );
            send.reset(0u32.into()).unwrap();
            recv.stop(0u32.into()).unwrap();
            // The transfer ends once the node sees the reset; wait for it before the next,
            // so that the peer's share of large transfers at once is never reached.
            let start = Instant::now();
            while partials() > 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "offer {n}: an empty partial file stays"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // The other members are served meanwhile.
    legit_deliveries(&fed, 1);
}
