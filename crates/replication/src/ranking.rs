//! Which pods a scale-down removes first: upstream's `ActivePodsWithRanks` ordering, with logarithmic age buckets.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::pods;

/// A pod and how many related active pods share its node.
struct Ranked<'a> {
    pod: &'a Pod,
    colocated: usize,
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pods::phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        // Pending, and anything else, as upstream's map lookup of 0.
        _ => 0,
    }
}

fn creation(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|time| time.0)
}

/// Upstream's `afterOrZero`: a missing time first, then the later one.
fn after_or_zero(first: Option<Timestamp>, second: Option<Timestamp>) -> bool {
    match (first, second) {
        (None, _) => true,
        (_, None) => false,
        (Some(first), Some(second)) => first > second,
    }
}

/// floor(log2(age in nanoseconds)), -1 for no age.
fn logarithmic_rank(time: Timestamp, now: Timestamp) -> i64 {
    let age = now.as_nanosecond() - time.as_nanosecond();
    if age <= 0 {
        return -1;
    }
    i64::from(127 - age.leading_zeros() as i32)
}

/// Compares two times on the logarithmic scale; ties go by UID.
fn newer_on_log_scale(
    first: Option<Timestamp>,
    second: Option<Timestamp>,
    now: Timestamp,
    first_uid: &str,
    second_uid: &str,
) -> bool {
    match (first, second) {
        (Some(a), Some(b)) => {
            let difference = logarithmic_rank(a, now) - logarithmic_rank(b, now);
            if difference == 0 {
                first_uid < second_uid
            } else {
                difference < 0
            }
        }
        _ => after_or_zero(first, second),
    }
}

/// Whether `a` should be deleted before `b`.
fn delete_first(a: &Ranked, b: &Ranked, now: Timestamp) -> bool {
    let (pa, pb) = (a.pod, b.pod);
    let (node_a, node_b) = (pods::node_name(pa), pods::node_name(pb));
    // 1. Unassigned before assigned.
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_a.is_empty();
    }
    // 2. Pending, then Unknown, then Running.
    if phase_ordinal(pa) != phase_ordinal(pb) {
        return phase_ordinal(pa) < phase_ordinal(pb);
    }
    // 3. Not ready before ready.
    let (ready_a, ready_b) = (pods::is_ready(pa), pods::is_ready(pb));
    if ready_a != ready_b {
        return !ready_a;
    }
    // 4. Lower deletion cost first.
    if pods::deletion_cost(pa) != pods::deletion_cost(pb) {
        return pods::deletion_cost(pa) < pods::deletion_cost(pb);
    }
    // 5. More related pods on the same node first.
    if a.colocated != b.colocated {
        return a.colocated > b.colocated;
    }
    let uid_a = pa.metadata.uid.as_deref().unwrap_or_default();
    let uid_b = pb.metadata.uid.as_deref().unwrap_or_default();
    // 6. Ready for less time first.
    if ready_a && ready_b {
        let (since_a, since_b) = (pods::ready_since(pa), pods::ready_since(pb));
        if since_a != since_b {
            return newer_on_log_scale(since_a, since_b, now, uid_a, uid_b);
        }
    }
    // 7. More container restarts first.
    let (restarts_a, restarts_b) = (
        pods::max_container_restarts(pa),
        pods::max_container_restarts(pb),
    );
    if restarts_a != restarts_b {
        return restarts_a > restarts_b;
    }
    // 8. Newer first.
    let (created_a, created_b) = (creation(pa), creation(pb));
    if created_a != created_b {
        return newer_on_log_scale(created_a, created_b, now, uid_a, uid_b);
    }
    false
}

/// Stable merge sort by a "less" that need not be a total order (upstream's
/// comparison is not always transitive), so it can never panic.
fn merge_sort_by<T>(items: Vec<T>, less: &impl Fn(&T, &T) -> bool) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let (left, right) = (merge_sort_by(left, less), merge_sort_by(right, less));
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_right = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => less(r, l),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_right {
            right.next()
        } else {
            left.next()
        };
        merged.extend(next);
    }
    merged
}

/// The `count` pods of `candidates` to delete first. `related` are the
/// active pods of the owner's siblings (same controller), which make a
/// node "crowded" as upstream's `getPodsRankedByRelatedPodsOnSameNode`.
pub fn pods_to_delete(
    candidates: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if count >= candidates.len() {
        return candidates.to_vec();
    }
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|pod| pods::is_active(pod)) {
        *per_node.entry(pods::node_name(pod)).or_default() += 1;
    }
    let ranked: Vec<(usize, Ranked)> = candidates
        .iter()
        .enumerate()
        .map(|(index, pod)| {
            let colocated = per_node.get(pods::node_name(pod)).copied().unwrap_or(0);
            (index, Ranked { pod, colocated })
        })
        .collect();
    let sorted = merge_sort_by(ranked, &|a: &(usize, Ranked), b: &(usize, Ranked)| {
        delete_first(&a.1, &b.1, now)
    });
    sorted
        .into_iter()
        .take(count)
        .map(|(index, _)| candidates[index].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    struct P(Pod);

    impl P {
        fn new(name: &str) -> P {
            let mut pod = Pod::default();
            pod.metadata.name = Some(name.into());
            pod.metadata.uid = Some(format!("uid-{name}"));
            pod.metadata.creation_timestamp = Some(Time(at(0)));
            pod.spec = Some(PodSpec {
                node_name: Some("node-a".into()),
                ..PodSpec::default()
            });
            pod.status = Some(PodStatus {
                phase: Some("Running".into()),
                ..PodStatus::default()
            });
            P(pod)
        }
        fn unassigned(mut self) -> P {
            self.0.spec.as_mut().unwrap().node_name = None;
            self
        }
        fn node(mut self, node: &str) -> P {
            self.0.spec.as_mut().unwrap().node_name = Some(node.into());
            self
        }
        fn phase(mut self, phase: &str) -> P {
            self.0.status.as_mut().unwrap().phase = Some(phase.into());
            self
        }
        fn ready_since(mut self, second: i64) -> P {
            self.0.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(at(second))),
                ..PodCondition::default()
            }]);
            self
        }
        fn restarts(mut self, count: i32) -> P {
            self.0.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
                name: "c".into(),
                restart_count: count,
                ..ContainerStatus::default()
            }]);
            self
        }
        fn created(mut self, second: i64) -> P {
            self.0.metadata.creation_timestamp = Some(Time(at(second)));
            self
        }
        fn cost(mut self, cost: &str) -> P {
            self.0.metadata.annotations =
                Some([(pods::DELETION_COST_ANNOTATION.to_string(), cost.to_string())].into());
            self
        }
        fn arc(self) -> Arc<Pod> {
            Arc::new(self.0)
        }
    }

    fn order(candidates: Vec<Arc<Pod>>, related: &[Arc<Pod>], now: i64) -> Vec<String> {
        pods_to_delete(&candidates, related, candidates.len() - 1, at(now))
            .iter()
            .map(|pod| pod.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn unassigned_then_pending_then_unknown_then_running() {
        let candidates = vec![
            P::new("running").ready_since(0).arc(),
            P::new("unknown").phase("Unknown").arc(),
            P::new("pending").phase("Pending").arc(),
            P::new("unassigned").unassigned().arc(),
            P::new("running2").ready_since(0).arc(),
        ];
        assert_eq!(
            order(candidates, &[], 100),
            ["unassigned", "pending", "unknown", "running"]
        );
    }

    #[test]
    fn not_ready_before_ready_and_lower_cost_first() {
        let candidates = vec![
            P::new("ready").ready_since(0).arc(),
            P::new("not-ready").arc(),
            P::new("ready-cheap").ready_since(0).cost("-5").arc(),
        ];
        assert_eq!(order(candidates, &[], 100), ["not-ready", "ready-cheap"]);
    }

    #[test]
    fn crowded_nodes_first() {
        let crowded = P::new("crowded").node("node-b").ready_since(0).arc();
        let alone = P::new("alone").node("node-a").ready_since(0).arc();
        let sibling = P::new("sibling").node("node-b").ready_since(0).arc();
        let related = vec![crowded.clone(), alone.clone(), sibling];
        assert_eq!(order(vec![alone, crowded], &related, 100), ["crowded"]);
    }

    #[test]
    fn recently_ready_then_restarts_then_newer() {
        // Ready 10 s vs 1000 s ago: different log2 buckets, the recent first.
        let candidates = vec![
            P::new("long-ready").ready_since(0).arc(),
            P::new("recently-ready").ready_since(990).arc(),
        ];
        assert_eq!(order(candidates, &[], 1000), ["recently-ready"]);
        let candidates = vec![
            P::new("calm").ready_since(0).arc(),
            P::new("restarting").ready_since(0).restarts(3).arc(),
        ];
        assert_eq!(order(candidates, &[], 1000), ["restarting"]);
        let candidates = vec![
            P::new("old").ready_since(0).created(0).arc(),
            P::new("new").ready_since(0).created(900).arc(),
        ];
        assert_eq!(order(candidates, &[], 1000), ["new"]);
    }

    #[test]
    fn same_log_bucket_goes_by_uid() {
        // 1000 s and 1001 s of age share a log2(ns) bucket.
        let candidates = vec![
            P::new("b").ready_since(0).created(1).arc(),
            P::new("a").ready_since(0).created(0).arc(),
        ];
        assert_eq!(order(candidates, &[], 1001), ["a"]);
    }

    #[test]
    fn everything_goes_when_asked_for_all() {
        let candidates = vec![P::new("x").arc(), P::new("y").arc()];
        assert_eq!(pods_to_delete(&candidates, &[], 5, at(0)).len(), 2);
    }
}
