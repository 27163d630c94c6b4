//! The CLI side of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Request, checked_socket_path, socket_path};
use crate::home::Home;

/// Sends one request to the node running in `home` and returns its result.
pub fn call(home: &Home, request: &Request) -> Result<Value> {
    call_with_body(home, request, &[])
}

/// The node's answer to `request`; when no node runs for `home`, what `offline` reads from
/// its store instead, with a note on stderr. For the listings an operator needs while the
/// node is down (an incident, a restore).
pub fn call_or_read(
    home: &Home,
    request: &Request,
    offline: impl FnOnce(&rusqlite::Connection) -> Result<Value>,
) -> Result<Value> {
    // Asked first: a running node answers on the one connection, with no probe before it.
    let answer = call(home, request);
    let db = crate::store::store_dir(home).join("liaise.db");
    let stopped = answer.is_err()
        && matches!(
            UnixStream::connect(socket_path(home)).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused)
        )
        && home.profile_path().exists()
        && db.exists();
    if !stopped {
        return answer;
    }
    let conn = crate::store::db::open_reader(&db)?;
    let value = offline(&conn)?;
    eprintln!(
        "note: no node is running for {}; this is what its store last recorded",
        home.root().display()
    );
    Ok(value)
}

/// Fails, saying how to start it, unless a node is running in `home`: for commands that
/// would otherwise do work (unlock keys, seal, record a key share) before they need it.
pub fn require_node(home: &Home) -> Result<()> {
    connect(home).map(drop)
}

/// Hands a small sealed document (at most [`super::INLINE_MAX_LEN`] bytes) to the node over
/// the socket, and returns what `submit` returns.
pub fn submit_sealed(home: &Home, sealed: &[u8]) -> Result<Value> {
    let len = sealed.len() as u64;
    if len > super::INLINE_MAX_LEN {
        bail!(
            "a sealed document of {len} bytes is too large for the control socket (at most {}); \
             submit it as a file in the staging folder",
            super::INLINE_MAX_LEN
        );
    }
    call_with_body(home, &Request::SubmitSealed { len }, sealed)
}

/// A request went out whole but no answer came back: the node may have acted on it (a
/// submitted document may be queued) before it stopped or the wait ended.
#[derive(Debug, thiserror::Error)]
#[error("the node took the request but gave no answer")]
pub struct NoAnswer;

/// Whether `error` (from a call) is a [`NoAnswer`].
pub fn no_answer(error: &anyhow::Error) -> bool {
    error.downcast_ref::<NoAnswer>().is_some()
}

/// The longest wait for an answer. A submitted file is verified whole first (up to 64 GiB):
/// that answer has no limit; the node closes the socket if it stops.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends a request line, then `body` (empty for all but `submit_sealed`).
fn call_with_body(home: &Home, request: &Request, body: &[u8]) -> Result<Value> {
    let mut stream = connect(home)?;
    let timeout = match request {
        Request::Submit { .. } => None,
        _ => Some(ANSWER_TIMEOUT),
    };
    stream.set_read_timeout(timeout)?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.write_all(body))
        .context("the node stopped reading the request (is it shutting down?)")?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    match reader.read_line(&mut answer) {
        Ok(0) => return Err(anyhow::Error::new(NoAnswer)),
        Ok(_) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(NoAnswer)),
    }
    let value: Value = serde_json::from_str(&answer).context("the node sent a malformed answer")?;
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(value.get("result").cloned().unwrap_or(Value::Null))
    } else {
        let error = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        // The node's own words, a whole sentence: "refused" would blame the request for what
        // may be the node's trouble (a full disk) or a plain answer (no such document).
        bail!("{error}")
    }
}

fn connect(home: &Home) -> Result<UnixStream> {
    UnixStream::connect(checked_socket_path(home)?).or_else(|e| {
        // The home is owner-only: another user cannot even see whether it is one.
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            bail!(
                "cannot reach the node of {}: permission denied; run this as the user that \
                 runs the node",
                home.root().display()
            );
        }
        // A mistyped --home is not a stopped node: say which it is.
        home.profile()?;
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                // Where systemd runs, a production node is its service (deploy/README.md).
                let service = match std::path::Path::new("/run/systemd/system").is_dir() {
                    true => ", or `systemctl start liaise-node` for the service",
                    false => "",
                };
                bail!(
                    "no node is running for {} (start it with `liaise node run --home {}`{service}; \
                     one started a moment ago answers once it has unlocked its keys)",
                    home.root().display(),
                    home.root().display()
                )
            }
            _ => Err(e)
                .with_context(|| format!("cannot reach the node of {}", home.root().display())),
        }
    })
}
