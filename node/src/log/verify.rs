//! `liaise log verify`: recompute the whole chain, check every checkpoint against it and
//! its signature, and every countersignature, with the signer's key from the roster history
//! ([`SignerKeys`]).

use anyhow::Result;
use liaise_keys::AgencyId;
use liaise_protocol::log::{
    ChainVerifier, LogEntry, LogKind, SignedCheckpoint, SignedCountersignature,
};
use rusqlite::Connection;
use serde::Serialize;

use super::signer_keys::{SignerKeys, SignerProblem};
use super::{checkpoints, entries};
use crate::store::hex;

/// What `log verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogReport {
    /// Entries whose chain checked out (from the start to the first break).
    pub entries: u64,
    /// The recomputed head, hex.
    pub head: String,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Countersignatures checked.
    pub countersignatures: u64,
    /// Every problem found, the first break first. Empty: the log is intact.
    pub problems: Vec<String>,
    /// Forks this node detected in peers' logs (from its own `fork-detected` entries).
    pub alerts: Vec<String>,
}

impl LogReport {
    /// True if no problem was found.
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the log in `conn`, written by `me`, with the signing keys of `signers`.
pub fn verify_log(conn: &Connection, me: &AgencyId, signers: &SignerKeys) -> Result<LogReport> {
    let mut report = LogReport::default();
    let mut chain = ChainVerifier::new();
    let mut heads: Vec<[u8; 32]> = Vec::new();
    for row in entries(conn, 0, u64::MAX)? {
        match chain.push(row.seq, &row.bytes, &row.leaf, &row.head) {
            Ok((head, entry)) => {
                heads.push(head);
                note_alert(&mut report, &entry);
            }
            Err(brk) => {
                report.problems.push(format!("{brk}"));
                break;
            }
        }
    }
    let chain_broken = !report.problems.is_empty();
    report.entries = chain.len();
    report.head = hex(&chain.head());
    let stored = checkpoints::all(conn)?;
    let mut last_good: Option<u64> = None;
    for (seq, bytes) in &stored {
        report.checkpoints += 1;
        match check_checkpoint(*seq, bytes, me, signers, &heads, chain_broken) {
            Ok(true) => last_good = Some(*seq),
            Ok(false) => {}
            Err(problem) => {
                let since = last_good.map_or(0, |s| s + 1);
                report
                    .problems
                    .push(format!("{problem} (entries {since} to {seq})"));
            }
        }
    }
    for (seq, witness, bytes) in checkpoints::countersignatures(conn)? {
        report.countersignatures += 1;
        let checkpoint = stored
            .iter()
            .find(|(s, _)| *s == seq)
            .and_then(|(_, b)| SignedCheckpoint::from_bytes(b).ok());
        if let Err(problem) =
            check_countersignature(seq, &witness, &bytes, checkpoint.as_ref(), signers)
        {
            report.problems.push(problem);
        }
    }
    Ok(report)
}

fn note_alert(report: &mut LogReport, entry: &LogEntry) {
    if entry.kind == LogKind::ForkDetected {
        let peer = entry.agency.as_ref().map_or("a peer", AgencyId::as_str);
        report.alerts.push(format!(
            "at {}: {peer} offered a checkpoint that contradicts one this node countersigned: {}",
            entry.time, entry.detail
        ));
    }
}

/// `Ok(true)`: matches the chain; `Ok(false)`: beyond a broken chain, not comparable.
fn check_checkpoint(
    seq: u64,
    bytes: &[u8],
    me: &AgencyId,
    signers: &SignerKeys,
    heads: &[[u8; 32]],
    chain_broken: bool,
) -> Result<bool, String> {
    let checkpoint = SignedCheckpoint::from_bytes(bytes)
        .map_err(|_| format!("checkpoint {seq} is unreadable"))?;
    let claimed = checkpoint
        .body_unverified()
        .map_err(|_| format!("checkpoint {seq} is unreadable"))?;
    let body = signers
        .verify(me, claimed.time, |key| checkpoint.verify(key))
        .map_err(|problem| match problem {
            SignerProblem::NotInRoster => {
                format!("{me} is not in the roster: cannot check checkpoint {seq}")
            }
            SignerProblem::DoesNotVerify => {
                format!("checkpoint {seq} does not carry a valid signature of {me}")
            }
        })?;
    if body.seq != seq || &body.agency != me {
        return Err(format!(
            "checkpoint {seq} was moved or belongs to another agency"
        ));
    }
    match usize::try_from(seq).ok().and_then(|i| heads.get(i)) {
        Some(head) if *head == body.head => Ok(true),
        Some(_) => Err(format!(
            "the log no longer matches the signed checkpoint at entry {seq}: an entry was changed, removed or reordered"
        )),
        None if chain_broken => Ok(false),
        None => Err(format!(
            "the signed checkpoint at entry {seq} covers entries the log no longer has: entries were removed from the end"
        )),
    }
}

fn check_countersignature(
    seq: u64,
    witness: &str,
    bytes: &[u8],
    checkpoint: Option<&SignedCheckpoint>,
    signers: &SignerKeys,
) -> Result<(), String> {
    let unreadable = || format!("countersignature of {witness} on checkpoint {seq} is unreadable");
    let signed = SignedCountersignature::from_bytes(bytes).map_err(|_| unreadable())?;
    let claimed = signed.body_unverified().map_err(|_| unreadable())?;
    let not_in_roster =
        || format!("countersigner {witness} of checkpoint {seq} is not in the roster");
    let id = AgencyId::new(witness).map_err(|_| not_in_roster())?;
    if claimed.witness != id {
        return Err(format!(
            "countersignature of {witness} on checkpoint {seq} does not verify"
        ));
    }
    let key = signers
        .verify(&id, claimed.time, |key| signed.verify(key).map(|_| *key))
        .map_err(|problem| match problem {
            SignerProblem::NotInRoster => not_in_roster(),
            SignerProblem::DoesNotVerify => {
                format!("countersignature of {witness} on checkpoint {seq} does not verify")
            }
        })?;
    let Some(checkpoint) = checkpoint else {
        return Err(format!(
            "checkpoint {seq}, which {witness} countersigned, is missing"
        ));
    };
    signed.verify_for(checkpoint, &key).map_err(|_| {
        format!(
            "checkpoint {seq} contradicts the one {witness} countersigned: this log was rewritten"
        )
    })?;
    Ok(())
}
