//! The pure core of a StatefulSet sync (upstream's `updateStatefulSet`): from the set, its two revisions, its pods and claims, the steps to take in order and the status to report.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::identity::{
    self, claims_for, end_ordinal, identity_matches, in_ordinal_range, is_created, is_finished,
    is_healthy, is_pending, is_running_and_available, is_running_and_ready, is_terminating,
    new_pod, ordinal, pod_revision, start_ordinal, storage_matches,
};
use crate::retention::{claim_is_stale, claim_owners_up_to_date, desired_claim_owners};

/// Everything one sync decides from, read from the informers' stores.
pub struct SyncInput<'a> {
    pub set: &'a StatefulSet,
    /// The set with the current revision's template.
    pub current_set: &'a StatefulSet,
    /// The set with the update revision's template.
    pub update_set: &'a StatefulSet,
    pub current_revision: &'a str,
    pub update_revision: &'a str,
    pub collision_count: i32,
    /// The pods the set owns (after adoption and release).
    pub pods: &'a [Arc<Pod>],
    /// The claims in the set's namespace, by name.
    pub claims: &'a BTreeMap<String, Arc<PersistentVolumeClaim>>,
    pub now: Timestamp,
}

/// Why a pod is deleted (for logs; every delete records SuccessfulDelete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteCause {
    Finished,
    ScaleDown,
    Update,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the missing `claims`, then the pod.
    CreatePod {
        pod: Box<Pod>,
        claims: Vec<PersistentVolumeClaim>,
    },
    /// Create claims a pending pod is missing.
    CreateClaims {
        pod: String,
        claims: Vec<PersistentVolumeClaim>,
    },
    DeletePod {
        pod: Box<Pod>,
        cause: DeleteCause,
    },
    /// Restore a pod's identity labels.
    UpdatePod {
        pod: Box<Pod>,
    },
    /// Set a claim's owner references as the retention policy wants.
    UpdateClaim {
        pod: String,
        claim: Box<PersistentVolumeClaim>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub status: StatefulSetStatus,
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec.min_ready_seconds.unwrap_or(0)
}

fn is_parallel(set: &StatefulSet) -> bool {
    set.spec.pod_management_policy.as_deref() == Some("Parallel")
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// Counts the pods like upstream's `computeReplicaStatus`.
fn count_into(status: &mut StatefulSetStatus, input: &SyncInput, pods: &[&Pod]) {
    let min_ready = min_ready_seconds(input.set);
    let mut replicas = 0;
    let (mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0);
    for pod in pods {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready, input.now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let revision = pod_revision(pod);
            if revision == input.current_revision {
                current += 1;
            }
            if revision == input.update_revision {
                updated += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
}

/// The pod a missing ordinal gets: at the current revision below the
/// partition (or below currentReplicas without a rollingUpdate block), at
/// the update revision otherwise — upstream's `newVersionedStatefulSetPod`,
/// operator precedence included.
fn versioned_pod(input: &SyncInput, ordinal: i32) -> Pod {
    let current = input.current_set;
    let strategy = current.spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let start = start_ordinal(current);
    let current_replicas = current
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let below_current = strategy_type(current) == "RollingUpdate"
        && rolling.is_none()
        && ordinal < start + current_replicas;
    let below_partition = rolling.is_some_and(|r| ordinal < start + r.partition.unwrap_or(0));
    if below_current || below_partition {
        new_pod(input.current_set, ordinal, input.current_revision)
    } else {
        new_pod(input.update_set, ordinal, input.update_revision)
    }
}

/// The claims of `pod` that do not exist yet.
fn missing_claims(input: &SyncInput, set: &StatefulSet, pod: &Pod) -> Vec<PersistentVolumeClaim> {
    claims_for(set, ordinal(pod))
        .into_iter()
        .map(|(_, claim)| claim)
        .filter(|claim| {
            !input
                .claims
                .contains_key(claim.metadata.name.as_deref().unwrap_or_default())
        })
        .collect()
}

/// Claim updates the retention policy asks for on `pod`'s claims.
fn claim_updates(input: &SyncInput, set: &StatefulSet, pod: &Pod) -> Vec<Step> {
    claims_for(set, ordinal(pod))
        .into_iter()
        .filter_map(|(_, wanted)| {
            let existing = input.claims.get(wanted.metadata.name.as_deref()?)?;
            if claim_owners_up_to_date(existing, set, pod) {
                return None;
            }
            let mut claim = (**existing).clone();
            claim.metadata.owner_references = Some(desired_claim_owners(existing, set, pod));
            Some(Step::UpdateClaim {
                pod: identity::name(pod).into(),
                claim: Box::new(claim),
            })
        })
        .collect()
}

enum Flow {
    Continue,
    Exit,
}

/// Decides one sync. Steps are meant to be executed in order, stopping at
/// the first failure.
pub fn plan(input: &SyncInput) -> Plan {
    let set = input.set;
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(input.current_revision.into()),
        update_revision: Some(input.update_revision.into()),
        collision_count: Some(input.collision_count),
        ..StatefulSetStatus::default()
    };
    let all: Vec<&Pod> = input.pods.iter().map(|p| p.as_ref()).collect();
    count_into(&mut status, input, &all);

    let start = start_ordinal(set);
    let count = (end_ordinal(set) - start + 1).max(0) as usize;
    let mut slots: Vec<Option<&Pod>> = vec![None; count];
    let mut condemned: Vec<&Pod> = Vec::new();
    for pod in &all {
        if in_ordinal_range(pod, set) {
            slots[(ordinal(pod) - start) as usize] = Some(pod);
        } else if ordinal(pod) >= 0 {
            condemned.push(pod);
        }
    }
    let fresh: Vec<Option<Pod>> = slots
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            slot.is_none()
                .then(|| versioned_pod(input, start + index as i32))
        })
        .collect();
    let replicas: Vec<&Pod> = slots
        .iter()
        .zip(&fresh)
        .map(|(slot, fresh)| {
            slot.unwrap_or_else(|| fresh.as_ref().expect("a fresh pod fills every empty slot"))
        })
        .collect();
    identity::sort_descending(&mut condemned);

    let first_unhealthy: Option<&Pod> = replicas
        .iter()
        .copied()
        .find(|pod| !is_healthy(pod))
        .or_else(|| condemned.iter().rev().copied().find(|pod| !is_healthy(pod)));

    let mut steps = Vec::new();
    let recount = |status: &mut StatefulSetStatus| {
        let mut pods = replicas.clone();
        pods.extend(condemned.iter().copied());
        count_into(status, input, &pods);
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Plan { steps, status };
    }
    let monotonic = !is_parallel(set);
    let min_ready = min_ready_seconds(set);

    // Every replica first: in OrderedReady, stop at the first one that is
    // not there yet or not Running, Ready and Available.
    for pod in &replicas {
        match process_replica(input, pod, monotonic, min_ready, &mut steps) {
            Flow::Exit if monotonic => {
                recount(&mut status);
                return Plan { steps, status };
            }
            _ => {}
        }
    }

    for pod in &condemned {
        steps.extend(claim_updates(input, input.update_set, pod));
    }

    // Scale down from the highest ordinal; in OrderedReady one at a time,
    // and only while the pods below are healthy.
    for pod in &condemned {
        if is_terminating(pod) {
            if monotonic {
                recount(&mut status);
                return Plan { steps, status };
            }
            continue;
        }
        let is_first_unhealthy = first_unhealthy.is_some_and(|first| std::ptr::eq(first, *pod));
        if monotonic && !is_first_unhealthy && !is_running_and_available(pod, min_ready, input.now)
        {
            recount(&mut status);
            return Plan { steps, status };
        }
        steps.push(Step::DeletePod {
            pod: Box::new((*pod).clone()),
            cause: DeleteCause::ScaleDown,
        });
        if monotonic {
            recount(&mut status);
            return Plan { steps, status };
        }
    }

    recount(&mut status);
    if strategy_type(set) == "OnDelete" {
        return Plan { steps, status };
    }
    let rolling = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref());
    let partition = rolling.and_then(|r| r.partition).unwrap_or(0).max(0) as usize;
    let max_unavailable = rolling.and_then(|r| r.max_unavailable.as_ref());
    let outdated = |pod: &Pod| pod_revision(pod) != input.update_revision && !is_terminating(pod);

    match max_unavailable {
        // Upstream's MaxUnavailableStatefulSet path: keep at most
        // maxUnavailable replicas down, replacing from the highest ordinal.
        Some(max_unavailable) => {
            let allowed = scaled_max_unavailable(max_unavailable, replicas.len() as i32);
            let unavailable = replicas.iter().filter(|pod| !is_healthy(pod)).count() as i32;
            let mut budget = allowed - unavailable;
            for target in (partition..replicas.len()).rev() {
                if budget <= 0 {
                    break;
                }
                if outdated(replicas[target]) {
                    steps.push(Step::DeletePod {
                        pod: Box::new(replicas[target].clone()),
                        cause: DeleteCause::Update,
                    });
                    decrement_current(&mut status);
                    budget -= 1;
                }
            }
        }
        None => {
            for target in (partition..replicas.len()).rev() {
                let pod = replicas[target];
                if outdated(pod) {
                    steps.push(Step::DeletePod {
                        pod: Box::new(pod.clone()),
                        cause: DeleteCause::Update,
                    });
                    decrement_current(&mut status);
                    break;
                }
                if !is_healthy(pod) {
                    break;
                }
            }
        }
    }
    Plan { steps, status }
}

fn decrement_current(status: &mut StatefulSetStatus) {
    status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
}

/// maxUnavailable scaled to the replicas, rounded down, at least one.
pub fn scaled_max_unavailable(value: &IntOrString, replicas: i32) -> i32 {
    let scaled = match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(text) => text
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(1, |percent| (percent * i64::from(replicas) / 100) as i32),
    };
    scaled.max(1)
}

fn process_replica(
    input: &SyncInput,
    pod: &Pod,
    monotonic: bool,
    min_ready: i32,
    steps: &mut Vec<Step>,
) -> Flow {
    if is_finished(pod) {
        if !is_terminating(pod) {
            steps.push(Step::DeletePod {
                pod: Box::new(pod.clone()),
                cause: DeleteCause::Finished,
            });
        }
        return Flow::Exit;
    }
    if !is_created(pod) {
        let stale = claims_for(input.set, ordinal(pod))
            .iter()
            .any(|(_, claim)| {
                input
                    .claims
                    .get(claim.metadata.name.as_deref().unwrap_or_default())
                    .is_some_and(|existing| claim_is_stale(input.set, existing, pod))
            });
        if stale {
            return Flow::Exit;
        }
        let mut claims = missing_claims(input, input.set, pod);
        for claim in &mut claims {
            // The retention policy's owners, set at creation (upstream sets
            // them right after creating the pod).
            claim.metadata.owner_references =
                Some(desired_claim_owners(claim, input.update_set, pod))
                    .filter(|owners| !owners.is_empty());
        }
        steps.push(Step::CreatePod {
            pod: Box::new(pod.clone()),
            claims,
        });
        // A pod just created is not running: OrderedReady waits for it.
        return Flow::Exit;
    }
    if is_pending(pod) {
        let claims = missing_claims(input, input.set, pod);
        if !claims.is_empty() {
            steps.push(Step::CreateClaims {
                pod: identity::name(pod).into(),
                claims,
            });
        }
    }
    if monotonic
        && (is_terminating(pod)
            || !is_running_and_ready(pod)
            || !is_running_and_available(pod, min_ready, input.now))
    {
        return Flow::Exit;
    }
    steps.extend(claim_updates(input, input.update_set, pod));
    if !identity_matches(input.set, pod) || !storage_matches(input.set, pod) {
        let mut updated = pod.clone();
        identity::update_identity(input.update_set, &mut updated);
        steps.push(Step::UpdatePod {
            pod: Box::new(updated),
        });
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(replicas: i32, policy: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {
                "replicas": replicas, "podManagementPolicy": policy, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}}
            }
        }))
        .unwrap()
    }

    fn pod(set: &StatefulSet, ordinal: i32, revision: &str, running_ready: bool) -> Arc<Pod> {
        let mut pod = new_pod(set, ordinal, revision);
        let mut status = json!({"phase": "Pending"});
        if running_ready {
            status =
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        }
        pod.status = serde_json::from_value(status).unwrap();
        Arc::new(pod)
    }

    fn plan_for(set: &StatefulSet, pods: &[Arc<Pod>], update: &str) -> Plan {
        let claims = BTreeMap::new();
        plan(&SyncInput {
            set,
            current_set: set,
            update_set: set,
            current_revision: "r1",
            update_revision: update,
            collision_count: 0,
            pods,
            claims: &claims,
            now: Timestamp::now(),
        })
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|step| match step {
                Step::CreatePod { pod, .. } => format!("create {}", identity::name(pod)),
                Step::DeletePod { pod, .. } => format!("delete {}", identity::name(pod)),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn ordered_ready_creates_one_pod_and_waits_for_it() {
        let set = set(3, "OrderedReady");
        assert_eq!(names(&plan_for(&set, &[], "r1")), ["create web-0"]);
        let pending = [pod(&set, 0, "r1", false)];
        assert!(plan_for(&set, &pending, "r1").steps.is_empty());
        let ready = [pod(&set, 0, "r1", true)];
        assert_eq!(names(&plan_for(&set, &ready, "r1")), ["create web-1"]);
    }

    #[test]
    fn parallel_creates_every_missing_pod() {
        let set = set(3, "Parallel");
        assert_eq!(
            names(&plan_for(&set, &[], "r1")),
            ["create web-0", "create web-1", "create web-2"]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let set = set(1, "OrderedReady");
        let pods: Vec<_> = (0..3).map(|i| pod(&set, i, "r1", true)).collect();
        assert_eq!(names(&plan_for(&set, &pods, "r1")), ["delete web-2"]);
    }

    #[test]
    fn an_unhealthy_pod_halts_ordered_scaling() {
        let set = set(1, "OrderedReady");
        let pods = vec![
            pod(&set, 0, "r1", true),
            pod(&set, 1, "r1", false),
            pod(&set, 2, "r1", true),
        ];
        // web-1 is the first unhealthy pod, but web-2 is above it and healthy:
        // deletion proceeds from the top only.
        assert_eq!(names(&plan_for(&set, &pods, "r1")), ["delete web-2"]);
        let pods = vec![pod(&set, 0, "r1", false), pod(&set, 1, "r1", true)];
        assert!(
            plan_for(&set, &pods, "r1").steps.is_empty(),
            "web-0 unhealthy blocks"
        );
    }

    #[test]
    fn a_rolling_update_replaces_the_highest_outdated_ordinal_above_the_partition() {
        let mut set = set(3, "OrderedReady");
        let pods: Vec<_> = (0..3).map(|i| pod(&set, i, "r1", true)).collect();
        assert_eq!(names(&plan_for(&set, &pods, "r2")), ["delete web-2"]);
        let pods = vec![
            pod(&set, 0, "r1", true),
            pod(&set, 1, "r1", true),
            pod(&set, 2, "r2", true),
        ];
        assert_eq!(names(&plan_for(&set, &pods, "r2")), ["delete web-1"]);
        set.spec
            .update_strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .partition = Some(2);
        assert!(
            plan_for(&set, &pods, "r2").steps.is_empty(),
            "web-0 and web-1 stay below the partition"
        );
    }

    #[test]
    fn max_unavailable_replaces_several_outdated_pods_at_once() {
        let mut set = set(4, "Parallel");
        let rolling = set
            .spec
            .update_strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap();
        rolling.max_unavailable = Some(IntOrString::Int(2));
        rolling.partition = Some(1);
        let pods: Vec<_> = (0..4).map(|i| pod(&set, i, "r1", true)).collect();
        assert_eq!(
            names(&plan_for(&set, &pods, "r2")),
            ["delete web-3", "delete web-2"]
        );
        let pods = vec![
            pod(&set, 0, "r1", true),
            pod(&set, 1, "r1", true),
            pod(&set, 2, "r2", false),
            pod(&set, 3, "r2", true),
        ];
        assert_eq!(
            names(&plan_for(&set, &pods, "r2")),
            ["delete web-1"],
            "one unavailable leaves room for one more, above the partition"
        );
    }

    #[test]
    fn status_counts_revisions_and_readiness() {
        let set = set(2, "OrderedReady");
        let pods = vec![pod(&set, 0, "r1", true), pod(&set, 1, "r2", false)];
        let status = plan_for(&set, &pods, "r2").status;
        assert_eq!(status.replicas, 2);
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(status.current_replicas, Some(1));
        assert_eq!(status.updated_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(1));
    }

    #[test]
    fn max_unavailable_scales_down_percentages_but_never_below_one() {
        assert_eq!(
            scaled_max_unavailable(&IntOrString::String("50%".into()), 5),
            2
        );
        assert_eq!(
            scaled_max_unavailable(&IntOrString::String("10%".into()), 3),
            1
        );
        assert_eq!(scaled_max_unavailable(&IntOrString::Int(3), 5), 3);
    }
}
