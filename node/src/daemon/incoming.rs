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
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use liaise_keys::AgencyId;
use liaise_keys::roster::Roster;
use liaise_protocol::sealed::PRELUDE_LEN;
use liaise_protocol::sealed::limits::MAX_HEADER_LEN;
use liaise_protocol::wire::{ContentHasher, RejectReason};
use liaise_protocol::{ErrorKind, SignerCheck, danger_read_unverified_prefix};

use super::Node;
use super::block_buf::BlockBuf;
use super::direct_append::{DIRECT_ALIGN, DirectAppender};
use super::forwarded_in::{Check, MAX_FORWARD_PREFIX_LEN, entitlement};
use super::receive::SYNC_EVERY;
use super::tee_verify::{StreamVerifier, Verdict};
use crate::store::Blobs;
use crate::trust::RosterSignerCheck;

/// The most bytes one peer's unfinished transfers may hold on this node (their partial files,
/// counting a transfer in progress at its offered length). A peer holding no other partial
/// may always send one document, up to `MAX_DOCUMENT_LEN`.
pub const MAX_PARTIAL_BYTES_PER_PEER: u64 = 8 * 1024 * 1024 * 1024;
/// The most partial files one peer's unfinished transfers may leave on this node, whatever
/// they hold: each is a file (an inode, a name every large offer lists), and a file of a few
/// bytes hardly counts toward [`MAX_PARTIAL_BYTES_PER_PEER`]. A node sends at most a few
/// large documents to one agency at once, and resumes each, so an honest peer stays far
/// below it.
pub const MAX_PARTIAL_FILES_PER_PEER: usize = 64;
/// A partial file not written to for this long is deleted: its sender gave up on it.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// How often stale partial files are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// The longest prefix (a forwarded document's consent, then the prelude and header) an
/// incoming document can have.
pub const MAX_PREFIX_LEN: u64 = (MAX_FORWARD_PREFIX_LEN + PRELUDE_LEN + MAX_HEADER_LEN) as u64;
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

/// Refuses an offer of `sealed_len` bytes (document `doc_id` with content hash `hash`, both
/// hex) from `peer` if its other unfinished transfers already hold too much: every partial
/// file of the peer counts but the one this offer resumes, and `in_flight` maps each
/// (sender, document id) in progress to its offered length. Returns what those others hold.
pub fn check_unfinished(
    blobs: &Blobs,
    peer: &AgencyId,
    offer: (&str, &str),
    sealed_len: u64,
    in_flight: &HashMap<(String, String), u64>,
) -> Result<u64, Refusal> {
    let (doc_id, hash) = offer;
    // Per document id: what its partials hold, at least what its transfer was offered with.
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut files = 0usize;
    for partial in blobs.partials_of(peer) {
        if partial.doc_id == doc_id && partial.hash == hash {
            continue;
        }
        files += 1;
        let entry = held.entry(partial.doc_id).or_default();
        *entry = entry.saturating_add(partial.len);
    }
    if files >= MAX_PARTIAL_FILES_PER_PEER {
        return Err(Refusal::new(
            RejectReason::Busy,
            format!(
                "{files} partial files of unfinished transfers from {peer} are held already \
                 (limit {MAX_PARTIAL_FILES_PER_PEER}); finish those first"
            ),
        ));
    }
    for ((sender, doc), offered) in in_flight {
        if sender == peer.as_str() && doc != doc_id {
            let entry = held.entry(doc.clone()).or_default();
            *entry = (*entry).max(*offered);
        }
    }
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
    Ok(others)
}

/// The offered lengths of the transfers from `peer` in progress (`in_flight`, as for
/// [`check_unfinished`]), but that of document `doc_id` (hex).
pub fn offered_by(
    in_flight: &HashMap<(String, String), u64>,
    peer: &AgencyId,
    doc_id: &str,
) -> u64 {
    in_flight
        .iter()
        .filter(|((sender, doc), _)| sender == peer.as_str() && doc != doc_id)
        .fold(0u64, |sum, (_, len)| sum.saturating_add(*len))
}

/// Space an incoming document must leave free on the store's file system, for the database,
/// its log and the receipts of what is still to come.
pub const DISK_RESERVE: u64 = 8 * 1024 * 1024;

/// Refuses (`DiskFull`, which the sender retries later) a transfer of `missing` more bytes
/// into `dir` when its file system cannot hold them and still keep [`DISK_RESERVE`] free, so
/// a document that cannot fit is not sent in vain. Transfers running at the same time may
/// still fill the disk; a write that fails for want of space is refused the same way.
pub fn check_free_space(dir: &Path, missing: u64) -> Result<(), Refusal> {
    check_free_space_keeping(dir, missing, Reserve::Store)
}

/// What must stay free on the store's file system after a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// [`DISK_RESERVE`], for the database, its log and the receipts still to come.
    Store,
    /// One agency's quota (at least [`DISK_RESERVE`]): for a document over its sender's quota,
    /// taken only because the sender keeps nothing here (`quota::check`). Without it, one
    /// member could fill the disk with a single document (or a partial file it never
    /// finishes, kept for its resume) and every other agency's delivery would fail as a full
    /// disk.
    Quota(u64),
}

impl Reserve {
    fn bytes(self) -> u64 {
        match self {
            Self::Store => DISK_RESERVE,
            Self::Quota(limit) => limit.max(DISK_RESERVE),
        }
    }
}

/// [`check_free_space`], keeping `reserve` free.
pub fn check_free_space_keeping(dir: &Path, missing: u64, reserve: Reserve) -> Result<(), Refusal> {
    // Unknown free space: the writes themselves will tell.
    let Ok(stat) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    room_for(
        stat.f_bavail.saturating_mul(stat.f_frsize),
        missing,
        reserve,
    )
}

/// Whether `missing` more bytes fit in `free` while keeping `reserve` free.
fn room_for(free: u64, missing: u64, reserve: Reserve) -> Result<(), Refusal> {
    let keep = reserve.bytes();
    if free < missing.saturating_add(keep) {
        let why = match reserve {
            Reserve::Store => "",
            Reserve::Quota(_) => {
                " (one agency's quota, for the others: the document is larger than its \
                 sender's quota)"
            }
        };
        return Err(Refusal::new(
            RejectReason::DiskFull,
            format!(
                "no space left on the receiving node: needs {} and keeps {}{why} free, has {}",
                indicatif::BinaryBytes(missing),
                indicatif::BinaryBytes(keep),
                indicatif::BinaryBytes(free)
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

/// Checks the start of an incoming document (see the module documentation; a forwarded
/// document's consent first); `Err(None)` if it ends inside the header.
pub fn check_prefix(
    prefix: &[u8],
    offer: OfferedDocument,
    peer: &AgencyId,
    me: &AgencyId,
    roster: &Roster,
) -> Result<(), Option<Refusal>> {
    let refuse = |reason, detail: String| Err(Some(Refusal::new(reason, detail)));
    let entitled = match entitlement(prefix, &offer.document_id, peer, me, roster) {
        Ok(Some(entitled)) => entitled,
        Ok(None) => return Err(None),
        Err(e) => return refuse(RejectReason::BadDocument, e),
    };
    let sealed = usize::try_from(entitled.prefix_len)
        .ok()
        .and_then(|at| prefix.get(at..))
        .unwrap_or_default();
    let claimed = match danger_read_unverified_prefix(sealed) {
        Ok(claimed) => claimed,
        Err(e) if e.kind() == ErrorKind::Truncated => return Err(None),
        Err(e) => return Err(Some(Refusal::new(RejectReason::BadDocument, e.to_string()))),
    };
    let info = &claimed.info;
    match entitled.check(info, &offer.document_id, me) {
        Check::Ok => {}
        Check::BadDocument(e) => return refuse(RejectReason::BadDocument, e),
        Check::WrongSender(e) => return refuse(RejectReason::WrongSender, e),
        Check::NotRecipient(e) => return refuse(RejectReason::NotRecipient, e),
    }
    if let Err(e) = RosterSignerCheck(roster).check(&info.sender, &info.sender_key, info.created) {
        return refuse(RejectReason::BadDocument, format!("signer refused: {e}"));
    }
    let implied = claimed.sealed_len.saturating_add(entitled.prefix_len);
    if implied != offer.sealed_len {
        return refuse(
            RejectReason::BadDocument,
            format!(
                "the header implies {implied} bytes, the offer said {}",
                offer.sealed_len
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

/// Bytes gathered from the network before they go to the writer thread in one write.
pub const WRITE_CHUNK: usize = 1024 * 1024;
/// Chunks queued for the writer of one transfer: at most this many [`WRITE_CHUNK`]s are
/// held in memory while the disk catches up with the network.
pub const WRITE_QUEUE_LEN: usize = 2;

/// A partial file's bytes are fsynced beside its writer each time this many more were
/// written; the writer waits for the previous fsync first, so at most twice this many, and
/// the bytes gathered for the next direct write (less than 1 MiB, see
/// [`super::direct_append`]), together less than [`SYNC_EVERY`], are ever not yet durable, and
/// the fsync at the end has little left to write.
const SYNC_STEP: u64 = SYNC_EVERY / 4;

/// An fsync of a partial file running on its own thread while the writer goes on.
struct BackgroundSync(Option<std::thread::JoinHandle<std::io::Result<()>>>);

impl BackgroundSync {
    /// Waits for the running fsync, then starts one of everything written so far.
    fn restart(&mut self, file: &File) -> std::io::Result<()> {
        self.wait()?;
        let file = file.try_clone()?;
        let sync = std::thread::Builder::new()
            .name("liaise-sync".into())
            .spawn(move || file.sync_data())?;
        self.0 = Some(sync);
        Ok(())
    }

    /// Waits for the running fsync, if any.
    fn wait(&mut self) -> std::io::Result<()> {
        match self.0.take() {
            Some(sync) => sync
                .join()
                .map_err(|_| std::io::Error::other("the fsync thread failed"))?
                .map_err(sync_failed),
            None => Ok(()),
        }
    }
}

/// An fsync of a partial file that failed, whatever its error number, is never taken for a
/// full disk (whose partial is kept for a resume): Linux reports a failed writeback once, and
/// may leave the pages it could not write marked clean in memory, so a later fsync succeeds
/// and a resume would hash, and a receipt vouch for, bytes that are not on disk. Only a
/// `write` refused for want of space leaves the partial as it is on disk.
fn sync_failed(error: std::io::Error) -> std::io::Error {
    std::io::Error::other(format!("cannot fsync the partial file: {error}"))
}

/// One step for the writer thread of a partial file.
enum WriteStep {
    /// Append these bytes.
    Bytes(BlockBuf),
    /// Answer once every earlier step is done.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The partial file of one transfer: the network's bytes gathered into writes of
/// [`WRITE_CHUNK`] bytes, appended and hashed on a blocking thread of its own while the next
/// ones arrive (at most [`WRITE_QUEUE_LEN`] queued), fsynced beside the writer every
/// [`SYNC_STEP`] bytes and at the end. The file is opened (created) on that thread too.
#[derive(Debug)]
pub struct PartialWriter {
    /// The chunk being gathered: its first `filled` bytes arrived, the rest is room for more.
    pending: Option<BlockBuf>,
    filled: usize,
    /// The file offset the pending chunk starts at.
    at: u64,
    /// Buffers written (and verified) already, back to be filled again: no fresh allocation
    /// (zeroed, page-faulted, unmapped) per chunk.
    spares: std::sync::mpsc::Receiver<BlockBuf>,
    steps: tokio::sync::mpsc::Sender<WriteStep>,
    /// The writer thread; taken once its outcome was read (a failure, or the finish).
    task: Option<WriterTask>,
}

/// The writer thread of a partial file: the hash state over the file and the verifier's
/// verdict, or why it stopped.
type WriterTask = tokio::task::JoinHandle<std::io::Result<(ContentHasher, Option<Verdict>)>>;

impl PartialWriter {
    /// Opens (creating, private) the partial file to append after its first `held` bytes,
    /// whose hash state is `hasher`, and starts its writer thread.
    /// With a `verifier`, every byte written is also handed to it (a fresh transfer only:
    /// it must see the document from its first byte).
    pub fn open(
        partial: &Path,
        held: u64,
        mut hasher: ContentHasher,
        mut verifier: Option<StreamVerifier>,
    ) -> std::io::Result<Self> {
        let partial = partial.to_path_buf();
        let (steps, mut queue) = tokio::sync::mpsc::channel::<WriteStep>(WRITE_QUEUE_LEN);
        // At most the chunks in flight (gathered, queued, being written or verified) circulate.
        let (home, spares) = std::sync::mpsc::channel();
        let task = tokio::task::spawn_blocking(move || {
            // Creating a file can take a while: not on the async threads.
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(false)
                .mode(0o600)
                .open(&partial)?;
            // Bytes past `held` were never hashed: they are not kept. A file shorter than
            // `held` changed since it was hashed (swept, say): this attempt ends, the next
            // one starts from what is there.
            let on_disk = file.metadata()?.len();
            if on_disk < held {
                return Err(std::io::Error::other(format!(
                    "the partial file holds {on_disk} bytes, not the {held} hashed"
                )));
            }
            if on_disk > held {
                file.set_len(held)?;
            }
            let mut appended = held;
            let mut file = DirectAppender::new(file, held)?;
            tracing::debug!(
                direct = file.is_direct(),
                held,
                "appending to a partial file"
            );
            let mut since_sync = 0u64;
            let mut background = BackgroundSync(None);
            while let Some(step) = queue.blocking_recv() {
                match step {
                    WriteStep::Bytes(bytes) => {
                        file.append(&bytes)?;
                        hasher.update(&bytes);
                        appended += bytes.len() as u64;
                        since_sync += bytes.len() as u64;
                        match verifier.as_mut() {
                            Some(verifier) => verifier.feed(bytes, Some(&home)),
                            None => {
                                let _ = home.send(bytes);
                            }
                        }
                        if since_sync >= SYNC_STEP {
                            background.restart(file.file())?;
                            since_sync = 0;
                        }
                    }
                    WriteStep::Flush(done) => {
                        file.flush()?;
                        let _ = done.send(());
                    }
                }
            }
            // Also when the transfer was interrupted: the bytes held are kept for a resume.
            file.flush()?;
            background.wait()?;
            file.file().sync_all().map_err(sync_failed)?;
            // What was hashed is what the file holds, or nothing of it is taken.
            let on_disk = file.file().metadata()?.len();
            if on_disk != appended {
                return Err(std::io::Error::other(format!(
                    "the partial file holds {on_disk} bytes, not the {appended} written"
                )));
            }
            Ok((hasher, verifier.map(StreamVerifier::finish)))
        });
        Ok(Self {
            pending: None,
            filled: 0,
            at: held,
            spares,
            steps,
            task: Some(task),
        })
    }

    /// Room for the next bytes, to read them from the network straight into (one copy, not
    /// one per packet): at most [`WRITE_CHUNK`] bytes, and no more than `expected` (the bytes
    /// still to come, at least 1) when a new chunk starts. Never empty. Report what was read
    /// into it with [`Self::filled`]. A chunk ends at a file offset that is a multiple of
    /// [`DIRECT_ALIGN`] (unless it is the last), so that it can be written as it is.
    pub fn room(&mut self, expected: usize) -> &mut [u8] {
        let to_boundary = WRITE_CHUNK - (self.at % DIRECT_ALIGN as u64) as usize;
        let len = expected.clamp(1, to_boundary);
        let spares = &self.spares;
        let chunk = self.pending.get_or_insert_with(|| {
            let mut chunk = spares
                .try_recv()
                .ok()
                .filter(|spare| spare.capacity() >= len)
                .unwrap_or_else(|| BlockBuf::with_capacity(WRITE_CHUNK));
            chunk.set_len(len);
            chunk
        });
        chunk.get_mut(self.filled..).unwrap_or_default()
    }

    /// Takes the `n` bytes just read into [`Self::room`]; a full chunk goes to the writer
    /// thread (waiting only while its queue is full).
    pub async fn filled(&mut self, n: usize) -> std::io::Result<()> {
        let len = self.pending.as_ref().map_or(0, |p| p.len());
        self.filled = self.filled.saturating_add(n).min(len);
        if self.filled == len {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Appends `bytes` (copied into [`Self::room`]).
    #[cfg(test)]
    pub async fn append(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let room = self.room(WRITE_CHUNK);
            let n = room.len().min(bytes.len());
            let (now, later) = bytes.split_at(n);
            if let Some(to) = room.get_mut(..n) {
                to.copy_from_slice(now);
            }
            bytes = later;
            self.filled(n).await?;
        }
        Ok(())
    }

    /// Hands the gathered bytes to the writer thread.
    async fn hand_over(&mut self) -> std::io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let Some(mut bytes) = self.pending.take() else {
            return Ok(());
        };
        bytes.set_len(self.filled);
        self.at += self.filled as u64;
        self.filled = 0;
        if self.steps.send(WriteStep::Bytes(bytes)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Waits until every byte appended is in the file (not yet fsynced).
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.hand_over().await?;
        let (done, written) = tokio::sync::oneshot::channel();
        if self.steps.send(WriteStep::Flush(done)).await.is_err() || written.await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Writes every byte appended, fsyncs the file and returns the hash state over all of it
    /// and the verifier's verdict, if it had one.
    /// Once the writer failed (its error was returned already), this waits for nothing and
    /// says so.
    pub async fn finish(mut self) -> std::io::Result<(ContentHasher, Option<Verdict>)> {
        self.hand_over().await?;
        drop(self.steps);
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Err(std::io::Error::other("the partial file writer failed")),
        }
    }

    /// The error the writer thread stopped with (the first time; after that, that it failed).
    async fn failure(&mut self) -> std::io::Error {
        let Some(task) = self.task.take() else {
            return std::io::Error::other("the partial file writer failed");
        };
        match task.await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => std::io::Error::other("the partial file writer stopped"),
            Err(e) => std::io::Error::other(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::hex;
    use liaise_protocol::wire::content_hash;

    fn offered(n: u64) -> HashMap<(String, String), u64> {
        HashMap::from([(("nl.prison.vught".into(), "bb".repeat(16)), n)])
    }

    #[test]
    fn a_document_larger_than_the_free_space_is_refused_as_a_full_disk() {
        const MIB: u64 = 1024 * 1024;
        let free = 100 * MIB;
        assert!(room_for(free, free - DISK_RESERVE, Reserve::Store).is_ok());
        // Fits only without the reserve: refused, temporarily, saying how much is missing.
        let refused = room_for(free, free - DISK_RESERVE + 1, Reserve::Store).unwrap_err();
        assert_eq!(refused.reason, RejectReason::DiskFull);
        assert!(refused.reason.is_temporary());
        assert!(
            refused
                .detail
                .contains("keeps 8.00 MiB free, has 100.00 MiB"),
            "{}",
            refused.detail
        );
        assert!(room_for(free, u64::MAX, Reserve::Store).is_err());
        // A first document over its sender's quota keeps that quota free for the others.
        let quota = 40 * MIB;
        assert!(room_for(free, free - quota, Reserve::Quota(quota)).is_ok());
        let refused = room_for(free, free - quota + 1, Reserve::Quota(quota)).unwrap_err();
        assert_eq!(refused.reason, RejectReason::DiskFull);
        assert!(
            refused.detail.contains("one agency's quota"),
            "{}",
            refused.detail
        );
        // A quota smaller than the store's reserve keeps the reserve.
        assert!(room_for(free, free - DISK_RESERVE, Reserve::Quota(1)).is_ok());
        assert!(room_for(free, free - DISK_RESERVE + 1, Reserve::Quota(1)).is_err());
        // The real file system's figure goes the same way: nothing fits u64::MAX bytes.
        let dir = tempfile::tempdir().unwrap();
        assert!(check_free_space(dir.path(), u64::MAX).is_err());
    }

    #[test]
    fn a_peer_may_hold_its_quota_of_partials_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let city = AgencyId::new("nl.city.utrecht").unwrap();
        let this = ("aa".repeat(16), hex(&[1; 32]));
        let this = (this.0.as_str(), this.1.as_str());
        let none = HashMap::new();
        // Nothing else held: any single document may come.
        assert!(check_unfinished(&blobs, &prison, this, u64::MAX, &none).is_ok());
        // Another transfer in flight, counted at its offered length.
        let max = MAX_PARTIAL_BYTES_PER_PEER;
        assert!(check_unfinished(&blobs, &prison, this, max - 100, &offered(100)).is_ok());
        let refused = check_unfinished(&blobs, &prison, this, max - 99, &offered(100)).unwrap_err();
        assert_eq!(refused.reason, RejectReason::Busy);
        assert!(refused.reason.is_temporary());
        // Another agency's transfers do not count against this one.
        assert!(check_unfinished(&blobs, &city, this, max, &offered(100)).is_ok());
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
        assert!(check_unfinished(&blobs, &prison, this, max - 10, &none).is_ok());
        assert!(check_unfinished(&blobs, &prison, this, max - 9, &none).is_err());
    }

    #[test]
    fn a_peer_may_leave_only_so_many_partial_files_however_small() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let city = AgencyId::new("nl.city.utrecht").unwrap();
        let none = HashMap::new();
        let resumed = ("aa".repeat(16), hex(&[1; 32]));
        let resumed = (resumed.0.as_str(), resumed.1.as_str());
        // Its own partial, which this offer resumes, never counts.
        std::fs::write(blobs.partial_path(&prison, &[0xaa; 16], &[1; 32]), [0u8; 1]).unwrap();
        for i in 0..MAX_PARTIAL_FILES_PER_PEER - 1 {
            let id = [u8::try_from(i).unwrap(); 16];
            std::fs::write(blobs.partial_path(&prison, &id, &[2; 32]), [0u8; 1]).unwrap();
        }
        // One byte each, far from the byte limit: one file short of the file limit.
        assert!(check_unfinished(&blobs, &prison, resumed, 1 << 20, &none).is_ok());
        std::fs::write(blobs.partial_path(&prison, &[0xbb; 16], &[2; 32]), []).unwrap();
        let refused = check_unfinished(&blobs, &prison, resumed, 1 << 20, &none).unwrap_err();
        assert_eq!(refused.reason, RejectReason::Busy);
        assert!(
            refused.detail.contains("partial files"),
            "{}",
            refused.detail
        );
        // Another agency's files are its own.
        assert!(check_unfinished(&blobs, &city, resumed, 1 << 20, &none).is_ok());
    }

    #[test]
    fn offers_in_progress_count_for_their_sender_but_the_one_asking() {
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let mut in_flight = HashMap::new();
        in_flight.insert(("nl.prison.vught".into(), "aa".into()), 700);
        in_flight.insert(("nl.prison.vught".into(), "bb".into()), 30);
        in_flight.insert(("nl.city.utrecht".into(), "cc".into()), 5);
        assert_eq!(offered_by(&in_flight, &prison, "bb"), 700);
        assert_eq!(offered_by(&in_flight, &prison, "dd"), 730);
        assert_eq!(offered_by(&HashMap::new(), &prison, "dd"), 0);
    }

    #[test]
    fn partials_under_one_id_with_other_hashes_count_and_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let max = MAX_PARTIAL_BYTES_PER_PEER;
        let none = HashMap::new();
        // A peer that offered one id with made-up hashes holds a partial under each.
        for h in 1..=3u8 {
            let file = File::create(blobs.partial_path(&prison, &[0xaa; 16], &[h; 32])).unwrap();
            file.set_len(max / 2).unwrap();
        }
        let id = hex(&[0xaa; 16]);
        let fourth = hex(&[4; 32]);
        let offer = (id.as_str(), fourth.as_str());
        // They count against a fourth hash under the same id...
        let refused = check_unfinished(&blobs, &prison, offer, max, &none).unwrap_err();
        assert_eq!(refused.reason, RejectReason::Busy);
        // ...and the one being resumed is the only one that does not.
        let first = hex(&[1; 32]);
        let refused = check_unfinished(&blobs, &prison, (&id, &first), 1, &none).unwrap_err();
        assert_eq!(refused.reason, RejectReason::Busy);
        // An offer keeps only its own partial under its id.
        assert_eq!(blobs.discard_other_partials(&prison, &id, &first), 2);
        let left = blobs.partials_of(&prison);
        assert_eq!(left.len(), 1);
        assert_eq!(left.first().map(|p| p.hash.as_str()), Some(first.as_str()));
        assert!(check_unfinished(&blobs, &prison, (&id, &first), max, &none).is_ok());
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
        // An fsync refused for want of space is not: its partial is discarded, not resumed.
        let failed = sync_failed(Error::from_raw_os_error(ENOSPC));
        assert!(!is_disk_full(&failed));
        assert!(failed.to_string().contains("cannot fsync"), "{failed}");
    }

    #[tokio::test]
    async fn bytes_read_into_the_room_reach_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.partial");
        let mut writer = PartialWriter::open(&path, 0, ContentHasher::new(), None).unwrap();
        // A small transfer's chunk is as long as the bytes expected, no longer.
        let room = writer.room(6);
        assert_eq!(room.len(), 6);
        room.get_mut(..4).unwrap().copy_from_slice(b"abcd");
        writer.filled(4).await.unwrap();
        // The same chunk goes on where it stopped.
        let room = writer.room(2);
        assert_eq!(room.len(), 2);
        room.copy_from_slice(b"ef");
        writer.filled(2).await.unwrap();
        // A large transfer's chunks are capped at WRITE_CHUNK and end at a block boundary of
        // the file (to be written as they are), and are never empty.
        assert_eq!(writer.room(usize::MAX).len(), WRITE_CHUNK - 6);
        writer.room(usize::MAX).fill(7);
        writer.filled(WRITE_CHUNK - 6).await.unwrap();
        assert_eq!(writer.room(usize::MAX).len(), WRITE_CHUNK);
        writer.room(usize::MAX).fill(8);
        writer.filled(WRITE_CHUNK).await.unwrap();
        assert_eq!(writer.room(0).len(), 1);
        writer.filled(0).await.unwrap();
        let hash = writer.finish().await.unwrap().0.finalize();
        let mut expected = b"abcdef".to_vec();
        expected.extend(std::iter::repeat_n(7u8, WRITE_CHUNK - 6));
        expected.extend(std::iter::repeat_n(8u8, WRITE_CHUNK));
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(hash, content_hash(&expected));
    }

    #[tokio::test]
    async fn a_writer_that_failed_says_so_again_at_the_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.partial");
        // The file lost bytes since they were hashed: the writer stops at once.
        std::fs::write(&path, b"abc").unwrap();
        let mut writer = PartialWriter::open(&path, 10, ContentHasher::new(), None).unwrap();
        writer.append(b"xyz").await.unwrap();
        let first = writer.flush().await.unwrap_err();
        assert!(
            first
                .to_string()
                .contains("holds 3 bytes, not the 10 hashed"),
            "{first}"
        );
        let again = writer.finish().await.unwrap_err();
        assert!(again.to_string().contains("writer failed"), "{again}");
    }

    #[tokio::test]
    async fn a_partial_is_appended_and_hashed_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.partial");
        std::fs::write(&path, b"abc").unwrap();
        let mut hasher = ContentHasher::new();
        hasher.update(b"abc");
        let mut writer = PartialWriter::open(&path, 3, hasher, None).unwrap();
        writer.append(b"de").await.unwrap();
        writer.flush().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcde");
        writer.append(b"f").await.unwrap();
        let hash = writer.finish().await.unwrap().0.finalize();
        assert_eq!(hash, content_hash(b"abcdef"));
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
    }
}
