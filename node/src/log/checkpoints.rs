//! Checkpoints of this node's log, the countersignatures peers gave them, and the peers'
//! checkpoints this node countersigned (what it checks their next checkpoints against).

use anyhow::{Context, Result};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, SigningPublicKey, SigningSecretKey, Timestamp};
use liaise_protocol::log::{
    CHECKPOINT_VERSION, CheckpointBody, LogEntry, LogKind, MAX_PROOF_LEAVES, SignedCheckpoint,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{last, to_hash};

/// Signs a checkpoint of the current head unless one exists for it. Returns the new one.
pub fn sign_if_needed(
    conn: &Connection,
    me: &AgencyId,
    key: &SigningSecretKey,
    now: Timestamp,
) -> Result<Option<SignedCheckpoint>> {
    let Some((seq, head)) = last(conn)? else {
        return Ok(None);
    };
    if latest(conn)?.is_some_and(|(s, _)| s >= seq) {
        return Ok(None);
    }
    let checkpoint = SignedCheckpoint::sign(
        &CheckpointBody {
            version: CHECKPOINT_VERSION,
            agency: me.clone(),
            seq,
            head,
            time: now,
        },
        key,
    );
    conn.prepare_cached(
        "INSERT INTO log_checkpoints (seq, checkpoint, signed_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![seq as i64, checkpoint.to_bytes(), now.0 as i64])?;
    Ok(Some(checkpoint))
}

/// Whether the log has entries past the newest checkpoint (or none is signed yet).
pub fn is_due(conn: &Connection) -> Result<bool> {
    let Some((seq, _)) = last(conn)? else {
        return Ok(false);
    };
    Ok(latest(conn)?.is_none_or(|(s, _)| s < seq))
}

/// Notes that `agency`, signing with `key`, contradicted its checkpoint this node
/// countersigned at `countersigned` (none: it had countersigned nothing under that key).
/// Returns whether this is the first contradiction of that checkpoint, which alone is logged
/// as `fork-detected` (`log.md`, "Witnessing").
pub fn record_fork(
    conn: &Connection,
    agency: &AgencyId,
    key: &SigningPublicKey,
    countersigned: Option<u64>,
    now: Timestamp,
) -> Result<bool> {
    let seq = countersigned.map_or(Ok(-1), i64::try_from)?;
    let added = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO log_forks (agency, signing_key, countersigned_seq, detected_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            agency.as_str(),
            key.to_bytes().as_slice(),
            seq,
            now.0 as i64
        ])?;
    Ok(added == 1)
}

/// The newest checkpoint: its seq and bytes.
pub fn latest(conn: &Connection) -> Result<Option<(u64, Vec<u8>)>> {
    Ok(conn
        .prepare_cached("SELECT seq, checkpoint FROM log_checkpoints ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .optional()?)
}

/// Every checkpoint, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, checkpoint FROM log_checkpoints ORDER BY seq")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The first checkpoint at or after `seq`, preferring one a peer countersigned.
pub fn anchor_for(conn: &Connection, seq: u64) -> Result<Option<(u64, Vec<u8>)>> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let countersigned = conn.prepare_cached(
            "SELECT c.seq, c.checkpoint FROM log_checkpoints c
             WHERE c.seq >= ?1 AND EXISTS (SELECT 1 FROM log_countersignatures s WHERE s.seq = c.seq)
             ORDER BY c.seq LIMIT 1")?.query_row([seq],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?;
    if countersigned.is_some() {
        return Ok(countersigned);
    }
    Ok(conn
        .prepare_cached(
            "SELECT seq, checkpoint FROM log_checkpoints WHERE seq >= ?1 ORDER BY seq LIMIT 1",
        )?
        .query_row([seq], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .optional()?)
}

/// A checkpoint for a witness and the leaf hashes proving it extends what the witness saw.
#[derive(Debug, Clone)]
pub struct WitnessOffer {
    /// The signed checkpoint bytes.
    pub checkpoint: Vec<u8>,
    /// Leaf hashes from the witness's `since + 1` to the checkpoint.
    pub proof: Vec<[u8; 32]>,
}

/// What to offer a witness that last countersigned our checkpoint at `since`: the newest
/// checkpoint it can check in one proof, and the leaf hashes from `since + 1` to it.
pub fn offer_for_witness(conn: &Connection, since: Option<u64>) -> Result<Option<WitnessOffer>> {
    let Some(since) = since else {
        return Ok(latest(conn)?.map(|(_, checkpoint)| WitnessOffer {
            checkpoint,
            proof: Vec::new(),
        }));
    };
    let reach = since.saturating_add(MAX_PROOF_LEAVES as u64);
    let chosen: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT seq, checkpoint FROM log_checkpoints WHERE seq >= ?1 AND seq <= ?2
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(
            params![
                i64::try_from(since).unwrap_or(i64::MAX),
                i64::try_from(reach).unwrap_or(i64::MAX)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, checkpoint)) = chosen else {
        // Nothing at or after what the witness saw: offer the newest, it will see why.
        return Ok(latest(conn)?.map(|(_, checkpoint)| WitnessOffer {
            checkpoint,
            proof: Vec::new(),
        }));
    };
    let mut stmt = conn
        .prepare_cached("SELECT leaf FROM log_entries WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")?;
    let leaves = stmt
        .query_map(params![since as i64, seq], |r| r.get::<_, Vec<u8>>(0))?
        .map(|r| r.map_err(anyhow::Error::from).and_then(|l| to_hash(&l)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(WitnessOffer {
        checkpoint,
        proof: leaves,
    }))
}

/// Whether the log holds entries that no peer has countersigned yet, besides this node's own
/// `countersigned` entries (recording them must not call for a witness in turn, or two nodes
/// would witness each other for ever). Reads from the newest entry down to the first that is
/// not this node's `countersigned`: those accrue only while peers are reachable, and a
/// reachable peer witnesses the log within a minute, so few are read; but however many there
/// are, none hides an older entry that waits.
pub fn has_unwitnessed_entries(conn: &Connection) -> Result<bool> {
    let witnessed: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM log_countersignatures")?
        .query_row([], |r| r.get(0))?;
    let mut stmt =
        conn.prepare_cached("SELECT entry FROM log_entries WHERE seq > ?1 ORDER BY seq DESC")?;
    let newer = stmt.query_map(params![witnessed.unwrap_or(-1)], |r| r.get::<_, Vec<u8>>(0))?;
    for bytes in newer {
        let entry = LogEntry::decode(&bytes?)?;
        if entry.kind != LogKind::Countersigned {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stores a peer's countersignature of our checkpoint at `seq`.
pub fn store_countersignature(
    conn: &Connection,
    seq: u64,
    witness: &AgencyId,
    countersignature: &[u8],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO log_countersignatures (seq, witness, countersignature) VALUES (?1, ?2, ?3)")?.execute(params![seq as i64, witness.as_str(), countersignature],
    )?;
    Ok(())
}

/// Every countersignature: (seq, witness, bytes).
pub fn countersignatures(conn: &Connection) -> Result<Vec<(u64, String, Vec<u8>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, witness, countersignature FROM log_countersignatures ORDER BY seq, witness",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The countersignatures of our checkpoint at `seq`.
pub fn countersignatures_at(conn: &Connection, seq: u64) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT countersignature FROM log_countersignatures WHERE seq = ?1 ORDER BY witness",
    )?;
    let rows = stmt.query_map([seq as i64], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest checkpoint of `agency`'s log under signing key `key` this node countersigned:
/// its seq and head. An agency re-admitted with a new signing key keeps a new log.
pub fn witnessed_last(
    conn: &Connection,
    agency: &AgencyId,
    key: &SigningPublicKey,
) -> Result<Option<(u64, [u8; 32])>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT seq, head FROM log_witnessed WHERE agency = ?1 AND signing_key = ?2
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![agency.as_str(), key.to_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(seq, head)| Ok((seq as u64, to_hash(&head)?)))
        .transpose()
}

/// Whether this node countersigned `agency`'s checkpoint at `seq` under signing key `key`.
pub fn witnessed_at(
    conn: &Connection,
    agency: &AgencyId,
    key: &SigningPublicKey,
    seq: u64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM log_witnessed WHERE agency = ?1 AND signing_key = ?2 AND seq = ?3",
        )?
        .query_row(
            params![agency.as_str(), key.to_bytes().as_slice(), seq as i64],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records a peer's checkpoint, verified with its signing key `key`, that this node
/// countersigned.
pub fn record_witnessed(
    conn: &Connection,
    body: &CheckpointBody,
    key: &SigningPublicKey,
    checkpoint: &[u8],
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO log_witnessed
             (agency, signing_key, seq, head, checkpoint, countersigned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        body.agency.as_str(),
        key.to_bytes().as_slice(),
        i64::try_from(body.seq).context("checkpoint seq out of range")?,
        body.head.as_slice(),
        checkpoint,
        now.0 as i64
    ])?;
    Ok(())
}

/// Marks a countersigned checkpoint that no key of the current roster verifies: an earlier
/// key's, kept as evidence, never compared again and not checked again at every start.
const EARLIER_KEY: &[u8] = &[0];

/// For a store written before the witness tables recorded keys: gives each countersigned
/// checkpoint without one the key of its agency in `roster` if that key verifies it, and
/// [`EARLIER_KEY`] if not (an agency not in `roster` is left for a later start). A recorded
/// fork gets a key only where a checkpoint it contradicted now has one: a fork of an old log,
/// left without, can at worst be reported once more, never hide a fork of the new log.
/// Returns the rows given a key.
pub fn assign_unrecorded_keys(conn: &Connection, roster: &Roster) -> Result<usize> {
    let unrecorded: Vec<(i64, String, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT rowid, agency, checkpoint FROM log_witnessed WHERE signing_key = X''",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut assigned = 0;
    for (rowid, agency, checkpoint) in unrecorded {
        let Some(key) = AgencyId::new(&agency)
            .ok()
            .and_then(|a| roster.member(&a).map(|m| m.signing_key))
        else {
            continue;
        };
        let verifies = SignedCheckpoint::from_bytes(&checkpoint)
            .and_then(|c| c.verify(&key))
            .is_ok();
        let key = if verifies {
            key.to_bytes().to_vec()
        } else {
            EARLIER_KEY.to_vec()
        };
        // OR IGNORE: a row the node recorded since under the same key and seq stays as is.
        assigned += conn
            .prepare_cached("UPDATE OR IGNORE log_witnessed SET signing_key = ?1 WHERE rowid = ?2")?
            .execute(params![key, rowid])?;
    }
    assigned += conn
        .prepare_cached(
            "UPDATE OR IGNORE log_forks SET signing_key = (
                 SELECT w.signing_key FROM log_witnessed w
                 WHERE w.agency = log_forks.agency AND w.seq = log_forks.countersigned_seq
                   AND w.signing_key NOT IN (X'', X'00'))
             WHERE signing_key = X'' AND EXISTS (
                 SELECT 1 FROM log_witnessed w
                 WHERE w.agency = log_forks.agency AND w.seq = log_forks.countersigned_seq
                   AND w.signing_key NOT IN (X'', X'00'))",
        )?
        .execute([])?;
    Ok(assigned)
}

#[cfg(test)]
#[path = "checkpoints_tests.rs"]
mod tests;
