//! The QUIC endpoint: one UDP socket that accepts peers and dials them, with bounded
//! connections, streams and bytes in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use liaise_protocol::wire::ALPN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

use super::SharedRoster;
use super::presented_key::PresentedKey;
use super::reset_key::StatelessResetKey;
use super::tls::{RosterVerifier, crypto_provider};

/// The most peer connections a node serves at once; one more is closed once its handshake
/// completes (`receive.rs`). One from each member of the largest roster: every node dials
/// every member when it starts, and keep-alives hold the connections open.
pub const MAX_CONNECTIONS: usize = liaise_keys::roster::MAX_MEMBERS;
/// The most concurrent streams a peer may open on one connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// Bytes one stream may have in flight toward this node.
pub const STREAM_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;
/// Bytes one peer (all its streams together) may have in flight toward this node.
pub const PEER_RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;
/// A connection with no traffic for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keep-alives on idle connections, well inside the idle timeout.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// The UDP socket's receive and send buffers asked for (the kernel caps them at
/// `net.core.rmem_max` / `wmem_max`). The default (about 200 KiB) overflows while a busy
/// receiver hashes and writes a large document: every datagram dropped there is taken for
/// congestion and halves the sender's rate.
pub const UDP_BUFFER_LEN: usize = 4 * 1024 * 1024;

/// Binds a QUIC endpoint at `addr` that serves peers and dials them, both pinned to `roster`,
/// presenting `key` (see [`PresentedKey`]) either way, its stateless resets and connection
/// ids made with `reset_key` (see [`StatelessResetKey`]).
pub fn build_endpoint(
    addr: SocketAddr,
    key: &Arc<PresentedKey>,
    roster: &SharedRoster,
    reset_key: StatelessResetKey,
) -> Result<quinn::Endpoint> {
    let provider = crypto_provider();
    // aws-lc seeds its random generator (a tree of jitter-entropy sources, tens of
    // milliseconds of CPU) on first use: done now, not in the first handshake.
    provider
        .secure_random
        .fill(&mut [0u8; 16])
        .map_err(|_| anyhow::anyhow!("the TLS random generator is not available"))?;
    let verifier = Arc::new(RosterVerifier::new(roster.clone(), &provider));
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not available")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::clone(key) as Arc<dyn rustls::server::ResolvesServerCert>);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls).context("TLS config unusable for QUIC")?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(transport_config());
    // A handshake flood costs the attacker a round trip per attempt.
    server.retry_token_lifetime(Duration::from_secs(15));

    let socket = bind_udp(addr).map_err(|e| cannot_listen(addr, &e))?;
    let runtime = quinn::default_runtime().context("no async runtime for the endpoint")?;
    let mut endpoint =
        quinn::Endpoint::new(reset_key.endpoint_config(), Some(server), socket, runtime)
            .with_context(|| format!("cannot listen on {addr}"))?;
    endpoint.set_default_client_config(client_config(key, roster)?);
    Ok(endpoint)
}

/// Why the node cannot listen on `addr`, and what to do.
fn cannot_listen(addr: SocketAddr, e: &std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    let next = match e.kind() {
        ErrorKind::AddrNotAvailable => {
            "it is not an address of this machine (the first --address in agency.toml, unless \
             --listen is given): listen on one of its own with `--listen IP:PORT` (deploy/README.md, \
             Network)"
        }
        ErrorKind::AddrInUse => {
            "another program uses that port (another node for this home?): stop it, or listen \
             elsewhere with `--listen IP:PORT`"
        }
        ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges the node should not have: use a higher port"
        }
        _ => "",
    };
    match next {
        "" => anyhow::anyhow!("cannot listen on {addr}: {e}"),
        next => anyhow::anyhow!("cannot listen on {addr}: {e}; {next}"),
    }
}

/// A UDP socket bound to `addr` with buffers of up to [`UDP_BUFFER_LEN`] (smaller ones, if
/// the system refuses, are kept).
fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER_LEN) {
        tracing::debug!("cannot enlarge the UDP receive buffer: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER_LEN) {
        tracing::debug!("cannot enlarge the UDP send buffer: {e}");
    }
    // The kernel silently caps both at net.core.rmem_max / wmem_max: say so once, with the
    // fix. Linux reports twice what it granted (room for its own bookkeeping).
    let granted = socket
        .recv_buffer_size()
        .unwrap_or(0)
        .min(socket.send_buffer_size().unwrap_or(0))
        / 2;
    if granted < UDP_BUFFER_LEN {
        tracing::warn!(
            granted_kib = granted / 1024,
            "the system limits UDP buffers below {} KiB, which slows large transfers; \
             raise the limits: sysctl -w net.core.rmem_max={UDP_BUFFER_LEN} \
             net.core.wmem_max={UDP_BUFFER_LEN}",
            UDP_BUFFER_LEN / 1024
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The client side: our key as a raw public key, the server's pinned to the roster.
pub fn client_config(
    key: &Arc<PresentedKey>,
    roster: &SharedRoster,
) -> Result<quinn::ClientConfig> {
    let provider = crypto_provider();
    // aws-lc seeds its random generator (a tree of jitter-entropy sources, tens of
    // milliseconds of CPU) on first use: done now, not in the first handshake.
    provider
        .secure_random
        .fill(&mut [0u8; 16])
        .map_err(|_| anyhow::anyhow!("the TLS random generator is not available"))?;
    let verifier = Arc::new(RosterVerifier::new(roster.clone(), &provider));
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not available")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::clone(key) as Arc<dyn rustls::client::ResolvesClientCert>);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    let quic = QuicClientConfig::try_from(tls).context("TLS config unusable for QUIC")?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(transport_config());
    Ok(client)
}

fn transport_config() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS_PER_CONNECTION))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(PEER_RECEIVE_WINDOW))
        .send_window(u64::from(PEER_RECEIVE_WINDOW))
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    Arc::new(t)
}
