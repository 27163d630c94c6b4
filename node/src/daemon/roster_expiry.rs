//! Tells the operator, in the node's log, that its roster runs out: from [`EXPIRY_WARNING`]
//! before its expiry, once a day and again whenever another roster is taken up that also
//! expires soon. A roster that expired while the node runs is logged as such: from then on no
//! peer accepts this node, nor this node any peer, until a current one is imported.
//!
//! Likewise for the certificates of this agency's own keys in the roster (a year from `init`
//! or `keys rotate`), from [`KEY_EXPIRY_WARNING`] before the last of a kind runs out: without
//! a current transport key no peer accepts this node, and without a current encryption key no
//! one can seal to this agency. A new key needs a rotation and a roster the stewards publish,
//! so the warning comes weeks ahead.

use std::sync::Arc;
use std::time::Duration;

use super::{Node, now_secs};

/// How long before a roster's expiry the node starts to warn (and `liaise status` notes it):
/// time enough for the stewards to publish the next one.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// How long before the last certificate of one of this agency's kinds of key runs out the node
/// starts to warn: time for a `keys rotate` and for the stewards to publish a roster with it.
pub const KEY_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

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

/// The warning for this agency's `what` keys (transport, encryption) whose certificates valid
/// now last until `last_not_after` at the latest (`None`: none is valid now), at `now`;
/// `None` while that is further off than [`KEY_EXPIRY_WARNING`].
pub(crate) fn key_expiry_warning(
    what: &str,
    last_not_after: Option<u64>,
    now: u64,
) -> Option<String> {
    let Some(until) = last_not_after.filter(|t| *t > now) else {
        return Some(format!(
            "the roster holds no current {what} key of this agency: its certificates ran out. \
             Run `liaise keys rotate` and have your stewards publish a roster with the new keys"
        ));
    };
    let left = until - now;
    if left > KEY_EXPIRY_WARNING.as_secs() {
        return None;
    }
    Some(format!(
        "this agency's {what} key certificate runs out in {} d {} h: run `liaise keys rotate` \
         and have your stewards publish a roster with the new keys before then",
        left / 86_400,
        (left % 86_400) / 3600
    ))
}

/// The warnings about the certificates of agency `me`'s own keys in `roster` at `now`, if any
/// (also shown by `liaise status`).
pub(crate) fn own_key_warnings(
    me: &liaise_keys::AgencyId,
    roster: &liaise_keys::roster::Roster,
    now: u64,
) -> Vec<String> {
    let Some(member) = roster.member(me) else {
        return Vec::new();
    };
    let at = liaise_keys::Timestamp(now);
    let last = |certs: &[liaise_keys::KeyCertificate]| {
        certs
            .iter()
            .filter(|c| c.is_valid_at(at))
            .map(|c| c.body().not_after.0)
            .max()
    };
    [
        ("transport", last(&member.transport)),
        ("encryption", last(&member.encryption)),
    ]
    .into_iter()
    .filter_map(|(what, until)| key_expiry_warning(what, until, now))
    .collect()
}

/// What to say when `roster` certifies a transport key of agency `me` that the node does not
/// hold (`held`: the key it presents, and the one it replaced if it presents both during a
/// rotation), newer than the one it presents (`loaded`): `liaise keys rotate` made it since the
/// node started, and the node presents it only once restarted (before the loaded key's
/// certificate runs out, or every peer refuses the node). A key the node holds but the roster
/// does not list yet (restarted before the stewards published) is nothing to warn about.
pub(crate) fn restart_warning(
    me: &liaise_keys::AgencyId,
    roster: &liaise_keys::roster::Roster,
    loaded: &liaise_keys::TransportPublicKey,
    held: &[liaise_keys::TransportPublicKey],
    now: u64,
) -> Option<String> {
    let member = roster.member(me)?;
    let at = liaise_keys::Timestamp(now);
    let is = |key: &liaise_keys::TransportPublicKey| liaise_keys::CertifiedKey::Transport(*key);
    let valid = || member.transport.iter().filter(|c| c.is_valid_at(at));
    let loaded_cert = valid().find(|c| c.body().key == is(loaded));
    let holds = |c: &&liaise_keys::KeyCertificate| held.iter().any(|k| c.body().key == is(k));
    let newest_unheld = valid()
        .filter(|c| !holds(c))
        .map(|c| c.body().not_before)
        .max()?;
    // Only a key newer than every certified key the node holds: after a second rotation, the
    // roster still certifies the key before the previous one for a while, which the key file
    // no longer holds and nothing needs.
    let newest_held = valid().filter(holds).map(|c| c.body().not_before).max();
    if newest_held.is_some_and(|held| held >= newest_unheld) {
        return None;
    }
    let until = match loaded_cert.map(|c| c.body().not_after.0.saturating_sub(now)) {
        Some(left) => format!(
            ", within {} d {} h, when the certificate of the key it presents runs out",
            left / 86_400,
            (left % 86_400) / 3600
        ),
        None => String::new(),
    };
    Some(format!(
        "the roster certifies a newer transport key of this agency than the one this node \
         presents (from `liaise keys rotate`): restart the node (`systemctl restart \
         liaise-node`) to present it{until}; if a restart does not clear this, the home was \
         restored from before that rotation: rotate again (deploy/README.md, Backups)"
    ))
}

/// Everything to say about this node's own keys under `roster` at `now` (also shown by
/// `liaise status` as `key_warnings`): [`own_key_warnings`] and [`restart_warning`].
pub(crate) fn node_key_warnings(
    node: &Node,
    roster: &liaise_keys::roster::Roster,
    now: u64,
) -> Vec<String> {
    let mut warnings = own_key_warnings(&node.me, roster, now);
    let held: Vec<_> = node
        .secrets
        .transport_keys()
        .map(|k| k.public_key())
        .collect();
    let loaded = node.secrets.transport.public_key();
    warnings.extend(restart_warning(&node.me, roster, &loaded, &held, now));
    warnings
}

/// Logs [`expiry_warning`] while it applies, at most once per [`REPEAT_EVERY`] for one roster
/// (and once more when it expires).
pub async fn watch(node: Arc<Node>) {
    // (serial, when, expired) of the last warning; `when` on the monotonic clock, so that
    // a wall clock set back does not silence the warning.
    let mut last: Option<(u64, tokio::time::Instant, bool)> = None;
    // The key warnings last logged, and when: repeated daily, or at once when they change.
    let mut last_keys: Option<(Vec<String>, tokio::time::Instant)> = None;
    // A roster adopted since is looked at at once: its expiry may come before the next check.
    let mut changes = node.roster.subscribe();
    loop {
        let roster = node.roster.current();
        let (serial, expires_at, now) = (roster.serial(), roster.body().expires_at.0, now_secs());
        let keys = node_key_warnings(&node, &roster, now);
        let keys_due = !keys.is_empty()
            && last_keys
                .as_ref()
                .is_none_or(|(said, at)| *said != keys || at.elapsed() >= REPEAT_EVERY);
        if keys_due {
            for warning in &keys {
                tracing::warn!("{warning}");
            }
            last_keys = Some((keys, tokio::time::Instant::now()));
        }
        if let Some(warning) = expiry_warning(serial, expires_at, now) {
            let expired = expires_at <= now;
            let newly_expired = expired
                && last.is_none_or(|(warned_serial, _, warned_expired)| {
                    warned_serial != serial || !warned_expired
                });
            let due = last.is_none_or(|(warned_serial, at, warned_expired)| {
                warned_serial != serial || warned_expired != expired || at.elapsed() >= REPEAT_EVERY
            });
            if due {
                tracing::warn!("{warning}");
                last = Some((serial, tokio::time::Instant::now(), expired));
            }
            // Its connections end now: no peer is vouched for by an expired roster.
            if newly_expired {
                node.roster.announce_expiry();
            }
        }
        // Looks again right after the expiry, if that comes first: peers refuse the node from
        // that moment.
        let until_expiry = Duration::from_secs(expires_at.saturating_sub(now));
        let next = match until_expiry.is_zero() {
            true => CHECK_EVERY,
            false => CHECK_EVERY.min(until_expiry.saturating_add(Duration::from_secs(1))),
        };
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    // The roster's sender is gone: the node is shutting down.
                    tokio::time::sleep(next).await;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn warns_from_a_month_before_the_own_keys_run_out_and_after() {
        let month = KEY_EXPIRY_WARNING.as_secs();
        assert_eq!(
            key_expiry_warning("transport", Some(NOW + month + 1), NOW),
            None
        );
        let soon = key_expiry_warning("encryption", Some(NOW + month), NOW).unwrap();
        assert!(
            soon.contains("encryption key certificate runs out in 30 d 0 h"),
            "{soon}"
        );
        assert!(soon.contains("liaise keys rotate"), "{soon}");
        for gone in [None, Some(NOW), Some(NOW - 1)] {
            let none = key_expiry_warning("transport", gone, NOW).unwrap();
            assert!(none.contains("no current transport key"), "{none}");
        }
    }

    #[test]
    fn the_own_agencys_certificates_in_a_real_roster_are_watched() {
        use crate::log::signer_keys::tests::{CITY, NOW, Stewards, identity, roster};
        let city = identity(CITY);
        let stewards = Stewards::generate();
        let roster = roster(1, &stewards, &stewards.quorum(), &[&city], vec![]);
        let me = city.member.id.clone();
        // Certified until a year after NOW (`identity`).
        assert!(own_key_warnings(&me, &roster, NOW.0).is_empty());
        let late = own_key_warnings(&me, &roster, NOW.0 + 340 * 86_400);
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(
            late[0].contains("transport key certificate runs out in 25 d"),
            "{late:?}"
        );
        assert!(late[1].contains("encryption key"), "{late:?}");
        let gone = own_key_warnings(&me, &roster, NOW.0 + 365 * 86_400);
        assert!(gone.iter().all(|w| w.contains("no current")), "{gone:?}");
        // Another agency's node: nothing to say about the city's keys.
        let other = liaise_keys::AgencyId::new("nl.prison.vught").unwrap();
        assert!(own_key_warnings(&other, &roster, NOW.0 + 365 * 86_400).is_empty());
    }

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
