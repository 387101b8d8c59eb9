//! `krust bench scheduler`, end to end in the shape of upstream's scheduler_perf: a `krust server` child schedules pods created over HTTPS onto `krust sim` nodes; throughput runs from the first create to the last binding seen by a watch.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use http_body_util::BodyExt;

use crate::Percentiles;
use crate::api::{ServerProcess, create_objects, request};

/// The workloads, named as upstream's scheduler_perf names them.
pub const CASES: &[&str] = &[
    "SchedulingBasic",
    "SchedulingPodAntiAffinity",
    "SchedulingTopologySpreading",
];

/// Zones the simulated nodes spread over (for the topology-spread case).
const ZONES: usize = 10;

#[derive(Clone, Debug)]
pub struct SchedulerBench {
    pub krust: PathBuf,
    pub cases: Vec<String>,
    pub nodes: usize,
    /// Pod counts for SchedulingBasic; the other cases run the first one,
    /// capped at the node count (one anti-affine pod per node at most).
    pub pods: Vec<usize>,
    pub clients: usize,
    pub dir: PathBuf,
}

/// The pod a case creates, as scheduler_perf's templates make it.
pub fn case_pod(case: &str, name: &str) -> serde_json::Value {
    let mut pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"},
                          "limits": {"cpu": "100m", "memory": "500Mi"}}}]}
    });
    match case {
        "SchedulingPodAntiAffinity" => {
            pod["metadata"]["labels"]["color"] = "green".into();
            pod["spec"]["affinity"] = serde_json::json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"color": "green"}},
                    "topologyKey": "kubernetes.io/hostname"
                }]
            }});
        }
        "SchedulingTopologySpreading" => {
            pod["metadata"]["labels"]["color"] = "blue".into();
            pod["spec"]["topologySpreadConstraints"] = serde_json::json!([{
                "maxSkew": 5,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"color": "blue"}}
            }]);
        }
        _ => {}
    }
    pod
}

/// A `krust sim` child process, killed on drop.
struct SimProcess(Child);

impl SimProcess {
    fn rss_bytes(&self) -> u64 {
        crate::server::rss_of(self.0.id())
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls until `count` Nodes are Ready (a LIST with limit=1 tells the total).
async fn wait_for_nodes(server: &ServerProcess, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut sender = server.connect().await?;
        let response = sender
            .send_request(request("GET", "/api/v1/nodes?limit=1", None))
            .await?;
        let list: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
        let seen = list["items"].as_array().map_or(0, Vec::len) as u64
            + list["metadata"]["remainingItemCount"].as_u64().unwrap_or(0);
        if seen as usize >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {seen} of {count} simulated nodes registered in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(serde::Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    object: WatchedPod,
}

#[derive(serde::Deserialize)]
struct WatchedPod {
    metadata: WatchedMeta,
    #[serde(default)]
    spec: Option<WatchedSpec>,
}

#[derive(serde::Deserialize)]
struct WatchedMeta {
    #[serde(default)]
    name: String,
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
}

#[derive(serde::Deserialize)]
struct WatchedSpec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

/// Counts pods `pod-0..pods` as bound when a watch event first shows their
/// nodeName, recording when; a watch the server cuts off (a slow reader
/// gets a 429 ERROR event) is resumed from the last resourceVersion seen.
async fn watch_bindings(
    server: &ServerProcess,
    mut revision: String,
    pods: usize,
    origin: Instant,
    bound_at: &[AtomicU64],
) -> anyhow::Result<usize> {
    let mut bound = 0usize;
    let mut resumed = 0usize;
    while bound < pods {
        let mut sender = server.connect().await?;
        let path = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={revision}");
        let response = sender.send_request(request("GET", &path, None)).await?;
        if !response.status().is_success() {
            bail!("watch from {revision} answered {}", response.status());
        }
        let mut stream = response.into_body().into_data_stream();
        let mut buffer = Vec::new();
        'events: while bound < pods {
            let Some(Ok(chunk)) = stream.next().await else {
                break;
            };
            buffer.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = buffer[start..].iter().position(|b| *b == b'\n') {
                let line = &buffer[start..start + end];
                start += end + 1;
                let Ok(event) = serde_json::from_slice::<WatchLine>(line) else {
                    continue;
                };
                if event.kind == "ERROR" {
                    break 'events;
                }
                revision = event.object.metadata.resource_version.clone();
                let has_node = event
                    .object
                    .spec
                    .and_then(|s| s.node_name)
                    .is_some_and(|n| !n.is_empty());
                let index = event
                    .object
                    .metadata
                    .name
                    .rsplit('-')
                    .next()
                    .and_then(|i| i.parse::<usize>().ok());
                if let (true, Some(index)) = (has_node, index)
                    && index < pods
                    && bound_at[index].load(Ordering::Relaxed) == 0
                {
                    let at = origin.elapsed().as_micros().max(1) as u64;
                    bound_at[index].store(at, Ordering::Relaxed);
                    bound += 1;
                }
            }
            buffer.drain(..start);
        }
        if bound < pods {
            resumed += 1;
            if resumed > 100 {
                bail!("the watch was cut off {resumed} times; {bound} of {pods} pods seen bound");
            }
        }
    }
    Ok(bound)
}

/// One end-to-end measurement: fresh server and sim, `pods` pods of `case`.
async fn measure(
    bench: &SchedulerBench,
    case: &str,
    pods: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let server = Arc::new(ServerProcess::start_with(
        &bench.krust,
        &bench.dir,
        "krust-bench-scheduler-",
        &[],
    )?);
    let kubeconfig = server.server.kubeconfig();
    let sim = SimProcess(
        Command::new(&bench.krust)
            .args(["sim", "--nodes", &bench.nodes.to_string()])
            .args(["--cpu", "4", "--memory", "32Gi", "--pods", "110"])
            .args(["--zones", &ZONES.to_string()])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting krust sim")?,
    );
    wait_for_nodes(&server, bench.nodes).await?;

    // Watch from now, so every binding is seen.
    let revision = {
        let mut sender = server.connect().await?;
        let response = sender
            .send_request(request(
                "GET",
                "/api/v1/namespaces/default/pods?limit=1",
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

    let origin = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..pods).map(|_| AtomicU64::new(0)).collect());
    let bound_at: Arc<Vec<AtomicU64>> = Arc::new((0..pods).map(|_| AtomicU64::new(0)).collect());
    let watcher = {
        let bound_at = bound_at.clone();
        let server = server.clone();
        tokio::spawn(
            async move { watch_bindings(&server, revision, pods, origin, &bound_at).await },
        )
    };

    let case_name = case.to_string();
    let sent = {
        let sent_at = sent_at.clone();
        move |i: usize| {
            sent_at[i].store(
                origin.elapsed().as_micros().max(1) as u64,
                Ordering::Relaxed,
            )
        }
    };
    let (_, _, errors) = create_objects(
        &server,
        "/api/v1/namespaces/default/pods",
        pods,
        bench.clients,
        Arc::new(move |i| {
            serde_json::to_vec(&case_pod(&case_name, &format!("pod-{i}"))).unwrap_or_default()
        }),
        sent,
    )
    .await?;
    let bound = tokio::time::timeout(Duration::from_secs(600), watcher)
        .await
        .context("pods still unbound after 600 s")???;
    let first_create = sent_at
        .iter()
        .map(|t| t.load(Ordering::Relaxed))
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(0);
    let last_bind = bound_at
        .iter()
        .map(|t| t.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let mut latencies: Vec<u32> = sent_at
        .iter()
        .zip(bound_at.iter())
        .filter_map(|(sent, bound)| {
            let (sent, bound) = (sent.load(Ordering::Relaxed), bound.load(Ordering::Relaxed));
            (bound > 0).then(|| bound.saturating_sub(sent).min(u32::MAX as u64) as u32)
        })
        .collect();
    let percentiles = Percentiles::of(&mut latencies);
    let seconds = (last_bind.saturating_sub(first_create)) as f64 / 1e6;
    writeln!(
        out,
        "bench=scheduler mode=e2e case={case} nodes={} pods={pods} bound={bound} pods_per_s={:.0} p50_ms={:.1} p99_ms={:.1} create_errors={errors} server_rss_mb={:.0} sim_rss_mb={:.0}",
        bench.nodes,
        bound as f64 / seconds.max(1e-9),
        percentiles.p50_ms,
        percentiles.p99_ms,
        server.rss_bytes() as f64 / 1048576.0,
        sim.rss_bytes() as f64 / 1048576.0,
    )?;
    out.flush()?;
    Ok(())
}

/// Runs every case on the scheduler core alone (in this process, one
/// thread: schedule and assume, no API) and prints one line each.
pub fn run_core(bench: &SchedulerBench, out: &mut impl Write) -> anyhow::Result<()> {
    for case in &bench.cases {
        for pods in case_sizes(bench, case)? {
            let figures = match case.as_str() {
                "SchedulingPodAntiAffinity" => {
                    scheduler::perf::scheduling_pod_anti_affinity(bench.nodes, pods)
                }
                "SchedulingTopologySpreading" => {
                    scheduler::perf::scheduling_topology_spreading(bench.nodes, pods)
                }
                _ => scheduler::perf::scheduling_basic(bench.nodes, pods),
            };
            writeln!(
                out,
                "bench=scheduler mode=core case={case} nodes={} pods={} scheduled={} unschedulable={} pods_per_s={:.0} p50_ms={:.3} p99_ms={:.3}",
                figures.nodes,
                figures.pods,
                figures.scheduled,
                figures.unschedulable,
                figures.pods_per_s,
                figures.p50_ms,
                figures.p99_ms
            )?;
            out.flush()?;
        }
    }
    Ok(())
}

/// The pod counts a case runs: SchedulingBasic every size, the others the
/// first, at most one per node.
fn case_sizes(bench: &SchedulerBench, case: &str) -> anyhow::Result<Vec<usize>> {
    if !CASES.contains(&case) {
        bail!("unknown case {case} (one of {})", CASES.join(", "));
    }
    Ok(if case == "SchedulingBasic" {
        bench.pods.clone()
    } else {
        bench
            .pods
            .iter()
            .take(1)
            .map(|p| (*p).min(bench.nodes))
            .collect()
    })
}

/// Runs every case end to end and prints one line each.
pub async fn run(bench: &SchedulerBench, out: &mut impl Write) -> anyhow::Result<()> {
    for case in &bench.cases {
        for pods in case_sizes(bench, case)? {
            measure(bench, case, pods, out).await?;
        }
    }
    Ok(())
}
