//! Pure rules about a Job's pods: labels and names of new pods, the completion index, which pods are active, terminating, ready or failed, and the order in which surplus pods are removed.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

use crate::intervals::Intervals;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const COMPLETION_INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
pub const INDEX_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
pub const INDEX_IGNORED_FAILURE_COUNT_KEY: &str =
    "batch.kubernetes.io/job-index-ignored-failure-count";
/// Longest generateName prefix: a DNS label less the 5 random characters.
const MAX_GENERATED_NAME_LENGTH: usize = 58;

pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

pub fn completions(job: &Job) -> Option<i32> {
    job.spec.as_ref().and_then(|s| s.completions)
}

pub fn has_backoff_limit_per_index(job: &Job) -> bool {
    job.spec
        .as_ref()
        .is_some_and(|s| s.backoff_limit_per_index.is_some())
}

/// A count annotation; anything but a number in 0..=i32::MAX reads as 0.
fn count_annotation(pod: &Pod, key: &str) -> u32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .map_or(0, |v| v as u32)
}

/// Failures of earlier pods of this pod's index that counted.
pub fn index_failure_count(pod: &Pod) -> u32 {
    count_annotation(pod, INDEX_FAILURE_COUNT_KEY)
}

/// Failures counted or ignored by the pod failure policy.
pub fn index_absolute_failure_count(pod: &Pod) -> u32 {
    index_failure_count(pod) + count_annotation(pod, INDEX_IGNORED_FAILURE_COUNT_KEY)
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// The pod's completion index annotation, if it is a valid number.
pub fn completion_index(pod: &Pod) -> Option<u32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX_KEY)?
        .parse()
        .ok()
}

/// A completion index below `completions`.
pub fn valid_index(pod: &Pod, job: &Job) -> Option<u32> {
    let completions = u32::try_from(completions(job)?).ok()?;
    completion_index(pod).filter(|index| *index < completions)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Not finished and not being deleted (upstream's FilterActivePods).
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Being deleted but not finished.
pub fn is_terminating(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_some()
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Pods are replaced only once they failed: with a pod failure policy, or
/// `podReplacementPolicy: Failed`.
pub fn only_replace_failed_pods(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Failed, or (unless only failed pods are replaced) deleted before it
/// finished: an orphan the kubelet never got to fail still counts.
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && !is_succeeded(pod)
}

/// When the pod finished: the last container's finish, else when it
/// stopped being ready, else its deletion less the grace period, else its
/// creation (upstream's getFinishedTime).
pub fn finished_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let statuses = status.and_then(|s| s.container_statuses.as_ref());
    if let Some(statuses) = statuses {
        let mut latest: Option<Timestamp> = None;
        let mut all_finished = !statuses.is_empty();
        for container in statuses {
            match container
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())
            {
                Some(finished) => latest = Some(latest.map_or(finished.0, |l| l.max(finished.0))),
                None => all_finished = false,
            }
        }
        if all_finished && latest.is_some() {
            return latest;
        }
    }
    if let Some(ready) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return Some(ready.0);
    }
    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return Some(
            deleted
                .0
                .checked_sub(jiff::SignedDuration::from_secs(grace))
                .unwrap_or(deleted.0),
        );
    }
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Whether `labels` satisfy `selector` (an empty selector matches all).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(match_labels) = &selector.match_labels
        && match_labels.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let value = labels.get(&requirement.key);
        let values = requirement.values.as_deref().unwrap_or_default();
        let ok = match requirement.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The Job's pod selector. The API server's job strategy normally generates
/// it from the uid; when absent, the uid label is what the pods carry.
pub fn job_selector(job: &Job) -> LabelSelector {
    if let Some(selector) = job.spec.as_ref().and_then(|s| s.selector.clone()) {
        return selector;
    }
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            CONTROLLER_UID_LABEL.to_string(),
            job.metadata.uid.clone().unwrap_or_default(),
        )])),
        match_expressions: None,
    }
}

/// The labels the job strategy puts on the template unless the selector is
/// manual: the uid and name, also under their legacy keys.
fn generated_labels(job: &Job) -> [(&'static str, String); 4] {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    [
        (CONTROLLER_UID_LABEL, uid.clone()),
        (JOB_NAME_LABEL, name.clone()),
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
    ]
}

/// The pod to create for `job` (with `index` for Indexed jobs): the
/// template with the job's labels, the tracking finalizer, the controller
/// reference and, when indexed, the index annotation, label, env and hostname.
/// With `backoffLimitPerIndex`, `index_failures` are the counted and
/// ignored failures of the index so far, carried as annotations.
pub fn new_pod(
    job: &Job,
    owner: OwnerReference,
    index: Option<u32>,
    index_failures: Option<(u32, u32)>,
) -> Pod {
    let template: PodTemplateSpec = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    let manual = job
        .spec
        .as_ref()
        .and_then(|s| s.manual_selector)
        .unwrap_or(false);
    if !manual {
        for (key, value) in generated_labels(job) {
            labels.entry(key.to_string()).or_insert(value);
        }
    }
    let mut annotations = template_meta.annotations.unwrap_or_default();
    let mut finalizers = template_meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(index) => {
            annotations.insert(COMPLETION_INDEX_KEY.into(), index.to_string());
            labels.insert(COMPLETION_INDEX_KEY.into(), index.to_string());
            spec.hostname = Some(format!("{job_name}-{index}"));
            for container in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                let env = container.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    env.push(EnvVar {
                        name: COMPLETION_INDEX_ENV.into(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.labels['{COMPLETION_INDEX_KEY}']"),
                            }),
                            ..EnvVarSource::default()
                        }),
                    });
                }
            }
            if let Some((counted, ignored)) = index_failures {
                annotations.insert(INDEX_FAILURE_COUNT_KEY.into(), counted.to_string());
                if ignored > 0 {
                    annotations.insert(INDEX_IGNORED_FAILURE_COUNT_KEY.into(), ignored.to_string());
                }
            }
            indexed_generate_name(&job_name, index)
        }
        None => format!("{job_name}-"),
    };
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `<job>-<index>-`, the job name shortened so the whole fits.
pub fn indexed_generate_name(job_name: &str, index: u32) -> String {
    let suffix = format!("-{index}-");
    let mut prefix = job_name.to_string();
    if prefix.len() + suffix.len() > MAX_GENERATED_NAME_LENGTH {
        let mut keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
        while !prefix.is_char_boundary(keep) {
            keep -= 1;
        }
        prefix.truncate(keep);
    }
    prefix + &suffix
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Upstream's ActivePods order: the pods least worth keeping first
/// (unscheduled, pending, not ready, more restarts, newer).
pub fn removal_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

/// Which active pods to delete: for Indexed jobs every pod with a missing
/// or out-of-range index and all but one pod per index, then as many more
/// as needed to remove at least `at_least`, least valuable first.
pub fn active_pods_for_removal<'a>(job: &Job, active: &[&'a Pod], at_least: usize) -> Vec<&'a Pod> {
    let mut remove: Vec<&Pod> = Vec::new();
    let mut left: Vec<&Pod> = Vec::new();
    if is_indexed(job) {
        let mut by_index: BTreeMap<u32, Vec<&Pod>> = BTreeMap::new();
        for pod in active {
            match valid_index(pod, job) {
                Some(index) => by_index.entry(index).or_default().push(pod),
                None => remove.push(pod),
            }
        }
        for (_, mut pods) in by_index {
            pods.sort_by(|a, b| removal_order(a, b));
            let keep = pods.pop();
            remove.extend(pods);
            left.extend(keep);
        }
    } else {
        left = active.to_vec();
    }
    if remove.len() < at_least {
        left.sort_by(|a, b| removal_order(a, b));
        let more = at_least - remove.len();
        remove.extend(left.into_iter().take(more));
    }
    remove
}

/// The lowest `count` indexes below `completions` that no pod holds and
/// that neither succeeded nor failed.
pub fn first_pending_indexes(taken: &Intervals, count: usize, completions: u32) -> Vec<u32> {
    (0..completions)
        .filter(|index| !taken.contains(*index))
        .take(count)
        .collect()
}
