//! Test fixtures: a pod and container, a scripted ExecRunner, and real local servers (HTTP and HTTPS with a self-signed certificate, raw TCP, and a hand-written tonic gRPC health service).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, Pod};
use prober::grpc::{HealthCheckRequest, HealthCheckResponse};
use prober::{ActionTarget, ExecError, ExecOutput, ExecRunner};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::codegen::{BoxFuture, Context, Poll, Service};

pub fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "default", "uid": "uid-1"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap()
}

/// A container whose port names point at `http_port` and `grpc_port`.
pub fn container(http_port: u16, grpc_port: u16) -> Container {
    serde_json::from_value(json!({
        "name": "web",
        "image": "nginx",
        "env": [{"name": "GREETING", "value": "hello"}],
        "ports": [
            {"name": "http", "containerPort": http_port},
            {"name": "grpc", "containerPort": grpc_port}
        ]
    }))
    .unwrap()
}

pub fn target<'a>(pod: &'a Pod, container: &'a Container) -> ActionTarget<'a> {
    ActionTarget {
        pod,
        container,
        container_id: "c0ffee",
        pod_ip: Some("127.0.0.1"),
    }
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One call the fake runner received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecCall {
    pub container_id: String,
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// Answers every exec with the same scripted result and records the calls.
pub struct FakeExec {
    pub answer: Result<ExecOutput, ExecError>,
    pub delay: Duration,
    pub calls: Mutex<Vec<ExecCall>>,
}

impl FakeExec {
    pub fn answering(answer: Result<ExecOutput, ExecError>) -> FakeExec {
        FakeExec {
            answer,
            delay: Duration::ZERO,
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn exiting(exit_code: i32, stdout: &str, stderr: &str) -> FakeExec {
        FakeExec::answering(Ok(ExecOutput {
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            exit_code,
        }))
    }

    pub fn calls(&self) -> Vec<ExecCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ExecRunner for FakeExec {
    async fn exec_sync(
        &self,
        container_id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        self.calls.lock().unwrap().push(ExecCall {
            container_id: container_id.to_string(),
            command,
            timeout,
        });
        tokio::time::sleep(self.delay).await;
        self.answer.clone()
    }
}

/// What the HTTP test server saw of one request.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub target: String,
    pub version: http::Version,
    /// The Host header, or the authority for HTTP/2.
    pub host: String,
    pub headers: http::HeaderMap,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }
}

/// A local HTTP (or HTTPS) server with canned routes:
/// `/ok`, `/status/<code>`, `/redirect/<n>` (n same-host hops to /ok),
/// `/loop`, `/absolute` (same host, absolute URL), `/elsewhere` (to
/// another host name), `/no-location`,
/// `/big-elsewhere` (20 KiB body), `/slow` (3 s before headers) and
/// `/slow-body` (3 s stall inside the body).
pub struct HttpServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    pub async fn plain() -> HttpServer {
        HttpServer::start(None).await
    }

    pub async fn tls() -> HttpServer {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        HttpServer::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let recorder = Arc::clone(&recorder);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let recorder = Arc::clone(&recorder);
                        async move { Ok::<_, Infallible>(route(request, port, &recorder).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        HttpServer { port, seen, task }
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

type ResponseBody = BoxBody<Bytes, Infallible>;

fn text(status: u16, body: impl Into<Bytes>) -> hyper::Response<ResponseBody> {
    hyper::Response::builder()
        .status(status)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn redirect(status: u16, location: &str, body: impl Into<Bytes>) -> hyper::Response<ResponseBody> {
    hyper::Response::builder()
        .status(status)
        .header(http::header::LOCATION, location)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn route(
    request: hyper::Request<Incoming>,
    port: u16,
    seen: &Mutex<Vec<SeenRequest>>,
) -> hyper::Response<ResponseBody> {
    let target = request
        .uri()
        .path_and_query()
        .map(|path| path.to_string())
        .unwrap_or_default();
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.to_string())
        })
        .unwrap_or_default();
    seen.lock().unwrap().push(SeenRequest {
        target: target.clone(),
        version: request.version(),
        host,
        headers: request.headers().clone(),
    });
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["ok"] | ["hook"] | [""] => text(200, "ok"),
        ["status", code] => {
            let code: u16 = code.parse().unwrap();
            text(code, format!("status {code}"))
        }
        ["redirect", hops] => {
            let hops: u32 = hops.parse().unwrap();
            if hops == 0 {
                text(200, "arrived")
            } else {
                redirect(302, &format!("/redirect/{}", hops - 1), "")
            }
        }
        ["loop"] => redirect(302, "/loop", ""),
        ["absolute"] => redirect(307, &format!("http://127.0.0.1:{port}/ok"), ""),
        ["elsewhere"] => redirect(302, &format!("http://localhost:{port}/ok"), "moved away"),
        ["big-elsewhere"] => redirect(
            301,
            &format!("http://localhost:{port}/ok"),
            "x".repeat(20_000),
        ),
        ["no-location"] => text(302, "nowhere"),
        ["slow"] => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            text(200, "late")
        }
        ["slow-body"] => {
            let chunks = futures::stream::unfold(0, |step| async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from_static(b"partial"))), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        Some((Ok(Frame::data(Bytes::from_static(b"rest"))), 2))
                    }
                    _ => None,
                }
            });
            hyper::Response::new(StreamBody::new(chunks).boxed())
        }
        _ => text(404, "no such route"),
    }
}

/// A listener that takes one connection, keeps what the client sent until
/// the blank line, answers 200 and closes.
pub async fn raw_http_server() -> (u16, JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        while !received.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = socket.read(&mut chunk).await.unwrap();
            if read == 0 {
                break;
            }
            received.extend_from_slice(&chunk[..read]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8(received).unwrap()
    });
    (port, task)
}

/// How the test gRPC server answers Health/Check.
#[derive(Clone, Debug)]
pub enum HealthMode {
    /// Status per service name; unknown names get NOT_FOUND like grpc-go's
    /// health server.
    Statuses(HashMap<String, i32>),
    /// Answers SERVING after this long.
    Slow(Duration),
    /// The server does not implement the health service.
    Unimplemented,
}

/// `grpc.health.v1.Health` written by hand against tonic's server API.
#[derive(Clone)]
pub struct HealthService {
    mode: HealthMode,
    seen_services: Arc<Mutex<Vec<String>>>,
    seen_user_agents: Arc<Mutex<Vec<String>>>,
}

impl tonic::server::NamedService for HealthService {
    const NAME: &'static str = "grpc.health.v1.Health";
}

struct CheckCall(HealthService);

impl Service<tonic::Request<HealthCheckRequest>> for CheckCall {
    type Response = tonic::Response<HealthCheckResponse>;
    type Error = tonic::Status;
    type Future = BoxFuture<Self::Response, tonic::Status>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move {
            let name = request.get_ref().service.clone();
            service.seen_services.lock().unwrap().push(name.clone());
            match service.mode {
                HealthMode::Statuses(statuses) => match statuses.get(&name) {
                    Some(status) => Ok(tonic::Response::new(HealthCheckResponse {
                        status: *status,
                    })),
                    None => Err(tonic::Status::not_found("unknown service")),
                },
                HealthMode::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(tonic::Response::new(HealthCheckResponse { status: 1 }))
                }
                HealthMode::Unimplemented => Err(tonic::Status::unimplemented("")),
            }
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for HealthService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(agent) = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok())
        {
            self.seen_user_agents
                .lock()
                .unwrap()
                .push(agent.to_string());
        }
        let service = self.clone();
        let path = request.uri().path().to_string();
        Box::pin(async move {
            if path != prober::grpc::HEALTH_CHECK_PATH
                || matches!(service.mode, HealthMode::Unimplemented)
            {
                return Ok(tonic::Status::unimplemented("").into_http());
            }
            let codec =
                tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(CheckCall(service), request).await)
        })
    }
}

pub struct GrpcServer {
    pub port: u16,
    pub seen_services: Arc<Mutex<Vec<String>>>,
    pub seen_user_agents: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcServer {
    pub async fn start(mode: HealthMode) -> GrpcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let service = HealthService {
            mode,
            seen_services: Arc::new(Mutex::new(Vec::new())),
            seen_user_agents: Arc::new(Mutex::new(Vec::new())),
        };
        let seen_services = Arc::clone(&service.seen_services);
        let seen_user_agents = Arc::clone(&service.seen_user_agents);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        GrpcServer {
            port: address.port(),
            seen_services,
            seen_user_agents,
            task,
        }
    }
}
