//! Fuzzes opening a sealed document as a recipient with fixed test keys (those of the test
//! vectors, so `protocol/tests/vectors/*` bodies make a good seed corpus). Must never panic
//! and never return plaintext for a document that does not verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liaise_keys::{AgencyId, EncryptionSecretKey, KemAlgorithm, SigningPublicKey, Timestamp};
use liaise_protocol::{SignerRejected, open_in_memory};
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(me) = AgencyId::new("nl.city.utrecht") else {
        return;
    };
    // The city's test key from the spec's test vectors, so seeds from them decrypt.
    let seed: [u8; 32] = Sha256::digest(b"liaise test encryption key\nnl.city.utrecht").into();
    let Ok(key) = EncryptionSecretKey::from_bytes(KemAlgorithm::X25519, &seed) else {
        return;
    };
    let trust_all = |_: &AgencyId, _: &SigningPublicKey, _: Timestamp| Ok::<(), SignerRejected>(());
    let _ = open_in_memory(data, &me, &[key], &trust_all, Timestamp(1_790_000_060));
});
