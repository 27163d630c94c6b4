//! The hash state of each interrupted transfer, kept in memory, so that a resumed transfer
//! does not read its whole partial file again before `Accept`.
//!
//! Without it every re-offer of a held partial costs a read and a hash of everything held
//! (up to `MAX_DOCUMENT_LEN`), for the price of a 59-byte `Offer` and a hang-up. A state is
//! used only while the partial file still has the length and modification time it had when
//! the state was saved; only this node writes partial files, so those two stand for its
//! bytes. After a restart the first resume reads the file once, and saves what it found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use liaise_protocol::wire::ContentHasher;

use super::incoming::MAX_PARTIAL_FILES_PER_PEER;

/// The most saved states per sending agency: one for each partial file it may leave
/// ([`MAX_PARTIAL_FILES_PER_PEER`]). With fewer, a member re-offering its partials in turn
/// would push each state out before its next offer, and make every 59-byte offer cost a read
/// and a hash of its partial file. A state is about 2 KiB (BLAKE3's stack of chaining values).
/// Beyond it, the states of partial files that are gone go first, then that agency's least
/// recently saved one (its next resume reads the partial once more). Counted per agency so
/// that no member can push another's states out. Agencies are roster members: their number is
/// bounded by the roster.
pub const MAX_RESUME_STATES_PER_PEER: usize = MAX_PARTIAL_FILES_PER_PEER;

/// Saved hash states by sending agency and partial file.
#[derive(Debug, Default)]
pub struct ResumeStates(Mutex<HashMap<String, HashMap<PathBuf, Saved>>>);

#[derive(Debug, Clone)]
struct Saved {
    len: u64,
    modified: Option<SystemTime>,
    hasher: ContentHasher,
    /// When it was saved, for the eviction of the least recent.
    saved_at: std::time::Instant,
}

impl ResumeStates {
    /// Saves `hasher` as the hash of all of `partial` (from `peer`) as it is now.
    pub fn save(&self, peer: &str, partial: &Path, hasher: &ContentHasher) {
        let Ok(meta) = std::fs::metadata(partial) else {
            return;
        };
        let saved = Saved {
            len: meta.len(),
            modified: meta.modified().ok(),
            hasher: hasher.clone(),
            saved_at: std::time::Instant::now(),
        };
        if let Ok(mut all) = self.0.lock() {
            let states = all.entry(peer.to_owned()).or_default();
            if states.len() >= MAX_RESUME_STATES_PER_PEER && !states.contains_key(partial) {
                // Partial files deleted since (refused, swept, superseded by another hash).
                states.retain(|path, _| path.exists());
            }
            if states.len() >= MAX_RESUME_STATES_PER_PEER && !states.contains_key(partial) {
                let evicted = states
                    .iter()
                    .min_by_key(|(_, saved)| saved.saved_at)
                    .map(|(path, _)| path.clone());
                if let Some(key) = evicted {
                    states.remove(&key);
                }
            }
            states.insert(partial.to_path_buf(), saved);
        }
    }

    /// The saved hash of `partial` if the file is still `len` bytes, last modified at
    /// `modified`.
    pub fn matching(
        &self,
        peer: &str,
        partial: &Path,
        len: u64,
        modified: Option<SystemTime>,
    ) -> Option<ContentHasher> {
        let all = self.0.lock().ok()?;
        let saved = all.get(peer)?.get(partial)?;
        (saved.len == len && saved.modified == modified && modified.is_some())
            .then(|| saved.hasher.clone())
    }

    /// Forgets the state of a partial that completed or was discarded.
    pub fn forget(&self, peer: &str, partial: &Path) {
        if let Ok(mut all) = self.0.lock()
            && let Some(states) = all.get_mut(peer)
        {
            states.remove(partial);
            if states.is_empty() {
                all.remove(peer);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use liaise_protocol::wire::content_hash;

    const PEER: &str = "nl.city.utrecht";

    fn hasher_of(bytes: &[u8]) -> ContentHasher {
        let mut h = ContentHasher::new();
        h.update(bytes);
        h
    }

    #[test]
    fn a_state_holds_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("p.partial");
        std::fs::write(&partial, b"held bytes").unwrap();
        let states = ResumeStates::default();
        states.save(PEER, &partial, &hasher_of(b"held bytes"));
        let meta = std::fs::metadata(&partial).unwrap();
        let found = states.matching(PEER, &partial, meta.len(), meta.modified().ok());
        assert_eq!(found.unwrap().finalize(), content_hash(b"held bytes"));
        // Another length or time: not this state.
        assert!(
            states
                .matching(PEER, &partial, meta.len() + 1, meta.modified().ok())
                .is_none()
        );
        assert!(states.matching(PEER, &partial, meta.len(), None).is_none());
        // Another agency's offer of the same path: not its state.
        assert!(
            states
                .matching("nl.other", &partial, meta.len(), meta.modified().ok())
                .is_none()
        );
        states.forget(PEER, &partial);
        assert!(
            states
                .matching(PEER, &partial, meta.len(), meta.modified().ok())
                .is_none()
        );
    }

    #[test]
    fn states_are_bounded_per_agency_and_one_cannot_push_out_anothers() {
        let dir = tempfile::tempdir().unwrap();
        let states = ResumeStates::default();
        let mine = dir.path().join("mine.partial");
        std::fs::write(&mine, b"x").unwrap();
        states.save(PEER, &mine, &hasher_of(b"x"));
        for i in 0..MAX_RESUME_STATES_PER_PEER + 10 {
            let partial = dir.path().join(format!("{i}.partial"));
            std::fs::write(&partial, b"x").unwrap();
            states.save("nl.other", &partial, &hasher_of(b"x"));
        }
        let all = states.0.lock().unwrap();
        assert_eq!(
            all.get("nl.other").map(HashMap::len),
            Some(MAX_RESUME_STATES_PER_PEER)
        );
        assert_eq!(all.get(PEER).map(HashMap::len), Some(1));
    }

    #[test]
    fn a_full_table_drops_gone_partials_first_then_the_least_recent() {
        let dir = tempfile::tempdir().unwrap();
        let states = ResumeStates::default();
        let partial = |i: usize| dir.path().join(format!("{i}.partial"));
        for i in 0..MAX_RESUME_STATES_PER_PEER {
            std::fs::write(partial(i), b"x").unwrap();
            states.save(PEER, &partial(i), &hasher_of(b"x"));
        }
        let held = |i: usize| {
            let meta = std::fs::metadata(partial(i)).unwrap();
            states
                .matching(PEER, &partial(i), meta.len(), meta.modified().ok())
                .is_some()
        };
        // A partial deleted since makes room: every state still held stays.
        std::fs::remove_file(partial(5)).unwrap();
        let new = MAX_RESUME_STATES_PER_PEER;
        std::fs::write(partial(new), b"x").unwrap();
        states.save(PEER, &partial(new), &hasher_of(b"x"));
        assert!((0..=new).filter(|i| *i != 5).all(held));
        // Full again, with every file there: the least recently saved (0) goes.
        std::fs::write(partial(new + 1), b"x").unwrap();
        states.save(PEER, &partial(new + 1), &hasher_of(b"x"));
        assert!(!held(0));
        assert!((1..=new + 1).filter(|i| *i != 5).all(held));
    }
}
