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
/// Delete requests one peer agency may make per minute (and at once), counted apart so that
/// the deletions of a bulk revocation never hold up that agency's opens.
pub const MAX_DELETE_REQUESTS_PER_MINUTE: u32 = 120;
/// Checkpoint witness exchanges one peer agency may start per minute (and at once). A node
/// runs one per connection it opens, and keeps its connections open.
pub const MAX_WITNESS_EXCHANGES_PER_MINUTE: u32 = 12;
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

/// Token buckets keyed by peer agency, each holding up to `per_minute` tokens.
#[derive(Debug)]
pub struct PeerRateLimit {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// A refusal was recorded since the bucket was last full.
    in_run: bool,
}

impl PeerRateLimit {
    /// Buckets of `per_minute` tokens, refilled at that rate.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket's size and refill rate.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes a token for `peer` now.
    pub fn admit(&self, peer: &AgencyId) -> Admission {
        self.admit_at(peer.as_str(), Instant::now())
    }

    /// Takes a token for `peer` at `now` (monotonic; tests pass their own instants).
    pub fn admit_at(&self, peer: &str, now: Instant) -> Admission {
        let capacity = f64::from(self.per_minute);
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bucket = buckets.entry(peer.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
            in_run: false,
        });
        let elapsed = now.saturating_duration_since(bucket.at);
        bucket.tokens = (bucket.tokens + refill(elapsed, self.per_minute)).min(capacity);
        bucket.at = now.max(bucket.at);
        // A full bucket means a minute without flooding: a refusal after it starts a new run.
        if bucket.tokens >= capacity {
            bucket.in_run = false;
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
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
            requests: PeerRateLimit::new(MAX_LOGGED_REQUESTS_PER_MINUTE),
            deletions: PeerRateLimit::new(MAX_DELETE_REQUESTS_PER_MINUTE),
            witness: PeerRateLimit::new(MAX_WITNESS_EXCHANGES_PER_MINUTE),
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
