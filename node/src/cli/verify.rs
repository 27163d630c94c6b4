//! `liaise verify`: check who signed a sealed document, for whom, and that nothing changed.
//! Needs no private key: this is what a person runs on a file received by any route.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use liaise_keys::Timestamp;
use liaise_keys::roster::Roster;
use liaise_protocol::DocumentInfo;
use serde_json::{Value, json};

use super::roster_file::{self, CheckedRoster};
use super::{JsonArg, print_json};
use crate::home::Home;
use crate::store::Held;
use crate::trust::RosterSignerCheck;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A sealed file, or the id of a document in this node's store (needs --home).
    document: String,
    /// Check against this agency's roster (and find a DOC_ID in its store).
    #[arg(long, env = crate::home::HOME_ENV, value_name = "HOME")]
    home: Option<PathBuf>,
    /// Check against this roster file instead (no Liaise home needed; it wins over --home and
    /// $LIAISE_HOME).
    #[arg(long, value_name = "ROSTER")]
    roster: Option<PathBuf>,
    /// The fingerprint of your federation, as its steward reads it out (SHA256:... or the
    /// spoken digit groups): the roster must be that federation's. Without it, a roster file
    /// proves only that it is whole, and the verdict says which federation to check.
    #[arg(long, value_name = "FP")]
    federation_fingerprint: Option<String>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let pin = args.federation_fingerprint.as_deref();
    let (CheckedRoster { roster, pinned }, home) = match (&args.roster, &args.home) {
        (Some(path), home) => (roster_file::load(path, pin)?, home.clone().map(Home::new)),
        (None, Some(home)) => {
            let home = Home::new(home.clone());
            // A mistyped HOME is told as such, as every other verb tells it.
            home.profile()?;
            let roster = home.roster_for_display()?.with_context(|| {
                format!(
                    "no roster in {}; import one or pass --roster ROSTER",
                    home.root().display()
                )
            })?;
            if let Some(pin) = pin {
                roster_file::check_pin(&roster, pin, &format!("in {}", home.root().display()))?;
            }
            // Pinned when it was imported.
            (
                CheckedRoster {
                    roster,
                    pinned: true,
                },
                Some(home),
            )
        }
        (None, None) => {
            // A file that is not there is the first thing to say.
            resolve_document(&args.document, None)?;
            bail!("say which roster to trust: --home HOME or --roster ROSTER")
        }
    };
    let held = resolve_document(&args.document, home.as_ref())?;
    let now = Timestamp::now();
    match check(&args.document, &held, &roster) {
        Ok((info, forwarded)) => {
            if args.json.json {
                let mut value = describe(&info);
                if let Some(object) = value.as_object_mut() {
                    object.insert("valid".into(), json!(true));
                    if let Some(consent) = &forwarded {
                        object.insert("forwarded".into(), super::forward::consent_json(consent));
                    }
                    object.insert("roster_serial".into(), json!(roster.serial()));
                    object.insert(
                        "federation_fingerprint".into(),
                        json!(roster.federation_fingerprint().to_string()),
                    );
                    object.insert("federation_pinned".into(), json!(pinned));
                }
                return print_json(&value);
            }
            print_human(&info, now);
            if let Some(consent) = &forwarded {
                println!(
                    "Signed by {}, {}.",
                    info.sender,
                    super::forward::describe(consent)
                );
            }
            println!(
                "Verdict: VALID (roster serial {} of \"{}\", federation {})",
                roster.serial(),
                roster.body().federation,
                roster.federation_fingerprint()
            );
            if !pinned {
                eprintln!("{}", roster_file::unpinned_note(&roster));
            }
            // An expired roster still says who the members were: fine for an old document,
            // but the user should know a newer roster may have revoked the signer since.
            if roster.body().expires_at <= now {
                eprintln!(
                    "note: roster serial {} expired at {}; a current roster may have revoked \
                     the signer since",
                    roster.serial(),
                    roster.body().expires_at
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Rejection { kind, error }) => {
            if args.json.json {
                print_json(&json!({ "valid": false, "error_kind": kind, "error": error }))?;
                return Ok(ExitCode::from(1));
            }
            bail!("{} is not valid: {error}", args.document)
        }
    }
}

/// Why a document does not verify: a stable kind (`docs/json.md`) and a sentence.
struct Rejection {
    kind: &'static str,
    error: String,
}

/// `error_kind` of a forwarded document whose consent fails or does not match the document.
const CONSENT_REJECTED: &str = "forwarding consent rejected";

/// For an open that found no recipient entry or no key for this agency: why the document
/// does not verify, if it does not. A changed byte in a recipient entry must read as the
/// tampering it is (*verification failed*), as `verify` reports it, and not as a document
/// for someone else. `None` when the document verifies.
pub fn tampering(name: &str, held: &Held, roster: &Roster) -> Option<anyhow::Error> {
    check(name, held, roster).err().map(|rejected| {
        anyhow::Error::new(Tampered {
            kind: rejected.kind,
            message: format!("cannot open {name}: {}", rejected.error),
        })
    })
}

/// A document that does not verify, found by [`tampering`]: its stable kind (`docs/json.md`,
/// for the log, which names no file) and the sentence for the user.
#[derive(Debug)]
pub struct Tampered {
    /// The `error_kind`.
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Tampered {}

/// Whether `error` says the document has no recipient entry or no key for this agency.
pub fn not_for_us(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<liaise_protocol::OpenError>()
        .is_some_and(|e| {
            matches!(
                e.kind(),
                liaise_protocol::ErrorKind::NotAddressedToYou
                    | liaise_protocol::ErrorKind::NoMatchingKey
            )
        })
}

/// Verifies `held` (named `name` on the command line) against `roster`: the consent first if
/// it is a forwarded document, then the sealed document, and that the two belong together.
fn check(
    name: &str,
    held: &Held,
    roster: &Roster,
) -> Result<
    (
        DocumentInfo,
        Option<liaise_protocol::wire::ForwardConsentBody>,
    ),
    Rejection,
> {
    let mut file = held.open().map_err(|e| Rejection {
        kind: liaise_protocol::ErrorKind::Io.as_str(),
        error: format!("cannot read {name}: {e:#}"),
    })?;
    let forwarded = super::forward::read_consent(&mut file, roster).map_err(|e| Rejection {
        kind: CONSENT_REJECTED,
        error: format!("{e:#}"),
    })?;
    let info = liaise_protocol::verify(
        BufReader::with_capacity(1 << 20, file),
        &RosterSignerCheck(roster),
    )
    .map_err(|e| Rejection {
        kind: e.kind().as_str(),
        error: match e.kind() {
            // Most likely a file `open` wrote: its provenance is in NAME.sig beside it.
            liaise_protocol::ErrorKind::NotSealedDocument => format!(
                "{e}; a file `liaise open` wrote is checked with its .sig (`open \
                 --with-signatures`): `liaise roster allowed-signers`, then `ssh-keygen -Y \
                 verify -n liaise-document` (see the README)"
            ),
            _ => e.to_string(),
        },
    })?;
    if let Some(consent) = &forwarded
        && (consent.document_id != info.document_id.0 || consent.originator != info.sender)
    {
        return Err(Rejection {
            kind: CONSENT_REJECTED,
            error: "the forwarding consent is about another document or originator".into(),
        });
    }
    Ok((info, forwarded))
}

/// A file path, or a 32-hex-digit document id looked up in the node's store.
pub fn resolve_document(document: &str, home: Option<&Home>) -> Result<Held> {
    if document.is_empty() {
        bail!("no document named: give a sealed document's file, or a document id with --home");
    }
    let path = Path::new(document);
    let looks_like_id = document.len() == 32 && document.chars().all(|c| c.is_ascii_hexdigit());
    // A document id in the store wins over a file of that name in the current folder, which
    // someone else may have put there.
    let stored = match home {
        Some(home) if looks_like_id => Some(crate::store::sealed_document(home, document)),
        _ => None,
    };
    if let Some(Ok(held)) = stored {
        return Ok(held);
    }
    match std::fs::metadata(path) {
        // Only a regular file: a FIFO or a device would hang or never end.
        Ok(meta) if meta.is_file() => return Ok(Held::File(path.to_path_buf())),
        Ok(_) => bail!("{document} is not a regular file; give a sealed document's file"),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {document}")));
        }
        Err(_) => {}
    }
    match (home, stored) {
        (Some(_), Some(Err(e))) => Err(e),
        (None, _) if looks_like_id => bail!(
            "{document} looks like a document id: pass --home HOME to find it in the node's store"
        ),
        _ => bail!("{document}: no such file, and not a document id"),
    }
}

/// The recipients and their policies as JSON.
pub fn recipients_json(info: &DocumentInfo) -> Value {
    json!(info
        .recipients
        .iter()
        .map(|r| json!({
            "agency": r.agency.as_str(),
            "sections": r.policy.sections.iter().filter_map(|i| info.sections.get(usize::from(*i)).map(|s| s.name.clone())).collect::<Vec<_>>(),
            "expires": r.policy.not_after.map(|t| t.to_rfc3339()),
            "forward_to": r.policy.forward_to.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "encryption_key": r.key_fingerprint.to_string(),
        }))
        .collect::<Vec<_>>())
}

/// The whole clear header as stable JSON.
pub fn describe(info: &DocumentInfo) -> Value {
    json!({
        "doc_id": info.document_id.to_string(),
        "signer": info.sender.as_str(),
        "signing_key": info.sender_key.to_string(),
        "signing_key_fingerprint": info.sender_key.fingerprint().to_string(),
        "signing_key_openssh_fingerprint": liaise_protocol::openssh_fingerprint(&info.sender_key),
        "signed_at": info.created.to_rfc3339(),
        "label": info.label,
        "purpose": info.purpose,
        "custody": info.custody.as_str(),
        "sections": info.sections.iter().map(|s| json!({ "name": s.name, "padded_len": s.padded_len })).collect::<Vec<_>>(),
        "recipients": recipients_json(info),
    })
}

fn print_human(info: &DocumentInfo, now: Timestamp) {
    println!("Document {}", info.document_id);
    println!(
        "  signed by  {} with key {} (in OpenSSH's notation {})",
        info.sender,
        info.sender_key.fingerprint(),
        liaise_protocol::openssh_fingerprint(&info.sender_key)
    );
    println!("  signed at  {}", info.created);
    println!("  label      {}", info.label);
    match info.custody {
        liaise_protocol::KeyCustody::Originator => println!(
            "  custody    originator: each open asks {} for a key share, with a reason",
            info.sender
        ),
        liaise_protocol::KeyCustody::Offline => {
            println!("  custody    offline: recipients hold the whole key; cannot be revoked")
        }
    }
    if !info.purpose.is_empty() {
        println!("  purpose    {}", info.purpose);
    }
    let names: Vec<&str> = info.sections.iter().map(|s| s.name.as_str()).collect();
    println!("  sections   {}", names.join(", "));
    println!("Recipients:");
    for r in &info.recipients {
        let sections: Vec<&str> = r
            .policy
            .sections
            .iter()
            .filter_map(|i| info.sections.get(usize::from(*i)).map(|s| s.name.as_str()))
            .collect();
        let expiry = match r.policy.not_after {
            Some(t) if t < now => format!("expired {t}"),
            Some(t) => format!("until {t}"),
            None => "no expiry".into(),
        };
        println!(
            "  {:<28} may read {} ({expiry})",
            r.agency.as_str(),
            sections.join(", ")
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn error_of(document: &Path) -> String {
        let held = resolve_document(document.to_str().unwrap(), None);
        format!("{:#}", held.err().unwrap())
    }

    #[test]
    fn only_a_regular_file_is_taken_as_a_document() {
        let dir = tempfile::tempdir().unwrap();
        // A FIFO would block the open for ever; a folder is no document.
        let fifo = dir.path().join("doc.liaise");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(
            error_of(&fifo).contains("is not a regular file"),
            "{}",
            error_of(&fifo)
        );
        assert!(error_of(dir.path()).contains("is not a regular file"));
        let missing = dir.path().join("missing.liaise");
        assert!(error_of(&missing).contains("no such file"));
        let file = dir.path().join("real.liaise");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            resolve_document(file.to_str().unwrap(), None),
            Ok(Held::File(_))
        ));
    }
}
