//! The `krust` binary: parses the command line and hands each subcommand to its library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

// jemalloc keeps allocations of one size together: after 100,000 pod creates
// the server's RSS was 160 MB with it against 172–182 MB with glibc's malloc
// (`krust bench api`), and its watch fan-out p99 was lower.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "krust", version, about = "Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the Kubernetes API over HTTPS on the chosen datastore (and, unless --disable-agent, this machine as a node).
    Server(Box<ServerArgs>),
    /// Join a cluster as a node: register this machine and run its pods through containerd.
    Agent(AgentArgs),
    /// Run a benchmark and print one `bench=NAME key=value ...` line per configuration.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// Simulate nodes like kwok: register them, renew their leases, and run the pods bound to them without containers.
    Sim {
        /// Kubeconfig of the cluster the nodes join.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// How many nodes to simulate.
        #[arg(long)]
        nodes: usize,
        /// CPU capacity (= allocatable) of each node.
        #[arg(long, default_value_t = sim::SimConfig::default().cpu)]
        cpu: String,
        /// Memory capacity of each node.
        #[arg(long, default_value_t = sim::SimConfig::default().memory)]
        memory: String,
        /// Pod capacity of each node.
        #[arg(long, default_value_t = sim::SimConfig::default().pods)]
        pods: u32,
        /// Node N is named PREFIX followed by N.
        #[arg(long, default_value_t = sim::SimConfig::default().name_prefix)]
        name_prefix: String,
        /// Extra label of every node, key=value (repeatable).
        #[arg(long = "label", value_parser = sim::parse_label)]
        labels: Vec<(String, String)>,
        /// Taint every node registers with, key[=value]:Effect (repeatable).
        #[arg(long = "taint", value_parser = sim::parse_taint)]
        taints: Vec<sim::Taint>,
        /// Spread the nodes over topology.kubernetes.io/zone=zone-0..zone-(K-1); 0 sets no zone.
        #[arg(long, default_value_t = 0)]
        zones: usize,
        /// Delete the nodes and their leases on exit.
        #[arg(long)]
        cleanup: bool,
    },
}

/// How this machine runs as a node (`krust agent`, or `krust server`'s embedded agent).
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// The Node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The address other nodes reach this one on (default: the source address of the default route).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// A label of the Node, key=value (repeatable).
    #[arg(long = "node-label", value_parser = sim::parse_label)]
    node_labels: Vec<(String, String)>,
    /// A CRI socket to use (e.g. unix:///run/containerd/containerd.sock) instead of starting a private containerd.
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    /// Registry mirrors and credentials in k3s's registries.yaml format (default: DATA_DIR/registries.yaml).
    #[arg(long)]
    private_registry: Option<PathBuf>,
    /// The Linux bridge pods join.
    #[arg(long, default_value = "krust0")]
    cni_bridge: String,
    /// The kubelet's HTTPS port.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// How pods reach pods on other nodes: vxlan, host-gw (nodes share an L2 network) or none (an external CNI).
    #[arg(long, default_value = "vxlan", value_parser = clap::builder::ValueParser::new(|text: &str| text.parse::<agent::network::Backend>()))]
    flannel_backend: agent::network::Backend,
    /// The cluster DNS Service's address, pods' nameserver (comma-separated for dual stack). Without one, ClusterFirst pods use the node's resolver.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Image filesystem usage (percent) above which unused images are removed.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_high_threshold: u8,
    /// Image filesystem usage (percent) image garbage collection frees down to.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
    /// How long an unused image is kept at least, e.g. 2m.
    #[arg(long, default_value = "2m", value_parser = parse_duration_flag)]
    image_minimum_gc_age: std::time::Duration,
}

impl NodeArgs {
    fn agent_config(
        &self,
        data_dir: &std::path::Path,
        control_plane: bool,
        cluster_cidr: &str,
    ) -> agent::AgentConfig {
        agent::AgentConfig {
            node_name: self.node_name.clone().unwrap_or_else(agent::host::hostname),
            data_dir: data_dir.join("agent"),
            node_ip: self.node_ip.unwrap_or_else(agent::host::default_node_ip),
            control_plane,
            labels: self.node_labels.iter().cloned().collect(),
            container_runtime_endpoint: self.container_runtime_endpoint.clone(),
            private_registry: self
                .private_registry
                .clone()
                .unwrap_or_else(|| data_dir.join("registries.yaml")),
            cni_bridge: self.cni_bridge.clone(),
            kubelet_port: self.kubelet_port,
            flannel_backend: self.flannel_backend,
            vxlan_device: "flannel.1".to_string(),
            cluster_cidrs: cluster_cidr
                .split(',')
                .map(|cidr| cidr.trim().to_string())
                .filter(|cidr| !cidr.is_empty())
                .collect(),
            cluster_dns: self.cluster_dns.clone(),
            cluster_domain: self.cluster_domain.clone(),
            image_gc: agent::image_gc::ImageGcPolicy {
                high_threshold_percent: self.image_gc_high_threshold,
                low_threshold_percent: self.image_gc_low_threshold,
                minimum_age: self.image_minimum_gc_age,
                ..agent::image_gc::ImageGcPolicy::default()
            },
        }
    }
}

#[derive(clap::Args)]
struct AgentArgs {
    /// The API server, https://HOST:PORT.
    #[arg(long, required_unless_present = "cleanup_network")]
    server: Option<String>,
    /// A server token (`krust server --token`).
    #[arg(long, required_unless_present = "cleanup_network")]
    token: Option<String>,
    /// Remove the pod network's links, routes and netfilter rules this agent made (same --cni-bridge), then exit.
    #[arg(long)]
    cleanup_network: bool,
    /// Where containerd's state, pod logs and volumes live.
    #[arg(long, default_value = "/var/lib/krust")]
    data_dir: PathBuf,
    /// The cluster's pod address range (the server's `--cluster-cidr`): pod traffic leaving it is masqueraded.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the database, certificates and kubeconfig live.
    #[arg(long, default_value = "/var/lib/krust")]
    data_dir: PathBuf,
    /// HTTPS port of the API (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Address the API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// Also write the admin kubeconfig here.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// sqlite:///path/state.db (default: DATA_DIR/db/state.db), etcd://host:2379[,...] or memory://.
    #[arg(long)]
    datastore_endpoint: Option<String>,
    /// CA bundle that verifies etcd's serving certificate.
    #[arg(long)]
    datastore_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    datastore_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long)]
    datastore_keyfile: Option<PathBuf>,
    /// Shared secret agents and API clients may present as a bearer token.
    #[arg(long)]
    token: Vec<String>,
    /// Services' virtual IP range; its first address is the `kubernetes` Service's.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// Run no agent in this process: a control plane without a node.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    node: NodeArgs,
    /// Pod address range; each node gets a /24 (IPv4) or /64 (IPv6) of it.
    /// Comma-separated for dual stack.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Components not to run: `scheduler`, `controllers` (all of them), or
    /// single controllers by name (e.g. `deployment`, `garbagecollector`).
    #[arg(long, value_delimiter = ',')]
    disable: Vec<String>,
    /// How long a node may go without a heartbeat before it is marked
    /// NotReady (Unknown) and tainted, e.g. `40s`.
    #[arg(long, default_value = "40s", value_parser = parse_duration_flag)]
    node_monitor_grace_period: std::time::Duration,
}

/// A Go-style duration flag (`40s`, `1m30s`).
fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    sim::parse_duration(text)
        .ok_or_else(|| format!("invalid duration {text:?}, expected e.g. 40s or 1m30s"))
}

#[derive(Subcommand)]
enum Bench {
    /// Pod creates/s over HTTPS, LIST times, watch fan-out and RSS of a `krust server` child.
    Api {
        /// Concurrent clients creating pods.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Pods created for the creates/s figure.
        #[arg(long, default_value_t = 10_000)]
        creates: usize,
        /// Pod counts whose LIST is timed.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        list_sizes: Vec<usize>,
        /// Concurrent watchers for the fan-out figure (0 skips it).
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        /// Events written while the watchers listen.
        #[arg(long, default_value_t = 50)]
        watch_events: usize,
        /// Directory for the server's data.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Pods scheduled per second: the scheduler core in-process, then end to
    /// end (`krust server` + `krust sim`, pods created over HTTPS).
    Scheduler {
        /// Workloads, as upstream's scheduler_perf names them.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "SchedulingBasic,SchedulingPodAntiAffinity,SchedulingTopologySpreading"
        )]
        cases: Vec<String>,
        /// Simulated nodes.
        #[arg(long, default_value_t = 5_000)]
        nodes: usize,
        /// Pod counts for SchedulingBasic (the other cases take the first).
        #[arg(long, value_delimiter = ',', default_value = "10000,50000")]
        pods: Vec<usize>,
        /// Concurrent connections creating pods.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Skip the end-to-end runs (scheduler core only).
        #[arg(long)]
        core_only: bool,
        /// Directory for the servers' data.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Deployment controller end to end (`krust server` + `krust sim`): time
    /// for a large Deployment to become available and for a rolling update,
    /// with the server's CPU seconds (controllers included) and RSS.
    Controllers {
        /// Cases to run, in this order, on one server: deployment_available, rolling_update.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "deployment_available,rolling_update"
        )]
        cases: Vec<String>,
        /// Simulated nodes.
        #[arg(long, default_value_t = 1_000)]
        nodes: usize,
        /// Replicas of the Deployment timed to become available.
        #[arg(long, default_value_t = 10_000)]
        replicas: usize,
        /// Replicas of the Deployment whose rolling update is timed.
        #[arg(long, default_value_t = 1_000)]
        rolling_replicas: usize,
        /// The rolling update's maxSurge (count or percentage).
        #[arg(long, default_value = "25%")]
        max_surge: String,
        /// The rolling update's maxUnavailable (count or percentage).
        #[arg(long, default_value = "25%")]
        max_unavailable: String,
        /// Seconds a phase may take before the bench fails.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
        /// Also watch the pods for the progress lines (adds server work).
        #[arg(long)]
        watch_pods: bool,
        /// Directory for the server's data.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Pod startup on a real node (`krust agent` + containerd): single pods, a burst, raw CRI for comparison, agent CPU and RSS, server start to a Ready node.
    Pods {
        /// Pods started one after another.
        #[arg(long, default_value_t = 10)]
        single: usize,
        /// Pods started at once on the node.
        #[arg(long, default_value_t = 100)]
        burst: usize,
        /// Directory for the server's and the agent's data.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Durable writes/s and latency from concurrent writers, SQLite against etcd.
    Storage {
        /// Backends to measure, in order (sqlite, etcd, memory).
        #[arg(long, value_delimiter = ',', default_value = "sqlite,etcd")]
        backends: Vec<String>,
        /// Concurrent writer counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
        writers: Vec<usize>,
        /// Size of each written value.
        #[arg(long, default_value_t = 1024)]
        value_bytes: usize,
        /// Seconds to measure each configuration.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Directory for the databases (SQLite files and etcd's data).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("krust: {}", format!("{error:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server(*args)),
        Command::Agent(args) => runtime.block_on(async {
            let config = args
                .node
                .agent_config(&args.data_dir, false, &args.cluster_cidr);
            if args.cleanup_network {
                return agent::cleanup_network(&config).await;
            }
            let (Some(server), Some(token)) = (&args.server, &args.token) else {
                anyhow::bail!("--server and --token are required");
            };
            agent::join_and_run(server, token, config, sim::termination_signal()).await
        }),
        Command::Sim {
            kubeconfig,
            nodes,
            cpu,
            memory,
            pods,
            name_prefix,
            labels,
            taints,
            zones,
            cleanup,
        } => runtime.block_on(async {
            let client = sim::client_from_kubeconfig(&kubeconfig).await?;
            let config = sim::SimConfig {
                nodes,
                cpu,
                memory,
                pods,
                name_prefix,
                labels: labels.into_iter().collect(),
                taints,
                zones,
                cleanup,
                ..sim::SimConfig::default()
            };
            let running = sim::start(client, config).await?;
            eprintln!(
                "krust: simulating {nodes} nodes (registered in {:.2?})",
                running.registration_time()
            );
            running.run_until(sim::termination_signal()).await
        }),
        Command::Bench {
            bench:
                Bench::Api {
                    clients,
                    creates,
                    list_sizes,
                    watchers,
                    watch_events,
                    dir,
                },
        } => {
            let bench = bench::api::ApiBench {
                krust: std::env::current_exe()?,
                clients,
                creates,
                list_sizes,
                watchers,
                watch_events,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            runtime.block_on(bench::api::run(&bench, &mut std::io::stdout()))
        }
        Command::Bench {
            bench:
                Bench::Scheduler {
                    cases,
                    nodes,
                    pods,
                    clients,
                    core_only,
                    dir,
                },
        } => {
            let bench = bench::scheduler::SchedulerBench {
                krust: std::env::current_exe()?,
                cases,
                nodes,
                pods,
                clients,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            let mut out = std::io::stdout();
            bench::scheduler::run_core(&bench, &mut out)?;
            if core_only {
                return Ok(());
            }
            runtime.block_on(bench::scheduler::run(&bench, &mut out))
        }
        Command::Bench {
            bench:
                Bench::Controllers {
                    cases,
                    nodes,
                    replicas,
                    rolling_replicas,
                    max_surge,
                    max_unavailable,
                    timeout,
                    watch_pods,
                    dir,
                },
        } => {
            anyhow::ensure!(timeout > 0.0, "--timeout must be positive");
            let bench = bench::controllers::ControllersBench {
                krust: std::env::current_exe()?,
                cases,
                nodes,
                replicas,
                rolling_replicas,
                max_surge,
                max_unavailable,
                timeout: Duration::from_secs_f64(timeout),
                watch_pods,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            runtime.block_on(bench::controllers::run(&bench, &mut std::io::stdout()))
        }
        Command::Bench {
            bench: Bench::Pods { single, burst, dir },
        } => {
            let bench = bench::pods::PodsBench {
                krust: std::env::current_exe()?,
                single,
                burst,
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            runtime.block_on(bench::pods::run(&bench, &mut std::io::stdout()))
        }
        Command::Bench {
            bench:
                Bench::Storage {
                    backends,
                    writers,
                    value_bytes,
                    seconds,
                    dir,
                },
        } => {
            anyhow::ensure!(seconds > 0.0, "--seconds must be positive");
            let bench = bench::storage::StorageBench {
                backends,
                writers,
                value_bytes,
                duration: Duration::from_secs_f64(seconds),
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            runtime.block_on(bench::storage::run(&bench, &mut std::io::stdout()))?;
            Ok(())
        }
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let service_cidr = apiserver::allocator::ServiceCidr::parse(&args.service_cidr)
        .map_err(|e| anyhow::anyhow!("--service-cidr {e}"))?;
    let endpoint = args.datastore_endpoint.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            args.data_dir.join("db").join("state.db").display()
        )
    });
    let options = storage::OpenOptions {
        etcd_tls: storage::EtcdTls {
            ca_file: args.datastore_cafile.clone(),
            cert_file: args.datastore_certfile.clone(),
            key_file: args.datastore_keyfile.clone(),
        },
        ..storage::OpenOptions::default()
    };
    let store = storage::open(&endpoint, &options).await?;
    let address = std::net::SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
    let config = apiserver::server::ServerConfig {
        data_dir: args.data_dir.clone(),
        write_kubeconfig: args.write_kubeconfig.clone(),
        tokens: args.token.clone(),
        service_cidr,
        // Agents on other machines reach the API at the node's address.
        node_ips: [
            Some(
                args.node
                    .node_ip
                    .unwrap_or_else(agent::host::default_node_ip),
            ),
            Some(args.bind_address).filter(|address| !address.is_unspecified()),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let disabled = Disabled::parse(&args.disable)?;
    let running = apiserver::server::start(config, store, listener).await?;
    let mut components = tokio::task::JoinSet::new();
    // One set of informers for the scheduler and the controllers: each pod
    // is watched and decoded once in this process.
    let informers = std::sync::Arc::new(client::Informers::new(client::over_service(
        running.local_service("system:kube-controller-manager", &["system:authenticated"]),
    )));
    if !disabled.all_controllers {
        let informers = informers.clone();
        let client = client::over_service(
            running.local_service("system:kube-controller-manager", &["system:authenticated"]),
        );
        let options = controllers::ControllerOptions {
            disabled: disabled.controllers.clone(),
            cluster_cidrs: args
                .cluster_cidr
                .split(',')
                .map(|cidr| cidr.trim().to_string())
                .filter(|cidr| !cidr.is_empty())
                .collect(),
            node_monitor_grace_period: args.node_monitor_grace_period,
            ..controllers::ControllerOptions::default()
        };
        let lock =
            client::leader::LeaseLock::new("kube-controller-manager", &client::leader::identity());
        components.spawn(client::leader::run_while_leader(
            client.clone(),
            lock,
            move || controllers::run(client.clone(), informers.clone(), options.clone()),
        ));
    }
    if !disabled.scheduler {
        let informers = informers.clone();
        let client = client::over_service(
            running.local_service("system:kube-scheduler", &["system:authenticated"]),
        );
        let lock = client::leader::LeaseLock::new("kube-scheduler", &client::leader::identity());
        components.spawn(client::leader::run_while_leader(
            client.clone(),
            lock,
            move || {
                scheduler::run::run(
                    client.clone(),
                    informers.clone(),
                    scheduler::run::SchedulerConfig::default(),
                )
            },
        ));
    }
    if !args.disable_agent {
        let config = args
            .node
            .agent_config(&args.data_dir, true, &args.cluster_cidr);
        let credentials = running
            .node_credentials(&config.credentials_request())
            .map_err(|error| {
                anyhow::anyhow!("issuing this node's certificates: {}", error.message)
            })?;
        let user = format!("system:node:{}", config.node_name);
        let client = client::over_service(running.local_service(&user, &["system:nodes"]));
        components.spawn(agent::run(
            client,
            config,
            credentials,
            std::future::pending(),
        ));
    }
    eprintln!(
        "krust: serving the Kubernetes API on https://{}; kubeconfig {}",
        running.address,
        running.kubeconfig.display()
    );
    tokio::select! {
        served = running.wait() => served,
        Some(finished) = components.join_next() => {
            finished?.map_err(|error| anyhow::anyhow!("a component stopped: {error:#}"))
        }
    }
}

/// What `--disable` turned off.
struct Disabled {
    scheduler: bool,
    all_controllers: bool,
    controllers: std::collections::BTreeSet<String>,
}

impl Disabled {
    fn parse(names: &[String]) -> anyhow::Result<Disabled> {
        let mut disabled = Disabled {
            scheduler: false,
            all_controllers: false,
            controllers: Default::default(),
        };
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match name {
                "scheduler" => disabled.scheduler = true,
                "controllers" | "controller-manager" => disabled.all_controllers = true,
                other if controllers::controller_name(other).is_some() => {
                    let short = controllers::controller_name(other).unwrap_or(other);
                    disabled.controllers.insert(short.to_string());
                }
                unknown => anyhow::bail!(
                    "--disable {unknown}: not a component (scheduler, controllers, {})",
                    controllers::CONTROLLERS.join(", ")
                ),
            }
        }
        Ok(disabled)
    }
}
