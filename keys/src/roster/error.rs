//! Why a roster was refused.

use crate::agency::AgencyId;
use crate::codec::DecodeError;
use crate::fingerprint::Fingerprint;
use crate::time::Timestamp;

/// Why a roster file was refused. Each variant names what a person can check or do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// The file does not start with the roster magic.
    #[error("not a Liaise roster file")]
    NotARoster,
    /// A roster format version this build does not know.
    #[error("unsupported roster version {version}; upgrade Liaise to read it")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The bytes after the magic do not decode.
    #[error("roster file is corrupt: {0}")]
    Decode(DecodeError),
    /// A list or field is over its named limit.
    #[error("roster has {len} {what}, more than the limit of {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Fewer distinct steward keys signed than the threshold requires.
    #[error(
        "roster is signed by {valid} of the {threshold} required {which} steward keys \
         (tampered, or not enough stewards signed)"
    )]
    UnderThreshold {
        /// Distinct valid signatures from the set.
        valid: usize,
        /// The set's threshold.
        threshold: u8,
        /// `current` (the held roster's stewards) or `new` (the roster's own).
        which: &'static str,
    },
    /// An attached signature does not verify: the file was altered.
    #[error("roster signature by key {key} does not verify (the roster was altered)")]
    BrokenSignature {
        /// The key the signature claims.
        key: Fingerprint,
    },
    /// The steward set itself is invalid.
    #[error("roster's steward set is invalid: {reason}")]
    BadStewardSet {
        /// What is wrong.
        reason: &'static str,
    },
    /// The roster's serial is not higher than the one held.
    #[error(
        "roster serial {offered} is not newer than the serial {held} this node holds (rollback refused)"
    )]
    Rollback {
        /// The offered serial.
        offered: u64,
        /// The held serial.
        held: u64,
    },
    /// An update un-revokes a key the held roster revoked (or moves its revocation later).
    #[error(
        "the offered roster no longer revokes key {fingerprint}, which the held roster revokes; \
         revocations are permanent (refused)"
    )]
    RevocationDropped {
        /// The key whose revocation is missing.
        fingerprint: Fingerprint,
    },
    /// The roster has expired.
    #[error(
        "roster serial {serial} expired at {expires_at}; ask the stewards for a current roster \
         and import it (`liaise roster import`)"
    )]
    Expired {
        /// Its serial.
        serial: u64,
        /// When it expired.
        expires_at: Timestamp,
    },
    /// The roster claims to be issued in the future (beyond the clock tolerance).
    #[error("roster was issued at {issued_at}, in the future; check this machine's clock")]
    IssuedInFuture {
        /// The claimed issue time.
        issued_at: Timestamp,
    },
    /// The steward keys are not the federation whose fingerprint was given. The message does
    /// not show the roster's own fingerprint: a hurried user could paste it back, and the
    /// check by phone would then prove nothing.
    #[error(
        "this roster is not from the federation with fingerprint {expected}; do not import it: \
         check the fingerprint with your steward, and have the roster file sent again"
    )]
    WrongFederation {
        /// The expected fingerprint as given.
        expected: String,
    },
    /// The fingerprint given is in neither form a steward reads out.
    #[error(
        "`{given}` is not a federation fingerprint: give the eight groups of five digits your \
         steward reads out, or its SHA256:... form"
    )]
    NotAFingerprint {
        /// The text given (at most 80 characters of it).
        given: String,
    },
    /// Two members share a key (key substitution).
    #[error("agencies {first} and {second} share key {fingerprint} (key substitution refused)")]
    SharedKey {
        /// One member.
        first: AgencyId,
        /// The other member.
        second: AgencyId,
        /// The shared key.
        fingerprint: Fingerprint,
    },
    /// A steward key is also a member's key.
    #[error(
        "steward key {fingerprint} is also a key of agency {agency}; stewards need keys of their own"
    )]
    StewardKeyIsMemberKey {
        /// The member.
        agency: AgencyId,
        /// The key.
        fingerprint: Fingerprint,
    },
    /// A node address is not `host:port`, or has white space or control characters.
    #[error("invalid node address `{0}`: use HOST:PORT, e.g. node.example.org:7400")]
    BadAddress(String),
    /// The same agency id appears twice.
    #[error("agency {0} is listed twice")]
    DuplicateMember(AgencyId),
    /// A member's key certificate is not signed by its signing key or names another agency.
    #[error("agency {agency} has a key certificate it did not sign for itself")]
    BadCertificate {
        /// The member.
        agency: AgencyId,
    },
    /// A member holds a key that is revoked.
    #[error("agency {agency} still lists revoked key {fingerprint}")]
    RevokedKeyInUse {
        /// The member.
        agency: AgencyId,
        /// The revoked key.
        fingerprint: Fingerprint,
    },
    /// A group names an agency that is not a member, or a group name repeats.
    #[error("group `{group}` is invalid: {reason}")]
    BadGroup {
        /// The group.
        group: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A field has a bad value.
    #[error("roster field {field} is invalid")]
    BadField {
        /// The field.
        field: &'static str,
    },
}

// Not `#[from]`: that would also make it the error's source, and the message already ends with
// it, so `{:#}` would print it twice.
impl From<DecodeError> for RosterError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}
