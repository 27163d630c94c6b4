//! What can go wrong when sealing, opening or verifying a sealed document.
//!
//! Parse errors are never reported as signature errors, and every cryptographic failure after
//! parsing is the one coarse [`OpenError::VerificationFailed`], so the errors are no oracle.

use std::io;

use liaise_keys::{AgencyId, Fingerprint, Timestamp};

use crate::sealed::signer::SignerRejected;

/// Why a sealed document could not be opened or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The input does not start with the sealed-document magic.
    #[error("not a sealed document")]
    NotSealedDocument,
    /// The document has a format version this software does not know.
    #[error("unsupported version {version} of the sealed-document format")]
    UnsupportedVersion {
        /// The version found in the file.
        version: u16,
    },
    /// The input ended before the document was complete.
    #[error("the sealed document is truncated")]
    Truncated,
    /// The header breaks a rule of the format.
    #[error("the sealed document is malformed: {what}")]
    Malformed {
        /// Which rule.
        what: &'static str,
    },
    /// A length or count is over one of the format's limits.
    #[error("the sealed document's {what} is {len}, more than the limit of {max}")]
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Bytes follow the end of the document.
    #[error("the sealed document has trailing data after its signature")]
    TrailingData,
    /// The caller's roster check refused the signer named in the header.
    #[error("signer {agency} is not trusted: {reason}")]
    SignerRejected {
        /// The agency the header names as sender.
        agency: AgencyId,
        /// Why the roster refused it.
        reason: SignerRejected,
    },
    /// The document has no recipient entry for this agency.
    #[error("the document is not addressed to you ({agency})")]
    NotAddressedToYou {
        /// The agency that tried to open it.
        agency: AgencyId,
    },
    /// The document is addressed to this agency, but to an encryption key it does not hold.
    #[error(
        "the document is addressed to encryption key {fingerprint}, which this agency does not hold"
    )]
    NoMatchingKey {
        /// The fingerprint of the key it was sealed to.
        fingerprint: Fingerprint,
    },
    /// The recipient's `not_after` time has passed.
    #[error("the document expired for this agency at {not_after}")]
    Expired {
        /// The last time the document could be opened.
        not_after: Timestamp,
    },
    /// The document is under originator control and the caller has no originator share.
    #[error("the document is under originator control: its sender's node must release a key share")]
    ShareRequired,
    /// A signature, decryption, commitment or SSHSIG check failed. Deliberately coarse.
    #[error("verification failed: the document is corrupt or has been tampered with")]
    VerificationFailed,
    /// Reading the input failed (not an early end).
    #[error("reading the sealed document failed: {0}")]
    Read(io::Error),
    /// Writing decrypted plaintext to the caller's staging storage failed.
    #[error("writing to staging storage failed: {0}")]
    Staging(io::Error),
}

/// The class of an [`OpenError`], with a stable name (used by test vectors and `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`OpenError::NotSealedDocument`].
    NotSealedDocument,
    /// [`OpenError::UnsupportedVersion`].
    UnsupportedVersion,
    /// [`OpenError::Truncated`].
    Truncated,
    /// [`OpenError::Malformed`].
    Malformed,
    /// [`OpenError::LimitExceeded`].
    LimitExceeded,
    /// [`OpenError::TrailingData`].
    TrailingData,
    /// [`OpenError::SignerRejected`].
    SignerRejected,
    /// [`OpenError::NotAddressedToYou`].
    NotAddressedToYou,
    /// [`OpenError::NoMatchingKey`].
    NoMatchingKey,
    /// [`OpenError::Expired`].
    Expired,
    /// [`OpenError::ShareRequired`].
    ShareRequired,
    /// [`OpenError::VerificationFailed`].
    VerificationFailed,
    /// [`OpenError::Read`] or [`OpenError::Staging`].
    Io,
}

impl ErrorKind {
    /// The stable name, as in the spec's test-vector `expect:` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSealedDocument => "not a sealed document",
            Self::UnsupportedVersion => "unsupported version",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::LimitExceeded => "limit exceeded",
            Self::TrailingData => "trailing data",
            Self::SignerRejected => "signer rejected",
            Self::NotAddressedToYou => "not addressed to you",
            Self::NoMatchingKey => "no matching key",
            Self::Expired => "expired",
            Self::ShareRequired => "share required",
            Self::VerificationFailed => "verification failed",
            Self::Io => "i/o error",
        }
    }
}

impl OpenError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotSealedDocument => ErrorKind::NotSealedDocument,
            Self::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Self::Truncated => ErrorKind::Truncated,
            Self::Malformed { .. } => ErrorKind::Malformed,
            Self::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Self::TrailingData => ErrorKind::TrailingData,
            Self::SignerRejected { .. } => ErrorKind::SignerRejected,
            Self::NotAddressedToYou { .. } => ErrorKind::NotAddressedToYou,
            Self::NoMatchingKey { .. } => ErrorKind::NoMatchingKey,
            Self::Expired { .. } => ErrorKind::Expired,
            Self::ShareRequired => ErrorKind::ShareRequired,
            Self::VerificationFailed => ErrorKind::VerificationFailed,
            Self::Read(_) | Self::Staging(_) => ErrorKind::Io,
        }
    }

    /// Maps an error from reading the input: an early end is truncation.
    pub(crate) fn from_read(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            Self::Truncated
        } else {
            Self::Read(err)
        }
    }
}

/// The unit of a sealing limit: none for a count, bytes for a length.
fn limit_unit(what: &str) -> &'static str {
    if what.starts_with("number of")
        || matches!(what, "sections" | "recipients" | "forwarding list")
    {
        ""
    } else {
        " bytes"
    }
}

/// Why a document could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A field of the request breaks a rule of the format.
    #[error("{what}")]
    Invalid {
        /// Which rule, in words a person can act on.
        what: String,
    },
    /// A length or count is over one of the format's limits.
    #[error("the {what} is {len}{unit}, more than the limit of {max}", unit = limit_unit(what))]
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A section's reader gave a different number of bytes than its declared length.
    #[error(
        "section {section} was declared as {declared} bytes but its input had a different length"
    )]
    ContentLengthMismatch {
        /// The section name.
        section: String,
        /// The declared length.
        declared: u64,
    },
    /// HPKE refused a recipient's encryption key.
    #[error("cannot encrypt to {agency}'s encryption key")]
    RecipientKey {
        /// The recipient.
        agency: AgencyId,
    },
    /// Reading a section's content failed.
    #[error("reading section content failed: {0}")]
    Read(io::Error),
    /// Writing the sealed document failed.
    #[error("writing the sealed document failed: {0}")]
    Write(io::Error),
}

impl SealError {
    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Self::Invalid { what: what.into() }
    }
}
