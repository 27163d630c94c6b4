//! Fingerprints of keys: SHA-256 over a type prefix and the key bytes.
//!
//! Shown as `SHA256:` plus unpadded base64, in the notation of `ssh-keygen -l`. The value is
//! not OpenSSH's: it hashes a tagged form of the key (so a fingerprint of one kind of key can
//! never be taken for another kind's). Where a signing key is checked against OpenSSH's
//! output, the CLI shows OpenSSH's fingerprint beside it (`liaise_protocol::openssh_fingerprint`).
//! The federation fingerprint (see [`crate::roster`]) has a second, spoken form: groups of
//! digits that people can read out on the phone.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Number of five-digit groups in the spoken form.
pub const SPOKEN_GROUPS: usize = 8;

impl Fingerprint {
    /// SHA-256 of `liaise fingerprint v1`, the kind prefix and the bytes.
    pub fn of(kind: &str, bytes: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"liaise fingerprint v1\n");
        h.update(kind.as_bytes());
        h.update(b"\n");
        h.update(bytes);
        Self(h.finalize().into())
    }

    /// Eight groups of five decimal digits, e.g. `04712 99310 ...`: each group is four bytes
    /// of the hash, big-endian, modulo 100000 (about 16.6 bits a group, 132 bits in all).
    pub fn spoken(&self) -> String {
        self.0
            .chunks_exact(4)
            .take(SPOKEN_GROUPS)
            .map(|c| {
                let n = <[u8; 4]>::try_from(c).map_or(0, u32::from_be_bytes);
                format!("{:05}", n % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// True if `text` is a fingerprint in either form: `SHA256:` and 43 base64 characters,
    /// or [`SPOKEN_GROUPS`] groups of five digits (spaces or dashes between them allowed).
    pub fn is_text(text: &str) -> bool {
        let text = text.trim();
        if text.starts_with("SHA256:") {
            return text.parse::<Fingerprint>().is_ok();
        }
        let mut digits = 0;
        for c in text.chars() {
            match c {
                '0'..='9' => digits += 1,
                ' ' | '-' => {}
                _ => return false,
            }
        }
        digits == SPOKEN_GROUPS * 5
    }

    /// True if `text` is this fingerprint in its `SHA256:` form or its spoken form
    /// (digits with any spaces or dashes).
    pub fn matches_text(&self, text: &str) -> bool {
        let text = text.trim();
        if text.starts_with("SHA256:") {
            return text.parse::<Fingerprint>().is_ok_and(|f| f == *self);
        }
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let mine: String = self.spoken().chars().filter(char::is_ascii_digit).collect();
        !digits.is_empty() && digits == mine
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint's text was not `SHA256:` followed by 43 base64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fingerprint `{0}`: expected `SHA256:` followed by 43 base64 characters")]
pub struct InvalidFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = InvalidFingerprint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidFingerprint(s.chars().take(60).collect());
        let body = s.trim().strip_prefix("SHA256:").ok_or_else(err)?;
        let bytes = STANDARD_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|_| err())?;
        Ok(Self(bytes.as_slice().try_into().map_err(|_| err())?))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            String::deserialize(d)?
                .parse()
                .map_err(serde::de::Error::custom)
        } else {
            Ok(Self(<[u8; 32]>::deserialize(d)?))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        let fp = Fingerprint::of("ed25519", b"key bytes");
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:"));
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert!(fp.matches_text(&text));
        let spoken = fp.spoken();
        assert_eq!(spoken.split(' ').count(), SPOKEN_GROUPS);
        assert!(fp.matches_text(&spoken));
        assert!(fp.matches_text(&spoken.replace(' ', "-")));
        assert!(!fp.matches_text("12345"));
        assert!(!fp.matches_text(""));
        assert_ne!(Fingerprint::of("x25519", b"key bytes"), fp);
        assert!("SHA256:abc".parse::<Fingerprint>().is_err());
    }
}
