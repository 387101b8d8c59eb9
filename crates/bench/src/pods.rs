//! `krust bench pods`: time from `krust server` start to a Ready node; pod startup latency (create → Running and Ready, seen by watch) for single pods and a burst on one `krust agent`; the same number of raw CRI RunPodSandbox+CreateContainer+StartContainer calls on the same containerd; and the agent's CPU and RSS with the burst running.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::Percentiles;
use crate::server::{KrustServer, rss_of};

const TOKEN: &str = "krust-bench-token";
const BRIDGE: &str = "krbench0";
const CLUSTER_CIDR: &str = "10.90.0.0/16";
const NODE: &str = "krust-bench-node";

/// What to measure.
#[derive(Clone, Debug)]
pub struct PodsBench {
    pub krust: PathBuf,
    /// Pods created one after another (each waits for the previous).
    pub single: usize,
    /// Pods created at once.
    pub burst: usize,
    /// Data directories go under here.
    pub dir: PathBuf,
}

/// A `krust agent` child; its containers, mounts and bridge go on drop.
struct AgentProcess {
    child: Child,
    dir: PathBuf,
    krust: PathBuf,
}

impl AgentProcess {
    fn socket(&self) -> PathBuf {
        self.dir.join("agent/containerd-state/containerd.sock")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let agent_dir = self.dir.join("agent");
        containerd::testing::clean_up_after(&agent_dir, &self.socket());
        remove_node_network(&self.krust);
    }
}

/// What the bench's agents put into the host's network: the VTEP, routes,
/// netfilter rules (`krust agent --cleanup-network`) and the bridge.
fn remove_node_network(krust: &Path) {
    let _ = Command::new(krust)
        .args(["agent", "--cleanup-network", "--cni-bridge", BRIDGE])
        .stderr(Stdio::null())
        .status();
    let _ = Command::new("ip")
        .args(["link", "del", BRIDGE])
        .stderr(Stdio::null())
        .status();
}

/// User and system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .map(|t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second.max(1.0)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-pods"}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}]
        }
    }))
    .expect("a valid pod")
}

fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Creates `names` at once and returns each one's create → Running+Ready time.
async fn start_pods(client: &kube::Client, names: &[String]) -> anyhow::Result<Vec<u32>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let revision = pods
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = pods
        .watch(&WatchParams::default().labels("app=bench-pods"), &revision)
        .await?
        .boxed();
    let mut created_at = HashMap::new();
    let creates = names.iter().map(|name| {
        let pods = pods.clone();
        async move {
            let at = Instant::now();
            pods.create(&PostParams::default(), &pod(name))
                .await
                .map(|_| at)
        }
    });
    for (name, result) in names.iter().zip(futures::future::join_all(creates).await) {
        created_at.insert(
            name.clone(),
            result.with_context(|| format!("creating {name}"))?,
        );
    }
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while latencies.len() < names.len() {
        let event = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .context("pods not Running and Ready within 300 s")?;
        let Some(event) = event else {
            bail!("the pod watch ended")
        };
        if let WatchEvent::Modified(pod) | WatchEvent::Added(pod) = event?
            && is_running_and_ready(&pod)
            && let Some(at) = pod
                .metadata
                .name
                .as_ref()
                .and_then(|n| created_at.remove(n))
        {
            latencies.push(at.elapsed().as_micros() as u32);
        }
    }
    Ok(latencies)
}

async fn delete_pods(client: &kube::Client) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=bench-pods"),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods
        .list_metadata(&ListParams::default().labels("app=bench-pods"))
        .await?
        .items
        .is_empty()
    {
        if Instant::now() > deadline {
            bail!("pods not gone within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn node_ready(client: &kube::Client, name: &str) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(Some(node)) = nodes.get_opt(name).await else {
        return false;
    };
    node.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `krust server` (with its embedded agent) from spawn to a Ready Node.
async fn measure_server_to_ready(bench: &PodsBench, out: &mut impl Write) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("krust-bench-pods-ready-")
        .tempdir_in(&bench.dir)?;
    let started = Instant::now();
    let server = KrustServer::start_node(
        &bench.krust,
        dir,
        &[
            "--node-name",
            NODE,
            "--cni-bridge",
            BRIDGE,
            "--cluster-cidr",
            CLUSTER_CIDR,
        ],
    )?;
    let serving = started.elapsed();
    let client = client::from_kubeconfig(&server.kubeconfig()).await?;
    while !node_ready(&client, NODE).await {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the node was not Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready = started.elapsed();
    writeln!(
        out,
        "bench=pods measure=server_to_node_ready serving_ms={:.0} node_ready_ms={:.0}",
        serving.as_secs_f64() * 1000.0,
        ready.as_secs_f64() * 1000.0
    )?;
    out.flush()?;
    let agent_dir = server.data_dir().join("agent");
    let socket = agent_dir.join("containerd-state/containerd.sock");
    let dir = server.stop();
    containerd::testing::clean_up_after(&agent_dir, &socket);
    remove_node_network(&bench.krust);
    drop(dir);
    Ok(())
}

/// The raw CRI cost of `count` pods on the agent's containerd: sandbox,
/// container, start, all at once; returns per-pod latencies.
async fn raw_cri(socket: &Path, count: usize, logs: &Path) -> anyhow::Result<Vec<u32>> {
    use cri::{ImageService as _, RuntimeService as _, api};
    let runtime = cri::connect(&socket.display().to_string()).await?;
    let image = runtime
        .image_status(cri::image_spec("docker.io/library/busybox:latest"), false)
        .await?
        .image
        .context("busybox is not in the agent's containerd")?
        .id;
    let one = |index: usize| {
        let runtime = runtime.clone();
        let image = image.clone();
        let logs = logs.to_path_buf();
        async move {
            let started = Instant::now();
            let uid = format!("raw-cri-{index}");
            let sandbox_config = api::PodSandboxConfig {
                metadata: Some(api::PodSandboxMetadata {
                    name: uid.clone(),
                    uid: uid.clone(),
                    namespace: "bench".into(),
                    attempt: 0,
                }),
                hostname: uid.clone(),
                log_directory: logs.join(&uid).display().to_string(),
                linux: Some(api::LinuxPodSandboxConfig {
                    cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let sandbox = runtime.run_pod_sandbox(sandbox_config.clone(), "").await?;
            let container = runtime
                .create_container(
                    &sandbox,
                    api::ContainerConfig {
                        metadata: Some(api::ContainerMetadata {
                            name: "main".into(),
                            attempt: 0,
                        }),
                        image: Some(cri::image_spec(&image)),
                        command: vec!["sleep".into(), "3600".into()],
                        log_path: "main/0.log".into(),
                        ..Default::default()
                    },
                    sandbox_config,
                )
                .await?;
            runtime.start_container(&container).await?;
            let latency = started.elapsed().as_micros() as u32;
            Ok::<_, anyhow::Error>((latency, sandbox))
        }
    };
    let results = futures::future::join_all((0..count).map(one)).await;
    let mut latencies = Vec::new();
    let mut sandboxes = Vec::new();
    let mut failure = None;
    for result in results {
        match result {
            Ok((latency, sandbox)) => {
                latencies.push(latency);
                sandboxes.push(sandbox);
            }
            Err(error) => failure = Some(error),
        }
    }
    for sandbox in sandboxes {
        let _ = runtime.stop_pod_sandbox(&sandbox).await;
        let _ = runtime.remove_pod_sandbox(&sandbox).await;
    }
    match failure {
        Some(error) => Err(error.context("raw CRI pod start")),
        None => Ok(latencies),
    }
}

/// Runs every measurement and prints one line each.
pub async fn run(bench: &PodsBench, out: &mut impl Write) -> anyhow::Result<()> {
    std::fs::create_dir_all(&bench.dir)?;
    measure_server_to_ready(bench, out).await?;

    let server_dir = tempfile::Builder::new()
        .prefix("krust-bench-pods-server-")
        .tempdir_in(&bench.dir)?;
    let server = KrustServer::start(
        &bench.krust,
        server_dir,
        &["--token", TOKEN, "--cluster-cidr", CLUSTER_CIDR],
    )?;
    let client = client::from_kubeconfig(&server.kubeconfig()).await?;
    let agent_dir = tempfile::Builder::new()
        .prefix("krust-bench-pods-agent-")
        .tempdir_in(&bench.dir)?;
    let agent = AgentProcess {
        child: Command::new(&bench.krust)
            .args(["agent", "--server", &server.url, "--token", TOKEN])
            .arg("--data-dir")
            .arg(agent_dir.path())
            .args(["--node-name", NODE, "--cni-bridge", BRIDGE])
            .args(["--cluster-cidr", CLUSTER_CIDR])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting krust agent")?,
        dir: agent_dir.path().to_path_buf(),
        krust: bench.krust.clone(),
    };
    let agent_pid = agent.child.id();
    let joined = Instant::now();
    while !node_ready(&client, NODE).await {
        if joined.elapsed() > Duration::from_secs(60) {
            bail!("the agent's node was not Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Single pods, one after another.
    let mut single = Vec::new();
    for index in 0..bench.single {
        single.extend(start_pods(&client, &[format!("single-{index}")]).await?);
    }
    let single_percentiles = Percentiles::of(&mut single);
    writeln!(
        out,
        "bench=pods measure=startup case=single pods={} p50_ms={:.0} p99_ms={:.0}",
        bench.single, single_percentiles.p50_ms, single_percentiles.p99_ms
    )?;
    out.flush()?;
    delete_pods(&client).await?;

    // A burst on one node; the agent's CPU over it and RSS with it running.
    let cpu_before = cpu_seconds(agent_pid);
    let names: Vec<String> = (0..bench.burst).map(|i| format!("burst-{i}")).collect();
    let burst_started = Instant::now();
    let mut burst = start_pods(&client, &names).await?;
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(agent_pid) - cpu_before;
    // Several relists with every pod running, then the resident size.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_mb = rss_of(agent_pid) as f64 / 1048576.0;
    let percentiles = Percentiles::of(&mut burst);
    writeln!(
        out,
        "bench=pods measure=startup case=burst pods={} p50_ms={:.0} p99_ms={:.0} all_running_s={burst_seconds:.2} agent_cpu_s={cpu:.2} agent_rss_mb={rss_mb:.1}",
        bench.burst, percentiles.p50_ms, percentiles.p99_ms
    )?;
    out.flush()?;
    delete_pods(&client).await?;

    // The same pods through CRI alone, on the same containerd: one after
    // another, then all at once.
    let mut raw_single = Vec::new();
    for _ in 0..bench.single {
        raw_single.extend(raw_cri(&agent.socket(), 1, &agent.dir.join("raw-cri-logs")).await?);
    }
    let raw_single_percentiles = Percentiles::of(&mut raw_single);
    writeln!(
        out,
        "bench=pods measure=raw_cri case=single pods={} p50_ms={:.0} p99_ms={:.0} kubelet_overhead_p50_ms={:.0}",
        bench.single,
        raw_single_percentiles.p50_ms,
        raw_single_percentiles.p99_ms,
        single_percentiles.p50_ms - raw_single_percentiles.p50_ms
    )?;
    out.flush()?;
    let mut raw = raw_cri(
        &agent.socket(),
        bench.burst,
        &agent.dir.join("raw-cri-logs"),
    )
    .await?;
    let raw_percentiles = Percentiles::of(&mut raw);
    writeln!(
        out,
        "bench=pods measure=raw_cri case=burst pods={} p50_ms={:.0} p99_ms={:.0} kubelet_overhead_p50_ms={:.0}",
        bench.burst,
        raw_percentiles.p50_ms,
        raw_percentiles.p99_ms,
        percentiles.p50_ms - raw_percentiles.p50_ms
    )?;
    out.flush()?;
    drop(agent);
    drop(server);
    Ok(())
}
