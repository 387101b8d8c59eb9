//! Pure rollout arithmetic and bookkeeping of upstream's `deploymentutil`: surge and unavailability fenceposts, new ReplicaSet sizes, proportions, revisions and annotations, conditions and status.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
pub const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Upstream's `maxRevHistoryLengthInChars`.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const PAUSED_REASON: &str = "DeploymentPaused";
pub const RESUMED_REASON: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";

pub fn desired_replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// Upstream's `HasProgressDeadline`: set and not MaxInt32.
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .progress_deadline_seconds
        .filter(|seconds| *seconds != i32::MAX)
}

pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .revision_history_limit
        .filter(|limit| *limit != i32::MAX)
}

/// Upstream's `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(value) => Ok(*value),
        IntOrString::String(text) => {
            let percent = text
                .strip_suffix('%')
                .and_then(|number| number.parse::<i64>().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {text:?}"))?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(scaled as i32)
        }
    }
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let rolling = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge = rolling
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(IntOrString::Int(0));
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(0));
    (surge, unavailable)
}

/// Upstream's `ResolveFenceposts`: surge rounds up, unavailability down,
/// and both zero means one unavailable.
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> (i32, i32) {
    let surge = scaled_value(max_surge, desired, true).unwrap_or(0);
    let mut unavailable = scaled_value(max_unavailable, desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(&surge, &unavailable, desired_replicas(d)).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = desired_replicas(d);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(&surge, &unavailable, desired)
        .1
        .min(desired)
}

/// Upstream's `NewRSNewReplicas`: how big the new ReplicaSet may be now.
pub fn new_rs_new_replicas(d: &Deployment, all_rss: &[&ReplicaSet], new_rs_replicas: i32) -> i32 {
    if !is_rolling_update(d) {
        return desired_replicas(d);
    }
    let desired = desired_replicas(d);
    let (surge, _) = rolling_params(d);
    let surge = scaled_value(&surge, desired, true).unwrap_or(0);
    let current: i32 = all_rss.iter().map(|rs| rs_replicas(rs)).sum();
    let max_total = desired + surge;
    if current >= max_total {
        return new_rs_replicas;
    }
    let scale_up = (max_total - current).min(desired - new_rs_replicas);
    new_rs_replicas + scale_up
}

pub fn annotation<'a>(
    annotations: &'a Option<BTreeMap<String, String>>,
    key: &str,
) -> Option<&'a str> {
    annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision annotation as a number; missing is 0, malformed is `None`.
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(&rs.metadata.annotations, REVISION_ANNOTATION) {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

pub fn max_revision(rss: &[&ReplicaSet]) -> i64 {
    rss.iter().filter_map(|rs| revision(rs)).max().unwrap_or(0)
}

/// Upstream's `EqualIgnoreHash`: templates equal once the hash label is
/// dropped; empty and missing maps and lists count as equal.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn normalized(template: &PodTemplateSpec) -> Value {
        let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
        if let Some(labels) = value
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        prune(&mut value);
        value
    }
    fn prune(value: &mut Value) -> bool {
        match value {
            Value::Null => true,
            Value::Object(map) => {
                map.retain(|_, v| !prune(v));
                map.is_empty()
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    prune(item);
                }
                items.is_empty()
            }
            _ => false,
        }
    }
    normalized(a) == normalized(b)
}

/// By creation time, then name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let time = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match time(a).cmp(&time(b)) {
        Ordering::Equal => a.metadata.name.cmp(&b.metadata.name),
        other => other,
    }
}

/// By revision, then creation (upstream's `ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let revision_of = |rs: &ReplicaSet| revision(rs).unwrap_or(0);
    match revision_of(a).cmp(&revision_of(b)) {
        Ordering::Equal => by_creation(a, b),
        other => other,
    }
}

/// Larger first; equal sizes newer first (scaling up).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Larger first; equal sizes older first (scaling down).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// The first (oldest) ReplicaSet whose template is the Deployment's.
pub fn find_new_replica_set<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .template
            .as_ref()
            .is_some_and(|template| equal_ignore_hash(template, &d.spec.template))
    })
}

fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | ROLLBACK_TO_ANNOTATION
    )
}

/// Copies the Deployment's own annotations onto the ReplicaSet.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in d.metadata.annotations.iter().flatten() {
        if skip_copy(key) || target.get(key) == Some(value) {
            continue;
        }
        target.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// Upstream's `SetReplicasAnnotations`.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
        (MAX_REPLICAS_ANNOTATION, max.to_string()),
    ] {
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            updated = true;
        }
    }
    updated
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata.annotations, DESIRED_REPLICAS_ANNOTATION)
        != Some(desired.to_string().as_str())
        || annotation(&rs.metadata.annotations, MAX_REPLICAS_ANNOTATION)
            != Some(max.to_string().as_str())
}

/// Upstream's `SetNewReplicaSetAnnotations`: copy the Deployment's
/// annotations, raise the revision (keeping the old one in the history when
/// an old ReplicaSet comes back), and on creation the replica annotations.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision_text = annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision = match &old_revision_text {
        None => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(number) => number,
            Err(_) => return false,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
    }
    if let Some(old_text) = old_revision_text
        && old_revision < new_revision
    {
        let history = annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            annotations.insert(REVISION_HISTORY_ANNOTATION.into(), old_text);
        } else {
            let mut revisions: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old_text.len() + 1;
            let mut start = 0;
            while total > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
                total -= revisions[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REVISION_HISTORY_CHARS {
                revisions = revisions.split_off(start);
                revisions.push(&old_text);
                let joined = revisions.join(",");
                annotations.insert(REVISION_HISTORY_ANNOTATION.into(), joined);
            }
        }
    }
    if !exists
        && set_replicas_annotations(rs, desired_replicas(d), desired_replicas(d) + max_surge(d))
    {
        changed = true;
    }
    changed
}

/// Sets the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.into(), revision.into());
    true
}

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's `SetDeploymentCondition`: same status and reason is a no-op;
/// same status keeps the transition time; the condition moves to the end.
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = condition(status, new.type_.as_deref().unwrap_or_default()) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, new.type_.as_deref().unwrap_or_default());
    status.conditions.get_or_insert_with(Vec::new).push(new);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = &mut status.conditions {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

/// ReplicaFailure conditions of the new ReplicaSet, else of any.
pub fn replica_failures(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Vec<DeploymentCondition> {
    let failures = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_.as_deref() == Some(REPLICA_FAILURE))
            .map(replica_set_to_deployment_condition)
            .collect()
    };
    if let Some(new_rs) = new_rs {
        let found = failures(new_rs);
        if !found.is_empty() {
            return found;
        }
    }
    all.iter().flat_map(|rs| failures(rs)).collect()
}

fn non_zero(value: i32) -> Option<i32> {
    (value != 0).then_some(value)
}

/// A status with Go's `omitempty` zeroes left out, for comparing.
pub fn normalized(status: Option<&DeploymentStatus>) -> DeploymentStatus {
    let status = status.cloned().unwrap_or_default();
    DeploymentStatus {
        observed_generation: status.observed_generation.filter(|g| *g != 0),
        replicas: status.replicas.and_then(non_zero),
        updated_replicas: status.updated_replicas.and_then(non_zero),
        ready_replicas: status.ready_replicas.and_then(non_zero),
        available_replicas: status.available_replicas.and_then(non_zero),
        unavailable_replicas: status.unavailable_replicas.and_then(non_zero),
        terminating_replicas: status.terminating_replicas,
        collision_count: status.collision_count,
        conditions: status.conditions.filter(|c| !c.is_empty()),
    }
}

/// Upstream's `calculateStatus`, with the Available condition.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let current = normalized(d.status.as_ref());
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation.filter(|g| *g != 0),
        replicas: non_zero(all.iter().map(|rs| rs_status_replicas(rs)).sum()),
        updated_replicas: non_zero(new_rs.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: non_zero(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: non_zero(available),
        unavailable_replicas: non_zero((total - available).max(0)),
        terminating_replicas: current.terminating_replicas,
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
    };
    if available >= desired_replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MIN_AVAILABLE_REASON,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE_REASON,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

fn count(value: Option<i32>) -> i32 {
    value.unwrap_or(0)
}

/// Upstream's `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = desired_replicas(d);
    count(status.updated_replicas) == desired
        && count(status.replicas) == desired
        && count(status.available_replicas) == desired
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: more updated, fewer old, more ready
/// or more available replicas than before.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = normalized(d.status.as_ref());
    let old_old_replicas = count(old.replicas) - count(old.updated_replicas);
    let new_old_replicas = count(new.replicas) - count(new.updated_replicas);
    count(new.updated_replicas) > count(old.updated_replicas)
        || new_old_replicas < old_old_replicas
        || count(new.ready_replicas) > count(old.ready_replicas)
        || count(new.available_replicas) > count(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(progressing) = condition(status, PROGRESSING) else {
        return false;
    };
    match progressing.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => false,
        Some(TIMED_OUT_REASON) => true,
        _ => progressing
            .last_update_time
            .as_ref()
            .is_some_and(|from| from.0.as_second() + i64::from(deadline) < now.as_second()),
    }
}

/// Upstream's `IsSaturated`: the ReplicaSet is the whole Deployment and
/// all of it is available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let Some(desired) = annotation(&rs.metadata.annotations, DESIRED_REPLICAS_ANNOTATION)
        .and_then(|text| text.parse::<i32>().ok())
    else {
        return false;
    };
    let replicas = desired_replicas(d);
    rs_replicas(rs) == replicas && desired == replicas && rs_available(rs) == replicas
}

/// Upstream's `GetProportion`: this ReplicaSet's share of a scaling of the
/// whole Deployment by `to_add`, `added` being handed out already.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = i64::from(rs_replicas(rs));
    if desired_replicas(d) == 0 {
        return -(replicas as i32);
    }
    let max_replicas = i64::from(desired_replicas(d) + max_surge(d));
    let before = annotation(&rs.metadata.annotations, MAX_REPLICAS_ANNOTATION)
        .and_then(|text| text.parse::<i64>().ok())
        .filter(|before| *before != 0)
        .unwrap_or_else(|| i64::from(count(d.status.as_ref().and_then(|s| s.replicas))));
    if before == 0 {
        return 0;
    }
    // Round half up, as upstream's RoundToInt32 of the float quotient.
    let numerator = replicas * max_replicas;
    let rounded = (2 * numerator + before).div_euclid(2 * before);
    (rounded - replicas) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    fn percent(text: &str) -> IntOrString {
        IntOrString::String(text.into())
    }

    fn rs(replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                ..ReplicaSetSpec::default()
            },
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ..ReplicaSetStatus::default()
            }),
            ..ReplicaSet::default()
        }
    }

    #[test]
    fn percentages_round_surge_up_and_unavailability_down() {
        let d = deployment(10, percent("25%"), percent("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
        let d = deployment(1, percent("25%"), percent("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let d = deployment(3, IntOrString::Int(0), percent("10%"));
        // Both fenceposts zero: one may be unavailable.
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 1));
        let d = deployment(2, IntOrString::Int(1), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
        assert!(scaled_value(&percent("x%"), 10, true).is_err());
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        let d = deployment(10, IntOrString::Int(2), IntOrString::Int(0));
        let old = rs(10, 10);
        let new = rs(0, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 0), 2);
        let old = rs(9, 9);
        let new = rs(2, 1);
        // 11 of 12 allowed: one more.
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 2), 3);
        let old = rs(10, 10);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 2), 2);
    }

    #[test]
    fn proportions_follow_the_max_replicas_annotation() {
        // Scaled from 10 (max 13) to 20 (max 25): a 6-replica set gets
        // round(6 * 25 / 13) - 6 = 12 - 6 = 6.
        let d = deployment(20, percent("25%"), percent("25%"));
        let mut old = rs(6, 6);
        old.metadata.annotations =
            Some([(MAX_REPLICAS_ANNOTATION.to_string(), "13".to_string())].into());
        assert_eq!(proportion(&old, &d, 12, 0), 6);
        // Never more than is left to hand out.
        assert_eq!(proportion(&old, &d, 12, 10), 2);
        // Scaling to zero takes everything.
        let d = deployment(0, percent("25%"), percent("25%"));
        assert_eq!(proportion(&old, &d, -6, 0), -6);
    }

    #[test]
    fn revisions_move_into_the_history_on_rollback() {
        let d = Deployment::default();
        let mut rs = ReplicaSet::default();
        assert!(set_new_replica_set_annotations(&d, &mut rs, 1, false));
        assert_eq!(
            annotation(&rs.metadata.annotations, REVISION_ANNOTATION),
            Some("1")
        );
        assert_eq!(
            annotation(&rs.metadata.annotations, DESIRED_REPLICAS_ANNOTATION),
            Some("1")
        );
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, true));
        assert_eq!(
            annotation(&rs.metadata.annotations, REVISION_ANNOTATION),
            Some("3")
        );
        assert_eq!(
            annotation(&rs.metadata.annotations, REVISION_HISTORY_ANNOTATION),
            Some("1")
        );
        assert!(set_new_replica_set_annotations(&d, &mut rs, 5, true));
        assert_eq!(
            annotation(&rs.metadata.annotations, REVISION_HISTORY_ANNOTATION),
            Some("1,3")
        );
        assert!(!set_new_replica_set_annotations(&d, &mut rs, 5, true));
    }

    #[test]
    fn setting_a_condition_keeps_the_transition_time_while_the_status_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut status = DeploymentStatus::default();
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", NEW_RS_REASON, "a".into(), t0),
        );
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", RS_UPDATED_REASON, "b".into(), t1),
        );
        let c = condition(&status, PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED_REASON));
        assert_eq!(c.last_transition_time, Some(Time(t0)));
        assert_eq!(c.last_update_time, Some(Time(t1)));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut a = PodTemplateSpec::default();
        let mut b = PodTemplateSpec::default();
        a.metadata = Some(Default::default());
        a.metadata.as_mut().unwrap().labels = Some([("app".to_string(), "x".to_string())].into());
        b.metadata = a.metadata.clone();
        b.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        b.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("app".into(), "y".into());
        assert!(!equal_ignore_hash(&a, &b));
    }

    #[test]
    fn timing_out_needs_the_deadline_passed_since_the_last_progress() {
        let mut d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
        d.spec.progress_deadline_seconds = Some(10);
        let mut status = DeploymentStatus::default();
        let t0 = Timestamp::from_second(1_000).unwrap();
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", RS_UPDATED_REASON, "x".into(), t0),
        );
        assert!(!deployment_timed_out(
            &d,
            &status,
            Timestamp::from_second(1_010).unwrap()
        ));
        assert!(deployment_timed_out(
            &d,
            &status,
            Timestamp::from_second(1_011).unwrap()
        ));
    }
}
