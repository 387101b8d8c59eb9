//! `krust bench controllers`: how fast the deployment and replica-set controllers (inside a `krust server` child) bring a large Deployment to available and roll a template change out, on `krust sim` nodes, with the server's CPU seconds and RSS.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::{ServerProcess, request};
use crate::server::rss_of;

/// The measured cases, in the order they run.
pub const CASES: &[&str] = &["deployment_available", "rolling_update"];

const NAMESPACE: &str = "default";

#[derive(Clone, Debug)]
pub struct ControllersBench {
    /// The krust binary that runs the server and the simulated nodes.
    pub krust: PathBuf,
    pub cases: Vec<String>,
    /// Simulated nodes.
    pub nodes: usize,
    /// Replicas of the Deployment timed to become available.
    pub replicas: usize,
    /// Replicas of the Deployment whose rolling update is timed.
    pub rolling_replicas: usize,
    /// The rolling update's maxSurge and maxUnavailable (a count or a percentage).
    pub max_surge: String,
    pub max_unavailable: String,
    /// How long a phase may take before the bench fails.
    pub timeout: Duration,
    /// Also watch the pods (creates/binds/readiness in the progress lines);
    /// this adds work to the server being measured.
    pub watch_pods: bool,
    /// Data directory parent (the server's SQLite file lives here).
    pub dir: PathBuf,
}

/// A `krust sim` child process, killed on drop.
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server and the simulated nodes.
struct Cluster {
    server: Arc<ServerProcess>,
    server_pid: u32,
    sim: SimProcess,
}

impl Cluster {
    fn sim_pid(&self) -> u32 {
        self.sim.0.id()
    }
}

/// Clock ticks per second, the unit of /proc/PID/stat's CPU times.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User plus system CPU seconds a process has used (all its threads), 0
/// when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3,
    // so utime (field 14) and stime (field 15) are the 12th and 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

/// The `krust server` child of this process that serves from `data_dir`.
fn find_server_pid(data_dir: &Path) -> anyhow::Result<u32> {
    let me = std::process::id();
    let needle = data_dir.as_os_str().as_encoded_bytes();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if parent != Some(me) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            return Ok(pid);
        }
    }
    bail!("no krust server child serving {}", data_dir.display())
}

/// CPU seconds used so far by the machine (all CPUs, from /proc/stat) and
/// by the processes in play.
#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    machine: f64,
    server: f64,
    sim: f64,
    bench: f64,
}

impl CpuSample {
    fn take(cluster: &Cluster) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            machine: machine_cpu_seconds(),
            server: cpu_seconds(cluster.server_pid),
            sim: cpu_seconds(cluster.sim_pid()),
            bench: cpu_seconds(std::process::id()),
        }
    }

    /// CPU seconds since `earlier`: (server, sim, this bench, everything
    /// else on the machine).
    fn since(&self, earlier: &CpuSample) -> (f64, f64, f64, f64) {
        let server = self.server - earlier.server;
        let sim = self.sim - earlier.sim;
        let bench = self.bench - earlier.bench;
        let other = (self.machine - earlier.machine - server - sim - bench).max(0.0);
        (server, sim, bench, other)
    }
}

/// Busy CPU seconds of the whole machine (every field of /proc/stat's `cpu`
/// line but idle and iowait).
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy as f64 / clock_ticks()
}

/// Sends one request and returns its JSON body, failing on a non-2xx status.
async fn call(
    server: &ServerProcess,
    method: &str,
    path: &str,
    body: Option<Value>,
    content_type: &str,
) -> anyhow::Result<Value> {
    let mut sender = server.connect().await?;
    let mut req = request(method, path, body.map(|b| b.to_string().into_bytes()));
    req.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, content_type.parse()?);
    let response = sender.send_request(req).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "{method} {path}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes)?)
}

async fn get(server: &ServerProcess, path: &str) -> anyhow::Result<Value> {
    call(server, "GET", path, None, "application/json").await
}

/// The current resourceVersion of a collection, to watch from.
async fn list_revision(server: &ServerProcess, collection: &str) -> anyhow::Result<String> {
    let list = get(server, &format!("{collection}?limit=1")).await?;
    Ok(list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string())
}

/// Polls until `count` Nodes exist (a LIST with limit=1 tells the total).
async fn wait_for_nodes(server: &ServerProcess, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let list = get(server, "/api/v1/nodes?limit=1").await?;
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

/// Waits (up to 30 s) until the server and the sim use under a tenth of a
/// core, so a phase starts on a quiet cluster.
async fn settle(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let busy = || cpu_seconds(cluster.server_pid) + cpu_seconds(cluster.sim_pid());
    while Instant::now() < deadline {
        let before = busy();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if busy() - before < 0.1 {
            return;
        }
    }
}

/// A fresh server and `nodes` simulated nodes, all registered.
async fn start_cluster(bench: &ControllersBench) -> anyhow::Result<Cluster> {
    let server =
        ServerProcess::start_with(&bench.krust, &bench.dir, "krust-bench-controllers-", &[])?;
    let server_pid = find_server_pid(server.server.data_dir())?;
    let sim = SimProcess(
        Command::new(&bench.krust)
            .args(["sim", "--nodes", &bench.nodes.to_string()])
            .args(["--cpu", "4", "--memory", "32Gi", "--pods", "110"])
            .arg("--kubeconfig")
            .arg(server.server.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting krust sim")?,
    );
    let registering = Instant::now();
    wait_for_nodes(&server, bench.nodes).await?;
    let cluster = Cluster {
        server: Arc::new(server),
        server_pid,
        sim,
    };
    settle(&cluster).await;
    eprintln!(
        "controllers: {} simulated nodes registered in {:.1} s; load average {}",
        bench.nodes,
        registering.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(cluster)
}

/// An int-or-string field as the API takes it: `25%` stays a string, `3` is a number.
fn int_or_string(value: &str) -> Value {
    value
        .parse::<u64>()
        .map_or_else(|_| json!(value), |n| json!(n))
}

/// A Deployment of `replicas` small pods (10m CPU, 16Mi memory).
fn deployment(name: &str, replicas: usize, max_surge: &str, max_unavailable: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": int_or_string(max_surge),
                "maxUnavailable": int_or_string(max_unavailable)
            }},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
                }]}
            }
        }
    })
}

fn deployments_path() -> String {
    format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
}

fn replicasets_path() -> String {
    format!("/apis/apps/v1/namespaces/{NAMESPACE}/replicasets")
}

fn pods_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/pods")
}

/// Watches `collection` (a path with no query, plus `selector` query
/// parameters) from `revision`, calling `on_event(type, object, seen_at)`
/// for each event and reopening the watch from the last seen
/// resourceVersion when the server ends it. Runs until aborted or an ERROR
/// event arrives.
fn spawn_watch(
    server: Arc<ServerProcess>,
    collection: String,
    selector: String,
    mut revision: String,
    mut on_event: impl FnMut(&str, Value, Instant) + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        loop {
            let mut sender = server.connect().await?;
            let path = format!("{collection}?watch=true&resourceVersion={revision}{selector}");
            let response = sender.send_request(request("GET", &path, None)).await?;
            if !response.status().is_success() {
                bail!("watch {path}: {}", response.status());
            }
            let mut stream = response.into_body().into_data_stream();
            let mut buffer = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                let seen_at = Instant::now();
                buffer.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(end) = buffer[start..].iter().position(|b| *b == b'\n') {
                    let line = &buffer[start..start + end];
                    start += end + 1;
                    let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
                        continue;
                    };
                    let kind = event["type"].as_str().unwrap_or_default().to_string();
                    let object = event["object"].take();
                    if kind == "ERROR" {
                        bail!("watch {collection}: {object}");
                    }
                    if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                        revision = rv.to_string();
                    }
                    on_event(&kind, object, seen_at);
                }
                buffer.drain(..start);
            }
            // The server closed the watch: reopen it where it left off.
        }
    })
}

/// Which watched object an event is about.
#[derive(Clone, Copy, Debug)]
enum Watched {
    Deployment,
    OldReplicaSet,
}

/// Pod counts from the optional pod watch.
#[derive(Default)]
struct PodCounts {
    /// Per live pod: (bound, ready).
    pods: HashMap<String, (bool, bool)>,
    created: usize,
    deleted: usize,
}

impl PodCounts {
    fn record(&mut self, kind: &str, pod: &Value) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        if kind == "DELETED" {
            if self.pods.remove(name).is_some() {
                self.deleted += 1;
            }
            return;
        }
        let bound = pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let ready = pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if self.pods.insert(name.to_string(), (bound, ready)).is_none() {
            self.created += 1;
        }
    }

    fn summary(&self) -> String {
        let bound = self.pods.values().filter(|(b, _)| *b).count();
        let ready = self.pods.values().filter(|(_, r)| *r).count();
        format!(
            " pods_created={} pods_bound={bound} pods_ready={ready} pods_deleted={}",
            self.created, self.deleted
        )
    }
}

fn count(object: &Value, field: &str) -> i64 {
    object["status"][field].as_i64().unwrap_or(0)
}

/// A Deployment's status counters for the progress lines and errors.
fn status_summary(deployment: &Value) -> String {
    format!(
        "replicas={} updated={} ready={} available={} unavailable={} observed_generation={}",
        count(deployment, "replicas"),
        count(deployment, "updatedReplicas"),
        count(deployment, "readyReplicas"),
        count(deployment, "availableReplicas"),
        count(deployment, "unavailableReplicas"),
        count(deployment, "observedGeneration"),
    )
}

/// Whether a Deployment has rolled out generation `generation` to
/// `replicas` available pods with no others left.
fn rolled_out(deployment: &Value, generation: i64, replicas: i64) -> bool {
    count(deployment, "observedGeneration") >= generation
        && deployment["spec"]["replicas"].as_i64() == Some(replicas)
        && count(deployment, "replicas") == replicas
        && count(deployment, "updatedReplicas") == replicas
        && count(deployment, "availableReplicas") == replicas
}

/// A ReplicaSet scaled to and at zero.
fn scaled_down(replica_set: &Value) -> bool {
    replica_set["spec"]["replicas"].as_i64() == Some(0) && count(replica_set, "replicas") == 0
}

/// What one phase measured.
struct Phase {
    seconds: f64,
    /// When the Deployment's status first counted every replica (pods created).
    all_counted_s: Option<f64>,
    server_cpu_s: f64,
    sim_cpu_s: f64,
    /// CPU seconds of this bench process (its watches).
    bench_cpu_s: f64,
    /// CPU seconds of everything else on the machine (e.g. compilers).
    other_cpu_s: f64,
    server_rss_mb: f64,
    sim_rss_mb: f64,
}

/// What a phase waits for after its write.
struct Goal<'a> {
    case: &'a str,
    name: &'a str,
    replicas: i64,
    /// The ReplicaSet that must end at zero (for a rollout).
    old_replica_set: Option<String>,
}

/// Opens the watches, runs `write` (which returns the Deployment's new
/// generation), and waits until the Deployment reaches `goal`; times from
/// just before the write to the watch event that completed the goal.
async fn timed_phase<F, Fut>(
    cluster: &Cluster,
    bench: &ControllersBench,
    goal: Goal<'_>,
    write: F,
) -> anyhow::Result<Phase>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i64>>,
{
    let server = cluster.server.clone();
    let revision = list_revision(&server, &deployments_path()).await?;
    let (events, mut received) = mpsc::unbounded_channel::<(Watched, Value, Instant)>();
    let mut watches = Vec::new();
    {
        let events = events.clone();
        let name = goal.name.to_string();
        watches.push(spawn_watch(
            server.clone(),
            deployments_path(),
            String::new(),
            revision.clone(),
            move |_, object, at| {
                if object["metadata"]["name"] == name.as_str() {
                    let _ = events.send((Watched::Deployment, object, at));
                }
            },
        ));
    }
    if let Some(old) = goal.old_replica_set.clone() {
        let events = events.clone();
        watches.push(spawn_watch(
            server.clone(),
            replicasets_path(),
            String::new(),
            revision.clone(),
            move |_, object, at| {
                if object["metadata"]["name"] == old.as_str() {
                    let _ = events.send((Watched::OldReplicaSet, object, at));
                }
            },
        ));
    }
    let pods = Arc::new(Mutex::new(PodCounts::default()));
    if bench.watch_pods {
        let pods = pods.clone();
        watches.push(spawn_watch(
            server.clone(),
            pods_path(),
            format!("&labelSelector=app%3D{}", goal.name),
            list_revision(&server, &pods_path()).await?,
            move |kind, object, _| {
                if let Ok(mut pods) = pods.lock() {
                    pods.record(kind, &object);
                }
            },
        ));
    }
    drop(events);
    // Give the watches a moment to open, so the write is the only thing
    // happening when the clock starts.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let first = CpuSample::take(cluster);
    let started = first.at;
    let result = async {
        let generation = write().await?;
        let deadline = tokio::time::Instant::from_std(started + bench.timeout);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::from_std(started + Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        let mut deployment = Value::Null;
        let mut old_replica_set = Value::Null;
        let mut all_counted: Option<Instant> = None;
        let mut last_cpu = first;
        loop {
            tokio::select! {
                event = received.recv() => {
                    let Some((watched, object, at)) = event else {
                        // Every watch task ended: one of them failed.
                        for watch in watches.drain(..) {
                            watch.await??;
                        }
                        bail!("the watches ended");
                    };
                    match watched {
                        Watched::Deployment => deployment = object,
                        Watched::OldReplicaSet => old_replica_set = object,
                    }
                    if all_counted.is_none()
                        && count(&deployment, "observedGeneration") >= generation
                        && count(&deployment, "updatedReplicas") >= goal.replicas
                    {
                        all_counted = Some(at);
                    }
                    if rolled_out(&deployment, generation, goal.replicas)
                        && (goal.old_replica_set.is_none() || scaled_down(&old_replica_set))
                    {
                        return Ok((at, all_counted));
                    }
                }
                _ = tick.tick() => {
                    let sample = CpuSample::take(cluster);
                    let wall = sample.at.duration_since(last_cpu.at).as_secs_f64().max(1e-9);
                    let (server, sim, own, other) = sample.since(&last_cpu);
                    let mut line = format!(
                        "controllers: {} t={:.1}s {} cores: server={:.2} sim={:.2} bench={:.2} other={:.2}",
                        goal.case,
                        sample.at.duration_since(started).as_secs_f64(),
                        status_summary(&deployment),
                        server / wall,
                        sim / wall,
                        own / wall,
                        other / wall,
                    );
                    if goal.old_replica_set.is_some() {
                        line.push_str(&format!(
                            " old_rs_spec={} old_rs_replicas={}",
                            old_replica_set["spec"]["replicas"].as_i64().unwrap_or(-1),
                            count(&old_replica_set, "replicas")
                        ));
                    }
                    if bench.watch_pods && let Ok(pods) = pods.lock() {
                        line.push_str(&pods.summary());
                    }
                    eprintln!("{line}");
                    last_cpu = sample;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    bail!(
                        "{}: the Deployment {} did not finish within {} s: {}{}",
                        goal.case,
                        goal.name,
                        bench.timeout.as_secs_f64(),
                        status_summary(&deployment),
                        if goal.old_replica_set.is_some() {
                            format!(" old_rs_replicas={}", count(&old_replica_set, "replicas"))
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
    .await;
    let (server_cpu_s, sim_cpu_s, bench_cpu_s, other_cpu_s) =
        CpuSample::take(cluster).since(&first);
    for watch in &watches {
        watch.abort();
    }
    let (done, all_counted) = result?;
    Ok(Phase {
        seconds: done.duration_since(started).as_secs_f64(),
        all_counted_s: all_counted.map(|at| at.duration_since(started).as_secs_f64()),
        server_cpu_s,
        sim_cpu_s,
        bench_cpu_s,
        other_cpu_s,
        server_rss_mb: rss_of(cluster.server_pid) as f64 / 1048576.0,
        sim_rss_mb: rss_of(cluster.sim_pid()) as f64 / 1048576.0,
    })
}

/// Creates a Deployment and times it to fully available.
async fn create_available(
    cluster: &Cluster,
    bench: &ControllersBench,
    case: &str,
    name: &str,
    replicas: usize,
) -> anyhow::Result<Phase> {
    let server = cluster.server.clone();
    let body = deployment(name, replicas, &bench.max_surge, &bench.max_unavailable);
    let goal = Goal {
        case,
        name,
        replicas: replicas as i64,
        old_replica_set: None,
    };
    timed_phase(cluster, bench, goal, || async move {
        let created = call(
            &server,
            "POST",
            &deployments_path(),
            Some(body),
            "application/json",
        )
        .await?;
        Ok(created["metadata"]["generation"].as_i64().unwrap_or(1))
    })
    .await
}

/// Times a template change of a `replicas`-replica Deployment (created and
/// made available first, untimed) until its rollout is complete.
async fn rolling_update(
    cluster: &Cluster,
    bench: &ControllersBench,
    name: &str,
) -> anyhow::Result<Phase> {
    let replicas = bench.rolling_replicas;
    let setup = create_available(cluster, bench, "rolling_update_setup", name, replicas).await?;
    eprintln!(
        "controllers: rolling_update setup: {replicas} replicas available in {:.2} s",
        setup.seconds
    );
    let server = cluster.server.clone();
    let owned = get(
        &server,
        &format!("{}?labelSelector=app%3D{name}", replicasets_path()),
    )
    .await?;
    let old: Vec<String> = owned["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|rs| rs["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let [old] = old.as_slice() else {
        bail!("expected one ReplicaSet of {name} before the update, found {old:?}");
    };
    settle(cluster).await;
    let goal = Goal {
        case: "rolling_update",
        name,
        replicas: replicas as i64,
        old_replica_set: Some(old.clone()),
    };
    let path = format!("{}/{name}", deployments_path());
    timed_phase(cluster, bench, goal, || async move {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            "bench.krust.dev/revision": "2"
        }}}}});
        let patched = call(
            &server,
            "PATCH",
            &path,
            Some(patch),
            "application/merge-patch+json",
        )
        .await?;
        patched["metadata"]["generation"]
            .as_i64()
            .context("the patched Deployment has no generation")
    })
    .await
}

/// Runs the cases on one fresh server and sim and prints one line each.
pub async fn run(bench: &ControllersBench, out: &mut impl Write) -> anyhow::Result<()> {
    for case in &bench.cases {
        if !CASES.contains(&case.as_str()) {
            bail!("unknown case {case} (one of {})", CASES.join(", "));
        }
    }
    let cluster = start_cluster(bench).await?;
    for case in CASES.iter().filter(|c| bench.cases.iter().any(|b| b == *c)) {
        match *case {
            "deployment_available" => {
                let phase =
                    create_available(&cluster, bench, case, "available", bench.replicas).await?;
                writeln!(
                    out,
                    "bench=controllers case=deployment_available replicas={} nodes={} seconds={:.2} all_pods_created_s={} server_cpu_s={:.2} server_rss_mb={:.0} sim_rss_mb={:.0} sim_cpu_s={:.2} bench_cpu_s={:.2} other_cpu_s={:.2} cpu_note=server_cpu_includes_controllers_scheduler_apiserver",
                    bench.replicas,
                    bench.nodes,
                    phase.seconds,
                    phase
                        .all_counted_s
                        .map_or("none".to_string(), |s| format!("{s:.2}")),
                    phase.server_cpu_s,
                    phase.server_rss_mb,
                    phase.sim_rss_mb,
                    phase.sim_cpu_s,
                    phase.bench_cpu_s,
                    phase.other_cpu_s,
                )?;
            }
            _ => {
                let phase = rolling_update(&cluster, bench, "rolling").await?;
                writeln!(
                    out,
                    "bench=controllers case=rolling_update replicas={} max_surge={} max_unavailable={} nodes={} seconds={:.2} server_cpu_s={:.2} server_rss_mb={:.0} sim_rss_mb={:.0} sim_cpu_s={:.2} bench_cpu_s={:.2} other_cpu_s={:.2} other_pods={} cpu_note=server_cpu_includes_controllers_scheduler_apiserver",
                    bench.rolling_replicas,
                    bench.max_surge,
                    bench.max_unavailable,
                    bench.nodes,
                    phase.seconds,
                    phase.server_cpu_s,
                    phase.server_rss_mb,
                    phase.sim_rss_mb,
                    phase.sim_cpu_s,
                    phase.bench_cpu_s,
                    phase.other_cpu_s,
                    if bench.cases.iter().any(|c| c == "deployment_available") {
                        bench.replicas
                    } else {
                        0
                    },
                )?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_string_keeps_percentages_as_strings() {
        assert_eq!(int_or_string("25%"), json!("25%"));
        assert_eq!(int_or_string("3"), json!(3));
    }

    #[test]
    fn rollout_needs_every_counter_and_the_generation() {
        let mut d = json!({"spec": {"replicas": 3}, "status": {
            "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
        assert!(rolled_out(&d, 2, 3));
        assert!(!rolled_out(&d, 3, 3));
        d["status"]["replicas"] = json!(4);
        assert!(!rolled_out(&d, 2, 3));
        assert!(scaled_down(&json!({"spec": {"replicas": 0}, "status": {}})));
        assert!(!scaled_down(
            &json!({"spec": {"replicas": 0}, "status": {"replicas": 1}})
        ));
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let started = Instant::now();
        let mut x = 0u64;
        while cpu_seconds(std::process::id()) == 0.0 {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            assert!(started.elapsed() < Duration::from_secs(10));
        }
    }
}
