//! Fuzzes the sealed-document prelude and header parser, and the keyless verifier that
//! streams the rest of the file. Neither may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liaise_keys::{AgencyId, SigningPublicKey, Timestamp};
use liaise_protocol::{SignerRejected, danger_read_unverified_header, verify};

fuzz_target!(|data: &[u8]| {
    let _ = danger_read_unverified_header(data);
    let trust_all = |_: &AgencyId, _: &SigningPublicKey, _: Timestamp| Ok::<(), SignerRejected>(());
    let _ = verify(data, &trust_all);
});
