//! Blob files no row refers to, removed when the node starts.
//!
//! A blob is installed (renamed into `store/blobs/`, the folder fsynced) before the row that
//! refers to it commits: a crash in between leaves a whole sealed copy nobody knows of. The
//! sender was not answered (no receipt, no `send` result), so it sends again; the copy is
//! garbage, but a copy all the same, which a deletion receipt for that document would then
//! wrongly call gone. A copy whose deletion committed but whose unlink a crash undid is the
//! same. At start, before anything installs, such files are removed.

use std::collections::HashSet;

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::blobs::{Blobs, parse_hex, sync_dir};

/// The rows that keep a blob, each query giving the blob names (a column `blob`): documents
/// in the outbox (kept for delivery and evidence), forwarded copies, and received copies not
/// deleted.
const REFERENCES: [&str; 3] = [
    "SELECT blob FROM outbox_documents",
    "SELECT blob FROM outbox_forwards",
    "SELECT i.blob FROM inbox i WHERE NOT EXISTS
         (SELECT 1 FROM inbox_deletions d WHERE d.doc_id = i.doc_id AND d.sender = i.sender)",
];

/// The blob names (content hashes, hex) that rows refer to (see [`REFERENCES`]).
pub fn referenced_blobs(conn: &Connection) -> Result<HashSet<String>> {
    let mut names = HashSet::new();
    for query in REFERENCES {
        let mut stmt = conn.prepare(query)?;
        for name in stmt.query_map([], |r| r.get::<_, String>(0))? {
            names.insert(name?.to_ascii_lowercase());
        }
    }
    Ok(names)
}

/// Whether a row refers to the blob named `name` (a content hash, hex).
pub fn is_referenced(conn: &Connection, name: &str) -> Result<bool> {
    for query in REFERENCES {
        let found: bool = conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM ({query}) r WHERE lower(r.blob) = ?1)"),
            [name.to_ascii_lowercase()],
            |r| r.get(0),
        )?;
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the files in the blob folder named by a content hash that `referenced` does not
/// hold; other files are left alone. Returns how many were removed.
pub fn remove_unreferenced(blobs: &Blobs, referenced: &HashSet<String>) -> Result<usize> {
    let dir = blobs.dir();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if parse_hex::<32>(&name).is_none() || referenced.contains(&name.to_ascii_lowercase()) {
            continue;
        }
        if !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::remove_file(entry.path())
            .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        tracing::info!(blob = %name, "removed a stored copy no record refers to (left by a crash)");
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::records::{self, InboxRow};
    use super::super::{Store, hex};
    use super::*;
    use crate::home::Home;

    #[tokio::test]
    async fn only_copies_no_row_refers_to_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Home::new(dir.path().to_path_buf())).unwrap();
        let row = |doc: u8, blob: u8| InboxRow {
            doc_id: hex(&[doc; 16]),
            sender: "nl.city.utrecht".into(),
            forwarded_by: None,
            blob: hex(&[blob; 32]),
            sealed_len: 6,
            label: "restricted".into(),
            created: 1,
            received_at: 2,
            verification: "verified".into(),
            not_after: None,
        };
        // Two received copies; the second is then deleted (its unlink undone by a crash).
        let (kept, deleted) = (row(1, 1), row(2, 2));
        store
            .db
            .write(move |c| {
                records::inbox_insert(c, &kept, b"receipt")?;
                records::inbox_insert(c, &deleted, b"receipt")?;
                crate::store::custody::record_inbox_deletion(
                    c,
                    &hex(&[2; 16]),
                    "nl.city.utrecht",
                    "revoked",
                    3,
                )?;
                Ok(())
            })
            .await
            .unwrap();
        for blob in [1u8, 2, 3] {
            std::fs::write(store.blobs.path(&[blob; 32]), b"sealed").unwrap();
        }
        // Not a blob name: left alone.
        std::fs::write(store.blobs.dir().join("notes.txt"), b"x").unwrap();

        // One at a time, as after a failed write: by content hash, in either case.
        for (blob, kept) in [(1u8, true), (2, false), (3, false)] {
            let name = hex(&[blob; 32]).to_ascii_uppercase();
            assert_eq!(
                store
                    .db
                    .read(move |c| is_referenced(c, &name))
                    .await
                    .unwrap(),
                kept
            );
        }
        let referenced = store.db.read(referenced_blobs).await.unwrap();
        assert_eq!(remove_unreferenced(&store.blobs, &referenced).unwrap(), 2);
        assert!(store.blobs.path(&[1; 32]).exists());
        assert!(!store.blobs.path(&[2; 32]).exists());
        assert!(!store.blobs.path(&[3; 32]).exists());
        assert!(store.blobs.dir().join("notes.txt").exists());
    }
}
