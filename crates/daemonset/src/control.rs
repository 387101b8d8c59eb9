//! The pure decisions of a DaemonSet sync: which nodes need a pod and which pods must go (upstream's `manage`), which old pods a rolling update replaces, the status counts, and the failed-pod backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::eligibility::{add_daemon_tolerations, node_should_run_daemon_pod};
use crate::revision::HASH_LABEL;

/// The deprecated template-generation label daemon pods still carry.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Where the API server keeps a DaemonSet's template generation.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

pub type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

/// The template generation from the DaemonSet's annotation, if present.
pub fn template_generation(daemon_set: &DaemonSet) -> Option<i64> {
    daemon_set
        .metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The node a daemon pod is for: its nodeName once bound, before that the
/// single `metadata.name In [node]` field requirement of its affinity.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|term| term.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([node]) => Some(node.clone()),
            _ => None,
        })
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node
/// affinity becomes the one term naming `node` (the DaemonSet's own terms
/// were already applied when choosing the node).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The pod for `node`: the template with the daemon tolerations, the hash
/// and generation labels, pinned to the node, controlled by the DaemonSet.
pub fn new_pod(daemon_set: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = daemon_set.spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    if let Some(generation) = template_generation(daemon_set) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.into());
    }
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                daemon_set.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: daemon_set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![client::owners::controller_reference(daemon_set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether the pod runs the current template: its hash label, or its
/// template generation label.
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let generation_matches = generation
        .is_some_and(|g| label(pod, TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
    let hash_matches = !hash.is_empty() && label(pod, HASH_LABEL) == Some(hash);
    hash_matches || generation_matches
}

fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (condition.status == "True").then(|| condition.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least minReadySeconds.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => {
            since.is_some_and(|t| t + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now)
        }
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The DaemonSet's pods by target node, leaving out finished pods already
/// being deleted and pods naming no node.
pub fn group_by_node(pods: &[Arc<Pod>]) -> NodePods {
    let mut grouped = NodePods::new();
    for pod in pods {
        let terminal = matches!(phase(pod), "Failed" | "Succeeded");
        if terminal && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(pod) {
            grouped.entry(node).or_default().push(pod.clone());
        }
    }
    grouped
}

/// Scheduled pods first, then oldest first, then by name.
fn sort_oldest_first(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let scheduled = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| !n.is_empty())
        };
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        scheduled(b)
            .cmp(&scheduled(a))
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| pod_name(a).cmp(pod_name(b)))
    });
}

const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Per DaemonSet and node, how long to wait before deleting another failed
/// pod there (upstream's failedPodsBackoff: 1 s doubling to 15 min).
#[derive(Debug, Default)]
pub struct FailedPodBackoff {
    entries: HashMap<String, (Duration, Timestamp)>,
}

impl FailedPodBackoff {
    fn in_backoff(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let (delay, last) = self.entries.get(key)?;
        let elapsed = now.duration_since(*last);
        (elapsed < SignedDuration::try_from(*delay).unwrap_or(SignedDuration::MAX))
            .then_some(*delay)
    }

    fn next(&mut self, key: &str, now: Timestamp) {
        let horizon = SignedDuration::try_from(BACKOFF_MAX * 2).unwrap_or(SignedDuration::MAX);
        let delay = match self.entries.get(key) {
            Some((delay, last)) if now.duration_since(*last) <= horizon => {
                (*delay * 2).min(BACKOFF_MAX)
            }
            _ => BACKOFF_INITIAL,
        };
        self.entries.insert(key.to_string(), (delay, now));
    }

    /// Forgets entries idle for twice the maximum delay.
    pub fn collect_garbage(&mut self, now: Timestamp) {
        let horizon = SignedDuration::try_from(BACKOFF_MAX * 2).unwrap_or(SignedDuration::MAX);
        self.entries
            .retain(|_, (_, last)| now.duration_since(*last) <= horizon);
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct ManagePlan {
    /// Nodes that get a new pod.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// Failed pods found (pod, node), each reported by a warning event.
    pub failed: Vec<(String, String)>,
    /// Look again once a failed pod's backoff has passed.
    pub requeue_after: Option<Duration>,
}

fn allows_surge(daemon_set: &DaemonSet, desired: i32) -> bool {
    rolling_update(daemon_set).is_some() && surge_count(daemon_set, desired) > 0
}

fn rolling_update(
    daemon_set: &DaemonSet,
) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = daemon_set.spec.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// An int-or-percent scaled to `total`, percentages rounded up.
fn scaled(value: Option<&IntOrString>, total: i32, default: i32) -> i32 {
    match value {
        None => default,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(text)) => text
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(default, |percent| {
                ((percent * i64::from(total) + 99) / 100) as i32
            }),
    }
}

fn surge_count(daemon_set: &DaemonSet, desired: i32) -> i32 {
    rolling_update(daemon_set).map_or(0, |r| scaled(r.max_surge.as_ref(), desired, 0))
}

fn unavailable_count(daemon_set: &DaemonSet, desired: i32) -> i32 {
    rolling_update(daemon_set).map_or(0, |r| scaled(r.max_unavailable.as_ref(), desired, 1))
}

fn min_ready_seconds(daemon_set: &DaemonSet) -> i32 {
    daemon_set.spec.min_ready_seconds.unwrap_or(0)
}

fn desired_count(daemon_set: &DaemonSet, nodes: &[Arc<Node>]) -> i32 {
    nodes
        .iter()
        .filter(|node| node_should_run_daemon_pod(node, daemon_set).should_run)
        .count() as i32
}

/// Upstream's `manage`: a pod for every node that should run one, none on
/// nodes that should not, failed pods deleted (with backoff), duplicates
/// removed, and unscheduled pods for vanished nodes removed.
pub fn plan_manage(
    daemon_set: &DaemonSet,
    daemon_set_key: &str,
    nodes: &[Arc<Node>],
    node_pods: &NodePods,
    hash: &str,
    backoff: &mut FailedPodBackoff,
    now: Timestamp,
) -> ManagePlan {
    let mut plan = ManagePlan::default();
    let surge = allows_surge(daemon_set, desired_count(daemon_set, nodes));
    for node in nodes {
        let name = node_name(node);
        let eligibility = node_should_run_daemon_pod(node, daemon_set);
        let pods = node_pods.get(name);
        match pods {
            None if eligibility.should_run => plan.create_on.push(name.into()),
            Some(pods) if eligibility.should_continue_running => {
                let mut running = Vec::new();
                for pod in pods {
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    match phase(pod) {
                        "Failed" => {
                            let key = format!("{daemon_set_key}/{name}");
                            if let Some(delay) = backoff.in_backoff(&key, now) {
                                plan.requeue_after =
                                    Some(plan.requeue_after.map_or(delay, |d| d.min(delay)));
                                continue;
                            }
                            backoff.next(&key, now);
                            plan.failed.push((pod_name(pod).into(), name.into()));
                            plan.delete.push(pod_name(pod).into());
                        }
                        "Succeeded" => plan.delete.push(pod_name(pod).into()),
                        _ => running.push(pod.clone()),
                    }
                }
                sort_oldest_first(&mut running);
                if !surge {
                    plan.delete
                        .extend(running.iter().skip(1).map(|p| pod_name(p).to_string()));
                } else {
                    // Keep the oldest updated and the oldest outdated pod.
                    let (mut kept_new, mut kept_old) = (false, false);
                    for pod in &running {
                        let kept = if label(pod, HASH_LABEL) == Some(hash) {
                            &mut kept_new
                        } else {
                            &mut kept_old
                        };
                        if !*kept {
                            *kept = true;
                        } else {
                            plan.delete.push(pod_name(pod).into());
                        }
                    }
                }
            }
            None => {}
            Some(pods) if !eligibility.should_continue_running => {
                plan.delete.extend(
                    pods.iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .map(|p| pod_name(p).to_string()),
                );
            }
            Some(_) => {}
        }
    }
    // Pods for nodes that no longer exist never get scheduled, and no pod
    // garbage collector removes them.
    for (node, pods) in node_pods {
        if nodes.iter().any(|n| node_name(n) == node) {
            continue;
        }
        for pod in pods {
            let unscheduled = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none_or(|n| n.is_empty());
            if unscheduled {
                plan.delete.push(pod_name(pod).into());
            }
        }
    }
    plan
}

/// The pod on a node running the current template, and the one running an
/// older template.
type NewAndOld = (Option<Arc<Pod>>, Option<Arc<Pod>>);

/// The updated and the outdated pod on a node, or `None` when there
/// are several of one kind (the manage step cleans that up first).
fn updated_and_old(pods: &[Arc<Pod>], hash: &str, generation: Option<i64>) -> Option<NewAndOld> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod.clone());
    }
    Some((new, old))
}

#[derive(Debug, Default, PartialEq)]
pub struct RollingUpdatePlan {
    pub delete: Vec<String>,
    pub create_on: Vec<String>,
}

/// Upstream's `rollingUpdate`: without surge, delete old pods while at most
/// maxUnavailable are unavailable (the manage step recreates them); with
/// surge, start new pods beside old ones up to maxSurge and delete each old
/// pod once its replacement is available.
pub fn plan_rolling_update(
    daemon_set: &DaemonSet,
    nodes: &[Arc<Node>],
    node_pods: &NodePods,
    hash: &str,
    now: Timestamp,
) -> RollingUpdatePlan {
    let generation = template_generation(daemon_set);
    let min_ready = min_ready_seconds(daemon_set);
    let mut node_pods = node_pods.clone();
    let mut desired = 0;
    for node in nodes {
        if node_should_run_daemon_pod(node, daemon_set).should_run {
            desired += 1;
            node_pods.entry(node_name(node).into()).or_default();
        }
    }
    let mut max_surge = surge_count(daemon_set, desired);
    let mut max_unavailable = unavailable_count(daemon_set, desired);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
        max_surge = 0;
    }
    let mut plan = RollingUpdatePlan::default();
    let should_run = |node: &str| {
        nodes
            .iter()
            .find(|n| node_name(n) == node)
            .is_some_and(|n| node_should_run_daemon_pod(n, daemon_set).should_run)
    };

    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in node_pods.values() {
            let Some((new, old)) = updated_and_old(pods, hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !is_available(&new, min_ready, now) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !is_available(&old, min_ready, now) {
                        replacements.push(pod_name(&old).to_string());
                    } else if unavailable < max_unavailable {
                        candidates.push(pod_name(&old).to_string());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        plan.delete = replacements;
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }

    let mut surging = 0;
    let mut available = 0;
    let mut allowed_nodes = Vec::new();
    let mut candidate_nodes = Vec::new();
    let mut sunset_pods = Vec::new();
    for (node, pods) in &node_pods {
        let Some((new, old)) = updated_and_old(pods, hash, generation) else {
            surging += 1;
            continue;
        };
        if let Some(pod) = old.as_ref().or(new.as_ref())
            && is_available(pod, min_ready, now)
        {
            available += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !is_available(&old, min_ready, now) {
                    if !should_run(node) {
                        plan.delete.push(pod_name(&old).into());
                    } else {
                        allowed_nodes.push(node.clone());
                    }
                } else if !should_run(node) {
                    sunset_pods.push(pod_name(&old).to_string());
                } else if surging < max_surge {
                    candidate_nodes.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if !is_available(&new, min_ready, now) {
                    surging += 1;
                } else {
                    plan.delete.push(pod_name(&old).into());
                }
            }
        }
    }
    let deletable = (available - desired).clamp(0, sunset_pods.len() as i32) as usize;
    plan.delete.extend(sunset_pods.into_iter().take(deletable));
    let room = (max_surge - surging).clamp(0, candidate_nodes.len() as i32) as usize;
    plan.create_on = allowed_nodes;
    plan.create_on
        .extend(candidate_nodes.into_iter().take(room));
    plan
}

/// The status counts (observedGeneration and collisionCount are the
/// caller's).
pub fn compute_status(
    daemon_set: &DaemonSet,
    nodes: &[Arc<Node>],
    node_pods: &NodePods,
    hash: &str,
    now: Timestamp,
) -> DaemonSetStatus {
    let generation = template_generation(daemon_set);
    let min_ready = min_ready_seconds(daemon_set);
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    for node in nodes {
        let should_run = node_should_run_daemon_pod(node, daemon_set).should_run;
        let pods = node_pods
            .get(node_name(node))
            .filter(|pods| !pods.is_empty());
        match (should_run, pods) {
            (true, None) => desired += 1,
            (true, Some(pods)) => {
                desired += 1;
                current += 1;
                let mut pods = pods.clone();
                sort_oldest_first(&mut pods);
                let pod = &pods[0];
                if is_ready(pod) {
                    ready += 1;
                    if is_available(pod, min_ready, now) {
                        available += 1;
                    }
                }
                if is_pod_updated(pod, hash, generation) {
                    updated += 1;
                }
            }
            (false, Some(_)) => misscheduled += 1,
            (false, None) => {}
        }
    }
    DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: misscheduled,
        number_ready: ready,
        updated_number_scheduled: Some(updated),
        number_available: Some(available),
        number_unavailable: Some(desired - available),
        ..DaemonSetStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn daemon_set(strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Arc<Pod> {
        let status = if ready {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
        } else {
            json!({"phase": "Pending"})
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": "agent", "controller-revision-hash": hash}},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
                "status": status
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_new_pod_targets_its_node_through_required_affinity() {
        let mut ds = daemon_set(json!({"type": "RollingUpdate"}));
        ds.metadata.annotations =
            Some([(TEMPLATE_GENERATION_ANNOTATION.to_string(), "3".to_string())].into());
        let pod = new_pod(&ds, "n1", "abc");
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels[HASH_LABEL], "abc");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "3");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        assert_eq!(
            pod.spec
                .as_ref()
                .unwrap()
                .tolerations
                .as_ref()
                .unwrap()
                .len(),
            6
        );
        assert!(
            pod.spec.as_ref().unwrap().node_name.is_none(),
            "the scheduler binds it"
        );
    }

    #[test]
    fn manage_creates_on_uncovered_nodes_and_removes_duplicates() {
        let ds = daemon_set(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        );
        let nodes = vec![node("n1"), node("n2")];
        let pods = vec![
            pod("a", "n1", "h", true),
            pod("b", "n1", "h", true),
            pod("c", "gone", "h", true),
        ];
        let plan = plan_manage(
            &ds,
            "ns/agent",
            &nodes,
            &group_by_node(&pods),
            "h",
            &mut FailedPodBackoff::default(),
            Timestamp::now(),
        );
        assert_eq!(plan.create_on, ["n2"]);
        assert_eq!(
            plan.delete,
            ["b"],
            "a scheduled pod on a vanished node is left to pod GC"
        );
    }

    #[test]
    fn failed_pods_are_deleted_then_backed_off() {
        let ds = daemon_set(json!({"type": "OnDelete"}));
        let nodes = vec![node("n1")];
        let mut failed = (*pod("a", "n1", "h", false)).clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let pods = group_by_node(&[Arc::new(failed)]);
        let mut backoff = FailedPodBackoff::default();
        let now = Timestamp::now();
        let first = plan_manage(&ds, "ns/agent", &nodes, &pods, "h", &mut backoff, now);
        assert_eq!(first.delete, ["a"]);
        assert_eq!(first.failed, [("a".to_string(), "n1".to_string())]);
        let again = plan_manage(
            &ds,
            "ns/agent",
            &nodes,
            &pods,
            "h",
            &mut backoff,
            now + SignedDuration::from_millis(100),
        );
        assert!(again.delete.is_empty());
        assert_eq!(again.requeue_after, Some(Duration::from_secs(1)));
    }

    #[test]
    fn rolling_update_deletes_at_most_max_unavailable_old_pods() {
        let ds = daemon_set(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        );
        let nodes = vec![node("n1"), node("n2"), node("n3")];
        let pods = vec![
            pod("a", "n1", "old", true),
            pod("b", "n2", "old", true),
            pod("c", "n3", "old", true),
        ];
        let plan = plan_rolling_update(&ds, &nodes, &group_by_node(&pods), "new", Timestamp::now());
        assert_eq!(plan.delete, ["a"]);
        let pods = vec![
            pod("a2", "n1", "new", false),
            pod("b", "n2", "old", true),
            pod("c", "n3", "old", true),
        ];
        let plan = plan_rolling_update(&ds, &nodes, &group_by_node(&pods), "new", Timestamp::now());
        assert!(
            plan.delete.is_empty(),
            "the new pod on n1 is not available yet"
        );
    }

    #[test]
    fn rolling_update_with_surge_starts_new_pods_beside_old_ones() {
        let ds = daemon_set(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
        );
        let nodes = vec![node("n1"), node("n2")];
        let pods = vec![pod("a", "n1", "old", true), pod("b", "n2", "old", true)];
        let plan = plan_rolling_update(&ds, &nodes, &group_by_node(&pods), "new", Timestamp::now());
        assert_eq!(plan.create_on, ["n1"]);
        let pods = vec![
            pod("a", "n1", "old", true),
            pod("a2", "n1", "new", true),
            pod("b", "n2", "old", true),
        ];
        let plan = plan_rolling_update(&ds, &nodes, &group_by_node(&pods), "new", Timestamp::now());
        assert_eq!(plan.delete, ["a"]);
        assert_eq!(plan.create_on, ["n2"]);
    }

    #[test]
    fn status_counts_nodes_not_pods() {
        let ds = daemon_set(json!({"type": "RollingUpdate"}));
        let nodes = vec![node("n1"), node("n2"), node("n3")];
        let pods = vec![
            pod("a", "n1", "h", true),
            pod("b", "n2", "old", false),
            pod("c", "elsewhere", "h", true),
        ];
        let status = compute_status(&ds, &nodes, &group_by_node(&pods), "h", Timestamp::now());
        assert_eq!(status.desired_number_scheduled, 3);
        assert_eq!(status.current_number_scheduled, 2);
        assert_eq!(status.number_ready, 1);
        assert_eq!(status.number_available, Some(1));
        assert_eq!(status.number_unavailable, Some(2));
        assert_eq!(status.updated_number_scheduled, Some(1));
        assert_eq!(status.number_misscheduled, 0);
    }
}
