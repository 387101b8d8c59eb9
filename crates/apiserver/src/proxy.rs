//! The subresources kube-apiserver serves by talking to a kubelet or a backend: pods/log, pods/exec, pods/attach, pods/portforward, nodes/proxy and services/proxy.

mod forward;
mod locate;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::pki::Pki;
use crate::request::{Rendering, Target};
use crate::rest::Rest;
use crate::status::ApiError;

pub use forward::{KUBELET_CLIENT_COMMON_NAME, KUBELET_CLIENT_ORGANIZATION, ProxyTlsError};
use forward::{Location, ProxyTls};
use locate::{LogOptions, StreamOptions};

/// A request for one of the proxied subresources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyRoute {
    PodLog {
        namespace: String,
        pod: String,
    },
    PodStream {
        namespace: String,
        pod: String,
        stream: StreamKind,
    },
    /// `/api/v1/nodes/ID/proxy/PATH`; ID is `[scheme:]name[:port]`.
    NodeProxy {
        id: String,
        path: String,
    },
    /// `/api/v1/namespaces/NS/services/ID/proxy/PATH`; ID is `[scheme:]name[:port]`.
    ServiceProxy {
        namespace: String,
        id: String,
        path: String,
    },
}

/// The upgraded pod subresources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Exec,
    Attach,
    PortForward,
}

fn decode_segment(segment: &str) -> String {
    percent_decode(segment)
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// Recognises the proxied subresources in a raw request path (trailing slashes matter to a proxy, so the path
/// is read as sent). Other paths, including other subresources, return None.
pub fn route(path: &str) -> Option<ProxyRoute> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // The remainder after `/proxy`: empty, or a path starting with `/`.
    let after = |count: usize| -> Option<String> {
        let prefix_len: usize = segments[..count].iter().map(|s| s.len() + 1).sum();
        let rest = &path[prefix_len.min(path.len())..];
        (rest.is_empty() || rest.starts_with('/')).then(|| rest.to_string())
    };
    match segments.as_slice() {
        ["api", "v1", "namespaces", namespace, "pods", pod, sub] => {
            let (namespace, pod) = (decode_segment(namespace), decode_segment(pod));
            let stream = match *sub {
                "log" => return Some(ProxyRoute::PodLog { namespace, pod }),
                "exec" => StreamKind::Exec,
                "attach" => StreamKind::Attach,
                "portforward" => StreamKind::PortForward,
                _ => return None,
            };
            Some(ProxyRoute::PodStream {
                namespace,
                pod,
                stream,
            })
        }
        ["api", "v1", "nodes", id, "proxy", ..] => Some(ProxyRoute::NodeProxy {
            id: decode_segment(id),
            path: after(5)?,
        }),
        [
            "api",
            "v1",
            "namespaces",
            namespace,
            "services",
            id,
            "proxy",
            ..,
        ] => Some(ProxyRoute::ServiceProxy {
            namespace: decode_segment(namespace),
            id: decode_segment(id),
            path: after(7)?,
        }),
        _ => None,
    }
}

/// Serves the proxied subresources; holds the TLS identities for kubelets and backends.
pub struct Proxy {
    tls: ProxyTls,
}

impl Proxy {
    /// Issues the kubelet client certificate from the cluster CA and prepares the TLS configurations.
    pub fn new(pki: &Pki) -> Result<Proxy, ProxyTlsError> {
        Ok(Proxy {
            tls: ProxyTls::new(pki)?,
        })
    }

    pub async fn serve(&self, rest: &Rest, route: ProxyRoute, request: Request) -> Response {
        let result = match route {
            ProxyRoute::PodLog { namespace, pod } => {
                self.pod_log(rest, &namespace, &pod, request).await
            }
            ProxyRoute::PodStream {
                namespace,
                pod,
                stream,
            } => {
                self.pod_stream(rest, &namespace, &pod, stream, request)
                    .await
            }
            ProxyRoute::NodeProxy { id, path } => self.node_proxy(rest, &id, &path, request).await,
            ProxyRoute::ServiceProxy {
                namespace,
                id,
                path,
            } => {
                self.service_proxy(rest, &namespace, &id, &path, request)
                    .await
            }
        };
        result.unwrap_or_else(IntoResponse::into_response)
    }

    async fn pod_log(
        &self,
        rest: &Rest,
        namespace: &str,
        name: &str,
        request: Request,
    ) -> Result<Response, ApiError> {
        if request.method() != Method::GET {
            return Err(method_not_allowed());
        }
        let query = locate::query_pairs(request.uri().query());
        let options = LogOptions::from_query(&query, name)?;
        let pod = get(rest, "pods", Some(namespace), name).await?;
        let container = locate::choose_container(&pod, name, &options.container)?;
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if node_name.is_empty() {
            // Upstream answers an unscheduled pod's logs with an empty stream, not an error.
            return Ok(plain_text(Body::empty()));
        }
        let kubelet = kubelet_of(rest, node_name).await?;
        let mut path = format!(
            "/containerLogs/{}/{}/{}",
            path_escape(namespace),
            path_escape(name),
            path_escape(&container)
        );
        let kubelet_query = options.kubelet_query();
        if !kubelet_query.is_empty() {
            path = format!("{path}?{kubelet_query}");
        }
        let location = Location {
            host: kubelet.host,
            port: kubelet.port,
            path_and_query: path,
            tls: Some(if options.insecure_skip_tls_verify_backend {
                self.tls.kubelet_unverified.clone()
            } else {
                self.tls.kubelet.clone()
            }),
        };
        let outgoing = axum::http::Request::get(location.path_and_query.as_str())
            .header(header::HOST, location.authority())
            .body(Body::empty())
            .map_err(|error| ApiError::internal(error.to_string()))?;
        let response = forward::send(&location, outgoing)
            .await
            .map_err(|error| unreachable_kubelet("Get", &location, &error))?;
        let status = response.status();
        if status.is_success() && status.as_u16() <= 206 {
            // The body streams as the kubelet writes it, so `follow` lasts until either side closes.
            return Ok(plain_text(Body::new(response.into_body())));
        }
        let body = read_limited(response.into_body()).await;
        Err(kubelet_refusal(status.as_u16(), &body, name))
    }

    async fn pod_stream(
        &self,
        rest: &Rest,
        namespace: &str,
        name: &str,
        stream: StreamKind,
        request: Request,
    ) -> Result<Response, ApiError> {
        if !matches!(*request.method(), Method::GET | Method::POST) {
            return Err(method_not_allowed());
        }
        let query = locate::query_pairs(request.uri().query());
        let (container, kubelet_query) = match stream {
            StreamKind::Exec | StreamKind::Attach => {
                let options = StreamOptions::from_query(&query, stream == StreamKind::Exec)?;
                (Some(options.container.clone()), options.kubelet_query())
            }
            StreamKind::PortForward => (None, locate::port_forward_query(&query)?),
        };
        let pod = get(rest, "pods", Some(namespace), name).await?;
        let container = match container {
            Some(requested) => Some(locate::choose_container(&pod, name, &requested)?),
            None => None,
        };
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let kubelet = kubelet_of(rest, node_name).await?;
        let (namespace, name) = (path_escape(namespace), path_escape(name));
        let mut path = match (stream, container) {
            (StreamKind::Exec, Some(container)) => {
                format!("/exec/{namespace}/{name}/{}", path_escape(&container))
            }
            (StreamKind::Attach, Some(container)) => {
                format!("/attach/{namespace}/{name}/{}", path_escape(&container))
            }
            _ => format!("/portForward/{namespace}/{name}"),
        };
        if !kubelet_query.is_empty() {
            path = format!("{path}?{kubelet_query}");
        }
        let location = Location {
            host: kubelet.host,
            port: kubelet.port,
            path_and_query: path,
            tls: Some(self.tls.kubelet.clone()),
        };
        if !forward::is_upgrade_request(&request) {
            return Err(ApiError::bad_request("Upgrade request required"));
        }
        forward::splice_upgrade(&location, request)
            .await
            .map_err(|error| ApiError {
                code: 500,
                reason: "",
                message: format!("error dialing backend: {error}"),
                details: None,
            })
    }

    async fn node_proxy(
        &self,
        rest: &Rest,
        id: &str,
        path: &str,
        request: Request,
    ) -> Result<Response, ApiError> {
        let Some((scheme, name, port)) = locate::split_scheme_name_port(id) else {
            return Err(ApiError::bad_request(format!(
                "invalid node request {id:?}"
            )));
        };
        let kubelet = kubelet_of(rest, name).await?;
        let (port, tls) = if port.is_empty() || port == kubelet.port.to_string() {
            (kubelet.port, Some(self.tls.kubelet.clone()))
        } else {
            // Any other port of the node: only hosts that are not loopback or link-local, and without the
            // kubelet identity, which belongs to the kubelet alone.
            let port: u16 = port
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid node request {id:?}")))?;
            ensure_proxyable(&kubelet.host, port).await?;
            let tls = (scheme == "https").then(|| self.tls.backend.clone());
            (port, tls)
        };
        let location = Location {
            host: kubelet.host,
            port,
            path_and_query: String::new(),
            tls,
        };
        proxy_to(location, path, request).await
    }

    async fn service_proxy(
        &self,
        rest: &Rest,
        namespace: &str,
        id: &str,
        path: &str,
        request: Request,
    ) -> Result<Response, ApiError> {
        let Some((scheme, name, port)) = locate::split_scheme_name_port(id) else {
            return Err(ApiError::bad_request(format!(
                "invalid service request {id:?}"
            )));
        };
        // A port number is translated to the name of the Service port declaring it; Endpoints list ports by
        // name.
        let port_name = match port.parse::<i64>() {
            Ok(number) => {
                let service = get(rest, "services", Some(namespace), name).await?;
                let declared = service["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|declared| declared["port"].as_i64() == Some(number));
                match declared {
                    Some(declared) => declared["name"].as_str().unwrap_or_default().to_string(),
                    None => {
                        return Err(ApiError::service_unavailable(format!(
                            "no service port {number} found for service {name:?}"
                        )));
                    }
                }
            }
            Err(_) => port.to_string(),
        };
        let endpoints = get(rest, "endpoints", Some(namespace), name).await?;
        if endpoints["subsets"]
            .as_array()
            .is_none_or(|subsets| subsets.is_empty())
        {
            return Err(ApiError::service_unavailable(format!(
                "no endpoints available for service {name:?}"
            )));
        }
        let mut chosen = None;
        for candidate in locate::endpoint_candidates(&endpoints, &port_name) {
            if endpoint_pod_holds_address(rest, namespace, &candidate).await {
                chosen = Some(candidate);
                break;
            }
        }
        let Some(endpoint) = chosen else {
            return Err(ApiError::service_unavailable(format!(
                "no endpoints available for service {id:?}"
            )));
        };
        let location = Location {
            host: endpoint.ip,
            port: endpoint.port,
            path_and_query: String::new(),
            tls: (scheme == "https").then(|| self.tls.backend.clone()),
        };
        proxy_to(location, path, request).await
    }
}

/// Proxies a nodes/proxy or services/proxy request to `location` plus the path after `/proxy`.
async fn proxy_to(
    mut location: Location,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let query = request.uri().query().map(str::to_string);
    if path.is_empty() {
        // As upstream: a proxy URL without a path is redirected to the same URL with `/`, so relative links
        // in what the backend serves resolve beneath the proxy.
        let mut target = format!("{}/", request.uri().path());
        if let Some(query) = &query {
            target = format!("{target}?{query}");
        }
        return Ok(Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, target)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()));
    }
    location.path_and_query = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let result = if forward::is_upgrade_request(&request) {
        forward::splice_upgrade(&location, request).await
    } else {
        forward::forward(&location, request).await
    };
    result.map_err(|error| {
        ApiError::service_unavailable(format!("error trying to reach service: {error}"))
    })
}

/// Upstream's isValidAddress: an endpoint address is proxied to only when it names a pod in the Service's
/// namespace that still holds that IP.
async fn endpoint_pod_holds_address(
    rest: &Rest,
    namespace: &str,
    candidate: &locate::EndpointCandidate,
) -> bool {
    let Some((pod_namespace, pod_name)) = &candidate.pod else {
        tracing::debug!(ip = %candidate.ip, "endpoint address has no target ref, skipping");
        return false;
    };
    if pod_namespace != namespace {
        return false;
    }
    match get(rest, "pods", Some(namespace), pod_name).await {
        Ok(pod) => locate::pod_has_ip(&pod, &candidate.ip),
        Err(_) => false,
    }
}

/// Refuses a node port proxy to a host that resolves to loopback or link-local addresses.
async fn ensure_proxyable(host: &str, port: u16) -> Result<(), ApiError> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    for address in addresses {
        if !locate::is_proxyable_ip(address.ip()) {
            return Err(ApiError::bad_request("address not allowed"));
        }
    }
    Ok(())
}

async fn get(
    rest: &Rest,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let resource = api::resources::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("the {plural} resource is not served")))?;
    let target = Target {
        resource,
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
        subresource: None,
    };
    Ok(rest.get(&target, Rendering::Object).await?.body)
}

async fn kubelet_of(rest: &Rest, node_name: &str) -> Result<locate::KubeletEndpoint, ApiError> {
    let node = get(rest, "nodes", None, node_name).await?;
    locate::kubelet_endpoint(&node)
}

/// Escapes a path segment the way Go's url.URL does when it renders a path.
fn path_escape(segment: &str) -> String {
    let mut escaped = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b':'
            | b'@'
            | b'&'
            | b'='
            | b'+'
            | b'$'
            | b','
            | b';'
            | b'!'
            | b'*'
            | b'\''
            | b'('
            | b')' => escaped.push(byte as char),
            other => escaped.push_str(&format!("%{other:02X}")),
        }
    }
    escaped
}

fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

fn plain_text(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A kubelet that cannot be reached: like a Go client error, `Get "URL": why`, as a reasonless 500.
fn unreachable_kubelet(method: &str, location: &Location, error: &str) -> ApiError {
    ApiError {
        code: 500,
        reason: "",
        message: format!("{method} {:?}: {error}", location.url()),
        details: None,
    }
}

/// How much of a kubelet's error body is quoted back (upstream's response checker reads at most this much).
const MAX_KUBELET_ERROR_BYTES: usize = 4 * 1024;

async fn read_limited(body: hyper::body::Incoming) -> String {
    let mut stream = Body::new(body).into_data_stream();
    let mut kept = Vec::new();
    while let Some(Ok(chunk)) = futures::StreamExt::next(&mut stream).await {
        kept.extend_from_slice(&chunk);
        if kept.len() >= MAX_KUBELET_ERROR_BYTES {
            kept.truncate(MAX_KUBELET_ERROR_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// A kubelet's non-2xx answer to a log request, as upstream's generic response checker turns it into a Status.
fn kubelet_refusal(code: u16, body: &str, pod_name: &str) -> ApiError {
    match code {
        400 => ApiError::bad_request(body),
        500 => ApiError::internal(body),
        _ => {
            let (reason, message) = match code {
                401 => (
                    "Unauthorized",
                    "the server has asked for the client to provide credentials".to_string(),
                ),
                403 => ("Forbidden", body.to_string()),
                404 => (
                    "NotFound",
                    "the server could not find the requested resource".to_string(),
                ),
                503 => (
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request".to_string(),
                ),
                _ => (
                    "",
                    format!(
                        "the server responded with the status code {code} but did not return more information"
                    ),
                ),
            };
            ApiError {
                code,
                reason,
                message: format!("{message} ( pods/log {pod_name})"),
                details: Some(serde_json::json!({
                    "name": pod_name,
                    "kind": "pods/log",
                    "causes": [{"reason": "UnexpectedServerResponse", "message": body}],
                })),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_subresources_are_recognised() {
        assert_eq!(
            route("/api/v1/namespaces/default/pods/web/log"),
            Some(ProxyRoute::PodLog {
                namespace: "default".into(),
                pod: "web".into()
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/default/pods/web/portforward"),
            Some(ProxyRoute::PodStream {
                namespace: "default".into(),
                pod: "web".into(),
                stream: StreamKind::PortForward
            })
        );
        assert_eq!(route("/api/v1/namespaces/default/pods/web/status"), None);
        assert_eq!(
            route("/api/v1/nodes/n1:10255/proxy/stats/summary/"),
            Some(ProxyRoute::NodeProxy {
                id: "n1:10255".into(),
                path: "/stats/summary/".into()
            })
        );
        assert_eq!(
            route("/api/v1/nodes/n1/proxy"),
            Some(ProxyRoute::NodeProxy {
                id: "n1".into(),
                path: String::new()
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/ns/services/https:web:443/proxy/"),
            Some(ProxyRoute::ServiceProxy {
                namespace: "ns".into(),
                id: "https:web:443".into(),
                path: "/".into()
            })
        );
        assert_eq!(route("/api/v1/nodes/n1/proxyx"), None);
        assert_eq!(route("/api/v1/nodes/n1"), None);
    }

    #[test]
    fn kubelet_paths_escape_like_go() {
        assert_eq!(path_escape("web-1"), "web-1");
        assert_eq!(path_escape("a b/c?"), "a%20b%2Fc%3F");
    }

    #[test]
    fn kubelet_errors_become_statuses() {
        let refused = kubelet_refusal(400, "container \"app\" is waiting to start", "web");
        assert_eq!((refused.code, refused.reason), (400, "BadRequest"));
        assert_eq!(refused.message, "container \"app\" is waiting to start");
        let missing = kubelet_refusal(404, "no such pod", "web");
        assert_eq!(
            missing.message,
            "the server could not find the requested resource ( pods/log web)"
        );
    }
}
