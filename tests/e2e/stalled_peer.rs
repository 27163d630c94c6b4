//! A member's node that completes the handshake, the hello and the witness steps, then never
//! grants another stream and never reads the one it accepted (no flow-control credit). Its
//! keep-alives keep the connection up, so only the sender's own timeouts end such an
//! exchange. Large deliveries and retries to it go a few at a time, fail after
//! `FRAME_TIMEOUT` and are retried, and never hold up other recipients; nor do many small
//! documents to it. A delete request to it holds up neither the delete requests to other
//! readers nor the deletion of expired copies. One that asks to resume past a document's end
//! is cut off as a protocol violation.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liaise_keys::Timestamp;
use liaise_keys::keyfile::Passphrase;
use liaise_node::home::Home;
use liaise_node::transport::{RosterVerifier, SharedRoster, crypto_provider};
use liaise_protocol::wire::{
    ALPN, CloseCode, Message, MessageKind, PROTOCOL_VERSION, encode_frame,
};
use liaise_tests::PASSPHRASE;
use quinn::rustls;
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use quinn::{TransportConfig, VarInt};
use serde_json::Value;

use super::nodes::{Agency, TestFederation, states};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// The node's limit on deliveries in flight (`MAX_PARALLEL_DELIVERIES`).
const DELIVERY_SLOTS: usize = liaise_node::daemon::MAX_PARALLEL_DELIVERIES;
/// Large documents sent to the stalling prison: more than it may be sent at once
/// (`MAX_SLOW_PER_AGENCY`) many times over. Each is a `liaise send`, which unlocks the keys
/// (Argon2 over 64 MiB), so not one per delivery slot.
const LARGE_FOR_PRISON: usize = 48;
/// The node's limit on large documents in flight to one agency (`MAX_SLOW_PER_AGENCY`).
const MAX_SLOW_PER_AGENCY: usize = liaise_node::daemon::MAX_SLOW_PER_AGENCY;
/// Streams the stalling peer grants: the hello, the witness exchange and one more.
const GRANTED_STREAMS: u32 = 3;
/// Bytes the stalling peer lets in per stream before it stops taking any.
const STALLED_STREAM_WINDOW: u32 = 64 * 1024;
/// How long the node's attempts wait for a stream, or for the peer to take bytes, before they
/// fail.
const FRAME_TIMEOUT: Duration = liaise_node::daemon::FRAME_TIMEOUT;
/// An outcome within this of its request came before any attempt stuck on the stalling peer
/// could have given up (after [`FRAME_TIMEOUT`]): the time bounds below only tell "not held
/// up" from "held up until the stuck attempts timed out", they measure no speed.
const BEFORE_ANY_TIMEOUT: Duration = Duration::from_secs(FRAME_TIMEOUT.as_secs() / 2);

fn three() -> TestFederation {
    TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `liaise send` from the city without waiting; returns the document id.
fn send(fed: &TestFederation, city: &Agency, to: &str, file: &str, extra: &[&str]) -> String {
    let mut args = vec!["send", "--home", &city.home, "--to", to];
    args.extend(extra);
    args.push(file);
    fed.sandbox.liaise(&args).ok().trim().to_owned()
}

#[test]
fn large_deliveries_to_a_peer_that_takes_nothing_wait_their_turn_and_time_out() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation)];
    let rt = runtime();
    let _guard = rt.enter();
    let stalling = StallingPeer::start(&fed, prison);

    // Many large documents for the prison. Each is larger than the stream window the prison
    // grants, so the one stream it accepts stalls mid-transfer.
    let sb = &fed.sandbox;
    let for_prison: Vec<String> = std::thread::scope(|scope| {
        let sends: Vec<_> = (0..LARGE_FOR_PRISON)
            .map(|i| {
                let (fed, file) = (&fed, format!("prison-{i}.bin"));
                scope.spawn(move || {
                    std::fs::write(fed.sandbox.path(&file), vec![i as u8; 256 * 1024]).unwrap();
                    send(fed, city, PRISON, &file, &[])
                })
            })
            .collect();
        sends.into_iter().map(|s| s.join().unwrap()).collect()
    });
    fed.wait_outbox(city, Duration::from_secs(10), |_| {
        stalling.offers.load(Ordering::SeqCst) >= 1
    });
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(sb.path("report.txt"), b"Case 17").unwrap();
    let sent_at = Instant::now();
    let for_probation = send(&fed, city, PROBATION, "report.txt", &[]);

    // The prison's queue holds no slot the probation service needs: its report is delivered
    // at once, long before the stuck attempts give up (FRAME_TIMEOUT, 30 s).
    fed.wait_outbox(city, FRAME_TIMEOUT, |rows| {
        states(rows, &for_probation) == ["delivered"]
    });
    assert!(
        sent_at.elapsed() < BEFORE_ANY_TIMEOUT,
        "{:?}",
        sent_at.elapsed()
    );

    // Only MAX_SLOW_PER_AGENCY of the prison's documents were tried at once. Each failed as
    // a timed-out attempt and stays queued for a retry: the one that got a stream because the
    // prison took no data, the others because it granted no stream. The rest wait untried.
    let rows = fed.wait_outbox(city, Duration::from_secs(45), |rows| {
        prison_rows(rows, &for_prison)
            .iter()
            .any(|r| r["attempts"].as_u64() >= Some(1))
    });
    let rows = prison_rows(&rows, &for_prison);
    assert_eq!(rows.len(), LARGE_FOR_PRISON);
    assert!(rows.iter().all(|r| r["state"] == "queued"), "{rows:#?}");
    let tried: Vec<&Value> = rows
        .iter()
        .filter(|r| r["attempts"].as_u64() >= Some(1))
        .collect();
    assert!(
        !tried.is_empty() && tried.len() <= MAX_SLOW_PER_AGENCY,
        "{tried:#?}"
    );
    let error = |r: &&Value| r["last_error"].as_str().unwrap_or("").to_owned();
    let untried = rows.iter().filter(|r| r["attempts"].as_u64() == Some(0));
    assert!(untried.clone().all(|r| error(&r).is_empty()), "{rows:#?}");
    assert!(untried.count() >= LARGE_FOR_PRISON - MAX_SLOW_PER_AGENCY);
    let rows = fed.wait_outbox(city, Duration::from_secs(10), |rows| {
        prison_rows(rows, &for_prison)
            .iter()
            .filter(|r| r["attempts"].as_u64() >= Some(1))
            .count()
            >= MAX_SLOW_PER_AGENCY
    });
    let rows = prison_rows(&rows, &for_prison);
    assert!(
        rows.iter().any(|r| error(&r).contains("took no data")),
        "{rows:#?}"
    );
    assert!(
        rows.iter().any(|r| error(&r).contains("granted none")),
        "{rows:#?}"
    );
    assert!(stalling.connections.load(Ordering::SeqCst) >= 1);
}

#[test]
fn small_documents_to_a_peer_that_takes_nothing_leave_the_other_slots_free() {
    // Small documents for the prison, one per delivery slot. Each first attempt holds its slot
    // until it times out (FRAME_TIMEOUT, 30 s), but one agency may have only some of the
    // slots at once.
    a_report_to_probation_passes_documents_stuck_at_the_prison(
        DELIVERY_SLOTS,
        5,
        ("report.txt", b"Case 17"),
    );
}

/// Documents held in memory while they are sent (up to 256 KiB): those to an agency whose node
/// takes nothing hold their bytes until they time out, but only up to that agency's share of
/// the bytes the sender keeps in flight; a case report to another agency goes at once.
#[test]
fn larger_small_documents_to_a_peer_that_takes_nothing_leave_room_for_others() {
    // Twice the sender's bytes in flight in all, in documents of 200 KiB; and a report of the
    // same size: it needs as much room as one of the prison's documents.
    let len = 200 * 1024;
    let count = (2 * liaise_node::daemon::MAX_SMALL_BYTES_IN_FLIGHT) as usize / len;
    a_report_to_probation_passes_documents_stuck_at_the_prison(
        count,
        len,
        ("report.pdf", &vec![b'r'; len]),
    );
}

/// Queues `count` documents of `len` bytes from the city for the stalling prison, waits until
/// their first attempts reach it, then sends probation `report` (file name, bytes): it must be
/// delivered before any attempt stuck at the prison could have given up.
fn a_report_to_probation_passes_documents_stuck_at_the_prison(
    count: usize,
    len: usize,
    report: (&str, &[u8]),
) {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation)];
    let rt = runtime();
    let _guard = rt.enter();
    let stalling = StallingPeer::start(&fed, prison);

    let for_prison = super::nodes::submit_many(&fed, city, PRISON, count, len);
    assert_eq!(for_prison.len(), count);
    fed.wait_outbox(city, Duration::from_secs(10), |_| {
        stalling.offers.load(Ordering::SeqCst) >= 1
    });
    std::thread::sleep(Duration::from_secs(1));
    let sent_at = Instant::now();
    let report = fed.send_text(city, PROBATION, report.0, report.1);
    fed.wait_outbox(city, Duration::from_secs(40), |rows| {
        states(rows, &report) == ["delivered"]
    });
    assert!(
        sent_at.elapsed() < BEFORE_ANY_TIMEOUT,
        "{:?}",
        sent_at.elapsed()
    );
}

/// A receiver that asks to resume past the end of the document breaks a field rule of
/// `Accept` (`wire.md`, `resume_offset ≤ sealed_len`): the sender closes that connection as a
/// protocol violation (code 1), as it would any garbage, and keeps the document queued for a
/// later attempt on a new connection.
#[test]
fn a_receiver_resuming_past_the_end_is_closed_as_a_protocol_violation() {
    let fed = three();
    let [city, prison] = [&fed.agencies[0], &fed.agencies[2]];
    let _node = fed.start(city);
    let rt = runtime();
    let _guard = rt.enter();
    let peer = StallingPeer::start_resuming_at(&fed, prison, 1 << 30);

    let doc = fed.send_text(city, PRISON, "report.txt", b"Case 17: supervision plan");
    wait_for(
        Duration::from_secs(60),
        "the sender to close the connection",
        || !peer.closes.lock().unwrap().is_empty(),
    );
    let closes = peer.closes.lock().unwrap().clone();
    let (code, reason) = closes.first().unwrap();
    assert_eq!(
        *code,
        u64::from(CloseCode::ProtocolViolation.code()),
        "{closes:?}"
    );
    assert!(reason.contains("resume offset past the end"), "{closes:?}");
    assert_eq!(peer.offers.load(Ordering::SeqCst), 1);
    // The attempt failed for a later retry: still queued, one attempt counted.
    fed.wait_outbox(city, Duration::from_secs(10), |rows| {
        states(rows, &doc) == ["queued"]
            && rows
                .iter()
                .any(|r| r["doc_id"] == doc.as_str() && r["attempts"].as_u64() >= Some(1))
    });
}

fn prison_rows(rows: &[Value], docs: &[String]) -> Vec<Value> {
    rows.iter()
        .filter(|r| r["recipient"] == PRISON && docs.iter().any(|d| r["doc_id"] == d.as_str()))
        .cloned()
        .collect()
}

#[test]
fn a_delete_request_to_a_peer_that_takes_nothing_holds_up_no_other_deletion() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [
        fed.start_with(city, &[], Some("city.log")),
        fed.start(probation),
    ];
    let rt = runtime();
    let _guard = rt.enter();
    let stalling = StallingPeer::start(&fed, prison);
    let sb = &fed.sandbox;

    // A document for the city from probation that expires soon.
    std::fs::write(sb.path("short.txt"), b"short-lived").unwrap();
    let short = sb
        .liaise(&[
            "send",
            "--home",
            &probation.home,
            "--to",
            CITY,
            "--expires",
            "6s",
            "--wait",
            "--timeout",
            "30s",
            "short.txt",
        ])
        .ok()
        .trim()
        .to_owned();
    let expires_at = Instant::now() + Duration::from_secs(6);

    // A document for probation and the prison: probation gets it, the prison's stream stalls
    // and takes the last stream it grants.
    std::fs::write(sb.path("report.txt"), b"Case 17").unwrap();
    let doc = send(
        &fed,
        city,
        &format!("{PROBATION},{PRISON}"),
        "report.txt",
        &[],
    );
    fed.wait_outbox(city, Duration::from_secs(30), |rows| {
        rows.iter().any(|r| {
            r["doc_id"] == doc.as_str() && r["recipient"] == PROBATION && r["state"] == "delivered"
        })
    });
    fed.wait_outbox(city, Duration::from_secs(10), |_| {
        stalling.offers.load(Ordering::SeqCst) >= 1
    });

    // The prison is asked first; its request can open no stream. Nothing shows a request
    // waiting for a stream, so the test gives it a moment to start, and checks below (from
    // when it failed) that it did start before probation was asked.
    sb.liaise(&["revoke", "--home", &city.home, &doc, "--recipient", PRISON])
        .ok();
    let revoked_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let probation_asked_at = Instant::now();
    sb.liaise(&[
        "revoke",
        "--home",
        &city.home,
        &doc,
        "--recipient",
        PROBATION,
    ])
    .ok();

    // Probation's deletion receipt comes while the prison's request hangs (the bound only
    // tells that from waiting for the prison's request to time out).
    wait_for(BEFORE_ANY_TIMEOUT, "probation's deletion receipt", || {
        deletion_verified(&fed.json(city, &["custody", &doc]), PROBATION)
    });
    assert!(
        revoked_at.elapsed() < FRAME_TIMEOUT,
        "{:?}",
        revoked_at.elapsed()
    );

    // The city deletes its expired copy on time all the same.
    let deadline = expires_at.saturating_duration_since(Instant::now()) + Duration::from_secs(10);
    wait_for(deadline, "the expired copy deleted", || {
        fed.json(city, &["inbox"])
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["doc_id"] == short.as_str() && r["verification"] == "deleted")
    });

    // The prison's request fails once the stream could not be opened for FRAME_TIMEOUT, and
    // is asked again.
    wait_for(
        Duration::from_secs(45),
        "the prison's request to fail",
        || {
            let log = String::from_utf8_lossy(&sb.read("city.log")).into_owned();
            log.lines().any(|l| {
                l.contains("delete request failed")
                    && l.contains(PRISON)
                    && l.contains("granted none")
            })
        },
    );
    let failed_seen = Instant::now();
    assert!(
        failed_seen - revoked_at >= FRAME_TIMEOUT - Duration::from_secs(1),
        "{:?}",
        failed_seen - revoked_at
    );
    // It failed a whole FRAME_TIMEOUT after it started, so it started before this: before
    // probation was asked, as the scenario needs (and not after the sleep above fell short).
    assert!(
        failed_seen - FRAME_TIMEOUT < probation_asked_at,
        "the prison's request started after probation's: failed {:?} after probation was asked",
        failed_seen - probation_asked_at
    );
    let custody = fed.json(city, &["custody", &doc]);
    assert!(!deletion_verified(&custody, PRISON), "{custody:#}");
    assert!(stalling.connections.load(Ordering::SeqCst) >= 1);
}

fn deletion_verified(custody: &Value, agency: &str) -> bool {
    custody["readers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["agency"] == agency && r["deletion_receipt_verified"] == true)
}

fn wait_for(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Serves at an agency's roster address with its keys: answers the hello and the witness
/// steps, reads one offer and accepts it, then takes no more data and grants no more streams,
/// holding every stream open. It never closes a connection: only the node's side ends one.
struct StallingPeer {
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Offers read.
    offers: Arc<AtomicUsize>,
    /// How the node closed each connection it closed: the code and the reason.
    closes: Arc<Mutex<Vec<(u64, String)>>>,
    _endpoint: quinn::Endpoint,
}

impl StallingPeer {
    fn start(fed: &TestFederation, agency: &Agency) -> Self {
        Self::start_resuming_at(fed, agency, 0)
    }

    /// As [`StallingPeer::start`], answering each offer with `Accept { resume_offset }`.
    fn start_resuming_at(fed: &TestFederation, agency: &Agency, resume_offset: u64) -> Self {
        let home = Home::new(fed.sandbox.path(&agency.home));
        let secrets = home
            .unlock_with(&Passphrase::new(PASSPHRASE.into()).unwrap())
            .unwrap();
        let roster = home.require_roster(Timestamp::now()).unwrap();
        let serial = roster.serial();
        let roster = SharedRoster::new(roster);

        let provider = crypto_provider();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            secrets.transport.to_pkcs8_der().to_vec(),
        ));
        let signer = provider.key_provider.load_private_key(der).unwrap();
        let spki = CertificateDer::from(secrets.transport.public_key().to_spki_der());
        let key = Arc::new(rustls::sign::CertifiedKey::new(vec![spki], signer));
        let verifier = Arc::new(RosterVerifier::new(roster, &provider));
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(
                rustls::server::AlwaysResolvesServerRawPublicKeys::new(key),
            ));
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let mut transport = TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(GRANTED_STREAMS))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(VarInt::from_u32(STALLED_STREAM_WINDOW))
            .receive_window(VarInt::from_u32(1024 * 1024))
            .keep_alive_interval(Some(Duration::from_secs(5)));
        server.transport_config(Arc::new(transport));
        let addr: SocketAddr = fed.address(agency).parse().unwrap();
        let endpoint = quinn::Endpoint::server(server, addr).unwrap();

        let connections = Arc::new(AtomicUsize::new(0));
        let offers = Arc::new(AtomicUsize::new(0));
        let closes = Arc::new(Mutex::new(Vec::new()));
        let (accepting, counted, offered, closed) = (
            endpoint.clone(),
            Arc::clone(&connections),
            Arc::clone(&offers),
            Arc::clone(&closes),
        );
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let Ok(conn) = incoming.await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let peer = Stalling {
                    serial,
                    resume_offset,
                    offers: Arc::clone(&offered),
                    closes: Arc::clone(&closed),
                };
                tokio::spawn(stall(conn, peer));
            }
        });
        Self {
            connections,
            offers,
            closes,
            _endpoint: endpoint,
        }
    }
}

/// One connection: each stream the node opens is answered by its first message (the hello,
/// the witness exchange, an offer accepted and never read on) and then held, unread, until the
/// node closes the connection. Whatever the node does on a stream (it may give up its side
/// of the witness exchange, say when its database is busy), this peer never ends the
/// connection itself: dropping the last handle would close it with code 0 (`Done`), and the
/// node's attempts would fail at once as "closed by peer: 0" instead of timing out.
async fn stall(conn: quinn::Connection, peer: Stalling) {
    let peer = Arc::new(peer);
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let (conn, peer) = (conn.clone(), Arc::clone(&peer));
                tokio::spawn(async move {
                    let held = answer(send, recv, &peer).await;
                    // Held open, the stream keeps its credit: no further stream is granted.
                    conn.closed().await;
                    drop(held);
                });
            }
            Err(quinn::ConnectionError::ApplicationClosed(close)) => {
                let reason = String::from_utf8_lossy(&close.reason).into_owned();
                let mut closes = peer.closes.lock().unwrap();
                closes.push((close.error_code.into_inner(), reason));
                return;
            }
            Err(_) => return,
        }
    }
}

/// What one connection of a [`StallingPeer`] answers with, and where it counts.
struct Stalling {
    serial: u64,
    resume_offset: u64,
    offers: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<(u64, String)>>>,
}

/// Answers one stream by its first message; returns the stream, to be held. A write the
/// node no longer reads fails and is ignored.
async fn answer(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &Stalling,
) -> (quinn::SendStream, quinn::RecvStream) {
    let serial = peer.serial;
    let refused = || Message::CheckpointRefused {
        detail: "no".into(),
    };
    match read_frame(&mut recv).await {
        Some(MessageKind::Hello) => {
            let ack = Message::HelloAck {
                version: PROTOCOL_VERSION,
                roster_serial: serial,
            };
            let _ = send.write_all(&encode_frame(&ack)).await;
            let _ = recv.read_to_end(1024).await;
        }
        // Witnessing: no checkpoint to offer, and the node's refused.
        Some(MessageKind::WitnessRequest) => {
            let mut answer = encode_frame(&refused());
            answer.extend(encode_frame(&Message::WitnessRequest { since: None }));
            let _ = send.write_all(&answer).await;
            read_frame(&mut recv).await;
            let _ = send.write_all(&encode_frame(&refused())).await;
        }
        Some(MessageKind::Offer) => {
            peer.offers.fetch_add(1, Ordering::SeqCst);
            let accept = Message::Accept {
                resume_offset: peer.resume_offset,
            };
            let _ = send.write_all(&encode_frame(&accept)).await;
        }
        // A delete request, say: never answered.
        _ => {}
    }
    (send, recv)
}

/// Reads one frame; returns its kind (the body's first byte).
async fn read_frame(recv: &mut quinn::RecvStream) -> Option<MessageKind> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    recv.read_exact(&mut body).await.ok()?;
    MessageKind::from_tag(*body.first()?)
}
