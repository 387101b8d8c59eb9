//! Pure pieces of a Job's status: its conditions, the uncounted terminated pods, and the rules that decide it failed or finished.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use std::collections::HashMap;

use super::pods::{
    finished_time, has_tracking_finalizer, index_absolute_failure_count, is_failed, is_indexed,
    valid_index,
};
use crate::intervals::Intervals;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";

/// `Complete` or `Failed` when the Job has one of them true.
pub fn finished_condition_type(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == COMPLETE || c.type_ == FAILED) && c.status == "True")
        .map(|c| c.type_.as_str())
}

pub fn is_finished(job: &Job) -> bool {
    finished_condition_type(job).is_some()
}

pub fn find_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: (!reason.is_empty()).then(|| reason.into()),
        message: (!message.is_empty()).then(|| message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets the condition of `type_` to the given status, reason and message;
/// a missing condition is added only when not "False". Returns whether
/// anything changed.
pub fn ensure_condition(
    conditions: &mut Option<Vec<JobCondition>>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let list = conditions.get_or_insert_with(Vec::new);
    let mut wanted = condition(type_, reason, message, now);
    wanted.status = status.into();
    if let Some(existing) = list.iter_mut().find(|c| c.type_ == type_) {
        let same = existing.status == status
            && existing.reason.as_deref().unwrap_or_default() == reason
            && existing.message.as_deref().unwrap_or_default() == message;
        if same {
            return false;
        }
        *existing = wanted;
        return true;
    }
    if status == "False" {
        if list.is_empty() {
            *conditions = None;
        }
        return false;
    }
    list.push(wanted);
    true
}

/// The pod UIDs in `status.uncountedTerminatedPods`.
#[derive(Default)]
pub struct Uncounted {
    pub succeeded: HashSet<String>,
    pub failed: HashSet<String>,
}

impl Uncounted {
    pub fn of(job: &Job) -> Uncounted {
        let uncounted = job
            .status
            .as_ref()
            .and_then(|s| s.uncounted_terminated_pods.as_ref());
        let set = |list: Option<&Vec<String>>| list.into_iter().flatten().cloned().collect();
        Uncounted {
            succeeded: set(uncounted.and_then(|u| u.succeeded.as_ref())),
            failed: set(uncounted.and_then(|u| u.failed.as_ref())),
        }
    }
}

/// Finished pods not counted yet: they still carry the finalizer, are not
/// in the uncounted list nor waiting for their finalizer removal, and
/// (Indexed) hold a valid index.
pub fn new_finished_pods<'a>(
    job: &Job,
    pods: &'a [Pod],
    uncounted: &HashSet<String>,
    expected_removals: &HashSet<String>,
    finished: impl Fn(&Pod) -> bool,
) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| {
            let uid = p.metadata.uid.as_deref().unwrap_or_default();
            has_tracking_finalizer(p)
                && !uncounted.contains(uid)
                && !expected_removals.contains(uid)
                && (!is_indexed(job) || valid_index(p, job).is_some())
                && finished(p)
        })
        .collect()
}

pub fn non_zero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

/// Moves uncounted pods whose finalizer is gone into the counters.
/// Returns whether the status changed.
pub fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let mut changed = false;
    let mut moved = |list: &mut Option<Vec<String>>| -> i32 {
        let Some(uids) = list.as_mut() else {
            return 0;
        };
        let before = uids.len();
        uids.retain(|uid| with_finalizer.contains(uid));
        let moved = (before - uids.len()) as i32;
        if uids.is_empty() {
            *list = None;
        }
        if moved > 0 {
            changed = true;
        }
        moved
    };
    let succeeded = moved(&mut uncounted.succeeded);
    let failed = moved(&mut uncounted.failed);
    status.succeeded = non_zero(status.succeeded.unwrap_or(0) + succeeded);
    status.failed = non_zero(status.failed.unwrap_or(0) + failed);
    changed
}

/// Adds the terminal condition once every finished pod is counted and no
/// pod is still terminating. Returns whether the Job is now finished.
pub fn enact_finished(
    job: &mut Job,
    finished: Option<&JobCondition>,
    terminating: i32,
    now: Timestamp,
) -> bool {
    let Some(finished) = finished else {
        return false;
    };
    let status = job.status.get_or_insert_with(Default::default);
    if let Some(uncounted) = &status.uncounted_terminated_pods {
        let count = uncounted.succeeded.as_ref().map_or(0, Vec::len)
            + uncounted.failed.as_ref().map_or(0, Vec::len);
        if count > 0 {
            return false;
        }
    }
    if terminating > 0 {
        return false;
    }
    ensure_condition(
        &mut status.conditions,
        &finished.type_,
        &finished.status,
        finished.reason.as_deref().unwrap_or_default(),
        finished.message.as_deref().unwrap_or_default(),
        now,
    );
    if finished.type_ == COMPLETE {
        status.completion_time = finished.last_transition_time.clone();
    }
    true
}

/// With `restartPolicy: OnFailure`, container restarts of running pods
/// count against the backoff limit.
pub fn past_backoff_limit_on_failure(job: &Job, pods: &[Pod]) -> bool {
    let spec = job.spec.as_ref();
    let restart_policy = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if restart_policy != Some("OnFailure") {
        return false;
    }
    let mut restarts = 0;
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        if !matches!(status.phase.as_deref(), Some("Running" | "Pending")) {
            continue;
        }
        for container in status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
        {
            restarts += container.restart_count;
        }
    }
    let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Time left before `activeDeadlineSeconds` passes.
pub fn deadline_remaining(now: Timestamp, start: Timestamp, seconds: i64) -> Duration {
    let end = start
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX);
    crate::clock::duration_until(now, end)
}

/// Per index with no active, succeeded or failed pod, the failed pod
/// whose finalizer stays until a replacement is created, so the
/// replacement can carry the index's failure count.
pub fn pods_with_delayed_deletion<'a>(
    job: &Job,
    pods: &'a [Pod],
    active: &[&Pod],
    succeeded: &Intervals,
    failed: &Intervals,
    expected_removals: &HashSet<String>,
) -> HashMap<u32, &'a Pod> {
    let active_indexes: HashSet<u32> = active.iter().filter_map(|p| valid_index(p, job)).collect();
    let mut delayed: HashMap<u32, &Pod> = HashMap::new();
    for pod in pods {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        if !has_tracking_finalizer(pod) || expected_removals.contains(uid) || !is_failed(pod, job) {
            continue;
        }
        let Some(index) = valid_index(pod, job) else {
            continue;
        };
        if succeeded.contains(index) || failed.contains(index) || active_indexes.contains(&index) {
            continue;
        }
        let newer = |last: &Pod| {
            index_absolute_failure_count(last) <= index_absolute_failure_count(pod)
                && finished_time(pod) >= finished_time(last)
        };
        match delayed.get(&index) {
            Some(last) if !newer(last) => {}
            _ => {
                delayed.insert(index, pod);
            }
        }
    }
    delayed
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::UncountedTerminatedPods;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_false_condition_is_not_added_but_a_true_one_is_updated() {
        let mut conditions = None;
        assert!(!ensure_condition(
            &mut conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now()
        ));
        assert!(conditions.is_none());
        assert!(ensure_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now()
        ));
        assert!(!ensure_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now()
        ));
        assert!(ensure_condition(
            &mut conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now()
        ));
        let list = conditions.unwrap();
        assert_eq!(
            (list[0].status.as_str(), list[0].reason.as_deref()),
            ("False", Some("JobResumed"))
        );
    }

    #[test]
    fn uncounted_pods_without_finalizers_move_into_the_counters() {
        let mut status = JobStatus {
            succeeded: Some(2),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let still_held = HashSet::from(["b".to_string()]);
        assert!(clean_uncounted(&mut status, &still_held));
        assert_eq!((status.succeeded, status.failed), (Some(3), Some(1)));
        let uncounted = status.uncounted_terminated_pods.unwrap();
        assert_eq!(uncounted.succeeded, Some(vec!["b".to_string()]));
        assert_eq!(uncounted.failed, None);
    }

    #[test]
    fn the_terminal_condition_waits_for_uncounted_and_terminating_pods() {
        let mut job = Job::default();
        let complete = condition(
            COMPLETE,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now(),
        );
        assert!(!enact_finished(&mut job, Some(&complete), 1, now()));
        assert!(enact_finished(&mut job, Some(&complete), 0, now()));
        assert!(is_finished(&job));
        assert_eq!(job.status.unwrap().completion_time, Some(Time(now())));
    }

    #[test]
    fn the_deadline_counts_from_the_start_time() {
        let start: Timestamp = "2024-05-01T11:59:30Z".parse().unwrap();
        assert_eq!(
            deadline_remaining(now(), start, 60),
            Duration::from_secs(30)
        );
        assert_eq!(deadline_remaining(now(), start, 10), Duration::ZERO);
    }
}
