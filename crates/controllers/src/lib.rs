//! The controller manager: starts each enabled controller over one set of shared informers, under one leader Lease.

pub mod serviceaccount;
pub mod servicelb;

use std::collections::BTreeSet;
use std::sync::Arc;

use client::Informers;

/// Every controller, by the name `--disable` takes (upstream's
/// `--controllers` names).
pub const CONTROLLERS: &[&str] = &[
    "cronjob",
    "daemonset",
    "deployment",
    "endpoint",
    "endpointslice",
    "garbagecollector",
    "job",
    "namespace",
    "nodeipam",
    "nodelifecycle",
    "replicaset",
    "replicationcontroller",
    "serviceaccount",
    "servicelb",
    "statefulset",
    "taint-eviction",
    "ttl-after-finished",
];

/// A `--disable` name in upstream's long form (`deployment-controller`)
/// or short form (`deployment`), as the short form.
pub fn controller_name(name: &str) -> Option<&'static str> {
    let short = match name.strip_suffix("-controller").unwrap_or(name) {
        "endpoints" => "endpoint",
        "garbage-collector" => "garbagecollector",
        "node-lifecycle" => "nodelifecycle",
        "node-ipam" => "nodeipam",
        "ttl-after-finished" => "ttl-after-finished",
        other => other,
    };
    CONTROLLERS.iter().copied().find(|known| *known == short)
}

/// What the controllers are told at start.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Controllers not to run (names from [`CONTROLLERS`]).
    pub disabled: BTreeSet<String>,
    /// Workers per controller.
    pub workers: usize,
    /// Where nodes' pod ranges come from (`--cluster-cidr`, one per family).
    pub cluster_cidrs: Vec<String>,
    /// How long a node may stay silent before it is marked Unknown
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: std::time::Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            disabled: BTreeSet::new(),
            workers: 5,
            cluster_cidrs: vec!["10.42.0.0/16".into()],
            node_monitor_grace_period: nodes::NodeLifecycleConfig::default()
                .node_monitor_grace_period,
        }
    }
}

/// Runs every enabled controller until one fails; they share `informers`.
pub async fn run(
    client: kube::Client,
    informers: Arc<Informers>,
    options: ControllerOptions,
) -> anyhow::Result<()> {
    let mut running = tokio::task::JoinSet::new();
    let enabled = |name: &str| !options.disabled.contains(name);
    if enabled("garbagecollector") {
        running.spawn(gc::run_garbage_collector(
            client.clone(),
            informers.clone(),
            options.workers * 4,
            gc::GarbageCollectorConfig::default(),
        ));
    }
    if enabled("namespace") {
        running.spawn(gc::run_namespaces(
            client.clone(),
            informers.clone(),
            options.workers,
            gc::NamespaceConfig::default(),
        ));
    }
    if enabled("replicaset") {
        running.spawn(replication::run_replicasets(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    if enabled("replicationcontroller") {
        running.spawn(replication::run_replication_controllers(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    if enabled("deployment") {
        running.spawn(replication::run_deployments(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    if enabled("job") {
        running.spawn(batch::run_jobs(
            client.clone(),
            informers.clone(),
            options.workers,
            batch::JobConfig::default(),
        ));
    }
    if enabled("cronjob") {
        running.spawn(batch::run_cronjobs(
            client.clone(),
            informers.clone(),
            options.workers,
            Arc::new(batch::SystemClock),
        ));
    }
    if enabled("ttl-after-finished") {
        running.spawn(batch::run_ttl_after_finished(
            client.clone(),
            informers.clone(),
            options.workers,
            Arc::new(batch::SystemClock),
        ));
    }
    if enabled("statefulset") {
        running.spawn(statefulset::run(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    if enabled("daemonset") {
        running.spawn(daemonset::run(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    if enabled("endpoint") {
        running.spawn(endpoints::run_endpoints(
            client.clone(),
            informers.clone(),
            options.workers,
            endpoints::EndpointsConfig::default(),
        ));
    }
    if enabled("endpointslice") {
        running.spawn(endpoints::run_endpoint_slices(
            client.clone(),
            informers.clone(),
            options.workers,
            endpoints::EndpointSliceConfig::default(),
        ));
    }
    if enabled("nodelifecycle") {
        let config = nodes::NodeLifecycleConfig {
            taint_eviction: enabled("taint-eviction"),
            node_monitor_grace_period: options.node_monitor_grace_period,
            ..nodes::NodeLifecycleConfig::default()
        };
        running.spawn(nodes::run_node_lifecycle(
            client.clone(),
            informers.clone(),
            options.workers,
            config,
        ));
    } else if enabled("taint-eviction") {
        running.spawn(nodes::run_taint_eviction(client.clone(), informers.clone()));
    }
    if enabled("nodeipam") {
        let config = nodes::NodeIpamConfig {
            cluster_cidrs: options.cluster_cidrs.clone(),
            ..nodes::NodeIpamConfig::default()
        };
        running.spawn(nodes::run_node_ipam(
            client.clone(),
            informers.clone(),
            config,
        ));
    }
    if enabled("serviceaccount") {
        running.spawn(serviceaccount::run(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    if enabled("servicelb") {
        running.spawn(servicelb::run(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    informers.start();
    while let Some(finished) = running.join_next().await {
        finished??;
    }
    Ok(())
}
