//! Signed checkpoints of a log, peers' countersignatures on them, and the witness's check
//! that a new checkpoint extends the last one it countersigned.
//!
//! ```text
//! checkpoint body       = postcard { version: u8, agency, seq: u64, head: [u8;32], time }
//! checkpoint            = postcard { body: bytes, signature }   "liaise log-checkpoint v1\n"
//! countersignature body = postcard { version: u8, witness, checkpoint: [u8;32], time }
//!                         (checkpoint = SHA-256 of the checkpoint body bytes)
//! countersignature      = postcard { body: bytes, signature }   "liaise checkpoint-countersignature v1\n"
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use liaise_keys::codec;
use liaise_keys::{
    AgencyId, Signature, SignatureDomain, SigningPublicKey, SigningSecretKey, Timestamp,
};

use super::LogError;
use super::chain::{MAX_PROOF_LEAVES, extend};

/// The checkpoint and countersignature body version.
pub const CHECKPOINT_VERSION: u8 = 1;
/// The largest encoded checkpoint.
pub const MAX_CHECKPOINT_LEN: usize = 256;
/// The largest encoded countersignature.
pub const MAX_COUNTERSIGNATURE_LEN: usize = 256;

/// What a checkpoint states: the log of `agency` had `seq + 1` entries with this head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// Always [`CHECKPOINT_VERSION`].
    pub version: u8,
    /// The agency whose log it is, and who signs.
    pub agency: AgencyId,
    /// The last entry covered.
    pub seq: u64,
    /// `head(seq)`.
    pub head: [u8; 32],
    /// When it was signed.
    pub time: Timestamp,
}

/// A checkpoint as stored and sent: the exact body bytes and the agency's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    body: Vec<u8>,
    signature: Signature,
}

/// What a countersignature states: `witness` saw this checkpoint (by the hash of its body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersignatureBody {
    /// Always [`CHECKPOINT_VERSION`].
    pub version: u8,
    /// The agency that countersigns.
    pub witness: AgencyId,
    /// SHA-256 of the checkpoint body bytes.
    pub checkpoint: [u8; 32],
    /// When it countersigned.
    pub time: Timestamp,
}

/// A countersignature as stored and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCountersignature {
    body: Vec<u8>,
    signature: Signature,
}

/// Refuses a checkpoint or countersignature body of another version before decoding it: its
/// layout may be another.
fn check_version(body: &[u8]) -> Result<(), LogError> {
    match codec::leading_version(body) {
        Some(version) if version != CHECKPOINT_VERSION => {
            Err(LogError::UnsupportedVersion(version))
        }
        _ => Ok(()),
    }
}

impl SignedCheckpoint {
    /// Signs a checkpoint with the agency's signing key.
    pub fn sign(body: &CheckpointBody, key: &SigningSecretKey) -> Self {
        let body = codec::encode(body);
        let signature = key.sign(SignatureDomain::LogCheckpoint, &body);
        Self { body, signature }
    }

    /// The stored and sent encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses (not yet verified).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LogError> {
        codec::decode("checkpoint", bytes, MAX_CHECKPOINT_LEN).map_err(|_| LogError::Malformed)
    }

    /// The body, NOT verified: to find out whose key to verify with.
    pub fn body_unverified(&self) -> Result<CheckpointBody, LogError> {
        check_version(&self.body)?;
        let body: CheckpointBody = codec::decode("checkpoint body", &self.body, MAX_CHECKPOINT_LEN)
            .map_err(|_| LogError::Malformed)?;
        Ok(body)
    }

    /// Verifies the signature with the agency's key (from the roster) and returns the body.
    pub fn verify(&self, key: &SigningPublicKey) -> Result<CheckpointBody, LogError> {
        let body = self.body_unverified()?;
        key.verify(SignatureDomain::LogCheckpoint, &self.body, &self.signature)
            .map_err(|_| LogError::BadSignature)?;
        Ok(body)
    }

    /// SHA-256 of the body bytes: what a countersignature names.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.body).into()
    }
}

impl SignedCountersignature {
    /// Countersigns `checkpoint` as `witness`.
    pub fn sign(
        checkpoint: &SignedCheckpoint,
        witness: &AgencyId,
        time: Timestamp,
        key: &SigningSecretKey,
    ) -> Self {
        let body = codec::encode(&CountersignatureBody {
            version: CHECKPOINT_VERSION,
            witness: witness.clone(),
            checkpoint: checkpoint.digest(),
            time,
        });
        let signature = key.sign(SignatureDomain::CheckpointCountersignature, &body);
        Self { body, signature }
    }

    /// The stored and sent encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses (not yet verified).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LogError> {
        codec::decode("countersignature", bytes, MAX_COUNTERSIGNATURE_LEN)
            .map_err(|_| LogError::Malformed)
    }

    /// The body, NOT verified: to find out whose key to verify with.
    pub fn body_unverified(&self) -> Result<CountersignatureBody, LogError> {
        check_version(&self.body)?;
        let body: CountersignatureBody = codec::decode(
            "countersignature body",
            &self.body,
            MAX_COUNTERSIGNATURE_LEN,
        )
        .map_err(|_| LogError::Malformed)?;
        Ok(body)
    }

    /// Verifies the witness's signature only (not which checkpoint it names).
    pub fn verify(&self, witness_key: &SigningPublicKey) -> Result<CountersignatureBody, LogError> {
        let body = self.body_unverified()?;
        witness_key
            .verify(
                SignatureDomain::CheckpointCountersignature,
                &self.body,
                &self.signature,
            )
            .map_err(|_| LogError::BadSignature)?;
        Ok(body)
    }

    /// Verifies the witness's signature and that it is about exactly `checkpoint`.
    pub fn verify_for(
        &self,
        checkpoint: &SignedCheckpoint,
        witness_key: &SigningPublicKey,
    ) -> Result<CountersignatureBody, LogError> {
        let body = self.verify(witness_key)?;
        if body.checkpoint != checkpoint.digest() {
            return Err(LogError::BadSignature);
        }
        Ok(body)
    }
}

/// How an offered checkpoint contradicts the last one a witness countersigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Contradiction {
    /// Same position, another head: the log was rewritten.
    #[error("checkpoint at entry {seq} has another head than the one countersigned")]
    Fork {
        /// The position.
        seq: u64,
    },
    /// The log is shorter than a checkpoint already countersigned.
    #[error("log went back from entry {countersigned} to {offered}")]
    Rollback {
        /// What was countersigned.
        countersigned: u64,
        /// What is offered now.
        offered: u64,
    },
    /// The leaf hashes offered do not lead from the countersigned head to the new one.
    #[error(
        "checkpoint at entry {seq} does not extend the one countersigned at entry {countersigned}"
    )]
    Inconsistent {
        /// The countersigned position.
        countersigned: u64,
        /// The offered position.
        seq: u64,
    },
}

/// Checks that `offered` extends the checkpoint (`seq`, `head`) a witness countersigned
/// last, using `proof`: the leaf hashes of entries `seq+1..=offered.seq`.
pub fn check_extends(
    countersigned: Option<(u64, [u8; 32])>,
    offered: &CheckpointBody,
    proof: &[[u8; 32]],
) -> Result<(), Contradiction> {
    let Some((seq, head)) = countersigned else {
        return Ok(());
    };
    if offered.seq < seq {
        return Err(Contradiction::Rollback {
            countersigned: seq,
            offered: offered.seq,
        });
    }
    if offered.seq == seq {
        return if offered.head == head {
            Ok(())
        } else {
            Err(Contradiction::Fork { seq })
        };
    }
    let inconsistent = Contradiction::Inconsistent {
        countersigned: seq,
        seq: offered.seq,
    };
    let gap = offered.seq - seq;
    if proof.len() > MAX_PROOF_LEAVES || proof.len() as u64 != gap {
        return Err(inconsistent);
    }
    if extend(&head, proof) != offered.head {
        return Err(inconsistent);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::chain::{GENESIS_HEAD, next_head};
    use super::*;

    fn body(seq: u64, head: [u8; 32]) -> CheckpointBody {
        CheckpointBody {
            version: CHECKPOINT_VERSION,
            agency: AgencyId::new("nl.city.utrecht").unwrap(),
            seq,
            head,
            time: Timestamp(1_800_000_000),
        }
    }

    #[test]
    fn sign_countersign_verify() {
        let owner = SigningSecretKey::generate();
        let witness = SigningSecretKey::generate();
        let cp = SignedCheckpoint::sign(&body(5, [1; 32]), &owner);
        let bytes = cp.to_bytes();
        assert!(bytes.len() <= MAX_CHECKPOINT_LEN);
        let back = SignedCheckpoint::from_bytes(&bytes).unwrap();
        assert_eq!(back.verify(&owner.public_key()).unwrap(), body(5, [1; 32]));
        assert!(back.verify(&witness.public_key()).is_err());

        let w = AgencyId::new("nl.probation.utrecht-centraal").unwrap();
        let cs = SignedCountersignature::sign(&cp, &w, Timestamp(9), &witness);
        let cs_bytes = cs.to_bytes();
        assert!(cs_bytes.len() <= MAX_COUNTERSIGNATURE_LEN);
        let cs = SignedCountersignature::from_bytes(&cs_bytes).unwrap();
        assert_eq!(
            cs.verify_for(&cp, &witness.public_key()).unwrap().witness,
            w
        );
        assert!(cs.verify_for(&cp, &owner.public_key()).is_err());
        let other = SignedCheckpoint::sign(&body(5, [2; 32]), &owner);
        assert!(cs.verify_for(&other, &witness.public_key()).is_err());
        // A checkpoint signature is not a countersignature, nor the reverse.
        assert!(
            witness
                .public_key()
                .verify(SignatureDomain::LogCheckpoint, &cs.body, &cs.signature)
                .is_err()
        );
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let ok = SignedCheckpoint::from_bytes(&bad)
                .and_then(|c| c.verify(&owner.public_key()))
                .is_ok();
            assert!(!ok, "flip at {i} accepted");
        }
    }

    #[test]
    fn extension_fork_and_rollback() {
        let leaves: Vec<[u8; 32]> = (0..6u8).map(|i| [i; 32]).collect();
        let heads: Vec<[u8; 32]> = leaves
            .iter()
            .scan(GENESIS_HEAD, |h, l| {
                *h = next_head(h, l);
                Some(*h)
            })
            .collect();
        let known = Some((2, heads[2]));
        assert!(check_extends(None, &body(5, heads[5]), &[]).is_ok());
        assert!(check_extends(known, &body(5, heads[5]), &leaves[3..]).is_ok());
        assert!(check_extends(known, &body(2, heads[2]), &[]).is_ok());
        assert_eq!(
            check_extends(known, &body(2, [9; 32]), &[]),
            Err(Contradiction::Fork { seq: 2 })
        );
        assert!(matches!(
            check_extends(known, &body(1, heads[1]), &[]),
            Err(Contradiction::Rollback { .. })
        ));
        assert!(matches!(
            check_extends(known, &body(5, heads[5]), &leaves[2..]),
            Err(Contradiction::Inconsistent { .. })
        ));
        let mut forged = leaves[3..].to_vec();
        forged[0] = [7; 32];
        assert!(check_extends(known, &body(5, heads[5]), &forged).is_err());
    }

    /// Bodies of a later version may have another layout: named unsupported from their
    /// leading version byte, not reported as malformed.
    #[test]
    fn a_later_version_is_named_whatever_its_layout() {
        let key = SigningSecretKey::generate();
        let later = vec![CHECKPOINT_VERSION + 1, 0xff, 0xff, 0xff];
        let unsupported = LogError::UnsupportedVersion(CHECKPOINT_VERSION + 1);
        let checkpoint = SignedCheckpoint {
            signature: key.sign(SignatureDomain::LogCheckpoint, &later),
            body: later.clone(),
        };
        assert_eq!(checkpoint.body_unverified(), Err(unsupported.clone()));
        assert_eq!(
            checkpoint.verify(&key.public_key()),
            Err(unsupported.clone())
        );
        let countersignature = SignedCountersignature {
            signature: key.sign(SignatureDomain::CheckpointCountersignature, &later),
            body: later,
        };
        assert_eq!(countersignature.body_unverified(), Err(unsupported));
        let garbled = SignedCheckpoint {
            body: vec![CHECKPOINT_VERSION, 0xff, 0xff, 0xff],
            signature: checkpoint.signature,
        };
        assert_eq!(garbled.body_unverified(), Err(LogError::Malformed));
    }
}
