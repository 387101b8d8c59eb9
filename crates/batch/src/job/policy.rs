//! Pure rules of a Job's outcome: matching failed pods against the pod failure policy, succeeded indexes against the success policy, per-index failure counts, and the exponential delay before failed pods are replaced.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, SuccessPolicy,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::pods;
use crate::intervals::Intervals;

/// What the pod failure policy says about one failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyMatch {
    /// The job failure message, when a FailJob rule matched.
    pub fail_job: Option<String>,
    /// Whether the failure counts towards the backoff limits (not when an
    /// Ignore rule matched).
    pub counts: bool,
    /// The action of the matching rule, if any.
    pub action: Option<String>,
}

/// upstream's matchPodFailurePolicy: the first rule whose exit codes or pod
/// conditions match decides.
pub fn match_pod_failure_policy(policy: Option<&PodFailurePolicy>, pod: &Pod) -> PolicyMatch {
    let no_match = PolicyMatch {
        fail_job: None,
        counts: true,
        action: None,
    };
    let Some(policy) = policy else {
        return no_match;
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref();
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched: Option<String> = if let Some(requirement) = &rule.on_exit_codes {
            let containers = status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| matching_container(c, requirement))
                .or_else(|| {
                    status
                        .and_then(|s| s.init_container_statuses.as_ref())
                        .and_then(|c| matching_container(c, requirement))
                });
            containers.map(|(container, exit_code)| {
                format!(
                    "Container {container} for pod {namespace}/{name} failed with exit code {exit_code} matching {} rule at index {index}",
                    rule.action
                )
            })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|conditions| {
                    conditions.iter().find(|condition| {
                        patterns.iter().any(|p| {
                            p.type_ == condition.type_
                                && p.status.as_deref().unwrap_or("True") == condition.status
                        })
                    })
                })
                .map(|condition| {
                    format!(
                        "Pod {namespace}/{name} has condition {} matching {} rule at index {index}",
                        condition.type_, rule.action
                    )
                })
        } else {
            None
        };
        let Some(message) = matched else {
            continue;
        };
        let action = Some(rule.action.clone());
        match rule.action.as_str() {
            "Ignore" => {
                return PolicyMatch {
                    fail_job: None,
                    counts: false,
                    action,
                };
            }
            "FailIndex" | "Count" => {
                return PolicyMatch {
                    fail_job: None,
                    counts: true,
                    action,
                };
            }
            "FailJob" => {
                return PolicyMatch {
                    fail_job: Some(message),
                    counts: true,
                    action,
                };
            }
            _ => {}
        }
    }
    no_match
}

/// The first terminated container with a non-zero exit code the
/// requirement accepts, as (name, exit code).
fn matching_container(
    statuses: &[ContainerStatus],
    requirement: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(String, i32)> {
    statuses.iter().find_map(|status| {
        let terminated = status.state.as_ref()?.terminated.as_ref()?;
        if requirement
            .container_name
            .as_ref()
            .is_some_and(|name| *name != status.name)
        {
            return None;
        }
        let code = terminated.exit_code;
        if code == 0 {
            return None;
        }
        let listed = requirement.values.contains(&code);
        let accepted = match requirement.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        accepted.then(|| (status.name.clone(), code))
    })
}

/// The message of the first success policy rule the succeeded indexes
/// satisfy: all of its `succeededIndexes`, or `succeededCount` of them (or
/// of all indexes when it lists none).
pub fn match_success_policy(
    policy: Option<&SuccessPolicy>,
    completions: u32,
    succeeded: &Intervals,
) -> Option<String> {
    let policy = policy?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let count = rule.succeeded_count.map(|c| c.max(0) as u32);
        let matched = match &rule.succeeded_indexes {
            Some(text) => {
                let required = Intervals::parse(text, completions);
                if required.is_empty() {
                    continue;
                }
                let contained = required.iter().filter(|i| succeeded.contains(*i)).count() as u32;
                contained == required.total() || count.is_some_and(|c| contained >= c)
            }
            None => count.is_some_and(|c| succeeded.total() >= c),
        };
        if matched {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// Whether a pod's failure fails its index: a FailIndex rule matched, or
/// the failure counts and the index already failed `backoffLimitPerIndex`
/// times before.
pub fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    if !pods::is_failed(pod, job) {
        return false;
    }
    let spec = job.spec.as_ref();
    let counted = match spec.and_then(|s| s.pod_failure_policy.as_ref()) {
        Some(policy) => {
            let outcome = match_pod_failure_policy(Some(policy), pod);
            if outcome.action.as_deref() == Some("FailIndex") {
                return true;
            }
            outcome.counts
        }
        None => true,
    };
    let limit = spec
        .and_then(|s| s.backoff_limit_per_index)
        .unwrap_or(0)
        .max(0) as u32;
    counted && pods::index_failure_count(pod) >= limit
}

/// The failure counts a replacement for `replaced` carries.
pub fn new_index_failure_counts(job: &Job, replaced: Option<&Pod>) -> (u32, u32) {
    let Some(replaced) = replaced else {
        return (0, 0);
    };
    let counted = pods::index_failure_count(replaced);
    let ignored = pods::index_absolute_failure_count(replaced) - counted;
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref());
    if match_pod_failure_policy(policy, replaced).counts {
        (counted + 1, ignored)
    } else {
        (counted, ignored + 1)
    }
}

/// How long an index waits after its last failed pod `last_failed`.
pub fn index_backoff_remaining(
    last_failed: Option<&Pod>,
    now: Timestamp,
    base: Duration,
    max: Duration,
) -> Duration {
    let Some(pod) = last_failed else {
        return Duration::ZERO;
    };
    BackoffRecord {
        failures_after_last_success: pods::index_absolute_failure_count(pod) + 1,
        last_failure_time: pods::finished_time(pod),
    }
    .remaining(now, base, max)
}

/// Consecutive failures since the last success, and when the last failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    pub failures_after_last_success: u32,
    pub last_failure_time: Option<Timestamp>,
}

impl BackoffRecord {
    /// The record after newly finished pods are seen (upstream's
    /// newBackoffRecord): a success resets the count to the failures that
    /// finished after it.
    pub fn after(&self, succeeded: &[&Pod], failed: &[&Pod]) -> BackoffRecord {
        let mut failed_times: Vec<Timestamp> = failed
            .iter()
            .filter_map(|p| pods::finished_time(p))
            .collect();
        failed_times.sort();
        let last_success = succeeded
            .iter()
            .filter_map(|p| pods::finished_time(p))
            .max();
        match last_success {
            None if failed_times.is_empty() => self.clone(),
            None => BackoffRecord {
                failures_after_last_success: self.failures_after_last_success + failed.len() as u32,
                last_failure_time: failed_times.last().copied().or(self.last_failure_time),
            },
            Some(success) => {
                let after: Vec<Timestamp> =
                    failed_times.into_iter().filter(|t| *t > success).collect();
                BackoffRecord {
                    failures_after_last_success: after.len() as u32,
                    last_failure_time: after.last().copied(),
                }
            }
        }
    }

    /// How long to wait before creating pods again: `base` doubled for each
    /// failure after the first, at most `max`, counted from the last failure.
    pub fn remaining(&self, now: Timestamp, base: Duration, max: Duration) -> Duration {
        let Some(last) = self.last_failure_time else {
            return Duration::ZERO;
        };
        if self.failures_after_last_success == 0 {
            return Duration::ZERO;
        }
        let delay = backoff_delay(self.failures_after_last_success, base, max);
        let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        delay.saturating_sub(elapsed)
    }
}

/// `base * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let mut delay = base;
    for _ in 1..failures {
        delay = delay.saturating_mul(2);
        if delay >= max {
            return max;
        }
    }
    delay.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
    };
    use serde_json::json;

    fn failed_pod(exit_code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {
                "phase": "Failed",
                "conditions": conditions,
                "containerStatuses": [{
                    "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit_code}}
                }]
            }
        }))
        .unwrap()
    }

    fn rule(action: &str, op: &str, values: Vec<i32>) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: op.into(),
                values,
            }),
            on_pod_conditions: None,
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: None,
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: Some("True".into()),
                    }]),
                },
                rule("FailJob", "In", vec![42]),
                rule("Count", "NotIn", vec![1]),
            ],
        };
        let disrupted = failed_pod(42, json!([{"type": "DisruptionTarget", "status": "True"}]));
        let outcome = match_pod_failure_policy(Some(&policy), &disrupted);
        assert!(!outcome.counts);
        assert_eq!(outcome.action.as_deref(), Some("Ignore"));

        let outcome = match_pod_failure_policy(Some(&policy), &failed_pod(42, json!([])));
        assert_eq!(
            outcome.fail_job.as_deref(),
            Some(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
            )
        );
        let outcome = match_pod_failure_policy(Some(&policy), &failed_pod(3, json!([])));
        assert_eq!(
            (outcome.counts, outcome.action.as_deref()),
            (true, Some("Count"))
        );
        let outcome = match_pod_failure_policy(Some(&policy), &failed_pod(1, json!([])));
        assert_eq!((outcome.counts, outcome.action), (true, None));
    }

    #[test]
    fn success_policy_rules_match_on_indexes_or_counts() {
        use k8s_openapi::api::batch::v1::SuccessPolicyRule;
        let rule = |indexes: Option<&str>, count: Option<i32>| SuccessPolicyRule {
            succeeded_indexes: indexes.map(Into::into),
            succeeded_count: count,
        };
        let policy = SuccessPolicy {
            rules: vec![
                rule(Some("0-2"), None),
                rule(Some("3-9"), Some(2)),
                rule(None, Some(5)),
            ],
        };
        let succeeded = |list: &[u32]| Intervals::from_indexes(list.iter().copied());
        assert_eq!(
            match_success_policy(Some(&policy), 10, &succeeded(&[0, 1])),
            None
        );
        assert_eq!(
            match_success_policy(Some(&policy), 10, &succeeded(&[0, 1, 2])).as_deref(),
            Some("Matched rules at index 0")
        );
        assert_eq!(
            match_success_policy(Some(&policy), 10, &succeeded(&[4, 8])).as_deref(),
            Some("Matched rules at index 1")
        );
        assert_eq!(
            match_success_policy(Some(&policy), 10, &succeeded(&[0, 1, 3, 9, 2])).as_deref(),
            Some("Matched rules at index 0")
        );
        assert_eq!(match_success_policy(None, 10, &succeeded(&[0])), None);
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(600);
        let delays: Vec<u64> = (1..=8)
            .map(|n| backoff_delay(n, base, max).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600]);
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let record = BackoffRecord {
            failures_after_last_success: 2,
            last_failure_time: Some("2024-01-01T00:00:50Z".parse().unwrap()),
        };
        assert_eq!(record.remaining(now, base, max), Duration::from_secs(10));
        assert_eq!(
            BackoffRecord::default().remaining(now, base, max),
            Duration::ZERO
        );
    }
}
