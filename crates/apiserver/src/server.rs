//! The HTTPS server: TLS with optional client certificates, authentication, routing to discovery and the REST verbs, and first-start bootstrap.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use storage::DynStorage;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{self, TokenAuthenticator, UserInfo};
use crate::discovery;
use crate::openapi::V2Encoding;
use crate::pki::{self, Pki};
use crate::request;
use crate::rest::{self, Reply, Rest};
use crate::status::ApiError;

/// What `krust server` was asked to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Extra kubeconfig path besides `DATA_DIR/admin.kubeconfig`.
    pub write_kubeconfig: Option<PathBuf>,
    pub tokens: Vec<String>,
    /// Services' virtual IP range; its first address is the `kubernetes` Service's.
    pub service_cidr: crate::allocator::ServiceCidr,
    /// Addresses the serving certificate must name besides the defaults.
    pub node_ips: Vec<IpAddr>,
}

/// State every request handler shares.
struct AppState {
    rest: Rest,
    tokens: TokenAuthenticator,
    /// pods/log, exec, attach, portforward, nodes/proxy and services/proxy: requests forwarded to kubelets
    /// and backends.
    proxy: crate::proxy::Proxy,
    /// Signs joining nodes' certificates.
    pki: Arc<Pki>,
}

/// The identity a TLS connection's client certificate proved, if any.
#[derive(Clone, Debug)]
struct ConnectionIdentity(Option<UserInfo>);

/// A running API server.
pub struct RunningServer {
    pub address: SocketAddr,
    pub kubeconfig: PathBuf,
    pki: Arc<Pki>,
    router: Router,
    serving: tokio::task::JoinHandle<()>,
}

/// The API as a tower service inside this process, for the components that
/// run beside the server (scheduler, controllers): requests take the same
/// path as over HTTPS, from authentication on, without TLS or sockets.
#[derive(Clone)]
pub struct LocalService {
    router: Router,
    identity: ConnectionIdentity,
}

impl<B> tower::Service<Request<B>> for LocalService
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.identity.clone());
        tower::Service::call(&mut self.router, request)
    }
}

impl RunningServer {
    /// The API in-process, acting as `user` in `groups`.
    pub fn local_service(&self, user: &str, groups: &[&str]) -> LocalService {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        groups.push(auth::AUTHENTICATED_GROUP.to_string());
        LocalService {
            router: self.router.clone(),
            identity: ConnectionIdentity(Some(UserInfo {
                name: user.to_string(),
                groups,
            })),
        }
    }

    /// The credentials of node `request.node_name`, as a joining agent
    /// gets them from `/v1-krust/node-credentials` (for an agent inside this
    /// process).
    pub fn node_credentials(
        &self,
        request: &crate::join::NodeCredentialsRequest,
    ) -> Result<crate::join::NodeCredentials, crate::status::ApiError> {
        crate::join::issue_node_credentials(&self.pki, request)
    }

    /// Serves until the process ends or the task fails.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.serving).await?;
        Ok(())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Bootstraps the cluster's built-in objects, writes kubeconfigs and serves
/// HTTPS on `listener`.
pub async fn start(
    config: ServerConfig,
    storage: DynStorage,
    listener: TcpListener,
) -> anyhow::Result<RunningServer> {
    let address = listener.local_addr()?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let kubernetes_service_ip = IpAddr::V4(config.service_cidr.first());
    let sans = pki::default_sans(&hostname, &config.node_ips, kubernetes_service_ip);
    let pki_dir = config.data_dir.join("tls");
    let pki = tokio::task::spawn_blocking(move || Pki::load_or_create(&pki_dir, &sans)).await??;
    let tls = crate::tls::server_config(&pki)?;
    let pki = Arc::new(pki);

    let host = match address.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let server_url = format!("https://{host}:{}", address.port());
    let (cert, key) = pki.issue_client_certificate("admin", &["system:masters"])?;
    let kubeconfig =
        crate::kubeconfig::render_kubeconfig(&server_url, pki.ca_certificate_pem(), &cert, &key);
    let admin_kubeconfig = config.data_dir.join("admin.kubeconfig");
    crate::kubeconfig::write_kubeconfig(&admin_kubeconfig, &kubeconfig)?;
    if let Some(extra) = &config.write_kubeconfig {
        crate::kubeconfig::write_kubeconfig(extra, &kubeconfig)?;
    }

    let cache = crate::cache::WatchCache::new(storage.clone());
    tokio::spawn(cache.clone().run());
    let state = Arc::new(AppState {
        rest: Rest {
            storage,
            cache,
            service_cidr: config.service_cidr,
        },
        tokens: TokenAuthenticator::new(config.tokens.clone()),
        proxy: crate::proxy::Proxy::new(&pki)?,
        pki: pki.clone(),
    });
    bootstrap(&state.rest, kubernetes_service_ip, address.port()).await?;
    let router = router(state);
    let local_router = router.clone();
    let acceptor = TlsAcceptor::from(tls);
    let serving = tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let identity = ConnectionIdentity(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| auth::user_from_client_certificate(leaf)),
                );
                let service =
                    router.map_request(move |mut request: Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(identity.clone());
                        request
                    });
                let service = hyper_util::service::TowerToHyperService::new(service);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(RunningServer {
        address,
        kubeconfig: admin_kubeconfig,
        pki,
        router: local_router,
        serving,
    })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Lets a request through with a proven identity, or answers 401.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if auth::is_anonymous_path(path) || path == crate::join::CACERTS_PATH {
        return next.run(request).await;
    }
    let from_certificate = request
        .extensions()
        .get::<ConnectionIdentity>()
        .and_then(|identity| identity.0.clone());
    let user = from_certificate.or_else(|| {
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| state.tokens.authenticate(value))
    });
    match user {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// `POST /v1-krust/node-credentials`: a joining node's certificates.
async fn node_credentials(state: &AppState, method: Method, request: Request) -> Response {
    if method != Method::POST {
        return ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
        .into_response();
    }
    let allowed = request
        .extensions()
        .get::<UserInfo>()
        .is_some_and(crate::join::may_join);
    if !allowed {
        return ApiError::forbidden("only a server token's holder may join nodes").into_response();
    }
    let Some(body) = read_body(request.into_body()).await else {
        return ApiError::too_large("the request body is too large").into_response();
    };
    let wanted: crate::join::NodeCredentialsRequest = match serde_json::from_slice(&body) {
        Ok(wanted) => wanted,
        Err(error) => {
            return ApiError::bad_request(format!("invalid node credentials request: {error}"))
                .into_response();
        }
    };
    match crate::join::issue_node_credentials(&state.pki, &wanted) {
        Ok(credentials) => json_response(
            200,
            &serde_json::to_value(credentials).unwrap_or_default(),
            "application/json",
        ),
        Err(error) => error.into_response(),
    }
}

fn json_response(code: u16, body: &Value, content_type: &str) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let body = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body,
    )
        .into_response()
}

fn reply(mut result: Result<Reply, ApiError>) -> Response {
    let warnings = result
        .as_mut()
        .map(|reply| std::mem::take(&mut reply.warnings))
        .unwrap_or_default();
    let mut response = match result {
        Ok(Reply {
            code,
            raw: Some(raw),
            ..
        }) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            (
                code,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(raw.into_chunks()),
            )
                .into_response()
        }
        Ok(reply) => json_response(reply.code, &reply.body, "application/json"),
        Err(error) => error.into_response(),
    };
    for text in warnings {
        // As upstream: code 299, no agent, the text quoted like Go's strconv.Quote.
        let value = format!("299 - {}", api::validation::go_quote(&text));
        if let Ok(value) = header::HeaderValue::from_bytes(value.as_bytes()) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let uri = request.uri().clone();
    let path = uri.path().trim_end_matches('/').to_string();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match path.as_str() {
        "/healthz" | "/livez" => return (StatusCode::OK, "ok").into_response(),
        "/readyz" => {
            return match state.rest.storage.current_revision().await {
                Ok(_) if !state.rest.cache.is_ready() => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[-]watch cache is still loading",
                )
                    .into_response(),
                Ok(_) => (StatusCode::OK, "ok").into_response(),
                Err(error) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("[-]storage failed: {error}"),
                )
                    .into_response(),
            };
        }
        "/version" => return json_response(200, &discovery::version(), "application/json"),
        crate::join::CACERTS_PATH if method == Method::GET => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-pem-file")],
                state.pki.ca_certificate_pem().to_string(),
            )
                .into_response();
        }
        crate::join::NODE_CREDENTIALS_PATH => {
            return node_credentials(&state, method, request).await;
        }
        _ => {}
    }
    // Proxied subresources stream their bodies and may upgrade the connection, so they are routed before
    // the body is read.
    if let Some(route) = crate::proxy::route(uri.path()) {
        return state.proxy.serve(&state.rest, route, request).await;
    }
    if method == Method::GET
        && let Some(response) = discovery_response(&path, &accept)
    {
        return response;
    }
    let target = match request::parse_target(&path) {
        Ok(Some(target)) => target,
        Ok(None) => {
            return ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: None,
            }
            .into_response();
        }
        Err(error) => return error.into_response(),
    };
    let query = request::query(uri.query());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match read_body(request.into_body()).await {
        Some(body) => body,
        None => return ApiError::too_large("the request body is too large").into_response(),
    };
    // Create and update bodies may come as YAML or Kubernetes protobuf
    // (client-go's typed clients); the handlers read JSON. Patches carry
    // their own media types.
    let body = if matches!(method, Method::POST | Method::PUT) {
        match crate::body::to_json(&content_type, body) {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        }
    } else {
        body
    };
    if target.subresource.as_deref() == Some("scale") {
        let rest = &state.rest;
        return match method {
            Method::GET => reply(rest.get_scale(&target).await),
            Method::PUT => reply(rest.update_scale(&target, None, &body, &query).await),
            Method::PATCH => reply(
                rest.update_scale(&target, Some(&content_type), &body, &query)
                    .await,
            ),
            _ => ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )
            .into_response(),
        };
    }
    if target.subresource.as_deref() == Some("binding") {
        return match method {
            Method::POST => reply(state.rest.bind(&target, &body).await),
            _ => ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )
            .into_response(),
        };
    }
    if target.subresource.as_deref() == Some("eviction") {
        return match method {
            Method::POST => reply(state.rest.evict(&target, &body, &query).await),
            _ => ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )
            .into_response(),
        };
    }
    if let Some(sub) = target.subresource.as_deref()
        && !matches!(sub, "status" | "finalize")
    {
        return ApiError {
            code: 501,
            reason: "NotImplemented",
            message: format!("the {sub} subresource is not served by this krust version yet"),
            details: None,
        }
        .into_response();
    }
    let rest = &state.rest;
    match (method, target.name.is_some()) {
        (Method::GET, true)
            if !matches!(query.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            match request::rendering(&accept) {
                Ok(rendering) => reply(rest.get(&target, rendering).await),
                Err(error) => error.into_response(),
            }
        }
        (Method::GET, _) => {
            let rendering = match request::rendering(&accept) {
                Ok(rendering) => rendering,
                Err(error) => return error.into_response(),
            };
            let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
            if watching {
                match crate::watch::watch(rest, &target, &query, rendering).await {
                    Ok(stream) => Response::builder()
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, "application/json")
                        .header(header::TRANSFER_ENCODING, "chunked")
                        .body(Body::from_stream(stream))
                        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
                    Err(error) => error.into_response(),
                }
            } else {
                reply(rest.list(&target, &query, rendering).await)
            }
        }
        (Method::POST, false) => reply(rest.create(&target, &body, &query).await),
        (Method::PUT, true) => reply(rest.update(&target, &body, &query).await),
        (Method::PATCH, true) => reply(rest.patch(&target, &content_type, &body, &query).await),
        (Method::DELETE, true) => reply(rest.delete(&target, &body, &query).await),
        (Method::DELETE, false) => reply(rest.delete_collection(&target, &body, &query).await),
        (method, _) => ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))
        .into_response(),
    }
}

/// Reads a request body of at most [`rest::MAX_BODY_BYTES`]. A larger one
/// is read to its end (up to a hard cap) and dropped, so the client sees the
/// 413 instead of a connection torn down mid-upload.
async fn read_body(body: Body) -> Option<bytes::Bytes> {
    const DRAIN_CAP: usize = 64 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        let Ok(chunk) = chunk else { return None };
        seen += chunk.len();
        if seen <= rest::MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_CAP {
            return None;
        }
    }
    (seen <= rest::MAX_BODY_BYTES).then(|| bytes::Bytes::from(kept))
}

/// Discovery documents, or None when `path` is not a discovery path.
fn discovery_response(path: &str, accept: &str) -> Option<Response> {
    let aggregated = discovery::aggregated_version(accept);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let plain = |document: Option<Value>| {
        Some(match document {
            Some(document) => json_response(200, &document, "application/json"),
            None => ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: None,
            }
            .into_response(),
        })
    };
    // OpenAPI documents are rendered once and served from their bytes.
    let openapi = |document: Option<bytes::Bytes>| match document {
        Some(bytes) => Some(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        None => plain(None),
    };
    match segments.as_slice() {
        ["api"] | ["apis"] => {
            let core = segments[0] == "api";
            match aggregated {
                Some(version) => {
                    let content_type = if version == "v2" {
                        discovery::AGGREGATED_V2
                    } else {
                        discovery::AGGREGATED_V2BETA1
                    };
                    Some(json_response(
                        200,
                        &discovery::aggregated(core, version),
                        content_type,
                    ))
                }
                None if core => plain(Some(discovery::core_versions())),
                None => plain(Some(discovery::group_list())),
            }
        }
        ["openapi", "v2"] => match crate::openapi::negotiate_v2(accept) {
            Some(V2Encoding::Json) => openapi(Some(crate::openapi::swagger_json())),
            Some(V2Encoding::Protobuf) => Some(
                (
                    [(header::CONTENT_TYPE, crate::openapi::V2_PROTOBUF)],
                    crate::openapi::swagger_protobuf(),
                )
                    .into_response(),
            ),
            None => Some(
                ApiError::not_acceptable(format!(
                    "only application/json and {} are served at /openapi/v2",
                    crate::openapi::V2_PROTOBUF
                ))
                .into_response(),
            ),
        },
        // Where kubectl looks for the protobuf document when /openapi/v2
        // is refused, as servers before 1.10 served it.
        ["swagger-2.0.0.pb-v1"] => Some(
            (
                [(header::CONTENT_TYPE, crate::openapi::V2_PROTOBUF)],
                crate::openapi::swagger_protobuf(),
            )
                .into_response(),
        ),
        ["openapi", "v3"] => openapi(Some(crate::openapi::index_json())),
        ["openapi", "v3", "api", version] => openapi(crate::openapi::document_json("", version)),
        ["openapi", "v3", "apis", group, version] => {
            openapi(crate::openapi::document_json(group, version))
        }
        ["api", version] => plain(discovery::resource_list("", version)),
        ["apis", group] => plain(discovery::group(group)),
        ["apis", group, version] => plain(discovery::resource_list(group, version)),
        _ => None,
    }
}

/// Creates what every cluster has from its first start: the four system
/// namespaces and the `kubernetes` Service with its Endpoints.
async fn bootstrap(rest: &Rest, service_ip: IpAddr, port: u16) -> anyhow::Result<()> {
    let no_query: std::collections::HashMap<String, String> = Default::default();
    let no_query = &no_query;
    let create = |path: &'static str, object: Value| async move {
        let target = request::parse_target(path)
            .ok()
            .flatten()
            .expect("bootstrap paths are resource paths");
        let existing = request::Target {
            name: object["metadata"]["name"].as_str().map(str::to_string),
            ..target.clone()
        };
        if rest
            .get(&existing, request::Rendering::Object)
            .await
            .is_ok()
        {
            return Ok(());
        }
        match rest
            .create(
                &target,
                &serde_json::to_vec(&object).unwrap_or_default(),
                no_query,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.reason == "AlreadyExists" => Ok(()),
            Err(error) => Err(anyhow::anyhow!("bootstrap of {path}: {}", error.message)),
        }
    };
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(
            "/api/v1/namespaces",
            json!({"metadata": {"name": namespace}}),
        )
        .await?;
    }
    create(
        "/api/v1/namespaces/default/services",
        json!({
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": service_ip.to_string(),
                "clusterIPs": [service_ip.to_string()],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "ipFamilies": [if service_ip.is_ipv4() { "IPv4" } else { "IPv6" }],
                "ipFamilyPolicy": "SingleStack",
            },
        }),
    )
    .await?;
    for (name, value, description) in crate::admission::SYSTEM_PRIORITY_CLASSES {
        create(
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            json!({"metadata": {"name": name}, "value": value, "description": description}),
        )
        .await?;
    }
    create(
        "/api/v1/namespaces/default/endpoints",
        json!({
            "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        }),
    )
    .await?;
    Ok(())
}
