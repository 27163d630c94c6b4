//! The control socket: how the `liaise` command line talks to the running node.
//!
//! A UNIX socket at `HOME/run/control.sock` (the folder 0700, the socket 0600: only the owner
//! can connect). One request per connection, newline-delimited JSON both ways:
//! `{"op": "status"}` → `{"ok": true, "result": {...}}` or `{"ok": false, "error": "..."}`.
//! One request carries a body: `submit_sealed` is followed by exactly `len` raw bytes.
//!
//! Sealing happens in the CLI process, which already has the passphrase. A large sealed
//! document is written into the node's private staging folder and its path handed over with
//! `submit`; the node verifies it, moves it into the blob store and queues it. A small one (at
//! most [`INLINE_MAX_LEN`] bytes sealed) travels over the socket with `submit_sealed` and is
//! kept in the database: no file is created, synced and deleted for it. Either way the daemon
//! never needs plaintext and the CLI never needs the network.

pub mod client;
pub mod receipts;
pub mod server;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::home::Home;

/// The longest request line.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// The longest body of a `submit_sealed` request: a document small enough to be held in the
/// node's database.
pub use crate::store::held::INLINE_MAX_LEN;

/// What the CLI asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Queue a sealed document (a file in the node's staging folder, moved into the store).
    Submit {
        /// The sealed file.
        path: PathBuf,
    },
    /// Queue a small sealed document sent on the connection: the request line is followed by
    /// exactly `len` bytes, at most [`INLINE_MAX_LEN`].
    SubmitSealed {
        /// Length of the sealed document that follows.
        len: u64,
    },
    /// Every outbox line.
    Outbox,
    /// The outbox lines of one document (hex id): what `send --wait` polls, without reading
    /// and sending the whole history every tenth of a second.
    OutboxOf {
        /// Document id, hex.
        doc_id: String,
    },
    /// Every received document.
    Inbox,
    /// The receipts for a sent document.
    Receipts {
        /// Document id, hex.
        doc_id: String,
    },
    /// Roster, peers, queue sizes.
    Status {
        /// Dial every member now, instead of reporting what the last contact showed.
        #[serde(default)]
        check: bool,
    },
    /// Ask a document's originator for its key share, for a person who opens it and says why
    /// (`liaise open --reason`). The answer holds the signed request and release, never the
    /// share in the clear: the CLI unwraps it with the agency's own keys.
    FetchShare {
        /// Document id, hex.
        doc_id: String,
        /// The document's sender.
        originator: String,
        /// The person's stated reason.
        reason: String,
    },
    /// Ask a received document's originator for consent to forward it (`liaise forward`).
    Forward {
        /// Document id, hex.
        doc_id: String,
        /// The new reader.
        to: String,
        /// The forwarder's stated reason.
        reason: String,
        /// Deliver the forwarded document to the new reader's node (else the CLI writes it).
        #[serde(default)]
        deliver: bool,
    },
    /// Readers, revocations and deletion receipts of a document under this node's control.
    Custody {
        /// Document id, hex.
        doc_id: String,
    },
    /// Adopt the roster file in HOME (just written by `liaise roster import`) if it is a valid
    /// successor of the one in force, as a roster from a peer would be; answers the serial in
    /// force afterwards.
    AdoptRoster,
    /// Revoke a document this node sealed under originator control, or one reader's access.
    Revoke {
        /// Document id, hex.
        doc_id: String,
        /// Only this reader (default: every reader).
        recipient: Option<String>,
    },
    /// Delete this node's copy of a received document (`liaise delete`).
    DeleteReceived {
        /// Document id, hex.
        doc_id: String,
        /// The copy's sender, when two senders used the same id.
        from: Option<String>,
    },
}

/// `HOME/run/control.sock`.
pub fn socket_path(home: &Home) -> PathBuf {
    home.root().join("run").join("control.sock")
}

/// The longest path a Unix socket can have (`sun_path` holds 108 bytes with the closing NUL).
const MAX_SOCKET_PATH_LEN: usize = 107;

/// [`socket_path`], refused with what to do if it is too long to bind or reach (a deep
/// temporary or build folder as `--home`), which the system would only call "shorter than
/// SUN_LEN".
pub fn checked_socket_path(home: &Home) -> anyhow::Result<PathBuf> {
    let path = socket_path(home);
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH_LEN {
        anyhow::bail!(
            "the node's control socket {} would be {len} bytes long, and a socket's path holds \
             at most {MAX_SOCKET_PATH_LEN}: give a shorter --home (a relative path, or a \
             symbolic link to the folder)",
            path.display()
        );
    }
    Ok(path)
}

/// `HOME/store/staging`: where the CLI writes sealed files before `submit`.
pub fn staging_dir(home: &Home) -> PathBuf {
    crate::store::store_dir(home).join("staging")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_home_too_deep_for_a_socket_is_refused_with_what_to_do() {
        let fits = Home::new(PathBuf::from("/srv/liaise/city"));
        assert_eq!(checked_socket_path(&fits).unwrap(), socket_path(&fits));
        let deep = Home::new(PathBuf::from(format!("/tmp/{}/city", "d".repeat(100))));
        let refused = checked_socket_path(&deep).unwrap_err().to_string();
        assert!(refused.contains("give a shorter --home"), "{refused}");
    }
}
