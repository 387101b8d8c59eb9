//! Outbound connections for proxied requests: the TLS identities used towards kubelets and other backends, plain request forwarding, and splicing of upgraded connections (exec, attach, port-forward, WebSockets).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pki::Pki;

/// How long connecting to a backend may take, as kube-apiserver's proxy dialer.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// The identity kube-apiserver presents to kubelets (kubeadm's `apiserver-kubelet-client`): its groups make
/// it a cluster admin to the kubelet's authorizer.
pub const KUBELET_CLIENT_COMMON_NAME: &str = "kube-apiserver-kubelet-client";
pub const KUBELET_CLIENT_ORGANIZATION: &str = "system:masters";

#[derive(Debug, thiserror::Error)]
pub enum ProxyTlsError {
    #[error("cannot issue the kubelet client certificate: {0}")]
    Issue(#[from] crate::pki::PkiError),
    #[error("the kubelet client certificate or key is unreadable: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    #[error("the cluster CA certificate is unusable as a trust anchor: {0}")]
    TrustAnchor(rustls::Error),
    #[error("cannot build the TLS client configuration: {0}")]
    Client(rustls::Error),
}

/// The TLS client configurations proxied requests use.
#[derive(Clone)]
pub struct ProxyTls {
    /// Towards kubelets: presents the kubelet client certificate and requires a serving certificate issued by
    /// the cluster CA for the address dialled.
    pub kubelet: Arc<rustls::ClientConfig>,
    /// Towards a kubelet when a log request sets `insecureSkipTLSVerifyBackend`: the same identity, but the
    /// kubelet's certificate is not checked.
    pub kubelet_unverified: Arc<rustls::ClientConfig>,
    /// Towards `https` Services and node ports other than the kubelet's: like kube-apiserver's proxy
    /// transport, no client identity and no server verification (these backends have no cluster-issued
    /// certificates to check).
    pub backend: Arc<rustls::ClientConfig>,
}

impl ProxyTls {
    pub fn new(pki: &Pki) -> Result<ProxyTls, ProxyTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = pki
            .issue_client_certificate(KUBELET_CLIENT_COMMON_NAME, &[KUBELET_CLIENT_ORGANIZATION])?;
        let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes())?];
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;

        let mut roots = RootCertStore::empty();
        roots
            .add(pki.ca_certificate_der().clone())
            .map_err(ProxyTlsError::TrustAnchor)?;
        let kubelet = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(ProxyTlsError::Client)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(ProxyTlsError::Client)?;
        let unverified = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|builder| {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(
                            provider.clone(),
                        )))
                })
                .map_err(ProxyTlsError::Client)
        };
        let kubelet_unverified = unverified()?
            .with_client_auth_cert(chain, key)
            .map_err(ProxyTlsError::Client)?;
        let backend = unverified()?.with_no_client_auth();
        Ok(ProxyTls {
            kubelet: http1_only(kubelet),
            kubelet_unverified: http1_only(kubelet_unverified),
            backend: http1_only(backend),
        })
    }
}

/// Proxied requests travel over HTTP/1.1, the only version with connection upgrades.
fn http1_only(mut config: rustls::ClientConfig) -> Arc<rustls::ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Accepts any server certificate while still checking the handshake signatures made with it.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where a proxied request goes.
#[derive(Clone)]
pub struct Location {
    pub host: String,
    pub port: u16,
    /// Path and query as sent on the request line; always starts with `/`.
    pub path_and_query: String,
    /// None for plain HTTP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Location {
    /// `host:port`, with an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path_and_query)
    }
}

/// Connects to `location` (TLS when it says so), sends `request` over HTTP/1.1 and returns the response head,
/// its body streaming. The connection keeps serving upgrades, so a 101 can be taken over.
pub async fn send(
    location: &Location,
    request: Request<Body>,
) -> Result<Response<Incoming>, String> {
    let authority = location.authority();
    let tcp = tokio::time::timeout(
        DIAL_TIMEOUT,
        TcpStream::connect((location.host.as_str(), location.port)),
    )
    .await
    .map_err(|_| format!("dial tcp {authority}: i/o timeout"))?
    .map_err(|error| format!("dial tcp {authority}: {error}"))?;
    let _ = tcp.set_nodelay(true);
    match &location.tls {
        None => send_over(tcp, request).await,
        Some(config) => {
            let server_name = ServerName::try_from(location.host.clone())
                .map_err(|error| format!("invalid server name {:?}: {error}", location.host))?;
            let tls = TlsConnector::from(config.clone())
                .connect(server_name, tcp)
                .await
                .map_err(|error| format!("tls: {error}"))?;
            send_over(tls, request).await
        }
    }
}

async fn send_over<IO>(io: IO, request: Request<Body>) -> Result<Response<Incoming>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "proxied backend connection ended");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Whether a request asks to switch protocols (`Connection: Upgrade` with an `Upgrade` header).
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    let connection_upgrade = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && request.headers().contains_key(header::UPGRADE)
}

/// The request to send the backend: the client's method and headers (the caller's credentials stay here, as
/// kube-apiserver drops `Authorization` once it has authenticated) with the backend's path and host.
fn backend_request(
    location: &Location,
    request: &Request<Body>,
    keep_upgrade_headers: bool,
    body: Body,
) -> Result<Request<Body>, String> {
    let mut headers = request.headers().clone();
    let upgrade = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    if keep_upgrade_headers && let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    let host = HeaderValue::try_from(location.authority()).map_err(|error| error.to_string())?;
    headers.insert(header::HOST, host);
    let mut outgoing = Request::builder()
        .method(request.method().clone())
        .uri(location.path_and_query.as_str())
        .body(body)
        .map_err(|error| error.to_string())?;
    *outgoing.headers_mut() = headers;
    Ok(outgoing)
}

/// Forwards an ordinary request and streams the backend's answer back; hop-by-hop headers are dropped both
/// ways. `Err` carries why the backend could not be reached.
pub async fn forward(
    location: &Location,
    request: Request<Body>,
) -> Result<Response<Body>, String> {
    let (parts, body) = request.into_parts();
    let head = Request::from_parts(parts, Body::empty());
    let outgoing = backend_request(location, &head, false, body)?;
    let response = send(location, outgoing).await?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Proxies a connection upgrade: the request goes to the backend; when it answers 101 the client gets that
/// answer and, once both sides have switched, the two connections are spliced byte for byte until either
/// closes. Any other answer is relayed as it is (an upgrade refused with a Status, say).
pub async fn splice_upgrade(
    location: &Location,
    mut request: Request<Body>,
) -> Result<Response<Body>, String> {
    let client_upgrade = hyper::upgrade::on(&mut request);
    let outgoing = backend_request(location, &request, true, Body::empty())?;
    let mut response = send(location, outgoing).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let backend_upgrade = hyper::upgrade::on(&mut response);
    let (parts, _) = response.into_parts();
    tokio::spawn(async move {
        let (client, backend) = tokio::join!(client_upgrade, backend_upgrade);
        match (client, backend) {
            (Ok(client), Ok(backend)) => {
                let result = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(backend),
                )
                .await;
                if let Err(error) = result {
                    tracing::debug!(%error, "spliced upgrade ended");
                }
            }
            (client, backend) => tracing::debug!(
                client = ?client.err(),
                backend = ?backend.err(),
                "an upgraded connection failed to switch"
            ),
        }
    });
    Ok(Response::from_parts(parts, Body::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_credentials_stay_behind() {
        let request = Request::builder()
            .uri("/api/v1/nodes/n/proxy/x")
            .header(header::CONNECTION, "keep-alive, X-Private")
            .header("x-private", "1")
            .header(header::AUTHORIZATION, "Bearer secret")
            .header(header::ACCEPT, "text/plain")
            .header(header::UPGRADE, "websocket")
            .body(Body::empty())
            .unwrap();
        assert!(!is_upgrade_request(&request));
        let location = Location {
            host: "::1".into(),
            port: 10250,
            path_and_query: "/x?y=1".into(),
            tls: None,
        };
        let outgoing = backend_request(&location, &request, false, Body::empty()).unwrap();
        assert_eq!(outgoing.uri(), "/x?y=1");
        let headers = outgoing.headers();
        assert_eq!(headers[header::HOST], "[::1]:10250");
        assert_eq!(headers[header::ACCEPT], "text/plain");
        for gone in ["x-private", "authorization", "connection", "upgrade"] {
            assert!(!headers.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(location.url(), "http://[::1]:10250/x?y=1");
    }

    #[test]
    fn upgrades_keep_their_protocol() {
        let request = Request::builder()
            .uri("/exec")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .body(Body::empty())
            .unwrap();
        assert!(is_upgrade_request(&request));
        let location = Location {
            host: "10.0.0.1".into(),
            port: 10250,
            path_and_query: "/exec/a/b/c".into(),
            tls: None,
        };
        let outgoing = backend_request(&location, &request, true, Body::empty()).unwrap();
        assert_eq!(outgoing.headers()[header::UPGRADE], "SPDY/3.1");
        assert_eq!(outgoing.headers()[header::CONNECTION], "Upgrade");
    }
}
