//! Encryption keys for receiving documents, used through HPKE (RFC 9180).
//!
//! Two suites, both base mode, HKDF-SHA256 and ChaCha20-Poly1305:
//! - **X-Wing** (draft-connolly-cfrg-xwing-kem: ML-KEM-768 + X25519), post-quantum hybrid,
//!   the default for new keys;
//! - **DHKEM(X25519, HKDF-SHA256)**, classic, for agencies that need it.

use std::fmt;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;
use crate::random::os_rng;
use crate::text::{self, KeyText};

/// Length of an X-Wing public key.
pub const XWING_PUBLIC_KEY_LEN: usize = 1216;
/// Length of an X-Wing encapsulated key.
pub const XWING_ENCAPPED_LEN: usize = 1120;
/// Length of an X25519 public key and encapsulated key.
pub const X25519_KEY_LEN: usize = 32;
/// Length of either suite's secret key.
pub const SECRET_KEY_LEN: usize = 32;

/// Which KEM a key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KemAlgorithm {
    /// X-Wing: ML-KEM-768 + X25519 (post-quantum hybrid).
    XWing,
    /// DHKEM(X25519, HKDF-SHA256).
    X25519,
}

impl KemAlgorithm {
    fn text_kind(self) -> KeyText {
        match self {
            Self::XWing => KeyText::XWing,
            Self::X25519 => KeyText::X25519,
        }
    }

    /// Length of the encapsulated key this KEM produces.
    pub fn encapped_len(self) -> usize {
        match self {
            Self::XWing => XWING_ENCAPPED_LEN,
            Self::X25519 => X25519_KEY_LEN,
        }
    }
}

/// HPKE failed: a malformed encapsulated key, or a ciphertext that does not open. Coarse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub struct HpkeFailure;

/// Whether `bytes` is an X25519 point of small order (the all-zero point among them): every
/// Diffie-Hellman with it gives all zeros, which HPKE refuses (RFC 9180 §7.1.4). Such a key
/// could never be sealed to, so a roster listing one would make every group send that includes
/// its agency fail: it is refused as a key instead. A clamped scalar is a multiple of the
/// cofactor, so its product with a point is zero exactly when the point has small order.
fn is_low_order_x25519(bytes: &[u8]) -> bool {
    let Ok(point) = <[u8; X25519_KEY_LEN]>::try_from(bytes) else {
        return true;
    };
    let probe = x25519_dalek::StaticSecret::from([0x55; 32]);
    !probe
        .diffie_hellman(&x25519_dalek::PublicKey::from(point))
        .was_contributory()
}

/// A public key that documents are encrypted to. Validated when made.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionPublicKey {
    algorithm: KemAlgorithm,
    bytes: Vec<u8>,
}

impl EncryptionPublicKey {
    /// Validates bytes as a public key of `algorithm`.
    pub fn from_bytes(
        algorithm: KemAlgorithm,
        bytes: &[u8],
    ) -> Result<Self, crate::signing::InvalidPublicKey> {
        let ok = match algorithm {
            KemAlgorithm::XWing => <XWing as Kem>::PublicKey::from_bytes(bytes).is_ok(),
            KemAlgorithm::X25519 => {
                <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(bytes).is_ok()
                    && !is_low_order_x25519(bytes)
            }
        };
        if !ok {
            return Err(crate::signing::InvalidPublicKey {
                what: match algorithm {
                    KemAlgorithm::XWing => "X-Wing",
                    KemAlgorithm::X25519 => "X25519",
                },
            });
        }
        Ok(Self {
            algorithm,
            bytes: bytes.to_vec(),
        })
    }

    /// The KEM.
    pub fn algorithm(&self) -> KemAlgorithm {
        self.algorithm
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.algorithm.text_kind().prefix(), &self.bytes)
    }

    /// HPKE base-mode single-shot seal (RFC 9180 §6.1): returns the encapsulated key and the
    /// ciphertext of `plaintext` under `info` and `aad`.
    pub fn seal(
        &self,
        info: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeFailure> {
        match self.algorithm {
            KemAlgorithm::XWing => seal_with::<XWing>(&self.bytes, info, aad, plaintext),
            KemAlgorithm::X25519 => {
                seal_with::<X25519HkdfSha256>(&self.bytes, info, aad, plaintext)
            }
        }
    }
}

fn seal_with<K: Kem>(
    public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), HpkeFailure> {
    let pk = K::PublicKey::from_bytes(public).map_err(|_| HpkeFailure)?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        &mut os_rng(),
    )
    .map_err(|_| HpkeFailure)?;
    Ok((enc.to_bytes().to_vec(), ct))
}

fn open_with<K: Kem>(
    secret: &[u8],
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeFailure> {
    let sk = K::PrivateKey::from_bytes(secret).map_err(|_| HpkeFailure)?;
    let enc = K::EncappedKey::from_bytes(enc).map_err(|_| HpkeFailure)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        ciphertext,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| HpkeFailure)
}

impl fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EncryptionPublicKey({:?}, {})",
            self.algorithm,
            self.fingerprint()
        )
    }
}

impl fmt::Display for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::encode(self.algorithm.text_kind(), &self.bytes))
    }
}

#[derive(Serialize, Deserialize)]
struct EncryptionPublicKeyRepr {
    algorithm: KemAlgorithm,
    #[serde(with = "serde_bytes_vec")]
    bytes: Vec<u8>,
}

mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

impl Serialize for EncryptionPublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            EncryptionPublicKeyRepr {
                algorithm: self.algorithm,
                bytes: self.bytes.clone(),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for EncryptionPublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let repr = EncryptionPublicKeyRepr::deserialize(d)?;
            Self::from_bytes(repr.algorithm, &repr.bytes).map_err(serde::de::Error::custom)
        }
    }
}

impl std::str::FromStr for EncryptionPublicKey {
    type Err = crate::signing::InvalidPublicKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        for algorithm in [KemAlgorithm::XWing, KemAlgorithm::X25519] {
            if let Some(bytes) = text::decode(algorithm.text_kind(), s) {
                return Self::from_bytes(algorithm, &bytes);
            }
        }
        Err(crate::signing::InvalidPublicKey { what: "encryption" })
    }
}

/// A secret encryption key (32 bytes for either suite). Wiped on drop.
pub struct EncryptionSecretKey {
    algorithm: KemAlgorithm,
    /// Boxed so that moving the key moves a pointer, never the secret bytes. `Zeroizing` wipes
    /// only the place a value ends up in: an inline array would leave a copy behind in every
    /// buffer a key is moved out of, e.g. the old buffer of a `Vec` of keys that grows
    /// (`AgencySecrets::rotate`) or the spare capacity `drain` leaves, freed without a wipe.
    secret: Box<Zeroizing<[u8; SECRET_KEY_LEN]>>,
    public: EncryptionPublicKey,
}

impl EncryptionSecretKey {
    /// A fresh key pair.
    pub fn generate(algorithm: KemAlgorithm) -> Self {
        let mut rng = os_rng();
        let (secret, public) = match algorithm {
            KemAlgorithm::XWing => {
                let (sk, pk) = XWing::gen_keypair_with_rng(&mut rng);
                (sk.to_bytes().to_vec(), pk.to_bytes().to_vec())
            }
            KemAlgorithm::X25519 => {
                let (sk, pk) = X25519HkdfSha256::gen_keypair_with_rng(&mut rng);
                (sk.to_bytes().to_vec(), pk.to_bytes().to_vec())
            }
        };
        let secret = Zeroizing::new(secret);
        // Copied straight into its box, so no array of it is left on the stack.
        let mut array = Box::new(Zeroizing::new([0u8; SECRET_KEY_LEN]));
        array.copy_from_slice(&secret);
        Self {
            algorithm,
            secret: array,
            public: EncryptionPublicKey {
                algorithm,
                bytes: public,
            },
        }
    }

    /// Restores a key from its secret bytes.
    pub fn from_bytes(
        algorithm: KemAlgorithm,
        secret: &[u8; SECRET_KEY_LEN],
    ) -> Result<Self, HpkeFailure> {
        let public = match algorithm {
            KemAlgorithm::XWing => {
                let sk = <XWing as Kem>::PrivateKey::from_bytes(secret).map_err(|_| HpkeFailure)?;
                XWing::sk_to_pk(&sk).to_bytes().to_vec()
            }
            KemAlgorithm::X25519 => {
                let sk = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(secret)
                    .map_err(|_| HpkeFailure)?;
                X25519HkdfSha256::sk_to_pk(&sk).to_bytes().to_vec()
            }
        };
        Ok(Self {
            algorithm,
            secret: Box::new(Zeroizing::new(*secret)),
            public: EncryptionPublicKey {
                algorithm,
                bytes: public,
            },
        })
    }

    /// The KEM.
    pub fn algorithm(&self) -> KemAlgorithm {
        self.algorithm
    }

    /// The secret bytes, for encrypting into a key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(**self.secret)
    }

    /// The matching public key.
    pub fn public_key(&self) -> &EncryptionPublicKey {
        &self.public
    }

    /// HPKE base-mode single-shot open (RFC 9180 §6.1).
    pub fn open(
        &self,
        enc: &[u8],
        info: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HpkeFailure> {
        match self.algorithm {
            KemAlgorithm::XWing => {
                open_with::<XWing>(self.secret.as_slice(), enc, info, aad, ciphertext)
            }
            KemAlgorithm::X25519 => {
                open_with::<X25519HkdfSha256>(self.secret.as_slice(), enc, info, aad, ciphertext)
            }
        }
    }
}

impl fmt::Debug for EncryptionSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionSecretKey(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_both_suites() {
        for algorithm in [KemAlgorithm::XWing, KemAlgorithm::X25519] {
            let sk = EncryptionSecretKey::generate(algorithm);
            let (enc, ct) = sk
                .public_key()
                .seal(b"info", b"aad", b"section key")
                .unwrap();
            assert_eq!(enc.len(), algorithm.encapped_len());
            assert_eq!(
                &*sk.open(&enc, b"info", b"aad", &ct).unwrap(),
                b"section key"
            );
            assert!(sk.open(&enc, b"info", b"other aad", &ct).is_err());
            assert!(sk.open(&enc, b"other info", b"aad", &ct).is_err());
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert!(sk.open(&enc, b"info", b"aad", &bad).is_err());
            assert!(sk.open(&enc[1..], b"info", b"aad", &ct).is_err());
            let other = EncryptionSecretKey::generate(algorithm);
            assert!(other.open(&enc, b"info", b"aad", &ct).is_err());

            let restored = EncryptionSecretKey::from_bytes(algorithm, &sk.to_bytes()).unwrap();
            assert_eq!(restored.public_key(), sk.public_key());
            let text = sk.public_key().to_string();
            assert_eq!(
                &text.parse::<EncryptionPublicKey>().unwrap(),
                sk.public_key()
            );
            let bin = crate::codec::encode(sk.public_key());
            let back: EncryptionPublicKey = crate::codec::decode("key", &bin, 2000).unwrap();
            assert_eq!(&back, sk.public_key());
        }
    }

    #[test]
    fn secret_bytes_stay_put_when_keys_move() {
        // A list of keys that grows past its capacity moves to a new buffer and frees the old
        // one unwiped, and `drain` shifts keys down: the secret bytes must move with neither.
        let mut keys: Vec<_> = (0..2)
            .map(|_| EncryptionSecretKey::generate(KemAlgorithm::X25519))
            .collect();
        let place = keys[1].secret.as_ptr();
        for _ in 0..40 {
            keys.push(EncryptionSecretKey::generate(KemAlgorithm::X25519));
        }
        drop(keys.drain(..1));
        assert_eq!(keys[0].secret.as_ptr(), place);
    }

    #[test]
    fn invalid_public_keys_refused() {
        assert!(EncryptionPublicKey::from_bytes(KemAlgorithm::X25519, &[0u8; 32]).is_err());
        assert!(EncryptionPublicKey::from_bytes(KemAlgorithm::X25519, &[9u8; 31]).is_err());
        assert!(EncryptionPublicKey::from_bytes(KemAlgorithm::XWing, &[9u8; 100]).is_err());
    }

    #[test]
    fn small_order_x25519_keys_are_refused() {
        let hex = |h: &str| -> Vec<u8> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        };
        // Points of order 1, 2, 4 and 8 (RFC 7748 §7; the list libsodium refuses).
        for point in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            assert!(
                EncryptionPublicKey::from_bytes(KemAlgorithm::X25519, &hex(point)).is_err(),
                "{point}"
            );
        }
        // A real key, and the base point, are keys.
        let real = EncryptionSecretKey::generate(KemAlgorithm::X25519);
        let bytes = real.public_key().as_bytes().to_vec();
        assert!(EncryptionPublicKey::from_bytes(KemAlgorithm::X25519, &bytes).is_ok());
        let mut base = [0u8; 32];
        base[0] = 9;
        assert!(EncryptionPublicKey::from_bytes(KemAlgorithm::X25519, &base).is_ok());
    }

    #[test]
    fn low_order_x25519_share_fails_cleanly() {
        // A low-order point (order 8) as the encapsulated key: DHKEM must refuse, not panic.
        let mut low_order = [0u8; 32];
        low_order[0] = 1;
        let sk = EncryptionSecretKey::generate(KemAlgorithm::X25519);
        assert!(sk.open(&low_order, b"i", b"a", &[0u8; 40]).is_err());
        assert_eq!(format!("{sk:?}"), "EncryptionSecretKey(..)");
    }
}
