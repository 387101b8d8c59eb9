//! The HTTP GET of httpGet probes and hooks, as upstream's prober and Go's `net/http` client make it: the request upstream builds from the action, same-host redirects, Go's error texts, and the probe's verdict on the response.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use kubelet::probes::ProbeOutcome;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use crate::go_text::{self, canonical_header_key, quote};
use crate::url::Url;
use crate::{KUBERNETES_VERSION, dial, port, tls};

/// Upstream reads at most this much of a response body.
pub const MAX_BODY_BYTES: usize = 10 * 1024;
/// Go's client gives up on the tenth redirect.
const MAX_REDIRECTS: usize = 10;

/// A GET as upstream's `NewRequestForHTTPGetAction` builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetRequest {
    pub url: Url,
    /// Go's `http.Header`: canonical names in sorted order, values in the
    /// order given.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The Host header's value when the action sets one.
    pub host_override: Option<String>,
}

impl GetRequest {
    /// The request for `action`: the host defaults to `pod_ip`, the port is
    /// resolved against the container, and User-Agent (`kube-<purpose>/…`)
    /// and `Accept: */*` are added unless the action sets them (an empty
    /// Accept removes it).
    pub fn for_action(
        action: &HTTPGetAction,
        container: &Container,
        pod_ip: &str,
        purpose: &str,
    ) -> Result<GetRequest, String> {
        let scheme = action
            .scheme
            .as_deref()
            .filter(|scheme| !scheme.is_empty())
            .unwrap_or("http")
            .to_ascii_lowercase();
        let host = action
            .host
            .as_deref()
            .filter(|host| !host.is_empty())
            .unwrap_or(pod_ip);
        let port = port::resolve_container_port(&action.port, container)?;
        let url = Url::for_action(&scheme, host, port, action.path.as_deref().unwrap_or(""));
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for header in action.http_headers.iter().flatten() {
            headers
                .entry(canonical_header_key(&header.name))
                .or_default()
                .push(header.value.clone());
        }
        headers
            .entry("User-Agent".to_string())
            .or_insert_with(|| vec![format!("kube-{purpose}/{KUBERNETES_VERSION}")]);
        match headers.get("Accept").and_then(|values| values.first()) {
            None => {
                headers.insert("Accept".to_string(), vec!["*/*".to_string()]);
            }
            Some(first) if first.is_empty() => {
                headers.remove("Accept");
            }
            Some(_) => {}
        }
        let host_override = headers
            .get("Host")
            .and_then(|values| values.first())
            .filter(|host| !host.is_empty())
            .cloned();
        Ok(GetRequest {
            url,
            headers,
            host_override,
        })
    }
}

/// How the Go client upstream uses for the purpose is set up.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    /// Probes' transport is configured for HTTP/2 over TLS; the hooks' is not.
    pub offer_http2: bool,
    /// Probes disable keep-alives, which Go announces with `Connection: close`.
    pub keep_alive: bool,
    /// Go asks for gzip unless compression is disabled (it is for probes).
    pub accept_gzip: bool,
    /// What Go appends to a deadline error while awaiting headers.
    pub timeout_note: &'static str,
}

pub const PROBE_CLIENT: ClientSettings = ClientSettings {
    offer_http2: true,
    keep_alive: false,
    accept_gzip: false,
    timeout_note: " (Client.Timeout exceeded while awaiting headers)",
};

pub const LIFECYCLE_CLIENT: ClientSettings = ClientSettings {
    offer_http2: false,
    keep_alive: true,
    accept_gzip: true,
    timeout_note: "",
};

/// A failed GET as Go's `url.Error` prints it: `Get "<url>": <cause>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetError {
    pub url: String,
    pub cause: String,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Get {}: {}", quote(&self.url), self.cause)
    }
}

/// The last response of a GET, with its body still to read.
pub struct FinalResponse {
    pub status: u16,
    pub content_length: Option<u64>,
    pub body: Incoming,
    _connection: ConnectionTask,
}

/// Drives one client connection; dropping it closes the connection.
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the GET and follows redirects to the same host name, as Go's
/// client with upstream's redirect checker does; `deadline` bounds
/// everything up to the last response's headers.
pub async fn get(
    request: &GetRequest,
    settings: &ClientSettings,
    deadline: Option<Instant>,
) -> Result<FinalResponse, GetError> {
    let first_hostname = request.url.host.clone();
    // Go sends a custom Host only where it differs from the URL's, and
    // keeps it through relative redirects only.
    let custom_host = request
        .host_override
        .clone()
        .filter(|host| *host != request.url.authority());
    let mut url = request.url.clone();
    let mut host_override = request.host_override.clone();
    let mut referer: Option<String> = None;
    let mut requests_sent = 0;
    loop {
        let attempt = send_once(
            &url,
            request,
            host_override.as_deref(),
            referer.as_deref(),
            settings,
        );
        let sent = match deadline {
            Some(deadline) => match timeout_at(deadline, attempt).await {
                Ok(sent) => sent,
                Err(_) => Err(format!(
                    "context deadline exceeded{}",
                    settings.timeout_note
                )),
            },
            None => attempt.await,
        };
        let (response, connection) = sent.map_err(|cause| GetError {
            url: url.to_string(),
            cause,
        })?;
        requests_sent += 1;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .filter(|location| !location.is_empty());
        let follows = matches!(status, 301 | 302 | 303 | 307 | 308);
        let (Some(location), true) = (location, follows) else {
            return Ok(final_response(response, connection));
        };
        let next = url.join(&location).map_err(|error| GetError {
            url: url.to_string(),
            cause: format!(
                "failed to parse Location header {}: {error}",
                quote(&location)
            ),
        })?;
        if next.host != first_hostname {
            // Upstream's checker hands back the redirect itself.
            return Ok(final_response(response, connection));
        }
        if requests_sent >= MAX_REDIRECTS {
            return Err(GetError {
                url: location,
                cause: format!("stopped after {MAX_REDIRECTS} redirects"),
            });
        }
        host_override = custom_host
            .clone()
            .filter(|_| !Url::is_absolute_reference(&location));
        referer = if url.scheme == "https" && next.scheme == "http" {
            None
        } else {
            Some(url.to_string())
        };
        drop(connection);
        url = next;
    }
}

fn final_response(response: http::Response<Incoming>, connection: ConnectionTask) -> FinalResponse {
    let content_length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    FinalResponse {
        status: response.status().as_u16(),
        content_length,
        body: response.into_body(),
        _connection: connection,
    }
}

/// One request on a fresh connection; errors are the cause part of Go's
/// `url.Error`.
async fn send_once(
    url: &Url,
    request: &GetRequest,
    host_override: Option<&str>,
    referer: Option<&str>,
    settings: &ClientSettings,
) -> Result<(http::Response<Incoming>, ConnectionTask), String> {
    if url.scheme != "http" && url.scheme != "https" {
        return Err(format!(
            "unsupported protocol scheme {}",
            quote(&url.scheme)
        ));
    }
    if url.authority().is_empty() {
        return Err("http: no Host in request URL".to_string());
    }
    let headers = request_headers(request, referer, settings)?;
    let authority = host_override.map_or_else(|| url.authority(), str::to_string);
    let host_value =
        HeaderValue::from_str(&authority).map_err(|_| "http: invalid Host header".to_string())?;
    let tcp = dial::dial(&url.host, url.dial_port()?, None).await?;
    let local = tcp.local_addr().ok();
    let peer = tcp.peer_addr().ok();
    let addresses = (local, peer);
    let target = url.request_target();
    if url.scheme == "https" {
        let tls = tls::handshake(tcp, &url.host, settings.offer_http2).await?;
        if tls.http2 {
            let uri = format!("https://{authority}{target}");
            send_http2(tls.stream, &uri, headers, addresses).await
        } else {
            send_http1(tls.stream, &target, host_value, headers, addresses).await
        }
    } else {
        send_http1(tcp, &target, host_value, headers, addresses).await
    }
}

type Addresses = (Option<SocketAddr>, Option<SocketAddr>);

/// The header lines in Go's order: User-Agent first, then the rest sorted;
/// invalid names or values fail as Go fails them.
fn request_headers(
    request: &GetRequest,
    referer: Option<&str>,
    settings: &ClientSettings,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut lines = Vec::new();
    let mut push = |name: &str, value: &str| -> Result<(), String> {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("net/http: invalid header field name {}", quote(name)))?;
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| format!("net/http: invalid header field value for {}", quote(name)))?;
        lines.push((header_name, header_value));
        Ok(())
    };
    let user_agent = request
        .headers
        .get("User-Agent")
        .and_then(|values| values.first())
        .filter(|value| !value.is_empty());
    if let Some(user_agent) = user_agent {
        push("User-Agent", user_agent)?;
    }
    for (name, values) in &request.headers {
        if matches!(
            name.as_str(),
            "Host" | "User-Agent" | "Content-Length" | "Transfer-Encoding"
        ) {
            continue;
        }
        for value in values {
            push(name, value)?;
        }
    }
    if let Some(referer) = referer
        && !request.headers.contains_key("Referer")
    {
        push("Referer", referer)?;
    }
    if settings.accept_gzip
        && !request.headers.contains_key("Accept-Encoding")
        && !request.headers.contains_key("Range")
    {
        push("Accept-Encoding", "gzip")?;
    }
    if !settings.keep_alive {
        push("Connection", "close")?;
    }
    Ok(lines)
}

async fn send_http1<S>(
    stream: S,
    target: &str,
    host: HeaderValue,
    headers: Vec<(HeaderName, HeaderValue)>,
    addresses: Addresses,
) -> Result<(http::Response<Incoming>, ConnectionTask), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        // Go writes canonical header names; so does this client.
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|error| transport_error_text(&error, addresses))?;
    let task = ConnectionTask(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut builder = http::Request::get(target).header(http::header::HOST, host);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| transport_error_text(&error, addresses))?;
    Ok((response, task))
}

async fn send_http2<S>(
    stream: S,
    uri: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    addresses: Addresses,
) -> Result<(http::Response<Incoming>, ConnectionTask), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|error| transport_error_text(&error, addresses))?;
    let task = ConnectionTask(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut builder = http::Request::get(uri).version(http::Version::HTTP_2);
    for (name, value) in headers {
        // HTTP/2 has no connection-level headers.
        if name != http::header::CONNECTION {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| transport_error_text(&error, addresses))?;
    Ok((response, task))
}

/// Go's wording for a connection that failed before the response headers.
fn transport_error_text(error: &hyper::Error, (local, peer): Addresses) -> String {
    if error.is_incomplete_message() {
        return "EOF".to_string();
    }
    if error.is_parse() {
        return "net/http: HTTP/1.x transport connection broken: malformed HTTP response"
            .to_string();
    }
    if let Some(io_error) = io_source(error)
        && io_error.raw_os_error().is_some()
        && let (Some(local), Some(peer)) = (local, peer)
    {
        return format!(
            "read tcp {local}->{peer}: read: {}",
            go_text::errno_text(io_error)
        );
    }
    error.to_string()
}

fn io_source(error: &hyper::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(io_error) = current.downcast_ref::<std::io::Error>() {
            return Some(io_error);
        }
        source = current.source();
    }
    None
}

/// Reads the body up to `limit` bytes (upstream's `ReadAtMost`: hitting the
/// limit is not an error, the rest is never read).
pub async fn read_at_most(body: &mut Incoming, limit: usize) -> Result<Vec<u8>, String> {
    let mut collected = Vec::new();
    while collected.len() < limit {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    collected.extend_from_slice(&data);
                }
            }
            Some(Err(error)) if error.is_incomplete_message() => {
                return Err("unexpected EOF".to_string());
            }
            Some(Err(error)) => return Err(error.to_string()),
        }
    }
    collected.truncate(limit);
    Ok(collected)
}

/// Runs an httpGet probe: 2xx succeeds, 3xx succeeds with a warning (a
/// redirect not followed), anything else fails, as upstream's
/// `DoHTTPProbe`. `timeout` bounds the whole exchange, body included.
pub async fn probe(request: &GetRequest, timeout: Duration) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let mut response = match get(request, &PROBE_CLIENT, Some(deadline)).await {
        Ok(response) => response,
        Err(error) => return ProbeOutcome::Failure(error.to_string()),
    };
    let body = match timeout_at(deadline, read_at_most(&mut response.body, MAX_BODY_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => return ProbeOutcome::Error(error),
        Err(_) => {
            return ProbeOutcome::Error(
                "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                    .to_string(),
            );
        }
    };
    match response.status {
        200..=299 => ProbeOutcome::Success,
        300..=399 => ProbeOutcome::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            String::from_utf8_lossy(&body)
        )),
        // Upstream keeps the body out of this message on purpose
        // (kubernetes/kubernetes#99425).
        code => ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HTTPHeader;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn action(headers: &[(&str, &str)]) -> HTTPGetAction {
        HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(8080),
            http_headers: Some(
                headers
                    .iter()
                    .map(|(name, value)| HTTPHeader {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn requests_carry_upstreams_default_headers() {
        let request =
            GetRequest::for_action(&action(&[]), &Container::default(), "10.0.0.5", "probe")
                .unwrap();
        assert_eq!(request.url.to_string(), "http://10.0.0.5:8080/healthz");
        assert_eq!(
            request.headers,
            BTreeMap::from([
                ("Accept".to_string(), vec!["*/*".to_string()]),
                (
                    "User-Agent".to_string(),
                    vec![format!("kube-probe/{KUBERNETES_VERSION}")]
                ),
            ])
        );
        assert_eq!(request.host_override, None);
    }

    #[test]
    fn action_headers_override_defaults() {
        let request = GetRequest::for_action(
            &action(&[
                ("user-agent", "custom"),
                ("accept", ""),
                ("host", "example.com"),
                ("x-multi", "1"),
                ("X-Multi", "2"),
            ]),
            &Container::default(),
            "10.0.0.5",
            "lifecycle",
        )
        .unwrap();
        assert_eq!(
            request.headers.get("User-Agent"),
            Some(&vec!["custom".to_string()])
        );
        assert_eq!(request.headers.get("Accept"), None);
        assert_eq!(
            request.headers.get("X-Multi"),
            Some(&vec!["1".to_string(), "2".to_string()])
        );
        assert_eq!(request.host_override.as_deref(), Some("example.com"));
        let lines = request_headers(&request, None, &PROBE_CLIENT).unwrap();
        let names: Vec<&str> = lines.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["user-agent", "x-multi", "x-multi", "connection"]);
    }

    #[test]
    fn scheme_and_host_defaults() {
        let mut https = action(&[]);
        https.scheme = Some("HTTPS".into());
        https.host = Some("203.0.113.9".into());
        let request =
            GetRequest::for_action(&https, &Container::default(), "10.0.0.5", "probe").unwrap();
        assert_eq!(request.url.to_string(), "https://203.0.113.9:8080/healthz");
    }

    #[test]
    fn invalid_headers_fail_like_go() {
        let request = GetRequest::for_action(
            &action(&[("bad name", "v")]),
            &Container::default(),
            "10.0.0.5",
            "probe",
        )
        .unwrap();
        assert_eq!(
            request_headers(&request, None, &PROBE_CLIENT).unwrap_err(),
            "net/http: invalid header field name \"bad name\""
        );
        let request = GetRequest::for_action(
            &action(&[("X-Bad", "line\nbreak")]),
            &Container::default(),
            "10.0.0.5",
            "probe",
        )
        .unwrap();
        assert_eq!(
            request_headers(&request, None, &PROBE_CLIENT).unwrap_err(),
            "net/http: invalid header field value for \"X-Bad\""
        );
    }
}
