//! What each agency keeps on this node through the documents it delivered, counted for the
//! agency that delivered them (the forwarder of a forwarded copy, else its sender):
//! - the bytes of every inbox copy not deleted since;
//! - how many copies it ever delivered, deleted or not: each leaves its inbox line, receipt
//!   and log entries for good (the proof of the exchange), which its quota must also bound.
//!
//! Kept by triggers in the transactions that add a copy or record its deletion, so they are
//! never out of step with the inbox, and read with one lookup when an agency's quota is
//! checked (see `daemon::quota`).

use anyhow::Result;
use rusqlite::Connection;

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
CREATE TABLE IF NOT EXISTS inbox_records (
    agency TEXT PRIMARY KEY,
    copies INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS inbox_records_add AFTER INSERT ON inbox
BEGIN
    INSERT INTO inbox_records (agency, copies)
    VALUES (coalesce(NEW.forwarded_by, NEW.sender), 1)
    ON CONFLICT (agency) DO UPDATE SET copies = copies + 1;
END;
";

/// What one agency keeps on this node through the documents it delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// The bytes of its copies not deleted.
    pub bytes: u64,
    /// The copies it ever delivered, deleted or not.
    pub copies: u64,
}

/// Counts the copies received before these tables existed (a store of an earlier version):
/// each once, when it is empty but the inbox is not.
pub(super) fn count_earlier_copies(conn: &Connection) -> rusqlite::Result<()> {
    count_once(
        conn,
        "inbox_holdings",
        "INSERT INTO inbox_holdings (agency, bytes)
         SELECT coalesce(i.forwarded_by, i.sender), sum(i.sealed_len) FROM inbox i
         WHERE NOT EXISTS (SELECT 1 FROM inbox_deletions d
                           WHERE d.doc_id = i.doc_id AND d.sender = i.sender)
         GROUP BY 1",
    )?;
    count_once(
        conn,
        "inbox_records",
        "INSERT INTO inbox_records (agency, copies)
         SELECT coalesce(forwarded_by, sender), count(*) FROM inbox GROUP BY 1",
    )
}

/// Runs `fill` if `table` is empty and the inbox is not.
fn count_once(conn: &Connection, table: &str, fill: &str) -> rusqlite::Result<()> {
    let empty: bool = conn.query_row(
        &format!("SELECT NOT EXISTS (SELECT 1 FROM {table}) AND EXISTS (SELECT 1 FROM inbox)"),
        [],
        |r| r.get(0),
    )?;
    if empty {
        conn.execute_batch(fill)?;
    }
    Ok(())
}

fn count(value: Option<i64>) -> u64 {
    value.map_or(0, |v| u64::try_from(v).unwrap_or(0))
}

/// What `agency` keeps on this node through the documents it delivered.
pub fn held_by(conn: &Connection, agency: &str) -> Result<Holding> {
    let (bytes, copies) = conn
        .prepare_cached(
            "SELECT (SELECT bytes FROM inbox_holdings WHERE agency = ?1),
                    (SELECT copies FROM inbox_records WHERE agency = ?1)",
        )?
        .query_row([agency], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Holding {
        bytes: count(bytes),
        copies: count(copies),
    })
}

/// What each agency that delivered documents here keeps, by agency id.
pub fn by_agency(conn: &Connection) -> Result<std::collections::HashMap<String, Holding>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.agency, h.bytes, r.copies FROM inbox_records r
         LEFT JOIN inbox_holdings h ON h.agency = r.agency",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Holding {
                bytes: count(r.get(1)?),
                copies: count(r.get(2)?),
            },
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
        let held = |agency: &str| {
            let h = held_by(&conn, agency).unwrap();
            (h.bytes, h.copies)
        };
        assert_eq!(held(city), (150, 2));
        assert_eq!(held(prison), (30, 1));

        delete(&conn, 1, city, DeletionReason::Expired, 5);
        // Recorded twice, subtracted once; the copy's records stay, and still count.
        delete(&conn, 1, city, DeletionReason::Expired, 6);
        assert_eq!(held(city), (50, 2));
        // A deletion of a copy never received, then that copy: its bytes are never kept, its
        // inbox line and log entries are.
        delete(&conn, 4, city, DeletionReason::Revoked, 7);
        inbox_insert(&conn, &row(4, city, None, 70), b"r").unwrap();
        assert_eq!(held(city), (50, 3));
        assert_eq!(held("nl.probation.utrecht"), (0, 0));
        let every = by_agency(&conn).unwrap();
        assert_eq!(
            every.get(city),
            Some(&Holding {
                bytes: 50,
                copies: 3
            })
        );
        assert_eq!(
            every.get(prison),
            Some(&Holding {
                bytes: 30,
                copies: 1
            })
        );
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
        conn.execute_batch("DELETE FROM inbox_holdings; DELETE FROM inbox_records")
            .unwrap();
        drop(conn);
        let conn = open_writer(&path).unwrap();
        let counted = Holding {
            bytes: 100,
            copies: 2,
        };
        assert_eq!(held_by(&conn, city).unwrap(), counted);
        drop(conn);
        // Opened again: not counted twice.
        let conn = open_writer(&path).unwrap();
        assert_eq!(held_by(&conn, city).unwrap(), counted);
    }
}
