//! Checks on a roster body that need no signature: limits, uniqueness, certificates,
//! revocations and groups.

use std::collections::{BTreeMap, BTreeSet};

use crate::agency::{AgencyId, validate_name};
use crate::fingerprint::Fingerprint;

use super::error::RosterError;
use super::limits::*;
use super::model::{RosterBody, certified_fingerprint};

fn limit(what: &'static str, len: usize, max: usize) -> Result<(), RosterError> {
    if len > max {
        return Err(RosterError::TooMany { what, len, max });
    }
    Ok(())
}

/// Every structural rule of a roster body.
pub fn check_body(body: &RosterBody) -> Result<(), RosterError> {
    limit("stewards", body.stewards.keys.len(), MAX_STEWARDS)?;
    limit("members", body.members.len(), MAX_MEMBERS)?;
    limit("groups", body.groups.len(), MAX_GROUPS)?;
    limit("revoked keys", body.revoked.len(), MAX_REVOKED)?;
    if body.federation.is_empty() || body.federation.len() > MAX_GROUP_NAME_LEN {
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
    let mut key_owner: BTreeMap<Fingerprint, &AgencyId> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for member in &body.members {
        if !ids.insert(&member.id) {
            return Err(RosterError::DuplicateMember(member.id.clone()));
        }
        validate_name(&member.name).map_err(|_| RosterError::BadField { field: "name" })?;
        limit(
            "transport certificates",
            member.transport.len(),
            MAX_CERTIFICATES_PER_KIND,
        )?;
        limit(
            "encryption certificates",
            member.encryption.len(),
            MAX_CERTIFICATES_PER_KIND,
        )?;
        limit("addresses", member.addresses.len(), MAX_ADDRESSES)?;
        if member.addresses.iter().any(|a| {
            a.is_empty() || a.len() > MAX_ADDRESS_LEN || a.chars().any(char::is_whitespace)
        }) {
            return Err(RosterError::BadField { field: "addresses" });
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
                    || cert.verify(&member.signing_key).is_err()
                {
                    return Err(RosterError::BadCertificate {
                        agency: member.id.clone(),
                    });
                }
            }
        }
        for fingerprint in member.key_fingerprints() {
            if revoked.contains(&fingerprint) {
                return Err(RosterError::RevokedKeyInUse {
                    agency: member.id.clone(),
                    fingerprint,
                });
            }
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
    // A steward key doubling as a member key would let one compromise do two jobs.
    for key in &stewards.keys {
        if let Some(owner) = key_owner.get(&key.fingerprint()) {
            return Err(RosterError::SharedKey {
                first: (*owner).clone(),
                second: (*owner).clone(),
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
        let name_ok = !group.name.is_empty()
            && group.name.len() <= MAX_GROUP_NAME_LEN
            && group
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !name_ok {
            return Err(bad(
                "a group name is 1-64 characters of a-z, 0-9, '-' and '.'",
            ));
        }
        if !group_names.insert(&group.name) {
            return Err(bad("the name is used twice"));
        }
        limit("group members", group.members.len(), MAX_MEMBERS)?;
        if group.members.iter().any(|m| !ids.contains(m)) {
            return Err(bad("it names an agency that is not a member"));
        }
    }
    Ok(())
}

/// The fingerprint of a certified key, re-exported for callers that revoke by fingerprint.
pub fn key_fingerprint(key: &crate::CertifiedKey) -> Fingerprint {
    certified_fingerprint(key)
}
