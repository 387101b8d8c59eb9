//! Pods matching a selector, counted per topology value: computed once, cached in the snapshot and kept current as pods come and go, so spreading and affinity do not rescan every pod each cycle.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::labels::{LabelSelector, Labels, NO_LABELS, pod_labels, pod_namespace};
use crate::pod_info::{AffinityTerm, PodInfo};
use crate::snapshot::NodeInfo;

/// Matching pods per topology value. Shared between the cache and the
/// cycles reading it; a cycle that needs to change its copy (nominated pods,
/// preemption victims) clones it on write.
pub(crate) type Counts = Arc<HashMap<String, i64>>;

/// One condition on pods: in one of some namespaces, and selected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PodMatcher {
    /// `None`: every namespace.
    pub namespaces: Option<Vec<String>>,
    pub selector: LabelSelector,
}

impl PodMatcher {
    /// The pods a (namespace-merged) affinity term selects.
    pub fn of_term(term: &AffinityTerm) -> PodMatcher {
        // After merging, a namespace selector is either gone (Nothing) or
        // selects every namespace (empty).
        let namespaces = if term.namespace_selector.is_empty() {
            None
        } else {
            let mut names = term.namespaces.clone();
            names.sort();
            names.dedup();
            Some(names)
        };
        PodMatcher {
            namespaces,
            selector: term.selector.clone(),
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        let namespace = pod_namespace(pod);
        self.namespaces
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == namespace))
            && self.selector.matches(pod_labels(pod))
    }
}

/// Which pods count, as the two plugins count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CountRule {
    /// PodTopologySpread: terminating pods do not count, and a selector
    /// without requirements counts nothing.
    Spread,
    /// InterPodAffinity: every selected pod counts.
    Affinity,
}

/// What to count: pods matching every matcher, per value of `topology_key`
/// on their node (or per node, when `topology_key` is `None`), over the
/// nodes carrying every `required_keys` label (a node without the topology
/// key counts under "").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CountKey {
    pub rule: CountRule,
    pub matchers: Vec<PodMatcher>,
    pub topology_key: Option<String>,
    pub required_keys: Vec<String>,
}

impl CountKey {
    fn counts_pod(&self, pod: &PodInfo) -> bool {
        if self.rule == CountRule::Spread
            && (pod.terminating || self.matchers.iter().any(|m| m.selector.is_empty()))
        {
            return false;
        }
        self.matchers.iter().all(|m| m.matches(&pod.pod))
    }

    /// The topology value a node counts under, if it counts at all.
    fn node_value<'a>(&self, node: &'a Node) -> Option<&'a str> {
        let labels = node.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        if !self.required_keys.iter().all(|k| labels.contains_key(k)) {
            return None;
        }
        Some(match &self.topology_key {
            Some(key) => labels.get(key).map(String::as_str).unwrap_or(""),
            None => node.metadata.name.as_deref().unwrap_or(""),
        })
    }

    /// Counts from scratch. Every counting node's value is present, with 0
    /// when no pod matches there (spreading counts such empty domains).
    pub fn count<'a>(&self, nodes: impl Iterator<Item = &'a NodeInfo>) -> HashMap<String, i64> {
        let mut counts: HashMap<String, i64> = HashMap::new();
        for node in nodes {
            let Some(value) = self.node_value(node.node()) else {
                continue;
            };
            let matching = node.pods().iter().filter(|p| self.counts_pod(p)).count() as i64;
            match counts.get_mut(value) {
                Some(total) => *total += matching,
                None => {
                    counts.insert(value.to_string(), matching);
                }
            }
        }
        counts
    }
}

/// Beyond this many distinct counts the least recently used is dropped: each
/// kept count costs a selector match per pod event.
const CAPACITY: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct CountCache {
    entries: HashMap<CountKey, (Counts, u64)>,
    clock: u64,
}

impl CountCache {
    pub fn get(
        &mut self,
        key: &CountKey,
        compute: impl FnOnce() -> HashMap<String, i64>,
    ) -> Counts {
        self.clock += 1;
        if let Some((counts, used)) = self.entries.get_mut(key) {
            *used = self.clock;
            return counts.clone();
        }
        if self.entries.len() >= CAPACITY
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        let counts = Arc::new(compute());
        self.entries
            .insert(key.clone(), (counts.clone(), self.clock));
        counts
    }

    /// Forgets everything: node labels or the node set changed.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Accounts a pod placed on (delta 1) or taken off (delta -1) a node.
    pub fn pod_moved(&mut self, pod: &PodInfo, node: &Node, delta: i64) {
        for (key, (counts, _)) in &mut self.entries {
            if let Some(value) = key.node_value(node)
                && key.counts_pod(pod)
            {
                *Arc::make_mut(counts).entry(value.to_string()).or_insert(0) += delta;
            }
        }
    }
}

/// Per topology value, how many pods carry one required anti-affinity term
/// (pods on nodes without the term's topology key do not count). The
/// snapshot keeps one per distinct term so the incoming pod is checked
/// against each term once, not against every pod that has it.
#[derive(Debug, Default)]
pub(crate) struct AntiAffinityIndex {
    terms: HashMap<AffinityTerm, Counts>,
}

impl AntiAffinityIndex {
    pub fn pod_moved(&mut self, pod: &PodInfo, node_labels: &Labels, delta: i64) {
        for term in &pod.required_anti_affinity {
            let Some(value) = node_labels.get(&term.topology_key) else {
                continue;
            };
            let counts = self.terms.entry(term.clone()).or_default();
            let map = Arc::make_mut(counts);
            let count = map.entry(value.clone()).or_insert(0);
            *count += delta;
            if *count == 0 {
                map.remove(value);
                if map.is_empty() {
                    self.terms.remove(term);
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AffinityTerm, &Counts)> {
        self.terms.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::fixtures::{HOSTNAME, NodeBuilder, PodBuilder, ZONE};
    use crate::snapshot::Snapshot;

    fn selector(app: &str) -> LabelSelector {
        LabelSelector::from_map(&[("app".to_string(), app.to_string())].into())
    }

    fn keys() -> Vec<CountKey> {
        let spread = |key: &str, required: &[&str]| CountKey {
            rule: CountRule::Spread,
            matchers: vec![PodMatcher {
                namespaces: Some(vec!["default".into()]),
                selector: selector("web"),
            }],
            topology_key: Some(key.into()),
            required_keys: required.iter().map(|k| k.to_string()).collect(),
        };
        vec![
            spread(ZONE, &[ZONE]),
            spread(ZONE, &[]),
            spread(HOSTNAME, &[HOSTNAME, ZONE]),
            CountKey {
                rule: CountRule::Affinity,
                matchers: vec![PodMatcher {
                    namespaces: None,
                    selector: selector("db"),
                }],
                topology_key: Some(ZONE.into()),
                required_keys: vec![ZONE.into()],
            },
            CountKey {
                rule: CountRule::Spread,
                matchers: vec![PodMatcher {
                    namespaces: Some(vec!["default".into()]),
                    selector: selector("web"),
                }],
                topology_key: None,
                required_keys: Vec::new(),
            },
        ]
    }

    /// The anti-affinity index recomputed from the placed pods.
    fn anti_affinity_from_scratch(
        snapshot: &Snapshot,
    ) -> HashMap<AffinityTerm, HashMap<String, i64>> {
        let mut index: HashMap<AffinityTerm, HashMap<String, i64>> = HashMap::new();
        for node in snapshot.nodes() {
            for pod in node.pods() {
                for term in &pod.required_anti_affinity {
                    if let Some(value) = node.labels().get(&term.topology_key) {
                        *index
                            .entry(term.clone())
                            .or_default()
                            .entry(value.clone())
                            .or_default() += 1;
                    }
                }
            }
        }
        index
    }

    #[test]
    fn cached_counts_equal_a_rescan_through_churn() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut snapshot = Snapshot::new();
        for step in 0..600 {
            let node = format!("n{}", rng.random_range(0..6));
            match rng.random_range(0..10) {
                0 => snapshot.remove_node(&node),
                1 | 2 => {
                    let mut builder = NodeBuilder::new(&node);
                    if rng.random_bool(0.8) {
                        builder = builder.zone(["a", "b", "c"][rng.random_range(0..3)]);
                    }
                    snapshot.upsert_node(Arc::new(builder.build()));
                }
                3 | 4 => {
                    snapshot.remove_pod(&format!("default/p{}", rng.random_range(0..30)));
                }
                _ => {
                    let mut pod = PodBuilder::new(&format!("p{}", rng.random_range(0..30)))
                        .label("app", ["web", "db", "other"][rng.random_range(0..3)])
                        .node(&node);
                    if rng.random_bool(0.2) {
                        pod = pod.terminating();
                    }
                    if rng.random_bool(0.3) {
                        pod = pod.anti_affinity(
                            "app",
                            "web",
                            [ZONE, HOSTNAME][rng.random_range(0..2)],
                        );
                    }
                    snapshot.add_pod(Arc::new(pod.build()));
                }
            }
            for key in keys() {
                let cached = snapshot.pod_counts(&key);
                let fresh = key.count(snapshot.nodes());
                assert_eq!(*cached, fresh, "step {step}, {key:?}");
            }
            let indexed: HashMap<AffinityTerm, HashMap<String, i64>> = snapshot
                .anti_affinity_terms()
                .map(|(t, c)| (t.clone(), (**c).clone()))
                .collect();
            assert_eq!(
                indexed,
                anti_affinity_from_scratch(&snapshot),
                "step {step}"
            );
        }
    }
}
