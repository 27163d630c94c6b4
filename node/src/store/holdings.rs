//! The bytes of received documents each agency keeps on this node: every inbox copy not
//! deleted since, counted for the agency that delivered it (the forwarder of a forwarded
//! copy, else its sender). Kept by triggers in the transactions that add a copy or record its
//! deletion, so it is never out of step with the inbox, and read with one lookup when an
//! agency's quota is checked (see `daemon::quota`).

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbox_holdings (
    agency TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS inbox_holdings_add AFTER INSERT ON inbox
WHEN NOT EXISTS (SELECT 1 FROM inbox_deletions d WHERE d.doc_id = NEW.doc_id AND d.sender = NEW.sender)
BEGIN
    INSERT INTO inbox_holdings (agency, bytes)
    VALUES (coalesce(NEW.forwarded_by, NEW.sender), NEW.sealed_len)
    ON CONFLICT (agency) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS inbox_holdings_remove AFTER INSERT ON inbox_deletions
BEGIN
    UPDATE inbox_holdings
    SET bytes = max(0, bytes - (SELECT i.sealed_len FROM inbox i
                                WHERE i.doc_id = NEW.doc_id AND i.sender = NEW.sender))
    WHERE agency = (SELECT coalesce(i.forwarded_by, i.sender) FROM inbox i
                    WHERE i.doc_id = NEW.doc_id AND i.sender = NEW.sender);
END;
";

/// Counts the copies received before this table existed (a store of an earlier version):
/// once, when the table is empty but the inbox is not.
pub(super) fn count_earlier_copies(conn: &Connection) -> rusqlite::Result<()> {
    let empty: bool = conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM inbox_holdings) AND EXISTS (SELECT 1 FROM inbox)",
        [],
        |r| r.get(0),
    )?;
    if empty {
        conn.execute_batch(
            "INSERT INTO inbox_holdings (agency, bytes)
             SELECT coalesce(i.forwarded_by, i.sender), sum(i.sealed_len) FROM inbox i
             WHERE NOT EXISTS (SELECT 1 FROM inbox_deletions d
                               WHERE d.doc_id = i.doc_id AND d.sender = i.sender)
             GROUP BY 1",
        )?;
    }
    Ok(())
}

/// The bytes of documents `agency` delivered that this node keeps.
pub fn held_by(conn: &Connection, agency: &str) -> Result<u64> {
    let bytes: Option<i64> = conn
        .prepare_cached("SELECT bytes FROM inbox_holdings WHERE agency = ?1")?
        .query_row([agency], |r| r.get(0))
        .optional()?;
    Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
}

/// The bytes each agency that delivered documents here keeps, by agency id.
pub fn by_agency(conn: &Connection) -> Result<std::collections::HashMap<String, u64>> {
    let mut stmt = conn.prepare_cached("SELECT agency, bytes FROM inbox_holdings")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::custody::record_inbox_deletion;
    use crate::store::db::open_writer;
    use crate::store::records::{InboxRow, inbox_insert};
    use liaise_protocol::wire::DeletionReason;

    fn row(doc: u8, sender: &str, forwarded_by: Option<&str>, len: u64) -> InboxRow {
        InboxRow {
            doc_id: format!("{doc:032x}"),
            sender: sender.into(),
            forwarded_by: forwarded_by.map(str::to_owned),
            blob: format!("{doc:064x}"),
            sealed_len: len,
            label: "restricted".into(),
            created: 1,
            received_at: 2,
            verification: "verified".into(),
            not_after: None,
        }
    }

    /// Records the deletion of document `doc` from `sender` at `at`.
    fn delete(conn: &Connection, doc: u8, sender: &str, reason: DeletionReason, at: u64) {
        let doc_id = row(doc, sender, None, 0).doc_id;
        record_inbox_deletion(conn, &doc_id, sender, reason.as_str(), at).unwrap();
    }

    #[test]
    fn copies_count_for_who_delivered_them_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("store.db")).unwrap();
        let (city, prison) = ("nl.city.utrecht", "nl.prison.vught");
        inbox_insert(&conn, &row(1, city, None, 100), b"r").unwrap();
        inbox_insert(&conn, &row(2, city, None, 50), b"r").unwrap();
        // The same copy again changes nothing.
        inbox_insert(&conn, &row(2, city, None, 50), b"r").unwrap();
        // A copy of the city's document forwarded by the prison counts for the prison.
        inbox_insert(&conn, &row(3, city, Some(prison), 30), b"r").unwrap();
        assert_eq!(held_by(&conn, city).unwrap(), 150);
        assert_eq!(held_by(&conn, prison).unwrap(), 30);

        delete(&conn, 1, city, DeletionReason::Expired, 5);
        // Recorded twice, subtracted once.
        delete(&conn, 1, city, DeletionReason::Expired, 6);
        assert_eq!(held_by(&conn, city).unwrap(), 50);
        // A deletion of a copy never received, then that copy: it is never kept.
        delete(&conn, 4, city, DeletionReason::Revoked, 7);
        inbox_insert(&conn, &row(4, city, None, 70), b"r").unwrap();
        assert_eq!(held_by(&conn, city).unwrap(), 50);
        assert_eq!(held_by(&conn, "nl.probation.utrecht").unwrap(), 0);
        let every = by_agency(&conn).unwrap();
        assert_eq!(every.get(city), Some(&50));
        assert_eq!(every.get(prison), Some(&30));
    }

    #[test]
    fn a_store_from_before_the_table_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let conn = open_writer(&path).unwrap();
        let city = "nl.city.utrecht";
        inbox_insert(&conn, &row(1, city, None, 100), b"r").unwrap();
        inbox_insert(&conn, &row(2, city, None, 40), b"r").unwrap();
        delete(&conn, 2, city, DeletionReason::Expired, 5);
        // As an earlier version left it: no counts.
        conn.execute_batch("DELETE FROM inbox_holdings").unwrap();
        drop(conn);
        let conn = open_writer(&path).unwrap();
        assert_eq!(held_by(&conn, city).unwrap(), 100);
        drop(conn);
        // Opened again: not counted twice.
        let conn = open_writer(&path).unwrap();
        assert_eq!(held_by(&conn, city).unwrap(), 100);
    }
}
