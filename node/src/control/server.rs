//! The node side of the control socket.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use liaise_keys::roster::Roster;
use liaise_protocol::DocumentInfo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::{MAX_REQUEST_LEN, Request, checked_socket_path, socket_path, staging_dir};

/// Control connections served at once; more wait to be accepted (each holds a task and a
/// file descriptor).
pub const MAX_CONTROL_CONNECTIONS: usize = 256;
/// Longest wait for a request's line once a client connected: a client that sends nothing
/// does not hold its connection for ever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause after an `accept` that failed (out of file descriptors, say) before the next:
/// the socket keeps serving once the cause is gone, without spinning while it lasts.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);
use crate::daemon::{DEFAULT_DELIVERY_WINDOW, Node, RosterSignerCheck};
use crate::fsutil::create_private_dir;
use crate::home::Home;
use crate::store::hashing_chunks::HashingChunks;
use crate::store::held::{self, INLINE_MAX_LEN};
use crate::store::holdings;
use crate::store::records::{self, NewOutgoing};
use crate::store::{HashingReader, hex, parse_hex};

/// Fails if a node already answers on `home`'s control socket: checked before the node
/// opens its store or binds its address, so a second `node run` on the same home says so,
/// and not that the address is in use.
pub fn refuse_if_running(home: &Home) -> Result<()> {
    if std::os::unix::net::UnixStream::connect(checked_socket_path(home)?).is_ok() {
        bail!(
            "a node is already running for {} (stop it first; `liaise status --home {}` shows it)",
            home.root().display(),
            home.root().display()
        );
    }
    Ok(())
}

/// Binds the socket and serves it in a task.
pub async fn serve(node: Arc<Node>) -> Result<JoinHandle<()>> {
    let path = checked_socket_path(&node.home)?;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            bail!(
                "a node is already running for {}",
                node.home.root().display()
            );
        }
        fs::remove_file(&path)
            .with_context(|| format!("cannot remove stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            // Accepted only while a slot is free; the others wait in the socket's backlog.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("control socket: cannot accept a connection: {e}");
                    drop(slot);
                    tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                    continue;
                }
            };
            let node = Arc::clone(&node);
            tokio::spawn(async move {
                if let Err(e) = handle(&node, stream).await {
                    tracing::debug!("control connection: {e:#}");
                }
                drop(slot);
            });
        }
    }))
}

/// Serves only a client running as the node's own user: `peer` is the client's uid as the
/// kernel reports it (`SO_PEERCRED`), not as the client claims.
fn owner_only(peer: std::io::Result<u32>) -> Result<(), String> {
    let own = rustix::process::geteuid().as_raw();
    match peer {
        Ok(uid) if uid == own => Ok(()),
        Ok(uid) => Err(format!(
            "refused a client running as uid {uid}: the control socket serves only the \
             node's own user (uid {own}); run the command as that user"
        )),
        Err(e) => Err(format!(
            "refused a client whose user cannot be checked: {e}"
        )),
    }
}

/// Removes the socket file at shutdown.
pub fn remove_socket(home: &Home) {
    let _ = fs::remove_file(socket_path(home));
}

async fn handle(node: &Arc<Node>, stream: UnixStream) -> Result<()> {
    // The socket's folder and mode keep other users out; a changed mode must not let them in.
    let owner = owner_only(stream.peer_cred().map(|c| c.uid()));
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST_LEN as u64);
    let mut line = String::new();
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .context("no request arrived in time")??;
    // What follows the line (only `submit_sealed` has a body) has its own limit.
    let mut body = reader.into_inner();
    let request = serde_json::from_str::<Request>(&line);
    let answer = match (owner, request) {
        // Refused only once the request is read: a client still writing its document into
        // a socket nobody reads would see a broken pipe, not the refusal.
        (Err(refusal), request) => {
            tracing::warn!("control socket: {refusal}");
            if let Ok(Request::SubmitSealed { len }) = request {
                let _ = read_body(&mut body, len).await;
            }
            json!({ "ok": false, "error": refusal })
        }
        (Ok(()), Ok(request)) => match dispatch(node, request, &mut body).await {
            Ok(result) => json!({ "ok": true, "result": result }),
            Err(e) => json!({ "ok": false, "error": format!("{e:#}") }),
        },
        (Ok(()), Err(e)) => json!({ "ok": false, "error": format!("bad request: {e}") }),
    };
    let mut out = serde_json::to_vec(&answer)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

async fn dispatch<R: AsyncRead + Unpin>(
    node: &Arc<Node>,
    request: Request,
    body: &mut R,
) -> Result<Value> {
    match request {
        Request::Submit { path } => submit(node, &path).await,
        Request::SubmitSealed { len } => {
            let sealed = read_body(body, len).await?;
            submit_sealed(node, sealed).await
        }
        Request::Outbox => outbox(node, node.store.db.read(records::list_outbox).await?),
        Request::OutboxOf { doc_id } => outbox(
            node,
            node.store
                .db
                .read(move |c| records::outbox_of(c, &doc_id))
                .await?,
        ),
        Request::Inbox => Ok(serde_json::to_value(
            node.store.db.read(records::list_inbox).await?,
        )?),
        Request::Receipts { doc_id } => receipts(node, &doc_id).await,
        Request::Status { check } => status(node, check).await,
        Request::FetchShare {
            doc_id,
            originator,
            reason,
        } => {
            let id = parse_hex::<16>(&doc_id)
                .with_context(|| format!("`{doc_id}` is not a document id"))?;
            let originator = liaise_keys::AgencyId::new(&originator)
                .with_context(|| format!("`{originator}` is not an agency id"))?;
            let outcome = crate::daemon::share::fetch_share(node, id, &originator, &reason).await?;
            Ok(outcome.to_json())
        }
        Request::Forward {
            doc_id,
            to,
            reason,
            deliver,
        } => {
            let to = liaise_keys::AgencyId::new(&to)
                .with_context(|| format!("`{to}` is not an agency id"))?;
            crate::daemon::forwarder::request_forward(node, &doc_id, &to, &reason, deliver).await
        }
        Request::Custody { doc_id } => crate::daemon::deletion::custody_status(node, &doc_id).await,
        Request::AdoptRoster => {
            let path = node.home.roster_path();
            let file = tokio::task::spawn_blocking(move || {
                crate::fsutil::read_limited(&path, liaise_keys::roster::MAX_ROSTER_LEN, "roster")
            })
            .await??;
            crate::daemon::gossip::adopt(node, file, "roster import").await;
            Ok(serde_json::json!({ "serial": node.roster.current().serial() }))
        }
        Request::Revoke { doc_id, recipient } => {
            let recipient = recipient
                .map(|r| {
                    liaise_keys::AgencyId::new(&r)
                        .with_context(|| format!("`{r}` is not an agency id"))
                })
                .transpose()?;
            crate::daemon::deletion::revoke(node, &doc_id, recipient).await
        }
        Request::DeleteReceived { doc_id, from } => {
            crate::daemon::operator_deletion::delete_received(node, &doc_id, from.as_deref()).await
        }
    }
}

async fn submit(node: &Node, path: &Path) -> Result<Value> {
    // Only files the CLI put into our private staging folder.
    let staging = fs::canonicalize(staging_dir(&node.home))?;
    let file = fs::canonicalize(path).with_context(|| format!("cannot find {}", path.display()))?;
    if file.parent() != Some(staging.as_path()) {
        bail!("submit takes only files in {}", staging.display());
    }
    let roster = node.roster.current();
    let checked = file.clone();
    // Verified and hashed in the same pass, in one trip off the runtime. A small document is
    // read whole, to be kept in the database with its outbox row; a larger one is fsynced,
    // to be moved into the blob folder.
    let (info, hash, len, inline) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut f = fs::File::open(&checked)?;
        let size = f.metadata()?.len();
        if size <= INLINE_MAX_LEN {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            (&mut f).take(INLINE_MAX_LEN + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > INLINE_MAX_LEN {
                bail!(
                    "{} grew while it was read; submit it again",
                    checked.display()
                );
            }
            let (info, hash, len) = verify_sealed(&bytes, &roster)?;
            return Ok((info, hash, len, Some(bytes)));
        }
        // The signature check and the content hash each read every byte: on two threads.
        let mut reader = HashingChunks::new(f)?;
        let info = liaise_protocol::verify_buffered(&mut reader, &RosterSignerCheck(&roster))
            .context("the sealed document does not verify")?;
        // The stored blob is every byte of the file, as before.
        let (hash, len, file) = reader.finish()?;
        file.sync_all()?;
        Ok((info, hash, len, None))
    })
    .await??;
    // Before a large one is moved into the blob folder: a blob without its outbox row would
    // stay for good, outside deletion and expiry.
    sealed_here(node, &info)?;
    let (hash, len) = match inline {
        Some(_) => (hash, len),
        None => {
            let blobs = node.store.blobs.clone();
            blobs.adopt_hashed_grouped(file.clone(), hash, len).await?
        }
    };
    let staged = inline.is_some().then_some(file);
    queue(node, &info, hash, len, inline, staged).await
}

/// Outbox lines as the CLI shows them: a delivery being sent is `sending`, with its bytes.
fn outbox(node: &Node, rows: Vec<records::OutboxRow>) -> Result<Value> {
    let sending = node.sending.lock().map(|s| s.clone()).unwrap_or_default();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let live = sending
                .get(&(row.doc_id.clone(), row.recipient.clone()))
                .copied();
            let mut v = serde_json::to_value(&row).unwrap_or(Value::Null);
            if let (Some(bytes), Some(obj)) = (live, v.as_object_mut()) {
                obj.insert("state".into(), json!("sending"));
                obj.insert("bytes_sent".into(), json!(bytes));
            }
            v
        })
        .collect();
    Ok(json!(rows))
}

/// Longest wait for the body of a `submit_sealed` request once its line has arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `len` bytes that follow a `submit_sealed` line.
async fn read_body<R: AsyncRead + Unpin>(body: &mut R, len: u64) -> Result<Vec<u8>> {
    if len > INLINE_MAX_LEN {
        bail!(
            "a sealed document of {len} bytes is too large to hand over on the control socket \
             (at most {INLINE_MAX_LEN}); submit it as a file in the staging folder"
        );
    }
    // Grown as bytes arrive, not reserved at the announced length before any came.
    let mut bytes = Vec::new();
    tokio::time::timeout(BODY_TIMEOUT, body.take(len).read_to_end(&mut bytes))
        .await
        .context("the sealed document did not arrive in time")??;
    if bytes.len() as u64 != len {
        bail!(
            "the sealed document ended after {} of {len} bytes",
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Queues a small sealed document handed over on the socket. It is checked here, on the
/// runtime: bytes in memory (at most 256 KiB), a parse and a signature check, well under a
/// millisecond.
async fn submit_sealed(node: &Node, sealed: Vec<u8>) -> Result<Value> {
    let roster = node.roster.current();
    let (info, hash, len) = verify_sealed(&sealed, &roster)?;
    sealed_here(node, &info)?;
    queue(node, &info, hash, len, Some(sealed), None).await
}

/// A node sends only what its own agency sealed.
fn sealed_here(node: &Node, info: &DocumentInfo) -> Result<()> {
    if info.sender != node.me {
        bail!(
            "the document was sealed by {}, not by this node's agency {}",
            info.sender,
            node.me
        );
    }
    Ok(())
}

/// Verifies a sealed document held in memory against `roster`; returns what it says, its
/// content hash and its length.
fn verify_sealed(sealed: &[u8], roster: &Roster) -> Result<(DocumentInfo, [u8; 32], u64)> {
    let mut reader = HashingReader::new(sealed);
    let info = liaise_protocol::verify(&mut reader, &RosterSignerCheck(roster))
        .context("the sealed document does not verify")?;
    let (hash, len, _) = reader.finish()?;
    Ok((info, hash, len))
}

/// Queues a verified document this node's agency sealed, for its recipients. A small one
/// (`inline`) is kept in the database with its outbox rows; `staged` is its staging file,
/// removed once that is committed. A larger one is in the blob folder already.
async fn queue(
    node: &Node,
    info: &DocumentInfo,
    hash: [u8; 32],
    len: u64,
    inline: Option<Vec<u8>>,
    staged: Option<PathBuf>,
) -> Result<Value> {
    let recipients: Vec<_> = info
        .recipients
        .iter()
        .filter(|r| r.agency != node.me)
        .collect();
    let now = crate::daemon::now_secs();
    let default_expiry = now.saturating_add(DEFAULT_DELIVERY_WINDOW.as_secs());
    let doc = NewOutgoing {
        doc_id: hex(&info.document_id.0),
        blob: hex(&hash),
        sealed_len: len,
        label: info.label.clone(),
        created: info.created.0,
        queued_at: now,
        recipients: recipients
            .iter()
            .map(|r| {
                let expiry = r
                    .policy
                    .not_after
                    .map_or(default_expiry, |t| t.0.min(default_expiry));
                (r.agency.as_str().to_owned(), expiry)
            })
            .collect(),
    };
    let result = json!({
        "doc_id": doc.doc_id,
        "sealed_len": len,
        "recipients": doc.recipients.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
    });
    node.store
        .db
        .write(move |c| {
            if let Some(bytes) = &inline {
                held::put(c, &hash, bytes)?;
            }
            records::queue_document(c, &doc)
        })
        .await?;
    if let Some(staged) = staged {
        // Committed with its outbox row; the staging copy is no longer needed (and is
        // removed at the next start if this fails).
        let _ = fs::remove_file(&staged);
    }
    node.outbox_wake.notify_one();
    Ok(result)
}

async fn receipts(node: &Node, doc_id: &str) -> Result<Value> {
    let (roster, doc_id) = (node.roster.current(), doc_id.to_owned());
    node.store
        .db
        .read(move |c| super::receipts::report(c, &roster, &doc_id))
        .await
}

async fn status(node: &Arc<Node>, check: bool) -> Result<Value> {
    let roster = node.roster.current();
    let (queued, delivered, undeliverable, inbox) =
        node.store.db.read(records::queue_sizes).await?;
    let kept = node.store.db.read(holdings::by_agency).await?;
    let quota = node.options.agency_quota.limit(node.store.blobs.dir());
    let others: Vec<liaise_keys::AgencyId> = roster
        .body()
        .members
        .iter()
        .map(|m| m.id.clone())
        .filter(|id| *id != node.me)
        .collect();
    // With `check`, every other member is dialled now, all at once; each dial gives up after
    // its own timeout per address.
    let mut errors: std::collections::HashMap<String, String> = Default::default();
    // With its own roster expired, no peer can be reached, and not through any fault of
    // theirs: say so for each instead of dialling (which the peers would refuse).
    let expired = crate::transport::roster_in_force(&roster, liaise_keys::Timestamp::now()).err();
    if let (true, Some(expired)) = (check, &expired) {
        for agency in &others {
            errors.insert(
                agency.as_str().to_owned(),
                format!("not dialled: {expired:#} (`liaise roster import`)"),
            );
        }
    } else if check {
        let mut dials = tokio::task::JoinSet::new();
        for agency in others.iter().cloned() {
            let node = Arc::clone(node);
            dials.spawn(async move {
                let outcome = node.peers.get(&node, &agency).await;
                // A connection already open counts as contact now, as a fresh dial does.
                if outcome.is_ok() {
                    node.set_reachable(agency.as_str(), true);
                }
                (agency, outcome.err().map(|e| format!("{e:#}")))
            });
        }
        while let Some(joined) = dials.join_next().await {
            if let Ok((agency, Some(error))) = joined {
                errors.insert(agency.as_str().to_owned(), error);
            }
        }
    }
    let known = node
        .reachability
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    // Every other member, in the roster's order: what the last contact showed, or nothing yet.
    let peers: Vec<Value> = others
        .iter()
        .map(|agency| {
            let seen = known.get(agency.as_str());
            json!({
                "agency": agency.as_str(),
                "reachable": seen.map(|(reachable, _)| *reachable),
                "checked_at": seen.map(|(_, at)| *at),
                "error": errors.get(agency.as_str()),
                "kept_bytes": kept.get(agency.as_str()).map_or(0, |h| h.bytes),
                "received_documents": kept.get(agency.as_str()).map_or(0, |h| h.copies),
                "quota_used_bytes": kept.get(agency.as_str()).map_or(0, |h| {
                    crate::daemon::quota::charged(h.bytes, h.copies)
                }),
            })
        })
        .collect();
    Ok(json!({
        "agency": node.me.as_str(),
        "listen": node.endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        "roster_serial": roster.serial(),
        "roster_expires_at": roster.body().expires_at.0,
        "roster_expired": roster.body().expires_at.0 <= crate::daemon::now_secs(),
        "key_warnings": crate::daemon::roster_expiry::node_key_warnings(
            node,
            &roster,
            crate::daemon::now_secs(),
        ),
        "members": roster.body().members.len(),
        "peers": peers,
        "outbox": { "queued": queued, "delivered": delivered, "undeliverable": undeliverable },
        "inbox": inbox,
        "agency_quota_bytes": quota,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::owner_only;

    #[test]
    fn only_the_nodes_own_user_is_served() {
        let own = rustix::process::geteuid().as_raw();
        assert_eq!(owner_only(Ok(own)), Ok(()));
        let other = own.wrapping_add(1);
        let refusal = owner_only(Ok(other)).unwrap_err();
        assert!(refusal.contains(&format!("uid {other}")), "{refusal}");
        assert!(
            refusal.contains("run the command as that user"),
            "{refusal}"
        );
        let unknown = owner_only(Err(std::io::Error::other("no credentials"))).unwrap_err();
        assert!(unknown.contains("cannot be checked"), "{unknown}");
    }
}
