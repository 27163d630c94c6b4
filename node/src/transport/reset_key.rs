//! The key behind QUIC stateless resets (RFC 9000, section 10.3), derived from the node's
//! transport key, so that a restarted node still knows it.
//!
//! A node that restarts forgets its connections. A peer still sending on one gets, from the
//! new process, a stateless reset: a packet only the holder of the reset key could have made
//! for that connection id. With keys drawn at random per process, the new process drops the
//! packet (it does not recognise the connection id as one of its own) or the peer cannot
//! recognise the reset; the peer then waits for its idle timeout or its stalled stream's
//! timeout (30 s) before it dials again, its deliveries to the node stalled meanwhile.
//! Derived from the transport key, the restarted node recognises its old connection ids and
//! its resets match the tokens the old process gave out: the peer dials again at once.
//!
//! Both keys are HKDF-SHA256 (RFC 5869) of the transport key's secret bytes, with their own
//! salt and info, so they say nothing about the transport key. Reset tokens are HMAC-SHA256
//! under the reset key, as in quinn's own default (RFC 9000, section 10.3.2, "a static
//! key"). A connection id is 8 random bytes and the first 8 bytes of their HMAC-SHA256
//! under the connection-id key ([`NodeConnectionIds`]), not quinn's hashed ids, whose
//! 40-bit non-cryptographic tag would let anyone who saw a few ids compute valid ones, and
//! so (once the key outlives a process) collect reset tokens for connections it never saw.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use liaise_keys::TransportSecretKey;
use quinn::crypto::{CryptoError, HmacKey};
use sha2::Sha256;
use zeroize::Zeroizing;

const SALT: &[u8] = b"liaise stateless reset v1";
const INFO: &[u8] = b"QUIC stateless reset token key";
const CID_INFO: &[u8] = b"QUIC connection id key";
/// Random bytes at the start of a connection id.
const CID_NONCE_LEN: usize = 8;
/// The HMAC tag after them.
const CID_TAG_LEN: usize = 8;
/// HMAC-SHA256's block size: a key of exactly this length is used as it is.
const TOKEN_KEY_LEN: usize = 64;
const TAG_LEN: usize = 32;

/// The node's stateless-reset key, and the key of its connection ids.
pub struct StatelessResetKey {
    token_key: Zeroizing<[u8; TOKEN_KEY_LEN]>,
    cid_key: Zeroizing<[u8; TOKEN_KEY_LEN]>,
}

impl StatelessResetKey {
    /// The keys of the node whose transport key is `transport`.
    pub fn derive(transport: &TransportSecretKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), &*transport.to_bytes());
        let mut token_key = Zeroizing::new([0u8; TOKEN_KEY_LEN]);
        let mut cid_key = Zeroizing::new([0u8; TOKEN_KEY_LEN]);
        // 64 bytes are far within HKDF-SHA256's 8160-byte output limit: expand cannot fail.
        let _ = hkdf.expand(INFO, &mut *token_key);
        let _ = hkdf.expand(CID_INFO, &mut *cid_key);
        Self { token_key, cid_key }
    }

    /// An endpoint configuration that makes and recognises this node's stateless resets and
    /// connection ids, as the node's earlier processes did.
    pub fn endpoint_config(self) -> quinn::EndpointConfig {
        let ids = NodeConnectionIds {
            key: std::sync::Arc::new(self.cid_key.clone()),
        };
        let mut config = quinn::EndpointConfig::new(std::sync::Arc::new(self));
        config.cid_generator(move || Box::new(ids.clone()));
        config
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        hmac_sha256(&self.token_key, data)
    }
}

fn hmac_sha256(key: &[u8; TOKEN_KEY_LEN], data: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*key).into());
    mac.update(data);
    mac
}

/// The node's connection ids: [`CID_NONCE_LEN`] random bytes, then the first [`CID_TAG_LEN`]
/// bytes of their HMAC-SHA256 under the connection-id key. Only the node makes valid ones;
/// each says nothing about the connection or the others (RFC 9000, section 5.1).
#[derive(Clone)]
pub struct NodeConnectionIds {
    key: std::sync::Arc<Zeroizing<[u8; TOKEN_KEY_LEN]>>,
}

impl NodeConnectionIds {
    fn tag(&self, nonce: &[u8]) -> [u8; CID_TAG_LEN] {
        let full = hmac_sha256(&self.key, nonce).finalize().into_bytes();
        let mut tag = [0u8; CID_TAG_LEN];
        for (slot, byte) in tag.iter_mut().zip(full.iter()) {
            *slot = *byte;
        }
        tag
    }
}

impl std::fmt::Debug for NodeConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeConnectionIds(..)")
    }
}

impl quinn::ConnectionIdGenerator for NodeConnectionIds {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let nonce = liaise_keys::random::random_bytes::<CID_NONCE_LEN>();
        let mut id = [0u8; CID_NONCE_LEN + CID_TAG_LEN];
        let (head, tail) = id.split_at_mut(CID_NONCE_LEN);
        head.copy_from_slice(&nonce);
        tail.copy_from_slice(&self.tag(&nonce));
        quinn::ConnectionId::new(&id)
    }

    fn validate(&self, cid: &quinn::ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if cid.len() != CID_NONCE_LEN + CID_TAG_LEN {
            return Err(quinn_proto::InvalidCid);
        }
        let (nonce, tag) = cid.split_at(CID_NONCE_LEN);
        // In constant time: how long the check took says nothing about the tag.
        hmac_sha256(&self.key, nonce)
            .verify_truncated_left(tag)
            .map_err(|_| quinn_proto::InvalidCid)
    }

    fn cid_len(&self) -> usize {
        CID_NONCE_LEN + CID_TAG_LEN
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

impl std::fmt::Debug for StatelessResetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatelessResetKey(..)")
    }
}

impl HmacKey for StatelessResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let tag = self.mac(data).finalize().into_bytes();
        let n = signature_out.len().min(tag.len());
        if let (Some(out), Some(tag)) = (signature_out.get_mut(..n), tag.get(..n)) {
            out.copy_from_slice(tag);
        }
    }

    fn signature_len(&self) -> usize {
        TAG_LEN
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        // Constant time.
        self.mac(data)
            .verify_slice(signature)
            .map_err(|_| CryptoError)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_same_transport_key_gives_the_same_tokens_and_another_key_others() {
        let transport = TransportSecretKey::generate();
        let (a, b) = (
            StatelessResetKey::derive(&transport),
            StatelessResetKey::derive(&TransportSecretKey::from_bytes(&transport.to_bytes())),
        );
        let (mut tag_a, mut tag_b) = ([0u8; TAG_LEN], [0u8; TAG_LEN]);
        a.sign(b"connection id", &mut tag_a);
        b.sign(b"connection id", &mut tag_b);
        assert_eq!(tag_a, tag_b);
        assert!(b.verify(b"connection id", &tag_a).is_ok());
        assert!(b.verify(b"another id", &tag_a).is_err());
        let other = StatelessResetKey::derive(&TransportSecretKey::generate());
        assert!(other.verify(b"connection id", &tag_a).is_err());
        // Not the transport key's bytes, nor a plain hash of them.
        assert_ne!(&a.token_key[..32], &transport.to_bytes()[..]);
        assert_eq!(*a.cid_key, *b.cid_key);
        assert_ne!(*a.cid_key, *a.token_key);
    }

    #[test]
    fn connection_ids_are_recognised_by_a_restarted_node_and_not_forged() {
        use quinn::ConnectionIdGenerator;
        let transport = TransportSecretKey::generate();
        let ids = |key: &TransportSecretKey| NodeConnectionIds {
            key: std::sync::Arc::new(StatelessResetKey::derive(key).cid_key.clone()),
        };
        let (mut before, after) = (ids(&transport), ids(&transport));
        let id = before.generate_cid();
        assert_eq!(id.len(), 16);
        assert!(after.validate(&id).is_ok());
        assert_ne!(id, before.generate_cid());
        // Another node's, a changed byte, a shorter id: not this node's.
        assert!(ids(&TransportSecretKey::generate()).validate(&id).is_err());
        for i in 0..id.len() {
            let mut bytes = id.to_vec();
            bytes[i] ^= 1;
            assert!(
                after.validate(&quinn::ConnectionId::new(&bytes)).is_err(),
                "{i}"
            );
        }
        assert!(
            after
                .validate(&quinn::ConnectionId::new(&id[..15]))
                .is_err()
        );
        assert!(after.validate(&quinn::ConnectionId::new(&[])).is_err());
    }
}
