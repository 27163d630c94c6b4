//! What `liaise open` does for a document under originator control: ask the local node to
//! fetch the key share from the document's sender, stating why, and unwrap it with the
//! agency's own keys. The share is used for this one open and never stored.

use std::fmt;
use std::io::{BufReader, Read, Seek, SeekFrom};

use anyhow::{Context, Result, bail};
use liaise_keys::AgencySecrets;
use liaise_keys::roster::Roster;
use liaise_protocol::wire::check_reason;
use liaise_protocol::{KeyCustody, OriginatorShare};
use serde_json::Value;

use crate::control::{Request, client};
use crate::home::Home;
use crate::store::Held;

/// The exit code when the originator's node cannot be reached (`EX_TEMPFAIL`): try later.
pub const EXIT_TEMPFAIL: u8 = 75;

/// The originator's node did not answer: a temporary failure, never a cryptographic one.
#[derive(Debug)]
pub struct OriginatorUnreachable {
    /// The originator.
    pub originator: String,
    /// What went wrong, for the curious.
    pub detail: String,
    /// It answered, but refused for now: too many requests from this agency.
    pub busy: bool,
}

impl fmt::Display for OriginatorUnreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.busy {
            return write!(
                f,
                "originator busy, try later: {} answers too many requests from your agency just \
                 now ({})",
                self.originator, self.detail
            );
        }
        write!(
            f,
            "originator unreachable, try later: {}'s node must release a key share for every open \
             ({})",
            self.originator, self.detail
        )
    }
}

impl std::error::Error for OriginatorUnreachable {}

/// `open` exits with this when the originator's node refuses this node at the handshake
/// (`EX_NOPERM` of sysexits.h): not a passing outage, nor the caller's mistake; it lasts until
/// one of the two rosters changes.
pub const EXIT_NOT_ADMITTED: u8 = 77;

/// The originator's node refused this node at the handshake: its roster does not accept this
/// agency's transport key.
#[derive(Debug)]
pub struct NotAdmittedByOriginator(String);

impl fmt::Display for NotAdmittedByOriginator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAdmittedByOriginator {}

fn secrets_owner(home: &Home) -> Result<liaise_keys::AgencyId> {
    Ok(home.profile()?.agency)
}

/// A key share the originator released for this open, and what it was released for.
#[derive(Debug)]
pub struct ReleasedShare {
    /// The share.
    pub share: OriginatorShare,
    /// The document it opens.
    pub document_id: liaise_protocol::DocumentId,
    /// The agency that released it (the document's sender).
    pub originator: liaise_keys::AgencyId,
}

/// For a document under originator control: the share for this open, fetched through the
/// node. `None` for offline documents. `sealed` is the document and its name on the command
/// line.
pub fn obtain_share(
    home: &Home,
    roster: &Roster,
    secrets: &AgencySecrets,
    (name, sealed): (&str, &Held),
    reason: Option<&str>,
) -> Result<Option<ReleasedShare>> {
    let mut file = sealed.open()?;
    // A forwarded document: skip the consent (checked by the caller) to its header.
    let mut start = [0u8; 8];
    let n = file.read(&mut start)?;
    file.seek(SeekFrom::Start(0))?;
    let forwarded = liaise_protocol::is_forwarded(start.get(..n).unwrap_or(&[]));
    if forwarded {
        liaise_protocol::read_forward_prefix(&mut file)?;
    }
    // Only to decide whether to ask; the open itself verifies everything.
    let Ok(info) = liaise_protocol::danger_read_unverified_header(BufReader::new(file)) else {
        return Ok(None);
    };
    // Offline documents need no share; a sender is never its own reader (the open then
    // says so), so it does not ask itself.
    let me = secrets_owner(home)?;
    if info.custody == KeyCustody::Offline || info.sender == me {
        return Ok(None);
    }
    // Not asked for a document not addressed to this agency (a forwarded copy's reader is
    // named by the consent instead): the open would fail anyway, and the originator would
    // log a refused request.
    if !forwarded && info.recipient(&me).is_none() {
        if let Some(tampered) = super::verify::tampering(name, sealed, roster) {
            return Err(tampered);
        }
        bail!("the document is not addressed to you ({me})");
    }
    let Some(reason) = reason else {
        bail!(
            "this document is under originator control: give --reason TEXT (why you open it; \
             {} records it with your agency's name)",
            info.sender
        );
    };
    check_reason(reason).context("--reason")?;
    let answer = client::call(
        home,
        &Request::FetchShare {
            doc_id: info.document_id.to_string(),
            originator: info.sender.as_str().to_owned(),
            reason: reason.to_owned(),
        },
    )
    .with_context(|| {
        format!(
            "this document is under originator control: your node asks {} for a key share",
            info.sender
        )
    })?;
    let text = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or_default();
    match text("outcome") {
        "released" => {
            let unwrapped = (|| {
                let request = crate::store::parse_hex_vec(text("request"))
                    .context("the node sent a malformed request")?;
                let release = crate::store::parse_hex_vec(text("release"))
                    .context("the node sent a malformed release")?;
                crate::daemon::share::unwrap_fetched(
                    roster,
                    &info.sender,
                    &request,
                    &release,
                    &secrets.encryption,
                )
            })();
            // Both nodes logged the release: this one also logs that no file came of it.
            let share = unwrapped.inspect_err(|e| {
                super::open::record_unwritten(
                    home,
                    &info.document_id,
                    &info.sender,
                    Some(reason),
                    e,
                );
            })?;
            Ok(Some(ReleasedShare {
                share,
                document_id: info.document_id,
                originator: info.sender,
            }))
        }
        "refused" => Err(refusal(
            info.sender.as_str(),
            text("reason"),
            text("detail"),
        )),
        // Not "try later" (75): it lasts until one of the rosters changes.
        "not admitted" => Err(NotAdmittedByOriginator(format!(
            "originator {} cannot release the key share: {}",
            info.sender,
            text("detail")
        ))
        .into()),
        _ => Err(OriginatorUnreachable {
            originator: info.sender.as_str().to_owned(),
            detail: text("detail").to_owned(),
            busy: false,
        }
        .into()),
    }
}

/// The error for a refused share request: a refusal for being over the originator's rate is
/// temporary (exit 75, as for an unreachable originator); any other is final.
fn refusal(originator: &str, reason: &str, detail: &str) -> anyhow::Error {
    if detail == crate::log::rate::TOO_MANY_REQUESTS {
        return OriginatorUnreachable {
            originator: originator.to_owned(),
            detail: detail.to_owned(),
            busy: true,
        }
        .into();
    }
    anyhow::anyhow!("{originator} refused to release the key share: {reason} ({detail})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_over_the_rate_is_try_later_and_others_are_final() {
        let busy = refusal(
            "nl.city.utrecht",
            "internal",
            crate::log::rate::TOO_MANY_REQUESTS,
        );
        assert!(busy.is::<OriginatorUnreachable>());
        assert!(
            busy.to_string()
                .starts_with("originator busy, try later: nl.city.utrecht answers")
        );
        let revoked = refusal("nl.city.utrecht", "revoked", "the originator revoked it");
        assert!(!revoked.is::<OriginatorUnreachable>());
        assert_eq!(
            revoked.to_string(),
            "nl.city.utrecht refused to release the key share: revoked (the originator revoked it)"
        );
    }
}
