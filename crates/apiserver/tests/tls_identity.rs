//! End-to-end check that a TLS connection to `tls::server_config` yields the right identity from `auth::authenticate`.

use std::net::SocketAddr;
use std::sync::Arc;

use apiserver::auth::{TokenAuthenticator, UserInfo, authenticate};
use apiserver::pki::Pki;
use apiserver::tls::server_config;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TOKEN: &str = "join-token-1234";

/// What the server saw on one connection.
#[derive(Debug)]
struct ServerView {
    presented_certificate: bool,
    user: Option<UserInfo>,
    alpn: Option<Vec<u8>>,
}

struct Cluster {
    _dir: tempfile::TempDir,
    pki: Pki,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(
            dir.path(),
            &["127.0.0.1".to_string(), "localhost".to_string()],
        )
        .unwrap();
        Cluster { _dir: dir, pki }
    }
}

/// Accepts one connection, reads one line holding the Authorization header (empty for none), authenticates,
/// and answers with the user name or "anonymous".
async fn serve_one(
    listener: TcpListener,
    pki: &Pki,
    tokens: TokenAuthenticator,
) -> std::io::Result<ServerView> {
    let acceptor = TlsAcceptor::from(server_config(pki).unwrap());
    let (tcp, _) = listener.accept().await?;
    let tls = acceptor.accept(tcp).await?;
    let (_, connection) = tls.get_ref();
    let peer_certificates = connection
        .peer_certificates()
        .map(<[CertificateDer<'_>]>::to_vec);
    let alpn = connection.alpn_protocol().map(<[u8]>::to_vec);

    let mut reader = BufReader::new(tls);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let authorization = Some(line.trim_end_matches('\n')).filter(|header| !header.is_empty());
    let user = authenticate(peer_certificates.as_deref(), authorization, &tokens);

    let mut tls = reader.into_inner();
    let answer = user.as_ref().map_or("anonymous", |user| user.name.as_str());
    tls.write_all(format!("{answer}\n").as_bytes()).await?;
    tls.shutdown().await?;
    Ok(ServerView {
        presented_certificate: peer_certificates.is_some(),
        user,
        alpn,
    })
}

fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Connects, sends the Authorization line and returns the server's answer.
async fn call(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    authorization: &str,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(address).await?;
    let server_name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
    tls.write_all(format!("{authorization}\n").as_bytes())
        .await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer.trim_end().to_string())
}

async fn exchange(
    cluster: &Cluster,
    client: Arc<rustls::ClientConfig>,
    authorization: &str,
) -> (std::io::Result<ServerView>, std::io::Result<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tokens = TokenAuthenticator::new([TOKEN]);
    tokio::join!(
        serve_one(listener, &cluster.pki, tokens),
        call(address, client, authorization)
    )
}

#[tokio::test]
async fn client_certificate_identifies_admin() {
    let cluster = Cluster::new();
    let (cert_pem, key_pem) = cluster
        .pki
        .issue_client_certificate("admin", &["system:masters"])
        .unwrap();
    let client = client_config(
        cluster.pki.ca_certificate_pem(),
        Some((&cert_pem, &key_pem)),
    );

    let (server, answer) = exchange(&cluster, client, "").await;
    let server = server.unwrap();
    assert!(server.presented_certificate);
    assert_eq!(
        server.user,
        Some(UserInfo {
            name: "admin".to_string(),
            groups: vec![
                "system:masters".to_string(),
                "system:authenticated".to_string()
            ],
        })
    );
    assert_eq!(server.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(answer.unwrap(), "admin");
}

#[tokio::test]
async fn client_without_certificate_connects_but_is_anonymous() {
    let cluster = Cluster::new();
    let client = client_config(cluster.pki.ca_certificate_pem(), None);

    let (server, answer) = exchange(&cluster, client, "").await;
    let server = server.unwrap();
    assert!(!server.presented_certificate);
    assert_eq!(server.user, None);
    assert_eq!(answer.unwrap(), "anonymous");
}

#[tokio::test]
async fn bearer_token_authenticates_without_certificate() {
    let cluster = Cluster::new();
    let client = client_config(cluster.pki.ca_certificate_pem(), None);

    let (server, answer) = exchange(&cluster, client, &format!("Bearer {TOKEN}")).await;
    let user = server.unwrap().user.unwrap();
    assert_eq!(user.name, "krust:token");
    assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
    assert_eq!(answer.unwrap(), "krust:token");
}

#[tokio::test]
async fn wrong_bearer_token_is_refused() {
    let cluster = Cluster::new();
    let client = client_config(cluster.pki.ca_certificate_pem(), None);

    let (server, answer) = exchange(&cluster, client, "Bearer not-the-token").await;
    assert_eq!(server.unwrap().user, None);
    assert_eq!(answer.unwrap(), "anonymous");
}

#[tokio::test]
async fn client_certificate_from_another_ca_fails_the_handshake() {
    let cluster = Cluster::new();
    let impostor = Cluster::new();
    let (cert_pem, key_pem) = impostor
        .pki
        .issue_client_certificate("admin", &["system:masters"])
        .unwrap();
    // The client trusts the real server; only its own certificate is foreign.
    let client = client_config(
        cluster.pki.ca_certificate_pem(),
        Some((&cert_pem, &key_pem)),
    );

    let (server, answer) = exchange(&cluster, client, "").await;
    let error = server.expect_err("the server must reject a certificate from another CA");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "unexpected server error: {error}"
    );
    // With TLS 1.3 the client learns of the rejection only when it reads; either way it gets no answer.
    assert!(answer.is_err(), "client got an answer: {answer:?}");
}

#[tokio::test]
async fn client_rejects_a_server_outside_the_trusted_ca() {
    let cluster = Cluster::new();
    let other = Cluster::new();
    let client = client_config(other.pki.ca_certificate_pem(), None);

    let (server, answer) = exchange(&cluster, client, "").await;
    assert!(server.is_err());
    assert!(answer.is_err());
}
