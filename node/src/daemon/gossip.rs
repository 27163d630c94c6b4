//! Roster gossip: on every new connection both nodes state their roster serials in
//! `Hello`/`HelloAck`; the one with the older roster gets the newer file and adopts it if it
//! passes every roster check (threshold of the held stewards and of the new ones, higher
//! serial, not expired).

use anyhow::{Context, Result, bail};
use liaise_keys::Timestamp;
use liaise_protocol::wire::{Message, MessageKind, PROTOCOL_VERSION};
use quinn::{RecvStream, SendStream};

use super::framed::{read_message, write_message};
use super::{Node, now_secs};
use crate::store::{Store, records};
use crate::transport::SharedRoster;

const AFTER_HELLO_ACK: &[MessageKind] = &[MessageKind::RosterFile];
const AFTER_HELLO_SERVER: &[MessageKind] = &[MessageKind::RosterRequest, MessageKind::RosterFile];

/// Records the roster the node starts with in the roster history.
pub async fn record_current(store: &Store, roster: &SharedRoster) -> Result<()> {
    let current = roster.current();
    let serial = current.serial();
    let file = current.file_bytes().to_vec();
    store
        .db
        .write(move |c| records::roster_adopted(c, serial, "local", &file, now_secs()))
        .await
}

/// The client's side of the first stream on a new connection. Getting the `HelloAck` is what
/// confirms the server accepted our key.
pub async fn client_hello(node: &Node, connection: &quinn::Connection, peer: &str) -> Result<()> {
    let (mut send, mut recv) = connection.open_bi().await.context("cannot open a stream")?;
    let ours = node.roster.current().serial();
    write_message(
        &mut send,
        &Message::Hello {
            version: PROTOCOL_VERSION,
            roster_serial: ours,
        },
    )
    .await?;
    let ack = read_message(&mut recv, &[MessageKind::HelloAck])
        .await
        .context("the peer did not accept this node (is our key in its roster?)")?;
    let Message::HelloAck {
        roster_serial: theirs,
        ..
    } = ack
    else {
        bail!("unexpected answer to hello");
    };
    if theirs > ours {
        write_message(&mut send, &Message::RosterRequest).await?;
        if let Message::RosterFile { file } = read_message(&mut recv, AFTER_HELLO_ACK).await? {
            adopt(node, &file, peer).await;
        }
    } else if ours > theirs {
        let file = node.roster.current().file_bytes().to_vec();
        write_message(&mut send, &Message::RosterFile { file }).await?;
    }
    let _ = send.finish();
    let _ = send.stopped().await;
    Ok(())
}

/// The server's side, after reading `Hello`.
pub async fn serve_hello(
    node: &Node,
    mut send: SendStream,
    mut recv: RecvStream,
    peer: &str,
) -> Result<()> {
    let ours = node.roster.current().serial();
    write_message(
        &mut send,
        &Message::HelloAck {
            version: PROTOCOL_VERSION,
            roster_serial: ours,
        },
    )
    .await?;
    // At most one roster message follows, then the client finishes the stream.
    match read_message(&mut recv, AFTER_HELLO_SERVER).await {
        Ok(Message::RosterRequest) => {
            let file = node.roster.current().file_bytes().to_vec();
            write_message(&mut send, &Message::RosterFile { file }).await?;
        }
        Ok(Message::RosterFile { file }) => adopt(node, &file, peer).await,
        Ok(_) => {}
        Err(e @ super::framed::FrameError::Violation(_)) => return Err(e.into()),
        Err(_) => {} // the client finished the stream: nothing to exchange
    }
    let _ = send.finish();
    Ok(())
}

/// Adopts `file` if it is a valid successor of the held roster; logs and ignores it otherwise.
pub async fn adopt(node: &Node, file: &[u8], source: &str) {
    let current = node.roster.current();
    let next = match current.accept_update(file, Timestamp::now()) {
        Ok(next) => next,
        Err(e) => {
            tracing::warn!(peer = source, "refused roster from peer: {e}");
            return;
        }
    };
    if let Err(e) = node.home.store_roster(&next) {
        tracing::warn!("cannot store the new roster: {e:#}");
        return;
    }
    let serial = next.serial();
    let bytes = next.file_bytes().to_vec();
    node.roster.replace(next);
    tracing::info!(serial, peer = source, "adopted a newer roster");
    let source = source.to_owned();
    let _ = node
        .store
        .db
        .write(move |c| records::roster_adopted(c, serial, &source, &bytes, now_secs()))
        .await;
}
