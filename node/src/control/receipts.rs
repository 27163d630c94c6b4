//! The receipts of a sent document, each checked against a roster: what `liaise receipts`
//! shows, from the running node or, with the node stopped, from its store.

use anyhow::{Context, Result, bail};
use liaise_keys::AgencyId;
use liaise_keys::roster::Roster;
use liaise_protocol::wire::SignedReceipt;
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::store::records;
use crate::store::{hex, parse_hex};

/// The receipts stored for `doc_id`, one JSON object per recipient, verified against
/// `roster`. An error if this store never sent that document.
pub fn report(conn: &Connection, roster: &Roster, doc_id: &str) -> Result<Value> {
    let id = parse_hex::<16>(doc_id).with_context(|| format!("`{doc_id}` is not a document id"))?;
    let id_hex = hex(&id);
    let rows = records::receipts_for(conn, &id_hex)?;
    if rows.is_empty() && !records::was_sent(conn, &id_hex)? {
        bail!("no document {doc_id} was sent by this node (`liaise outbox` lists what it sent)");
    }
    let mut out = Vec::new();
    for row in rows {
        let signed = SignedReceipt::from_bytes(&row.receipt)?;
        let check = AgencyId::new(&row.recipient)
            .ok()
            .and_then(|a| roster.member(&a).map(|m| signed.verify(&m.signing_key)));
        let (verified, body) = match check {
            Some(Ok(body)) => ("verified", Some(body)),
            Some(Err(_)) => ("signature invalid", None),
            None => ("signer not in roster", signed.body_unverified().ok()),
        };
        out.push(json!({
            "recipient": row.recipient,
            "received_at": body.as_ref().map(|b| b.received_at.0),
            "content_hash": body.as_ref().map(|b| hex(&b.content_hash)),
            "sealed_len": body.as_ref().map(|b| b.sealed_len),
            "sender": body.as_ref().map(|b| b.sender.to_string()),
            "verification": verified,
            "receipt": hex(&row.receipt),
        }));
    }
    Ok(json!(out))
}
