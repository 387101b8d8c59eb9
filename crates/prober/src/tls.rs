//! TLS for HTTPS probes and hooks: like upstream, the server's certificate is not verified (only its handshake signature), and handshake failures are worded as Go's `crypto/tls` words them.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Accepts any certificate chain, as Go's `InsecureSkipVerify`, while still
/// checking that the server holds the key of the certificate it sent.
#[derive(Debug)]
struct SkipCertificateVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SkipCertificateVerification {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client configuration; `offer_http2` adds "h2" to ALPN, as Go's
/// transport does when HTTP/2 is configured (probes), and not otherwise
/// (lifecycle hooks).
fn client_config(offer_http2: bool) -> Arc<ClientConfig> {
    static WITH_HTTP2: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static HTTP1_ONLY: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let cell = if offer_http2 {
        &WITH_HTTP2
    } else {
        &HTTP1_ONLY
    };
    cell.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(SkipCertificateVerification {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config =
            ClientConfig::builder_with_provider(Arc::clone(&provider) as Arc<CryptoProvider>)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
        if offer_http2 {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Arc::new(config)
    })
    .clone()
}

/// The TLS connection and whether the server chose HTTP/2.
pub struct TlsConnection {
    pub stream: TlsStream<FirstBytes<TcpStream>>,
    pub http2: bool,
}

/// Runs the TLS handshake over `tcp` for `host` (sent as SNI unless it is an
/// IP address, as Go does).
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    offer_http2: bool,
) -> Result<TlsConnection, String> {
    // A host that is no valid DNS name (the empty host among them) is sent
    // no SNI, as an IP address is not.
    let server_name = ServerName::try_from(host.to_string())
        .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let connector = TlsConnector::from(client_config(offer_http2));
    let recorded = FirstBytes::new(tcp);
    match connector.connect(server_name, recorded).await {
        Ok(stream) => {
            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(TlsConnection { stream, http2 })
        }
        Err(error) => Err(handshake_error_text(&error)),
    }
}

/// Go's texts for the common handshake failures.
fn handshake_error_text(error: &io::Error) -> String {
    if let Some(FirstBytesSeen(first)) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<FirstBytesSeen>())
    {
        if first.starts_with(b"HTTP/") {
            return "http: server gave HTTP response to HTTPS client".to_string();
        }
        return "tls: first record does not look like a TLS handshake".to_string();
    }
    if error.kind() == io::ErrorKind::UnexpectedEof {
        return "EOF".to_string();
    }
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("remote error: {}", alert_text(*alert))
        }
        Some(other) => format!("tls: {other}"),
        None => crate::go_text::errno_text(error),
    }
}

/// Go's text for a TLS alert ("tls: handshake failure").
fn alert_text(alert: rustls::AlertDescription) -> String {
    let code = u8::from(alert);
    let name = match code {
        0 => "close notify",
        10 => "unexpected message",
        20 => "bad record MAC",
        21 => "decryption failed",
        22 => "record overflow",
        30 => "decompression failure",
        40 => "handshake failure",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "revoked certificate",
        45 => "expired certificate",
        46 => "unknown certificate",
        47 => "illegal parameter",
        48 => "unknown certificate authority",
        49 => "access denied",
        50 => "error decoding message",
        51 => "error decrypting message",
        60 => "export restriction",
        70 => "protocol version not supported",
        71 => "insufficient security level",
        80 => "internal error",
        86 => "inappropriate fallback",
        90 => "user canceled",
        100 => "no renegotiation",
        109 => "missing extension",
        110 => "unsupported extension",
        111 => "certificate unobtainable",
        112 => "unrecognized name",
        113 => "bad certificate status response",
        114 => "bad certificate hash value",
        115 => "unknown PSK identity",
        116 => "certificate required",
        120 => "no application protocol",
        121 => "encrypted client hello required",
        _ => return format!("tls: alert({code})"),
    };
    format!("tls: {name}")
}

/// The first bytes a server sent, when they were not a TLS record: Go
/// tells an HTTP answer to an HTTPS request from other garbage by them.
#[derive(Debug)]
struct FirstBytesSeen(Vec<u8>);

impl std::fmt::Display for FirstBytesSeen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("first record does not look like a TLS handshake")
    }
}

impl std::error::Error for FirstBytesSeen {}

/// A stream that keeps the first five bytes read and refuses to go on when
/// they cannot start a TLS handshake record (type 22 or alert 21).
pub struct FirstBytes<S> {
    inner: S,
    first: Vec<u8>,
}

impl<S> FirstBytes<S> {
    fn new(inner: S) -> FirstBytes<S> {
        FirstBytes {
            inner,
            first: Vec::with_capacity(5),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && self.first.len() < 5
        {
            let wanted = 5 - self.first.len();
            let fresh: Vec<u8> = buf.filled()[before..]
                .iter()
                .take(wanted)
                .copied()
                .collect();
            self.first.extend_from_slice(&fresh);
            let looks_like_tls = self
                .first
                .first()
                .is_none_or(|kind| matches!(kind, 21 | 22));
            if !looks_like_tls && (self.first.len() == 5 || fresh.is_empty()) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    FirstBytesSeen(self.first.clone()),
                )));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_go_like() {
        assert_eq!(
            alert_text(rustls::AlertDescription::HandshakeFailure),
            "tls: handshake failure"
        );
        assert_eq!(
            alert_text(rustls::AlertDescription::ProtocolVersion),
            "tls: protocol version not supported"
        );
        assert_eq!(
            alert_text(rustls::AlertDescription::UnrecognisedName),
            "tls: unrecognized name"
        );
        assert_eq!(
            alert_text(rustls::AlertDescription::from(200)),
            "tls: alert(200)"
        );
    }
}
