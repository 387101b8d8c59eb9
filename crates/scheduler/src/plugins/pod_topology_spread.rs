//! PodTopologySpread: DoNotSchedule constraints filter nodes by skew; ScheduleAnyway constraints (or the system defaults) score them.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};

use crate::counts::{CountKey, CountRule, Counts, PodMatcher};
use crate::labels::{
    LabelSelector, Labels, RequiredNodeAffinity, Requirement, first_untolerated_hard_taint,
    pod_labels, pod_namespace,
};
use crate::pod_info::PodInfo;
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::{Code, Status};

use super::MAX_NODE_SCORE;

pub const NAME: &str = "PodTopologySpread";
pub const REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";
const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";

/// Upstream's system default constraints, used for scoring pods that have
/// none of their own and belong to a Service or workload: zones with skew
/// 5, hosts with skew 3, both ScheduleAnyway.
pub fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    [(ZONE, 5), (HOSTNAME, 3)]
        .into_iter()
        .map(|(key, skew)| TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.to_string(),
            when_unsatisfiable: SCHEDULE_ANYWAY.to_string(),
            ..Default::default()
        })
        .collect()
}

/// A compiled constraint, with upstream's defaults filled in.
#[derive(Clone, Debug)]
pub struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: LabelSelector,
    min_domains: i64,
    /// nodeAffinityPolicy Honor (default): only nodes matching the pod's
    /// node affinity count.
    honor_node_affinity: bool,
    /// nodeTaintsPolicy Honor (default Ignore): only nodes whose taints the
    /// pod tolerates count.
    honor_node_taints: bool,
}

impl Constraint {
    /// Upstream's `matchNodeInclusionPolicies`.
    fn includes(&self, pod: &Pod, node: &NodeInfo, required: &RequiredNodeAffinity) -> bool {
        if self.honor_node_affinity && !required.matches(node.name(), node.labels()) {
            return false;
        }
        if self.honor_node_taints {
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            if first_untolerated_hard_taint(node.taints(), tolerations).is_some() {
                return false;
            }
        }
        true
    }

    /// Whether which nodes count is the same for every pod: then the counts
    /// come from the snapshot's cache instead of a scan of every pod.
    fn counts_every_node(&self, required: &RequiredNodeAffinity) -> bool {
        let depends_on_pod =
            self.honor_node_taints || (self.honor_node_affinity && required.is_set());
        !depends_on_pod
    }

    fn count_key(&self, namespace: &str, required_keys: &[String]) -> CountKey {
        CountKey {
            rule: CountRule::Spread,
            matchers: vec![PodMatcher {
                namespaces: Some(vec![namespace.to_string()]),
                selector: self.selector.clone(),
            }],
            topology_key: Some(self.topology_key.clone()),
            required_keys: required_keys.to_vec(),
        }
    }

    /// Matching pods per node (upstream counts the hostname topology by node
    /// at score time, whatever the nodes' hostname labels say).
    fn per_node_count_key(&self, namespace: &str) -> CountKey {
        CountKey {
            topology_key: None,
            required_keys: Vec::new(),
            ..self.count_key(namespace, &[])
        }
    }
}

/// Every constraint's topology key, sorted (nodes must carry them all).
fn all_keys(constraints: &[Constraint]) -> Vec<String> {
    let mut keys: Vec<String> = constraints.iter().map(|c| c.topology_key.clone()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The constraints of `pod` with the given `whenUnsatisfiable`, or for a pod
/// without any, the defaults with a selector grouping the pod with its
/// Services and controller (none when nothing groups it).
fn constraints(
    pod: &Pod,
    action: &str,
    defaults: &[TopologySpreadConstraint],
    snapshot: &Snapshot,
) -> Vec<Constraint> {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    if !own.is_empty() {
        return compile(own, action, pod_labels(pod));
    }
    if !defaults.iter().any(|c| c.when_unsatisfiable == action) {
        return Vec::new();
    }
    let selector = snapshot.default_spread_selector(pod);
    if selector.is_empty() {
        return Vec::new();
    }
    let mut constraints = compile(defaults, action, pod_labels(pod));
    for constraint in &mut constraints {
        constraint.selector = selector.clone();
    }
    constraints
}

fn compile(
    constraints: &[TopologySpreadConstraint],
    action: &str,
    pod_labels: &Labels,
) -> Vec<Constraint> {
    constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| {
            let mut selector = LabelSelector::from_api(c.label_selector.as_ref());
            // matchLabelKeys: the pod's own values of these keys narrow the selector.
            let own_values: Vec<Requirement> = c
                .match_label_keys
                .iter()
                .flatten()
                .filter_map(|key| {
                    pod_labels
                        .get(key)
                        .map(|value| Requirement::equals(key, value))
                })
                .collect();
            if !own_values.is_empty() {
                selector.add(own_values);
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                topology_key: c.topology_key.clone(),
                selector,
                min_domains: i64::from(c.min_domains.unwrap_or(1)),
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn has_all_keys(labels: &Labels, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Pods in `namespace` that the selector matches, skipping terminating ones.
/// An empty selector counts nothing, as upstream's `countPodsMatchSelector`.
fn count_matching(
    pods: &[std::sync::Arc<PodInfo>],
    selector: &LabelSelector,
    namespace: &str,
) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    pods.iter()
        .filter(|p| {
            !p.terminating
                && pod_namespace(&p.pod) == namespace
                && selector.matches(pod_labels(&p.pod))
        })
        .count() as i64
}

/// The two topology values with the fewest matching pods, kept the way
/// upstream's `criticalPaths` keeps them (approximately, after updates).
#[derive(Clone, Debug)]
struct CriticalPaths([(String, i64); 2]);

impl CriticalPaths {
    fn new() -> CriticalPaths {
        CriticalPaths([
            (String::new(), i64::from(i32::MAX)),
            (String::new(), i64::from(i32::MAX)),
        ])
    }

    fn update(&mut self, value: &str, count: i64) {
        let paths = &mut self.0;
        let existing = if value == paths[0].0 {
            Some(0)
        } else if value == paths[1].0 {
            Some(1)
        } else {
            None
        };
        match existing {
            Some(i) => {
                paths[i].1 = count;
                if paths[0].1 > paths[1].1 {
                    paths.swap(0, 1);
                }
            }
            None => {
                if count < paths[0].1 {
                    paths[1] = paths[0].clone();
                    paths[0] = (value.to_string(), count);
                } else if count < paths[1].1 {
                    paths[1] = (value.to_string(), count);
                }
            }
        }
    }

    fn min(&self) -> i64 {
        self.0[0].1
    }
}

/// Filter-time counts: per DoNotSchedule constraint, matching pods per
/// topology value over the nodes that count.
#[derive(Clone, Debug)]
pub struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: topology value → matching pods.
    counts: Vec<Counts>,
    critical_paths: Vec<CriticalPaths>,
    /// Per constraint: eligible domains (for minDomains).
    domains: Vec<i64>,
    required: RequiredNodeAffinity,
}

/// `None`: the pod has no DoNotSchedule constraint and the filter skips it.
pub fn pre_filter(
    pod: &Pod,
    snapshot: &Snapshot,
    defaults: &[TopologySpreadConstraint],
) -> Option<FilterState> {
    let constraints = constraints(pod, DO_NOT_SCHEDULE, defaults, snapshot);
    if constraints.is_empty() {
        return None;
    }
    let required = RequiredNodeAffinity::of(pod);
    let namespace = pod_namespace(pod);
    let keys = all_keys(&constraints);
    let cached: Vec<Option<Counts>> = constraints
        .iter()
        .map(|c| {
            c.counts_every_node(&required)
                .then(|| snapshot.pod_counts(&c.count_key(namespace, &keys)))
        })
        .collect();
    // Constraints whose nodes depend on this pod's affinity or tolerations
    // are counted here, as upstream counts them all.
    let mut scanned: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    if cached.iter().any(Option::is_none) {
        for node in snapshot.nodes() {
            let labels = node.labels();
            if !has_all_keys(labels, &constraints) {
                continue;
            }
            for (i, constraint) in constraints.iter().enumerate() {
                if cached[i].is_some() || !constraint.includes(pod, node, &required) {
                    continue;
                }
                let value = labels
                    .get(&constraint.topology_key)
                    .map(String::as_str)
                    .unwrap_or("");
                let count = count_matching(node.pods(), &constraint.selector, namespace);
                match scanned[i].get_mut(value) {
                    Some(total) => *total += count,
                    None => {
                        scanned[i].insert(value.to_string(), count);
                    }
                }
            }
        }
    }
    let counts: Vec<Counts> = cached
        .into_iter()
        .zip(scanned)
        .map(|(cached, scanned)| cached.unwrap_or_else(|| Arc::new(scanned)))
        .collect();
    let domains = counts.iter().map(|c| c.len() as i64).collect();
    let critical_paths = counts
        .iter()
        .map(|c| {
            let mut paths = CriticalPaths::new();
            for (value, count) in c.iter() {
                paths.update(value, *count);
            }
            paths
        })
        .collect();
    Some(FilterState {
        constraints,
        counts,
        critical_paths,
        domains,
        required,
    })
}

impl FilterState {
    pub fn filter(&self, pod: &Pod, node: &NodeInfo) -> Result<(), Status> {
        let labels = node.labels();
        let own_labels = pod_labels(pod);
        for (i, constraint) in self.constraints.iter().enumerate() {
            let Some(value) = labels.get(&constraint.topology_key) else {
                return Err(Status::new(
                    Code::UnschedulableAndUnresolvable,
                    NAME,
                    REASON_NODE_LABEL_NOT_MATCH,
                ));
            };
            // With fewer eligible domains than minDomains, the global
            // minimum counts as zero.
            let min = if self.domains[i] < constraint.min_domains {
                0
            } else {
                self.critical_paths[i].min()
            };
            let self_match = i64::from(constraint.selector.matches(own_labels));
            let matching = self.counts[i].get(value).copied().unwrap_or(0);
            if matching + self_match - min > constraint.max_skew {
                return Err(Status::new(
                    Code::Unschedulable,
                    NAME,
                    REASON_CONSTRAINTS_NOT_MATCH,
                ));
            }
        }
        Ok(())
    }

    /// Accounts `other` appearing on (delta 1) or leaving (delta -1) `node`,
    /// for nominated pods and preemption victims.
    pub fn update(&mut self, pod: &Pod, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if pod_namespace(&other.pod) != pod_namespace(pod) {
            return;
        }
        let labels = node.labels();
        if !has_all_keys(labels, &self.constraints) {
            return;
        }
        for (i, constraint) in self.constraints.iter().enumerate() {
            if !constraint.selector.matches(pod_labels(&other.pod))
                || !constraint.includes(pod, node, &self.required)
            {
                continue;
            }
            let value = labels
                .get(&constraint.topology_key)
                .map(String::as_str)
                .unwrap_or("");
            let count = Arc::make_mut(&mut self.counts[i])
                .entry(value.to_string())
                .or_insert(0);
            *count += delta;
            let count = *count;
            self.critical_paths[i].update(value, count);
        }
    }
}

/// Score-time state for ScheduleAnyway constraints over the feasible nodes.
pub struct ScoreState {
    constraints: Vec<Constraint>,
    namespace: String,
    /// Per feasible node: left out because it lacks a topology key.
    ignored: Vec<bool>,
    /// Per constraint (not hostname): topology value → (matching pods,
    /// whether a feasible node reads it).
    pair_counts: Vec<HashMap<String, (i64, bool)>>,
    /// Per hostname constraint whose counts do not depend on the pod:
    /// matching pods per node name.
    per_node: Vec<Option<Counts>>,
    weights: Vec<f64>,
}

/// `None`: no ScheduleAnyway constraint applies and scoring skips the plugin.
pub fn pre_score(
    pod: &Pod,
    snapshot: &Snapshot,
    feasible: &[&NodeInfo],
    defaults: &[TopologySpreadConstraint],
    system_defaulted: bool,
) -> Option<ScoreState> {
    if feasible.is_empty() {
        return None;
    }
    let has_own = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty());
    let constraints = constraints(pod, SCHEDULE_ANYWAY, defaults, snapshot);
    if constraints.is_empty() {
        return None;
    }
    // Only the pod's own constraints (or custom defaults) require every
    // topology key: nodes without a zone still spread by hostname.
    let require_all = has_own || !system_defaulted;
    let mut ignored = vec![false; feasible.len()];
    let mut pair_counts: Vec<HashMap<String, (i64, bool)>> =
        vec![HashMap::new(); constraints.len()];
    let mut sizes = vec![0usize; constraints.len()];
    for (n, node) in feasible.iter().enumerate() {
        let labels = node.labels();
        if require_all && !has_all_keys(labels, &constraints) {
            ignored[n] = true;
            continue;
        }
        for (i, constraint) in constraints.iter().enumerate() {
            if constraint.topology_key == HOSTNAME {
                continue;
            }
            let label = labels.get(&constraint.topology_key);
            let value = label.map(String::as_str).unwrap_or("");
            let entry = match pair_counts[i].get_mut(value) {
                Some(entry) => entry,
                None => {
                    sizes[i] += 1;
                    pair_counts[i]
                        .entry(value.to_string())
                        .or_insert((0, false))
                }
            };
            // A pair is read at score time only by nodes that have the label.
            entry.1 |= label.is_some();
        }
    }
    let num_ignored = ignored.iter().filter(|i| **i).count();
    let weights = constraints
        .iter()
        .zip(&sizes)
        .map(|(c, size)| {
            let size = if c.topology_key == HOSTNAME {
                feasible.len() - num_ignored
            } else {
                *size
            };
            ((size + 2) as f64).ln()
        })
        .collect();

    let namespace = pod_namespace(pod).to_string();
    // Counting every node's pods is the expensive part: skip it when no
    // feasible node reads a count, and take it from the snapshot's cache
    // when which nodes count does not depend on this pod.
    let required = RequiredNodeAffinity::of(pod);
    let required_keys = if require_all {
        all_keys(&constraints)
    } else {
        Vec::new()
    };
    let read = |counts: &HashMap<String, (i64, bool)>| counts.values().any(|(_, read)| *read);
    let mut scan = vec![false; constraints.len()];
    let mut per_node = vec![None; constraints.len()];
    for (i, constraint) in constraints.iter().enumerate() {
        if constraint.topology_key == HOSTNAME {
            per_node[i] = Some(snapshot.pod_counts(&constraint.per_node_count_key(&namespace)));
            continue;
        }
        if !read(&pair_counts[i]) {
            continue;
        }
        if !constraint.counts_every_node(&required) {
            scan[i] = true;
            continue;
        }
        let cached = snapshot.pod_counts(&constraint.count_key(&namespace, &required_keys));
        for (value, (count, read)) in pair_counts[i].iter_mut() {
            if *read {
                *count = cached.get(value).copied().unwrap_or(0);
            }
        }
    }
    if scan.iter().any(|s| *s) {
        for node in snapshot.nodes() {
            let labels = node.labels();
            if require_all && !has_all_keys(labels, &constraints) {
                continue;
            }
            for (i, constraint) in constraints.iter().enumerate() {
                if !scan[i] {
                    continue;
                }
                let value = labels
                    .get(&constraint.topology_key)
                    .map(String::as_str)
                    .unwrap_or("");
                let Some((count, true)) = pair_counts[i].get_mut(value) else {
                    continue;
                };
                if !constraint.includes(pod, node, &required) {
                    continue;
                }
                *count += count_matching(node.pods(), &constraint.selector, &namespace);
            }
        }
    }
    Some(ScoreState {
        constraints,
        namespace,
        ignored,
        pair_counts,
        per_node,
        weights,
    })
}

impl ScoreState {
    /// The raw score of feasible node `index`: more matching pods in its
    /// domains is worse (reversed on normalisation).
    pub fn score(&self, index: usize, node: &NodeInfo) -> i64 {
        if self.ignored[index] {
            return 0;
        }
        let labels = node.labels();
        let mut score = 0.0;
        for (i, constraint) in self.constraints.iter().enumerate() {
            let Some(value) = labels.get(&constraint.topology_key) else {
                continue;
            };
            let count = if constraint.topology_key == HOSTNAME {
                match &self.per_node[i] {
                    Some(counts) => counts.get(node.name()).copied().unwrap_or(0),
                    None => count_matching(node.pods(), &constraint.selector, &self.namespace),
                }
            } else {
                self.pair_counts[i].get(value).map(|(c, _)| *c).unwrap_or(0)
            };
            score += count as f64 * self.weights[i] + (constraint.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    /// Upstream's NormalizeScore: fewest matching pods → 100; ignored nodes 0.
    pub fn normalize(&self, scores: &mut [i64]) {
        let mut min = i64::MAX;
        let mut max = 0;
        for (score, ignored) in scores.iter().zip(&self.ignored) {
            if !ignored {
                min = min.min(*score);
                max = max.max(*score);
            }
        }
        for (score, ignored) in scores.iter_mut().zip(&self.ignored) {
            *score = if *ignored {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *score) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Node;

    use crate::fixtures::{HOSTNAME, NodeBuilder, PodBuilder, ZONE};
    use crate::snapshot::ControllerKind;
    use crate::testing::{feasible, names, schedule, scores, scoring_only, snapshot_of};

    fn web(name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
        PodBuilder::new(name).label("app", "web").node(node).build()
    }

    fn zoned_nodes() -> Vec<Node> {
        vec![
            NodeBuilder::new("a1").zone("a").build(),
            NodeBuilder::new("a2").zone("a").build(),
            NodeBuilder::new("b1").zone("b").build(),
        ]
    }

    #[test]
    fn do_not_schedule_keeps_skew_within_max() {
        let snapshot = snapshot_of(zoned_nodes(), vec![web("w1", "a1"), web("w2", "a2")]);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread(1, ZONE, "DoNotSchedule", "app", "web")
            .build();
        assert_eq!(feasible(&snapshot, &pod), Ok(names(&["b1"])));
        // A pod its own selector does not match adds nothing to the skew.
        let other = PodBuilder::new("p")
            .label("app", "other")
            .spread(2, ZONE, "DoNotSchedule", "app", "web")
            .build();
        assert_eq!(feasible(&snapshot, &other), Ok(names(&["a1", "b1", "a2"])));
        // ScheduleAnyway constraints never filter.
        let soft = PodBuilder::new("p")
            .label("app", "web")
            .spread(1, ZONE, "ScheduleAnyway", "app", "web")
            .build();
        assert_eq!(feasible(&snapshot, &soft), Ok(names(&["a1", "b1", "a2"])));
    }

    #[test]
    fn nodes_without_the_topology_key_are_unresolvable() {
        let mut nodes = zoned_nodes();
        nodes.push(NodeBuilder::new("bare").build());
        let snapshot = snapshot_of(nodes, vec![web("w1", "a1"), web("w3", "b1")]);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread(1, ZONE, "DoNotSchedule", "app", "web")
            .with_last_spread(|c| c.min_domains = Some(3))
            .build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label), 3 node(s) didn't match pod topology spread constraints.".into())
        );
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let snapshot = snapshot_of(zoned_nodes(), vec![web("w1", "a1"), web("w2", "b1")]);
        let pod = |min_domains| {
            PodBuilder::new("p")
                .label("app", "web")
                .spread(1, ZONE, "DoNotSchedule", "app", "web")
                .with_last_spread(|c| c.min_domains = Some(min_domains))
                .build()
        };
        assert_eq!(feasible(&snapshot, &pod(2)), Ok(names(&["a1", "b1", "a2"])));
        // Three domains wanted, two exist: the global minimum is 0 and every
        // zone already holds one pod.
        assert_eq!(
            schedule(&snapshot, &pod(3)),
            Err(
                "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints."
                    .into()
            )
        );
    }

    #[test]
    fn inclusion_policies_choose_which_nodes_count() {
        let nodes = vec![
            NodeBuilder::new("a1")
                .zone("a")
                .label("pool", "app")
                .build(),
            NodeBuilder::new("b1")
                .zone("b")
                .label("pool", "app")
                .build(),
            NodeBuilder::new("c1")
                .zone("c")
                .label("pool", "batch")
                .taint("dedicated", "batch", "NoSchedule")
                .build(),
        ];
        let snapshot = snapshot_of(nodes, vec![web("w1", "a1"), web("w2", "b1")]);
        let pod = |affinity: Option<&str>, taints: Option<&str>| {
            PodBuilder::new("p")
                .label("app", "web")
                .node_selector("pool", "app")
                .spread(1, ZONE, "DoNotSchedule", "app", "web")
                .with_last_spread(|c| {
                    c.node_affinity_policy = affinity.map(str::to_string);
                    c.node_taints_policy = taints.map(str::to_string);
                })
                .build()
        };
        // Honor node affinity (default): zone c does not count, min is 1.
        assert_eq!(
            feasible(&snapshot, &pod(None, None)),
            Ok(names(&["a1", "b1"]))
        );
        // Ignore it: empty zone c counts, min is 0, both app zones are too full.
        assert_eq!(
            schedule(&snapshot, &pod(Some("Ignore"), None)),
            Err("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: batch}, 2 node(s) didn't match pod topology spread constraints.".into())
        );
        // Honoring taints leaves the untolerated zone c out again.
        assert_eq!(
            feasible(&snapshot, &pod(Some("Ignore"), Some("Honor"))),
            Ok(names(&["a1", "b1"]))
        );
    }

    #[test]
    fn match_label_keys_narrow_the_selector_to_the_pods_own_values() {
        let version = |name: &str, node: &str, v: &str| {
            PodBuilder::new(name)
                .label("app", "web")
                .label("version", v)
                .node(node)
                .build()
        };
        let snapshot = snapshot_of(
            zoned_nodes(),
            vec![
                version("o1", "a1", "v1"),
                version("o2", "a2", "v1"),
                version("n1", "b1", "v2"),
                version("n2", "b1", "v2"),
            ],
        );
        let pod = |keys: Option<Vec<String>>| {
            PodBuilder::new("p")
                .label("app", "web")
                .label("version", "v2")
                .spread(1, ZONE, "DoNotSchedule", "app", "web")
                .with_last_spread(|c| c.match_label_keys = keys)
                .build()
        };
        assert_eq!(
            feasible(&snapshot, &pod(None)),
            Ok(names(&["a1", "b1", "a2"]))
        );
        assert_eq!(
            feasible(&snapshot, &pod(Some(vec!["version".into()]))),
            Ok(names(&["a1", "a2"]))
        );
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let nodes = vec![
            NodeBuilder::new("n1").build(),
            NodeBuilder::new("n2").build(),
            NodeBuilder::new("n3").build(),
        ];
        let snapshot = snapshot_of(
            nodes,
            vec![web("w1", "n1"), web("w2", "n1"), web("w3", "n2")],
        );
        let framework = scoring_only(|w| w.pod_topology_spread = 1);
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread(1, HOSTNAME, "ScheduleAnyway", "app", "web")
            .build();
        // Weight ln(3 + 2) = 1.609: n1 2 pods → round(3.22) = 3, n2 → 2, n3 → 0;
        // normalised 100 * (3 + 0 - s) / 3.
        assert_eq!(scores(&framework, &snapshot, &pod), [0, 33, 100]);
    }

    #[test]
    fn default_spreading_applies_to_pods_of_services_and_workloads() {
        let nodes = vec![
            NodeBuilder::new("n1").zone("a").build(),
            NodeBuilder::new("n2").zone("a").build(),
        ];
        let owned = |name: &str| {
            PodBuilder::new(name)
                .label("app", "web")
                .owner("apps/v1", "ReplicaSet", "web-abc")
        };
        let mut snapshot = snapshot_of(
            nodes,
            vec![
                owned("w1").node("n1").build(),
                owned("w2").node("n1").build(),
            ],
        );
        let framework = scoring_only(|w| w.pod_topology_spread = 1);
        // Unknown ReplicaSet and no Service: nothing groups the pod.
        assert_eq!(scores(&framework, &snapshot, &owned("p").build()), [0, 0]);
        snapshot.upsert_controller(
            ControllerKind::ReplicaSet,
            "default",
            "web-abc",
            crate::labels::LabelSelector::from_map(
                &[("app".to_string(), "web".to_string())].into(),
            ),
        );
        // Zone (skew 5, one zone: weight ln 3) and hostname (skew 3, two nodes:
        // weight ln 4): n1 = round(2 ln 3 + 4 + 2 ln 4 + 2) = 11,
        // n2 = round(2 ln 3 + 4 + 0 + 2) = 8; normalised 100 * (11 + 8 - s) / 11.
        assert_eq!(
            scores(&framework, &snapshot, &owned("p").build()),
            [72, 100]
        );
        // A Service selecting the pod groups it just as well.
        let mut snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1").build(),
                NodeBuilder::new("n2").build(),
            ],
            vec![web("w1", "n1"), web("w2", "n1")],
        );
        snapshot.upsert_service(
            "default",
            "web",
            Some(&[("app".to_string(), "web".to_string())].into()),
        );
        // Without zones only hostname spreading counts: n1 = round(2 ln 4 + 2) = 5, n2 = 2.
        let pod = PodBuilder::new("p").label("app", "web").build();
        assert_eq!(scores(&framework, &snapshot, &pod), [40, 100]);
    }
}
