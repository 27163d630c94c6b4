//! Verifying a sealed document without a private key (spec: "Verifying").
//!
//! Anyone with the roster can check who sealed a document, when (as claimed), for whom, with
//! which policies, and that no byte was changed. The commitments and SSHSIGs inside the
//! encryption can only be checked by readers ([`crate::open`]).

use std::io::Read;

use crate::sealed::error::OpenError;
use crate::sealed::header::{DocumentInfo, read_header};
use crate::sealed::signer::SignerCheck;
use crate::sealed::stream::skip_section;
use crate::sealed::transcript::read_and_verify_trailer;

/// Reads a whole sealed document from `input` in constant memory and checks its structure,
/// its signer (through `signer`, the caller's roster check) and its signature.
pub fn verify<R: Read>(mut input: R, signer: &dyn SignerCheck) -> Result<DocumentInfo, OpenError> {
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
        hashes.push(skip_section(&mut input, section.padded_len)?);
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
