//! How much one agency may keep on this node: the documents it delivered (not deleted since)
//! and its unfinished transfers, together. So a member, however hostile, can fill at most its
//! share of the disk, and every other member can still deliver.
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
}

/// What must stay free after a document [`check`] let in: the store's reserve, or for a first
/// document over its sender's quota, that quota (see [`Reserve::Quota`]).
pub fn reserve(kept: Kept, offered: u64, limit: u64) -> Reserve {
    let held = kept.stored.saturating_add(kept.unfinished);
    if held == 0 && offered > limit {
        Reserve::Quota(limit)
    } else {
        Reserve::Store
    }
}

/// Refuses `offered` more bytes from `peer` when, with what it keeps here already, they would
/// pass its `limit`. An agency that keeps nothing here may always deliver one document (the
/// free-space check still applies, keeping one quota free for the others, [`reserve`]): a
/// quota smaller than a document must not make that document undeliverable for good.
pub fn check(peer: &AgencyId, kept: Kept, offered: u64, limit: u64) -> Result<(), Refusal> {
    let held = kept.stored.saturating_add(kept.unfinished);
    if held == 0
        || held
            .checked_add(offered)
            .is_some_and(|total| total <= limit)
    {
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
            "over quota: {peer} keeps {}{unfinished} here, limit {} (receiver's \
             --agency-quota); needs {} more, waits for expiries or revocations",
            BinaryBytes(kept.stored),
            BinaryBytes(limit),
            BinaryBytes(offered),
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
        let kept = |stored, unfinished| Kept { stored, unfinished };
        assert!(check(&prison, kept(60, 0), 40, 100).is_ok());
        assert!(check(&prison, kept(30, 30), 40, 100).is_ok());
        let refusal = check(&prison, kept(60, 0), 41, 100).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::DiskFull);
        assert!(
            refusal.detail.contains("nl.prison.vught keeps 60 B here"),
            "{}",
            refusal.detail
        );
        assert!(refusal.detail.contains("--agency-quota"));
        // Unfinished transfers count, and are named.
        let refusal = check(&prison, kept(30, 31), 40, 100).unwrap_err();
        assert!(
            refusal.detail.contains("(+ 31 B unfinished)"),
            "{}",
            refusal.detail
        );
        // Whole within the 512 bytes a refusal keeps on the wire, for a long agency id.
        let long = AgencyId::new("nl.probation.noord-holland-noord").unwrap();
        let refusal = check(&long, kept(600 << 30, 400 << 30), 64 << 30, 1000 << 30).unwrap_err();
        assert!(refusal.detail.chars().count() <= 200, "{}", refusal.detail);
        assert!(check(&prison, kept(u64::MAX, 0), 1, u64::MAX).is_err());
        // Keeping nothing, one document of any size may come; not beside a transfer.
        assert!(check(&prison, kept(0, 0), 1_000, 100).is_ok());
        assert!(check(&prison, kept(1, 0), 1_000, 100).is_err());
        assert!(check(&prison, kept(0, 1), 1_000, 100).is_err());
        // That one keeps the quota free for the others; a document within it, only the reserve.
        assert_eq!(reserve(kept(0, 0), 1_000, 100), Reserve::Quota(100));
        assert_eq!(reserve(kept(0, 0), 100, 100), Reserve::Store);
        assert_eq!(reserve(kept(60, 0), 40, 100), Reserve::Store);
    }
}
