//! The witness tables of a store written before they recorded the owner's signing key:
//! migrated, and each row given the key that signed it where the current roster tells.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::AgencyId;
use rusqlite::{Connection, params};

use super::{assign_unrecorded_keys, record_fork, witnessed_last};
use crate::log::signer_keys::tests::{CITY, NOW, PROBATION, checkpoint, readmitted};
use crate::store::db::open_writer;

/// The witness tables as an earlier version created them.
const OLD_TABLES: &str = "
CREATE TABLE log_witnessed (
    agency TEXT NOT NULL, seq INTEGER NOT NULL, head BLOB NOT NULL, checkpoint BLOB NOT NULL,
    countersigned_at INTEGER NOT NULL, PRIMARY KEY (agency, seq));
CREATE TABLE log_forks (
    agency TEXT NOT NULL, countersigned_seq INTEGER NOT NULL, detected_at INTEGER NOT NULL,
    PRIMARY KEY (agency, countersigned_seq));
";

#[test]
fn an_earlier_store_keeps_its_witness_records_and_learns_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liaise.db");
    let fed = readmitted();
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(OLD_TABLES).unwrap();
        // Checkpoints countersigned before the city was re-admitted: one by its old key, one
        // by probation's; and a fork recorded against each.
        for (agency, by) in [(CITY, &fed.old), (PROBATION, &fed.probation)] {
            let signed = checkpoint(by, NOW);
            old.execute(
                "INSERT INTO log_witnessed VALUES (?1, 7, ?2, ?3, ?4)",
                params![
                    agency,
                    [0x5a_u8; 32].as_slice(),
                    signed.to_bytes(),
                    NOW.0 as i64
                ],
            )
            .unwrap();
        }
        for agency in [CITY, PROBATION] {
            old.execute(
                "INSERT INTO log_forks VALUES (?1, 7, ?2)",
                params![agency, NOW.0 as i64],
            )
            .unwrap();
        }
    }

    let conn = open_writer(&path).unwrap();
    let (city, probation) = (
        AgencyId::new(CITY).unwrap(),
        AgencyId::new(PROBATION).unwrap(),
    );
    let (new_key, probation_key) = (
        fed.new.secrets.signing.public_key(),
        fed.probation.secrets.signing.public_key(),
    );
    // Until the keys are known nothing is compared against the old rows.
    assert_eq!(
        witnessed_last(&conn, &probation, &probation_key).unwrap(),
        None
    );
    // Probation's checkpoint gets its key, and so does the fork recorded against it. The old
    // city key's checkpoint is marked as an earlier key's and stays, as evidence; the fork
    // recorded against it gets no key, so a fork of the city's new log at the same seq is
    // still reported.
    assert_eq!(assign_unrecorded_keys(&conn, &fed.current).unwrap(), 3);
    assert_eq!(
        witnessed_last(&conn, &probation, &probation_key).unwrap(),
        Some((7, [0x5a; 32]))
    );
    assert_eq!(witnessed_last(&conn, &city, &new_key).unwrap(), None);
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM log_witnessed", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 2);
    let first = record_fork(&conn, &city, &new_key, Some(7), NOW).unwrap();
    assert!(first, "a fork of the new log is reported");
    assert!(!record_fork(&conn, &probation, &probation_key, Some(7), NOW).unwrap());
    // Done once: a second start has nothing left to check.
    assert_eq!(assign_unrecorded_keys(&conn, &fed.current).unwrap(), 0);
}
