//! TLS settings of the S3 client: public roots (webpki-roots), a private CA from PEM, or no
//! verification at all (`--disable-tls-verification`).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use crate::BlobError;

/// A rustls client config: roots from `root_ca_pem` when given (only those, as Kopia does),
/// else the public web roots; `verify == false` accepts any certificate.
pub fn client_config(root_ca_pem: Option<&[u8]>, verify: bool) -> Result<ClientConfig, BlobError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BlobError::Other(format!("TLS setup failed: {e}")))?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(crate::tls_pin::accept_any(provider))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    match root_ca_pem {
        Some(pem) => {
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert = cert.map_err(|e| {
                    BlobError::Other(format!("invalid root CA PEM (--root-ca-pem-path): {e}"))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| BlobError::Other(format!("invalid root CA certificate: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(BlobError::Other(
                    "the root CA PEM (--root-ca-pem-path) holds no certificate".into(),
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}
