//! The trailer and the bytes the sender's signature covers (spec: "Trailer").
//!
//! ```text
//! signed = "liaise document v1\n" || prelude || header
//!       || for each section i: BLAKE3(ciphertext[i]) || commitment[i]
//! ```
//!
//! The domain tag is added by [`SigningSecretKey::sign`] with [`SignatureDomain::Document`].

use std::io::{Read, Write};

use liaise_keys::{Signature, SignatureDomain, SigningPublicKey, SigningSecretKey};

use crate::sealed::COMMITMENT_LEN;
use crate::sealed::error::OpenError;
use crate::sealed::header::ParsedHeader;
use crate::sealed::stream::CiphertextHash;

/// The signed message, built as the document streams by.
pub(crate) struct Transcript(Vec<u8>);

impl Transcript {
    /// Starts with the exact bytes of `prelude || header`.
    pub(crate) fn new(signed_prefix: &[u8]) -> Self {
        Self(signed_prefix.to_vec())
    }

    /// Adds one section, in order.
    pub(crate) fn push_section(
        &mut self,
        ciphertext_hash: &CiphertextHash,
        commitment: &[u8; COMMITMENT_LEN],
    ) {
        self.0.extend_from_slice(ciphertext_hash);
        self.0.extend_from_slice(commitment);
    }

    /// Signs the transcript as the sender.
    pub(crate) fn sign(&self, key: &SigningSecretKey) -> Signature {
        key.sign(SignatureDomain::Document, &self.0)
    }

    /// Verifies the sender's signature; coarse on failure.
    pub(crate) fn verify(
        &self,
        key: &SigningPublicKey,
        signature: &Signature,
    ) -> Result<(), OpenError> {
        key.verify(SignatureDomain::Document, &self.0, signature)
            .map_err(|_| OpenError::VerificationFailed)
    }
}

/// Writes the trailer: the commitments, then the signature.
pub(crate) fn write_trailer(
    out: &mut dyn Write,
    commitments: &[[u8; COMMITMENT_LEN]],
    signature: &Signature,
) -> std::io::Result<()> {
    for c in commitments {
        out.write_all(c)?;
    }
    out.write_all(&signature.0)
}

/// Reads the trailer, checks that nothing follows it, and verifies the signature over the
/// header and the sections' ciphertext hashes. Returns the signed commitments.
pub(crate) fn read_and_verify_trailer<R: Read>(
    input: &mut R,
    parsed: &ParsedHeader,
    ciphertext_hashes: &[CiphertextHash],
) -> Result<Vec<[u8; COMMITMENT_LEN]>, OpenError> {
    let mut commitments = Vec::with_capacity(ciphertext_hashes.len());
    let mut transcript = Transcript::new(&parsed.signed_prefix);
    for hash in ciphertext_hashes {
        let mut commitment = [0u8; COMMITMENT_LEN];
        input
            .read_exact(&mut commitment)
            .map_err(OpenError::from_read)?;
        transcript.push_section(hash, &commitment);
        commitments.push(commitment);
    }
    let mut signature = [0u8; 64];
    input
        .read_exact(&mut signature)
        .map_err(OpenError::from_read)?;
    let mut extra = [0u8; 1];
    loop {
        match input.read(&mut extra) {
            Ok(0) => break,
            Ok(_) => return Err(OpenError::TrailingData),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpenError::Read(e)),
        }
    }
    transcript.verify(&parsed.header.sender_key, &Signature(signature))?;
    Ok(commitments)
}
