//! Verifying a sealed document without a private key (spec: "Verifying").
//!
//! Anyone with the roster can check who sealed a document, when (as claimed), for whom, with
//! which policies, and that no byte was changed. The commitments and SSHSIGs inside the
//! encryption can only be checked by readers ([`crate::open`]).

use std::io::{BufRead, Read};

use crate::sealed::COMMITMENT_LEN;
use crate::sealed::error::OpenError;
use crate::sealed::header::{DocumentInfo, read_header};
use crate::sealed::signer::SignerCheck;
use crate::sealed::stream::{CiphertextHash, ciphertext_len, skip_section, skip_section_buffered};
use crate::sealed::transcript::read_and_verify_trailer;

/// Reads a whole sealed document from `input` in constant memory and checks its structure,
/// its signer (through `signer`, the caller's roster check) and its signature.
pub fn verify<R: Read>(input: R, signer: &dyn SignerCheck) -> Result<DocumentInfo, OpenError> {
    verify_with(input, signer, skip_section)
}

/// [`verify`] over an input that holds its bytes in buffers already (a document arriving in
/// chunks): each section's ciphertext is hashed where it lies, not copied into a buffer of
/// the verifier's own first. Stops reading right after the signature, as [`verify`] does.
pub fn verify_buffered<R: BufRead>(
    input: R,
    signer: &dyn SignerCheck,
) -> Result<DocumentInfo, OpenError> {
    verify_with(input, signer, skip_section_buffered)
}

/// The checks of [`verify`], with `skip` reading and hashing each section's ciphertext.
fn verify_with<R: Read>(
    mut input: R,
    signer: &dyn SignerCheck,
    skip: fn(&mut R, u64) -> Result<CiphertextHash, OpenError>,
) -> Result<DocumentInfo, OpenError> {
    let parsed = read_header(&mut input)?;
    let header = &parsed.header;
    signer
        .check(&header.sender, &header.sender_key, header.created)
        .map_err(|reason| OpenError::SignerRejected {
            agency: header.sender.clone(),
            reason,
        })?;
    let mut hashes = Vec::with_capacity(header.sections.len());
    for section in &header.sections {
        hashes.push(skip(&mut input, section.padded_len)?);
    }
    read_and_verify_trailer(&mut input, &parsed, &hashes)?;
    Ok(header.info())
}

/// Reads and checks only the prelude and header, **without verifying the signature or the
/// signer**: everything it returns is an unauthenticated claim. For tools that must show what
/// a file says before it can be verified (and for fuzzing the header parser); never act on it.
pub fn danger_read_unverified_header<R: Read>(mut input: R) -> Result<DocumentInfo, OpenError> {
    Ok(read_header(&mut input)?.header.info())
}

/// What the start of a sealed document claims, **unverified** (see
/// [`danger_read_unverified_prefix`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedPrefix {
    /// The header's claims.
    pub info: DocumentInfo,
    /// Length of the prelude and header.
    pub prefix_len: u64,
    /// The length the whole document must have if the header is true: prelude, header, each
    /// section's ciphertext, and the trailer.
    pub sealed_len: u64,
}

/// Reads and checks the prelude and header like [`danger_read_unverified_header`], and also
/// says how long the document must be. For a receiver that wants to refuse a transfer before
/// all of it arrived (wrong sender, not a recipient, wrong length); the document must still be
/// verified whole before anything is trusted.
pub fn danger_read_unverified_prefix<R: Read>(mut input: R) -> Result<UnverifiedPrefix, OpenError> {
    let parsed = read_header(&mut input)?;
    let prefix_len = parsed.signed_prefix.len() as u64;
    let sealed_len = parsed
        .header
        .sections
        .iter()
        .fold(prefix_len, |len, section| {
            len.saturating_add(ciphertext_len(section.padded_len))
                .saturating_add(COMMITMENT_LEN as u64)
        })
        .saturating_add(liaise_keys::signing::SIGNATURE_LEN as u64);
    Ok(UnverifiedPrefix {
        info: parsed.header.info(),
        prefix_len,
        sealed_len,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sealed::ErrorKind;
    use crate::sealed::tests::{city, court, policy, seal_contents};

    #[test]
    fn the_prefix_states_the_exact_sealed_length() {
        let big = vec![7u8; 200_000];
        let docs = [
            seal_contents(&[("main", b"")], &[(&court(), policy(&[0], None))]).unwrap(),
            seal_contents(
                &[("main", b"the report"), ("annex", &big)],
                &[
                    (&court(), policy(&[0, 1], None)),
                    (&city(), policy(&[0], None)),
                ],
            )
            .unwrap(),
        ];
        for doc in docs {
            let prefix = danger_read_unverified_prefix(doc.as_slice()).unwrap();
            assert_eq!(prefix.sealed_len, doc.len() as u64);
            assert_eq!(
                prefix.info,
                danger_read_unverified_header(doc.as_slice()).unwrap()
            );
            // The prefix alone is enough; one byte less is not.
            let len = usize::try_from(prefix.prefix_len).unwrap();
            assert_eq!(danger_read_unverified_prefix(&doc[..len]).unwrap(), prefix);
            let short = danger_read_unverified_prefix(&doc[..len - 1]).unwrap_err();
            assert_eq!(short.kind(), ErrorKind::Truncated);
        }
    }
}
