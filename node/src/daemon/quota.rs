//! How much one agency may keep on this node: the documents it delivered (not deleted since),
//! its unfinished transfers, and what stays for good of every document it ever delivered
//! ([`RECORD_BYTES`] each), together. So a member, however hostile, can fill at most its share
//! of the disk, and every other member can still deliver.
//!
//! An agency that keeps nothing here may always deliver one document, however large: so it
//! keeps at most its quota or one document, whichever is more. Such a document must leave one
//! quota free on the disk, so that it cannot take the room every other agency delivers into.
//!
//! The share is a node setting (`liaise node run --agency-quota`): a percentage of the file
//! system the store is on, [`DEFAULT_AGENCY_SHARE_PERCENT`] unless set, or a fixed size. A
//! delivery over it is refused as `DiskFull` with a detail that says why, so the sender keeps
//! it queued and retries, as for a full disk.

use std::path::Path;

use anyhow::{Result, bail};
use liaise_keys::AgencyId;
use liaise_protocol::wire::RejectReason;

use super::incoming::{Refusal, Reserve};
use indicatif::BinaryBytes;

/// The share of the store's file system one agency may fill unless the node is told otherwise.
pub const DEFAULT_AGENCY_SHARE_PERCENT: u8 = 25;

/// What this node keeps for good of every document an agency delivers, deleted or not: its
/// inbox line with the receipt, its receive and deletion log entries, its events, and their
/// index entries. About 2.5 KiB by the sizes of those rows; rounded up. Charged against that
/// agency's quota, so that documents deleted as soon as they arrive (expiring at once, say)
/// cannot fill the disk by giving their bytes back and leaving their records: with the default
/// share, an agency reaches its quota with records alone after millions of documents.
pub const RECORD_BYTES: u64 = 4096;

/// What an agency that keeps `bytes` of documents here, and delivered `copies` in all, has
/// used of its quota (unfinished transfers aside).
pub fn charged(bytes: u64, copies: u64) -> u64 {
    let kept = Kept {
        stored: bytes,
        unfinished: 0,
        copies,
    };
    kept.documents().saturating_add(kept.records())
}

/// What one agency may keep on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgencyQuota {
    /// This percentage (1 to 100) of the size of the file system the store is on.
    Share(u8),
    /// This many bytes.
    Bytes(u64),
}

impl Default for AgencyQuota {
    fn default() -> Self {
        Self::Share(DEFAULT_AGENCY_SHARE_PERCENT)
    }
}

impl AgencyQuota {
    /// Reads `25%`, or a size: `512MiB`, `20GiB`, `1TiB`, `4096KiB` or a number of bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            return match percent.trim().parse::<u8>() {
                Ok(p @ 1..=100) => Ok(Self::Share(p)),
                _ => bail!("a share must be 1% to 100%"),
            };
        }
        let units: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        let (number, unit) = units
            .iter()
            .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|n| (n, *unit)))
            .unwrap_or((text, 1));
        let Ok(count) = number.trim().parse::<u64>() else {
            bail!("use a share such as 25% or a size such as 20GiB, 512MiB or 1TiB");
        };
        match count.checked_mul(unit) {
            Some(0) => bail!("a quota of 0 bytes would refuse every document"),
            Some(bytes) => Ok(Self::Bytes(bytes)),
            None => bail!("that size is too large"),
        }
    }

    /// The limit in bytes for a store in `dir`; `None` (no limit) for a share when the size of
    /// the file system cannot be read.
    pub fn limit(&self, dir: &Path) -> Option<u64> {
        match *self {
            Self::Bytes(bytes) => Some(bytes),
            Self::Share(percent) => {
                let stat = rustix::fs::statvfs(dir).ok()?;
                let size = u128::from(stat.f_blocks) * u128::from(stat.f_frsize);
                u64::try_from(size * u128::from(percent) / 100).ok()
            }
        }
    }
}

/// What an agency keeps on this node when another of its documents is offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// The documents it delivered that this node keeps.
    pub stored: u64,
    /// Its other transfers not finished yet (partial files and offers being received).
    pub unfinished: u64,
    /// The documents it ever delivered here, deleted or not: each is charged [`RECORD_BYTES`].
    pub copies: u64,
}

impl Kept {
    /// The bytes of its documents: kept, and being received.
    fn documents(&self) -> u64 {
        self.stored.saturating_add(self.unfinished)
    }

    /// What its documents' records take, for good.
    fn records(&self) -> u64 {
        self.copies.saturating_mul(RECORD_BYTES)
    }
}

/// What must stay free after a document [`check`] let in: the store's reserve, or for a
/// document let in only because its sender keeps no other here (over its quota, with its
/// records), that quota (see [`Reserve::Quota`]).
pub fn reserve(kept: Kept, offered: u64, limit: u64) -> Reserve {
    let within = kept
        .records()
        .checked_add(offered)
        .and_then(|t| t.checked_add(RECORD_BYTES))
        .is_some_and(|total| total <= limit);
    if kept.documents() == 0 && !within {
        Reserve::Quota(limit)
    } else {
        Reserve::Store
    }
}

/// Refuses `offered` more bytes from `peer` when, with what it keeps here already and the new
/// document's record, they would pass its `limit`. An agency that keeps no document here may
/// always deliver one (the free-space check still applies, keeping one quota free for the
/// others, [`reserve`]), unless its records alone fill its quota: a quota smaller than a
/// document must not make that document undeliverable for good.
pub fn check(peer: &AgencyId, kept: Kept, offered: u64, limit: u64) -> Result<(), Refusal> {
    let (documents, records) = (kept.documents(), kept.records());
    let total = documents
        .checked_add(records)
        .and_then(|t| t.checked_add(offered))
        .and_then(|t| t.checked_add(RECORD_BYTES));
    if (documents == 0 && records < limit) || total.is_some_and(|total| total <= limit) {
        return Ok(());
    }
    let unfinished = match kept.unfinished {
        0 => String::new(),
        bytes => format!(" (+ {} unfinished)", BinaryBytes(bytes)),
    };
    // Read by people at the sender, and cut at 512 bytes on the wire: the reason first.
    Err(Refusal {
        reason: RejectReason::DiskFull,
        detail: format!(
            "over quota: {peer} keeps {}{unfinished} and {} of records of {} documents here, \
             limit {} (the receiver's quota per agency); needs {} more, waits for expiries, \
             revocations or a larger --agency-quota there",
            BinaryBytes(kept.stored),
            BinaryBytes(records),
            kept.copies,
            BinaryBytes(limit),
            BinaryBytes(offered.saturating_add(RECORD_BYTES)),
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_sizes_are_read_and_nonsense_is_refused() {
        assert_eq!(AgencyQuota::parse("25%").unwrap(), AgencyQuota::Share(25));
        assert_eq!(
            AgencyQuota::parse(" 100% ").unwrap(),
            AgencyQuota::Share(100)
        );
        assert_eq!(
            AgencyQuota::parse("20GiB").unwrap(),
            AgencyQuota::Bytes(20 << 30)
        );
        assert_eq!(
            AgencyQuota::parse("512 MiB").unwrap(),
            AgencyQuota::Bytes(512 << 20)
        );
        assert_eq!(
            AgencyQuota::parse("4096").unwrap(),
            AgencyQuota::Bytes(4096)
        );
        for bad in [
            "0%",
            "101%",
            "-5%",
            "0",
            "0MiB",
            "20GB",
            "lots",
            "",
            "99999999TiB",
        ] {
            assert!(AgencyQuota::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_share_is_of_the_file_system_and_a_size_is_itself() {
        let dir = tempfile::tempdir().unwrap();
        let stat = rustix::fs::statvfs(dir.path()).unwrap();
        let size = stat.f_blocks * stat.f_frsize;
        let quarter = AgencyQuota::Share(25).limit(dir.path()).unwrap();
        assert!(
            quarter > 0 && quarter.abs_diff(size / 4) <= 1,
            "{quarter} {size}"
        );
        assert_eq!(AgencyQuota::Bytes(7).limit(dir.path()), Some(7));
    }

    #[test]
    fn an_agency_may_fill_its_quota_and_not_one_byte_more() {
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let kept = |stored, unfinished| Kept {
            stored,
            unfinished,
            copies: 0,
        };
        // Each document is also charged its record.
        let limit = 100 + RECORD_BYTES;
        assert!(check(&prison, kept(60, 0), 40, limit).is_ok());
        assert!(check(&prison, kept(30, 30), 40, limit).is_ok());
        let refusal = check(&prison, kept(60, 0), 41, limit).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::DiskFull);
        assert!(
            refusal.detail.contains("nl.prison.vught keeps 60 B"),
            "{}",
            refusal.detail
        );
        assert!(refusal.detail.contains("--agency-quota"));
        // Unfinished transfers count, and are named.
        let refusal = check(&prison, kept(30, 31), 40, limit).unwrap_err();
        assert!(
            refusal.detail.contains("(+ 31 B unfinished)"),
            "{}",
            refusal.detail
        );
        // Whole within the 512 bytes a refusal keeps on the wire, for a long agency id.
        let long = AgencyId::new("nl.probation.noord-holland-noord").unwrap();
        let big = Kept {
            stored: 600 << 30,
            unfinished: 400 << 30,
            copies: u64::MAX,
        };
        let refusal = check(&long, big, 64 << 30, 1000 << 30).unwrap_err();
        assert!(refusal.detail.chars().count() <= 300, "{}", refusal.detail);
        assert!(check(&prison, kept(u64::MAX, 0), 1, u64::MAX).is_err());
        // Keeping nothing, one document of any size may come; not beside a transfer.
        assert!(check(&prison, kept(0, 0), 1_000, 100).is_ok());
        assert!(check(&prison, kept(1, 0), 1_000, 100).is_err());
        assert!(check(&prison, kept(0, 1), 1_000, 100).is_err());
        // That one keeps the quota free for the others; a document within it, only the reserve.
        assert_eq!(reserve(kept(0, 0), 1_000, 100), Reserve::Quota(100));
        assert_eq!(reserve(kept(0, 0), 100, limit), Reserve::Store);
        assert_eq!(reserve(kept(0, 0), 101, limit), Reserve::Quota(limit));
        assert_eq!(reserve(kept(60, 0), 40, limit), Reserve::Store);
    }

    #[test]
    fn the_records_of_deleted_documents_count_until_they_fill_the_quota() {
        let prison = AgencyId::new("nl.prison.vught").unwrap();
        let records = |copies| Kept {
            stored: 0,
            unfinished: 0,
            copies,
        };
        let limit = 10 * RECORD_BYTES;
        // Keeping no document but nine records: one more document of any size may come, if
        // it leaves the quota free for the others.
        assert!(check(&prison, records(9), 1_000_000, limit).is_ok());
        assert_eq!(reserve(records(9), 1_000_000, limit), Reserve::Quota(limit));
        assert_eq!(reserve(records(8), RECORD_BYTES, limit), Reserve::Store);
        // Ten records fill the quota: nothing more, however small, until the receiver's
        // operator raises it (records stay for good).
        let refusal = check(&prison, records(10), 1, limit).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::DiskFull);
        assert!(
            refusal
                .detail
                .contains("40.00 KiB of records of 10 documents"),
            "{}",
            refusal.detail
        );
        // Beside a kept document, records count with its bytes.
        let kept = Kept {
            stored: RECORD_BYTES,
            unfinished: 0,
            copies: 8,
        };
        assert!(check(&prison, kept, 0, limit).is_ok());
        assert!(check(&prison, kept, 1, limit).is_err());
    }
}
