//! The kubelet's HTTPS API, which the API server proxies pods/log, exec, attach and portforward to: `/healthz`, `/pods`, `/containerLogs` (CRI log files, with follow, previous, tailLines, timestamps, limitBytes, sinceSeconds) and `/exec`, `/attach`, `/portForward` relayed byte for byte to containerd's streaming server. Clients must present a cluster-CA certificate of a cluster admin (the API server's is).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cri::api;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kubelet::runtime_state::ContainerRunState;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};

use crate::cri_config;
use crate::observe;
use crate::pod_workers::PodStore;
use crate::stats;

type Body = BoxBody<Bytes, std::io::Error>;

/// What the server reads pods and containers from.
pub struct KubeletBackend {
    pub store: PodStore,
    pub runtime: Arc<dyn crate::sync::Runtime>,
    pub logs_root: PathBuf,
    pub stats: crate::stats::StatsSource,
}

/// TLS for the kubelet port: the node's serving certificate, and client
/// certificates verified against the cluster CA (optional at the TLS
/// layer, so `/healthz` answers without one).
pub fn tls_config(
    serving_certificate: &str,
    serving_key: &str,
    client_ca: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(client_ca.as_bytes()) {
        roots.add(certificate?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let chain = CertificateDer::pem_slice_iter(serving_certificate.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(serving_key.as_bytes())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether a verified client certificate names a cluster admin.
fn is_admin(certificate: &CertificateDer<'_>) -> Option<(String, bool)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .last()
        .and_then(|attribute| attribute.as_str().ok())?
        .to_string();
    let admin = subject
        .iter_organization()
        .filter_map(|attribute| attribute.as_str().ok())
        .any(|group| group == "system:masters");
    Some((name, admin))
}

/// Serves until the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: Arc<KubeletBackend>,
) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let client = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(is_admin);
            let service = hyper::service::service_fn(move |request| {
                let backend = backend.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(route(&backend, client, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn text(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(full(message.into()));
    *response.status_mut() = code;
    response
}

fn query_pairs(request: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn query_flag(query: &[(String, String)], key: &str) -> bool {
    matches!(query_value(query, key), Some("1" | "true" | "True"))
}

async fn route(
    backend: &KubeletBackend,
    client: Option<(String, bool)>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let Some((user, admin)) = client else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if !admin {
        return text(
            StatusCode::FORBIDDEN,
            format!("Forbidden (user={user}, verb=get, resource=nodes, subresource=proxy)"),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["pods"] => pods(backend),
        ["stats", "summary"] => {
            let summary =
                stats::summary(&backend.stats, backend.runtime.as_ref(), &pod_list(backend)).await;
            json_response(&summary)
        }
        ["metrics", "resource"] => {
            let summary =
                stats::summary(&backend.stats, backend.runtime.as_ref(), &pod_list(backend)).await;
            prometheus(stats::resource_metrics(&summary))
        }
        ["metrics"] => {
            let running = backend
                .runtime
                .list_containers(None)
                .await
                .map(|containers| {
                    containers
                        .iter()
                        .filter(|container| {
                            container.state == api::ContainerState::ContainerRunning as i32
                        })
                        .count()
                })
                .unwrap_or(0);
            prometheus(stats::kubelet_metrics(
                &backend.stats.node_name,
                &pod_list(backend),
                running,
            ))
        }
        ["containerLogs", namespace, pod, container] => {
            container_logs(backend, namespace, pod, container, &query_pairs(&request)).await
        }
        ["exec", namespace, pod, container] => {
            let (namespace, pod, container) = (
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            );
            stream(
                backend,
                request,
                &namespace,
                &pod,
                Some(&container),
                Stream::Exec,
            )
            .await
        }
        ["attach", namespace, pod, container] => {
            let (namespace, pod, container) = (
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            );
            stream(
                backend,
                request,
                &namespace,
                &pod,
                Some(&container),
                Stream::Attach,
            )
            .await
        }
        ["portForward", namespace, pod] => {
            let (namespace, pod) = (namespace.to_string(), pod.to_string());
            stream(
                backend,
                request,
                &namespace,
                &pod,
                None,
                Stream::PortForward,
            )
            .await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn pod_list(backend: &KubeletBackend) -> Vec<Pod> {
    backend
        .store
        .all()
        .iter()
        .map(|pod| Pod::clone(pod))
        .collect()
}

fn json_response(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn prometheus(text: String) -> Response<Body> {
    let mut response = Response::new(full(text.into_bytes()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn pods(backend: &KubeletBackend) -> Response<Body> {
    let items = pod_list(backend);
    let list = serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    });
    let mut response = Response::new(full(serde_json::to_vec(&list).unwrap_or_default()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// One line of a CRI log file: `<RFC3339Nano> <stream> <P|F> <text>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp: String,
    pub partial: bool,
    pub text: String,
}

/// Parses one CRI log line; `None` for a malformed one.
pub fn parse_cri_line(line: &str) -> Option<LogLine> {
    let mut fields = line.splitn(4, ' ');
    let timestamp = fields.next()?.to_string();
    let _stream = fields.next()?;
    let tag = fields.next()?;
    let text = fields.next().unwrap_or("").to_string();
    Some(LogLine {
        timestamp,
        partial: tag.split(':').next() == Some("P"),
        text,
    })
}

/// Joins partial lines into whole ones: (timestamp of the first part, text).
pub fn whole_lines(content: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(String, String)> = None;
    for line in content.lines().filter_map(parse_cri_line) {
        let (timestamp, mut text) = pending
            .take()
            .unwrap_or_else(|| (line.timestamp.clone(), String::new()));
        text.push_str(&line.text);
        if line.partial {
            pending = Some((timestamp, text));
        } else {
            lines.push((timestamp, text));
        }
    }
    lines.extend(pending);
    lines
}

/// The options of `/containerLogs` that shape the output.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    /// Only lines at or after this RFC 3339 time.
    pub since: Option<k8s_openapi::jiff::Timestamp>,
}

/// Renders whole lines as the kubelet sends them.
pub fn render_lines(lines: &[(String, String)], options: &LogOptions) -> String {
    let selected: Vec<&(String, String)> = lines
        .iter()
        .filter(|(timestamp, _)| {
            match (
                &options.since,
                timestamp.parse::<k8s_openapi::jiff::Timestamp>(),
            ) {
                (Some(since), Ok(at)) => at >= *since,
                _ => true,
            }
        })
        .collect();
    let start = options
        .tail_lines
        .map_or(0, |tail| selected.len().saturating_sub(tail));
    let mut out = String::new();
    for (timestamp, text) in &selected[start..] {
        if options.timestamps {
            out.push_str(timestamp);
            out.push(' ');
        }
        out.push_str(text);
        out.push('\n');
    }
    if let Some(limit) = options.limit_bytes
        && out.len() > limit
    {
        let mut end = limit;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

async fn container_logs(
    backend: &KubeletBackend,
    namespace: &str,
    pod_name: &str,
    container: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let Some(pod) = backend.store.find(namespace, pod_name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod_name} not found"),
        );
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let previous = query_flag(query, "previous");
    let Ok(state) = observe::observe_pod(backend.runtime.as_ref(), &uid).await else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the container runtime did not answer",
        );
    };
    let instances: Vec<_> = state
        .containers_newest_first()
        .into_iter()
        .filter(|record| record.name == container)
        .collect();
    let record = if previous {
        match instances.get(1) {
            Some(record) => *record,
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                    ),
                );
            }
        }
    } else {
        match instances.first() {
            Some(record) => *record,
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
                    ),
                );
            }
        }
    };
    let path = cri_config::pod_log_directory(&backend.logs_root, &pod)
        .join(cri_config::container_log_path(container, record.attempt));
    let mut options = LogOptions {
        timestamps: query_flag(query, "timestamps"),
        tail_lines: query_value(query, "tailLines").and_then(|v| v.parse().ok()),
        limit_bytes: query_value(query, "limitBytes").and_then(|v| v.parse().ok()),
        since: query_value(query, "sinceTime").and_then(|v| v.parse().ok()),
    };
    if let Some(seconds) = query_value(query, "sinceSeconds").and_then(|v| v.parse::<i64>().ok()) {
        options.since = k8s_openapi::jiff::Timestamp::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
            .ok();
    }
    let content = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let first = render_lines(&whole_lines(&content), &options);
    let follow = query_flag(query, "follow")
        && !previous
        && record.state == ContainerRunState::Running
        && options.limit_bytes.is_none();
    if !follow {
        return Response::new(full(first));
    }
    // Follow: send what is there, then lines as they are appended, until
    // the container stops (checked on each idle poll) or the client goes.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let runtime = backend.runtime.clone();
    let container_id = record.id.clone();
    let timestamps = options.timestamps;
    let offset = content.len() as u64;
    tokio::spawn(async move {
        if sender
            .send(Ok(Frame::data(Bytes::from(first))))
            .await
            .is_err()
        {
            return;
        }
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            return;
        };
        if file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
            return;
        }
        let mut reader = tokio::io::BufReader::new(file);
        let mut line = String::new();
        let mut partial = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) => {
                    let running = runtime
                        .container_status(&container_id, false)
                        .await
                        .ok()
                        .and_then(|response| response.status)
                        .is_some_and(|status| {
                            status.state == api::ContainerState::ContainerRunning as i32
                        });
                    if !running || sender.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(_) if !line.ends_with('\n') => {
                    // Half-written: read the rest on the next round.
                    partial.push_str(&line);
                }
                Ok(_) => {
                    let whole = format!("{partial}{line}");
                    partial.clear();
                    let Some(parsed) = parse_cri_line(whole.trim_end_matches('\n')) else {
                        continue;
                    };
                    let mut out = String::new();
                    if timestamps {
                        out.push_str(&parsed.timestamp);
                        out.push(' ');
                    }
                    out.push_str(&parsed.text);
                    if !parsed.partial {
                        out.push('\n');
                    }
                    if sender
                        .send(Ok(Frame::data(Bytes::from(out))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    Response::new(BodyExt::boxed(StreamBody::new(stream)))
}

#[derive(Clone, Copy)]
enum Stream {
    Exec,
    Attach,
    PortForward,
}

/// Asks containerd for a streaming URL and relays the client's upgrade
/// (websocket or SPDY) to it, then the bytes both ways.
async fn stream(
    backend: &KubeletBackend,
    mut request: Request<Incoming>,
    namespace: &str,
    pod_name: &str,
    container: Option<&str>,
    kind: Stream,
) -> Response<Body> {
    if !request.headers().contains_key(hyper::header::UPGRADE) {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    }
    let Some(pod) = backend.store.find(namespace, pod_name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod_name} not found"),
        );
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Ok(state) = observe::observe_pod(backend.runtime.as_ref(), &uid).await else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the container runtime did not answer",
        );
    };
    let query = query_pairs(&request);
    let url =
        match kind {
            Stream::PortForward => {
                let Some(sandbox) = state
                    .sandboxes_newest_first()
                    .into_iter()
                    .find(|sandbox| sandbox.state == kubelet::runtime_state::SandboxState::Ready)
                else {
                    return text(
                        StatusCode::NOT_FOUND,
                        format!("pod {pod_name} has no running sandbox"),
                    );
                };
                let ports = query_value(&query, "port")
                    .map(|ports| {
                        ports
                            .split(',')
                            .filter_map(|p| p.trim().parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                backend.runtime.port_forward(&sandbox.id, ports).await
            }
            Stream::Exec | Stream::Attach => {
                let name = container.unwrap_or_default();
                let Some(record) = state.containers_newest_first().into_iter().find(|record| {
                    record.name == name && record.state == ContainerRunState::Running
                }) else {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("container {name} is not valid for pod {pod_name}"),
                    );
                };
                let (stdin, stdout, stderr, tty) = (
                    query_flag(&query, "input"),
                    query_flag(&query, "output"),
                    query_flag(&query, "error"),
                    query_flag(&query, "tty"),
                );
                match kind {
                    Stream::Exec => {
                        let command = query
                            .iter()
                            .filter(|(k, _)| k == "command")
                            .map(|(_, v)| v.clone())
                            .collect();
                        backend
                            .runtime
                            .exec(api::ExecRequest {
                                container_id: record.id.clone(),
                                cmd: command,
                                tty,
                                stdin,
                                stdout,
                                stderr,
                            })
                            .await
                    }
                    _ => {
                        backend
                            .runtime
                            .attach(api::AttachRequest {
                                container_id: record.id.clone(),
                                stdin,
                                tty,
                                stdout,
                                stderr,
                            })
                            .await
                    }
                }
            }
        };
    let url: hyper::Uri = match url.map(|url| url.parse()) {
        Ok(Ok(url)) => url,
        Ok(Err(_)) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the runtime gave an invalid URL",
            );
        }
        Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    let authority = url.authority().map(|a| a.to_string()).unwrap_or_default();
    let Ok(tcp) = tokio::net::TcpStream::connect(&authority).await else {
        return text(
            StatusCode::BAD_GATEWAY,
            "cannot reach the runtime's streaming server",
        );
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
    else {
        return text(
            StatusCode::BAD_GATEWAY,
            "cannot talk to the runtime's streaming server",
        );
    };
    tokio::spawn(connection.with_upgrades());
    let mut upstream = Request::builder()
        .method(request.method().clone())
        .uri(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut headers = HashMap::new();
    for (name, value) in request.headers() {
        if name != hyper::header::HOST {
            upstream = upstream.header(name, value);
            headers.insert(name.clone(), value.clone());
        }
    }
    let upstream = match upstream
        .header(hyper::header::HOST, &authority)
        .body(Full::new(Bytes::new()))
    {
        Ok(upstream) => upstream,
        Err(error) => return text(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let mut answer = match sender.send_request(upstream).await {
        Ok(answer) => answer,
        Err(error) => return text(StatusCode::BAD_GATEWAY, error.to_string()),
    };
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Response::builder()
            .status(status)
            .body(full(body))
            .unwrap_or_else(|_| text(StatusCode::BAD_GATEWAY, "bad upstream answer"));
    }
    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let client_upgrade = hyper::upgrade::on(&mut request);
    let runtime_upgrade = hyper::upgrade::on(&mut answer);
    tokio::spawn(async move {
        let (Ok(client), Ok(runtime)) = (client_upgrade.await, runtime_upgrade.await) else {
            return;
        };
        let _ =
            tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(runtime))
                .await;
    });
    response
        .body(full(Bytes::new()))
        .unwrap_or_else(|_| text(StatusCode::BAD_GATEWAY, "bad upstream answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-22T10:00:00.000000001Z stdout F one\n\
2026-11-22T10:00:01.000000001Z stderr P tw\n\
2026-11-22T10:00:01.500000001Z stderr F o\n\
2026-11-22T10:00:02.000000001Z stdout F three\n";

    #[test]
    fn partial_lines_are_joined_under_their_first_timestamp() {
        let lines = whole_lines(LOG);
        assert_eq!(
            lines,
            vec![
                (
                    "2026-11-22T10:00:00.000000001Z".to_string(),
                    "one".to_string()
                ),
                (
                    "2026-11-22T10:00:01.000000001Z".to_string(),
                    "two".to_string()
                ),
                (
                    "2026-11-22T10:00:02.000000001Z".to_string(),
                    "three".to_string()
                ),
            ]
        );
    }

    #[test]
    fn options_shape_the_output_like_the_kubelet() {
        let lines = whole_lines(LOG);
        assert_eq!(
            render_lines(&lines, &LogOptions::default()),
            "one\ntwo\nthree\n"
        );
        let tail = LogOptions {
            tail_lines: Some(2),
            ..LogOptions::default()
        };
        assert_eq!(render_lines(&lines, &tail), "two\nthree\n");
        let more = LogOptions {
            tail_lines: Some(10),
            ..LogOptions::default()
        };
        assert_eq!(render_lines(&lines, &more), "one\ntwo\nthree\n");
        let stamped = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        assert_eq!(
            render_lines(&lines, &stamped),
            "2026-11-22T10:00:02.000000001Z three\n"
        );
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        assert_eq!(render_lines(&lines, &limited), "one\ntw");
        let since = LogOptions {
            since: Some("2026-11-22T10:00:01Z".parse().unwrap()),
            ..LogOptions::default()
        };
        assert_eq!(render_lines(&lines, &since), "two\nthree\n");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_cri_line("garbage"), None);
        assert_eq!(
            whole_lines("garbage\n2026-11-22T10:00:00Z stdout F ok\n").len(),
            1
        );
    }
}
