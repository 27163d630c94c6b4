//! rustls configuration: TLS 1.3 only, X25519MLKEM768 only, raw public keys only, and a
//! verifier that accepts exactly the roster's current transport keys.

use std::sync::Arc;

use anyhow::{Context, Result};
use liaise_keys::{Timestamp, TransportPublicKey, TransportSecretKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key,
};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerIncompatible,
    SignatureScheme,
};

use super::SharedRoster;

/// The crypto provider, chosen explicitly so that feature unification can never make
/// rustls pick another at run time: aws-lc-rs with only the hybrid post-quantum key
/// exchange X25519MLKEM768 (ML-KEM-768, FIPS 203, with X25519), so no peer can negotiate
/// a classical-only exchange.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let base = rustls::crypto::aws_lc_rs::default_provider();
    Arc::new(CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
        ..base
    })
}

/// Our own key as rustls presents it: the SPKI as the "certificate" (RFC 7250).
pub(super) fn certified_key(
    provider: &CryptoProvider,
    secret: &TransportSecretKey,
) -> Result<Arc<CertifiedKey>> {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(secret.to_pkcs8_der().to_vec()));
    let signer = provider
        .key_provider
        .load_private_key(der)
        .context("cannot load the transport key into TLS")?;
    let spki = CertificateDer::from(secret.public_key().to_spki_der());
    Ok(Arc::new(CertifiedKey::new(vec![spki], signer)))
}

/// Accepts a peer only if its raw public key is a current, unrevoked member's certified
/// transport key; as a client, also only if that member is the agency we meant to reach
/// (the TLS server name is the agency id). The handshake signature is really verified.
#[derive(Debug)]
pub struct RosterVerifier {
    roster: SharedRoster,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RosterVerifier {
    /// A verifier reading the shared roster at every handshake.
    pub fn new(roster: SharedRoster, provider: &CryptoProvider) -> Self {
        Self {
            roster,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn check_key(
        &self,
        end_entity: &CertificateDer<'_>,
        expected: Option<&str>,
    ) -> Result<(), Error> {
        let key = TransportPublicKey::from_spki_der(end_entity.as_ref())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let roster = self.roster.current();
        if let Err(e) = super::roster_in_force(&roster, Timestamp::now()) {
            tracing::error!(peer_key = %key.fingerprint(), "refused peer: {e:#}");
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        let member = roster
            .member_by_transport_key(&key, Timestamp::now())
            .map_err(|e| {
                tracing::warn!(peer_key = %key.fingerprint(), "refused peer: {e}");
                Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
            })?;
        if let Some(name) = expected
            && member.id.as_str() != name
        {
            tracing::warn!(expected = name, found = %member.id, "peer is another agency");
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(())
    }

    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(cert.as_ref()),
            dss,
            &self.algorithms,
        )
    }
}

impl ServerCertVerifier for RosterVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if !intermediates.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        let name = match server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            _ => return Err(Error::InvalidCertificate(CertificateError::NotValidForName)),
        };
        self.check_key(end_entity, Some(&name))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(
            PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for RosterVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if !intermediates.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        self.check_key(end_entity, None)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(
            PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}
