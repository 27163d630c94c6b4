//! The signed statements of originator control (`docs/spec/originator-control.md`): share
//! requests and releases, delete requests and deletion receipts, forward requests and
//! consents.
//!
//! ```text
//! signed    = postcard { body: bytes, signature: [u8; 64] }
//! signature = Ed25519(signer, domain tag || body)       (body: postcard, version first)
//! ```
//!
//! A verifier checks the signature over the exact body bytes received, never a re-encoding.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use liaise_keys::codec;
use liaise_keys::{
    AgencyId, EncryptionPublicKey, EncryptionSecretKey, Fingerprint, KemAlgorithm, Signature,
    SignatureDomain, SigningPublicKey, SigningSecretKey, Timestamp,
};

use super::message::MAX_SIGNED_LEN;
use crate::sealed::OriginatorShare;

/// The version of every body this crate writes and reads.
pub const CUSTODY_VERSION: u8 = 1;
/// The longest reason a reader or forwarder gives, in bytes.
pub const MAX_REASON_LEN: usize = 512;
/// How far a request's time may be from the originator's clock, in seconds.
pub const REQUEST_WINDOW_SECS: u64 = 300;

const SHARE_RELEASE_INFO: &[u8] = b"liaise share-release v1\n";

/// A signed statement as it travels and is kept: the body bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    body: Vec<u8>,
    signature: Signature,
}

/// A body that is signed in its own domain.
pub trait SignedBody: Serialize + DeserializeOwned {
    /// The domain-separation tag it is signed under.
    const DOMAIN: SignatureDomain;
    /// What it is, for errors.
    const WHAT: &'static str;
}

/// Why a signed statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// The bytes do not decode, or are over [`MAX_SIGNED_LEN`].
    #[error("{what} is malformed")]
    Malformed {
        /// Which statement.
        what: &'static str,
    },
    /// The body has another version.
    #[error("{what} version {version} is not supported")]
    UnsupportedVersion {
        /// Which statement.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// The signature does not verify, or the statement is about something else than
    /// expected, or a wrapped share does not open. Deliberately coarse.
    #[error("{what} verification failed")]
    VerificationFailed {
        /// Which statement.
        what: &'static str,
    },
    /// A reason is empty, too long or holds control characters (or any that reorder text).
    #[error(
        "the reason must be 1 to {MAX_REASON_LEN} bytes of text on one line, without \
         control characters or characters that reorder or hide text"
    )]
    BadReason,
}

impl Signed {
    /// Signs `body` with `key` in the body's domain.
    pub fn sign<T: SignedBody>(body: &T, key: &SigningSecretKey) -> Self {
        let body = codec::encode(body);
        let signature = key.sign(T::DOMAIN, &body);
        Self { body, signature }
    }

    /// The encoding that travels in a message.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses an encoding (not yet verified).
    pub fn from_bytes(bytes: &[u8], what: &'static str) -> Result<Self, CustodyError> {
        codec::decode(what, bytes, MAX_SIGNED_LEN).map_err(|_| CustodyError::Malformed { what })
    }

    /// The body, parsed but **not verified**: to learn who claims to have signed it, so that
    /// the caller can look the key up. Never act on it before [`Self::verify`].
    pub fn body_unverified<T: SignedBody>(&self) -> Result<T, CustodyError> {
        if let Some(version) = codec::leading_version(&self.body)
            && version != CUSTODY_VERSION
        {
            return Err(CustodyError::UnsupportedVersion {
                what: T::WHAT,
                version,
            });
        }
        let body: T = codec::decode(T::WHAT, &self.body, MAX_SIGNED_LEN)
            .map_err(|_| CustodyError::Malformed { what: T::WHAT })?;
        Ok(body)
    }

    /// Verifies the signature with `key` (the claimed signer's key from the roster) and
    /// returns the body.
    pub fn verify<T: SignedBody>(&self, key: &SigningPublicKey) -> Result<T, CustodyError> {
        let body = self.body_unverified::<T>()?;
        key.verify(T::DOMAIN, &self.body, &self.signature)
            .map_err(|_| CustodyError::VerificationFailed { what: T::WHAT })?;
        Ok(body)
    }
}

/// Checks a stated reason: 1 to [`MAX_REASON_LEN`] bytes, no control characters and none
/// that reorders or hides text (it is shown in logs and evidence).
pub fn check_reason(reason: &str) -> Result<(), CustodyError> {
    if reason.trim().is_empty()
        || reason.len() > MAX_REASON_LEN
        || reason.chars().any(crate::text::unfit_for_a_line)
    {
        return Err(CustodyError::BadReason);
    }
    Ok(())
}

/// True if a request made at `requested_at` (the requester's clock) may be answered at `now`
/// (the originator's clock): at most [`REQUEST_WINDOW_SECS`] apart, in either direction.
pub fn within_request_window(requested_at: Timestamp, now: Timestamp) -> bool {
    requested_at.0.abs_diff(now.0) <= REQUEST_WINDOW_SECS
}

/// A reader asks the originator for the share of a document (signed by the reader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRequestBody {
    /// Always [`CUSTODY_VERSION`].
    pub version: u8,
    /// The document.
    pub document_id: [u8; 16],
    /// The agency asked (the document's sender).
    pub originator: AgencyId,
    /// The agency that opens (and signs this request).
    pub requester: AgencyId,
    /// Why it opens the document.
    pub reason: String,
    /// When it asked (its clock).
    pub requested_at: Timestamp,
    /// Fresh random bytes: a request is answered once.
    pub nonce: [u8; 16],
}

/// The originator releases the share, wrapped to the reader (signed by the originator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareReleaseBody {
    /// Always [`CUSTODY_VERSION`].
    pub version: u8,
    /// The document.
    pub document_id: [u8; 16],
    /// The originator (signs this release).
    pub originator: AgencyId,
    /// The reader it is wrapped to.
    pub recipient: AgencyId,
    /// The nonce of the request it answers.
    pub request_nonce: [u8; 16],
    /// When it was released (the originator's clock).
    pub released_at: Timestamp,
    /// The reader's encryption key the share is wrapped to.
    pub key_fingerprint: Fingerprint,
    /// HPKE encapsulated key.
    pub enc: Vec<u8>,
    /// HPKE ciphertext of the share.
    pub wrapped_share: Vec<u8>,
}

/// Why a reader is asked to delete a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionReason {
    /// The originator revoked it.
    Revoked,
    /// Its `not_after` passed.
    Expired,
}

impl DeletionReason {
    /// `revoked` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// The originator asks a reader to delete its copy (signed by the originator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequestBody {
    /// Always [`CUSTODY_VERSION`].
    pub version: u8,
    /// The document.
    pub document_id: [u8; 16],
    /// The originator (signs this request).
    pub originator: AgencyId,
    /// The reader asked to delete.
    pub recipient: AgencyId,
    /// Why.
    pub reason: DeletionReason,
    /// When (the originator's clock).
    pub requested_at: Timestamp,
}

/// A reader states that it deleted its copy (signed by the reader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionReceiptBody {
    /// Always [`CUSTODY_VERSION`].
    pub version: u8,
    /// The document.
    pub document_id: [u8; 16],
    /// The originator.
    pub originator: AgencyId,
    /// The reader (signs this receipt).
    pub recipient: AgencyId,
    /// Why it was deleted.
    pub reason: DeletionReason,
    /// When (the reader's clock).
    pub deleted_at: Timestamp,
}

/// A reader asks the originator to let it forward a document (signed by the forwarder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRequestBody {
    /// Always [`CUSTODY_VERSION`].
    pub version: u8,
    /// The document.
    pub document_id: [u8; 16],
    /// The originator.
    pub originator: AgencyId,
    /// The reader that forwards (signs this request).
    pub forwarder: AgencyId,
    /// The agency it forwards to.
    pub new_reader: AgencyId,
    /// Why.
    pub reason: String,
    /// When (its clock).
    pub requested_at: Timestamp,
    /// Fresh random bytes.
    pub nonce: [u8; 16],
}

/// The originator consents to a forward and gives the new reader a stanza (signed by the
/// originator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardConsentBody {
    /// Always [`CUSTODY_VERSION`].
    pub version: u8,
    /// The document.
    pub document_id: [u8; 16],
    /// The originator (signs this consent).
    pub originator: AgencyId,
    /// The reader that forwards it.
    pub forwarder: AgencyId,
    /// The new reader.
    pub new_reader: AgencyId,
    /// The sections the new reader may read (the forwarder's).
    pub sections: Vec<u8>,
    /// The last time the new reader may open it (the forwarder's).
    pub not_after: Option<Timestamp>,
    /// The forwarder's stated reason.
    pub reason: String,
    /// When the originator consented.
    pub consented_at: Timestamp,
    /// The new reader's encryption key the stanza is sealed to.
    pub key_fingerprint: Fingerprint,
    /// That key's KEM.
    pub kem: KemAlgorithm,
    /// HPKE encapsulated key of the stanza.
    pub enc: Vec<u8>,
    /// HPKE ciphertext of the stanza (masked keys, as in a sealed document's stanza).
    pub ciphertext: Vec<u8>,
}

macro_rules! signed_body {
    ($t:ty, $domain:ident, $what:literal) => {
        impl SignedBody for $t {
            const DOMAIN: SignatureDomain = SignatureDomain::$domain;
            const WHAT: &'static str = $what;
        }
    };
}

signed_body!(ShareRequestBody, ShareRequest, "share request");
signed_body!(ShareReleaseBody, ShareRelease, "share release");
signed_body!(DeleteRequestBody, DeleteRequest, "delete request");
signed_body!(DeletionReceiptBody, DeletionReceipt, "deletion receipt");
signed_body!(ForwardRequestBody, ForwardRequest, "forward request");
signed_body!(ForwardConsentBody, ForwardConsent, "forward consent");

fn release_info(document_id: &[u8; 16], nonce: &[u8; 16]) -> Vec<u8> {
    let mut info = SHARE_RELEASE_INFO.to_vec();
    info.extend_from_slice(document_id);
    info.extend_from_slice(nonce);
    info
}

impl ShareReleaseBody {
    /// A release of `share` for `request`, wrapped to the requester's current encryption key.
    pub fn wrap(
        request: &ShareRequestBody,
        share: &OriginatorShare,
        recipient_key: &EncryptionPublicKey,
        released_at: Timestamp,
    ) -> Result<Self, CustodyError> {
        let what = "share release";
        let (enc, wrapped_share) = recipient_key
            .seal(
                &release_info(&request.document_id, &request.nonce),
                request.requester.as_str().as_bytes(),
                share.expose_bytes(),
            )
            .map_err(|_| CustodyError::VerificationFailed { what })?;
        Ok(Self {
            version: CUSTODY_VERSION,
            document_id: request.document_id,
            originator: request.originator.clone(),
            recipient: request.requester.clone(),
            request_nonce: request.nonce,
            released_at,
            key_fingerprint: recipient_key.fingerprint(),
            enc,
            wrapped_share,
        })
    }

    /// Whether this release names `request`: its document, originator, requester and nonce.
    /// [`Self::unwrap_for`] checks this too.
    pub fn answers(&self, request: &ShareRequestBody) -> bool {
        self.document_id == request.document_id
            && self.originator == request.originator
            && self.recipient == request.requester
            && self.request_nonce == request.nonce
    }

    /// Whether one of `keys` is the key the share is wrapped to.
    pub fn wrapped_to_one_of(&self, keys: &[EncryptionSecretKey]) -> bool {
        keys.iter()
            .any(|k| k.public_key().fingerprint() == self.key_fingerprint)
    }

    /// Checks that this (verified) release answers `request`, and unwraps the share with the
    /// reader's key of fingerprint `key_fingerprint`.
    pub fn unwrap_for(
        &self,
        request: &ShareRequestBody,
        keys: &[EncryptionSecretKey],
    ) -> Result<OriginatorShare, CustodyError> {
        let fail = CustodyError::VerificationFailed {
            what: "share release",
        };
        if !self.answers(request) {
            return Err(fail);
        }
        let key = keys
            .iter()
            .find(|k| k.public_key().fingerprint() == self.key_fingerprint)
            .ok_or(fail.clone())?;
        let plain = key
            .open(
                &self.enc,
                &release_info(&self.document_id, &self.request_nonce),
                self.recipient.as_str().as_bytes(),
                &self.wrapped_share,
            )
            .map_err(|_| fail.clone())?;
        OriginatorShare::from_slice(&plain).ok_or(fail)
    }
}

#[cfg(test)]
#[path = "custody_tests.rs"]
mod tests;
