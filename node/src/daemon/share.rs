//! Key shares (spec: `originator-control.md`, "Share requests"): the originator's node decides
//! on each request and releases the share wrapped to the reader, or refuses; the reader's node
//! asks on behalf of `liaise open --reason`.
//!
//! Every request is recorded on both sides with who asked and the reason they gave.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, EncryptionPublicKey, Timestamp};
use liaise_protocol::wire::{
    CUSTODY_VERSION, Message, MessageKind, Refusal, ShareReleaseBody, ShareRequestBody, Signed,
    check_reason, within_request_window,
};
use liaise_protocol::{OriginatorShare, parse_stored_header};
use quinn::{RecvStream, SendStream};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::framed::{FRAME_TIMEOUT, FrameError, write_message_within};
use super::{Node, now_secs};
use crate::log::rate::{Admission, PeerRateLimit, TOO_MANY_REQUESTS};
use crate::store::custody::{self, LogKind, record_event};
use crate::store::custody_key::CustodyKey;
use crate::store::hex;

/// How long a reader waits for the originator's answer.
pub const SHARE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request refused, with what to record and answer.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The reason code.
    pub reason: Refusal,
    /// A short explanation for the reader.
    pub detail: String,
}

fn refuse(reason: Refusal, detail: impl Into<String>) -> Refused {
    Refused {
        reason,
        detail: detail.into(),
    }
}

/// Checks 1 and 2 of the spec: the request decodes, is about this originator, was made and
/// signed by the peer, and is fresh in time. Needs no store.
pub fn check_request_signature(
    roster: &Roster,
    me: &AgencyId,
    peer: &AgencyId,
    bytes: &[u8],
    now: u64,
) -> Result<ShareRequestBody, Refused> {
    let bad = |d: &str| refuse(Refusal::BadRequest, d);
    let signed = Signed::from_bytes(bytes, "share request").map_err(|_| bad("malformed"))?;
    let claimed: ShareRequestBody = signed
        .body_unverified()
        .map_err(|_| bad("malformed body"))?;
    if &claimed.originator != me {
        return Err(bad("the request is addressed to another originator"));
    }
    if &claimed.requester != peer {
        return Err(bad(
            "the request names another agency than the connected node",
        ));
    }
    let member = roster
        .member(peer)
        .ok_or_else(|| bad("the requester is not in the roster"))?;
    let body: ShareRequestBody = signed
        .verify(&member.signing_key)
        .map_err(|_| bad("the request is not signed by the requester's key"))?;
    if check_reason(&body.reason).is_err() {
        return Err(bad(
            "the reason is empty, too long or has control characters",
        ));
    }
    if !within_request_window(body.requested_at, Timestamp(now)) {
        return Err(bad(
            "the request's time is too far from the originator's clock",
        ));
    }
    Ok(body)
}

/// The checks every request a reader makes of the originator shares (share requests and
/// forward requests), against the store inside the write that records the nonce: a fresh
/// nonce, a document this node holds, a reader of it, a share not yet shredded, access neither
/// revoked nor expired. Returns the document and the reader's row, or why not.
pub(crate) fn admit_reader(
    conn: &Connection,
    document_id: &[u8; 16],
    agency: &AgencyId,
    nonce: &[u8; 16],
    now: u64,
) -> Result<Result<(custody::CustodyDocument, custody::CustodyReader), Refused>> {
    let agency = agency.as_str();
    if !custody::nonce_is_fresh(conn, agency, nonce, now)? {
        return Ok(Err(refuse(
            Refusal::Replayed,
            "this request was seen before",
        )));
    }
    let doc_id = hex(document_id);
    let Some(doc) = custody::document(conn, &doc_id)? else {
        return Ok(Err(refuse(
            Refusal::UnknownDocument,
            "the originator holds no such document",
        )));
    };
    // In the spec's order (`originator-control.md`, check 4 then 5): a shredded document is
    // `Revoked` or `Expired` for anyone who asks, before whether the asker is a reader.
    if doc.share.is_none() || doc.masked_keys.is_none() {
        let reason = match doc.shred_reason.as_deref() {
            Some("expired") => Refusal::Expired,
            _ => Refusal::Revoked,
        };
        return Ok(Err(refuse(reason, "the key share was deleted")));
    }
    let Some(reader) = custody::reader(conn, &doc_id, agency)? else {
        return Ok(Err(refuse(
            Refusal::NotRecipient,
            format!("{agency} is not a reader of this document"),
        )));
    };
    if doc.revoked_at.is_some() || reader.revoked_at.is_some() {
        return Ok(Err(refuse(Refusal::Revoked, "access was revoked")));
    }
    if let Some(not_after) = reader.not_after
        && now > not_after
    {
        return Ok(Err(refuse(
            Refusal::Expired,
            format!("access ended at {}", Timestamp(not_after)),
        )));
    }
    Ok(Ok((doc, reader)))
}

/// Checks 3 to 7 of the spec: the share to release, or why not.
pub fn check_request_policy(
    conn: &Connection,
    body: &ShareRequestBody,
    key: &CustodyKey,
    now: u64,
) -> Result<Result<OriginatorShare, Refused>> {
    let (doc, _reader) =
        match admit_reader(conn, &body.document_id, &body.requester, &body.nonce, now)? {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(Err(refused)),
        };
    // The stored header must still parse; it is what the decision rests on.
    if parse_stored_header(&doc.header).is_err() {
        return Ok(Err(refuse(Refusal::Internal, "stored header unreadable")));
    }
    match doc.open_share(key)? {
        Some(share) => Ok(Ok(share)),
        None => Ok(Err(refuse(Refusal::Revoked, "the key share was deleted"))),
    }
}

/// The originator's side of a share-request stream.
pub async fn serve_share_request(
    node: &Node,
    mut send: SendStream,
    _recv: RecvStream,
    peer: &AgencyId,
    request: Vec<u8>,
) -> Result<(), FrameError> {
    if let Some(refused) = refuse_if_flooding(
        node,
        &node.log_rate.requests,
        peer,
        Some(LogKind::ShareRefused),
    )
    .await
    {
        let _ = write_message_within(&mut send, &refused, FRAME_TIMEOUT).await;
        let _ = send.finish();
        return Ok(());
    }
    let now = now_secs();
    let roster = node.roster.current();
    let answer = match check_request_signature(&roster, &node.me, peer, &request, now) {
        Err(refused) => {
            // The claimed document id, for the record only.
            let doc = Signed::from_bytes(&request, "share request")
                .and_then(|s| s.body_unverified::<ShareRequestBody>())
                .ok()
                .map(|b| b.document_id);
            let outcome = json!({ "outcome": refused.reason.as_str(), "detail": refused.detail });
            record_refusal(node, LogKind::ShareRefused, peer, doc, outcome).await;
            refused.into_message()
        }
        Ok(body) => decide_and_release(node, peer, &roster, body, now).await,
    };
    let _ = write_message_within(&mut send, &answer, FRAME_TIMEOUT).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

impl Refused {
    fn into_message(self) -> Message {
        let detail = liaise_protocol::wire::bounded_detail(&self.detail);
        Message::Refused {
            reason: self.reason,
            detail,
        }
    }
}

async fn decide_and_release(
    node: &Node,
    peer: &AgencyId,
    roster: &Roster,
    body: ShareRequestBody,
    now: u64,
) -> Message {
    let checked = body.clone();
    let peer_owned = peer.clone();
    let custody_key = std::sync::Arc::clone(&node.custody_key);
    let reader_key = roster
        .member(peer)
        .and_then(|m| m.current_encryption_key(Timestamp(now)))
        .cloned();
    let decision = node
        .store
        .db
        .write(move |c| {
            // Wrapped before it is recorded: the log says "released" only of a share that is
            // sent, and a refusal for want of the reader's key is logged as one.
            let decision = check_request_policy(c, &checked, &custody_key, now)?
                .and_then(|share| wrap_share(&checked, &share, reader_key.as_ref(), now));
            let (kind, outcome) = match &decision {
                Ok(_) => (LogKind::ShareReleased, "released".to_owned()),
                Err(r) => (LogKind::ShareRefused, r.reason.as_str().to_owned()),
            };
            record_event(
                c,
                kind,
                Some(checked.document_id),
                Some(&peer_owned),
                Some(&checked.reason),
                json!({ "outcome": outcome }),
            )?;
            Ok(decision)
        })
        .await;
    match decision {
        Ok(Ok(release)) => Message::ShareRelease {
            release: Signed::sign(&release, &node.secrets.signing).to_bytes(),
        },
        Ok(Err(refused)) => refused.into_message(),
        Err(e) => {
            tracing::warn!("cannot decide on a share request: {e:#}");
            refuse(Refusal::Internal, "try again later").into_message()
        }
    }
}

/// The share wrapped to the reader's current encryption key (`reader_key`), or why not.
fn wrap_share(
    request: &ShareRequestBody,
    share: &OriginatorShare,
    reader_key: Option<&EncryptionPublicKey>,
    now: u64,
) -> Result<ShareReleaseBody, Refused> {
    let Some(key) = reader_key else {
        // Temporary: it passes once this node holds a roster with the requester's new keys.
        return Err(refuse(
            Refusal::Internal,
            "the originator's roster lists no current encryption key for your agency; it needs \
             the roster with your new keys",
        ));
    };
    ShareReleaseBody::wrap(request, share, key, Timestamp(now))
        .map_err(|_| refuse(Refusal::Internal, "cannot wrap the share"))
}

/// The per-peer rate of requests that are recorded (`log.md`, "How fast peers can make the
/// log grow"): `None` if `peer` may go on, else the answer to send. The first refusal of a
/// run is recorded once, as `kind` (if any: requests whose refusals are never recorded pass
/// none), with no document or reason; later ones are not recorded.
pub(crate) async fn refuse_if_flooding(
    node: &Node,
    bucket: &PeerRateLimit,
    peer: &AgencyId,
    kind: Option<LogKind>,
) -> Option<Message> {
    let record_once = match bucket.admit(peer) {
        Admission::Admitted => return None,
        Admission::Refused { record_once } => record_once,
    };
    tracing::warn!(agency = %peer, "too many requests; refusing without a log entry");
    if let (true, Some(kind)) = (record_once, kind) {
        let (peer, per_minute, per_day) = (peer.clone(), bucket.per_minute(), bucket.per_day());
        let _ = node
            .store
            .db
            .write(move |c| {
                record_event(
                    c,
                    kind,
                    None,
                    Some(&peer),
                    None,
                    json!({
                        "outcome": "too many requests",
                        "detail": format!(
                            "more than {per_minute} requests a minute or {per_day} a day; \
                             further ones are refused unrecorded until the rate drops"
                        ),
                    }),
                )
            })
            .await;
    }
    Some(refuse(Refusal::Internal, TOO_MANY_REQUESTS).into_message())
}

/// Records a request refused before its decision (which records its own outcome): the peer,
/// the document it names (not verified), and `detail` (the outcome, why).
pub(crate) async fn record_refusal(
    node: &Node,
    kind: LogKind,
    peer: &AgencyId,
    doc: Option<[u8; 16]>,
    detail: Value,
) {
    let peer = peer.clone();
    let _ = node
        .store
        .db
        .write(move |c| record_event(c, kind, doc, Some(&peer), None, detail))
        .await;
}

/// What became of a reader's request.
#[derive(Debug)]
pub enum FetchOutcome {
    /// The signed release and the signed request it answers.
    Released {
        /// The request as sent.
        request: Vec<u8>,
        /// The release as received (signature checked).
        release: Vec<u8>,
    },
    /// The originator refused.
    Refused(Refused),
    /// The originator's node could not be reached or did not answer.
    Unreachable(String),
    /// The originator's node refused this node at the handshake (its roster does not accept
    /// this agency's key): asking again does not help.
    NotAdmitted(String),
    /// The originator answered with a release that does not verify (recorded, then returned
    /// as an error: never handed to the CLI).
    BadRelease(anyhow::Error),
}

impl FetchOutcome {
    /// As JSON for the control socket.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Released { request, release } => json!({
                "outcome": "released", "request": hex(request), "release": hex(release),
            }),
            Self::Refused(r) => json!({
                "outcome": "refused", "reason": r.reason.as_str(), "detail": r.detail,
                "code": format!("{:?}", r.reason),
            }),
            Self::Unreachable(detail) => json!({ "outcome": "unreachable", "detail": detail }),
            Self::NotAdmitted(detail) => json!({ "outcome": "not admitted", "detail": detail }),
            Self::BadRelease(e) => json!({ "outcome": "bad release", "detail": format!("{e:#}") }),
        }
    }
}

/// The reader's side: asks `originator` for the share of `document_id`, on behalf of a
/// person who states `reason`. Records the request and its outcome.
pub async fn fetch_share(
    node: &Node,
    document_id: [u8; 16],
    originator: &AgencyId,
    reason: &str,
) -> Result<FetchOutcome> {
    check_reason(reason).map_err(|e| anyhow!("{e}"))?;
    let question = || {
        let body = ShareRequestBody {
            version: CUSTODY_VERSION,
            document_id,
            originator: originator.clone(),
            requester: node.me.clone(),
            reason: reason.to_owned(),
            requested_at: Timestamp::now(),
            nonce: liaise_keys::random::random_bytes::<16>(),
        };
        let request = Signed::sign(&body, &node.secrets.signing).to_bytes();
        let message = Message::ShareRequest {
            request: request.clone(),
        };
        ((body, request), message)
    };
    let expected = &[MessageKind::ShareRelease, MessageKind::Refused];
    let asked = super::peers::ask(node, originator, expected, SHARE_ANSWER_TIMEOUT, question).await;
    let outcome = match asked {
        Err(e) if super::peers::not_admitted(&e) => FetchOutcome::NotAdmitted(format!("{e:#}")),
        Err(e) => {
            node.peers.forget(originator, None).await;
            FetchOutcome::Unreachable(format!("{e:#}"))
        }
        Ok((_, Message::Refused { reason, detail })) => {
            FetchOutcome::Refused(refuse(reason, detail))
        }
        Ok(((body, request), Message::ShareRelease { release })) => {
            match check_release(node, originator, &body, &release) {
                Ok(()) => FetchOutcome::Released { request, release },
                // Recorded too (with the reason the open was asked for), then failed.
                Err(e) => FetchOutcome::BadRelease(e),
            }
        }
        Ok(_) => FetchOutcome::Unreachable("unexpected answer".into()),
    };
    let outcome_name = match &outcome {
        FetchOutcome::Released { .. } => "released".to_owned(),
        FetchOutcome::Refused(r) => format!("refused: {}", r.reason.as_str()),
        FetchOutcome::Unreachable(_) => "originator unreachable".to_owned(),
        FetchOutcome::NotAdmitted(_) => "refused at the handshake".to_owned(),
        FetchOutcome::BadRelease(e) => format!("release did not verify: {e:#}"),
    };
    let (origin, why) = (originator.clone(), reason.to_owned());
    node.store
        .db
        .write(move |c| {
            record_event(
                c,
                LogKind::Open,
                Some(document_id),
                Some(&origin),
                Some(&why),
                json!({ "share": outcome_name }),
            )
        })
        .await?;
    match outcome {
        FetchOutcome::BadRelease(e) => Err(e),
        outcome => Ok(outcome),
    }
}

fn check_release(
    node: &Node,
    originator: &AgencyId,
    request: &ShareRequestBody,
    release: &[u8],
) -> Result<()> {
    let roster = node.roster.current();
    let member = roster
        .member(originator)
        .with_context(|| format!("{originator} is not in the roster"))?;
    let body: ShareReleaseBody = Signed::from_bytes(release, "share release")?
        .verify(&member.signing_key)
        .context("the share release does not verify")?;
    if !body.answers(request) {
        bail!("the share release does not answer this request");
    }
    // The share is wrapped to this agency's current key. After `liaise keys rotate` that can
    // be a key the key file holds but this node, started before the rotation, did not load:
    // the CLI unwraps with the key file; here only a key the node holds is tried.
    if body.wrapped_to_one_of(&node.secrets.encryption) {
        body.unwrap_for(request, &node.secrets.encryption)
            .context("the share release does not answer this request")?;
    }
    Ok(())
}

/// For the CLI: verifies a release fetched by its node and unwraps the share with the
/// agency's own keys.
pub fn unwrap_fetched(
    roster: &Roster,
    originator: &AgencyId,
    request: &[u8],
    release: &[u8],
    keys: &[liaise_keys::EncryptionSecretKey],
) -> Result<OriginatorShare> {
    let request: ShareRequestBody = Signed::from_bytes(request, "share request")?
        .body_unverified()
        .context("the node returned a malformed request")?;
    let member = roster
        .member(originator)
        .with_context(|| format!("{originator} is not in the roster"))?;
    let body: ShareReleaseBody = Signed::from_bytes(release, "share release")?
        .verify(&member.signing_key)
        .context("the share release does not verify")?;
    Ok(body.unwrap_for(&request, keys)?)
}
