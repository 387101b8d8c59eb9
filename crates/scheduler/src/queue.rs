//! The scheduling queue, like upstream's PriorityQueue: an active heap (higher priority first, then older), a backoff queue, and unschedulable pods parked until a cluster event could help them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// Upstream's defaults: backoff 1 s doubling to 10 s per attempt; an
/// unschedulable pod is retried after 5 minutes even without an event.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pod waiting to be scheduled, keyed by uid.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub uid: String,
    priority: i32,
    /// When it first entered the queue (ties break on it, oldest first).
    since: u64,
    /// Failed scheduling attempts so far (drives the backoff).
    pub attempts: u32,
    /// When the last attempt failed.
    failed_at: Option<Instant>,
}

impl QueuedPod {
    fn backoff_expires(&self) -> Option<Instant> {
        let failed_at = self.failed_at?;
        let doublings = self.attempts.saturating_sub(1).min(16);
        let backoff = INITIAL_BACKOFF
            .saturating_mul(1u32 << doublings)
            .min(MAX_BACKOFF);
        Some(failed_at + backoff)
    }
}

struct Ranked {
    priority: i32,
    since: u64,
    uid: String,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    /// The max-heap's top: highest priority, then the earliest queued.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.since.cmp(&self.since))
            .then_with(|| other.uid.cmp(&self.uid))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Handed out to a scheduling attempt.
    InFlight,
}

/// The queue. Every pod is in exactly one place; stale heap entries (a pod
/// moved or removed) are skipped when popped.
#[derive(Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, (QueuedPod, Place)>,
    active: BinaryHeap<Ranked>,
    /// Backoff expiry → uids.
    backoff: BTreeMap<(Instant, u64), String>,
    /// Parked since → uid, so old ones can be flushed.
    unschedulable: BTreeMap<(Instant, u64), String>,
    next_sequence: u64,
}

impl SchedulingQueue {
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    fn sequence(&mut self) -> u64 {
        self.next_sequence += 1;
        self.next_sequence
    }

    /// Adds a new pending pod, or refreshes the object of one already queued
    /// (an update to an unschedulable pod makes it worth trying again).
    pub fn add_or_update(&mut self, pod: Arc<Pod>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        if let Some((queued, place)) = self.pods.get_mut(&uid) {
            let spec_changed =
                queued.pod.spec != pod.spec || queued.pod.metadata.labels != pod.metadata.labels;
            queued.pod = pod;
            queued.priority = priority;
            if *place == Place::Unschedulable && spec_changed {
                self.move_to_active_or_backoff(&uid, Instant::now());
            }
            return;
        }
        let since = self.sequence();
        let queued = QueuedPod {
            pod,
            uid: uid.clone(),
            priority,
            since,
            attempts: 0,
            failed_at: None,
        };
        self.active.push(Ranked {
            priority,
            since,
            uid: uid.clone(),
        });
        self.pods.insert(uid, (queued, Place::Active));
    }

    /// Forgets a pod (deleted, bound elsewhere, or no longer ours).
    pub fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The next pod to try, highest priority first; it stays in the queue
    /// as in flight until `done`, `requeue_unschedulable` or `requeue_backoff`.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        while let Some(top) = self.active.pop() {
            if let Some((queued, place)) = self.pods.get_mut(&top.uid)
                && *place == Place::Active
                && queued.since == top.since
            {
                *place = Place::InFlight;
                return Some(queued.clone());
            }
        }
        None
    }

    /// The attempt succeeded (the pod is assumed on a node).
    pub fn done(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// The pod fits nowhere: park it until a cluster event may help.
    pub fn requeue_unschedulable(&mut self, uid: &str, now: Instant) {
        let sequence = self.sequence();
        if let Some((queued, place)) = self.pods.get_mut(uid) {
            queued.attempts += 1;
            queued.failed_at = Some(now);
            *place = Place::Unschedulable;
            self.unschedulable.insert((now, sequence), uid.to_string());
        }
    }

    /// An error not about fit (binding failed, API error): retry after backoff.
    pub fn requeue_backoff(&mut self, uid: &str, now: Instant) {
        if let Some((queued, _)) = self.pods.get_mut(uid) {
            queued.attempts += 1;
            queued.failed_at = Some(now);
        }
        self.move_to_active_or_backoff(uid, now);
    }

    /// Re-adds a pod whose binding failed after it left the queue.
    pub fn readd_after_failed_binding(&mut self, pod: Arc<Pod>, attempts: u32, now: Instant) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.add_or_update(pod);
        if let Some((queued, _)) = self.pods.get_mut(&uid) {
            queued.attempts = attempts + 1;
            queued.failed_at = Some(now);
        }
        self.move_to_active_or_backoff(&uid, now);
    }

    fn move_to_active_or_backoff(&mut self, uid: &str, now: Instant) {
        let sequence = self.sequence();
        let Some((queued, place)) = self.pods.get_mut(uid) else {
            return;
        };
        match queued.backoff_expires() {
            Some(expires) if expires > now => {
                *place = Place::Backoff;
                self.backoff.insert((expires, sequence), uid.to_string());
            }
            _ => {
                *place = Place::Active;
                queued.since = sequence;
                self.active.push(Ranked {
                    priority: queued.priority,
                    since: sequence,
                    uid: uid.to_string(),
                });
            }
        }
    }

    /// A cluster event that could make unschedulable pods fit (a node added
    /// or changed, a pod deleted): every parked pod goes back to be tried,
    /// through backoff if its backoff has not expired.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        let parked = std::mem::take(&mut self.unschedulable);
        for uid in parked.into_values() {
            if self.pods.get(&uid).map(|(_, place)| *place) == Some(Place::Unschedulable) {
                self.move_to_active_or_backoff(&uid, now);
            }
        }
    }

    /// Moves pods whose backoff ended to the active heap, and flushes pods
    /// parked longer than [`MAX_IN_UNSCHEDULABLE`]. Returns when the next
    /// backoff ends, if any.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        while let Some((&(expires, sequence), _)) = self.backoff.first_key_value() {
            if expires > now {
                break;
            }
            let Some(uid) = self.backoff.remove(&(expires, sequence)) else {
                break;
            };
            if self.pods.get(&uid).map(|(_, place)| *place) == Some(Place::Backoff) {
                self.move_to_active_or_backoff(&uid, now);
            }
        }
        while let Some((&(since, sequence), _)) = self.unschedulable.first_key_value() {
            if now.duration_since(since) < MAX_IN_UNSCHEDULABLE {
                break;
            }
            let Some(uid) = self.unschedulable.remove(&(since, sequence)) else {
                break;
            };
            if self.pods.get(&uid).map(|(_, place)| *place) == Some(Place::Unschedulable) {
                self.move_to_active_or_backoff(&uid, now);
            }
        }
        let next_backoff = self.backoff.keys().next().map(|(at, _)| *at);
        let next_flush = self
            .unschedulable
            .keys()
            .next()
            .map(|(since, _)| *since + MAX_IN_UNSCHEDULABLE);
        match (next_backoff, next_flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, priority: i32) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.uid = Some(uid.into());
        pod.metadata.name = Some(uid.into());
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            priority: Some(priority),
            ..Default::default()
        });
        Arc::new(pod)
    }

    #[test]
    fn higher_priority_first_then_oldest() {
        let mut queue = SchedulingQueue::new();
        queue.add_or_update(pod("low-old", 0));
        queue.add_or_update(pod("high", 10));
        queue.add_or_update(pod("low-new", 0));
        let order: Vec<String> = std::iter::from_fn(|| queue.pop().map(|q| q.uid)).collect();
        assert_eq!(order, ["high", "low-old", "low-new"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_then_back_off() {
        let mut queue = SchedulingQueue::new();
        let start = Instant::now();
        queue.add_or_update(pod("a", 0));
        let popped = queue.pop().unwrap();
        queue.requeue_unschedulable(&popped.uid, start);
        assert!(queue.pop().is_none(), "parked until an event");
        // An event right away: still inside its 1 s backoff.
        queue.move_all_unschedulable(start);
        assert!(queue.pop().is_none());
        let next = queue.tick(start + Duration::from_millis(500)).unwrap();
        assert_eq!(next, start + INITIAL_BACKOFF);
        queue.tick(start + INITIAL_BACKOFF);
        assert_eq!(queue.pop().unwrap().uid, "a");
        // Without any event, a parked pod is flushed after five minutes.
        queue.requeue_unschedulable("a", start);
        assert!(queue.pop().is_none());
        queue.tick(start + MAX_IN_UNSCHEDULABLE);
        assert_eq!(queue.pop().unwrap().uid, "a");
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_ten_seconds() {
        let mut queued = QueuedPod {
            pod: pod("a", 0),
            uid: "a".into(),
            priority: 0,
            since: 0,
            attempts: 1,
            failed_at: Some(Instant::now()),
        };
        let at = queued.failed_at.unwrap();
        assert_eq!(queued.backoff_expires(), Some(at + Duration::from_secs(1)));
        queued.attempts = 3;
        assert_eq!(queued.backoff_expires(), Some(at + Duration::from_secs(4)));
        queued.attempts = 9;
        assert_eq!(queued.backoff_expires(), Some(at + MAX_BACKOFF));
    }

    #[test]
    fn removed_and_done_pods_are_never_popped() {
        let mut queue = SchedulingQueue::new();
        queue.add_or_update(pod("a", 0));
        queue.add_or_update(pod("b", 0));
        queue.remove("a");
        let b = queue.pop().unwrap();
        queue.done(&b.uid);
        assert!(queue.pop().is_none());
        assert!(queue.is_empty());
    }
}
