//! OpenSSH SSHSIG signatures (`PROTOCOL.sshsig`), so that a section's origin can be checked
//! after opening with `ssh-keygen -Y verify` and no Liaise software.
//!
//! Each section plaintext carries the binary blob; [`armor`] turns it into the
//! `-----BEGIN SSH SIGNATURE-----` text that `ssh-keygen` reads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use liaise_keys::{AgencyId, Signature, SigningPublicKey, SigningSecretKey};
use sha2::{Digest, Sha256};

/// The SSHSIG namespace of Liaise document signatures.
pub const NAMESPACE: &str = "liaise-document";
/// The hash algorithm named in the signature (the content's SHA-256 is signed; SHA-256 rather
/// than OpenSSH's default SHA-512 because the content's SHA-256 is also what the section
/// commitment uses, so the content is hashed once).
pub const HASH_ALGORITHM: &str = "sha256";
/// Length of the binary SSHSIG blob for an Ed25519 key.
pub const SSHSIG_LEN: usize = 6
    + 4
    + (4 + PUBLIC_KEY_BLOB_LEN)
    + (4 + NAMESPACE.len())
    + 4
    + (4 + HASH_ALGORITHM.len())
    + (4 + SIGNATURE_BLOB_LEN);

const MAGIC: &[u8; 6] = b"SSHSIG";
const VERSION: u32 = 1;
const KEY_TYPE: &str = "ssh-ed25519";
const PUBLIC_KEY_BLOB_LEN: usize = 4 + KEY_TYPE.len() + 4 + 32;
const SIGNATURE_BLOB_LEN: usize = 4 + KEY_TYPE.len() + 4 + 64;
const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const ARMOR_END: &str = "-----END SSH SIGNATURE-----";
const ARMOR_LINE_LEN: usize = 70;

/// Signs a message whose SHA-256 is `content_sha256`; returns the binary SSHSIG blob.
pub fn sign(key: &SigningSecretKey, content_sha256: &[u8; 32]) -> Vec<u8> {
    let signature = key.sign_raw_for_foreign_format(&signed_data(content_sha256));
    let mut blob = blob_prefix(&key.public_key());
    put_string(&mut blob, &signature_blob(&signature));
    blob
}

/// Checks a binary SSHSIG blob: it must be exactly the blob `key` would make for a message
/// whose SHA-256 is `content_sha256`, with a valid signature.
pub fn verify(blob: &[u8], key: &SigningPublicKey, content_sha256: &[u8; 32]) -> bool {
    let prefix = blob_prefix(key);
    let Some(rest) = blob.strip_prefix(prefix.as_slice()) else {
        return false;
    };
    let mut sig_prefix = Vec::new();
    put_u32(&mut sig_prefix, SIGNATURE_BLOB_LEN);
    put_string(&mut sig_prefix, KEY_TYPE.as_bytes());
    put_u32(&mut sig_prefix, 64);
    let Some(raw) = rest.strip_prefix(sig_prefix.as_slice()) else {
        return false;
    };
    let Ok(raw) = <[u8; 64]>::try_from(raw) else {
        return false;
    };
    key.verify_raw_for_foreign_format(&signed_data(content_sha256), &Signature(raw))
        .is_ok()
}

/// The armored text form that `ssh-keygen -Y verify -s FILE` reads.
pub fn armor(blob: &[u8]) -> String {
    let b64 = STANDARD.encode(blob);
    let mut out = String::with_capacity(b64.len() + 80);
    out.push_str(ARMOR_BEGIN);
    out.push('\n');
    for line in b64.as_bytes().chunks(ARMOR_LINE_LEN) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out.push('\n');
    out
}

/// One line of an OpenSSH allowed-signers file for an agency's signing key, limited to the
/// Liaise namespace: `AGENCY namespaces="liaise-document" ssh-ed25519 BASE64`.
pub fn allowed_signers_line(agency: &AgencyId, key: &SigningPublicKey) -> String {
    format!(
        "{agency} namespaces=\"{NAMESPACE}\" {KEY_TYPE} {}",
        STANDARD.encode(public_key_blob(key))
    )
}

/// The key's fingerprint as OpenSSH shows it (`ssh-keygen -l`, and `ssh-keygen -Y verify`'s
/// "Good signature ... with ED25519 key SHA256:..."): SHA-256 of the OpenSSH public key
/// blob, unpadded base64. Liaise's own fingerprints hash a tagged form of the key instead, so
/// the two differ; this one is for checking a key against OpenSSH's output.
pub fn openssh_fingerprint(key: &SigningPublicKey) -> String {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(public_key_blob(key)))
    )
}

/// The bytes the Ed25519 key signs (`PROTOCOL.sshsig`, "Signed Data").
fn signed_data(content_sha256: &[u8; 32]) -> Vec<u8> {
    let mut data =
        Vec::with_capacity(6 + 4 + NAMESPACE.len() + 4 + 4 + HASH_ALGORITHM.len() + 4 + 64);
    data.extend_from_slice(MAGIC);
    put_string(&mut data, NAMESPACE.as_bytes());
    put_string(&mut data, b"");
    put_string(&mut data, HASH_ALGORITHM.as_bytes());
    put_string(&mut data, content_sha256);
    data
}

/// Everything in the blob before the signature.
fn blob_prefix(key: &SigningPublicKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(SSHSIG_LEN);
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&VERSION.to_be_bytes());
    put_string(&mut blob, &public_key_blob(key));
    put_string(&mut blob, NAMESPACE.as_bytes());
    put_string(&mut blob, b"");
    put_string(&mut blob, HASH_ALGORITHM.as_bytes());
    blob
}

fn public_key_blob(key: &SigningPublicKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(PUBLIC_KEY_BLOB_LEN);
    put_string(&mut blob, KEY_TYPE.as_bytes());
    put_string(&mut blob, &key.to_bytes());
    blob
}

fn signature_blob(signature: &Signature) -> Vec<u8> {
    let mut blob = Vec::with_capacity(SIGNATURE_BLOB_LEN);
    put_string(&mut blob, KEY_TYPE.as_bytes());
    put_string(&mut blob, &signature.0);
    blob
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn sign_and_verify() {
        let key = SigningSecretKey::from_bytes(&[4u8; 32]);
        let hash: [u8; 32] = Sha256::digest(b"report").into();
        let blob = sign(&key, &hash);
        assert_eq!(blob.len(), SSHSIG_LEN);
        assert_eq!(SSHSIG_LEN, 185);
        assert!(verify(&blob, &key.public_key(), &hash));
        let other: [u8; 32] = Sha256::digest(b"other").into();
        assert!(!verify(&blob, &key.public_key(), &other));
        let stranger = SigningSecretKey::from_bytes(&[5u8; 32]).public_key();
        assert!(!verify(&blob, &stranger, &hash));
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(!verify(&bad, &key.public_key(), &hash), "byte {i}");
        }
        assert!(!verify(&blob[..blob.len() - 1], &key.public_key(), &hash));
        let armored = armor(&blob);
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(armored.lines().all(|l| l.len() <= 70));
    }

    /// The real `ssh-keygen -Y verify` accepts our signatures (skipped if it is not installed).
    #[test]
    fn ssh_keygen_verifies() {
        let Ok(probe) = Command::new("ssh-keygen").arg("-?").output() else {
            eprintln!("ssh-keygen not installed; skipping");
            return;
        };
        drop(probe);
        let dir = std::env::temp_dir().join(format!("liaise-sshsig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = SigningSecretKey::from_bytes(&[8u8; 32]);
        let agency = AgencyId::new("nl.probation.utrecht").unwrap();
        let content = b"Pre-sentence report\n".repeat(1000);
        let hash: [u8; 32] = Sha256::digest(&content).into();
        std::fs::write(dir.join("report.txt"), &content).unwrap();
        std::fs::write(dir.join("report.txt.sig"), armor(&sign(&key, &hash))).unwrap();
        std::fs::write(
            dir.join("allowed_signers"),
            format!("{}\n", allowed_signers_line(&agency, &key.public_key())),
        )
        .unwrap();
        let run = |file: &str| {
            Command::new("ssh-keygen")
                .args(["-Y", "verify", "-f"])
                .arg(dir.join("allowed_signers"))
                .args(["-I", agency.as_str(), "-n", NAMESPACE, "-s"])
                .arg(dir.join("report.txt.sig"))
                .stdin(std::fs::File::open(dir.join(file)).unwrap())
                .output()
                .unwrap()
        };
        let good = run("report.txt");
        assert!(
            good.status.success(),
            "{}",
            String::from_utf8_lossy(&good.stderr)
        );
        // ssh-keygen names the key by the fingerprint openssh_fingerprint gives.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&good.stdout),
            String::from_utf8_lossy(&good.stderr)
        );
        let fingerprint = openssh_fingerprint(&key.public_key());
        assert!(said.contains(&fingerprint), "{said} / {fingerprint}");
        std::fs::write(dir.join("edited.txt"), b"something else").unwrap();
        assert!(!run("edited.txt").status.success());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
