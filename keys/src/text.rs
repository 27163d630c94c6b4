//! Text forms of keys and signatures for TOML files and the command line:
//! `PREFIX:` followed by unpadded standard base64, e.g. `ed25519:Vg1...`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

/// The kinds of binary values that have a text form, each with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyText {
    /// An Ed25519 signing (identity) key.
    Signing,
    /// An Ed25519 transport (TLS) key.
    Transport,
    /// An X-Wing (ML-KEM-768 + X25519) HPKE encryption key.
    XWing,
    /// An X25519 HPKE encryption key.
    X25519,
    /// An Ed25519 signature.
    Signature,
    /// A signed, encoded structure (a key certificate).
    Certificate,
}

impl KeyText {
    /// The prefix before the colon.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Signing => "ed25519",
            Self::Transport => "tls-ed25519",
            Self::XWing => "xwing",
            Self::X25519 => "x25519",
            Self::Signature => "sig",
            Self::Certificate => "cert",
        }
    }
}

/// `prefix:base64`.
pub fn encode(kind: KeyText, bytes: &[u8]) -> String {
    format!("{}:{}", kind.prefix(), STANDARD_NO_PAD.encode(bytes))
}

/// The bytes of `prefix:base64`, or `None` if the prefix or the base64 is wrong.
pub fn decode(kind: KeyText, text: &str) -> Option<Vec<u8>> {
    let (prefix, body) = text.trim().split_once(':')?;
    if prefix != kind.prefix() {
        return None;
    }
    STANDARD_NO_PAD.decode(body.trim_end_matches('=')).ok()
}
