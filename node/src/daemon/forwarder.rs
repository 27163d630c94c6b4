//! The forwarder's side of forwarding with consent (`liaise forward`, spec:
//! `originator-control.md`): ask the originator of a document this node received for consent
//! to forward it to a new reader, then either hand the forwarded document to the CLI (`--out`)
//! or deliver it node to node like any sent document.

use std::io::{Cursor, Read};

use anyhow::{Context, Result, anyhow, bail};
use liaise_keys::{AgencyId, Timestamp};
use liaise_protocol::forward_prefix;
use liaise_protocol::wire::{
    CUSTODY_VERSION, ForwardConsentBody, ForwardRequestBody, Message, MessageKind, Signed,
    check_reason,
};
use serde_json::{Value, json};

use super::share::SHARE_ANSWER_TIMEOUT;
use super::{DEFAULT_DELIVERY_WINDOW, Node, now_secs};
use crate::store::custody::{LogKind, record_event};
use crate::store::forwards::{NewForward, conflict, queue_forward};
use crate::store::{hex, parse_hex};

/// A document this node received and still holds.
struct Received {
    originator: AgencyId,
    blob: [u8; 32],
    sealed_len: u64,
    label: String,
    created: u64,
}

/// Asks the originator of received document `doc_id` for consent to forward it to `to`.
/// With `deliver`, queues the forwarded document for `to`'s node; otherwise returns the
/// consent and the stored sealed document's content hash for the CLI to write the file.
pub async fn request_forward(
    node: &Node,
    doc_id: &str,
    to: &AgencyId,
    reason: &str,
    deliver: bool,
) -> Result<Value> {
    check_reason(reason).map_err(|e| anyhow!("--reason: {e}"))?;
    let id = parse_hex::<16>(doc_id).with_context(|| format!("`{doc_id}` is not a document id"))?;
    if to == &node.me {
        bail!("{to} is this node's own agency; forward to another agency");
    }
    // Queued or delivered already: said as it is. A forward given up (undeliverable) is
    // asked for again below, and replaces the one given up.
    if deliver
        && let Some(state) = already_queued(node, id, to).await?
        && state.1 != "undeliverable"
    {
        return Ok(json!({
            "doc_id": hex(&id),
            "to": to.as_str(),
            "originator": state.0,
            "queued": true,
            "state": state.1,
        }));
    }
    let held = held_document(node, id)
        .await?
        .with_context(|| format!("this node holds no received document {doc_id} to forward"))?;
    if sealed_offline(node, &held).await? {
        bail!(
            "document {doc_id} was sealed --offline: its readers hold its whole key and {} \
             keeps no share of it, so it cannot be forwarded with consent; ask {} to send it \
             to {to}",
            held.originator,
            held.originator
        );
    }
    let (doc, recipient, sealed) = (hex(&id), to.as_str().to_owned(), hex(&held.blob));
    if deliver
        && let Some(why) = node
            .store
            .db
            .read(move |c| conflict(c, &doc, &recipient, &sealed))
            .await?
    {
        bail!("{why}; forward it with --out FILE instead");
    }
    let (consent, body) = ask_consent(node, id, &held.originator, to, reason).await?;
    let (to_owned, why, from) = (to.clone(), reason.to_owned(), held.originator.clone());
    node.store
        .db
        .write(move |c| {
            record_event(
                c,
                LogKind::Forward,
                Some(id),
                Some(&to_owned),
                Some(&why),
                json!({ "originator": from.as_str(), "outcome": "consented" }),
            )
        })
        .await?;
    if !deliver {
        return Ok(json!({
            "consent": hex(&consent),
            "sealed_blob": hex(&held.blob),
            "originator": held.originator.as_str(),
        }));
    }
    let sealed = node.store.held(held.blob, held.sealed_len).await?;
    let blobs = node.store.blobs.clone();
    let prefix = forward_prefix(&consent);
    let (hash, len) = tokio::task::spawn_blocking(move || {
        let input = sealed.open().context("cannot read the stored document")?;
        blobs.put_reader(Cursor::new(prefix).chain(input))
    })
    .await
    .context("the store task failed")??;
    let now = now_secs();
    let window = now.saturating_add(DEFAULT_DELIVERY_WINDOW.as_secs());
    let forward = NewForward {
        doc_id: hex(&id),
        recipient: to.as_str().to_owned(),
        blob: hex(&hash),
        len,
        sealed_blob: hex(&held.blob),
        sealed_len: held.sealed_len,
        label: held.label,
        created: held.created,
        queued_at: now,
        expires_at: body.not_after.map_or(window, |t| t.0.min(window)),
    };
    // Checked again in the transaction that queues it: a deletion of this node's copy (its
    // operator's, or on the originator's request) that landed while the forward was being
    // written did not see it, and must not be outlived by it.
    let (doc, originator) = (hex(&id), held.originator.as_str().to_owned());
    let queued = node
        .store
        .db
        .write(move |c| {
            if let Some((at, reason)) = crate::store::custody::inbox_deletion(c, &doc, &originator)?
            {
                bail!(
                    "this node's copy of {doc} was deleted at {} ({}); it cannot be forwarded",
                    Timestamp(at),
                    crate::store::custody::deletion_why(&reason)
                );
            }
            queue_forward(c, &forward)
        })
        .await;
    match queued {
        Err(e) => {
            let _ = std::fs::remove_file(node.store.blobs.path(&hash));
            return Err(e);
        }
        // The forwarded document of the forward it replaced (under an older consent).
        Ok(Some(replaced)) if replaced != hex(&hash) => {
            if let Some(old) = parse_hex::<32>(&replaced) {
                let _ = std::fs::remove_file(node.store.blobs.path(&old));
            }
        }
        Ok(_) => {}
    }
    node.outbox_wake.notify_one();
    Ok(json!({
        "doc_id": hex(&id),
        "to": to.as_str(),
        "originator": held.originator.as_str(),
        "forwarded_len": len,
        "queued": true,
    }))
}

/// The originator and outbox state of a forward of `id` to `to` queued before, if any.
async fn already_queued(
    node: &Node,
    id: [u8; 16],
    to: &AgencyId,
) -> Result<Option<(String, String)>> {
    let (doc, to) = (hex(&id), to.as_str().to_owned());
    node.store
        .db
        .read(move |c| {
            use rusqlite::OptionalExtension;
            Ok(c.query_row(
                "SELECT i.sender, o.state FROM outbox_forwards f
                 JOIN outbox o ON o.doc_id = f.doc_id AND o.recipient = f.recipient
                 JOIN inbox i ON i.doc_id = f.doc_id AND i.forwarded_by IS NULL
                 WHERE f.doc_id = ?1 AND f.recipient = ?2 LIMIT 1",
                [doc, to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
}

/// Whether a received document was sealed `--offline` (its header says so; it was verified
/// when it arrived): its originator holds no share, so could never consent to a forward.
async fn sealed_offline(node: &Node, held: &Received) -> Result<bool> {
    let sealed = node.store.held(held.blob, held.sealed_len).await?;
    tokio::task::spawn_blocking(move || {
        let input = sealed.open().context("cannot read the stored document")?;
        let info = liaise_protocol::danger_read_unverified_header(std::io::BufReader::new(input))
            .context("the stored document's header does not parse")?;
        Ok(info.custody == liaise_protocol::KeyCustody::Offline)
    })
    .await
    .context("the store task failed")?
}

async fn held_document(node: &Node, id: [u8; 16]) -> Result<Option<Received>> {
    let doc = hex(&id);
    let row = node
        .store
        .db
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT i.sender, i.blob, i.sealed_len, i.label, i.created
                 FROM inbox i LEFT JOIN inbox_deletions d
                 ON d.doc_id = i.doc_id AND d.sender = i.sender
                 WHERE i.doc_id = ?1 AND d.doc_id IS NULL AND i.forwarded_by IS NULL
                 ORDER BY i.sender LIMIT 2",
            )?;
            let rows = stmt
                .query_map([doc], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await?;
    // Ids are chosen by their senders: two members may have used the same one, and then the
    // id alone does not say which document (and whose consent) is meant.
    if let [first, second] = row.as_slice() {
        anyhow::bail!(
            "document id {} was received from {} and from {}; it does not say which document \
             to forward",
            hex(&id),
            first.0,
            second.0
        );
    }
    let row = row.into_iter().next();
    let Some((originator, blob, sealed_len, label, created)) = row else {
        return Ok(None);
    };
    Ok(Some(Received {
        originator: AgencyId::new(&originator).context("corrupt sender in the inbox")?,
        blob: parse_hex::<32>(&blob).context("corrupt blob name")?,
        sealed_len: u64::try_from(sealed_len).unwrap_or_default(),
        label,
        created: u64::try_from(created).unwrap_or_default(),
    }))
}

/// Sends the forward request to the originator; returns its verified consent (bytes and body).
async fn ask_consent(
    node: &Node,
    id: [u8; 16],
    originator: &AgencyId,
    to: &AgencyId,
    reason: &str,
) -> Result<(Vec<u8>, ForwardConsentBody)> {
    let question = || {
        let body = ForwardRequestBody {
            version: CUSTODY_VERSION,
            document_id: id,
            originator: originator.clone(),
            forwarder: node.me.clone(),
            new_reader: to.clone(),
            reason: reason.to_owned(),
            requested_at: Timestamp::now(),
            nonce: liaise_keys::random::random_bytes::<16>(),
        };
        let request = Signed::sign(&body, &node.secrets.signing).to_bytes();
        ((), Message::ForwardRequest { request })
    };
    let expected = &[MessageKind::ForwardConsent, MessageKind::Refused];
    let ((), answer) =
        super::peers::ask(node, originator, expected, SHARE_ANSWER_TIMEOUT, question)
            .await
            .map_err(|e| {
                if super::peers::not_admitted(&e) {
                    return anyhow!("originator {originator} cannot consent to the forward: {e:#}");
                }
                anyhow!("originator unreachable, try later: {originator} ({e:#})")
            })?;
    let consent = match answer {
        Message::ForwardConsent { consent } => consent,
        Message::Refused { reason, detail } => {
            bail!(
                "{originator} refused the forward: {} ({detail})",
                reason.as_str()
            )
        }
        _ => bail!("unexpected answer from {originator}"),
    };
    let roster = node.roster.current();
    let member = roster
        .member(originator)
        .with_context(|| format!("{originator} is not in the roster"))?;
    let got: ForwardConsentBody = Signed::from_bytes(&consent, "forward consent")?
        .verify(&member.signing_key)
        .context("the consent does not verify")?;
    if got.document_id != id || got.forwarder != node.me || &got.new_reader != to {
        bail!("the consent is about another forward");
    }
    Ok((consent, got))
}
