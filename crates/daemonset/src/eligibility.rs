//! Which nodes a DaemonSet's pod belongs on (upstream's `NodeShouldRunDaemonPod`): node name, nodeSelector and required node affinity, taints against the template's tolerations plus the ones every daemon pod gets.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// The tolerations every daemon pod gets (upstream's
/// `AddOrUpdateDaemonPodTolerations`): it must survive node trouble that
/// would evict or keep out ordinary pods.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    };
    let mut tolerations = vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        tolerations.push(exists(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    tolerations
}

/// Same key, operator, value and effect (an empty operator is Equal).
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let operator = |t: &Toleration| match t.operator.as_deref() {
        None | Some("") => "Equal".to_string(),
        Some(other) => other.to_string(),
    };
    a.key.as_deref().unwrap_or_default() == b.key.as_deref().unwrap_or_default()
        && a.effect.as_deref().unwrap_or_default() == b.effect.as_deref().unwrap_or_default()
        && operator(a) == operator(b)
        && a.value.as_deref().unwrap_or_default() == b.value.as_deref().unwrap_or_default()
}

/// Adds the daemon tolerations to `spec`, replacing an equal toleration
/// (e.g. one with tolerationSeconds) in place and appending the rest.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network.unwrap_or(false);
    let mut tolerations = spec.tolerations.take().unwrap_or_default();
    for wanted in daemon_tolerations(host_network) {
        match tolerations.iter_mut().find(|t| same_toleration(t, &wanted)) {
            Some(existing) => *existing = wanted,
            None => tolerations.push(wanted),
        }
    }
    spec.tolerations = Some(tolerations);
}

pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether some taint with an effect `filter` accepts is tolerated by none.
fn has_untolerated_taint(
    taints: &[Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&str) -> bool,
) -> bool {
    taints
        .iter()
        .filter(|taint| filter(&taint.effect))
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let as_number = |text: &str| text.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|w| w == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(actual), [bound]) = (value.and_then(as_number), values) else {
                return false;
            };
            let Some(bound) = as_number(bound) else {
                return false;
            };
            if requirement.operator == "Gt" {
                actual > bound
            } else {
                actual < bound
            }
        }
        _ => false,
    }
}

/// A term holds when all its expressions (on labels) and fields (only
/// `metadata.name`) hold; an empty term matches no node.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node_name(node))))
}

/// The pod's nodeSelector and required node affinity both admit the node.
pub fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_fits = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_fits = required.is_none_or(|selector| {
        selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, node))
    });
    selector_fits && affinity_fits
}

/// Whether a daemon pod should run on the node, and whether one already
/// there may keep running (a NoSchedule taint keeps new pods out but lets
/// running ones stay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eligibility {
    pub should_run: bool,
    pub should_continue_running: bool,
}

pub fn node_should_run_daemon_pod(node: &Node, daemon_set: &DaemonSet) -> Eligibility {
    let mut spec = daemon_set.spec.template.spec.clone().unwrap_or_default();
    let wanted_node = spec.node_name.clone().unwrap_or_default();
    if !wanted_node.is_empty() && wanted_node != node_name(node) {
        return Eligibility {
            should_run: false,
            should_continue_running: false,
        };
    }
    add_daemon_tolerations(&mut spec);
    if !fits_node_affinity(&spec, node) {
        return Eligibility {
            should_run: false,
            should_continue_running: false,
        };
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerations = spec.tolerations.unwrap_or_default();
    if has_untolerated_taint(&taints, &tolerations, |effect| {
        effect == "NoSchedule" || effect == "NoExecute"
    }) {
        let evicted = has_untolerated_taint(&taints, &tolerations, |effect| effect == "NoExecute");
        return Eligibility {
            should_run: false,
            should_continue_running: !evicted,
        };
    }
    Eligibility {
        should_run: true,
        should_continue_running: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}}),
        )
        .unwrap()
    }

    fn daemon_set(template_spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "ds"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": template_spec}}
        }))
        .unwrap()
    }

    fn containers() -> serde_json::Value {
        json!([{"name": "c", "image": "i"}])
    }

    const BOTH: Eligibility = Eligibility {
        should_run: true,
        should_continue_running: true,
    };
    const NEITHER: Eligibility = Eligibility {
        should_run: false,
        should_continue_running: false,
    };
    const ONLY_STAY: Eligibility = Eligibility {
        should_run: false,
        should_continue_running: true,
    };

    #[test]
    fn node_selector_and_required_affinity_must_match() {
        let ds = daemon_set(json!({"containers": containers(), "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({"disk": "ssd"}), json!([])), &ds),
            BOTH
        );
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({"disk": "hdd"}), json!([])), &ds),
            NEITHER
        );
        let ds = daemon_set(
            json!({"containers": containers(), "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ]}}}}),
        );
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({}), json!([])), &ds),
            BOTH,
            "second term"
        );
        let ds = daemon_set(
            json!({"containers": containers(), "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]}]}}}}),
        );
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({"cpus": "8"}), json!([])), &ds),
            BOTH
        );
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({"cpus": "2"}), json!([])), &ds),
            NEITHER
        );
    }

    #[test]
    fn taints_keep_daemon_pods_out_unless_tolerated() {
        let ds = daemon_set(json!({"containers": containers()}));
        let no_schedule = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let no_execute = json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]);
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({}), no_schedule.clone()), &ds),
            ONLY_STAY
        );
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({}), no_execute), &ds),
            NEITHER
        );
        let tolerant = daemon_set(json!({"containers": containers(),
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}));
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({}), no_schedule), &tolerant),
            BOTH
        );
    }

    #[test]
    fn node_condition_taints_are_tolerated_automatically() {
        let ds = daemon_set(json!({"containers": containers()}));
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            let tainted = node(json!({}), json!([{"key": key, "effect": effect}]));
            assert_eq!(node_should_run_daemon_pod(&tainted, &ds), BOTH, "{key}");
        }
        let network = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert_eq!(node_should_run_daemon_pod(&network, &ds), ONLY_STAY);
        let host_network = daemon_set(json!({"containers": containers(), "hostNetwork": true}));
        assert_eq!(node_should_run_daemon_pod(&network, &host_network), BOTH);
    }

    #[test]
    fn daemon_tolerations_replace_equal_ones_without_toleration_seconds() {
        let mut spec: PodSpec = serde_json::from_value(json!({"containers": containers(), "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "mine", "operator": "Exists"}]})).unwrap();
        add_daemon_tolerations(&mut spec);
        let tolerations = spec.tolerations.unwrap();
        assert_eq!(tolerations.len(), 7);
        assert_eq!(
            tolerations[0].key.as_deref(),
            Some("node.kubernetes.io/not-ready")
        );
        assert_eq!(tolerations[0].toleration_seconds, None);
        assert_eq!(tolerations[1].key.as_deref(), Some("mine"));
    }

    #[test]
    fn a_template_node_name_pins_the_pod() {
        let ds = daemon_set(json!({"containers": containers(), "nodeName": "other"}));
        assert_eq!(
            node_should_run_daemon_pod(&node(json!({}), json!([])), &ds),
            NEITHER
        );
    }
}
