//! Simulated nodes (kwok-style): registers Nodes, renews their Leases and moves pods bound to them through real status transitions without running containers.
//!
//! One process stands in for thousands of kubelets. It holds little per pod
//! (names, uid, node, IP) and talks to the API through one client:
//! registration and pod writes with bounded concurrency, heartbeats on their
//! own small budget so pod bursts never let a Lease expire.
//!
//! Pods: a pod bound to a simulated node becomes Running and Ready with an IP
//! from its node's `spec.podCIDR` (else the node's /24 in 10.244.0.0/16 and
//! beyond). A pod marked for deletion is deleted for good once its
//! `deletionTimestamp` (the end of its grace period) has passed. A pod with
//! restartPolicy Never or OnFailure and the annotation
//! `sim.krust.dev/complete-after: DURATION` succeeds that long after it started.

mod addresses;
mod api;
mod clock;
mod digest;
mod flags;
mod heartbeat;
mod lease;
mod node;
mod pod_loop;
mod pod_status;
mod pods;
mod registration;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use flags::{FlagError, parse_label, parse_quantity, parse_taint};
pub use k8s_openapi::api::core::v1::Taint;
/// What a real kubelet reports the same way: its Lease and the conditions
/// of a healthy node (used by the agent).
pub use lease::renew as renew_node_lease;
pub use lease::{LEASE_DURATION_SECONDS, LEASE_NAMESPACE};
pub use node::conditions as healthy_node_conditions;
pub use node::ready_since as node_ready_since;
pub use node::{CONTAINER_RUNTIME_VERSION, KUBELET_VERSION, SIMULATED_LABEL};
pub use pod_status::{COMPLETE_AFTER_ANNOTATION, parse_duration};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many nodes.
    pub nodes: usize,
    /// Node `i` is named `{name_prefix}{i}`.
    pub name_prefix: String,
    /// Capacity (and allocatable) of every node, as Kubernetes quantities.
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub ephemeral_storage: String,
    /// Labels every node carries on top of the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// Taints every node registers with.
    pub taints: Vec<Taint>,
    /// Spread the nodes round-robin over `topology.kubernetes.io/zone`
    /// `zone-0` .. `zone-{zones-1}`; 0 sets no zone label.
    pub zones: usize,
    /// How often each node's Lease is renewed (kubelet: 10 s).
    pub lease_renew_interval: Duration,
    /// How often each node's Ready condition is refreshed (kubelet's
    /// nodeStatusReportFrequency: 5 min; the Lease is the heartbeat).
    pub node_status_interval: Duration,
    /// Pod and registration requests in flight at most.
    pub max_in_flight: usize,
    /// Delete the Nodes (and their Leases) when stopping.
    pub cleanup: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            nodes: 1,
            name_prefix: "sim-node-".to_string(),
            cpu: "32".to_string(),
            memory: "256Gi".to_string(),
            pods: 110,
            ephemeral_storage: "1Ti".to_string(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            zones: 0,
            lease_renew_interval: Duration::from_secs(10),
            node_status_interval: Duration::from_secs(5 * 60),
            max_in_flight: 64,
            cleanup: false,
        }
    }
}

/// A client for the cluster a kubeconfig file names (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    client::from_kubeconfig(path).await
}

/// Completes when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM.
pub async fn termination_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(terminate) => {
                terminate.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

/// Simulates nodes until `shutdown` completes, then stops (deleting the
/// nodes when `config.cleanup`).
pub async fn run(
    client: kube::Client,
    config: SimConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    let sim = tokio::select! {
        sim = start(client, config) => sim?,
        () = &mut shutdown => return Ok(()),
    };
    sim.run_until(shutdown).await
}

/// Registers the nodes and starts their heartbeats and pod handling;
/// returns once every node is registered.
pub async fn start(client: kube::Client, config: SimConfig) -> anyhow::Result<Sim> {
    ensure!(
        !config.lease_renew_interval.is_zero(),
        "the lease renew interval must be positive"
    );
    ensure!(
        !config.node_status_interval.is_zero(),
        "the node status interval must be positive"
    );
    ensure!(config.max_in_flight > 0, "max in flight must be positive");
    for (what, quantity) in [
        ("cpu", &config.cpu),
        ("memory", &config.memory),
        ("ephemeral storage", &config.ephemeral_storage),
    ] {
        parse_quantity(quantity).with_context(|| format!("node {what} capacity"))?;
    }
    let began = Instant::now();
    let nodes: Arc<[registration::RegisteredNode]> =
        registration::register_all(&client, &config).await?.into();
    let registration_time = began.elapsed();
    tracing::info!(
        nodes = nodes.len(),
        seconds = registration_time.as_secs_f64(),
        "simulated nodes registered"
    );

    let config = Arc::new(config);
    let (stop, stopped) = watch::channel(false);
    let (pod_cidrs_sender, pod_cidrs) = mpsc::unbounded_channel();
    let table = pods::PodTable::new(
        nodes
            .iter()
            .map(|node| (node.identity.clone(), node.pod_cidr.clone())),
    );
    let mut tasks = JoinSet::new();
    tasks.spawn(heartbeat::run(
        client.clone(),
        config.clone(),
        nodes.clone(),
        pod_cidrs_sender,
        stopped.clone(),
    ));
    tasks.spawn(pod_loop::run(
        client.clone(),
        table,
        config.max_in_flight,
        pod_cidrs,
        stopped,
    ));
    Ok(Sim {
        client,
        config,
        nodes,
        registration_time,
        stop,
        tasks,
    })
}

/// Running simulated nodes.
pub struct Sim {
    client: kube::Client,
    config: Arc<SimConfig>,
    nodes: Arc<[registration::RegisteredNode]>,
    registration_time: Duration,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Sim {
    /// The simulated nodes' names, in index order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|node| node.identity.name.as_str())
    }

    /// How long registering every node took.
    pub fn registration_time(&self) -> Duration {
        self.registration_time
    }

    /// Runs until `shutdown` completes, then stops.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let ended = tokio::select! {
            () = shutdown => None,
            ended = self.tasks.join_next() => ended,
        };
        let result = match ended {
            None => Ok(()),
            Some(Ok(())) => Err(anyhow::anyhow!("a simulator loop ended on its own")),
            Some(Err(error)) => Err(error).context("a simulator loop failed"),
        };
        self.stop().await?;
        result
    }

    /// Stops heartbeats and pod handling; deletes the nodes when the
    /// configuration asks for cleanup.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(ended) = self.tasks.join_next().await {
            ended.context("a simulator loop failed")?;
        }
        if self.config.cleanup {
            registration::unregister_all(&self.client, &self.config, &self.nodes).await;
        }
        Ok(())
    }
}
