//! TLS that trusts one server certificate by its SHA-256, as Kopia's WebDAV
//! `trustedServerCertificateFingerprint` does for self-signed servers: the certificate's names
//! and issuer are not checked, its fingerprint must match, and the handshake signatures are
//! verified as usual. The same verifier with no fingerprint accepts any certificate
//! (`--disable-tls-verification`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::BlobError;

/// A rustls client config trusting exactly the server certificate whose DER has this SHA-256
/// (hex; `:` separators and upper case allowed).
pub fn pinned_config(sha256_hex: &str) -> Result<ClientConfig, BlobError> {
    let want = parse_fingerprint(sha256_hex)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BlobError::Other(format!("TLS setup failed: {e}")))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            want: Some(want),
            provider,
        }))
        .with_no_client_auth())
}

/// A verifier that accepts every server certificate (`--disable-tls-verification`); the
/// handshake signatures are still verified.
pub(crate) fn accept_any(provider: Arc<CryptoProvider>) -> Arc<dyn ServerCertVerifier> {
    Arc::new(Pinned {
        want: None,
        provider,
    })
}

/// The 32 bytes of a hex SHA-256 fingerprint.
pub fn parse_fingerprint(s: &str) -> Result<Vec<u8>, BlobError> {
    hex::decode(s.trim().replace(':', "").to_ascii_lowercase())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            BlobError::Other(format!(
                "invalid server certificate fingerprint {s:?}: expected the SHA-256 of the certificate in hex (64 digits)"
            ))
        })
}

/// Trusts the server certificate whose DER has the SHA-256 `want`, or any with `None`.
#[derive(Debug)]
struct Pinned {
    want: Option<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(want) = &self.want else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if got.as_ref() == want.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate (SHA-256 {}) is not the trusted one ({}): check --server-cert-fingerprint",
                hex::encode(got.as_ref()),
                hex::encode(want)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex64 = "AB".repeat(32);
        assert_eq!(parse_fingerprint(&hex64).unwrap(), vec![0xab; 32]);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), vec![0xab; 32]);
        let e = parse_fingerprint("abcd").unwrap_err().to_string();
        assert!(e.contains("64 digits"), "{e}");
    }
}
