//! How fast a peer can make this node write to its log.
//!
//! The log is append-only and never pruned, and some of what peers ask for is recorded
//! (share and forward requests, released or refused; deletion requests; checkpoint witnessing).
//! Each peer agency therefore has a token bucket per kind of request: a request takes a token,
//! tokens come back at the named rate, and a request that finds none is refused without a log
//! entry, except the first refusal of a run, which is recorded once (so the log shows that an
//! agency was flooding, and when, without one entry per attempt). A run ends only when the
//! bucket is full again: an agency that takes each token as it comes back, with a refused
//! request between, is one run, not a recorded refusal per token. Specified in
//! `docs/spec/log.md`, "How fast peers can make the log grow".
//!
//! Buckets live in memory: a restart refills them. Peers are authenticated roster members, so
//! the number of buckets is bounded by the roster's size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use liaise_keys::AgencyId;

/// Share and forward requests one peer agency may make per minute (and at once): the opens
/// of all its staff of documents this node sent.
pub const MAX_LOGGED_REQUESTS_PER_MINUTE: u32 = 120;
/// Share and forward requests one peer agency may make per day (and at once): the per-minute
/// rate alone let one agency add 170,000 entries a day to a log that is never pruned. Ten
/// thousand opens a day of one agency's documents is far past what its staff read.
pub const MAX_LOGGED_REQUESTS_PER_DAY: u32 = 10_000;
/// Delete requests one peer agency may make per minute (and at once), counted apart so that
/// the deletions of a bulk revocation never hold up that agency's opens.
pub const MAX_DELETE_REQUESTS_PER_MINUTE: u32 = 120;
/// Delete requests one peer agency may make per day: a bulk revocation of many documents
/// goes on the next day (its node retries), and a stream of requests for documents that do
/// not exist (each recorded, to delete the document should it arrive) stays bounded.
pub const MAX_DELETE_REQUESTS_PER_DAY: u32 = 50_000;
/// Checkpoint witness exchanges one peer agency may start per minute (and at once). A node
/// runs one per connection it opens, and keeps its connections open.
pub const MAX_WITNESS_EXCHANGES_PER_MINUTE: u32 = 12;
/// Checkpoint witness exchanges one peer agency may start per day. Each may add a
/// `countersigned` entry (a peer can grow its own log at will, so every checkpoint it brings
/// is new): the per-minute rate alone let one agency add 17,000 entries a day. A node witnesses
/// about once a minute while it has new entries, well within two a minute on average.
pub const MAX_WITNESS_EXCHANGES_PER_DAY: u32 = 2_880;
/// What a peer over its rate is told.
pub const TOO_MANY_REQUESTS: &str = "too many requests, try later";

/// The answer of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (and record it as usual).
    Admitted,
    /// Refuse without recording; `record_once` is true for the first refusal of a run (since
    /// the peer's bucket was last full), which is recorded.
    Refused {
        /// Record this refusal (the first of a run).
        record_once: bool,
    },
}

/// Token buckets keyed by peer agency, each holding up to `per_minute` tokens, and beside
/// it a second one of `per_day` tokens refilled over a day: a request takes one of each.
#[derive(Debug)]
pub struct PeerRateLimit {
    per_minute: u32,
    per_day: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Seconds in the day a daily bucket refills over.
const DAY_SECS: f64 = 86_400.0;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    day_tokens: f64,
    at: Instant,
    /// A refusal was recorded since the bucket was last full.
    in_run: bool,
}

impl PeerRateLimit {
    /// Buckets of `per_minute` tokens, refilled at that rate, with no tighter daily limit.
    pub fn new(per_minute: u32) -> Self {
        Self::with_daily(per_minute, per_minute.saturating_mul(1440))
    }

    /// Buckets of `per_minute` tokens, refilled at that rate, and of `per_day` tokens,
    /// refilled over a day.
    pub fn with_daily(per_minute: u32, per_day: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            per_day: per_day.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket's size and refill rate.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// The daily bucket's size, refilled over a day.
    pub fn per_day(&self) -> u32 {
        self.per_day
    }

    /// Takes a token for `peer` now.
    pub fn admit(&self, peer: &AgencyId) -> Admission {
        self.admit_at(peer.as_str(), Instant::now())
    }

    /// Takes a token for `peer` at `now` (monotonic; tests pass their own instants).
    pub fn admit_at(&self, peer: &str, now: Instant) -> Admission {
        let capacity = f64::from(self.per_minute);
        let day_capacity = f64::from(self.per_day);
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bucket = buckets.entry(peer.to_owned()).or_insert(Bucket {
            tokens: capacity,
            day_tokens: day_capacity,
            at: now,
            in_run: false,
        });
        let elapsed = now.saturating_duration_since(bucket.at);
        bucket.tokens = (bucket.tokens + refill(elapsed, self.per_minute)).min(capacity);
        bucket.day_tokens =
            (bucket.day_tokens + elapsed.as_secs_f64() * day_capacity / DAY_SECS).min(day_capacity);
        bucket.at = now.max(bucket.at);
        // A full bucket means a minute without flooding: a refusal after it starts a new run.
        // With the day's tokens spent, one comes back every few seconds: the run goes on until
        // the daily bucket also holds a minute's worth, or each token that came back would
        // end a run and the refusal after it be recorded, doubling what the log takes a day.
        if bucket.tokens >= capacity && bucket.day_tokens >= capacity.min(day_capacity) {
            bucket.in_run = false;
        }
        if bucket.tokens >= 1.0 && bucket.day_tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.day_tokens -= 1.0;
            return Admission::Admitted;
        }
        let record_once = !bucket.in_run;
        bucket.in_run = true;
        Admission::Refused { record_once }
    }
}

fn refill(elapsed: Duration, per_minute: u32) -> f64 {
    elapsed.as_secs_f64() * f64::from(per_minute) / 60.0
}

/// The node's buckets, one set per kind of logged request.
#[derive(Debug)]
pub struct LogRateLimits {
    /// Share and forward requests.
    pub requests: PeerRateLimit,
    /// Delete requests.
    pub deletions: PeerRateLimit,
    /// Checkpoint witness exchanges served.
    pub witness: PeerRateLimit,
}

impl Default for LogRateLimits {
    fn default() -> Self {
        Self {
            requests: PeerRateLimit::with_daily(
                MAX_LOGGED_REQUESTS_PER_MINUTE,
                MAX_LOGGED_REQUESTS_PER_DAY,
            ),
            deletions: PeerRateLimit::with_daily(
                MAX_DELETE_REQUESTS_PER_MINUTE,
                MAX_DELETE_REQUESTS_PER_DAY,
            ),
            witness: PeerRateLimit::with_daily(
                MAX_WITNESS_EXCHANGES_PER_MINUTE,
                MAX_WITNESS_EXCHANGES_PER_DAY,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "nl.city.utrecht";

    #[test]
    fn a_peer_gets_its_rate_at_once_and_no_more() {
        let limit = PeerRateLimit::new(MAX_LOGGED_REQUESTS_PER_MINUTE);
        let now = Instant::now();
        for _ in 0..MAX_LOGGED_REQUESTS_PER_MINUTE {
            assert_eq!(limit.admit_at(PEER, now), Admission::Admitted);
        }
        // One past the limit: refused, and only the first refusal is to be recorded.
        assert_eq!(
            limit.admit_at(PEER, now),
            Admission::Refused { record_once: true }
        );
        for _ in 0..100 {
            assert_eq!(
                limit.admit_at(PEER, now),
                Admission::Refused { record_once: false }
            );
        }
        // Another agency has its own bucket.
        assert_eq!(limit.admit_at("nl.prison.vught", now), Admission::Admitted);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_a_new_run_of_refusals_is_recorded_again() {
        let limit = PeerRateLimit::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert_eq!(limit.admit_at(PEER, start), Admission::Admitted);
        }
        assert!(matches!(
            limit.admit_at(PEER, start),
            Admission::Refused { record_once: true }
        ));
        // 60 per minute: one token a second. Taking it as it comes is the same run: the
        // refusal after it is not recorded again.
        let later = start + Duration::from_millis(1_100);
        assert_eq!(limit.admit_at(PEER, later), Admission::Admitted);
        assert_eq!(
            limit.admit_at(PEER, later),
            Admission::Refused { record_once: false }
        );
        // A minute of quiet refills the bucket, never past its size; the next run of
        // refusals is recorded again.
        let much_later = later + Duration::from_secs(600);
        for _ in 0..60 {
            assert_eq!(limit.admit_at(PEER, much_later), Admission::Admitted);
        }
        assert_eq!(
            limit.admit_at(PEER, much_later),
            Admission::Refused { record_once: true }
        );
    }

    #[test]
    fn a_peer_taking_each_token_as_it_comes_back_adds_at_most_the_rate_to_the_log() {
        // An agency asks every 100 ms for ten minutes. What the log records: each admitted
        // request, and each recorded refusal.
        let limit = PeerRateLimit::new(MAX_LOGGED_REQUESTS_PER_MINUTE);
        let start = Instant::now();
        let mut recorded = 0u32;
        for step in 0..6_000u64 {
            let now = start + Duration::from_millis(100 * step);
            match limit.admit_at(PEER, now) {
                Admission::Admitted | Admission::Refused { record_once: true } => recorded += 1,
                Admission::Refused { record_once: false } => {}
            }
        }
        // The first minute's bucket, then the rate: two a second, and one refusal for the run.
        let most = MAX_LOGGED_REQUESTS_PER_MINUTE * 11 + 1;
        assert!(recorded <= most, "{recorded} entries, at most {most}");
        assert!(
            recorded >= MAX_LOGGED_REQUESTS_PER_MINUTE * 10,
            "{recorded}"
        );
    }

    #[test]
    fn a_peer_keeping_under_the_minute_rate_all_day_is_held_to_the_daily_limit() {
        let limit = PeerRateLimit::with_daily(60, 100);
        let start = Instant::now();
        let mut admitted = 0u32;
        let mut recorded_refusals = 0u32;
        // One request a second for ten minutes: within the minute's rate throughout.
        for step in 0..600u64 {
            match limit.admit_at(PEER, start + Duration::from_secs(step)) {
                Admission::Admitted => admitted += 1,
                Admission::Refused { record_once: true } => recorded_refusals += 1,
                Admission::Refused { record_once: false } => {}
            }
        }
        // The day's 100, and what came back of them in ten minutes (100 a day: none whole).
        assert_eq!(admitted, 100);
        assert_eq!(recorded_refusals, 1, "one run, however long");
        // A day later the daily bucket is full again.
        let tomorrow = start + Duration::from_secs(86_400 + 600);
        assert_eq!(limit.admit_at(PEER, tomorrow), Admission::Admitted);
        assert_eq!(limit.per_day(), 100);
        // The default buckets: the daily limit is the tighter one over a day.
        let defaults = LogRateLimits::default();
        assert!(defaults.requests.per_day() < MAX_LOGGED_REQUESTS_PER_MINUTE * 1440);
        assert!(defaults.deletions.per_day() < MAX_DELETE_REQUESTS_PER_MINUTE * 1440);
        assert!(defaults.witness.per_day() < MAX_WITNESS_EXCHANGES_PER_MINUTE * 1440);
    }

    #[test]
    fn a_peer_asking_every_second_for_days_adds_about_the_daily_limit_to_the_log() {
        let limit =
            PeerRateLimit::with_daily(MAX_LOGGED_REQUESTS_PER_MINUTE, MAX_LOGGED_REQUESTS_PER_DAY);
        let start = Instant::now();
        let days = 3u64;
        let mut recorded = 0u64;
        for step in 0..days * 86_400 {
            match limit.admit_at(PEER, start + Duration::from_secs(step)) {
                Admission::Admitted | Admission::Refused { record_once: true } => recorded += 1,
                Admission::Refused { record_once: false } => {}
            }
        }
        // The first day's bucket, then what comes back a day, and a few runs' first refusals.
        let most = u64::from(MAX_LOGGED_REQUESTS_PER_DAY) * (days + 1) + 10;
        assert!(recorded <= most, "{recorded} entries, at most {most}");
        assert!(
            recorded >= u64::from(MAX_LOGGED_REQUESTS_PER_DAY) * days,
            "{recorded}"
        );
    }

    #[test]
    fn a_clock_going_back_gives_no_tokens() {
        let limit = PeerRateLimit::new(1);
        let now = Instant::now() + Duration::from_secs(60);
        assert_eq!(limit.admit_at(PEER, now), Admission::Admitted);
        let earlier = now - Duration::from_secs(30);
        assert!(matches!(
            limit.admit_at(PEER, earlier),
            Admission::Refused { .. }
        ));
    }
}
