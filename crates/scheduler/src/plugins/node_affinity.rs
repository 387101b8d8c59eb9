//! NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred terms add their weights to the score.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

use crate::labels::{PreferredNodeAffinity, RequiredNodeAffinity};
use crate::snapshot::NodeInfo;
use crate::status::{Code, Status};

pub const NAME: &str = "NodeAffinity";
pub const REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_CONFLICT: &str = "pod affinity terms conflict";
/// The status of nodes a PreFilter result left out.
pub const REASON_NOT_IN_PRE_FILTER_RESULT: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";

/// What PreFilter learned: the constraints to check (none: the plugin skips
/// this pod) and, when every term pins `metadata.name`, the only nodes
/// worth filtering.
pub struct PreFilterResult {
    pub required: Option<RequiredNodeAffinity>,
    pub node_names: Option<BTreeSet<String>>,
}

pub fn pre_filter(pod: &Pod) -> Result<PreFilterResult, Status> {
    let required = RequiredNodeAffinity::of(pod);
    if !required.is_set() {
        return Ok(PreFilterResult {
            required: None,
            node_names: None,
        });
    }
    let terms = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    let mut node_names: Option<BTreeSet<String>> = None;
    for term in terms {
        // The names a term allows: the intersection of its `metadata.name In`
        // field expressions. A term without one allows every node, and terms
        // are ORed, so then every node is worth filtering.
        let mut term_names: Option<BTreeSet<String>> = None;
        for field in term.match_fields.iter().flatten() {
            if field.key == "metadata.name" && field.operator == "In" {
                let values: BTreeSet<String> = field.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    Some(names) => names.intersection(&values).cloned().collect(),
                    None => values,
                });
            }
        }
        let Some(term_names) = term_names else {
            return Ok(PreFilterResult {
                required: Some(required),
                node_names: None,
            });
        };
        node_names.get_or_insert_default().extend(term_names);
    }
    if node_names.as_ref().is_some_and(BTreeSet::is_empty) {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            NAME,
            REASON_CONFLICT,
        ));
    }
    Ok(PreFilterResult {
        required: Some(required),
        node_names,
    })
}

pub fn filter(node: &NodeInfo, required: &RequiredNodeAffinity) -> Result<(), Status> {
    if required.matches(node.name(), node.labels()) {
        Ok(())
    } else {
        Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            NAME,
            REASON_POD,
        ))
    }
}

/// The sum of the weights of the preferred terms the node matches;
/// normalised so the best node gets 100.
pub fn score(node: &NodeInfo, preferred: &PreferredNodeAffinity) -> i64 {
    preferred.score(node.name(), node.labels())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{feasible, names, schedule, scores, scoring_only, snapshot_of};

    fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            NodeBuilder::new("n1")
                .label("disk", "ssd")
                .label("cores", "16")
                .zone("a")
                .build(),
            NodeBuilder::new("n2")
                .label("disk", "hdd")
                .label("cores", "4")
                .zone("b")
                .build(),
            NodeBuilder::new("n3")
                .label("gpu", "true")
                .zone("c")
                .build(),
        ]
    }

    #[test]
    fn node_selector_and_required_terms() {
        let snapshot = snapshot_of(nodes(), vec![]);
        let cases = [
            (
                PodBuilder::new("selector").node_selector("disk", "ssd"),
                vec!["n1"],
            ),
            (
                PodBuilder::new("selector-and-affinity")
                    .node_selector("disk", "ssd")
                    .node_affinity("cores", "Lt", &["8"]),
                vec![],
            ),
            (
                PodBuilder::new("in").node_affinity("disk", "In", &["ssd", "hdd"]),
                vec!["n1", "n2"],
            ),
            (
                PodBuilder::new("not-in").node_affinity("disk", "NotIn", &["ssd"]),
                vec!["n2", "n3"],
            ),
            (
                PodBuilder::new("exists").node_affinity("gpu", "Exists", &[]),
                vec!["n3"],
            ),
            (
                PodBuilder::new("does-not-exist").node_affinity("gpu", "DoesNotExist", &[]),
                vec!["n1", "n2"],
            ),
            (
                PodBuilder::new("gt").node_affinity("cores", "Gt", &["8"]),
                vec!["n1"],
            ),
            (
                PodBuilder::new("lt").node_affinity("cores", "Lt", &["8"]),
                vec!["n2"],
            ),
            (
                PodBuilder::new("terms-are-ored")
                    .node_affinity("gpu", "Exists", &[])
                    .node_affinity("disk", "In", &["hdd"]),
                vec!["n2", "n3"],
            ),
            (
                PodBuilder::new("invalid-gt").node_affinity("cores", "Gt", &["many"]),
                vec![],
            ),
        ];
        for (pod, want) in cases {
            let pod = pod.build();
            assert_eq!(
                feasible(&snapshot, &pod),
                Ok(names(&want)),
                "{:?}",
                pod.metadata.name
            );
        }
        let pod = PodBuilder::new("p").node_selector("disk", "nvme").build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err(
                "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
                    .into()
            )
        );
    }

    #[test]
    fn node_name_fields_narrow_the_search() {
        let snapshot = snapshot_of(nodes(), vec![]);
        let pod = PodBuilder::new("p").node_affinity_name(&["n2"]).build();
        assert_eq!(schedule(&snapshot, &pod), Ok("n2".into()));
        // Nodes outside the PreFilter result are reported as such.
        let pod = PodBuilder::new("p")
            .node_affinity_name(&["n2"])
            .requests("8", "")
            .build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity].".into())
        );
        // Two fields in one term that cannot both hold: no node at all.
        let pod = PodBuilder::new("p")
            .with_spec(|s| {
                let term: serde_json::Value = serde_json::json!({"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["n1"]},
                    {"key": "metadata.name", "operator": "In", "values": ["n2"]},
                ]});
                s.affinity = serde_json::from_value(serde_json::json!({"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}))
                .ok();
            })
            .build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/3 nodes are available: pod affinity terms conflict.".into())
        );
    }

    #[test]
    fn preferred_terms_add_their_weights() {
        let snapshot = snapshot_of(nodes(), vec![]);
        let framework = scoring_only(|w| w.node_affinity = 1);
        let pod = PodBuilder::new("p")
            .preferred_node_affinity(2, "topology.kubernetes.io/zone", "In", &["a"])
            .preferred_node_affinity(5, "disk", "Exists", &[])
            .build();
        // n1: 2 + 5 = 7 → 100; n2: 5 → 100 * 5 / 7 = 71; n3: 0.
        assert_eq!(scores(&framework, &snapshot, &pod), [100, 71, 0]);
        let framework = scoring_only(|w| w.node_affinity = 2);
        assert_eq!(scores(&framework, &snapshot, &pod), [200, 142, 0]);
    }
}
