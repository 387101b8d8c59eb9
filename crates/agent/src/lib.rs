//! The node agent: registers this machine as a Node, keeps its Lease and status fresh, and runs the pods bound to it through containerd's CRI.

pub mod cni;
pub mod cri_config;
pub mod host;
pub mod image_gc;
pub mod join;
pub mod kubelet_server;
pub mod network;
pub mod node;
pub mod observe;
pub mod pod_workers;
pub mod probing;
pub mod pull_auth;
pub mod registration;
pub mod runtime;
pub mod static_pods;
pub mod stats;
pub mod sync;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

/// The kubelet version Nodes report: the API's Kubernetes version.
pub const KUBELET_VERSION: &str = concat!("v1.33.0+krust-", env!("CARGO_PKG_VERSION"));

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    /// `DATA_DIR/agent`: containerd's state, CNI state, pod logs and volumes.
    pub data_dir: PathBuf,
    pub node_ip: IpAddr,
    /// Whether a control plane runs beside this agent (`krust server`).
    pub control_plane: bool,
    pub labels: BTreeMap<String, String>,
    /// `--container-runtime-endpoint`; none starts a private containerd.
    pub container_runtime_endpoint: Option<String>,
    /// `--private-registry` (k3s's registries.yaml).
    pub private_registry: PathBuf,
    /// The Linux bridge pods join.
    pub cni_bridge: String,
    /// The kubelet's HTTPS port.
    pub kubelet_port: u16,
    /// How pods on different nodes reach each other.
    pub flannel_backend: network::Backend,
    /// The VXLAN link's name (`flannel.1`).
    pub vxlan_device: String,
    /// The cluster's pod range(s): pod traffic leaving them is masqueraded.
    pub cluster_cidrs: Vec<String>,
    /// The cluster DNS Service's address(es) pods resolve through.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub image_gc: image_gc::ImageGcPolicy,
}

impl AgentConfig {
    /// This node's place in the pod network.
    pub fn network(&self) -> network::NetworkConfig {
        network::NetworkConfig {
            backend: self.flannel_backend,
            node_name: self.node_name.clone(),
            node_ip: self.node_ip,
            cluster_cidrs: self.cluster_cidrs.clone(),
            bridge: self.cni_bridge.clone(),
            vxlan_device: self.vxlan_device.clone(),
        }
    }
}

impl AgentConfig {
    /// What the kubelet's serving certificate must name.
    pub fn credentials_request(&self) -> api::join::NodeCredentialsRequest {
        api::join::NodeCredentialsRequest {
            node_name: self.node_name.clone(),
            addresses: vec![
                self.node_ip.to_string(),
                "127.0.0.1".to_string(),
                host::hostname(),
            ],
        }
    }
}

/// `krust agent`: joins the cluster at `server_url` with `token`, then runs
/// until `shutdown` completes.
pub async fn join_and_run(
    server_url: &str,
    token: &str,
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let credentials = join::join(server_url, token, &config.credentials_request())
        .await
        .with_context(|| format!("joining {server_url}"))?;
    let files = join::NodeFiles::under(&config.data_dir);
    files.write(server_url, &credentials)?;
    let client = client::from_kubeconfig(&files.kubeconfig).await?;
    run(client, config, credentials, shutdown).await
}

/// `krust agent --cleanup-network`: removes what the agent put into the
/// host's network (the VTEP, routes to other nodes, netfilter rules).
pub async fn cleanup_network(config: &AgentConfig) -> anyhow::Result<()> {
    network::cleanup(&config.network()).await
}

/// The Node's pod ranges, once node IPAM has assigned them.
async fn wait_for_pod_cidrs(client: &kube::Client, name: &str) -> anyhow::Result<Vec<String>> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        let spec = nodes.get(name).await?.spec.unwrap_or_default();
        let cidrs = match (spec.pod_cidrs, spec.pod_cidr) {
            (Some(cidrs), _) if !cidrs.is_empty() => cidrs,
            (_, Some(cidr)) => vec![cidr],
            _ => Vec::new(),
        };
        if !cidrs.is_empty() {
            return Ok(cidrs);
        }
        if !told && started.elapsed() > std::time::Duration::from_secs(10) {
            tracing::warn!(node = %name, "waiting for the node's podCIDR (is the nodeipam controller running?)");
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs the node: the container runtime, the Node's registration and
/// heartbeats, until `shutdown` completes or a part fails.
pub async fn run(
    client: kube::Client,
    config: AgentConfig,
    credentials: api::join::NodeCredentials,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let gc = config.image_gc;
    anyhow::ensure!(
        gc.high_threshold_percent > gc.low_threshold_percent,
        "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {} must be greater than imageGCLowThresholdPercent (--image-gc-low-threshold) {}",
        gc.high_threshold_percent,
        gc.low_threshold_percent
    );
    let runtime = runtime::NodeRuntime::start(&config).await?;
    let host = host::HostFacts::read(&config.data_dir);
    let kubelet_address = std::net::SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        config.kubelet_port,
    );
    let kubelet_listener = tokio::net::TcpListener::bind(kubelet_address)
        .await
        .with_context(|| format!("the kubelet API cannot listen on {kubelet_address}"))?;
    let kubelet_port = kubelet_listener.local_addr()?.port();
    let identity = node::NodeIdentity {
        name: config.node_name.clone(),
        internal_ip: config.node_ip,
        control_plane: config.control_plane,
        labels: config.labels.clone(),
        container_runtime_version: runtime.version.clone(),
        kubelet_version: KUBELET_VERSION.to_string(),
        kubelet_port,
    };
    let registered = registration::register(&client, &identity, &host).await?;
    tracing::info!(node = %registered.name, runtime = %runtime.version, "node registered");
    let mut parts = tokio::task::JoinSet::new();
    parts.spawn({
        let (client, identity, registered, data_dir) = (
            client.clone(),
            identity.clone(),
            registered.clone(),
            config.data_dir.clone(),
        );
        async move {
            registration::keep_alive(client, identity, registered, data_dir).await;
            Ok(())
        }
    });

    let pod_cidrs = wait_for_pod_cidrs(&client, &config.node_name).await?;
    let informers = std::sync::Arc::new(client::Informers::new(client.clone()));
    let network_config = config.network();
    if network_config.backend != network::Backend::None {
        let local_cidr = pod_cidrs
            .iter()
            .find_map(|cidr| cidr.parse::<network::Ipv4Cidr>().ok())
            .with_context(|| format!("the node's podCIDRs {pod_cidrs:?} have no IPv4 range"))?;
        let mtu = network::prepare_host(&network_config, local_cidr)
            .await
            .context("setting up the pod network")?;
        network::publish(&client, &network_config).await?;
        let network = cni::PodNetwork {
            pod_cidrs,
            bridge: config.cni_bridge.clone(),
            ipam_data_dir: config.data_dir.join("cni"),
            mtu,
        };
        cni::write(&runtime.cni_conf_dir, &network)?;
        parts.spawn(network::follow_nodes(informers.clone(), network_config));
    }
    informers.start();

    let dns = cri_config::DnsSettings {
        host: cri_config::HostDns::parse(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
        cluster_servers: config.cluster_dns.iter().map(ToString::to_string).collect(),
        cluster_domain: config.cluster_domain.clone(),
    };
    let memory = i64::try_from(host.memory_bytes).unwrap_or(i64::MAX);
    let settings = kubelet::resources::ResourceSettings {
        cgroup_v2: std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        ..kubelet::resources::ResourceSettings::new(memory)
    };
    let mut syncer = sync::NodeSyncer::new(
        client.clone(),
        std::sync::Arc::new(runtime.client.clone()),
        config.node_name.clone(),
        config.node_ip.to_string(),
        config.data_dir.join("pod-logs"),
        config.data_dir.join("pods"),
        dns,
        settings,
        node::allocatable(&host),
    );
    syncer.registries = runtime.registries.clone();
    let syncer = std::sync::Arc::new(syncer);
    let store = pod_workers::PodStore::default();
    let tls = kubelet_server::tls_config(
        &credentials.serving_certificate,
        &credentials.serving_key,
        &credentials.ca_certificate,
    )?;
    parts.spawn(kubelet_server::serve(
        kubelet_listener,
        tls,
        std::sync::Arc::new(kubelet_server::KubeletBackend {
            store: store.clone(),
            runtime: std::sync::Arc::new(runtime.client.clone()),
            logs_root: config.data_dir.join("pod-logs"),
            stats: stats::StatsSource::new(
                config.node_name.clone(),
                config.data_dir.clone(),
                config.data_dir.join("pod-logs"),
                config.data_dir.join("pods"),
            ),
        }),
    ));
    parts.spawn({
        let (client, name, uid, dir) = (
            client.clone(),
            config.node_name.clone(),
            registered.uid.clone(),
            config.data_dir.join("pod-manifests"),
        );
        async move {
            static_pods::run(client, name, uid, dir).await;
            Ok(())
        }
    });
    parts.spawn({
        let runtime: std::sync::Arc<dyn sync::Runtime> =
            std::sync::Arc::new(runtime.client.clone());
        let policy = config.image_gc;
        async move {
            image_gc::run(runtime, policy, containerd::PAUSE_IMAGE.to_string()).await;
            Ok(())
        }
    });
    parts.spawn(pod_workers::run(
        client.clone(),
        config.node_name.clone(),
        store,
        syncer,
    ));
    tokio::select! {
        _ = shutdown => {}
        Some(ended) = parts.join_next() => {
            ended.context("an agent task panicked")??;
        }
    }
    parts.shutdown().await;
    runtime.stop().await;
    Ok(())
}
