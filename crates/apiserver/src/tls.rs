//! The apiserver's TLS configuration: the serving certificate, HTTP/2 and HTTP/1.1 ALPN, and optional client certificates.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::pki::Pki;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("the cluster CA certificate is unusable as a trust anchor: {0}")]
    TrustAnchor(rustls::Error),
    #[error("cannot build the client certificate verifier: {0}")]
    ClientVerifier(rustls::server::VerifierBuilderError),
    #[error("cannot build the TLS server configuration: {0}")]
    Server(rustls::Error),
}

/// A rustls server configuration for the apiserver.
///
/// Client certificates are requested and, when presented, must chain to the cluster CA; clients without one
/// still connect, because they may authenticate with a bearer token or only need the anonymous health endpoints.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    // An explicit provider keeps the configuration independent of whichever process-wide default is installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_verifier = client_certificate_verifier(pki, provider.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Server)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            vec![pki.serving_certificate_der().clone()],
            pki.serving_key_der(),
        )
        .map_err(TlsConfigError::Server)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn client_certificate_verifier(
    pki: &Pki,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(pki.ca_certificate_der().clone())
        .map_err(TlsConfigError::TrustAnchor)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(TlsConfigError::ClientVerifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_h2_then_http1_and_requests_optional_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let config = server_config(&pki).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let verifier =
            client_certificate_verifier(&pki, Arc::new(rustls::crypto::ring::default_provider()))
                .unwrap();
        assert!(verifier.offer_client_auth());
        assert!(!verifier.client_auth_mandatory());
        assert_eq!(
            verifier.root_hint_subjects().len(),
            1,
            "the cluster CA should be the only acceptable issuer"
        );
    }
}
