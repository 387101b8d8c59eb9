//! Taint and toleration rules as pure functions: which taints node conditions call for, swapping controller taints, and how long a Pod tolerates a node's NoExecute taints.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Taint::default()
    }
}

/// Upstream's nodeConditionToTaintKeyStatusMap.
fn condition_taint(condition_type: &str, status: &str) -> Option<&'static str> {
    match (condition_type, status) {
        ("Ready", "False") => Some(TAINT_NOT_READY),
        ("Ready", "Unknown") => Some(TAINT_UNREACHABLE),
        ("MemoryPressure", "True") => Some(TAINT_MEMORY_PRESSURE),
        ("DiskPressure", "True") => Some(TAINT_DISK_PRESSURE),
        ("NetworkUnavailable", "True") => Some(TAINT_NETWORK_UNAVAILABLE),
        ("PIDPressure", "True") => Some(TAINT_PID_PRESSURE),
        _ => None,
    }
}

fn is_condition_taint_key(key: &str) -> bool {
    matches!(
        key,
        TAINT_NOT_READY
            | TAINT_UNREACHABLE
            | TAINT_MEMORY_PRESSURE
            | TAINT_DISK_PRESSURE
            | TAINT_NETWORK_UNAVAILABLE
            | TAINT_PID_PRESSURE
    )
}

pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|spec| spec.taints.as_deref())
        .unwrap_or_default()
}

/// Whether a taint with the same key and effect is on the node.
pub fn has_taint(taints: &[Taint], template: &Taint) -> bool {
    taints
        .iter()
        .any(|t| t.key == template.key && t.effect == template.effect)
}

/// Upstream's doNoScheduleTaintingPass: the NoSchedule taints the node's
/// conditions and `spec.unschedulable` call for, as (to add, to remove).
pub fn no_schedule_changes(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut wanted: Vec<Taint> = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| condition_taint(&c.type_, &c.status))
        .map(|key| taint(key, NO_SCHEDULE))
        .collect();
    if node
        .spec
        .as_ref()
        .and_then(|spec| spec.unschedulable)
        .unwrap_or(false)
    {
        wanted.push(taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    let present: Vec<&Taint> = node_taints(node)
        .iter()
        .filter(|t| {
            t.effect == NO_SCHEDULE
                && (t.key == TAINT_UNSCHEDULABLE || is_condition_taint_key(&t.key))
        })
        .collect();
    let to_add = wanted
        .iter()
        .filter(|w| {
            !present
                .iter()
                .any(|p| p.key == w.key && p.effect == w.effect)
        })
        .cloned()
        .collect();
    let to_remove = present
        .into_iter()
        .filter(|p| {
            !wanted
                .iter()
                .any(|w| w.key == p.key && w.effect == p.effect)
        })
        .cloned()
        .collect();
    (to_add, to_remove)
}

/// Upstream's SwapNodeControllerTaint on a taint list: adds `add` (stamped
/// `now`, replacing a taint of the same key and effect) and drops `remove`;
/// `None` when nothing changes.
pub fn swap_taints(
    current: &[Taint],
    add: &[Taint],
    remove: &[Taint],
    now: Time,
) -> Option<Vec<Taint>> {
    let mut taints: Vec<Taint> = current.to_vec();
    let mut changed = false;
    for wanted in add {
        let stamped = Taint {
            time_added: Some(now.clone()),
            ..wanted.clone()
        };
        match taints
            .iter_mut()
            .find(|t| t.key == wanted.key && t.effect == wanted.effect)
        {
            Some(existing) if *existing == stamped => {}
            Some(existing) => {
                *existing = stamped;
                changed = true;
            }
            None => {
                taints.push(stamped);
                changed = true;
            }
        }
    }
    let before = taints.len();
    taints.retain(|t| !has_taint(remove, t));
    changed |= taints.len() != before;
    changed.then_some(taints)
}

/// Whether `toleration` tolerates `taint` (upstream's ToleratesTaint).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => {
            // An empty key with Equal matches nothing (validation forbids it).
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// How long a Pod with `tolerations` may stay on a node with these NoExecute
/// `taints`: `Some(ZERO)` when a taint is not tolerated, `None` when all are
/// tolerated forever, otherwise the smallest tolerationSeconds among the
/// tolerations used.
pub fn toleration_time(taints: &[Taint], tolerations: &[Toleration]) -> Option<Duration> {
    let mut used: Vec<&Toleration> = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(toleration) => used.push(toleration),
            None => return Some(Duration::ZERO),
        }
    }
    used.iter()
        .filter_map(|t| t.toleration_seconds)
        .map(|seconds| Duration::from_secs(seconds.max(0) as u64))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn toleration(key: &str, operator: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(operator.into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: seconds,
            ..Toleration::default()
        }
    }

    #[test]
    fn toleration_time_is_zero_forever_or_the_smallest_used() {
        let taints = [taint(TAINT_UNREACHABLE, NO_EXECUTE)];
        assert_eq!(toleration_time(&taints, &[]), Some(Duration::ZERO));
        assert_eq!(
            toleration_time(&taints, &[toleration(TAINT_UNREACHABLE, "Exists", None)]),
            None
        );
        assert_eq!(
            toleration_time(&taints, &[toleration(TAINT_UNREACHABLE, "Exists", Some(7))]),
            Some(Duration::from_secs(7))
        );
        let both = [
            taint(TAINT_UNREACHABLE, NO_EXECUTE),
            taint(TAINT_NOT_READY, NO_EXECUTE),
        ];
        assert_eq!(
            toleration_time(
                &both,
                &[
                    toleration(TAINT_UNREACHABLE, "Exists", Some(30)),
                    toleration(TAINT_NOT_READY, "Exists", Some(5)),
                ]
            ),
            Some(Duration::from_secs(5))
        );
        // A wildcard toleration (no key, Exists) tolerates everything.
        let wildcard = Toleration {
            operator: Some("Exists".into()),
            ..Toleration::default()
        };
        assert_eq!(toleration_time(&both, &[wildcard]), None);
    }

    #[test]
    fn conditions_and_unschedulable_map_to_no_schedule_taints() {
        let node = Node {
            spec: Some(NodeSpec {
                unschedulable: Some(true),
                taints: Some(vec![
                    taint(TAINT_NOT_READY, NO_SCHEDULE),
                    taint("custom", NO_SCHEDULE),
                ]),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        let (add, remove) = no_schedule_changes(&node);
        let keys = |taints: &[Taint]| taints.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&add), [TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE]);
        assert_eq!(keys(&remove), [TAINT_NOT_READY]);
    }

    #[test]
    fn swapping_replaces_the_opposite_taint_and_stamps_time_added() {
        let now = Time(jiff::Timestamp::now());
        let current = [
            taint(TAINT_NOT_READY, NO_EXECUTE),
            taint("custom", NO_SCHEDULE),
        ];
        let swapped = swap_taints(
            &current,
            &[taint(TAINT_UNREACHABLE, NO_EXECUTE)],
            &[taint(TAINT_NOT_READY, NO_EXECUTE)],
            now.clone(),
        )
        .unwrap();
        assert_eq!(swapped.len(), 2);
        assert_eq!(swapped[0].key, "custom");
        assert_eq!(swapped[1].key, TAINT_UNREACHABLE);
        assert_eq!(swapped[1].time_added, Some(now.clone()));
        assert_eq!(
            swap_taints(&swapped, &[], &[taint(TAINT_NOT_READY, NO_EXECUTE)], now),
            None
        );
    }
}
