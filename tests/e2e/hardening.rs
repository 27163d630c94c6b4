//! Findings of the security review, each shown fixed against a running node: a member speaks
//! QUIC to the probation node with its own keys (and the node's TLS settings) and tries to
//! roll back or push rosters out of turn, fill the disk with documents it could never deliver,
//! hog connections, or keep a connection after its revocation.

use std::net::SocketAddr;
use std::time::Duration;

use liaise_keys::Timestamp;
use liaise_protocol::wire::{
    CloseCode, FRAME_HEADER_LEN, Message, MessageKind, PROTOCOL_VERSION, RejectReason,
    decode_frame, encode_frame,
};

use liaise_node::daemon::{REHELLO_INTERVAL, REHELLO_MIN_INTERVAL};

use super::nodes::{
    Agency, DEBUG_LOG, NodeProcess, TestFederation, accepted_connections, wait_accepted,
};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// A member's keys in the test's hands, dialling one node.
pub(super) struct Member {
    endpoint: quinn::Endpoint,
    target: SocketAddr,
    target_agency: String,
}

impl Member {
    pub(super) fn new(fed: &TestFederation, who: &Agency, target: &Agency) -> Self {
        let (endpoint, _) = super::nodes::member_client(&fed.sandbox.path(&who.home));
        Self {
            endpoint,
            target: fed.address(target).parse().unwrap(),
            target_agency: target.id.clone(),
        }
    }

    pub(super) async fn connect(&self) -> quinn::Connection {
        self.endpoint
            .connect(self.target, &self.target_agency)
            .unwrap()
            .await
            .unwrap()
    }

    /// A new connection with the hello exchange done (claiming roster `serial`), the hello
    /// stream still open.
    async fn hello(&self, serial: u64) -> (quinn::Connection, quinn::SendStream) {
        let conn = self.connect().await;
        let (send, recv) = hello_on(&conn, serial).await;
        drop(recv);
        (conn, send)
    }
}

/// The hello exchange on `conn`, or why it failed (the node closed the connection, say).
async fn try_hello(
    conn: &quinn::Connection,
    serial: u64,
) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        roster_serial: serial,
    };
    send.write_all(&encode_frame(&hello))
        .await
        .map_err(|e| e.to_string())?;
    let mut frame = vec![0u8; FRAME_HEADER_LEN];
    recv.read_exact(&mut frame)
        .await
        .map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    frame.resize(FRAME_HEADER_LEN + len, 0);
    recv.read_exact(&mut frame[FRAME_HEADER_LEN..])
        .await
        .map_err(|e| e.to_string())?;
    match decode_frame(&frame, &[MessageKind::HelloAck]) {
        Ok((Message::HelloAck { .. }, _)) => Ok((send, recv)),
        other => panic!("not a HelloAck: {other:?}"),
    }
}

async fn hello_on(conn: &quinn::Connection, serial: u64) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        roster_serial: serial,
    };
    send.write_all(&encode_frame(&hello)).await.unwrap();
    let ack = read_frame(&mut recv, &[MessageKind::HelloAck]).await;
    assert!(matches!(ack, Message::HelloAck { .. }), "{ack:?}");
    (send, recv)
}

pub(super) async fn read_frame(
    recv: &mut quinn::RecvStream,
    expected: &'static [MessageKind],
) -> Message {
    let mut frame = vec![0u8; FRAME_HEADER_LEN];
    recv.read_exact(&mut frame).await.unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    frame.resize(FRAME_HEADER_LEN + len, 0);
    recv.read_exact(&mut frame[FRAME_HEADER_LEN..])
        .await
        .unwrap();
    decode_frame(&frame, expected).unwrap().0
}

async fn close_code(conn: &quinn::Connection, within: Duration) -> u64 {
    match tokio::time::timeout(within, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => close.error_code.into_inner(),
        other => panic!("the node did not close the connection as expected: {other:?}"),
    }
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
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

fn roster_serial(fed: &TestFederation, agency: &Agency) -> u64 {
    fed.json(agency, &["roster", "show"])["serial"]
        .as_u64()
        .unwrap()
}

#[test]
fn roster_pushes_need_a_newer_serial_and_hellos_a_pause_between_them() {
    let fed = federation();
    let [_, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start(probation);
    let serial = roster_serial(&fed, probation);
    let roster = fed.sandbox.read(&format!("{}/roster.liaise", prison.home));
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = Member::new(&fed, prison, probation);
    let violation = u64::from(CloseCode::ProtocolViolation.code());
    rt.block_on(async {
        // A roster pushed by a client that did not claim a newer one: out of turn.
        let (conn, mut send) = peer.hello(serial).await;
        let push = Message::RosterFile {
            file: roster.clone(),
        };
        send.write_all(&encode_frame(&push)).await.unwrap();
        assert_eq!(close_code(&conn, Duration::from_secs(10)).await, violation);

        // A second hello on the same connection right away.
        let (conn, mut send) = peer.hello(serial).await;
        send.finish().unwrap();
        let (mut again, _recv) = conn.open_bi().await.unwrap();
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            roster_serial: serial,
        };
        again.write_all(&encode_frame(&hello)).await.unwrap();
        assert_eq!(close_code(&conn, Duration::from_secs(10)).await, violation);

        // After the pause the protocol asks for (`wire.md`), the exchange may be repeated on
        // an open connection: that is how a long-lived connection keeps its rosters current.
        let (conn, mut send) = peer.hello(serial).await;
        send.finish().unwrap();
        tokio::time::sleep(REHELLO_MIN_INTERVAL + Duration::from_millis(500)).await;
        let (mut send, _recv) = hello_on(&conn, serial).await;
        send.finish().unwrap();
        assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());
    });
    assert_eq!(roster_serial(&fed, probation), serial);
}

/// The city's and the probation service's nodes, each logging at debug level (`city.log`,
/// `probation.log`) so that the connections each accepts can be counted.
fn city_and_probation_counting_connections(fed: &TestFederation) -> [NodeProcess; 2] {
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    [
        fed.start_with(city, DEBUG_LOG, Some("city.log")),
        fed.start_with(probation, DEBUG_LOG, Some("probation.log")),
    ]
}

/// The connections the city's and the probation service's nodes accepted so far.
fn connections(fed: &TestFederation) -> [usize; 2] {
    ["city.log", "probation.log"].map(|log| accepted_connections(&fed.sandbox, log))
}

/// The connections of the two nodes' start: each dials the other once (the probation
/// service's dial finds the city's node up; the city's waits for the probation node to come
/// up). The city's connection carries its documents.
fn start_up_connections(fed: &TestFederation) -> [usize; 2] {
    ["city.log", "probation.log"]
        .map(|log| wait_accepted(&fed.sandbox, log, 1, Duration::from_secs(20)))
}

#[test]
fn a_new_roster_reaches_a_connected_peer_over_the_open_connection() {
    let fed = federation();
    let [city, probation, _] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = city_and_probation_counting_connections(&fed);
    // The city's node dialled the probation node at its start, and keeps the connection open.
    fed.deliver_text(city, PROBATION, "one.txt", b"First report");
    let dialled = start_up_connections(&fed);
    assert_eq!(dialled, [1, 1], "each node dialled the other once");
    let serial = roster_serial(&fed, probation);
    // Only the city imports the next roster: its node passes it on without a new connection
    // (keep-alives hold the old one open for as long as the nodes run).
    fed.publish();
    fed.import(city);
    fed.wait_node_serial(probation, serial + 1, REHELLO_MIN_INTERVAL * 3);
    // And the connection still carries documents.
    fed.deliver_text(city, PROBATION, "two.txt", b"Second report");
    // Neither node accepted another connection: the roster and the document went over the
    // open one.
    assert_eq!(connections(&fed), dialled, "a new connection was dialled");
}

#[test]
fn a_roster_the_served_node_took_up_reaches_the_dialling_node_over_the_open_connection() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let _nodes = city_and_probation_counting_connections(&fed);
    // The city's node dialled the probation node at its start, and keeps the connection open.
    fed.deliver_text(city, PROBATION, "one.txt", b"First report");
    let dialled = start_up_connections(&fed);
    assert_eq!(dialled, [1, 1], "each node dialled the other once");
    let serial = roster_serial(&fed, probation);
    // Only the probation service imports the next roster. Its node, the serving side, does
    // not start exchanges: the city's node asks again every REHELLO_INTERVAL, so the roster
    // arrives within that interval (the margin is for a loaded machine, not a promise).
    fed.publish();
    fed.import(probation);
    fed.wait_node_serial(city, serial + 1, REHELLO_INTERVAL + Duration::from_secs(20));
    // Over the same connection, which still carries documents.
    fed.deliver_text(city, PROBATION, "two.txt", b"Second report");
    assert_eq!(connections(&fed), dialled, "a new connection was dialled");
}

#[test]
fn a_revoked_member_loses_the_connection_it_holds() {
    let fed = federation();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start_with(probation, &[], Some("probation.log"));
    let serial = roster_serial(&fed, probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let prison_peer = Member::new(&fed, prison, probation);
    let city_peer = Member::new(&fed, city, probation);
    let (held, _hello) = rt.block_on(prison_peer.hello(serial));

    // The stewards revoke the prison; the city brings the new roster to the probation node.
    fed.sandbox
        .liaise(&["federation", "revoke", "--dir", "fed", PRISON])
        .ok();
    fed.publish();
    let newer = fed.sandbox.read("fed/roster.liaise");
    rt.block_on(async {
        let (conn, mut send) = city_peer.hello(serial + 1).await;
        let push = Message::RosterFile { file: newer };
        send.write_all(&encode_frame(&push)).await.unwrap();
        send.finish().unwrap();
        let _ = send.stopped().await;
        drop(conn);
    });
    let code = rt.block_on(close_code(&held, Duration::from_secs(10)));
    assert_eq!(code, u64::from(CloseCode::NotAuthorized.code()));
    assert_eq!(roster_serial(&fed, probation), serial + 1);
}

#[test]
fn an_agency_holds_a_few_connections_at_most() {
    let fed = federation();
    let [_, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start(probation);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = Member::new(&fed, prison, probation);
    let serial = roster_serial(&fed, probation);
    let limit = liaise_node::daemon::MAX_CONNECTIONS_PER_AGENCY;
    rt.block_on(async {
        let mut open = Vec::new();
        for _ in 0..limit {
            open.push(peer.hello(serial).await);
        }
        let extra = peer.connect().await;
        let code = close_code(&extra, Duration::from_secs(10)).await;
        assert_eq!(code, u64::from(CloseCode::Internal.code()));
        for (conn, _) in &open {
            assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());
        }
        // A closed one frees its place, once the node has seen it closed: until then a new
        // one is still refused, so the test dials until one is served (or gives up).
        let (first, _) = open.remove(0);
        first.close(0u32.into(), b"done");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let conn = loop {
            let conn = peer.connect().await;
            match try_hello(&conn, serial).await {
                Ok(_) => break conn,
                Err(e) => {
                    assert_eq!(
                        close_code(&conn, Duration::from_secs(10)).await,
                        u64::from(CloseCode::Internal.code()),
                        "{e}"
                    );
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the closed connection never freed its place: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());
        // And with it, the agency holds its limit again.
        let extra = peer.connect().await;
        let code = close_code(&extra, Duration::from_secs(10)).await;
        assert_eq!(code, u64::from(CloseCode::Internal.code()));
    });
}

/// Offers `sealed` under its own id but announcing `sealed_len`, sends every byte of it and
/// keeps the stream open; returns the node's answer (or panics after `within`).
async fn offer_and_hold(
    peer: &Member,
    sealed: &[u8],
    sealed_len: u64,
    within: Duration,
) -> Message {
    let info = liaise_protocol::danger_read_unverified_header(sealed).unwrap();
    let conn = peer.connect().await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let offer = Message::Offer {
        document_id: info.document_id.0,
        sealed_len,
        content_hash: [0x5a; 32],
    };
    send.write_all(&encode_frame(&offer)).await.unwrap();
    let accept = read_frame(&mut recv, &[MessageKind::Accept]).await;
    assert!(matches!(accept, Message::Accept { resume_offset: 0 }));
    send.write_all(sealed).await.unwrap();
    let answer = tokio::time::timeout(within, read_frame(&mut recv, &[MessageKind::Reject]));
    let answer = answer
        .await
        .unwrap_or_else(|_| panic!("the node did not refuse the document within {within:?}"));
    drop(send);
    answer
}

fn partials(fed: &TestFederation, agency: &Agency) -> usize {
    std::fs::read_dir(fed.sandbox.path(&format!("{}/store/incoming", agency.home)))
        .unwrap()
        .count()
}

#[test]
fn a_document_that_can_never_be_accepted_is_refused_from_its_header() {
    let fed = federation();
    let [_, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start(probation);
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), vec![b'x'; 300_000]).unwrap();
    let seal = |to: &str, out: &str| {
        sb.liaise(&[
            "seal",
            "--home",
            &prison.home,
            "--to",
            to,
            "--offline",
            "--out",
            out,
            "report.txt",
        ])
        .ok();
        sb.read(out)
    };
    let for_city = seal(CITY, "for-city.liaise");
    let for_probation = seal(PROBATION, "for-probation.liaise");
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = Member::new(&fed, prison, probation);
    // Far longer than the document, yet short enough to fit on the node's disk (an offer that
    // cannot fit is refused before it is accepted, see `disk_full`).
    let huge = 1024 * 1024 * 1024;
    let within = Duration::from_secs(10);
    rt.block_on(async {
        // Not for this node: refused once the header is in, not after 1 GiB.
        let answer = offer_and_hold(&peer, &for_city, huge, within).await;
        assert!(
            matches!(
                answer,
                Message::Reject {
                    reason: RejectReason::NotRecipient,
                    ..
                }
            ),
            "{answer:?}"
        );
        // For this node, but announced far longer than its header says.
        let answer = offer_and_hold(&peer, &for_probation, huge, within).await;
        let Message::Reject { reason, detail } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(reason, RejectReason::BadDocument);
        assert!(detail.contains("the header implies"), "{detail}");
    });
    assert_eq!(partials(&fed, probation), 0, "refused partials are deleted");
}

/// A small document is taken into memory, not a partial file: a peer that sends more bytes
/// than it offered loses its connection, bytes that do not hash to the offer are refused,
/// and neither leaves anything in the store; the honest offer afterwards is received, and
/// received again is kept once under the same receipt.
#[test]
fn a_small_document_with_extra_or_altered_bytes_is_refused_and_nothing_is_kept() {
    let fed = federation();
    let [_, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start(probation);
    let sb = &fed.sandbox;
    let (sealed, id, hash) = seal_offline(
        &fed,
        prison,
        "note.txt",
        b"release date moved to Monday",
        &[],
    );
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = Member::new(&fed, prison, probation);
    let offer_and_send = |offered_len: u64, content_hash: [u8; 32], bytes: Vec<u8>| {
        let peer = &peer;
        async move {
            let conn = peer.connect().await;
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let offer = Message::Offer {
                document_id: id,
                sealed_len: offered_len,
                content_hash,
            };
            send.write_all(&encode_frame(&offer)).await.unwrap();
            let accept = read_frame(&mut recv, &[MessageKind::Accept]).await;
            assert!(matches!(accept, Message::Accept { resume_offset: 0 }));
            let _ = send.write_all(&bytes).await;
            let _ = send.finish();
            (conn, recv)
        }
    };
    rt.block_on(async {
        // One byte more than offered: a protocol violation.
        let mut longer = sealed.clone();
        longer.push(0);
        let (conn, _recv) = offer_and_send(sealed.len() as u64, hash, longer).await;
        let violation = u64::from(CloseCode::ProtocolViolation.code());
        assert_eq!(close_code(&conn, Duration::from_secs(10)).await, violation);

        // Every byte there, one of them altered: refused, as not the offered document.
        let mut altered = sealed.clone();
        let middle = altered.len() / 2;
        altered[middle] ^= 1;
        let (_conn, mut recv) = offer_and_send(sealed.len() as u64, hash, altered).await;
        let answer = read_frame(&mut recv, &[MessageKind::Reject, MessageKind::Receipt]).await;
        let Message::Reject { reason, detail } = answer else {
            panic!("altered bytes were accepted: {answer:?}")
        };
        assert_eq!(reason, RejectReason::BadDocument);
        assert!(detail.contains("offered hash"), "{detail}");
    });
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 0);
    assert_eq!(
        sb.stored(&probation.home, &liaise_node::store::hex(&hash)),
        None
    );
    assert_eq!(
        partials(&fed, probation),
        0,
        "a small document needs no partial file"
    );

    // The honest offer of the same document is received and receipted; offered again (its
    // receipt lost on the way, say), it is answered with the same receipt and kept once.
    let receipts = rt.block_on(async {
        let mut receipts = Vec::new();
        for _ in 0..2 {
            // Receipts carry the time in seconds: a second receipt signed now would differ.
            if !receipts.is_empty() {
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
            let (_conn, mut recv) = offer_and_send(sealed.len() as u64, hash, sealed.clone()).await;
            let answer = read_frame(&mut recv, &[MessageKind::Reject, MessageKind::Receipt]).await;
            let Message::Receipt { receipt } = answer else {
                panic!("not receipted: {answer:?}")
            };
            receipts.push(receipt);
        }
        receipts
    });
    assert_eq!(receipts[0], receipts[1], "the same receipt both times");
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 1);
    assert_eq!(
        sb.stored(&probation.home, &liaise_node::store::hex(&hash)),
        Some(sealed)
    );
}

#[test]
fn a_document_whose_time_ended_before_it_arrived_is_refused_and_nothing_is_kept() {
    let fed = federation();
    let [_, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start(probation);
    // Sealed to expire at the probation service one second on; it is offered after that (a
    // sender that held it back, or a member filling the node with documents deleted as
    // they arrive).
    let (sealed, id, hash) = seal_offline(
        &fed,
        prison,
        "note.txt",
        b"visit on Friday",
        &["--expires", "1s"],
    );
    let expired = Timestamp::now().0 + 2;
    while Timestamp::now().0 <= expired {
        std::thread::sleep(Duration::from_millis(100));
    }
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = Member::new(&fed, prison, probation);
    rt.block_on(async {
        let conn = peer.connect().await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let offer = Message::Offer {
            document_id: id,
            sealed_len: sealed.len() as u64,
            content_hash: hash,
        };
        send.write_all(&encode_frame(&offer)).await.unwrap();
        let accept = read_frame(&mut recv, &[MessageKind::Accept]).await;
        assert!(matches!(accept, Message::Accept { resume_offset: 0 }));
        send.write_all(&sealed).await.unwrap();
        send.finish().unwrap();
        let answer = read_frame(&mut recv, &[MessageKind::Reject, MessageKind::Receipt]).await;
        let Message::Reject { reason, detail } = answer else {
            panic!("an expired document was receipted: {answer:?}")
        };
        assert_eq!(reason, RejectReason::BadDocument);
        assert!(detail.contains("before it arrived"), "{detail}");
    });
    // Nothing kept, and nothing charged to the prison.
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 0);
    assert_eq!(
        fed.sandbox
            .stored(&probation.home, &liaise_node::store::hex(&hash)),
        None
    );
    let status = fed.json(probation, &["status"]);
    let prison_row = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["agency"] == prison.id.as_str())
        .unwrap();
    assert_eq!(prison_row["received_documents"], 0, "{status:#}");
}

/// How many times the node logging to `log` refused a roster from a peer.
fn refusals(fed: &TestFederation, log: &str) -> usize {
    String::from_utf8_lossy(&fed.sandbox.read(log))
        .matches("refused roster from peer")
        .count()
}

#[test]
fn a_pushed_roster_the_node_refused_is_not_checked_again_from_that_peer() {
    let fed = federation();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start_with(probation, &[], Some("probation.log"));
    let serial = roster_serial(&fed, probation);
    fed.publish();
    let genuine = fed.sandbox.read("fed/roster.liaise");
    // The prison pushes the next roster with a steward's signature broken, on two connections
    // (as a node holding it would every minute).
    let mut forged = genuine.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let rt = runtime();
    let _in_runtime = rt.enter();
    let prison_peer = Member::new(&fed, prison, probation);
    let city_peer = Member::new(&fed, city, probation);
    let push = |peer: &Member, file: Vec<u8>| {
        rt.block_on(async {
            let conn = peer.connect().await;
            let (mut send, mut recv) = hello_on(&conn, serial + 1).await;
            let push = Message::RosterFile { file };
            send.write_all(&encode_frame(&push)).await.unwrap();
            send.finish().unwrap();
            // The node finishes its side (or the connection) once it has dealt with the
            // roster: only then do the counts below say what it did with it.
            let dealt = tokio::time::timeout(Duration::from_secs(30), recv.read_to_end(64)).await;
            assert!(dealt.is_ok(), "the node never dealt with the pushed roster");
            conn.close(0u32.into(), b"done");
        });
    };
    push(&prison_peer, forged.clone());
    assert_eq!(refusals(&fed, "probation.log"), 1);
    push(&prison_peer, forged);
    assert_eq!(
        refusals(&fed, "probation.log"),
        1,
        "the same refused roster from the same peer was checked and logged again"
    );
    assert_eq!(roster_serial(&fed, probation), serial);
    // Another peer's genuine roster of that serial is taken up at once.
    push(&city_peer, genuine);
    assert_eq!(roster_serial(&fed, probation), serial + 1);
}

#[test]
fn a_roster_the_node_refused_is_not_fetched_again_until_its_own_changes() {
    let fed = federation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let s = &fed.sandbox;
    // The stewards hand over to new ones: a transition roster signed by both, then one signed
    // by the new stewards alone. The probation service takes up both; the city neither, so it
    // cannot check the newest roster against the stewards it knows.
    s.liaise(&[
        "federation",
        "rotate-stewards",
        "--dir",
        "fed",
        "--stewards",
        "1",
        "--threshold",
        "1",
    ])
    .ok();
    for roster in ["r-transition.liaise", "r-new-stewards.liaise"] {
        s.publish("fed", roster);
        s.liaise(&["roster", "import", "--home", &probation.home, roster])
            .ok();
    }
    let newest = roster_serial(&fed, probation);
    let probation_node = fed.start(probation);
    let _city = fed.start_with(city, &[], Some("city.log"));
    fed.deliver_text(city, PROBATION, "one.txt", b"First report");
    assert_eq!(refusals(&fed, "city.log"), 1);
    // A new connection (the probation node restarted) does not fetch it again.
    probation_node.terminate();
    let _probation = fed.start(probation);
    fed.deliver_text(city, PROBATION, "two.txt", b"Second report");
    assert_eq!(
        refusals(&fed, "city.log"),
        1,
        "the refused roster was fetched and refused again"
    );
    // Once the city holds the transition roster, it takes up the newest from its peer.
    s.liaise(&[
        "roster",
        "import",
        "--home",
        &city.home,
        "r-transition.liaise",
    ])
    .ok();
    fed.wait_node_serial(city, newest, REHELLO_MIN_INTERVAL * 3);
    assert_eq!(refusals(&fed, "city.log"), 1);
}

#[test]
fn a_node_logs_that_its_roster_expires_soon_and_when_it_has_expired() {
    let fed = TestFederation::new(&[(CITY, "city"), (PROBATION, "probation")], &[]);
    let (city, probation) = (&fed.agencies[0], &fed.agencies[1]);
    let _node = fed.start_with(city, &[], Some("city.log"));
    let _probation = fed.start(probation);
    // The stewards publish a roster that runs out in 60 s (time enough for a slow machine to
    // import it well before then); the city imports it while its node runs, which takes it
    // up at once.
    fed.sandbox
        .liaise(&[
            "federation",
            "publish",
            "--dir",
            "fed",
            "--out",
            "fed/roster.liaise",
            "--valid-for",
            "60s",
        ])
        .ok();
    fed.import(city);
    let roster = fed.json(city, &["roster", "show"]);
    let expires_at = roster["expires_at"]
        .as_str()
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or_else(|| panic!("no expiry: {roster:#}"));
    let log = |needle: &str, within: Duration| {
        let deadline = std::time::Instant::now() + within;
        loop {
            let text = std::fs::read_to_string(fed.sandbox.path("city.log")).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in the node's log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Once taken up (not at the node's next hourly look): it expires within the week, and
    // the operator is told what to do.
    let text = log(
        "the roster (serial 2) expires in 0 d 0 h",
        Duration::from_secs(30),
    );
    assert!(
        Timestamp::now() < expires_at,
        "the roster expired before its warning was read: the test proves nothing"
    );
    assert!(
        text.contains("ask your stewards for the next one"),
        "{text}"
    );
    assert_eq!(text.matches("expires in").count(), 1, "{text}");
    // Not before it runs out (this log was read before the expiry, on the node's clock)...
    assert!(!text.contains("has expired"), "{text}");
    // Meanwhile the city exchanges with probation, which its status shows.
    fed.deliver_text(city, PROBATION, "report.txt", b"Case 17");
    let reachable = || {
        let status = fed.json(city, &["status"]);
        status["peers"]
            .as_array()
            .and_then(|peers| peers.iter().find(|p| p["agency"] == PROBATION))
            .map(|p| p["reachable"].clone())
            .unwrap_or_else(|| panic!("no probation: {status:#}"))
    };
    assert_eq!(reachable(), true);
    assert!(
        Timestamp::now() < expires_at,
        "the roster expired before the delivery was done: the test proves nothing"
    );
    while Timestamp::now() < expires_at {
        std::thread::sleep(Duration::from_millis(200));
    }
    // ...and once it runs out, at once rather than at the next hourly look.
    let text = log("the roster (serial 2) has expired", Duration::from_secs(20));
    assert_eq!(text.matches("has expired").count(), 1, "{text}");
    // Its connections end with it (not at their next check, a minute on: closed by the city,
    // or by probation, which took the roster up from the city and saw it expire too), and its
    // status stops showing probation reachable: nothing can be exchanged now.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while reachable() != false {
        assert!(
            std::time::Instant::now() < deadline,
            "probation still shown reachable"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Asked to check, it does not blame the peers: its own roster is what ran out.
    let status = fed.json(city, &["status", "--check"]);
    let error = status["peers"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not dialled") && error.contains("(serial 2) expired"),
        "{status:#}"
    );
}

/// A large document (kept as a file, not in the database) offered again after it was
/// received, its receipt lost on the way: the node asks for no byte, answers with the first
/// receipt, and keeps one copy.
#[test]
fn a_large_document_offered_again_gets_the_same_receipt_and_is_kept_once() {
    let fed = federation();
    let [_, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _probation = fed.start(probation);
    let sb = &fed.sandbox;
    let content: Vec<u8> = (0..(1024 * 1024_u32)).map(|i| (i % 241) as u8).collect();
    let (sealed, id, hash) = seal_offline(&fed, prison, "scan.pdf", &content, &[]);
    let len = sealed.len() as u64;
    assert!(len > liaise_node::store::held::INLINE_MAX_LEN, "{len}");
    let rt = runtime();
    let _in_runtime = rt.enter();
    let peer = Member::new(&fed, prison, probation);
    let receipts = rt.block_on(async {
        let mut receipts = Vec::new();
        for round in 0..2 {
            // Receipts carry the time in seconds: a second one signed now would differ.
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
            let conn = peer.connect().await;
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let offer = Message::Offer {
                document_id: id,
                sealed_len: len,
                content_hash: hash,
            };
            send.write_all(&encode_frame(&offer)).await.unwrap();
            let Message::Accept { resume_offset } =
                read_frame(&mut recv, &[MessageKind::Accept]).await
            else {
                unreachable!()
            };
            // The first time from the start; the second time it holds every byte already.
            let from = if round == 0 { 0 } else { len };
            assert_eq!(resume_offset, from, "round {round}");
            send.write_all(&sealed[from as usize..]).await.unwrap();
            send.finish().unwrap();
            let answer = read_frame(&mut recv, &[MessageKind::Reject, MessageKind::Receipt]).await;
            let Message::Receipt { receipt } = answer else {
                panic!("not receipted: {answer:?}")
            };
            receipts.push(receipt);
            conn.close(0u32.into(), b"done");
        }
        receipts
    });
    assert_eq!(receipts[0], receipts[1], "the same receipt both times");
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 1);
    assert_eq!(
        sb.stored(&probation.home, &liaise_node::store::hex(&hash)),
        Some(sealed)
    );
    let blobs = std::fs::read_dir(sb.path(&format!("{}/store/blobs", probation.home)))
        .unwrap()
        .count();
    assert_eq!(blobs, 1, "one copy, as a file");
}

/// `content` written to `file` and sealed by `from` for the probation service (`--offline`,
/// and `extra` options): the sealed bytes, their document id and their content hash.
fn seal_offline(
    fed: &TestFederation,
    from: &Agency,
    file: &str,
    content: &[u8],
    extra: &[&str],
) -> (Vec<u8>, [u8; 16], [u8; 32]) {
    let sb = &fed.sandbox;
    std::fs::write(sb.path(file), content).unwrap();
    let out = format!("{file}.liaise");
    let mut args = vec![
        "seal",
        "--home",
        &from.home,
        "--to",
        PROBATION,
        "--offline",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    args.push(file);
    sb.liaise(&args).ok();
    let sealed = sb.read(&out);
    let id = liaise_protocol::danger_read_unverified_header(sealed.as_slice())
        .unwrap()
        .document_id
        .0;
    let hash = liaise_protocol::wire::content_hash(&sealed);
    (sealed, id, hash)
}
