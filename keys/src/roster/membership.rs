//! The membership request: the public half of an agency's keys, which it hands to a steward
//! (as `membership.toml`) to be added to the roster.
//!
//! It proves possession of the signing key: every certificate in it is signed by that key and
//! names the agency, so nobody can register another agency's key as their own.

use serde::{Deserialize, Serialize};

use crate::agency::{AgencyId, AgencyKind, Country, validate_name};
use crate::certificate::{CertifiedKey, KeyCertificate};
use crate::signing::SigningPublicKey;

use super::limits::{MAX_ADDRESSES, MAX_CERTIFICATES_PER_KIND};
use super::model::Member;

/// The largest membership request file.
pub const MAX_MEMBERSHIP_FILE_LEN: usize = 64 * 1024;

/// How long the transport key replaced by `liaise keys rotate` stays certified beside the new
/// one. A node presents the old key while its roster certifies it, so peers that still hold
/// the roster from before the rotation can reach it. Twice the default roster validity (30
/// days): the steward may publish up to a month after the rotation, and every roster from
/// before that publication has expired a month later.
pub const TRANSPORT_KEY_OVERLAP: std::time::Duration = std::time::Duration::from_secs(60 * 86_400);

/// What a membership request file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    /// The agency id.
    pub agency: AgencyId,
    /// Display name.
    pub name: String,
    /// Kind of agency.
    pub kind: AgencyKind,
    /// Country.
    pub country: Country,
    /// Node addresses, `host:port`.
    pub addresses: Vec<String>,
    /// The identity key.
    pub signing_key: SigningPublicKey,
    /// Certified transport keys.
    pub transport: Vec<KeyCertificate>,
    /// Certified encryption keys.
    pub encryption: Vec<KeyCertificate>,
}

/// Why a membership request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// Not valid TOML or missing fields.
    #[error("membership request is malformed: {0}")]
    Malformed(String),
    /// A certificate is not signed by the request's signing key, names another agency, or is
    /// of the wrong kind.
    #[error("membership request for {0} has a key certificate that its signing key did not make")]
    BadCertificate(AgencyId),
    /// Missing keys or too many.
    #[error(
        "membership request for {0} must have 1 to 8 transport and encryption certificates and 1 to 8 addresses"
    )]
    WrongCounts(AgencyId),
    /// An address is empty or too long.
    #[error("membership request has an invalid address `{0}`; use host:port")]
    BadAddress(String),
    /// The name is invalid.
    #[error("membership request has an invalid name")]
    BadName,
}

impl MembershipRequest {
    /// Parses and checks a `membership.toml`.
    pub fn from_toml(text: &str) -> Result<Self, MembershipError> {
        if text.len() > MAX_MEMBERSHIP_FILE_LEN {
            return Err(MembershipError::Malformed("file too large".into()));
        }
        let request: Self =
            toml::from_str(text).map_err(|e| MembershipError::Malformed(e.message().to_owned()))?;
        request.check()?;
        Ok(request)
    }

    /// Renders as TOML with a comment explaining what it is.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Liaise membership request for {} ({}).\n\
             # Public keys only: safe to send to your federation's steward by e-mail.\n\
             # Confirm the signing-key fingerprint with the steward by phone:\n\
             #   {}\n\n{body}",
            self.agency,
            self.name,
            self.signing_key.fingerprint()
        )
    }

    /// Every rule: names, counts, addresses, and that each certificate is the agency's own.
    pub fn check(&self) -> Result<(), MembershipError> {
        validate_name(&self.name).map_err(|_| MembershipError::BadName)?;
        let counts_ok = (1..=MAX_CERTIFICATES_PER_KIND).contains(&self.transport.len())
            && (1..=MAX_CERTIFICATES_PER_KIND).contains(&self.encryption.len())
            && (1..=MAX_ADDRESSES).contains(&self.addresses.len());
        if !counts_ok {
            return Err(MembershipError::WrongCounts(self.agency.clone()));
        }
        for address in &self.addresses {
            super::validate::validate_address(address).map_err(|_| {
                MembershipError::BadAddress(
                    address
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(80)
                        .collect(),
                )
            })?;
        }
        for (certs, want_transport) in [(&self.transport, true), (&self.encryption, false)] {
            for cert in certs.iter() {
                let right_kind = matches!(
                    (&cert.body().key, want_transport),
                    (CertifiedKey::Transport(_), true) | (CertifiedKey::Encryption(_), false)
                );
                if !right_kind
                    || cert.body().agency != self.agency
                    || cert.body().not_after <= cert.body().not_before
                    || cert.verify(&self.signing_key).is_err()
                {
                    return Err(MembershipError::BadCertificate(self.agency.clone()));
                }
            }
        }
        Ok(())
    }

    /// The roster entry for this request.
    pub fn to_member(&self) -> Member {
        Member {
            id: self.agency.clone(),
            name: self.name.clone(),
            kind: self.kind,
            country: self.country,
            signing_key: self.signing_key,
            transport: self.transport.clone(),
            encryption: self.encryption.clone(),
            addresses: self.addresses.clone(),
        }
    }
}

/// Builds the certificates for a fresh or rotated key set.
pub fn certify(
    agency: &AgencyId,
    secrets: &crate::identity::AgencySecrets,
    not_before: crate::time::Timestamp,
    not_after: crate::time::Timestamp,
) -> (KeyCertificate, Option<KeyCertificate>) {
    let transport = KeyCertificate::issue(
        &secrets.signing,
        crate::certificate::CertificateBody {
            agency: agency.clone(),
            key: CertifiedKey::Transport(secrets.transport.public_key()),
            not_before,
            not_after,
        },
    );
    let encryption = secrets.current_encryption().map(|k| {
        KeyCertificate::issue(
            &secrets.signing,
            crate::certificate::CertificateBody {
                agency: agency.clone(),
                key: CertifiedKey::Encryption(k.public_key().clone()),
                not_before,
                not_after,
            },
        )
    });
    (transport, encryption)
}

/// Certifies the transport key a rotation replaced (`secrets.previous_transport`), if any,
/// until `not_after`. Its `not_before` is one second before `not_before`, so the new key
/// stays the newest one the roster lists.
pub fn certify_previous_transport(
    agency: &AgencyId,
    secrets: &crate::identity::AgencySecrets,
    not_before: crate::time::Timestamp,
    not_after: crate::time::Timestamp,
) -> Option<KeyCertificate> {
    let previous = secrets.previous_transport.as_ref()?;
    Some(KeyCertificate::issue(
        &secrets.signing,
        crate::certificate::CertificateBody {
            agency: agency.clone(),
            key: CertifiedKey::Transport(previous.public_key()),
            not_before: crate::time::Timestamp(not_before.0.saturating_sub(1)),
            not_after,
        },
    ))
}
