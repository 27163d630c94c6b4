//! Limits on incoming documents before they are complete: what a peer may keep in partial
//! files, how long a partial is kept, and the checks on the first bytes of a document, so a
//! member cannot fill this node's disk with a document that could never be accepted.
//!
//! As soon as the prelude and header have arrived (at most 1 MiB), the receiver checks them
//! against the offer, the connection and the roster: the document id is the offered one, the
//! sender is the peer's agency, this agency is a recipient, the signing key is the sender's in
//! the roster, and the length the header implies is the offered length. Any mismatch ends
//! the transfer with a permanent `Reject` and deletes the partial. None of this replaces the
//! full verification once every byte is there.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use liaise_keys::AgencyId;
use liaise_keys::roster::Roster;
use liaise_protocol::sealed::PRELUDE_LEN;
use liaise_protocol::sealed::limits::MAX_HEADER_LEN;
use liaise_protocol::wire::RejectReason;
use liaise_protocol::{ErrorKind, SignerCheck, danger_read_unverified_prefix};
use sha2::{Digest, Sha256};

use super::Node;
use super::receive::SYNC_EVERY;
use crate::store::Blobs;
use crate::trust::RosterSignerCheck;

/// The most bytes one peer's unfinished transfers may hold on this node (their partial files,
/// counting a transfer in progress at its offered length). A peer holding no other partial
/// may always send one document, up to `MAX_DOCUMENT_LEN`.
pub const MAX_PARTIAL_BYTES_PER_PEER: u64 = 8 * 1024 * 1024 * 1024;
/// A partial file not written to for this long is deleted: its sender gave up on it.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// How often stale partial files are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// The longest prefix (prelude and header) a sealed document can have.
pub const MAX_PREFIX_LEN: u64 = (PRELUDE_LEN + MAX_HEADER_LEN) as u64;
/// The first attempt to read the header is made once this many bytes have arrived; each
/// further attempt waits for twice as many, so a slow header costs a few reads, not one per
/// packet.
const FIRST_HEADER_ATTEMPT: u64 = 4096;

/// Why an incoming transfer is refused before it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason sent in the `Reject`.
    pub reason: RejectReason,
    /// The detail sent with it.
    pub detail: String,
}

impl Refusal {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// The offer an incoming transfer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedDocument {
    /// The offered document id.
    pub document_id: [u8; 16],
    /// The offered length.
    pub sealed_len: u64,
}

/// Refuses an offer of `sealed_len` bytes (document `doc_id`, hex) from `peer` if its other
/// unfinished transfers already hold too much: `in_flight` maps each (sender, document id) in
/// progress to its offered length.
pub fn check_quota(
    blobs: &Blobs,
    peer: &AgencyId,
    doc_id: &str,
    sealed_len: u64,
    in_flight: &HashMap<(String, String), u64>,
) -> Result<(), Refusal> {
    let mut held: HashMap<String, u64> = blobs
        .partials_of(peer)
        .into_iter()
        .map(|p| (p.doc_id, p.len))
        .collect();
    for ((sender, doc), offered) in in_flight {
        if sender == peer.as_str() {
            let entry = held.entry(doc.clone()).or_default();
            *entry = (*entry).max(*offered);
        }
    }
    held.remove(doc_id);
    let others = held
        .values()
        .fold(0u64, |sum, len| sum.saturating_add(*len));
    if others > 0 && others.saturating_add(sealed_len) > MAX_PARTIAL_BYTES_PER_PEER {
        return Err(Refusal::new(
            RejectReason::Busy,
            format!(
                "{others} bytes of unfinished transfers from {peer} are held already \
                 (limit {MAX_PARTIAL_BYTES_PER_PEER}); finish those first"
            ),
        ));
    }
    Ok(())
}

/// Deletes partial files older than [`PARTIAL_MAX_AGE`] at start and every
/// [`SWEEP_INTERVAL`], until shutdown.
pub async fn sweep_partials(node: Arc<Node>) {
    let mut shutdown = node.shutdown.clone();
    let mut every = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => break,
        }
        let blobs = node.store.blobs.clone();
        match tokio::task::spawn_blocking(move || blobs.sweep_partials(PARTIAL_MAX_AGE)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} abandoned partial transfers"),
            Err(e) => tracing::warn!("cannot sweep partial transfers: {e}"),
        }
    }
}

/// Tracks when the header of a transfer is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderGate {
    checked: bool,
    next_attempt: u64,
}

impl Default for HeaderGate {
    fn default() -> Self {
        Self {
            checked: false,
            next_attempt: FIRST_HEADER_ATTEMPT,
        }
    }
}

impl HeaderGate {
    /// Whether the header should be read now that `held` of `total` bytes are in the partial.
    pub fn due(&self, held: u64, total: u64) -> bool {
        !self.checked && held > 0 && (held >= self.next_attempt || held >= total)
    }

    /// Reads and checks the header from the partial file once enough has arrived (see the
    /// module documentation). `Ok` also when more bytes are needed first.
    pub fn check(
        &mut self,
        partial: &Path,
        held: u64,
        offer: OfferedDocument,
        peer: &AgencyId,
        me: &AgencyId,
        roster: &Roster,
    ) -> Result<(), Refusal> {
        let mut prefix = Vec::new();
        File::open(partial)
            .and_then(|f| f.take(held.min(MAX_PREFIX_LEN)).read_to_end(&mut prefix))
            .map_err(|e| Refusal::new(RejectReason::Internal, e.to_string()))?;
        match check_prefix(&prefix, offer, peer, me, roster) {
            Ok(()) => {
                self.checked = true;
                Ok(())
            }
            Err(None) if held < MAX_PREFIX_LEN && held < offer.sealed_len => {
                self.next_attempt = held.saturating_mul(2);
                Ok(())
            }
            Err(None) => Err(Refusal::new(
                RejectReason::BadDocument,
                "the document ends inside its header",
            )),
            Err(Some(refusal)) => Err(refusal),
        }
    }
}

/// Checks the start of an incoming document; `Err(None)` if it ends inside the header.
pub fn check_prefix(
    prefix: &[u8],
    offer: OfferedDocument,
    peer: &AgencyId,
    me: &AgencyId,
    roster: &Roster,
) -> Result<(), Option<Refusal>> {
    let claimed = match danger_read_unverified_prefix(prefix) {
        Ok(claimed) => claimed,
        Err(e) if e.kind() == ErrorKind::Truncated => return Err(None),
        Err(e) => return Err(Some(Refusal::new(RejectReason::BadDocument, e.to_string()))),
    };
    let info = &claimed.info;
    let refuse = |reason, detail: String| Err(Some(Refusal::new(reason, detail)));
    if info.document_id.0 != offer.document_id {
        return refuse(
            RejectReason::BadDocument,
            "document id differs from the offer".into(),
        );
    }
    if &info.sender != peer {
        return refuse(
            RejectReason::WrongSender,
            format!("sealed by {}", info.sender),
        );
    }
    if info.recipient(me).is_none() {
        return refuse(
            RejectReason::NotRecipient,
            format!("{me} is not a recipient"),
        );
    }
    if let Err(e) = RosterSignerCheck(roster).check(&info.sender, &info.sender_key, info.created) {
        return refuse(RejectReason::BadDocument, format!("signer refused: {e}"));
    }
    if claimed.sealed_len != offer.sealed_len {
        return refuse(
            RejectReason::BadDocument,
            format!(
                "the header implies {} bytes, the offer said {}",
                claimed.sealed_len, offer.sealed_len
            ),
        );
    }
    Ok(())
}

/// Linux `ENOSPC`: no space left on the device.
const ENOSPC: i32 = 28;
/// Linux `EDQUOT`: the disk quota is used up.
const EDQUOT: i32 = 122;

/// Whether a write failed for want of space (full disk or quota), which the sender should
/// retry later, rather than for another reason.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// The partial file of one transfer: appended to and hashed off the async runtime, fsynced
/// every [`SYNC_EVERY`] bytes and at the end.
#[derive(Debug)]
pub struct PartialWriter {
    file: File,
    hasher: Sha256,
    since_sync: u64,
}

impl PartialWriter {
    /// Opens (creating, private) the partial file to append after its first `held` bytes,
    /// whose hash state is `hasher`.
    pub fn open(partial: &Path, held: u64, hasher: Sha256) -> std::io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(partial)?;
        file.seek(SeekFrom::Start(held))?;
        Ok(Self {
            file,
            hasher,
            since_sync: 0,
        })
    }

    /// Appends `bytes` on a blocking thread; the writer comes back for the next chunk.
    pub async fn append<B>(mut self, bytes: B) -> std::io::Result<Self>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let bytes = bytes.as_ref();
            self.file.write_all(bytes)?;
            self.hasher.update(bytes);
            self.since_sync += bytes.len() as u64;
            if self.since_sync >= SYNC_EVERY {
                self.file.sync_data()?;
                self.since_sync = 0;
            }
            Ok(self)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// fsyncs the file on a blocking thread and returns the hash state over all of it.
    pub async fn finish(self) -> std::io::Result<Sha256> {
        tokio::task::spawn_blocking(move || {
            self.file.sync_all()?;
            Ok(self.hasher)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn offered(n: u64) -> HashMap<(String, String), u64> {
        HashMap::from([(("nl.prison.vught".into(), "bb".repeat(16)), n)])
    }

    #[test]
    fn a_peer_may_hold_its_quota_of_partials_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let city = AgencyId::new("nl.city.utrecht").unwrap();
        let this = "aa".repeat(16);
        let none = HashMap::new();
        // Nothing else held: any single document may come.
        assert!(check_quota(&blobs, &prison, &this, u64::MAX, &none).is_ok());
        // Another transfer in flight, counted at its offered length.
        let max = MAX_PARTIAL_BYTES_PER_PEER;
        assert!(check_quota(&blobs, &prison, &this, max - 100, &offered(100)).is_ok());
        let refused = check_quota(&blobs, &prison, &this, max - 99, &offered(100)).unwrap_err();
        assert_eq!(refused.reason, RejectReason::Busy);
        assert!(refused.reason.is_temporary());
        // Another agency's transfers do not count against this one.
        assert!(check_quota(&blobs, &city, &this, max, &offered(100)).is_ok());
        // A partial on disk counts too; this document's own partial does not.
        std::fs::write(
            blobs.partial_path(&prison, &[0xcc; 16], &[1; 32]),
            [0u8; 10],
        )
        .unwrap();
        std::fs::write(
            blobs.partial_path(&prison, &[0xaa; 16], &[1; 32]),
            [0u8; 50],
        )
        .unwrap();
        assert!(check_quota(&blobs, &prison, &this, max - 10, &none).is_ok());
        assert!(check_quota(&blobs, &prison, &this, max - 9, &none).is_err());
    }

    #[test]
    fn the_header_is_read_at_few_points() {
        let mut gate = HeaderGate::default();
        assert!(!gate.due(0, 1_000_000));
        assert!(!gate.due(FIRST_HEADER_ATTEMPT - 1, 1_000_000));
        assert!(gate.due(FIRST_HEADER_ATTEMPT, 1_000_000));
        assert!(
            gate.due(100, 100),
            "a short document is checked when complete"
        );
        gate.next_attempt = 10_000;
        assert!(!gate.due(9_999, 1_000_000));
        gate.checked = true;
        assert!(!gate.due(1_000_000, 1_000_000));
    }

    #[test]
    fn full_disk_and_quota_are_disk_full_a_too_large_file_is_not() {
        use std::io::Error;
        assert!(is_disk_full(&Error::from_raw_os_error(ENOSPC)));
        assert!(is_disk_full(&Error::from_raw_os_error(EDQUOT)));
        assert!(!is_disk_full(&Error::from_raw_os_error(27)), "EFBIG");
        assert!(!is_disk_full(&Error::other("boom")));
    }

    #[tokio::test]
    async fn a_partial_is_appended_and_hashed_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.partial");
        std::fs::write(&path, b"abc").unwrap();
        let mut hasher = Sha256::new();
        hasher.update(b"abc");
        let writer = PartialWriter::open(&path, 3, hasher).unwrap();
        let writer = writer.append(b"def").await.unwrap();
        let hash: [u8; 32] = writer.finish().await.unwrap().finalize().into();
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(b"abcdef")));
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
    }
}
