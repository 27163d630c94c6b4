//! Checks on a roster body that need no signature: limits, uniqueness, certificates,
//! revocations and groups.

use std::collections::{BTreeMap, BTreeSet};

use crate::agency::{AgencyId, validate_name};
use crate::fingerprint::Fingerprint;

use super::error::RosterError;
use super::limits::*;
use super::model::{RosterBody, certified_fingerprint, ed25519_fingerprints};

fn limit(what: &'static str, len: usize, max: usize) -> Result<(), RosterError> {
    if len > max {
        return Err(RosterError::TooMany { what, len, max });
    }
    Ok(())
}

/// The rule for a group's name, as errors state it.
pub const GROUP_NAME_RULE: &str = "a group name is 1-64 characters of a-z, 0-9, '-' and '.'";

/// Whether `name` may name a group (see [`GROUP_NAME_RULE`]).
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// The list limits, checked right after decoding and before any signature work.
pub fn check_limits(body: &RosterBody) -> Result<(), RosterError> {
    limit("stewards", body.stewards.keys.len(), MAX_STEWARDS)?;
    limit("members", body.members.len(), MAX_MEMBERS)?;
    limit("groups", body.groups.len(), MAX_GROUPS)?;
    limit("revoked keys", body.revoked.len(), MAX_REVOKED)?;
    for member in &body.members {
        let certs = MAX_CERTIFICATES_PER_KIND;
        limit("transport certificates", member.transport.len(), certs)?;
        limit("encryption certificates", member.encryption.len(), certs)?;
        limit("addresses", member.addresses.len(), MAX_ADDRESSES)?;
    }
    for group in &body.groups {
        limit("group members", group.members.len(), MAX_MEMBERS)?;
    }
    Ok(())
}

/// Checks a node address: `host:port`, 1 to [`MAX_ADDRESS_LEN`] bytes, no white space or
/// control characters, a non-empty host and a port number after the last colon.
pub fn validate_address(address: &str) -> Result<(), RosterError> {
    let bad = || {
        RosterError::BadAddress(
            address
                .chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect(),
        )
    };
    if address.is_empty()
        || address.len() > MAX_ADDRESS_LEN
        || address.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// Every structural rule of a roster body.
pub fn check_body(body: &RosterBody) -> Result<(), RosterError> {
    check_limits(body)?;
    if body.federation.is_empty()
        || body.federation.len() > MAX_GROUP_NAME_LEN
        || body.federation.chars().any(char::is_control)
    {
        return Err(RosterError::BadField {
            field: "federation",
        });
    }
    if body.expires_at <= body.issued_at {
        return Err(RosterError::BadField {
            field: "expires_at",
        });
    }

    let stewards = &body.stewards;
    let distinct: BTreeSet<[u8; 32]> = stewards.keys.iter().map(|k| k.to_bytes()).collect();
    if distinct.len() != stewards.keys.len() {
        return Err(RosterError::BadStewardSet {
            reason: "a steward key is listed twice",
        });
    }
    if stewards.threshold == 0 || usize::from(stewards.threshold) > stewards.keys.len() {
        return Err(RosterError::BadStewardSet {
            reason: "the threshold must be between 1 and the number of stewards",
        });
    }

    let revoked: BTreeSet<Fingerprint> = body.revoked.iter().map(|r| r.fingerprint).collect();
    // A revoked steward key must not count towards the threshold that signs this roster. An
    // Ed25519 key is revoked in every role, whichever of its fingerprints was revoked.
    if stewards.keys.iter().any(|k| {
        ed25519_fingerprints(&k.to_bytes())
            .iter()
            .any(|f| revoked.contains(f))
    }) {
        return Err(RosterError::BadStewardSet {
            reason: "a steward key is revoked",
        });
    }
    let mut key_owner: BTreeMap<Fingerprint, &AgencyId> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for member in &body.members {
        if !ids.insert(&member.id) {
            return Err(RosterError::DuplicateMember(member.id.clone()));
        }
        validate_name(&member.name).map_err(|_| RosterError::BadField { field: "name" })?;
        for address in &member.addresses {
            validate_address(address)?;
        }
        for (certs, want_transport) in [(&member.transport, true), (&member.encryption, false)] {
            for cert in certs.iter() {
                let right_kind = matches!(
                    (&cert.body().key, want_transport),
                    (crate::CertifiedKey::Transport(_), true)
                        | (crate::CertifiedKey::Encryption(_), false)
                );
                if !right_kind
                    || cert.body().agency != member.id
                    || cert.body().not_after <= cert.body().not_before
                    || cert.verify(&member.signing_key).is_err()
                {
                    return Err(RosterError::BadCertificate {
                        agency: member.id.clone(),
                    });
                }
            }
        }
        // Both roles of each Ed25519 key: a key revoked as a transport key must not come back
        // as a signing key, nor the reverse.
        if let Some(fingerprint) = member
            .revocable_fingerprints()
            .into_iter()
            .find(|f| revoked.contains(f))
        {
            return Err(RosterError::RevokedKeyInUse {
                agency: member.id.clone(),
                fingerprint,
            });
        }
        for fingerprint in member.key_fingerprints() {
            if let Some(first) = key_owner.insert(fingerprint, &member.id)
                && first != &member.id
            {
                return Err(RosterError::SharedKey {
                    first: first.clone(),
                    second: member.id.clone(),
                    fingerprint,
                });
            }
        }
    }
    // The same Ed25519 key in two roles (one agency's signing key as another's transport key,
    // or a steward key as a member key) has two fingerprints; compare the raw key bytes.
    let mut ed25519_owner: BTreeMap<[u8; 32], &AgencyId> = BTreeMap::new();
    for member in &body.members {
        let transport = member.transport.iter().filter_map(|c| match &c.body().key {
            crate::CertifiedKey::Transport(k) => Some(k.to_bytes()),
            crate::CertifiedKey::Encryption(_) => None,
        });
        for raw in std::iter::once(member.signing_key.to_bytes()).chain(transport) {
            if let Some(first) = ed25519_owner.insert(raw, &member.id)
                && first != &member.id
            {
                return Err(RosterError::SharedKey {
                    first: first.clone(),
                    second: member.id.clone(),
                    fingerprint: Fingerprint::of("ed25519", &raw),
                });
            }
        }
    }
    for key in &stewards.keys {
        if let Some(owner) = ed25519_owner.get(&key.to_bytes()) {
            return Err(RosterError::StewardKeyIsMemberKey {
                agency: (*owner).clone(),
                fingerprint: key.fingerprint(),
            });
        }
    }

    let mut group_names = BTreeSet::new();
    for group in &body.groups {
        let bad = |reason| RosterError::BadGroup {
            group: group.name.chars().take(MAX_GROUP_NAME_LEN).collect(),
            reason,
        };
        if !valid_group_name(&group.name) {
            return Err(bad(GROUP_NAME_RULE));
        }
        if !group_names.insert(&group.name) {
            return Err(bad("the name is used twice"));
        }
        if group.members.iter().any(|m| !ids.contains(m)) {
            return Err(bad("it names an agency that is not a member"));
        }
        let distinct: BTreeSet<&AgencyId> = group.members.iter().collect();
        if distinct.len() != group.members.len() {
            return Err(bad("it names an agency twice"));
        }
    }
    Ok(())
}

/// The fingerprint of a certified key, re-exported for callers that revoke by fingerprint.
pub fn key_fingerprint(key: &crate::CertifiedKey) -> Fingerprint {
    certified_fingerprint(key)
}
