//! Writes the test vectors in `protocol/tests/vectors/` (spec: "Test vectors").
//!
//! Run with `cargo test -p liaise-protocol --lib -- --ignored generate_test_vectors`. Good
//! vectors come from [`crate::seal`]; the malicious ones are built here by hand from the
//! internals, some of them validly signed by the (test) sender, so that the reader's checks
//! beyond the signature are exercised too. `tests/vectors.rs` reads them all back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::path::PathBuf;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use liaise_keys::{KemAlgorithm, SigningSecretKey, Timestamp, codec};
use sha2::{Digest, Sha256};

use super::tests::{
    CREATED, TestAgency, agency, city, court, policy, seal_contents, seal_contents_with, sender,
    trust,
};
use super::*;
use crate::sealed::derive::{ContentKey, commitment, payload_key, random_content_key};
use crate::sealed::header::{Header, RecipientEntry, read_header};
use crate::sealed::plaintext::{committed, padded_len, unpadded_len};
use crate::sealed::stanza::seal_stanza;
use crate::sealed::stream::{ciphertext_hash, nonce};
use crate::sealed::transcript::Transcript;

/// A document built by hand: header, keys and padded plaintexts, not yet encrypted.
struct Crafted {
    header: Header,
    keys: Vec<ContentKey>,
    plaintexts: Vec<Vec<u8>>,
    committed: Vec<Vec<u8>>,
}

/// A section's padded plaintext and what its commitment covers.
fn section_plaintext(name: &str, content: &[u8], signer: &SigningSecretKey) -> (Vec<u8>, Vec<u8>) {
    let meta = SectionMetadata {
        file_name: format!("{name}.txt"),
        media_type: "text/plain".into(),
        title: format!("The {name}"),
    }
    .encode();
    let hash: [u8; 32] = Sha256::digest(content).into();
    let sig = sshsig::sign(signer, &hash);
    let mut p = (meta.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(&meta);
    p.extend_from_slice(&(content.len() as u64).to_be_bytes());
    p.extend_from_slice(content);
    p.extend_from_slice(&(sig.len() as u16).to_be_bytes());
    p.extend_from_slice(&sig);
    let padded = padded_len(meta.len(), content.len() as u64);
    p.resize(padded as usize, 0);
    let padding = padded - unpadded_len(meta.len(), content.len() as u64);
    let c = committed(&meta, content.len() as u64, &hash, &sig, padding);
    (p, c)
}

fn craft(contents: &[(&str, &[u8])], recipients: &[(&TestAgency, RecipientPolicy)]) -> Crafted {
    let from = sender();
    let document_id = DocumentId::random();
    let keys: Vec<ContentKey> = contents.iter().map(|_| random_content_key()).collect();
    let (plaintexts, committed): (Vec<Vec<u8>>, Vec<Vec<u8>>) = contents
        .iter()
        .map(|(n, c)| section_plaintext(n, c, &from.signing))
        .unzip();
    let recipients = recipients
        .iter()
        .map(|(a, p)| {
            let ks: Vec<(u8, &ContentKey)> =
                p.sections.iter().map(|&i| (i, &keys[i as usize])).collect();
            RecipientEntry {
                agency: a.id.clone(),
                key_fingerprint: a.encryption.public_key().fingerprint(),
                kem: a.encryption.algorithm(),
                policy: p.clone(),
                stanza: seal_stanza(a.encryption.public_key(), &document_id, &a.id, &ks).unwrap(),
            }
        })
        .collect();
    let header = Header {
        document_id,
        sender: from.id.clone(),
        sender_key: from.signing.public_key(),
        created: CREATED,
        label: "restricted".into(),
        purpose: "pre-sentence advice".into(),
        custody: KeyCustody::Offline,
        sections: contents
            .iter()
            .zip(&plaintexts)
            .map(|((n, _), p)| SectionInfo {
                name: (*n).into(),
                padded_len: p.len() as u64,
            })
            .collect(),
        recipients,
    };
    Crafted {
        header,
        keys,
        plaintexts,
        committed,
    }
}

impl Crafted {
    /// Section `i`'s chunks, each sealed with the given (counter, last) nonce.
    fn chunks_with(&self, i: usize, nonces: &[(u64, bool)]) -> Vec<Vec<u8>> {
        let key = payload_key(&self.keys[i], &self.header.document_id.0, i as u8);
        let cipher = ChaCha20Poly1305::new(&(*key).into());
        self.plaintexts[i]
            .chunks(CHUNK_LEN)
            .zip(nonces)
            .map(|(chunk, &(counter, last))| {
                let mut buf = chunk.to_vec();
                let tag = cipher
                    .encrypt_inout_detached(&nonce(counter, last), &[], buf.as_mut_slice().into())
                    .unwrap();
                buf.extend_from_slice(&tag);
                buf
            })
            .collect()
    }

    fn chunks(&self, i: usize) -> Vec<Vec<u8>> {
        let n = self.plaintexts[i].len().div_ceil(CHUNK_LEN) as u64;
        let nonces: Vec<(u64, bool)> = (0..n).map(|k| (k, k + 1 == n)).collect();
        self.chunks_with(i, &nonces)
    }

    fn commitments(&self) -> Vec<[u8; 32]> {
        (0..self.keys.len())
            .map(|i| {
                commitment(
                    &self.keys[i],
                    &self.header.document_id.0,
                    i as u8,
                    &self.committed[i],
                )
            })
            .collect()
    }

    fn prefix(&self) -> Vec<u8> {
        self.header.encode_with_prelude().unwrap()
    }

    /// The whole document, signed by the sender over exactly these parts.
    fn assemble(&self, prefix: &[u8], ciphertexts: &[Vec<u8>]) -> Vec<u8> {
        assemble(prefix, ciphertexts, &self.commitments(), &sender().signing)
    }

    fn good(&self) -> Vec<u8> {
        let cts: Vec<Vec<u8>> = (0..self.keys.len())
            .map(|i| self.chunks(i).concat())
            .collect();
        self.assemble(&self.prefix(), &cts)
    }
}

fn assemble(
    prefix: &[u8],
    ciphertexts: &[Vec<u8>],
    commitments: &[[u8; 32]],
    signer: &SigningSecretKey,
) -> Vec<u8> {
    let mut transcript = Transcript::new(prefix);
    for (ct, c) in ciphertexts.iter().zip(commitments) {
        transcript.push_section(&ciphertext_hash(ct), c);
    }
    let signature = transcript.sign(signer);
    let mut out = prefix.to_vec();
    for ct in ciphertexts {
        out.extend_from_slice(ct);
    }
    for c in commitments {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&signature.0);
    out
}

/// Replaces the header of `sealed` (prelude included) by `header`, keeping everything else.
fn with_header(sealed: &[u8], header: &Header) -> Vec<u8> {
    let old_len = read_header(&mut &sealed[..]).unwrap().signed_prefix.len();
    let mut out = header.encode_with_prelude().unwrap_or_else(|_| {
        let body = codec::encode(header);
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&VERSION.to_be_bytes());
        p.extend_from_slice(&(body.len() as u32).to_be_bytes());
        p.extend_from_slice(&body);
        p
    });
    out.extend_from_slice(&sealed[old_len..]);
    out
}

struct Vector<'a> {
    name: &'a str,
    expect: &'a str,
    verify: &'a str,
    open_as: &'a TestAgency,
    now: u64,
    share: Option<[u8; 32]>,
    sections: Vec<(u8, &'a [u8])>,
    comment: &'a str,
}

fn write(v: Vector<'_>, bytes: &[u8]) {
    let kem = match v.open_as.encryption.algorithm() {
        KemAlgorithm::XWing => "xwing",
        KemAlgorithm::X25519 => "x25519",
    };
    let mut text = format!(
        "expect: {}\nverify: {}\nopen-as: {}\nkey: {kem}\nnow: {}\n",
        v.expect, v.verify, v.open_as.id, v.now
    );
    if let Some(share) = v.share {
        let hex: String = share.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(text, "share: {hex}").unwrap();
    }
    for (i, content) in &v.sections {
        let hex: String = Sha256::digest(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(text, "section: {i} {hex}").unwrap();
    }
    writeln!(text, "comment: {}\n", v.comment).unwrap();
    let mut file = text.into_bytes();
    file.extend_from_slice(bytes);
    std::fs::write(dir().join(v.name), file).unwrap();
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

/// Not a vector, as it takes a whole 64 KiB chunk: a section whose framing claims one byte
/// more content than `MAX_SECTION_LEN`, under a padded length that matches it, is refused as
/// soon as that length is decrypted (it would otherwise be read on to the end of the file).
#[test]
fn content_over_the_section_limit_fails_verification() {
    let city = city();
    let mut crafted = craft(&[("main", b"x")], &[(&city, policy(&[0], None))]);
    let plaintext = &mut crafted.plaintexts[0];
    let meta_len = usize::from(u16::from_be_bytes([plaintext[0], plaintext[1]]));
    let content_len = limits::MAX_SECTION_LEN + 1;
    plaintext[2 + meta_len..2 + meta_len + 8].copy_from_slice(&content_len.to_be_bytes());
    plaintext.resize(CHUNK_LEN, 0);
    crafted.header.sections[0].padded_len = padded_len(meta_len, content_len);
    let mut sealed = crafted.prefix();
    sealed.extend_from_slice(&crafted.chunks_with(0, &[(0, false)]).concat());
    let err = open_in_memory(
        &sealed,
        &city.id,
        std::slice::from_ref(&city.encryption),
        &trust(&sender()),
        Timestamp(CREATED.0 + 60),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VerificationFailed, "{err}");
}

#[test]
#[ignore = "writes protocol/tests/vectors; run by hand when the format changes"]
fn generate_test_vectors() {
    let _ = std::fs::remove_dir_all(dir());
    std::fs::create_dir_all(dir()).unwrap();
    let (court, city, gent) = (
        court(),
        city(),
        agency("be.city.gent", KemAlgorithm::X25519),
    );
    let now = CREATED.0 + 60;
    let report: &[u8] = b"Pre-sentence report: the person is doing well.\n";
    let annex: &[u8] = b"Annex: attendance list.\n";
    let v = |name, expect, verify, open_as, sections, comment| Vector {
        name,
        expect,
        verify,
        open_as,
        now,
        share: None,
        sections,
        comment,
    };

    // Originator custody: the stanza keys are masked; the share opens them.
    let (controlled, secrets) = seal_contents_with(
        &[("main", report), ("annex", annex)],
        &[(&court, policy(&[0, 1], None)), (&city, policy(&[0], None))],
        KeyCustody::Originator,
    )
    .unwrap();
    let share = *secrets.unwrap().share.expose_bytes();
    write(
        Vector {
            share: Some(share),
            ..v(
                "good-originator-custody",
                "success",
                "success",
                &court,
                vec![(0, report), (1, annex)],
                "originator custody, opened with the originator share",
            )
        },
        &controlled,
    );
    write(
        v(
            "originator-custody-without-share",
            "share required",
            "success",
            &city,
            vec![],
            "originator custody, opened without the share",
        ),
        &controlled,
    );
    let mut wrong = share;
    wrong[0] ^= 1;
    write(
        Vector {
            share: Some(wrong),
            ..v(
                "originator-custody-wrong-share",
                "verification failed",
                "success",
                &city,
                vec![],
                "originator custody, opened with a share one bit off",
            )
        },
        &controlled,
    );

    // Good documents, sealed by the real `seal`.
    let two = seal_contents(
        &[("main", report), ("annex", annex)],
        &[
            (&court, policy(&[0, 1], Some(CREATED.0 + 86_400))),
            (&city, policy(&[0], None)),
        ],
    )
    .unwrap();
    write(
        v(
            "good-court-reads-both",
            "success",
            "success",
            &court,
            vec![(0, report), (1, annex)],
            "X-Wing recipient with two sections",
        ),
        &two,
    );
    write(
        v(
            "good-city-reads-main",
            "success",
            "success",
            &city,
            vec![(0, report)],
            "X25519 recipient that may read only section 0",
        ),
        &two,
    );
    write(
        v(
            "wrong-recipient",
            "not addressed to you",
            "success",
            &gent,
            vec![],
            "an agency that is not a recipient",
        ),
        &two,
    );
    let mut expired = v(
        "expired",
        "expired",
        "success",
        &court,
        vec![],
        "now is one second past the court's not_after",
    );
    expired.now = CREATED.0 + 86_401;
    write(expired, &two);
    let wrong_key = agency("nl.court.utrecht", KemAlgorithm::X25519);
    write(
        v(
            "no-matching-key",
            "no matching key",
            "success",
            &wrong_key,
            vec![],
            "the court's X25519 test key; the stanza is sealed to its X-Wing key",
        ),
        &two,
    );

    // Flipped bytes in each region.
    let parsed = read_header(&mut two.as_slice()).unwrap();
    let header_end = parsed.signed_prefix.len();
    let ct0_len = stream::ciphertext_len(parsed.header.sections[0].padded_len) as usize;
    let ct1_len = stream::ciphertext_len(parsed.header.sections[1].padded_len) as usize;
    let trailer = header_end + ct0_len + ct1_len;
    let label_at = two.windows(10).position(|w| w == b"restricted").unwrap();
    let flip = |at: usize| {
        let mut b = two.clone();
        b[at] ^= 0x01;
        b
    };
    write(
        v(
            "flip-magic",
            "not a sealed document",
            "not a sealed document",
            &court,
            vec![],
            "first byte of the magic flipped",
        ),
        &flip(0),
    );
    write(
        v(
            "flip-version",
            "unsupported version",
            "unsupported version",
            &court,
            vec![],
            "version 1 changed to 0",
        ),
        &flip(9),
    );
    write(
        v(
            "flip-header-label",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "a byte of the label changed",
        ),
        &flip(label_at),
    );
    write(
        v(
            "flip-stanza",
            "verification failed",
            "verification failed",
            &city,
            vec![],
            "last byte of the city's stanza ciphertext flipped, opened by the city",
        ),
        &flip(header_end - 1),
    );
    write(
        v(
            "flip-ciphertext-main",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "a byte of section 0's ciphertext flipped",
        ),
        &flip(header_end + 10),
    );
    write(
        v(
            "flip-ciphertext-annex-unreadable",
            "verification failed",
            "verification failed",
            &city,
            vec![],
            "a byte of section 1 flipped; the city cannot read it but the signature covers it",
        ),
        &flip(header_end + ct0_len + 3),
    );
    write(
        v(
            "flip-commitment",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "a byte of section 1's commitment flipped",
        ),
        &flip(trailer + 33),
    );
    write(
        v(
            "flip-signature",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "a byte of the signature flipped",
        ),
        &flip(two.len() - 5),
    );

    let mut trailing = two.clone();
    trailing.push(0);
    write(
        v(
            "trailing-data",
            "trailing data",
            "trailing data",
            &court,
            vec![],
            "one zero byte after the signature",
        ),
        &trailing,
    );
    write(
        v(
            "stripped-signature",
            "truncated",
            "truncated",
            &court,
            vec![],
            "the 64-byte signature removed",
        ),
        &two[..two.len() - 64],
    );
    let mut zeroed = two.clone();
    let n = zeroed.len();
    zeroed[n - 64..].fill(0);
    write(
        v(
            "zeroed-signature",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "the signature replaced by zeros",
        ),
        &zeroed,
    );

    // Two-chunk documents: truncation at and around chunk boundaries.
    let big: Vec<u8> = (0..CHUNK_LEN + 100).map(|i| (i * 7 % 256) as u8).collect();
    let two_chunks = seal_contents(&[("main", &big)], &[(&city, policy(&[0], None))]).unwrap();
    write(
        v(
            "good-two-chunks",
            "success",
            "success",
            &city,
            vec![(0, &big)],
            "one section of two STREAM chunks",
        ),
        &two_chunks,
    );
    let start = read_header(&mut two_chunks.as_slice())
        .unwrap()
        .signed_prefix
        .len();
    let boundary = start + CHUNK_LEN + TAG_LEN;
    for (name, cut) in [
        ("truncated-in-header", start - 1),
        ("truncated-at-payload-start", start),
        ("truncated-before-chunk-boundary", boundary - 1),
        ("truncated-at-chunk-boundary", boundary),
        ("truncated-after-chunk-boundary", boundary + 1),
        ("truncated-before-trailer", two_chunks.len() - 96),
        ("truncated-last-byte", two_chunks.len() - 1),
    ] {
        write(
            v(name, "truncated", "truncated", &city, vec![], name),
            &two_chunks[..cut],
        );
    }
    let mut extended = two_chunks.clone();
    extended.splice(
        boundary..boundary,
        two_chunks[start..boundary].iter().copied(),
    );
    write(
        v(
            "duplicated-chunk",
            "verification failed",
            "trailing data",
            &city,
            vec![],
            "chunk 0 inserted again after itself: the final chunk's place holds a copy of chunk 0, and the file is one chunk too long",
        ),
        &extended,
    );

    // Crafted by hand and validly signed: only the STREAM rules catch these.
    let crafted = craft(&[("main", &big)], &[(&city, policy(&[0], None))]);
    write(
        v(
            "good-crafted",
            "success",
            "success",
            &city,
            vec![(0, &big)],
            "built by the vector generator, to show its crafting is sound",
        ),
        &crafted.good(),
    );
    let two_final = crafted.chunks_with(0, &[(0, true), (1, true)]).concat();
    write(
        v(
            "two-final-chunks",
            "verification failed",
            "success",
            &city,
            vec![],
            "chunk 0 sealed with the last flag too; signed by the sender",
        ),
        &crafted.assemble(&crafted.prefix(), &[two_final]),
    );
    let swapped_nonces = crafted.chunks_with(0, &[(1, false), (0, true)]);
    write(
        v(
            "reordered-chunks",
            "verification failed",
            "success",
            &city,
            vec![],
            "chunk counters 1 then 0; signed by the sender",
        ),
        &crafted.assemble(&crafted.prefix(), &[swapped_nonces.concat()]),
    );

    // Stanza of the wrong length, low-order X25519 share: signed by the sender.
    let small = craft(&[("main", report)], &[(&city, policy(&[0], None))]);
    let mut short = small.header.clone();
    short.recipients[0].stanza.ciphertext.pop();
    let cts = vec![small.chunks(0).concat()];
    write(
        v(
            "stanza-wrong-length",
            "malformed",
            "malformed",
            &city,
            vec![],
            "the stanza ciphertext is one byte short; signed by the sender",
        ),
        &small.assemble(&short.encode_with_prelude().unwrap(), &cts),
    );
    let mut low = small.header.clone();
    let mut point = [0u8; 32];
    point[0] = 1;
    low.recipients[0].stanza.enc = point.to_vec();
    write(
        v(
            "low-order-x25519-share",
            "verification failed",
            "success",
            &city,
            vec![],
            "the city's encapsulated key is the low-order point 1; signed by the sender",
        ),
        &small.assemble(&low.encode_with_prelude().unwrap(), &cts),
    );

    // Bad plaintext inside a valid encryption and signature.
    let mut bad_pad = craft(&[("main", report)], &[(&city, policy(&[0], None))]);
    if let Some(last) = bad_pad.plaintexts[0].last_mut() {
        *last = 1;
    }
    write(
        v(
            "nonzero-padding",
            "verification failed",
            "success",
            &city,
            vec![],
            "the last padding byte is 1; signed by the sender",
        ),
        &bad_pad.good(),
    );
    let mut bad_sshsig = craft(&[("main", report)], &[(&city, policy(&[0], None))]);
    let other = agency("be.city.gent", KemAlgorithm::X25519);
    (bad_sshsig.plaintexts[0], bad_sshsig.committed[0]) =
        section_plaintext("main", report, &other.signing);
    write(
        v(
            "sshsig-wrong-key",
            "verification failed",
            "success",
            &city,
            vec![],
            "the SSHSIG inside is by another key; the document signature is valid",
        ),
        &bad_sshsig.good(),
    );

    // Signer and recipient-list edits.
    let mut swapped = parsed.header.clone();
    swapped.sender = gent.id.clone();
    swapped.sender_key = gent.signing.public_key();
    write(
        v(
            "swapped-signer",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "sender and key replaced by another member's; the signature is the original sender's",
        ),
        &with_header(&two, &swapped),
    );
    let mut claimed = parsed.header.clone();
    claimed.sender_key = gent.signing.public_key();
    write(
        v(
            "signer-key-not-in-roster",
            "signer rejected",
            "signer rejected",
            &court,
            vec![],
            "the sender's key replaced by a key that is not its roster key",
        ),
        &with_header(&two, &claimed),
    );
    let mut edited = parsed.header.clone();
    edited.recipients[1].policy.not_after = Some(Timestamp(CREATED.0 + 1));
    write(
        v(
            "edited-recipient-policy",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "the city's not_after changed",
        ),
        &with_header(&two, &edited),
    );
    let mut removed = parsed.header.clone();
    removed.recipients.truncate(1);
    write(
        v(
            "edited-recipient-list",
            "verification failed",
            "verification failed",
            &court,
            vec![],
            "the city removed from the recipient list",
        ),
        &with_header(&two, &removed),
    );

    // Versions and limits.
    let mut v2 = two.clone();
    v2[9] = 2;
    write(
        v(
            "unknown-version",
            "unsupported version",
            "unsupported version",
            &court,
            vec![],
            "version 2",
        ),
        &v2,
    );
    let mut huge = two[..14].to_vec();
    huge[10..14].copy_from_slice(&((limits::MAX_HEADER_LEN as u32) + 1).to_be_bytes());
    write(
        v(
            "limit-header-length",
            "limit exceeded",
            "limit exceeded",
            &court,
            vec![],
            "header length one past MAX_HEADER_LEN",
        ),
        &huge,
    );
    let mut long_label = parsed.header.clone();
    long_label.label = "x".repeat(limits::MAX_LABEL_LEN + 1);
    write(
        v(
            "limit-label",
            "limit exceeded",
            "limit exceeded",
            &court,
            vec![],
            "label one byte past MAX_LABEL_LEN",
        ),
        &with_header(&two, &long_label),
    );
    let mut many = parsed.header.clone();
    let extra = many.recipients[1].clone();
    for i in 0..=limits::MAX_RECIPIENTS - many.recipients.len() {
        let mut r = extra.clone();
        r.agency = liaise_keys::AgencyId::new(&format!("nl.city.x{i}")).unwrap();
        many.recipients.push(r);
    }
    write(
        v(
            "limit-recipients",
            "limit exceeded",
            "limit exceeded",
            &court,
            vec![],
            "MAX_RECIPIENTS + 1 recipients",
        ),
        &with_header(&two, &many),
    );
}
