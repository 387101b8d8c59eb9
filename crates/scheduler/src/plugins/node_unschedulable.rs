//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods that tolerate the unschedulable taint.

use k8s_openapi::api::core::v1::Toleration;

use crate::labels::tolerates;
use crate::snapshot::NodeInfo;
use crate::status::{Code, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const REASON: &str = "node(s) were unschedulable";

/// Whether the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn tolerates_unschedulable(tolerations: &[Toleration]) -> bool {
    tolerations
        .iter()
        .any(|t| tolerates(t, "node.kubernetes.io/unschedulable", "", "NoSchedule"))
}

pub fn filter(node: &NodeInfo, pod_tolerates_unschedulable: bool) -> Result<(), Status> {
    if node.unschedulable() && !pod_tolerates_unschedulable {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            NAME,
            REASON,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{schedule, snapshot_of};

    #[test]
    fn cordoned_nodes_take_only_pods_tolerating_unschedulable() {
        let snapshot = snapshot_of(vec![NodeBuilder::new("n1").unschedulable().build()], vec![]);
        let cases = [
            (
                PodBuilder::new("plain").build(),
                Err("0/1 nodes are available: 1 node(s) were unschedulable.".to_string()),
            ),
            (
                PodBuilder::new("tolerant")
                    .toleration_exists("node.kubernetes.io/unschedulable", "NoSchedule")
                    .build(),
                Ok("n1".to_string()),
            ),
            // An empty toleration (any key, operator Equal, empty value) tolerates
            // the unschedulable taint, whose value is empty.
            (
                PodBuilder::new("empty-toleration")
                    .with_spec(|s| s.tolerations = Some(vec![Default::default()]))
                    .build(),
                Ok("n1".to_string()),
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(schedule(&snapshot, &pod), want, "{:?}", pod.metadata.name);
        }
    }
}
