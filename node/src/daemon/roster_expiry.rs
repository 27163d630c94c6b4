//! Tells the operator, in the node's log, that its roster runs out: from [`EXPIRY_WARNING`]
//! before its expiry, once a day and again whenever another roster is taken up that also
//! expires soon. A roster that expired while the node runs is logged as such: from then on no
//! peer accepts this node, nor this node any peer, until a current one is imported.

use std::sync::Arc;
use std::time::Duration;

use super::{Node, now_secs};

/// How long before a roster's expiry the node starts to warn (and `liaise status` notes it):
/// time enough for the stewards to publish the next one.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// How often the node looks at the expiry.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// How often the same roster's warning is repeated.
const REPEAT_EVERY: Duration = Duration::from_secs(86_400);

/// The warning for a roster of `serial` that expires at `expires_at`, at `now` (UNIX
/// seconds); `None` while its expiry is further off than [`EXPIRY_WARNING`].
pub(crate) fn expiry_warning(serial: u64, expires_at: u64, now: u64) -> Option<String> {
    if expires_at <= now {
        return Some(format!(
            "the roster (serial {serial}) has expired: peers refuse this node and it refuses \
             them; import a current roster from your stewards (`liaise roster import`)"
        ));
    }
    let left = expires_at - now;
    if left > EXPIRY_WARNING.as_secs() {
        return None;
    }
    let days = left / 86_400;
    let hours = (left % 86_400) / 3600;
    Some(format!(
        "the roster (serial {serial}) expires in {days} d {hours} h: ask your stewards for the \
         next one and import it (`liaise roster import`) before then"
    ))
}

/// Logs [`expiry_warning`] while it applies, at most once per [`REPEAT_EVERY`] for one roster
/// (and once more when it expires).
pub async fn watch(node: Arc<Node>) {
    // (serial, when, expired) of the last warning; `when` on the monotonic clock, so that
    // a wall clock set back does not silence the warning.
    let mut last: Option<(u64, tokio::time::Instant, bool)> = None;
    loop {
        let roster = node.roster.current();
        let (serial, expires_at, now) = (roster.serial(), roster.body().expires_at.0, now_secs());
        if let Some(warning) = expiry_warning(serial, expires_at, now) {
            let expired = expires_at <= now;
            let due = last.is_none_or(|(warned_serial, at, warned_expired)| {
                warned_serial != serial || warned_expired != expired || at.elapsed() >= REPEAT_EVERY
            });
            if due {
                tracing::warn!("{warning}");
                last = Some((serial, tokio::time::Instant::now(), expired));
            }
        }
        // Looks again right after the expiry, if that comes first: peers refuse the node from
        // that moment.
        let until_expiry = Duration::from_secs(expires_at.saturating_sub(now));
        let next = match until_expiry.is_zero() {
            true => CHECK_EVERY,
            false => CHECK_EVERY.min(until_expiry.saturating_add(Duration::from_secs(1))),
        };
        tokio::time::sleep(next).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn warns_from_a_week_before_expiry_and_after_it() {
        let week = EXPIRY_WARNING.as_secs();
        assert_eq!(expiry_warning(4, NOW + week + 1, NOW), None);
        let soon = expiry_warning(4, NOW + week, NOW).unwrap();
        assert!(soon.contains("serial 4) expires in 7 d 0 h"), "{soon}");
        let hours = expiry_warning(4, NOW + 5 * 3600 + 59, NOW).unwrap();
        assert!(hours.contains("expires in 0 d 5 h"), "{hours}");
        let expired = expiry_warning(4, NOW, NOW).unwrap();
        assert!(expired.contains("has expired"), "{expired}");
        assert!(
            expiry_warning(4, NOW - 1, NOW)
                .unwrap()
                .contains("has expired")
        );
    }
}
