//! TaintToleration: NoSchedule and NoExecute taints must be tolerated; untolerated PreferNoSchedule taints lower the score.

use k8s_openapi::api::core::v1::Toleration;

use crate::labels::{first_untolerated_hard_taint, tolerations_tolerate};
use crate::snapshot::NodeInfo;
use crate::status::{Code, Status};

pub const NAME: &str = "TaintToleration";

pub fn filter(node: &NodeInfo, tolerations: &[Toleration]) -> Result<(), Status> {
    if !node.has_hard_taint() {
        return Ok(());
    }
    match first_untolerated_hard_taint(node.taints(), tolerations) {
        Some(taint) => {
            let value = taint.value.as_deref().unwrap_or("");
            let reason = format!("node(s) had untolerated taint {{{}: {}}}", taint.key, value);
            Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                NAME,
                reason,
            ))
        }
        None => Ok(()),
    }
}

/// The tolerations that count for scoring: effect PreferNoSchedule or empty.
pub fn prefer_no_schedule_tolerations(tolerations: &[Toleration]) -> Vec<Toleration> {
    tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect()
}

/// The number of PreferNoSchedule taints the pod does not tolerate; scores
/// are reversed on normalisation, so fewer is better.
pub fn score(node: &NodeInfo, prefer_tolerations: &[Toleration]) -> i64 {
    if !node.has_prefer_no_schedule_taint() {
        return 0;
    }
    let untolerated = node
        .taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerations_tolerate(prefer_tolerations, t))
        .count();
    i64::try_from(untolerated).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{feasible, schedule, scoring_only, snapshot_of, total_scores};

    const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";

    #[test]
    fn untolerated_hard_taints_are_reported_with_key_and_value() {
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("cp1")
                    .taint(CONTROL_PLANE, "", "NoSchedule")
                    .build(),
                NodeBuilder::new("cp2")
                    .taint(CONTROL_PLANE, "", "NoSchedule")
                    .build(),
                NodeBuilder::new("small").cpu("1").build(),
            ],
            vec![],
        );
        let pod = PodBuilder::new("p").requests("2", "").build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err(format!(
                "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {{{CONTROL_PLANE}: }}."
            ))
        );
    }

    #[test]
    fn tolerations_admit_no_schedule_and_no_execute() {
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("gpu")
                    .taint("dedicated", "gpu", "NoSchedule")
                    .build(),
                NodeBuilder::new("draining")
                    .taint("node.kubernetes.io/unreachable", "", "NoExecute")
                    .build(),
                NodeBuilder::new("soft")
                    .taint("spot", "true", "PreferNoSchedule")
                    .build(),
            ],
            vec![],
        );
        let cases = [
            (PodBuilder::new("plain").build(), vec!["soft"]),
            (
                PodBuilder::new("gpu")
                    .toleration("dedicated", "gpu", "NoSchedule")
                    .build(),
                vec!["gpu", "soft"],
            ),
            (
                PodBuilder::new("wrong-value")
                    .toleration("dedicated", "cpu", "NoSchedule")
                    .build(),
                vec!["soft"],
            ),
            (
                PodBuilder::new("any-effect")
                    .toleration("dedicated", "gpu", "")
                    .build(),
                vec!["gpu", "soft"],
            ),
            (
                PodBuilder::new("exists")
                    .toleration_exists("node.kubernetes.io/unreachable", "NoExecute")
                    .build(),
                vec!["draining", "soft"],
            ),
            (
                PodBuilder::new("everything")
                    .toleration_exists("", "")
                    .build(),
                vec!["gpu", "draining", "soft"],
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(
                feasible(&snapshot, &pod),
                Ok(want.iter().map(|s| s.to_string()).collect()),
                "{:?}",
                pod.metadata.name
            );
        }
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("clean").build(),
                NodeBuilder::new("one")
                    .taint("a", "x", "PreferNoSchedule")
                    .build(),
                NodeBuilder::new("two")
                    .taint("a", "x", "PreferNoSchedule")
                    .taint("b", "y", "PreferNoSchedule")
                    .build(),
            ],
            vec![],
        );
        let framework = scoring_only(|w| w.taint_toleration = 1);
        let scores = |pod| {
            total_scores(&framework, &snapshot, &pod)
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
        };
        assert_eq!(scores(PodBuilder::new("p").build()), [100, 50, 0]);
        assert_eq!(
            scores(
                PodBuilder::new("p")
                    .toleration("a", "x", "PreferNoSchedule")
                    .build()
            ),
            [100, 100, 0]
        );
        // A NoSchedule toleration does not count for PreferNoSchedule taints.
        assert_eq!(
            scores(
                PodBuilder::new("p")
                    .toleration("a", "x", "NoSchedule")
                    .build()
            ),
            [100, 50, 0]
        );
    }
}
