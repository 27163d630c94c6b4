//! Forwarding with consent (spec: `originator-control.md`, "Forwarding with consent"): a
//! reader's node asks the originator's node, which decides from the signed policy, records
//! the new reader and signs a consent holding a stanza for it.

use anyhow::Result;
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, Timestamp};
use liaise_protocol::wire::{
    CUSTODY_VERSION, ForwardConsentBody, ForwardRequestBody, Message, Refusal, Signed,
    check_reason, within_request_window,
};
use liaise_protocol::{parse_stored_header, seal_forward_stanza};
use quinn::{RecvStream, SendStream};
use serde_json::json;
use zeroize::Zeroizing;

use super::framed::{FRAME_TIMEOUT, FrameError, write_message_within};
use super::share::{Refused, admit_reader, record_refusal, refuse_if_flooding};
use super::{Node, now_secs};
use crate::store::custody::{self, LogKind, record_event};
use crate::store::custody_key::CustodyKey;
use crate::store::hex;

fn refuse(reason: Refusal, detail: impl Into<String>) -> Refused {
    Refused {
        reason,
        detail: detail.into(),
    }
}

/// What the originator consents to: the forwarder's sections and time, the masked keys.
struct Grant {
    sections: Vec<u8>,
    not_after: Option<u64>,
    masked: Vec<(u8, Zeroizing<[u8; 32]>)>,
}

fn check_signature(
    roster: &Roster,
    me: &AgencyId,
    peer: &AgencyId,
    bytes: &[u8],
    now: u64,
) -> Result<ForwardRequestBody, Refused> {
    let bad = |d: &str| refuse(Refusal::BadRequest, d);
    let signed = Signed::from_bytes(bytes, "forward request").map_err(|_| bad("malformed"))?;
    let claimed: ForwardRequestBody = signed.body_unverified().map_err(|_| bad("malformed"))?;
    if &claimed.originator != me || &claimed.forwarder != peer {
        return Err(bad("the request names other agencies than the connection"));
    }
    let member = roster
        .member(peer)
        .ok_or_else(|| bad("not in the roster"))?;
    let body: ForwardRequestBody = signed
        .verify(&member.signing_key)
        .map_err(|_| bad("the request is not signed by the forwarder's key"))?;
    if check_reason(&body.reason).is_err()
        || !within_request_window(body.requested_at, Timestamp(now))
    {
        return Err(bad("bad reason or time"));
    }
    Ok(body)
}

fn decide(
    conn: &rusqlite::Connection,
    body: &ForwardRequestBody,
    key: &CustodyKey,
    now: u64,
) -> Result<Result<Grant, Refused>> {
    let (doc, _reader) =
        match admit_reader(conn, &body.document_id, &body.forwarder, &body.nonce, now)? {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(Err(refused)),
        };
    let doc_id = hex(&body.document_id);
    let Some(masked) = doc.open_masked_keys(key)? else {
        return Ok(Err(refuse(Refusal::Revoked, "the key share was deleted")));
    };
    let Ok(info) = parse_stored_header(&doc.header) else {
        return Ok(Err(refuse(Refusal::Internal, "stored header unreadable")));
    };
    let Some(policy) = info.recipient(&body.forwarder).map(|r| r.policy.clone()) else {
        return Ok(Err(refuse(
            Refusal::ForwardNotAllowed,
            "only the document's own recipients may forward it",
        )));
    };
    if !policy.forward_to.contains(&body.new_reader) {
        return Ok(Err(refuse(
            Refusal::ForwardNotAllowed,
            format!(
                "the policy does not allow forwarding to {}",
                body.new_reader
            ),
        )));
    }
    // The same forward asked again (its first consent lost on the way) is consented again.
    if let Some(reader) = custody::reader(conn, &doc_id, body.new_reader.as_str())?
        && (reader.forwarded_by.as_deref() != Some(body.forwarder.as_str())
            || reader.revoked_at.is_some())
    {
        return Ok(Err(refuse(
            Refusal::ForwardNotAllowed,
            format!("{} is already a reader", body.new_reader),
        )));
    }
    let Some(masked) = custody::masked_keys_for(&masked, &policy.sections) else {
        return Ok(Err(refuse(Refusal::Internal, "stored keys incomplete")));
    };
    Ok(Ok(Grant {
        sections: policy.sections,
        not_after: policy.not_after.map(|t| t.0),
        masked,
    }))
}

/// The originator's side of a forward-request stream.
pub async fn serve_forward_request(
    node: &Node,
    mut send: SendStream,
    _recv: RecvStream,
    peer: &AgencyId,
    request: Vec<u8>,
) -> Result<(), FrameError> {
    if let Some(refused) =
        refuse_if_flooding(node, &node.log_rate.requests, peer, Some(LogKind::Forward)).await
    {
        let _ = write_message_within(&mut send, &refused, FRAME_TIMEOUT).await;
        let _ = send.finish();
        return Ok(());
    }
    let now = now_secs();
    let roster = node.roster.current();
    let answer = match consent(node, &roster, peer, &request, now).await {
        Ok(consent) => Message::ForwardConsent { consent },
        Err(refused) => Message::Refused {
            reason: refused.reason,
            detail: liaise_protocol::wire::bounded_detail(&refused.detail),
        },
    };
    let _ = write_message_within(&mut send, &answer, FRAME_TIMEOUT).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, send.stopped()).await;
    Ok(())
}

async fn consent(
    node: &Node,
    roster: &Roster,
    peer: &AgencyId,
    request: &[u8],
    now: u64,
) -> Result<Vec<u8>, Refused> {
    let checked = check_signature(roster, &node.me, peer, request, now).and_then(|body| {
        let new_key = roster
            .member(&body.new_reader)
            .and_then(|m| m.current_encryption_key(Timestamp(now)))
            .cloned()
            .ok_or_else(|| {
                refuse(
                    Refusal::ForwardNotAllowed,
                    format!("{} has no valid key in the roster", body.new_reader),
                )
            })?;
        Ok((body, new_key))
    });
    let (body, new_key) = match checked {
        Ok(checked) => checked,
        Err(refused) => {
            // Refused before the decision, which records its own outcome: recorded here,
            // so that the log shows every request considered (`log.md`).
            record_early_refusal(node, peer, request, &refused).await;
            return Err(refused);
        }
    };
    let checked = body.clone();
    let custody_key = std::sync::Arc::clone(&node.custody_key);
    let stanza_key = new_key.clone();
    let decided = node
        .store
        .db
        .write(move |c| {
            // The new reader's stanza is sealed before anything is recorded: the log says
            // "consented", and the reader is added, only for a consent that is sent.
            let grant = decide(c, &checked, &custody_key, now)?.and_then(|g| {
                seal_forward_stanza(
                    &stanza_key,
                    checked.document_id,
                    &checked.new_reader,
                    &g.masked,
                )
                .map(|stanza| (g, stanza))
                .map_err(|_| refuse(Refusal::Internal, "cannot encrypt to the new reader"))
            });
            let doc = hex(&checked.document_id);
            let outcome = match &grant {
                Ok((g, _)) => {
                    custody::add_forwarded_reader(
                        c,
                        &doc,
                        checked.new_reader.as_str(),
                        checked.forwarder.as_str(),
                        g.not_after,
                    )?;
                    "consented".to_owned()
                }
                Err(r) => format!("refused: {}", r.reason.as_str()),
            };
            record_event(
                c,
                LogKind::Forward,
                Some(checked.document_id),
                Some(&checked.new_reader),
                Some(&checked.reason),
                json!({ "forwarder": checked.forwarder.as_str(), "outcome": outcome }),
            )?;
            Ok(grant)
        })
        .await
        .map_err(|e| refuse(Refusal::Internal, format!("{e:#}")))??;
    let (decided, (enc, ciphertext)) = decided;
    let consent = ForwardConsentBody {
        version: CUSTODY_VERSION,
        document_id: body.document_id,
        originator: node.me.clone(),
        forwarder: body.forwarder.clone(),
        new_reader: body.new_reader.clone(),
        sections: decided.sections,
        not_after: decided.not_after.map(Timestamp),
        reason: body.reason.clone(),
        consented_at: Timestamp(now),
        key_fingerprint: new_key.fingerprint(),
        kem: new_key.algorithm(),
        enc,
        ciphertext,
    };
    Ok(Signed::sign(&consent, &node.secrets.signing).to_bytes())
}

/// Records a forward request refused before its decision (a bad signature or time, a new
/// reader with no key): the peer, the document it names (not verified) and why.
async fn record_early_refusal(node: &Node, peer: &AgencyId, request: &[u8], refused: &Refused) {
    let doc = Signed::from_bytes(request, "forward request")
        .and_then(|s| s.body_unverified::<ForwardRequestBody>())
        .ok()
        .map(|b| b.document_id);
    let detail = json!({
        "forwarder": peer.as_str(),
        "outcome": format!("refused: {}", refused.reason.as_str()),
        "detail": refused.detail,
    });
    record_refusal(node, LogKind::Forward, peer, doc, detail).await;
}
