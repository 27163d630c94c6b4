//! The node's durable store: SQLite (WAL, group commit) for outbox, inbox, receipts, roster
//! history and events, and sealed documents as content-addressed files.
//!
//! ```text
//! HOME/store/liaise.db   the database (and its -wal, -shm files)
//! HOME/store/blobs/      sealed documents by content hash (see [`blobs`])
//! ```
//!
//! Documents of at most [`held::INLINE_MAX_LEN`] bytes are kept in the database instead, under
//! the same content hash (see [`held`]).
//!
//! Nothing here is plaintext: blobs are sealed documents, rows hold ids, agency names, the
//! clear label, times, states and signed receipts.

pub mod blobs;
pub mod custody;
pub mod custody_key;
pub mod db;
pub mod forwards;
pub mod hashing_chunks;
pub mod held;
pub mod holdings;
pub mod install;
pub mod orphans;
pub mod records;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use blobs::{Blobs, HashingReader, hex, parse_hex, parse_hex_vec};
pub use db::Db;
pub use held::Held;

use crate::fsutil::create_private_dir;
use crate::home::Home;

/// The opened store.
#[derive(Debug, Clone)]
pub struct Store {
    /// The database.
    pub db: Db,
    /// The blob folders.
    pub blobs: Blobs,
}

impl Store {
    /// Opens the store in `HOME/store`, creating it if needed.
    pub fn open(home: &Home) -> Result<Self> {
        let dir = store_dir(home);
        create_private_dir(&dir)?;
        let blobs = Blobs::open(&dir)?;
        let db = Db::open(&dir.join("liaise.db"))?;
        Ok(Self { db, blobs })
    }
}

/// `HOME/store`.
pub fn store_dir(home: &Home) -> PathBuf {
    home.root().join("store")
}

/// A document this node received and has deleted since (on its sender's request, or at its
/// expiry): gone for good, so it can be neither opened nor verified here.
#[derive(Debug)]
pub struct DeletedCopy {
    /// The document.
    pub document_id: [u8; 16],
    /// When this node deleted its copy.
    pub at: u64,
    /// Why, as recorded (see [`custody::deletion_why`]).
    pub reason: String,
    /// The agency the copy came from.
    pub sender: String,
}

impl std::fmt::Display for DeletedCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "document {} was deleted from this node at {} ({})",
            hex(&self.document_id),
            liaise_keys::Timestamp(self.at),
            custody::deletion_why(&self.reason)
        )
    }
}

impl std::error::Error for DeletedCopy {}

/// Fails with [`DeletedCopy`] if this node received document `id` and has deleted its copy.
fn refuse_if_deleted(conn: &rusqlite::Connection, id: [u8; 16]) -> Result<()> {
    match records::deleted_copy(conn, &hex(&id))? {
        Some((at, reason, sender)) => Err(DeletedCopy {
            document_id: id,
            at,
            reason,
            sender,
        }
        .into()),
        None => Ok(()),
    }
}

/// Resolves a document id (hex, as `liaise send` and `liaise inbox` print it) to its sealed
/// bytes in this node's store: a received document first, else a sent one. Reads the
/// database directly, so it works whether or not the node runs. For `liaise open`,
/// `liaise verify` and `liaise evidence export` given a DOC_ID instead of a file.
pub fn sealed_document(home: &Home, doc_id: &str) -> Result<Held> {
    let Some(id) = parse_hex::<16>(doc_id) else {
        bail!("`{doc_id}` is not a document id (32 hex digits)");
    };
    let dir = store_dir(home);
    let db_path = dir.join("liaise.db");
    if !db_path.exists() {
        bail!(
            "no store in {}; has the node run yet?",
            home.root().display()
        );
    }
    let conn = db::open_reader(&db_path)?;
    let Some(found) = records::blob_of_document(&conn, &hex(&id))? else {
        // A copy this node held and deleted on its sender's request, or at its expiry, is
        // gone for good. Only a deletion of a copy received from that sender counts: anyone
        // may ask for a deletion naming itself, which says nothing of another sender's copy.
        refuse_if_deleted(&conn, id)?;
        bail!(
            "no document {doc_id} in {} (not received yet, or a mistyped id: `liaise inbox` \
             lists what arrived)",
            dir.display()
        );
    };
    let hash = parse_hex::<32>(&found).context("corrupt blob name in the store")?;
    if let Some(held) = stored_blob(&conn, &dir, &hash)? {
        return Ok(held);
    }
    // A copy this node forwarded is listed as sent, but its bytes went with the received
    // copy's deletion (a revocation, say): say so, not that the store lost them.
    refuse_if_deleted(&conn, id)?;
    bail!(
        "the store in {} lists document {doc_id} but holds none of its bytes",
        dir.display()
    )
}

/// The blob with content hash `hash` in the store folder `store`, read through `conn`.
pub fn stored_blob(
    conn: &rusqlite::Connection,
    store: &Path,
    hash: &[u8; 32],
) -> Result<Option<Held>> {
    held::find(conn, hash, &store.join("blobs").join(hex(hash)))
}

impl Store {
    /// The stored document with content hash `hash` and length `len`: from the database if it
    /// is small enough to be kept there and is, else its file (which the caller's read finds
    /// missing if it is).
    pub async fn held(&self, hash: [u8; 32], len: u64) -> Result<Held> {
        if len <= held::INLINE_MAX_LEN
            && let Some(bytes) = self.db.read(move |c| held::get(c, &hash)).await?
        {
            return Ok(Held::Inline(bytes));
        }
        Ok(Held::File(self.blobs.path(&hash)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::records::InboxRow;
    use super::*;

    fn received(doc_id: &str, sender: &str, blob: u8) -> InboxRow {
        InboxRow {
            doc_id: doc_id.to_owned(),
            sender: sender.to_owned(),
            forwarded_by: None,
            blob: hex(&[blob; 32]),
            sealed_len: 100,
            label: "restricted".into(),
            created: 1,
            received_at: 2,
            verification: "verified".into(),
            not_after: None,
        }
    }

    #[tokio::test]
    async fn an_id_received_from_two_senders_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        let store = Store::open(&home).unwrap();
        let id = hex(&[7u8; 16]);
        let row = received(&id, "nl.city.utrecht", 1);
        store
            .db
            .write(move |c| records::inbox_insert(c, &row, b"receipt"))
            .await
            .unwrap();
        std::fs::write(store.blobs.path(&[1; 32]), b"sealed").unwrap();
        let one = sealed_document(&home, &id).unwrap();
        assert_eq!(one, Held::File(store.blobs.path(&[1; 32])));

        // A second member sends its own document under the same id.
        let row = received(&id, "nl.prison.vught", 2);
        store
            .db
            .write(move |c| records::inbox_insert(c, &row, b"receipt"))
            .await
            .unwrap();
        let e = format!("{:#}", sealed_document(&home, &id).unwrap_err());
        assert!(e.contains("received from nl.city.utrecht"), "{e}");
        assert!(e.contains("received from nl.prison.vught"), "{e}");
        assert!(e.contains("pass the sealed file"), "{e}");
    }

    #[tokio::test]
    async fn one_documents_outbox_lines_are_read_by_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Home::new(dir.path().to_path_buf())).unwrap();
        for i in 0..3u8 {
            let doc = records::NewOutgoing {
                doc_id: hex(&[i; 16]),
                blob: hex(&[i; 32]),
                sealed_len: 100,
                label: "restricted".into(),
                created: 1,
                queued_at: 10,
                recipients: vec![
                    ("nl.prison.vught".to_owned(), 1_000),
                    ("nl.probation.utrecht".to_owned(), 1_000),
                ],
            };
            store
                .db
                .write(move |c| records::queue_document(c, &doc))
                .await
                .unwrap();
        }
        let (lines, plan) = store
            .db
            .read(|c| {
                let lines = records::outbox_of(c, &hex(&[1; 16]))?;
                let plan: Vec<String> = c
                    .prepare(&format!(
                        "EXPLAIN QUERY PLAN {}",
                        records::one_documents_lines()
                    ))?
                    .query_map([hex(&[1; 16])], |r| r.get(3))?
                    .collect::<Result<_, _>>()?;
                Ok((lines, plan))
            })
            .await
            .unwrap();
        let to: Vec<_> = lines
            .iter()
            .map(|l| (l.doc_id.clone(), l.recipient.as_str()))
            .collect();
        let id = hex(&[1; 16]);
        assert_eq!(
            to,
            vec![
                (id.clone(), "nl.prison.vught"),
                (id, "nl.probation.utrecht")
            ]
        );
        // Looked up, not every line of the outbox read.
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN o")),
            "{plan:?}"
        );
        assert_eq!(store.db.read(records::list_outbox).await.unwrap().len(), 6);
    }

    #[tokio::test]
    async fn due_deliveries_leave_out_rows_in_flight_and_slow_ones_held_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Home::new(dir.path().to_path_buf())).unwrap();
        // Two large documents for the prison, queued first, then a large and a small one for
        // the probation service.
        let queued = [
            ("nl.prison.vught", 1_000_000),
            ("nl.prison.vught", 1_000_000),
            ("nl.probation.utrecht", 1_000_000),
            ("nl.probation.utrecht", 100),
        ];
        for (i, (to, len)) in queued.into_iter().enumerate() {
            let doc = records::NewOutgoing {
                doc_id: hex(&[i as u8; 16]),
                blob: hex(&[i as u8; 32]),
                sealed_len: len,
                label: "restricted".into(),
                created: 1,
                queued_at: 10 + i as u64,
                recipients: vec![(to.to_owned(), 1_000)],
            };
            store
                .db
                .write(move |c| records::queue_document(c, &doc))
                .await
                .unwrap();
        }
        let due = |limit: usize, skip: Vec<i64>, held_back: records::HeldBack| {
            let db = store.db.clone();
            async move {
                db.read(move |c| records::due(c, 100, limit, &skip, &held_back))
                    .await
                    .unwrap()
            }
        };
        let sent = |rows: &[records::Due]| -> Vec<(String, u64)> {
            rows.iter()
                .map(|d| (d.recipient.clone(), d.sealed_len))
                .collect()
        };
        let held_back = |recipients: &[&str], all: bool| records::HeldBack {
            min_len: 256 * 1024,
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            all,
            full: Vec::new(),
            small_room: None,
            small_full: Vec::new(),
        };

        // Oldest first: a limit of two sees only the prison's rows; with those in flight,
        // the next ones.
        let first = due(2, Vec::new(), Default::default()).await;
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|d| d.recipient == "nl.prison.vught"));
        let skip = first.iter().map(|d| d.row).collect::<Vec<_>>();
        let next = due(2, skip, Default::default()).await;
        assert_eq!(
            sent(&next),
            [
                ("nl.probation.utrecht".into(), 1_000_000),
                ("nl.probation.utrecht".into(), 100)
            ]
        );
        // The prison's large documents held back: the probation service's come first.
        let other = due(2, Vec::new(), held_back(&["nl.prison.vught"], false)).await;
        assert_eq!(sent(&other), sent(&next));
        // Every slow delivery held back: only the small one, on its first attempt.
        let small = due(4, Vec::new(), held_back(&[], true)).await;
        assert_eq!(sent(&small), [("nl.probation.utrecht".into(), 100)]);
        // Once an attempt at it failed, a retry is slow too and is held back with the rest.
        let doc = small.first().unwrap().doc_id.clone();
        store
            .db
            .write(move |c| {
                records::mark_retry(c, &doc, "nl.probation.utrecht", 50, "timed out", 40)
            })
            .await
            .unwrap();
        assert!(due(4, Vec::new(), held_back(&[], true)).await.is_empty());
        let retried = due(4, Vec::new(), held_back(&["nl.prison.vught"], false)).await;
        assert!(sent(&retried).contains(&("nl.probation.utrecht".into(), 100)));
        // An agency with as many deliveries in flight as one may have: none of its rows.
        let full = records::HeldBack {
            full: vec!["nl.probation.utrecht".into()],
            ..held_back(&[], false)
        };
        let prison = due(4, Vec::new(), full).await;
        assert_eq!(
            sent(&prison),
            [
                ("nl.prison.vught".into(), 1_000_000),
                ("nl.prison.vught".into(), 1_000_000)
            ]
        );
        // Too little room for documents held in memory: the small one (100 bytes) waits,
        // the large ones (sent from their files) do not; with room for it, it comes.
        let no_room = |room| records::HeldBack {
            small_room: Some(room),
            ..held_back(&[], false)
        };
        let large = due(4, Vec::new(), no_room(99)).await;
        assert_eq!(large.len(), 3);
        assert!(large.iter().all(|d| d.sealed_len == 1_000_000), "{large:?}");
        let all = due(4, Vec::new(), no_room(100)).await;
        assert_eq!(all.len(), 4);
        // The probation service's documents held in memory wait; its large one does not.
        let probation_full = records::HeldBack {
            small_full: vec!["nl.probation.utrecht".into()],
            ..held_back(&[], false)
        };
        let rows = due(4, Vec::new(), probation_full).await;
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|d| d.sealed_len == 1_000_000), "{rows:?}");
    }

    #[tokio::test]
    async fn only_a_deletion_by_the_copys_own_sender_hides_it() {
        use liaise_protocol::wire::DeletionReason;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        let store = Store::open(&home).unwrap();
        let id = hex(&[9u8; 16]);
        let row = received(&id, "nl.city.utrecht", 1);
        store
            .db
            .write(move |c| records::inbox_insert(c, &row, b"receipt"))
            .await
            .unwrap();
        std::fs::write(store.blobs.path(&[1; 32]), b"sealed").unwrap();

        // Another member asks for a deletion of this id in its own name: the city's copy
        // still opens.
        let other = id.clone();
        store
            .db
            .write(move |c| {
                custody::record_inbox_deletion(
                    c,
                    &other,
                    "nl.prison.vught",
                    DeletionReason::Revoked.as_str(),
                    5,
                )
            })
            .await
            .unwrap();
        assert_eq!(
            sealed_document(&home, &id).unwrap(),
            Held::File(store.blobs.path(&[1; 32]))
        );

        // The city's own deletion does hide it, saying when and why.
        let city = id.clone();
        store
            .db
            .write(move |c| {
                custody::record_inbox_deletion(
                    c,
                    &city,
                    "nl.city.utrecht",
                    DeletionReason::Expired.as_str(),
                    6,
                )
            })
            .await
            .unwrap();
        let e = format!("{:#}", sealed_document(&home, &id).unwrap_err());
        assert!(e.contains("was deleted from this node"), "{e}");
        assert!(e.contains("expired"), "{e}");
    }
}
