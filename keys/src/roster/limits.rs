//! Named limits on rosters. Each is tested at the limit and one past it.

/// The largest roster file.
pub const MAX_ROSTER_LEN: usize = 8 * 1024 * 1024;
/// The most stewards.
pub const MAX_STEWARDS: usize = 16;
/// The most signatures attached to one roster.
pub const MAX_ROSTER_SIGNATURES: usize = 32;
/// The most member agencies.
pub const MAX_MEMBERS: usize = 1024;
/// The most certificates of one kind per member.
pub const MAX_CERTIFICATES_PER_KIND: usize = 8;
/// The most network addresses per member.
pub const MAX_ADDRESSES: usize = 8;
/// The longest address text.
pub const MAX_ADDRESS_LEN: usize = 255;
/// The most groups.
pub const MAX_GROUPS: usize = 256;
/// The longest group or federation name.
pub const MAX_GROUP_NAME_LEN: usize = 64;
/// The most revoked keys.
pub const MAX_REVOKED: usize = 8192;
/// How far in the future a roster's issue time may lie (clock tolerance), in seconds.
pub const CLOCK_TOLERANCE_SECS: u64 = 300;
