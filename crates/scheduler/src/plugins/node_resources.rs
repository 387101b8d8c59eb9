//! NodeResourcesFit (requests must fit; LeastAllocated, MostAllocated or RequestedToCapacityRatio scoring) and NodeResourcesBalancedAllocation.

use crate::resources::{
    CPU, EPHEMERAL_STORAGE, MEMORY, PodRequests, Resources, is_scalar_resource,
};
use crate::snapshot::NodeInfo;
use crate::status::{Code, Reason, Status};

use super::MAX_NODE_SCORE;

pub const FIT: &str = "NodeResourcesFit";
pub const BALANCED_ALLOCATION: &str = "NodeResourcesBalancedAllocation";

/// Whether the pod's requests fit in what the node has left; every
/// shortfall is a reason of its own ("Insufficient cpu", "Too many pods").
pub fn fit_filter(node: &NodeInfo, pod: &Resources) -> Result<(), Status> {
    let allocatable = node.allocatable();
    let requested = node.requested();
    let mut reasons: Vec<Reason> = Vec::new();
    if node.pods().len() as i64 + 1 > allocatable.allowed_pods {
        reasons.push("Too many pods".into());
    }
    if pod.milli_cpu > 0 && pod.milli_cpu > allocatable.milli_cpu - requested.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if pod.memory > 0 && pod.memory > allocatable.memory - requested.memory {
        reasons.push("Insufficient memory".into());
    }
    if pod.ephemeral_storage > 0
        && pod.ephemeral_storage > allocatable.ephemeral_storage - requested.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, amount) in &pod.scalar {
        if *amount > 0 && *amount > allocatable.scalar(name) - requested.scalar(name) {
            reasons.push(format!("Insufficient {name}").into());
        }
    }
    match reasons.len() {
        0 => Ok(()),
        1 => Err(Status::new(Code::Unschedulable, FIT, reasons.remove(0))),
        _ => Err(Status::with_reasons(Code::Unschedulable, FIT, reasons)),
    }
}

/// A resource scoring counts, with its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceWeight {
    pub name: String,
    pub weight: i64,
}

impl ResourceWeight {
    pub fn new(name: &str, weight: i64) -> ResourceWeight {
        ResourceWeight {
            name: name.to_string(),
            weight,
        }
    }

    /// cpu and memory, weight 1 each: upstream's default for both plugins.
    pub fn defaults() -> Vec<ResourceWeight> {
        vec![ResourceWeight::new(CPU, 1), ResourceWeight::new(MEMORY, 1)]
    }
}

/// How NodeResourcesFit scores a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScoringStrategy {
    /// Prefer nodes with the most room left (the default): spreads pods.
    LeastAllocated,
    /// Prefer the fullest nodes: packs pods.
    MostAllocated,
    /// Score by a piecewise linear function of utilisation: `(utilization
    /// 0..=100, score 0..=10)` points, sorted by utilisation.
    RequestedToCapacityRatio { shape: Vec<(i64, i64)> },
}

/// Largest score of a RequestedToCapacityRatio shape point; scaled to 100.
const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;

/// Per-cycle scoring inputs: for each configured resource, what the pod
/// requests.
pub struct ResourceScorer<'a> {
    resources: &'a [ResourceWeight],
    pod_requests: Vec<i64>,
    /// BalancedAllocation reads actual requests; Fit reads requests with
    /// defaults for containers that request nothing.
    use_requested: bool,
}

impl<'a> ResourceScorer<'a> {
    pub fn new(
        resources: &'a [ResourceWeight],
        pod: &PodRequests,
        use_requested: bool,
    ) -> ResourceScorer<'a> {
        let pod_requests = resources
            .iter()
            .map(|r| match r.name.as_str() {
                CPU if !use_requested => pod.non_zero_milli_cpu,
                MEMORY if !use_requested => pod.non_zero_memory,
                name => pod.requests.get(name),
            })
            .collect();
        ResourceScorer {
            resources,
            pod_requests,
            use_requested,
        }
    }

    /// Upstream's `calculateResourceAllocatableRequest`: the node's
    /// allocatable and what would be requested with the pod on it; (0, 0)
    /// leaves the resource out.
    fn allocatable_and_requested(&self, node: &NodeInfo, index: usize) -> (i64, i64) {
        let name = self.resources[index].name.as_str();
        let pod_request = self.pod_requests[index];
        if pod_request == 0 && is_scalar_resource(name) {
            return (0, 0);
        }
        let allocatable = node.allocatable();
        let (non_zero_cpu, non_zero_memory) = node.non_zero_requested();
        let requested = node.requested();
        match name {
            CPU => {
                let on_node = if self.use_requested {
                    requested.milli_cpu
                } else {
                    non_zero_cpu
                };
                (allocatable.milli_cpu, on_node + pod_request)
            }
            MEMORY => {
                let on_node = if self.use_requested {
                    requested.memory
                } else {
                    non_zero_memory
                };
                (allocatable.memory, on_node + pod_request)
            }
            EPHEMERAL_STORAGE => (
                allocatable.ephemeral_storage,
                requested.ephemeral_storage + pod_request,
            ),
            _ => (
                allocatable.scalar(name),
                requested.scalar(name) + pod_request,
            ),
        }
    }

    /// NodeResourcesFit's score, 0..=100.
    pub fn fit_score(&self, node: &NodeInfo, strategy: &ScoringStrategy) -> i64 {
        let mut node_score = 0;
        let mut weight_sum = 0;
        for (index, resource) in self.resources.iter().enumerate() {
            let (allocatable, requested) = self.allocatable_and_requested(node, index);
            if allocatable == 0 {
                continue;
            }
            let score = match strategy {
                ScoringStrategy::LeastAllocated => least_requested_score(requested, allocatable),
                ScoringStrategy::MostAllocated => most_requested_score(requested, allocatable),
                ScoringStrategy::RequestedToCapacityRatio { shape } => {
                    let utilization = if requested > allocatable {
                        100
                    } else {
                        requested * 100 / allocatable
                    };
                    let score = broken_linear(shape, utilization);
                    // Resources scoring zero do not count towards the average.
                    if score <= 0 {
                        continue;
                    }
                    score
                }
            };
            node_score += score * resource.weight;
            weight_sum += resource.weight;
        }
        if weight_sum == 0 {
            return 0;
        }
        match strategy {
            ScoringStrategy::RequestedToCapacityRatio { .. } => {
                (node_score as f64 / weight_sum as f64).round() as i64
            }
            _ => node_score / weight_sum,
        }
    }

    /// NodeResourcesBalancedAllocation's score: 100 × (1 − the standard
    /// deviation of the requested fractions), so nodes whose resources fill
    /// evenly win.
    pub fn balanced_score(&self, node: &NodeInfo) -> i64 {
        // Few resources are configured; avoid a heap vector per node unless
        // there are more than eight.
        let mut inline = [0f64; 8];
        let mut spilled: Vec<f64> = Vec::new();
        let mut count = 0;
        let mut total = 0.0;
        for index in 0..self.resources.len() {
            let (allocatable, requested) = self.allocatable_and_requested(node, index);
            if allocatable == 0 {
                continue;
            }
            let fraction = (requested as f64 / allocatable as f64).min(1.0);
            total += fraction;
            if count < inline.len() {
                inline[count] = fraction;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push(fraction);
            }
            count += 1;
        }
        let fractions: &[f64] = if count > inline.len() {
            &spilled
        } else {
            &inline[..count]
        };
        let std = match fractions.len() {
            2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
            n if n > 2 => {
                let mean = total / n as f64;
                (fractions
                    .iter()
                    .map(|f| (f - mean) * (f - mean))
                    .sum::<f64>()
                    / n as f64)
                    .sqrt()
            }
            _ => 0.0,
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    // Requests can exceed capacity because of the defaults for empty requests.
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// Upstream's `BuildBrokenLinearFunction` over shape points scaled from
/// 0..=10 to 0..=100.
fn broken_linear(shape: &[(i64, i64)], utilization: i64) -> i64 {
    let scale = MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE;
    for (i, (point_utilization, point_score)) in shape.iter().enumerate() {
        if utilization <= *point_utilization {
            if i == 0 {
                return point_score * scale;
            }
            let (previous_utilization, previous_score) = shape[i - 1];
            let (previous_score, point_score) = (previous_score * scale, point_score * scale);
            return previous_score
                + (point_score - previous_score) * (utilization - previous_utilization)
                    / (point_utilization - previous_utilization);
        }
    }
    shape.last().map(|(_, s)| s * scale).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{feasible, names, schedule, scores, scoring_only, snapshot_of};
    use crate::{Framework, Profile};

    #[test]
    fn requests_must_fit_what_is_left() {
        let nodes = || {
            vec![
                NodeBuilder::new("n1")
                    .cpu("4")
                    .memory("8Gi")
                    .pods(3)
                    .allocatable("example.com/gpu", "2")
                    .allocatable("ephemeral-storage", "10Gi")
                    .build(),
            ]
        };
        let existing = || {
            vec![
                PodBuilder::new("e")
                    .requests("3", "6Gi")
                    .request("example.com/gpu", "1")
                    .node("n1")
                    .build(),
            ]
        };
        let cases = [
            (PodBuilder::new("fits").requests("1", "2Gi"), Ok("n1")),
            (
                PodBuilder::new("cpu").requests("1500m", ""),
                Err("0/1 nodes are available: 1 Insufficient cpu."),
            ),
            (
                PodBuilder::new("memory").requests("", "3Gi"),
                Err("0/1 nodes are available: 1 Insufficient memory."),
            ),
            (
                PodBuilder::new("both").requests("2", "3Gi"),
                Err("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
            ),
            (
                PodBuilder::new("gpu").request("example.com/gpu", "2"),
                Err("0/1 nodes are available: 1 Insufficient example.com/gpu."),
            ),
            (
                PodBuilder::new("unknown-gpu").request("other.com/fpga", "1"),
                Err("0/1 nodes are available: 1 Insufficient other.com/fpga."),
            ),
            (
                PodBuilder::new("storage").request("ephemeral-storage", "11Gi"),
                Err("0/1 nodes are available: 1 Insufficient ephemeral-storage."),
            ),
            // Zero requests always fit (but still count against the pod limit).
            (PodBuilder::new("empty"), Ok("n1")),
        ];
        for (pod, want) in cases {
            let snapshot = snapshot_of(nodes(), existing());
            let pod = pod.build();
            assert_eq!(
                schedule(&snapshot, &pod),
                want.map(str::to_string).map_err(str::to_string),
                "{:?}",
                pod.metadata.name
            );
        }
        let full = vec![
            PodBuilder::new("a").node("n1").build(),
            PodBuilder::new("b").node("n1").build(),
            PodBuilder::new("c").node("n1").build(),
        ];
        let snapshot = snapshot_of(nodes(), full);
        assert_eq!(
            schedule(&snapshot, &PodBuilder::new("p").requests("5", "").build()),
            Err("0/1 nodes are available: 1 Insufficient cpu, 1 Too many pods.".into())
        );
    }

    #[test]
    fn init_containers_and_overhead_count() {
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1").cpu("2").build(),
                NodeBuilder::new("n2").cpu("4").build(),
            ],
            vec![],
        );
        let init = PodBuilder::new("init")
            .with_spec(|s| {
                s.init_containers = serde_json::from_value(
                    serde_json::json!([{"name": "i", "resources": {"requests": {"cpu": "3"}}}]),
                )
                .ok();
            })
            .build();
        assert_eq!(feasible(&snapshot, &init), Ok(names(&["n2"])));
        let overhead = PodBuilder::new("overhead")
            .requests("1500m", "")
            .with_spec(|s| {
                s.overhead = serde_json::from_value(serde_json::json!({"cpu": "1"})).ok();
            })
            .build();
        assert_eq!(feasible(&snapshot, &overhead), Ok(names(&["n2"])));
    }

    fn sized_nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        // Upstream's "differently sized nodes" cases: 4 and 6 cpus, 10000 bytes.
        vec![
            NodeBuilder::new("n1").cpu("4").memory("10000").build(),
            NodeBuilder::new("n2").cpu("6").memory("10000").build(),
        ]
    }

    #[test]
    fn least_allocated_prefers_room() {
        let snapshot = snapshot_of(sized_nodes(), vec![]);
        let framework = scoring_only(|w| w.node_resources_fit = 1);
        let pod = PodBuilder::new("p").requests("3", "5000").build();
        // n1: cpu (4000-3000)*100/4000 = 25, memory 50 → 37; n2: 50, 50 → 50.
        assert_eq!(scores(&framework, &snapshot, &pod), [37, 50]);
    }

    #[test]
    fn most_allocated_and_requested_to_capacity_ratio() {
        let snapshot = snapshot_of(sized_nodes(), vec![]);
        let pod = PodBuilder::new("p").requests("3", "5000").build();
        let with = |strategy| {
            let mut profile = Profile {
                scoring_strategy: strategy,
                ..Profile::default()
            };
            profile.weights = scoring_only(|w| w.node_resources_fit = 1)
                .profile()
                .weights
                .clone();
            Framework::new(profile)
        };
        // n1: cpu 75, memory 50 → 62; n2: 50, 50 → 50.
        assert_eq!(
            scores(&with(ScoringStrategy::MostAllocated), &snapshot, &pod),
            [62, 50]
        );
        // Shape 0%→10, 100%→0 is least-allocated with rounding: (25 + 50) / 2 = 37.5 → 38.
        let shape = ScoringStrategy::RequestedToCapacityRatio {
            shape: vec![(0, 10), (100, 0)],
        };
        assert_eq!(scores(&with(shape), &snapshot, &pod), [38, 50]);
    }

    #[test]
    fn empty_requests_score_with_defaults() {
        // 100m and 200Mi are assumed for a container without requests, so
        // empty pods still spread.
        let nodes = vec![
            NodeBuilder::new("busy").cpu("1").memory("1Gi").build(),
            NodeBuilder::new("idle").cpu("1").memory("1Gi").build(),
        ];
        let snapshot = snapshot_of(nodes, vec![PodBuilder::new("e").node("busy").build()]);
        let framework = scoring_only(|w| w.node_resources_fit = 1);
        let pod = PodBuilder::new("p").build();
        // busy: cpu (1000-200)*100/1000 = 80, memory (1024-400)*100/1024 = 60 → 70;
        // idle: 90, 80 → 85.
        assert_eq!(scores(&framework, &snapshot, &pod), [70, 85]);
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        let snapshot = snapshot_of(sized_nodes(), vec![]);
        let framework = scoring_only(|w| w.balanced_allocation = 1);
        let pod = PodBuilder::new("p").requests("3", "5000").build();
        // n1: fractions 0.75 and 0.5 → std 0.125 → 87; n2: 0.5 and 0.5 → 100.
        assert_eq!(scores(&framework, &snapshot, &pod), [87, 100]);
    }

    #[test]
    fn broken_linear_interpolates_between_points() {
        let shape = [(0, 10), (100, 0)];
        assert_eq!(broken_linear(&shape, 0), 100);
        assert_eq!(broken_linear(&shape, 50), 50);
        assert_eq!(broken_linear(&shape, 100), 0);
        assert_eq!(broken_linear(&[(0, 0), (100, 10)], 30), 30);
        assert_eq!(broken_linear(&[(20, 2), (80, 8)], 10), 20);
        assert_eq!(broken_linear(&[(20, 2), (80, 8)], 90), 80);
    }
}
