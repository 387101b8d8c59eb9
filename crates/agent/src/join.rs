//! Joining a cluster with a server URL and token: read the cluster CA from `/cacerts`, obtain the node's client and serving certificates with the token, and keep them as the agent's kubeconfig and kubelet certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use api::join::{CACERTS_PATH, NODE_CREDENTIALS_PATH, NodeCredentials, NodeCredentialsRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The files a joined agent keeps under its data dir.
pub struct NodeFiles {
    pub kubeconfig: PathBuf,
    pub serving_certificate: PathBuf,
    pub serving_key: PathBuf,
    pub ca_certificate: PathBuf,
}

impl NodeFiles {
    pub fn under(agent_dir: &Path) -> NodeFiles {
        NodeFiles {
            kubeconfig: agent_dir.join("kubelet.kubeconfig"),
            serving_certificate: agent_dir.join("serving-kubelet.crt"),
            serving_key: agent_dir.join("serving-kubelet.key"),
            ca_certificate: agent_dir.join("server-ca.crt"),
        }
    }

    /// Writes the credentials: a kubeconfig naming `server_url`, and the
    /// kubelet's serving certificate and key (keys readable by root only).
    pub fn write(&self, server_url: &str, credentials: &NodeCredentials) -> anyhow::Result<()> {
        let kubeconfig = kube::config::Kubeconfig {
            clusters: vec![kube::config::NamedCluster {
                name: "krust".into(),
                cluster: Some(kube::config::Cluster {
                    server: Some(server_url.to_string()),
                    certificate_authority_data: Some(base64(&credentials.ca_certificate)),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            auth_infos: vec![kube::config::NamedAuthInfo {
                name: "node".into(),
                auth_info: Some(kube::config::AuthInfo {
                    client_certificate_data: Some(base64(&credentials.client_certificate)),
                    client_key_data: Some(base64(&credentials.client_key).into()),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            contexts: vec![kube::config::NamedContext {
                name: "krust".into(),
                context: Some(kube::config::Context {
                    cluster: "krust".into(),
                    user: Some("node".into()),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            current_context: Some("krust".into()),
            ..Default::default()
        };
        let text = serde_norway::to_string(&kubeconfig)?;
        write_private(&self.kubeconfig, text.as_bytes())?;
        write_private(&self.serving_key, credentials.serving_key.as_bytes())?;
        std::fs::write(&self.serving_certificate, &credentials.serving_certificate)?;
        std::fs::write(&self.ca_certificate, &credentials.ca_certificate)?;
        Ok(())
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let staging = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staging)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(staging, path)
}

/// Joins: fetches the CA (trusted on first use, as k3s does for a token
/// without a CA hash), then the node's certificates with `token`.
pub async fn join(
    server_url: &str,
    token: &str,
    request: &NodeCredentialsRequest,
) -> anyhow::Result<NodeCredentials> {
    let (host, port) = host_and_port(server_url)?;
    let ca = {
        let config = client_config(None)?;
        let (status, body) = send(&host, port, config, "GET", CACERTS_PATH, None, None).await?;
        if status != 200 {
            bail!("{server_url}{CACERTS_PATH} answered {status}");
        }
        String::from_utf8(body).context("the cluster CA is not text")?
    };
    let config = client_config(Some(&ca))?;
    let body = serde_json::to_vec(request)?;
    let (status, body) = send(
        &host,
        port,
        config,
        "POST",
        NODE_CREDENTIALS_PATH,
        Some(token),
        Some(body),
    )
    .await?;
    match status {
        200 => Ok(serde_json::from_slice(&body).context("reading the node credentials")?),
        401 | 403 => bail!("the server rejected the token ({status})"),
        _ => bail!(
            "{server_url}{NODE_CREDENTIALS_PATH} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

fn host_and_port(server_url: &str) -> anyhow::Result<(String, u16)> {
    let uri: hyper::Uri = server_url
        .parse()
        .with_context(|| format!("invalid server URL {server_url:?}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("the server URL must be https://HOST:PORT, not {server_url:?}");
    }
    let host = uri
        .host()
        .with_context(|| format!("no host in {server_url:?}"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(6443)))
}

fn client_config(ca_pem: Option<&str>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(certificate?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustOnFirstUse(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

async fn send(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let name = ServerName::try_from(host.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {host}:{port}"))?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

/// Accepts any server certificate: used only to read the public CA, which
/// every later connection then verifies against.
#[derive(Debug)]
struct TrustOnFirstUse(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for TrustOnFirstUse {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
