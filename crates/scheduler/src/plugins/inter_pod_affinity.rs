//! InterPodAffinity: required pod affinity and anti-affinity (the pod's own and existing pods' against it) filter nodes; preferred terms score them.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use crate::counts::{CountKey, CountRule, Counts, PodMatcher};
use crate::labels::{LabelSelector, Labels, pod_namespace};
use crate::pod_info::{AffinityTerm, PodFacts, PodInfo, WeightedAffinityTerm};
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::{Code, Status};

use super::MAX_NODE_SCORE;

pub const NAME: &str = "InterPodAffinity";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Counts per topology pair (key → value → count); pairs at zero are
/// dropped so emptiness means "no pair counted".
#[derive(Clone, Debug, Default)]
struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    fn update(&mut self, node_labels: &Labels, key: &str, delta: i64) {
        let Some(value) = node_labels.get(key) else {
            return;
        };
        let values = self.0.entry(key.to_string()).or_default();
        let count = values.entry(value.clone()).or_insert(0);
        *count += delta;
        if *count == 0 {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }
}

/// Replaces a term's namespace selector by the namespaces it selects now, as
/// upstream does for the incoming pod's terms. An empty selector (all
/// namespaces) and a nil one are kept as they are.
fn merge_namespaces(term: &AffinityTerm, snapshot: &Snapshot) -> AffinityTerm {
    let mut merged = term.clone();
    if matches!(&term.namespace_selector, LabelSelector::All(r) if !r.is_empty()) {
        merged.namespaces.extend(
            snapshot
                .namespaces_matching(&term.namespace_selector)
                .map(str::to_string),
        );
        merged.namespace_selector = LabelSelector::Nothing;
    }
    merged
}

/// Whether `pod` matches every term (and there is at least one).
fn matches_all(terms: &[AffinityTerm], pod: &Pod) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, None))
}

/// Counts per topology pair: shared per-term counts from the snapshot,
/// summed, plus this cycle's own changes (nominated pods, victims).
#[derive(Clone, Debug, Default)]
struct PairCounts {
    shared: Vec<(String, Counts)>,
    local: TopologyCounts,
}

impl PairCounts {
    fn get(&self, key: &str, value: &str) -> i64 {
        let shared: i64 = self
            .shared
            .iter()
            .filter(|(k, _)| k == key)
            .filter_map(|(_, counts)| counts.get(value))
            .sum();
        shared + self.local.get(key, value)
    }

    /// Whether some pair the node is in counts more than zero.
    fn positive_on(&self, node_labels: &Labels) -> bool {
        let keys = self
            .shared
            .iter()
            .map(|(k, _)| k)
            .chain(self.local.0.keys());
        keys.into_iter().any(|key| {
            node_labels
                .get(key)
                .is_some_and(|value| self.get(key, value) > 0)
        })
    }

    /// Whether no pair counts anything (upstream's empty count map).
    fn is_empty(&self) -> bool {
        let shared = self
            .shared
            .iter()
            .flat_map(|(key, counts)| counts.keys().map(move |value| (key, value)));
        let local = self
            .local
            .0
            .iter()
            .flat_map(|(key, values)| values.keys().map(move |value| (key, value)));
        !shared
            .chain(local)
            .any(|(key, value)| self.get(key, value) != 0)
    }
}

/// Filter-time state for one pod.
#[derive(Clone, Debug)]
pub struct FilterState {
    affinity_terms: Vec<AffinityTerm>,
    anti_affinity_terms: Vec<AffinityTerm>,
    namespace_labels: Option<Labels>,
    /// Pairs where existing pods' anti-affinity rejects the incoming pod.
    existing_anti_affinity: PairCounts,
    /// Pairs holding pods that match all the incoming pod's affinity terms.
    affinity_counts: PairCounts,
    /// No pod anywhere matches the pod's affinity terms.
    no_affinity_match: bool,
    /// Pairs holding pods the incoming pod's anti-affinity terms select.
    anti_affinity_counts: PairCounts,
}

/// The count of pods matching `matchers`, per value of `topology_key`.
fn count_key(matchers: Vec<PodMatcher>, topology_key: &str) -> CountKey {
    CountKey {
        rule: CountRule::Affinity,
        matchers,
        topology_key: Some(topology_key.to_string()),
        required_keys: vec![topology_key.to_string()],
    }
}

/// `None`: nobody's required (anti-)affinity concerns this pod and the
/// filter skips it.
pub fn pre_filter(pod: &Pod, facts: &PodFacts, snapshot: &Snapshot) -> Option<FilterState> {
    let namespace_labels = snapshot.namespace_labels(pod_namespace(pod)).cloned();
    let mut existing_anti_affinity = PairCounts::default();
    for (term, counts) in snapshot.anti_affinity_terms() {
        if term.matches(pod, namespace_labels.as_ref()) {
            existing_anti_affinity
                .shared
                .push((term.topology_key.clone(), counts.clone()));
        }
    }
    if existing_anti_affinity.shared.is_empty()
        && facts.required_affinity.is_empty()
        && facts.required_anti_affinity.is_empty()
    {
        return None;
    }
    let affinity_terms: Vec<AffinityTerm> = facts
        .required_affinity
        .iter()
        .map(|t| merge_namespaces(t, snapshot))
        .collect();
    let anti_affinity_terms: Vec<AffinityTerm> = facts
        .required_anti_affinity
        .iter()
        .map(|t| merge_namespaces(t, snapshot))
        .collect();
    // A pod counts for affinity when it matches every term; it then counts
    // once in each term's topology.
    let mut affinity_counts = PairCounts::default();
    if !affinity_terms.is_empty() {
        let matchers: Vec<PodMatcher> = affinity_terms.iter().map(PodMatcher::of_term).collect();
        for term in &affinity_terms {
            let counts = snapshot.pod_counts(&count_key(matchers.clone(), &term.topology_key));
            affinity_counts
                .shared
                .push((term.topology_key.clone(), counts));
        }
    }
    let mut anti_affinity_counts = PairCounts::default();
    for term in &anti_affinity_terms {
        let counts = snapshot.pod_counts(&count_key(
            vec![PodMatcher::of_term(term)],
            &term.topology_key,
        ));
        anti_affinity_counts
            .shared
            .push((term.topology_key.clone(), counts));
    }
    Some(FilterState {
        no_affinity_match: affinity_counts.is_empty(),
        affinity_terms,
        anti_affinity_terms,
        namespace_labels,
        existing_anti_affinity,
        affinity_counts,
        anti_affinity_counts,
    })
}

impl FilterState {
    pub fn filter(&self, pod: &Pod, node: &NodeInfo) -> Result<(), Status> {
        let labels = node.labels();
        if !self.satisfies_affinity(pod, labels) {
            return Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                NAME,
                REASON_AFFINITY,
            ));
        }
        let repelled = self.anti_affinity_terms.iter().any(|t| {
            labels
                .get(&t.topology_key)
                .is_some_and(|value| self.anti_affinity_counts.get(&t.topology_key, value) > 0)
        });
        if repelled {
            return Err(Status::new(Code::Unschedulable, NAME, REASON_ANTI_AFFINITY));
        }
        if self.existing_anti_affinity.positive_on(labels) {
            return Err(Status::new(
                Code::Unschedulable,
                NAME,
                REASON_EXISTING_ANTI_AFFINITY,
            ));
        }
        Ok(())
    }

    fn satisfies_affinity(&self, pod: &Pod, labels: &Labels) -> bool {
        let mut pods_exist = true;
        for term in &self.affinity_terms {
            match labels.get(&term.topology_key) {
                // The node must have every topology key.
                None => return false,
                Some(value) if self.affinity_counts.get(&term.topology_key, value) <= 0 => {
                    pods_exist = false
                }
                Some(_) => {}
            }
        }
        // The first pod of a group with affinity to itself: no pod matches
        // anywhere yet, so it may go wherever the topology keys exist.
        pods_exist || (self.no_affinity_match && matches_all(&self.affinity_terms, pod))
    }

    /// Accounts `other` appearing on (delta 1) or leaving (delta -1) `node`.
    pub fn update(&mut self, pod: &Pod, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let labels = node.labels();
        for term in &other.required_anti_affinity {
            if term.matches(pod, self.namespace_labels.as_ref()) {
                self.existing_anti_affinity
                    .local
                    .update(labels, &term.topology_key, delta);
            }
        }
        if matches_all(&self.affinity_terms, &other.pod) {
            for term in &self.affinity_terms {
                self.affinity_counts
                    .local
                    .update(labels, &term.topology_key, delta);
            }
            self.no_affinity_match = self.affinity_counts.is_empty();
        }
        for term in &self.anti_affinity_terms {
            if term.matches(&other.pod, None) {
                self.anti_affinity_counts
                    .local
                    .update(labels, &term.topology_key, delta);
            }
        }
    }
}

/// Score-time state: weights per topology pair.
pub struct ScoreState {
    /// The pod's own preferred terms: weight × matching pods per value.
    weighted: Vec<(String, i64, Counts)>,
    /// Existing pods' terms about the pod, summed per pair.
    topology_score: HashMap<String, HashMap<String, i64>>,
}

/// `None` when no term of the pod or of any existing pod scores anything.
pub fn pre_score(
    pod: &Pod,
    facts: &PodFacts,
    snapshot: &Snapshot,
    hard_pod_affinity_weight: i64,
) -> Option<ScoreState> {
    // The pod's preferences about every pod: from the snapshot's counts.
    let preferred = facts
        .preferred_affinity
        .iter()
        .map(|t| (t, 1))
        .chain(facts.preferred_anti_affinity.iter().map(|t| (t, -1)));
    let weighted: Vec<(String, i64, Counts)> = preferred
        .map(|(t, sign)| {
            let term = merge_namespaces(&t.term, snapshot);
            let counts = snapshot.pod_counts(&count_key(
                vec![PodMatcher::of_term(&term)],
                &term.topology_key,
            ));
            (term.topology_key, t.weight * sign, counts)
        })
        .collect();
    // Existing pods' rules about this pod: only pods with scoring terms have any.
    let namespace_labels = snapshot.namespace_labels(pod_namespace(pod));
    let mut scores = ScoreMap::default();
    for node in snapshot.nodes_with_scoring_affinity_pods() {
        let labels = node.labels();
        if labels.is_empty() {
            continue;
        }
        for existing in node.pods_with_affinity() {
            if hard_pod_affinity_weight > 0 {
                for term in &existing.required_affinity {
                    scores.add(
                        term,
                        hard_pod_affinity_weight,
                        pod,
                        namespace_labels,
                        labels,
                    );
                }
            }
            scores.add_weighted(
                &existing.preferred_affinity,
                pod,
                namespace_labels,
                labels,
                1,
            );
            scores.add_weighted(
                &existing.preferred_anti_affinity,
                pod,
                namespace_labels,
                labels,
                -1,
            );
        }
    }
    (!weighted.is_empty() || !scores.0.is_empty()).then_some(ScoreState {
        weighted,
        topology_score: scores.0,
    })
}

#[derive(Default)]
struct ScoreMap(HashMap<String, HashMap<String, i64>>);

impl ScoreMap {
    fn add(
        &mut self,
        term: &AffinityTerm,
        weight: i64,
        pod: &Pod,
        namespace_labels: Option<&Labels>,
        node_labels: &Labels,
    ) {
        if !term.matches(pod, namespace_labels) {
            return;
        }
        if let Some(value) = node_labels.get(&term.topology_key) {
            *self
                .0
                .entry(term.topology_key.clone())
                .or_default()
                .entry(value.clone())
                .or_insert(0) += weight;
        }
    }

    fn add_weighted(
        &mut self,
        terms: &[WeightedAffinityTerm],
        pod: &Pod,
        namespace_labels: Option<&Labels>,
        node_labels: &Labels,
        sign: i64,
    ) {
        for term in terms {
            self.add(
                &term.term,
                term.weight * sign,
                pod,
                namespace_labels,
                node_labels,
            );
        }
    }
}

impl ScoreState {
    pub fn score(&self, node: &NodeInfo) -> i64 {
        let labels = node.labels();
        let own: i64 = self
            .weighted
            .iter()
            .filter_map(|(key, weight, counts)| {
                labels
                    .get(key)
                    .map(|v| weight * counts.get(v).copied().unwrap_or(0))
            })
            .sum();
        let existing: i64 = self
            .topology_score
            .iter()
            .filter_map(|(key, values)| {
                labels.get(key).map(|v| values.get(v).copied().unwrap_or(0))
            })
            .sum();
        own + existing
    }

    /// Min-max scaling to 0..=100.
    pub fn normalize(scores: &mut [i64]) {
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let spread = max - min;
        for score in scores.iter_mut() {
            *score = if spread > 0 {
                (MAX_NODE_SCORE as f64 * ((*score - min) as f64 / spread as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Pod};

    use crate::fixtures::{HOSTNAME, NodeBuilder, PodBuilder, ZONE};
    use crate::testing::{feasible, names, schedule, scores, scoring_only, snapshot_of};

    fn nodes() -> Vec<Node> {
        vec![
            NodeBuilder::new("a1").zone("a").build(),
            NodeBuilder::new("b1").zone("b").build(),
            NodeBuilder::new("b2").zone("b").build(),
        ]
    }

    fn labelled(name: &str, app: &str, node: &str) -> Pod {
        PodBuilder::new(name).label("app", app).node(node).build()
    }

    #[test]
    fn required_affinity_follows_matching_pods() {
        let snapshot = snapshot_of(nodes(), vec![labelled("db", "db", "b1")]);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .affinity("app", "db", ZONE)
            .build();
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["b1", "b2"])));
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .affinity("app", "db", HOSTNAME)
            .build();
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["b1"])));
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .affinity("app", "cache", ZONE)
            .build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/3 nodes are available: 3 node(s) didn't match pod affinity rules.".into())
        );
    }

    #[test]
    fn the_first_pod_of_a_self_affine_group_goes_anywhere_with_the_topology() {
        let mut with_bare = nodes();
        with_bare.push(NodeBuilder::new("bare").build());
        let snapshot = snapshot_of(with_bare, vec![]);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .affinity("app", "web", ZONE)
            .build();
        // Not "bare": it lacks the topology key.
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["a1", "b1", "b2"])));
    }

    #[test]
    fn required_anti_affinity_keeps_away_from_matching_pods() {
        let snapshot = snapshot_of(nodes(), vec![labelled("w1", "web", "b1")]);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .anti_affinity("app", "web", HOSTNAME)
            .build();
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["a1", "b2"])));
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .anti_affinity("app", "web", ZONE)
            .build();
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["a1"])));
        let snapshot = snapshot_of(
            nodes(),
            vec![labelled("w1", "web", "a1"), labelled("w2", "web", "b1")],
        );
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.".into())
        );
    }

    #[test]
    fn existing_pods_anti_affinity_rejects_the_incoming_pod() {
        let loner = PodBuilder::new("loner")
            .label("app", "db")
            .anti_affinity("app", "web", ZONE)
            .node("b1")
            .build();
        let snapshot = snapshot_of(nodes(), vec![loner]);
        let pod = PodBuilder::new("p").label("app", "web").build();
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["a1"])));
        let snapshot = snapshot_of(
            nodes(),
            vec![
                PodBuilder::new("l1")
                    .anti_affinity("app", "web", ZONE)
                    .node("a1")
                    .build(),
                PodBuilder::new("l2")
                    .anti_affinity("app", "web", ZONE)
                    .node("b2")
                    .build(),
            ],
        );
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules.".into())
        );
    }

    #[test]
    fn terms_select_namespaces_by_name_or_selector() {
        let other = PodBuilder::new("db")
            .namespace("data")
            .label("app", "db")
            .node("b1")
            .build();
        let mut snapshot = snapshot_of(nodes(), vec![other]);
        snapshot.set_namespace("data", [("team".to_string(), "storage".to_string())].into());
        snapshot.set_namespace("default", Default::default());
        let term = |namespaces: serde_json::Value, selector: serde_json::Value| {
            PodBuilder::new("p")
                .label("app", "web")
                .with_spec(move |s| {
                    let mut term = serde_json::json!({"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": HOSTNAME});
                    if !namespaces.is_null() {
                        term["namespaces"] = namespaces;
                    }
                    if !selector.is_null() {
                        term["namespaceSelector"] = selector;
                    }
                    s.affinity = serde_json::from_value(serde_json::json!({"podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}))
                    .ok();
                })
                .build()
        };
        let none: Vec<String> = vec![];
        // The pod's own namespace by default: no db there.
        assert_eq!(
            feasible(
                &snapshot,
                &term(serde_json::Value::Null, serde_json::Value::Null)
            ),
            Ok(none.clone())
        );
        assert_eq!(
            feasible(
                &snapshot,
                &term(serde_json::json!(["data"]), serde_json::Value::Null)
            ),
            Ok(names(&["b1"]))
        );
        assert_eq!(
            feasible(
                &snapshot,
                &term(
                    serde_json::Value::Null,
                    serde_json::json!({"matchLabels": {"team": "storage"}})
                )
            ),
            Ok(names(&["b1"]))
        );
        assert_eq!(
            feasible(
                &snapshot,
                &term(serde_json::Value::Null, serde_json::json!({}))
            ),
            Ok(names(&["b1"]))
        );
        assert_eq!(
            feasible(
                &snapshot,
                &term(
                    serde_json::Value::Null,
                    serde_json::json!({"matchLabels": {"team": "web"}})
                )
            ),
            Ok(none)
        );
    }

    #[test]
    fn preferred_terms_and_existing_pods_score() {
        let snapshot = snapshot_of(
            nodes(),
            vec![labelled("db", "db", "b1"), labelled("noisy", "batch", "a1")],
        );
        let framework = scoring_only(|w| w.inter_pod_affinity = 1);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .preferred_affinity(10, "app", "db", ZONE)
            .build();
        assert_eq!(scores(&framework, &snapshot, &pod), [0, 100, 100]);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .preferred_affinity(10, "app", "db", HOSTNAME)
            .preferred_anti_affinity(5, "app", "batch", ZONE)
            .build();
        // a1: -5, b1: +10, b2: 0 → min-max scaled.
        assert_eq!(scores(&framework, &snapshot, &pod), [0, 100, 33]);
        // An existing pod's required affinity to the incoming pod counts with
        // the hard pod affinity weight (1).
        let fan = PodBuilder::new("fan")
            .affinity("app", "web", ZONE)
            .node("a1")
            .build();
        let snapshot = snapshot_of(nodes(), vec![fan]);
        assert_eq!(
            scores(
                &framework,
                &snapshot,
                &PodBuilder::new("p").label("app", "web").build()
            ),
            [100, 0, 0]
        );
    }
}
