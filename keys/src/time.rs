//! Points in time, as whole seconds since the Unix epoch (UTC).
//!
//! The `protocol` crate never reads a clock: callers pass `now` in as a [`Timestamp`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time. Only binaries call this; libraries take `now` as input.
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self(secs)
    }

    /// This time plus a duration, saturating far in the future.
    pub fn after(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration.as_secs()))
    }

    /// Formats as RFC 3339 in UTC, e.g. `2026-11-25T12:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        let days = self.0 / 86_400;
        let rem = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }

    /// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let (date, time) = match text.split_once('T') {
            Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
            None => (text, None),
        };
        // Exactly YYYY-MM-DD and HH:MM:SS: no signs, no missing or extra digits.
        let digits =
            |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
        let mut parts = date.split('-');
        let (ys, ms, ds) = (parts.next()?, parts.next()?, parts.next()?);
        if !(digits(ys, 4) && digits(ms, 2) && digits(ds, 2)) {
            return None;
        }
        let y: i64 = ys.parse().ok()?;
        let m: u32 = ms.parse().ok()?;
        let d: u32 = ds.parse().ok()?;
        if parts.next().is_some() || !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
            return None;
        }
        if d == 0 || d > days_in_month(y, m) {
            return None;
        }
        let mut secs = days_from_civil(y, m, d).checked_mul(86_400)?;
        if let Some(t) = time {
            let mut hms = t.split(':');
            let (hs, mis, ss) = (hms.next()?, hms.next()?, hms.next()?);
            if !(digits(hs, 2) && digits(mis, 2) && digits(ss, 2)) {
                return None;
            }
            let h: u64 = hs.parse().ok()?;
            let mi: u64 = mis.parse().ok()?;
            let s: u64 = ss.parse().ok()?;
            if hms.next().is_some() || h > 23 || mi > 59 || s > 59 {
                return None;
            }
            secs = secs.checked_add(h * 3600 + mi * 60 + s)?;
        }
        Some(Self(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Parses a human duration: `90s`, `30m`, `12h`, `30d`, `8w`, `1y` (365 days), `500ms`, or
/// several such parts, largest first as people write them: `1h30m`, `2m30s`. A bare number
/// has no unit and is refused, as is a part repeated or out of order (`30s1m`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    let mut total_ms: u64 = 0;
    let mut previous_unit_ms = u64::MAX;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let n: u64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60 * 1000,
            "h" => 3600 * 1000,
            "d" => 86_400 * 1000,
            "w" => 7 * 86_400 * 1000,
            "y" => 365 * 86_400 * 1000,
            _ => return None,
        };
        if unit_ms >= previous_unit_ms {
            return None;
        }
        previous_unit_ms = unit_ms;
        total_ms = total_ms.checked_add(n.checked_mul(unit_ms)?)?;
        rest = tail;
    }
    Some(Duration::from_millis(total_ms))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-calendar algorithms (public domain), for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468).max(0) as u64
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        let t = Timestamp::parse_rfc3339("2026-11-25T12:29:19Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T12:29:19Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2028-02-29").unwrap().to_rfc3339(),
            "2028-02-29T00:00:00Z"
        );
        assert!(Timestamp::parse_rfc3339("2027-02-29").is_none());
        assert!(Timestamp::parse_rfc3339("2026-13-01").is_none());
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
        for lenient in [
            "+2026-+1-+1",
            "2026-1-1T1:2:3Z",
            "02026-01-01",
            "2026-01-01T12:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(lenient).is_none(), "{lenient}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(
            parse_duration("1y"),
            Some(Duration::from_secs(365 * 86_400))
        );
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s500ms"), Some(Duration::from_millis(2500)));
        for refused in ["", "30s1m", "1m1m", "1m30", "m30s", "1m 30s", "1.5h", "-1s"] {
            assert_eq!(parse_duration(refused), None, "{refused}");
        }
        assert_eq!(parse_duration("99999999999999999999s"), None);
    }
}
