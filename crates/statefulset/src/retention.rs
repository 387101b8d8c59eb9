//! persistentVolumeClaimRetentionPolicy: which owner references (the set, the pod) a pod's claims must carry so the garbage collector deletes them when the set is deleted or scaled down.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::identity::in_ordinal_range;

const DELETE: &str = "Delete";

/// (whenDeleted is Delete, whenScaled is Delete); anything but Delete retains.
fn policy(set: &StatefulSet) -> (bool, bool) {
    let policy = set.spec.persistent_volume_claim_retention_policy.as_ref();
    let deleted = policy.and_then(|p| p.when_deleted.as_deref()) == Some(DELETE);
    let scaled = policy.and_then(|p| p.when_scaled.as_deref()) == Some(DELETE);
    (deleted, scaled)
}

pub fn retains_on_scale_down(set: &StatefulSet) -> bool {
    !policy(set).1
}

struct Owner<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: &'a str,
}

fn set_owner(set: &StatefulSet) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        name: set.metadata.name.as_deref().unwrap_or_default(),
        uid: set.metadata.uid.as_deref().unwrap_or_default(),
    }
}

fn pod_owner(pod: &Pod) -> Owner<'_> {
    Owner {
        api_version: "v1",
        kind: "Pod",
        name: pod.metadata.name.as_deref().unwrap_or_default(),
        uid: pod.metadata.uid.as_deref().unwrap_or_default(),
    }
}

fn matches_ref(reference: &OwnerReference, owner: &Owner) -> bool {
    reference.api_version == owner.api_version
        && reference.kind == owner.kind
        && reference.name == owner.name
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
}

fn has_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    refs(claim).iter().any(|r| r.uid == owner.uid)
}

/// A reference naming the owner but with another UID: left by an earlier
/// incarnation that the garbage collector has still to act on.
fn has_stale_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    refs(claim)
        .iter()
        .find(|r| matches_ref(r, owner))
        .is_some_and(|r| r.uid != owner.uid)
}

/// Whether a claim of a pod about to be created still belongs to an earlier
/// pod of the same name (so creating the pod must wait).
pub fn claim_is_stale(set: &StatefulSet, claim: &PersistentVolumeClaim, pod: &Pod) -> bool {
    !retains_on_scale_down(set) && has_stale_ref(claim, &pod_owner(pod))
}

fn has_unexpected_controller(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (deleted, scaled) = policy(set);
    if !deleted && !scaled {
        return false;
    }
    let (set_owner, pod_owner) = (set_owner(set), pod_owner(pod));
    refs(claim).iter().any(|r| {
        if matches_ref(r, &set_owner) {
            return r.uid != set_owner.uid;
        }
        if matches_ref(r, &pod_owner) {
            return r.uid != pod_owner.uid;
        }
        r.controller == Some(true)
    })
}

fn has_non_controller_owner(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (set_uid, pod_uid) = (set_owner(set).uid, pod_owner(pod).uid);
    refs(claim)
        .iter()
        .any(|r| (r.uid == set_uid || r.uid == pod_uid) && r.controller != Some(true))
}

/// Upstream's `isClaimOwnerUpToDate`.
pub fn claim_owners_up_to_date(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let (set_ref, pod_ref) = (set_owner(set), pod_owner(pod));
    if has_stale_ref(claim, &set_ref) || has_stale_ref(claim, &pod_ref) {
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        return !(has_ref(claim, &set_ref) || has_ref(claim, &pod_ref));
    }
    if has_non_controller_owner(claim, set, pod) {
        return false;
    }
    let (deleted, scaled) = policy(set);
    let scaled_down = !in_ordinal_range(pod, set);
    let (want_set, want_pod) = match (deleted, scaled) {
        (false, false) => (false, false),
        (true, false) => (true, false),
        (false, true) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    };
    has_ref(claim, &set_ref) == want_set && has_ref(claim, &pod_ref) == want_pod
}

fn controller_ref(owner: &Owner) -> OwnerReference {
    OwnerReference {
        api_version: owner.api_version.into(),
        kind: owner.kind.into(),
        name: owner.name.into(),
        uid: owner.uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The claim's owner references as the policy wants them (upstream's
/// `updateClaimOwnerRefForSetAndPod`).
pub fn desired_claim_owners(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> Vec<OwnerReference> {
    let (set_ref, pod_ref) = (set_owner(set), pod_owner(pod));
    let unexpected = has_unexpected_controller(claim, set, pod);
    let mut owners: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !matches_ref(r, &set_ref) && !matches_ref(r, &pod_ref))
        .cloned()
        .collect();
    if unexpected {
        return owners;
    }
    let (deleted, scaled) = policy(set);
    let scaled_down = !in_ordinal_range(pod, set);
    let mut add = |owner: &Owner| {
        if !owners.iter().any(|r| r.uid == owner.uid) {
            owners.push(controller_ref(owner));
        }
    };
    match (deleted, scaled) {
        (false, false) => {}
        (true, false) => add(&set_ref),
        (false, true) => {
            if scaled_down {
                add(&pod_ref)
            }
        }
        (true, true) => {
            if scaled_down {
                add(&pod_ref)
            } else {
                add(&set_ref)
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(when_deleted: &str, when_scaled: &str, replicas: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                     "persistentVolumeClaimRetentionPolicy":
                        {"whenDeleted": when_deleted, "whenScaled": when_scaled}}
        }))
        .unwrap()
    }

    fn pod(name: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "uid": format!("{name}-uid")}}))
            .unwrap()
    }

    #[test]
    fn delete_on_set_deletion_gives_the_claim_a_set_controller_reference() {
        let set = set("Delete", "Retain", 3);
        let mut claim = PersistentVolumeClaim::default();
        assert!(!claim_owners_up_to_date(&claim, &set, &pod("web-0")));
        let owners = desired_claim_owners(&claim, &set, &pod("web-0"));
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].uid.as_str()),
            ("StatefulSet", "set-uid")
        );
        claim.metadata.owner_references = Some(owners);
        assert!(claim_owners_up_to_date(&claim, &set, &pod("web-0")));
    }

    #[test]
    fn delete_on_scale_down_moves_a_condemned_pods_claim_to_the_pod() {
        let set = set("Delete", "Delete", 1);
        let condemned = pod("web-1");
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.owner_references = Some(desired_claim_owners(&claim, &set, &pod("web-0")));
        assert!(!claim_owners_up_to_date(&claim, &set, &condemned));
        let owners = desired_claim_owners(&claim, &set, &condemned);
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "web-1-uid");
    }

    #[test]
    fn retain_retain_wants_no_references() {
        let set = set("Retain", "Retain", 1);
        let claim = PersistentVolumeClaim::default();
        assert!(claim_owners_up_to_date(&claim, &set, &pod("web-0")));
        assert!(desired_claim_owners(&claim, &set, &pod("web-0")).is_empty());
    }
}
