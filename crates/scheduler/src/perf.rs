//! Benchmarks of the scheduling core alone: many nodes, pods scheduled one after another and assumed on their node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::fixtures::{NodeBuilder, PodBuilder};
use crate::framework::{Framework, Profile};
use crate::labels::LabelSelector;
use crate::snapshot::{ControllerKind, Snapshot};

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub nodes: usize,
    pub pods: usize,
    pub scheduled: usize,
    pub unschedulable: usize,
    /// Pods per second through schedule + assume (adding the bound pod to
    /// the snapshot), on one thread.
    pub pods_per_s: f64,
    /// Latency of one `schedule_one` call.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `nodes` nodes in ten zones (32 cpus, 128Gi, 110 pods each) and `pods`
/// pods requesting 100m cpu and 128Mi, with the default profile.
pub fn scheduling_basic(nodes: usize, pods: usize) -> Figures {
    run(nodes, pods, Workload::Plain)
}

/// Like [`scheduling_basic`], but the pods belong to one ReplicaSet the
/// snapshot knows, so upstream's default topology spreading scores them.
pub fn scheduling_replicaset(nodes: usize, pods: usize) -> Figures {
    run(nodes, pods, Workload::ReplicaSet)
}

/// upstream scheduler_perf's SchedulingPodAntiAffinity: every pod repels
/// the others from its node (required anti-affinity on the hostname).
pub fn scheduling_pod_anti_affinity(nodes: usize, pods: usize) -> Figures {
    run(nodes, pods, Workload::AntiAffinity)
}

/// upstream scheduler_perf's SchedulingTopologySpreading: zones must stay
/// within a skew of 5 (DoNotSchedule) for all the benchmark's pods.
pub fn scheduling_topology_spreading(nodes: usize, pods: usize) -> Figures {
    run(nodes, pods, Workload::TopologySpreading)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Plain,
    ReplicaSet,
    AntiAffinity,
    TopologySpreading,
}

fn run(nodes: usize, pods: usize, workload: Workload) -> Figures {
    let mut snapshot = Snapshot::new();
    for i in 0..nodes {
        let node = NodeBuilder::new(&format!("node-{i}"))
            .cpu("32")
            .memory("128Gi")
            .zone(&format!("zone-{}", i % 10))
            .build();
        snapshot.upsert_node(Arc::new(node));
    }
    if workload == Workload::ReplicaSet {
        let selector = LabelSelector::from_map(&[("app".to_string(), "bench".to_string())].into());
        snapshot.upsert_controller(ControllerKind::ReplicaSet, "default", "bench-1", selector);
    }
    let pending: Vec<_> = (0..pods)
        .map(|i| {
            let pod = PodBuilder::new(&format!("pod-{i}"))
                .label("app", "bench")
                .requests("100m", "128Mi")
                .image("registry.k8s.io/pause:3.10");
            match workload {
                Workload::Plain => pod.build(),
                Workload::ReplicaSet => pod.owner("apps/v1", "ReplicaSet", "bench-1").build(),
                Workload::AntiAffinity => pod
                    .label("color", "green")
                    .anti_affinity("color", "green", "kubernetes.io/hostname")
                    .build(),
                Workload::TopologySpreading => pod
                    .label("color", "blue")
                    .spread(
                        5,
                        "topology.kubernetes.io/zone",
                        "DoNotSchedule",
                        "color",
                        "blue",
                    )
                    .build(),
            }
        })
        .collect();
    let framework = Framework::new(Profile::default());
    let mut rng = StdRng::seed_from_u64(1);
    let mut latencies: Vec<Duration> = Vec::with_capacity(pods);
    let mut scheduled = 0;
    let started = Instant::now();
    for pod in pending {
        let cycle = Instant::now();
        let result = framework.schedule_one(&snapshot, &pod, &mut rng);
        latencies.push(cycle.elapsed());
        if let Ok(result) = result {
            let mut bound = pod;
            if let Some(spec) = bound.spec.as_mut() {
                spec.node_name = Some(result.node);
            }
            snapshot.add_pod(Arc::new(bound));
            scheduled += 1;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        let index = ((latencies.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(latencies.len().saturating_sub(1));
        latencies
            .get(index)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        nodes,
        pods,
        scheduled,
        unschedulable: pods - scheduled,
        pods_per_s: pods as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_every_pod_of_a_small_run() {
        let figures = scheduling_basic(200, 300);
        assert_eq!(figures.scheduled, 300);
        assert!(figures.pods_per_s > 0.0);
    }

    /// The real figure: `cargo test --release -p scheduler --lib perf::tests::five_thousand_nodes -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: meaningful only in release builds"]
    fn five_thousand_nodes() {
        let figures = scheduling_basic(5000, 20000);
        println!("plain: {figures:?}");
        assert_eq!(figures.unschedulable, 0);
        let figures = scheduling_replicaset(5000, 20000);
        println!("replicaset: {figures:?}");
        assert_eq!(figures.unschedulable, 0);
        let figures = scheduling_pod_anti_affinity(5000, 5000);
        println!("anti-affinity: {figures:?}");
        assert_eq!(figures.unschedulable, 0);
        let figures = scheduling_topology_spreading(5000, 20000);
        println!("topology spreading: {figures:?}");
        assert_eq!(figures.unschedulable, 0);
    }
}
