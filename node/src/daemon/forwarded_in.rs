//! Forwarded documents arriving node to node (spec: `originator-control.md`, "Forwarding
//! with consent"): the bytes of a transfer are either a sealed document sealed by the peer,
//! or a forwarded document — the originator's signed consent in front of the unchanged
//! sealed document — delivered by the forwarder the consent names, to the new reader it names.
//!
//! [`entitlement`] reads which one a transfer is from its first bytes and checks the consent,
//! so the header checks and the full verification know whose signature to expect and why this
//! node may hold the document.

use std::io::Read;

use liaise_keys::AgencyId;
use liaise_keys::roster::Roster;
use liaise_protocol::wire::{ForwardConsentBody, MAX_SIGNED_LEN, Signed};
use liaise_protocol::{DocumentInfo, ErrorKind, is_forwarded, read_forward_prefix};

/// The longest prefix a forwarded document has before its sealed document: magic, version,
/// length and a consent of at most `MAX_SIGNED_LEN` bytes.
pub const MAX_FORWARD_PREFIX_LEN: usize = 8 + 2 + 4 + MAX_SIGNED_LEN;

/// Why this node may hold an incoming document, and who must have sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// The agency whose signature the sealed document must carry.
    pub sealer: AgencyId,
    /// The originator's consent, verified, when the document was forwarded to this node.
    pub consent: Option<ForwardConsentBody>,
    /// Bytes before the sealed document (0 unless forwarded).
    pub prefix_len: u64,
}

impl Entitlement {
    /// Checks the claims of the (fully or header-) verified sealed document against this
    /// entitlement: the sealer, the document id, and that `me` is a recipient unless the
    /// document was forwarded to it. The message is for the sender's `Reject`.
    pub fn check(&self, info: &DocumentInfo, document_id: &[u8; 16], me: &AgencyId) -> Check {
        if info.document_id.0 != *document_id {
            return Check::BadDocument("document id differs from the offer".into());
        }
        if info.sender != self.sealer {
            return Check::WrongSender(format!("sealed by {}", info.sender));
        }
        if self.consent.is_none() && info.recipient(me).is_none() {
            return Check::NotRecipient(format!("{me} is not a recipient"));
        }
        Check::Ok
    }
}

/// The outcome of [`Entitlement::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Everything holds.
    Ok,
    /// Another document than offered, or a consent that does not fit.
    BadDocument(String),
    /// Sealed by someone else than expected.
    WrongSender(String),
    /// Not addressed to this node.
    NotRecipient(String),
}

/// Reads the start of an incoming transfer from `peer`. `Ok(None)`: more bytes are needed.
/// A forwarded document's consent must be signed by the originator it names (a current roster
/// member), name `peer` as forwarder, `me` as new reader and the offered document.
pub fn entitlement(
    start: &[u8],
    document_id: &[u8; 16],
    peer: &AgencyId,
    me: &AgencyId,
    roster: &Roster,
) -> Result<Option<Entitlement>, String> {
    if start.len() < 8 {
        return Ok(None);
    }
    if !is_forwarded(start) {
        return Ok(Some(Entitlement {
            sealer: peer.clone(),
            consent: None,
            prefix_len: 0,
        }));
    }
    let mut rest = start;
    let bytes = match read_forward_prefix(&mut rest) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::Truncated => return Ok(None),
        Err(e) => return Err(format!("bad forwarded document: {e}")),
    };
    let prefix_len = (start.len() - rest.len()) as u64;
    let consent = verify_consent(&bytes, roster)?;
    if consent.forwarder != *peer {
        return Err(format!(
            "the consent lets {} forward it, not {peer}",
            consent.forwarder
        ));
    }
    if consent.new_reader != *me {
        return Err(format!(
            "the consent is for {}, not {me}",
            consent.new_reader
        ));
    }
    if consent.document_id != *document_id {
        return Err("the consent is about another document".into());
    }
    Ok(Some(Entitlement {
        sealer: consent.originator.clone(),
        consent: Some(consent),
        prefix_len,
    }))
}

/// Verifies a consent's signature with the key of the originator it names.
pub fn verify_consent(bytes: &[u8], roster: &Roster) -> Result<ForwardConsentBody, String> {
    let signed =
        Signed::from_bytes(bytes, "forward consent").map_err(|e| format!("bad consent: {e}"))?;
    let claimed: ForwardConsentBody = signed
        .body_unverified()
        .map_err(|e| format!("bad consent: {e}"))?;
    let member = roster.member(&claimed.originator).ok_or_else(|| {
        format!(
            "the consent names {}, which is not in the roster",
            claimed.originator
        )
    })?;
    signed
        .verify(&member.signing_key)
        .map_err(|_| "the forwarding consent does not verify".to_owned())
}

/// Skips a forwarded document's prefix in `input` if there is one, and returns a reader
/// positioned at the sealed document (the consent is checked by [`entitlement`]).
pub fn skip_prefix<R: Read>(input: R) -> std::io::Result<Prefixed<R>> {
    split_prefix(input).map(|(_, sealed)| sealed)
}

/// The sealed document after a forward prefix: the bytes already looked at, then the rest of
/// the input (buffered where the input is).
pub type Prefixed<R> = std::io::Chain<std::io::Cursor<Vec<u8>>, R>;

/// [`skip_prefix`], also returning the consent's bytes (not verified) if there is one.
pub fn split_prefix<R: Read>(mut input: R) -> std::io::Result<(Option<Vec<u8>>, Prefixed<R>)> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        let n = input.read(head.get_mut(got..).unwrap_or_default())?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = head.get(..got).unwrap_or_default().to_vec();
    let mut chained = std::io::Cursor::new(head).chain(input);
    let mut consent = None;
    if got == 8 && is_forwarded(chained.get_ref().0.get_ref()) {
        consent = Some(read_forward_prefix(&mut chained).map_err(std::io::Error::other)?);
    }
    Ok((consent, chained))
}

/// The consent of a stored forwarded document, read without checking its signature again
/// (it was checked when the document arrived).
pub fn stored_consent(bytes: &[u8]) -> Option<ForwardConsentBody> {
    Signed::from_bytes(bytes, "forward consent")
        .ok()?
        .body_unverified()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use liaise_protocol::forward_prefix;

    #[test]
    fn skipping_a_prefix_leaves_the_sealed_document() {
        let mut forwarded = forward_prefix(b"consent bytes");
        forwarded.extend_from_slice(b"sealed document");
        let mut out = Vec::new();
        skip_prefix(&forwarded[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"sealed document");
    }

    #[test]
    fn a_plain_document_is_read_unchanged_even_when_short() {
        for plain in [&b"LIAISE\x00\x01rest of it"[..], b"LIA", b""] {
            let mut out = Vec::new();
            skip_prefix(plain).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn a_truncated_prefix_asks_for_more_bytes() {
        let forwarded = forward_prefix(&[7u8; 100]);
        let roster_less = |start: &[u8]| {
            let mut rest = start;
            read_forward_prefix(&mut rest).map(|_| ())
        };
        for cut in [8, 13, 14, 50, 113] {
            let err = roster_less(&forwarded[..cut]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Truncated, "cut at {cut}");
        }
        assert!(roster_less(&forwarded).is_ok());
    }
}
