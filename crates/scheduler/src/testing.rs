//! Helpers for the unit tests: snapshots from nodes and pods, and one scheduling attempt rendered as the chosen node or upstream's message.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::framework::{Framework, PluginWeights, Profile};
use crate::pod_info::PodFacts;
use crate::snapshot::Snapshot;

pub(crate) fn snapshot_of(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    let mut snapshot = Snapshot::new();
    for node in nodes {
        snapshot.upsert_node(Arc::new(node));
    }
    for pod in pods {
        snapshot.add_pod(Arc::new(pod));
    }
    snapshot
}

/// The chosen node's name, or the FitError's message.
pub(crate) fn schedule(snapshot: &Snapshot, pod: &Pod) -> Result<String, String> {
    schedule_with(&Framework::new(Profile::default()), snapshot, pod)
}

pub(crate) fn schedule_with(
    framework: &Framework,
    snapshot: &Snapshot,
    pod: &Pod,
) -> Result<String, String> {
    let mut rng = StdRng::seed_from_u64(7);
    framework
        .schedule_one(snapshot, pod, &mut rng)
        .map(|r| r.node)
        .map_err(|e| e.to_string())
}

/// Names of the nodes that pass every filter, in snapshot order, or the
/// PreFilter rejection.
pub(crate) fn feasible(snapshot: &Snapshot, pod: &Pod) -> Result<Vec<String>, String> {
    let framework = Framework::new(Profile::default());
    let facts = PodFacts::new(pod);
    let pre_filter = framework
        .pre_filter(snapshot, pod, &facts)
        .map_err(|s| s.message())?;
    Ok(snapshot
        .nodes()
        .filter(|n| {
            let slot = snapshot.slot_of(n.name());
            pre_filter
                .only_nodes
                .as_ref()
                .is_none_or(|only| slot.is_some_and(|s| only.contains(&s)))
        })
        .filter(|n| {
            framework
                .run_filters_with_nominated_pods(&pre_filter.state, n)
                .is_ok()
        })
        .map(|n| n.name().to_string())
        .collect())
}

/// Every node's weighted total score (all nodes treated as feasible), in
/// snapshot order.
pub(crate) fn total_scores(
    framework: &Framework,
    snapshot: &Snapshot,
    pod: &Pod,
) -> Vec<(String, i64)> {
    let facts = PodFacts::new(pod);
    let nodes: Vec<_> = snapshot.nodes().collect();
    let scores = framework.score(snapshot, pod, &facts, &nodes);
    nodes
        .iter()
        .map(|n| n.name().to_string())
        .zip(scores)
        .collect()
}

/// A default framework in which only the plugins `weigh` gives a weight score.
pub(crate) fn scoring_only(weigh: impl FnOnce(&mut PluginWeights)) -> Framework {
    let mut weights = PluginWeights {
        taint_toleration: 0,
        node_affinity: 0,
        node_resources_fit: 0,
        pod_topology_spread: 0,
        inter_pod_affinity: 0,
        balanced_allocation: 0,
        image_locality: 0,
    };
    weigh(&mut weights);
    Framework::new(Profile {
        weights,
        ..Profile::default()
    })
}

/// Just the scores of `total_scores`.
pub(crate) fn scores(framework: &Framework, snapshot: &Snapshot, pod: &Pod) -> Vec<i64> {
    total_scores(framework, snapshot, pod)
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

pub(crate) fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}
