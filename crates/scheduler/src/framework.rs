//! The scheduling cycle of kube-scheduler's default profile: PreFilter, Filter (with nominated pods), Score, normalise, weigh and pick a node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Pod, Toleration, TopologySpreadConstraint};
use rand::Rng;

use crate::labels::{PreferredNodeAffinity, RequiredNodeAffinity};
use crate::plugins::image_locality::ImageScorer;
use crate::plugins::node_resources::{self, ResourceScorer, ResourceWeight, ScoringStrategy};
use crate::plugins::{
    default_normalize, inter_pod_affinity, node_affinity, node_name, node_ports,
    node_unschedulable, pod_topology_spread, taint_toleration,
};
use crate::pod_info::{PodFacts, PodInfo};
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::{Code, FitError, Status};

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Upstream never scores fewer nodes than this (unless there are fewer).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage of nodes to score never goes below this.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// The weight of each score plugin in the sum (upstream's defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginWeights {
    pub taint_toleration: i64,
    pub node_affinity: i64,
    pub node_resources_fit: i64,
    pub pod_topology_spread: i64,
    pub inter_pod_affinity: i64,
    pub balanced_allocation: i64,
    pub image_locality: i64,
}

impl Default for PluginWeights {
    fn default() -> PluginWeights {
        PluginWeights {
            taint_toleration: 3,
            node_affinity: 2,
            node_resources_fit: 1,
            pod_topology_spread: 2,
            inter_pod_affinity: 2,
            balanced_allocation: 1,
            image_locality: 1,
        }
    }
}

/// A scheduler profile: user intent, as in KubeSchedulerConfiguration.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Pods whose `spec.schedulerName` names this profile are ours.
    pub scheduler_name: String,
    /// Share of nodes to find feasible before scoring; `None` (or 0) adapts
    /// to cluster size like upstream: 50% minus 1% per 125 nodes, at least 5%.
    pub percentage_of_nodes_to_score: Option<u32>,
    pub scoring_strategy: ScoringStrategy,
    /// Resources NodeResourcesFit scores, with weights.
    pub fit_resources: Vec<ResourceWeight>,
    /// Resources NodeResourcesBalancedAllocation balances, with weights.
    pub balanced_allocation_resources: Vec<ResourceWeight>,
    /// Score credit per existing pod whose required affinity the pod meets.
    pub hard_pod_affinity_weight: i64,
    /// Spreading applied to pods without constraints of their own.
    pub default_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Whether the default constraints are upstream's system defaults (which
    /// do not require nodes to carry every topology key).
    pub system_default_spreading: bool,
    /// Preemption tries at least this share of candidate nodes...
    pub min_candidate_nodes_percentage: u32,
    /// ...and at least this many.
    pub min_candidate_nodes_absolute: u32,
    pub weights: PluginWeights,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            percentage_of_nodes_to_score: None,
            scoring_strategy: ScoringStrategy::LeastAllocated,
            fit_resources: ResourceWeight::defaults(),
            balanced_allocation_resources: ResourceWeight::defaults(),
            hard_pod_affinity_weight: 1,
            default_spread_constraints: pod_topology_spread::system_default_constraints(),
            system_default_spreading: true,
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
            weights: PluginWeights::default(),
        }
    }
}

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    /// Nodes the filters ran on.
    pub evaluated_nodes: usize,
    /// Of those, the ones that fit.
    pub feasible_nodes: usize,
}

/// Upstream's `numFeasibleNodesToFind`: how many feasible nodes are enough.
pub fn num_feasible_nodes_to_find(percentage: Option<u32>, num_nodes: usize) -> usize {
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_nodes;
    }
    let nodes = num_nodes as i64;
    let mut percentage = i64::from(percentage.unwrap_or(0));
    if percentage == 0 {
        percentage = (50 - nodes / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let found = nodes * percentage / 100;
    (found as usize).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Everything PreFilter computed for one pod, which the filters read. Cloned
/// (cheaply when no plugin keeps counts) to try nominated pods or victims.
#[derive(Clone)]
pub(crate) struct CycleState<'a> {
    pub pod: &'a Pod,
    pub facts: &'a PodFacts,
    tolerations: &'a [Toleration],
    tolerates_unschedulable: bool,
    node_name: Option<&'a str>,
    node_affinity: Option<RequiredNodeAffinity>,
    check_ports: bool,
    spread: Option<pod_topology_spread::FilterState>,
    inter_pod_affinity: Option<inter_pod_affinity::FilterState>,
}

impl CycleState<'_> {
    /// Upstream's `RunPreFilterExtensionAddPod`/`RemovePod`: keeps the
    /// plugins' counts right when a pod appears on or leaves `node`.
    pub(crate) fn update(&mut self, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if let Some(spread) = self.spread.as_mut() {
            spread.update(self.pod, other, node, delta);
        }
        if let Some(affinity) = self.inter_pod_affinity.as_mut() {
            affinity.update(self.pod, other, node, delta);
        }
    }
}

/// What PreFilter decided.
pub(crate) struct PreFilter<'a> {
    pub state: CycleState<'a>,
    /// Only these nodes can fit (NodeAffinity pinned `metadata.name`).
    pub only_nodes: Option<Vec<u32>>,
}

/// A profile ready to schedule. `schedule_one` takes `&self`; the only state
/// that moves between cycles is where the next node search starts.
#[derive(Debug)]
pub struct Framework {
    profile: Profile,
    next_start_node_index: AtomicUsize,
}

impl Clone for Framework {
    fn clone(&self) -> Framework {
        let next = self.next_start_node_index.load(Ordering::Relaxed);
        Framework {
            profile: self.profile.clone(),
            next_start_node_index: AtomicUsize::new(next),
        }
    }
}

impl Framework {
    pub fn new(profile: Profile) -> Framework {
        Framework {
            profile,
            next_start_node_index: AtomicUsize::new(0),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn scheduler_name(&self) -> &str {
        &self.profile.scheduler_name
    }

    /// Whether this profile schedules the pod (by `spec.schedulerName`,
    /// which defaults to "default-scheduler").
    pub fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .filter(|n| !n.is_empty());
        name.unwrap_or(DEFAULT_SCHEDULER_NAME) == self.profile.scheduler_name
    }

    /// Picks a node for `pod`, or says why none fits. Ties among the best
    /// scores are broken uniformly at random with `rng`.
    pub fn schedule_one(
        &self,
        snapshot: &Snapshot,
        pod: &Pod,
        rng: &mut impl Rng,
    ) -> Result<ScheduleResult, FitError> {
        let num_all_nodes = snapshot.num_nodes();
        if num_all_nodes == 0 {
            return Err(FitError::new(0));
        }
        let facts = PodFacts::new(pod);
        let PreFilter { state, only_nodes } =
            self.pre_filter(snapshot, pod, &facts).map_err(|status| {
                let mut error = FitError::new(num_all_nodes);
                error.rejected_by_pre_filter = true;
                error.absent_nodes_status = Some(status);
                error
            })?;

        // A pod nominated by an earlier preemption tries its node first: it
        // is likely the only one that fits.
        let mut nominated_status = None;
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = nominated.and_then(|n| snapshot.node(n)) {
            match self.run_filters_with_nominated_pods(&state, node) {
                Ok(()) => {
                    return Ok(ScheduleResult {
                        node: node.name().to_string(),
                        evaluated_nodes: 1,
                        feasible_nodes: 1,
                    });
                }
                Err(status) => nominated_status = Some((node.shared_name().clone(), status)),
            }
        }

        let nodes: &[u32] = only_nodes.as_deref().unwrap_or(snapshot.order());
        let wanted =
            num_feasible_nodes_to_find(self.profile.percentage_of_nodes_to_score, nodes.len());
        let start = self.next_start_node_index.load(Ordering::Relaxed);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(wanted);
        let mut statuses: Vec<(Arc<str>, Status)> = Vec::new();
        for i in 0..nodes.len() {
            if feasible.len() >= wanted {
                break;
            }
            let Some(node) = snapshot.at(nodes[(start + i) % nodes.len()]) else {
                continue;
            };
            match self.run_filters_with_nominated_pods(&state, node) {
                Ok(()) => feasible.push(node),
                Err(status) => statuses.push((node.shared_name().clone(), status)),
            }
        }
        if let Some((name, status)) = nominated_status
            && !statuses.iter().any(|(n, _)| *n == name)
        {
            statuses.push((name, status));
        }
        // The next cycle starts where this one stopped, so every node gets
        // its turn.
        let processed = feasible.len() + statuses.len();
        self.next_start_node_index
            .store((start + processed) % num_all_nodes, Ordering::Relaxed);

        if feasible.is_empty() {
            let mut error = FitError::new(num_all_nodes);
            if only_nodes.is_some() {
                error.absent_nodes_status = Some(Status::new(
                    Code::UnschedulableAndUnresolvable,
                    node_affinity::NAME,
                    node_affinity::REASON_NOT_IN_PRE_FILTER_RESULT,
                ));
            }
            error.node_statuses = statuses;
            return Err(error);
        }
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: feasible[0].name().to_string(),
                evaluated_nodes: 1 + statuses.len(),
                feasible_nodes: 1,
            });
        }
        let scores = self.score(snapshot, pod, &facts, &feasible);
        let chosen = select_host(&scores, rng);
        Ok(ScheduleResult {
            node: feasible[chosen].name().to_string(),
            evaluated_nodes: feasible.len() + statuses.len(),
            feasible_nodes: feasible.len(),
        })
    }

    /// Runs the PreFilter of every plugin. An error is the status that
    /// rejects the pod on every node.
    pub(crate) fn pre_filter<'a>(
        &self,
        snapshot: &Snapshot,
        pod: &'a Pod,
        facts: &'a PodFacts,
    ) -> Result<PreFilter<'a>, Status> {
        let spec = pod.spec.as_ref();
        let tolerations = spec
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let affinity = node_affinity::pre_filter(pod)?;
        let only_nodes = affinity
            .node_names
            .map(|names| names.iter().filter_map(|n| snapshot.slot_of(n)).collect());
        let state = CycleState {
            pod,
            facts,
            tolerations,
            tolerates_unschedulable: node_unschedulable::tolerates_unschedulable(tolerations),
            node_name: spec
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty()),
            node_affinity: affinity.required,
            check_ports: !facts.host_ports.is_empty(),
            spread: pod_topology_spread::pre_filter(
                pod,
                snapshot,
                &self.profile.default_spread_constraints,
            ),
            inter_pod_affinity: inter_pod_affinity::pre_filter(pod, facts, snapshot),
        };
        Ok(PreFilter { state, only_nodes })
    }

    /// The filters in upstream's order; the first rejection wins.
    pub(crate) fn run_filters(
        &self,
        state: &CycleState<'_>,
        node: &NodeInfo,
    ) -> Result<(), Status> {
        node_unschedulable::filter(node, state.tolerates_unschedulable)?;
        node_name::filter(node, state.node_name)?;
        taint_toleration::filter(node, state.tolerations)?;
        if let Some(required) = &state.node_affinity {
            node_affinity::filter(node, required)?;
        }
        if state.check_ports {
            node_ports::filter(node, &state.facts.host_ports)?;
        }
        node_resources::fit_filter(node, &state.facts.requests.requests)?;
        if let Some(spread) = &state.spread {
            spread.filter(state.pod, node)?;
        }
        if let Some(affinity) = &state.inter_pod_affinity {
            affinity.filter(state.pod, node)?;
        }
        Ok(())
    }

    /// Upstream's `RunFilterPluginsWithNominatedPods`: when pods of equal or
    /// higher priority are nominated to the node, the pod must fit both with
    /// them there (resources, anti-affinity) and without them (affinity).
    pub(crate) fn run_filters_with_nominated_pods(
        &self,
        state: &CycleState<'_>,
        node: &NodeInfo,
    ) -> Result<(), Status> {
        let priority = state.facts.priority;
        let mut nominated = node
            .nominated_pods()
            .iter()
            .filter(|p| p.priority >= priority && p.key != state.facts.key)
            .peekable();
        if nominated.peek().is_none() {
            return self.run_filters(state, node);
        }
        let mut with_nominated = node.clone();
        let mut state_with_nominated = state.clone();
        for pod in nominated {
            with_nominated.add_pod(pod.clone());
            state_with_nominated.update(pod, &with_nominated, 1);
        }
        self.run_filters(&state_with_nominated, &with_nominated)?;
        self.run_filters(state, node)
    }

    /// Every score plugin's normalised score times its weight, summed per
    /// feasible node.
    pub(crate) fn score(
        &self,
        snapshot: &Snapshot,
        pod: &Pod,
        facts: &PodFacts,
        feasible: &[&NodeInfo],
    ) -> Vec<i64> {
        let profile = &self.profile;
        let weights = &profile.weights;
        let mut total = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        let mut add = |scores: &[i64], weight: i64| {
            for (t, s) in total.iter_mut().zip(scores) {
                *t += s * weight;
            }
        };

        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let prefer_tolerations = taint_toleration::prefer_no_schedule_tolerations(tolerations);
        for (score, node) in scores.iter_mut().zip(feasible) {
            *score = taint_toleration::score(node, &prefer_tolerations);
        }
        default_normalize(&mut scores, true);
        add(&scores, weights.taint_toleration);

        if let Some(preferred) = PreferredNodeAffinity::of(pod) {
            for (score, node) in scores.iter_mut().zip(feasible) {
                *score = node_affinity::score(node, &preferred);
            }
            default_normalize(&mut scores, false);
            add(&scores, weights.node_affinity);
        }

        let fit = ResourceScorer::new(&profile.fit_resources, &facts.requests, false);
        for (score, node) in scores.iter_mut().zip(feasible) {
            *score = fit.fit_score(node, &profile.scoring_strategy);
        }
        add(&scores, weights.node_resources_fit);

        let spread = pod_topology_spread::pre_score(
            pod,
            snapshot,
            feasible,
            &profile.default_spread_constraints,
            profile.system_default_spreading,
        );
        if let Some(spread) = spread {
            for (i, (score, node)) in scores.iter_mut().zip(feasible).enumerate() {
                *score = spread.score(i, node);
            }
            spread.normalize(&mut scores);
            add(&scores, weights.pod_topology_spread);
        }

        if let Some(affinity) =
            inter_pod_affinity::pre_score(pod, facts, snapshot, profile.hard_pod_affinity_weight)
        {
            for (score, node) in scores.iter_mut().zip(feasible) {
                *score = affinity.score(node);
            }
            inter_pod_affinity::ScoreState::normalize(&mut scores);
            add(&scores, weights.inter_pod_affinity);
        }

        let balanced = ResourceScorer::new(
            &profile.balanced_allocation_resources,
            &facts.requests,
            true,
        );
        for (score, node) in scores.iter_mut().zip(feasible) {
            *score = balanced.balanced_score(node);
        }
        add(&scores, weights.balanced_allocation);

        if let Some(images) = ImageScorer::new(pod, snapshot) {
            for (score, node) in scores.iter_mut().zip(feasible) {
                *score = images.score(node);
            }
            add(&scores, weights.image_locality);
        }
        total
    }
}

/// The index of a highest score; ties are broken uniformly at random
/// (reservoir sampling, as upstream's `selectHost`).
fn select_host(scores: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, score) in scores.iter().enumerate() {
        if i == 0 || *score > scores[best] {
            best = i;
            ties = 1;
        } else if *score == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{feasible, names, schedule, snapshot_of};

    #[test]
    fn adapts_the_number_of_nodes_to_find_to_cluster_size() {
        let cases = [
            (None, 50, 50),
            (None, 100, 100),
            (None, 200, 100),
            (None, 1000, 420),
            (None, 5000, 500),
            (None, 10_000, 500),
            (None, 30_000, 1500),
            (Some(20), 1000, 200),
            (Some(100), 1000, 1000),
            (Some(1), 1000, 100),
        ];
        for (percentage, nodes, want) in cases {
            assert_eq!(
                num_feasible_nodes_to_find(percentage, nodes),
                want,
                "{percentage:?} of {nodes}"
            );
        }
    }

    #[test]
    fn each_cycle_starts_where_the_last_one_stopped() {
        let count = 300;
        let nodes = (0..count)
            .map(|i| NodeBuilder::new(&format!("n{i:03}")).build())
            .collect();
        let snapshot = snapshot_of(nodes, vec![]);
        let framework = Framework::new(Profile::default());
        let mut rng = StdRng::seed_from_u64(1);
        let pod = PodBuilder::new("p").build();
        // 300 nodes: 48% of them, 144 feasible nodes, are enough.
        let window = num_feasible_nodes_to_find(None, count);
        assert_eq!(window, 144);
        let mut chosen = BTreeSet::new();
        for cycle in 0..3 {
            let result = framework
                .schedule_one(&snapshot, &pod, &mut rng)
                .expect("fits");
            assert_eq!(
                (result.evaluated_nodes, result.feasible_nodes),
                (window, window)
            );
            let index: usize = result.node[1..].parse().expect("numbered");
            let offset = (index + count - cycle * window % count) % count;
            assert!(
                offset < window,
                "cycle {cycle} chose {} outside its window",
                result.node
            );
            chosen.insert(result.node);
        }
        assert_eq!(chosen.len(), 3);
    }

    #[test]
    fn ties_are_broken_uniformly() {
        let nodes = (0..4)
            .map(|i| NodeBuilder::new(&format!("n{i}")).build())
            .collect();
        let snapshot = snapshot_of(nodes, vec![]);
        let framework = Framework::new(Profile::default());
        let mut rng = StdRng::seed_from_u64(3);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            let result = framework
                .schedule_one(&snapshot, &PodBuilder::new("p").build(), &mut rng)
                .expect("fits");
            counts[result.node[1..].parse::<usize>().expect("numbered")] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn best_total_score_wins() {
        // Same free room, but only n2 has no PreferNoSchedule taint.
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1")
                    .taint("spot", "true", "PreferNoSchedule")
                    .build(),
                NodeBuilder::new("n2").build(),
            ],
            vec![],
        );
        assert_eq!(
            schedule(&snapshot, &PodBuilder::new("p").build()),
            Ok("n2".into())
        );
        // Least allocated: the emptier node.
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1").build(),
                NodeBuilder::new("n2").build(),
            ],
            vec![PodBuilder::new("e").requests("2", "4Gi").node("n2").build()],
        );
        assert_eq!(
            schedule(
                &snapshot,
                &PodBuilder::new("p").requests("1", "1Gi").build()
            ),
            Ok("n1".into())
        );
    }

    #[test]
    fn nominated_pods_hold_their_room_for_lower_priority_pods_only() {
        let mut snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1").cpu("2").build(),
                NodeBuilder::new("n2").cpu("1").build(),
            ],
            vec![],
        );
        snapshot.nominate(
            Arc::new(
                PodBuilder::new("big")
                    .priority(100)
                    .requests("2", "")
                    .build(),
            ),
            "n1",
        );
        let low = PodBuilder::new("low")
            .priority(10)
            .requests("1500m", "")
            .build();
        assert_eq!(
            schedule(&snapshot, &low),
            Err("0/2 nodes are available: 2 Insufficient cpu.".into()),
            "n1 is held for the nominated pod"
        );
        let high = PodBuilder::new("high")
            .priority(1000)
            .requests("1500m", "")
            .build();
        assert_eq!(schedule(&snapshot, &high), Ok("n1".into()));
        // The nominated pod itself is not in its own way.
        assert_eq!(
            schedule(
                &snapshot,
                &PodBuilder::new("big")
                    .priority(100)
                    .requests("2", "")
                    .build()
            ),
            Ok("n1".into())
        );
    }

    #[test]
    fn a_nominated_node_is_tried_first() {
        let nodes = (0..5)
            .map(|i| NodeBuilder::new(&format!("n{i}")).build())
            .collect();
        let snapshot = snapshot_of(
            nodes,
            vec![PodBuilder::new("e").requests("3", "").node("n3").build()],
        );
        let framework = Framework::new(Profile::default());
        let mut rng = StdRng::seed_from_u64(1);
        let pod = PodBuilder::new("p").nominated_node("n3").build();
        let result = framework
            .schedule_one(&snapshot, &pod, &mut rng)
            .expect("fits");
        // n3 is the fullest node, but it passes the filters and is taken as is.
        assert_eq!((result.node.as_str(), result.evaluated_nodes), ("n3", 1));
    }

    #[test]
    fn no_nodes_and_profiles() {
        let snapshot = Snapshot::new();
        assert_eq!(
            schedule(&snapshot, &PodBuilder::new("p").build()),
            Err("no nodes available to schedule pods".into())
        );
        let framework = Framework::new(Profile::default());
        assert!(framework.responsible_for(&PodBuilder::new("p").build()));
        assert!(
            !framework.responsible_for(
                &PodBuilder::new("p")
                    .with_spec(|s| s.scheduler_name = Some("other".into()))
                    .build()
            )
        );
    }

    #[test]
    fn filters_run_in_upstream_order_and_the_first_rejection_counts() {
        // Unschedulable, tainted, too small and mismatched all at once: the
        // node is reported once, for being unschedulable.
        let node = NodeBuilder::new("n1")
            .unschedulable()
            .taint("k", "v", "NoSchedule")
            .cpu("1")
            .build();
        let snapshot = snapshot_of(vec![node], vec![]);
        let pod = PodBuilder::new("p")
            .requests("2", "")
            .node_selector("x", "y")
            .build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/1 nodes are available: 1 node(s) were unschedulable.".into())
        );
        assert_eq!(
            feasible(&snapshot, &PodBuilder::new("p").build()),
            Ok(names(&[]))
        );
    }
}
