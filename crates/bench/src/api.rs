//! `krust bench api`: pod creates/s over HTTPS from concurrent clients, LIST times, watch fan-out delay and server RSS, against a `krust server` child process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::Percentiles;
use crate::server::KrustServer;

pub(crate) const TOKEN: &str = "krust-bench-token";

/// What to measure.
#[derive(Clone, Debug)]
pub struct ApiBench {
    /// The krust binary that runs the server.
    pub krust: PathBuf,
    pub clients: usize,
    pub creates: usize,
    /// Pod counts whose LIST is timed (each is created before its LIST).
    pub list_sizes: Vec<usize>,
    pub watchers: usize,
    pub watch_events: usize,
    /// Data directory parent (the server's SQLite file lives here).
    pub dir: PathBuf,
}

/// A `krust server` child and a TLS connector that trusts its CA.
pub(crate) struct ServerProcess {
    pub(crate) server: KrustServer,
    connector: TlsConnector,
}

impl ServerProcess {
    fn start(bench: &ApiBench) -> anyhow::Result<ServerProcess> {
        ServerProcess::start_with(&bench.krust, &bench.dir, "krust-bench-api-", &[])
    }

    /// A server on a fresh data dir under `parent`, accepting the bench's
    /// bearer token, with `extra_args`.
    pub(crate) fn start_with(
        krust: &Path,
        parent: &Path,
        prefix: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<ServerProcess> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        let mut args = vec!["--token", TOKEN];
        args.extend_from_slice(extra_args);
        let server = KrustServer::start(krust, dir, &args)?;
        let connector = tls_connector(&server.data_dir().join("tls/ca.crt"))?;
        Ok(ServerProcess { server, connector })
    }

    pub(crate) fn rss_bytes(&self) -> u64 {
        self.server.rss_bytes()
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(self.server.address()).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .connector
            .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
            .await?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

fn tls_connector(ca: &Path) -> anyhow::Result<TlsConnector> {
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&pem)?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(crate) fn request(method: &str, path: &str, body: Option<Vec<u8>>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a well-formed request")
}

fn pod(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .unwrap_or_default()
}

/// Creates `count` pods named `{prefix}-{i}` from `clients` connections;
/// returns (elapsed, per-create latencies in µs, errors).
async fn create_pods(
    server: &ServerProcess,
    prefix: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<(Duration, Vec<u32>, u64)> {
    let prefix = prefix.to_string();
    let (elapsed, latencies, errors) = create_objects(
        server,
        "/api/v1/namespaces/default/pods",
        count,
        clients,
        Arc::new(move |i| pod(&format!("{prefix}-{i}"))),
        |_| {},
    )
    .await?;
    Ok((elapsed, latencies, errors))
}

/// POSTs `count` bodies made by `body(i)` to `path` from `clients`
/// connections, calling `sent(i)` just before each request; returns
/// (elapsed, per-create latencies in µs, errors).
pub(crate) async fn create_objects(
    server: &ServerProcess,
    path: &str,
    count: usize,
    clients: usize,
    body: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>,
    sent: impl Fn(usize) + Clone + Send + 'static,
) -> anyhow::Result<(Duration, Vec<u32>, u64)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut sender = server.connect().await?;
        let next = next.clone();
        let path = path.to_string();
        let body = body.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    break;
                }
                if sender.ready().await.is_err() {
                    errors += 1;
                    continue;
                }
                let object = body(i);
                sent(i);
                let began = Instant::now();
                let response = sender
                    .send_request(request("POST", &path, Some(object)))
                    .await;
                match response {
                    Ok(response) if response.status() == 201 => {
                        let _ = response.into_body().collect().await;
                        latencies.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Ok(response) => {
                        let _ = response.into_body().collect().await;
                        errors += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (task_latencies, task_errors) = task.await?;
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    Ok((started.elapsed(), latencies, errors))
}

#[derive(serde::Deserialize)]
struct ListShape {
    metadata: ListShapeMetadata,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct ListShapeMetadata {
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// Times one LIST of all pods, whole or in pages of `page`; returns
/// (seconds, items, response bytes).
async fn time_list(
    server: &ServerProcess,
    page: Option<usize>,
) -> anyhow::Result<(f64, usize, usize)> {
    let mut sender = server.connect().await?;
    let started = Instant::now();
    let mut items = 0;
    let mut bytes = 0;
    let mut token: Option<String> = None;
    loop {
        let mut path = "/api/v1/namespaces/default/pods".to_string();
        if let Some(limit) = page {
            path.push_str(&format!("?limit={limit}"));
            if let Some(token) = &token {
                path.push_str(&format!("&continue={token}"));
            }
        }
        sender.ready().await?;
        let response = sender.send_request(request("GET", &path, None)).await?;
        let body = response.into_body().collect().await?.to_bytes();
        bytes += body.len();
        // Checked to be well-formed JSON and counted, without building a
        // value tree (the client's own tree would dominate the timing).
        let list: ListShape = serde_json::from_slice(&body)?;
        items += list.items.len();
        token = list.metadata.continue_token.filter(|t| !t.is_empty());
        if page.is_none() || token.is_none() {
            break;
        }
    }
    Ok((started.elapsed().as_secs_f64(), items, bytes))
}

/// Opens `watchers` watches, writes `events` changes, and measures how long
/// each event takes to reach each watcher.
async fn watch_fan_out(
    server: &ServerProcess,
    watchers: usize,
    events: usize,
) -> anyhow::Result<(Vec<u32>, usize)> {
    let revision = {
        let mut sender = server.connect().await?;
        let response = sender
            .send_request(request(
                "GET",
                "/api/v1/namespaces/default/configmaps?limit=1",
                None,
            ))
            .await?;
        let list: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string()
    };
    let mut streams = Vec::new();
    for _ in 0..watchers {
        let mut sender = server.connect().await?;
        let path =
            format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={revision}");
        let response = sender.send_request(request("GET", &path, None)).await?;
        streams.push(response.into_body().into_data_stream());
    }
    let started = Instant::now();
    let receivers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut delays = Vec::new();
                let mut buffer = Vec::new();
                while delays.len() < events {
                    let Some(Ok(chunk)) = stream.next().await else {
                        break;
                    };
                    buffer.extend_from_slice(&chunk);
                    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else {
                            continue;
                        };
                        let sent: u128 = event["object"]["data"]["sent_us"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let now = started.elapsed().as_micros();
                        delays.push(now.saturating_sub(sent).min(u32::MAX as u128) as u32);
                    }
                }
                delays
            })
        })
        .collect();
    let mut sender = server.connect().await?;
    for i in 0..events {
        let sent = started.elapsed().as_micros();
        let body = serde_json::to_vec(
            &serde_json::json!({"metadata": {"name": format!("fan-{i}")}, "data": {"sent_us": sent.to_string()}}),
        )?;
        let response = sender
            .send_request(request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some(body),
            ))
            .await?;
        let _ = response.into_body().collect().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delays = Vec::new();
    let mut complete = 0;
    for receiver in receivers {
        let got = tokio::time::timeout(Duration::from_secs(60), receiver).await??;
        if got.len() == events {
            complete += 1;
        }
        delays.extend(got);
    }
    Ok((delays, complete))
}

/// Runs the API benchmarks and prints one line per measurement.
pub async fn run(bench: &ApiBench, out: &mut impl Write) -> anyhow::Result<()> {
    let server = ServerProcess::start(bench)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    writeln!(
        out,
        "bench=api measure=rss_idle rss_mb={:.1}",
        server.rss_bytes() as f64 / 1048576.0
    )?;
    let (elapsed, mut latencies, errors) =
        create_pods(&server, "create", bench.creates, bench.clients).await?;
    let percentiles = Percentiles::of(&mut latencies);
    writeln!(
        out,
        "bench=api measure=pod_creates backend=sqlite clients={} creates={} creates_per_s={:.0} p50_ms={:.2} p99_ms={:.2} errors={errors}",
        bench.clients,
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentiles.p50_ms,
        percentiles.p99_ms
    )?;
    out.flush()?;
    let mut existing = bench.creates;
    for &size in &bench.list_sizes {
        if size > existing {
            let (_, _, errors) = create_pods(
                &server,
                &format!("list{size}"),
                size - existing,
                bench.clients,
            )
            .await?;
            if errors > 0 {
                bail!("{errors} pod creates failed while preparing the {size}-pod list");
            }
            existing = size;
        }
        let rss_stored = server.rss_bytes();
        let (whole, items, json_bytes) = time_list(&server, None).await?;
        let (paged, paged_items, _) = time_list(&server, Some(500)).await?;
        writeln!(
            out,
            "bench=api measure=list pods={items} whole_s={whole:.3} paginated_500_s={paged:.3} paginated_items={paged_items} list_json_mb={:.1} rss_before_lists_mb={:.1} rss_mb={:.1}",
            json_bytes as f64 / 1048576.0,
            rss_stored as f64 / 1048576.0,
            server.rss_bytes() as f64 / 1048576.0
        )?;
        out.flush()?;
    }
    if bench.watchers > 0 {
        let (mut delays, complete) =
            watch_fan_out(&server, bench.watchers, bench.watch_events).await?;
        let percentiles = Percentiles::of(&mut delays);
        writeln!(
            out,
            "bench=api measure=watch_fan_out watchers={} events={} watchers_with_every_event={complete} p50_ms={:.2} p99_ms={:.2}",
            bench.watchers, bench.watch_events, percentiles.p50_ms, percentiles.p99_ms
        )?;
    }
    Ok(())
}
