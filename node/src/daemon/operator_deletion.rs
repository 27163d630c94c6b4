//! `liaise delete DOC_ID`: the operator deletes this node's copy of a document it received,
//! when the agency no longer needs it (a case closed, a retention period over), without
//! waiting for the originator's revocation or the document's expiry.
//!
//! The sealed bytes go, as for a deletion the originator asked for: the blob file, or the
//! row of a small document (overwritten: the store runs with `secure_delete`). What stays is
//! what proves the exchange happened: the inbox line (shown as `deleted`), the receipt this
//! node signed, and the log, which gains a `deletion` entry. The originator is not told; if
//! it asks for a deletion later, it gets a deletion receipt with the time of this one. A copy
//! deleted here is never stored again: a later delivery of it is refused, or, if it is the
//! same bytes from the same peer (a sender that lost its receipt), answered with the first
//! receipt.

use anyhow::{Context, Result, bail};
use liaise_keys::AgencyId;
use serde_json::{Value, json};

use super::Node;
use super::deletion::delete_copy;
use crate::store::custody::{self, DELETED_BY_OPERATOR};
use crate::store::{hex, parse_hex};

/// Deletes the copy of `doc_id` received from `from` (needed only when two senders used the
/// same id). Deleting a copy deleted before changes nothing and says so.
pub async fn delete_received(node: &Node, doc_id: &str, from: Option<&str>) -> Result<Value> {
    let id = parse_hex::<16>(doc_id)
        .with_context(|| format!("`{doc_id}` is not a document id (32 hex digits)"))?;
    let copies = node
        .store
        .db
        .read(move |c| custody::received_copies(c, &hex(&id)))
        .await?;
    let sender = choose_copy(doc_id, &copies, from)?;
    let sender = AgencyId::new(&sender).context("corrupt sender in the inbox")?;
    // Whether this call deleted it is decided in the deletion's own transaction: an
    // originator's request may have deleted it since the read above.
    let (deleted_at, first) = delete_copy(node, id, &sender, DELETED_BY_OPERATOR).await?;
    if first {
        tracing::info!(doc = %doc_id, sender = %sender, "received copy deleted by the operator");
    }
    Ok(json!({
        "doc_id": doc_id,
        "sender": sender.as_str(),
        "deleted_at": deleted_at,
        "already_deleted": !first,
    }))
}

/// The sender of the one copy `from` names, or of the only one there is.
fn choose_copy(doc_id: &str, senders: &[String], from: Option<&str>) -> Result<String> {
    let all = || senders.join(" and ");
    match (from, senders) {
        (_, []) => bail!(no_copy(doc_id)),
        (Some(from), _) if senders.iter().any(|s| s == from) => Ok(from.to_owned()),
        (Some(from), _) => bail!(
            "this node received document {doc_id} from {}, not from {from}",
            all()
        ),
        (None, [one]) => Ok(one.clone()),
        (None, _) => bail!(
            "document {doc_id} was received from {} (each used the same id); name the copy to \
             delete with --from AGENCY",
            all()
        ),
    }
}

fn no_copy(doc_id: &str) -> String {
    format!(
        "this node received no document {doc_id} (see `liaise inbox`); a document this node \
         sent is withdrawn from its readers with `liaise revoke`"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "6ec7f25cf271069a547780fbf5ec2532";

    #[test]
    fn the_copy_to_delete_is_the_only_one_or_the_one_named() {
        let (city, prison) = ("nl.city.utrecht".to_owned(), "nl.prison.vught".to_owned());
        assert_eq!(
            choose_copy(ID, std::slice::from_ref(&city), None).unwrap(),
            city
        );
        let both = [city.clone(), prison.clone()];
        let e = choose_copy(ID, &both, None).unwrap_err().to_string();
        assert!(e.contains("nl.city.utrecht and nl.prison.vught"), "{e}");
        assert!(e.contains("--from AGENCY"), "{e}");
        assert_eq!(choose_copy(ID, &both, Some(&prison)).unwrap(), prison);
        let e = choose_copy(ID, &[city], Some(&prison))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("from nl.city.utrecht, not from nl.prison.vught"),
            "{e}"
        );
        let e = choose_copy(ID, &[], None).unwrap_err().to_string();
        assert!(e.contains("received no document"), "{e}");
        let e = choose_copy(ID, &[], Some(&prison)).unwrap_err().to_string();
        assert!(e.contains("received no document"), "{e}");
    }
}
