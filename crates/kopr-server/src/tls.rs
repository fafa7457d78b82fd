//! The server's TLS: a self-signed certificate made at start (`--tls-generate-cert`, with
//! `rcgen`) or a PEM certificate and key read from files, served with rustls (ring).

use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use sha2::Digest;

use crate::{ServerError, Tls};

/// The rustls configuration for `tls` and the SHA-256 fingerprint of its certificate (hex),
/// or `None` for plain HTTP.
pub fn config(tls: &Tls) -> Result<Option<(RustlsConfig, String)>, ServerError> {
    let (cert_pem, key_pem) = match tls {
        Tls::None => return Ok(None),
        Tls::Generate => {
            let ck = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .map_err(|e| ServerError::Io(format!("cannot generate a TLS certificate: {e}")))?;
            (
                ck.cert.pem().into_bytes(),
                ck.key_pair.serialize_pem().into_bytes(),
            )
        }
        Tls::Files { cert, key } => {
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", p.display())))
            };
            (read(cert)?, read(key)?)
        }
    };
    let certs: Vec<_> = rustls_pemfile_certs(&cert_pem)?;
    let fingerprint = certs
        .first()
        .map(|c| hex::encode(sha2::Sha256::digest(c.as_ref())))
        .ok_or_else(|| ServerError::Config("no certificate in the TLS certificate file".into()))?;
    let key = rustls_pemfile_key(&key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| ServerError::Config(format!("invalid TLS certificate or key: {e}")))?;
    Ok(Some((
        RustlsConfig::from_config(Arc::new(cfg)),
        fingerprint,
    )))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Config(format!("invalid TLS certificate file: {e}")))
}

fn rustls_pemfile_key(
    pem: &[u8],
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| ServerError::Config(format!("invalid TLS key file: {e}")))
}
