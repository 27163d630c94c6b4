//! Agency identities, key material, key files at rest and the signed federation roster.
//!
//! This is the bottom layer of Liaise: small validated types that the `protocol` and `node`
//! crates build on. The roster is the only source of who is who in a federation.
#![forbid(unsafe_code)]

pub mod agency;
pub mod certificate;
pub mod codec;
pub mod encryption;
pub mod fingerprint;
pub mod identity;
pub mod keyfile;
pub mod random;
pub mod roster;
pub mod signing;
pub mod text;
pub mod time;
pub mod transport;

pub use agency::{AgencyError, AgencyId, AgencyKind, Country};
pub use certificate::{CertificateBody, CertifiedKey, KeyCertificate};
pub use encryption::{EncryptionPublicKey, EncryptionSecretKey, HpkeFailure, KemAlgorithm};
pub use fingerprint::Fingerprint;
pub use identity::AgencySecrets;
pub use signing::{BadSignature, Signature, SignatureDomain, SigningPublicKey, SigningSecretKey};
pub use time::Timestamp;
pub use transport::{TransportPublicKey, TransportSecretKey};
