//! What the simulated kubelets remember about the pods bound to their nodes (IP, pending deletion, request in flight) and which request each observed pod needs next. Pure state: the pod loop performs the requests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::addresses::{Ipv4Cidr, PodIpPool};
use crate::clock::Clock;
use crate::node::NodeIdentity;
use crate::pod_status::{self, Lifecycle, Placement, StatusPatch, Target};

/// Retries of failed requests back off from this, doubling up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A pod as requests name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A request the pod loop should make.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Merge-patch the pod's status subresource with `patch`.
    WriteStatus {
        pod: PodRef,
        target: Target,
        patch: Box<StatusPatch>,
    },
    /// Delete with gracePeriodSeconds=0 and a uid precondition.
    Delete { pod: PodRef },
    /// Read the pod again and observe it (a completion is due, or a write failed).
    Fetch { pod: PodRef },
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The pod (with that uid) no longer exists.
    Gone,
    /// Anything else; the request is retried later.
    Failed,
}

/// Which request an outcome belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    WriteStatus(Target),
    Delete,
    Fetch,
}

struct NodeSlot {
    identity: NodeIdentity,
    range: Ipv4Cidr,
    /// Created with the node's first pod.
    pool: Option<PodIpPool>,
}

/// Only what a pod's next request needs; the Pod itself is not kept.
struct TrackedPod {
    namespace: String,
    name: String,
    node: usize,
    /// Held in the node's pool; `None` for host-network pods and before the
    /// pod starts.
    ip: Option<Ipv4Addr>,
    writing: Option<Target>,
    deleting: bool,
    delete_at: Option<Timestamp>,
    resync_at: Option<Instant>,
    failures: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Delete,
    Resync,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    /// Keeps timers with the same instant in insertion order.
    sequence: u64,
    kind: TimerKind,
    uid: String,
}

/// The pods bound to this simulator's nodes.
pub struct PodTable {
    nodes: Vec<NodeSlot>,
    node_by_name: HashMap<String, usize>,
    pods: HashMap<String, TrackedPod>,
    timers: BinaryHeap<Reverse<Timer>>,
    next_sequence: u64,
    /// During a relist: the uids seen so far.
    relisting: Option<HashSet<String>>,
}

impl PodTable {
    /// `nodes` with their `spec.podCIDR` when they have one.
    pub fn new(nodes: impl IntoIterator<Item = (NodeIdentity, Option<String>)>) -> PodTable {
        let mut table = PodTable {
            nodes: Vec::new(),
            node_by_name: HashMap::new(),
            pods: HashMap::new(),
            timers: BinaryHeap::new(),
            next_sequence: 0,
            relisting: None,
        };
        for (identity, pod_cidr) in nodes {
            let range = pod_range(&identity, pod_cidr.as_deref());
            table
                .node_by_name
                .insert(identity.name.clone(), table.nodes.len());
            table.nodes.push(NodeSlot {
                identity,
                range,
                pool: None,
            });
        }
        table
    }

    /// Follows a node's `spec.podCIDR` once assigned; pods keep the IPs they have.
    pub fn set_pod_cidr(&mut self, node: &str, pod_cidr: Option<&str>) {
        let Some(&index) = self.node_by_name.get(node) else {
            return;
        };
        let slot = &mut self.nodes[index];
        let range = pod_range(&slot.identity, pod_cidr);
        if range == slot.range {
            return;
        }
        slot.range = range;
        let mut pool = PodIpPool::new(range);
        for pod in self.pods.values().filter(|pod| pod.node == index) {
            if let Some(ip) = pod.ip {
                pool.claim(ip);
            }
        }
        slot.pool = Some(pool);
    }

    /// A watch restarts: pods not observed again before `end_relist` are gone.
    pub fn begin_relist(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    pub fn end_relist(&mut self) {
        let Some(seen) = self.relisting.take() else {
            return;
        };
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !seen.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.forget(&uid);
        }
    }

    /// The pod as it is now; returns the request it needs, if any. Pods of
    /// other nodes are ignored.
    pub fn observe(&mut self, pod: &Pod, clock: &Clock) -> Option<Action> {
        let spec = pod.spec.as_ref()?;
        let node = *self.node_by_name.get(spec.node_name.as_deref()?)?;
        let uid = pod.metadata.uid.as_deref()?;
        let namespace = pod.metadata.namespace.as_deref()?;
        let name = pod.metadata.name.as_deref()?;
        if let Some(seen) = &mut self.relisting {
            seen.insert(uid.to_string());
        }
        let host_network = spec.host_network == Some(true);
        let slot = &mut self.nodes[node];
        let tracked = self
            .pods
            .entry(uid.to_string())
            .or_insert_with(|| TrackedPod {
                namespace: namespace.to_string(),
                name: name.to_string(),
                node,
                ip: None,
                writing: None,
                deleting: false,
                delete_at: None,
                resync_at: None,
                failures: 0,
            });
        if tracked.ip.is_none() && !host_network {
            // A pod started before this simulator (re)started keeps its IP.
            let existing = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let Some(ip) = existing.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                pool_of(slot).claim(ip);
                tracked.ip = Some(ip);
            }
        }
        let target = match pod_status::lifecycle(pod, clock.wall) {
            Lifecycle::Terminating { at } => {
                if tracked.delete_at != Some(at) {
                    tracked.delete_at = Some(at);
                    schedule(
                        &mut self.timers,
                        &mut self.next_sequence,
                        clock.instant_of(at),
                        TimerKind::Delete,
                        uid,
                    );
                }
                return None;
            }
            Lifecycle::Finished => {
                // The sandbox is gone: the IP stays in the status but is free again.
                if let Some(ip) = tracked.ip.take() {
                    pool_of(slot).release(ip);
                }
                return None;
            }
            Lifecycle::Running { complete_at } => {
                // A resync already pending observes the pod again and
                // schedules the completion then.
                if let Some(at) = complete_at.map(|at| clock.instant_of(at))
                    && tracked.resync_at.is_none()
                {
                    tracked.resync_at = Some(at);
                    schedule(
                        &mut self.timers,
                        &mut self.next_sequence,
                        at,
                        TimerKind::Resync,
                        uid,
                    );
                }
                Target::Running
            }
            Lifecycle::Succeeded => Target::Succeeded,
        };
        let pod_ip = if host_network {
            slot.identity.internal_ip
        } else if let Some(ip) = tracked.ip {
            ip
        } else if target == Target::Running {
            let Some(ip) = pool_of(slot).allocate() else {
                tracing::warn!(
                    node = %slot.identity.name, pod = %format!("{namespace}/{name}"),
                    "no pod IP left in {}", slot.range
                );
                return None;
            };
            tracked.ip = Some(ip);
            ip
        } else {
            // Finishing without ever having run: no IP was ever needed.
            slot.identity.internal_ip
        };
        let now = clock.time();
        let placement = Placement {
            host_ip: slot.identity.internal_ip,
            pod_ip,
            now: &now,
        };
        let desired = pod_status::desired_status(pod, target, &placement);
        if pod_status::is_current(pod, &desired) {
            return None;
        }
        if tracked.writing == Some(target) {
            // The same write is already on its way; its echo is what we saw.
            return None;
        }
        tracked.writing = Some(target);
        Some(Action::WriteStatus {
            pod: pod_ref(uid, tracked),
            target,
            patch: Box::new(StatusPatch { status: desired }),
        })
    }

    /// The pod was deleted.
    pub fn forget(&mut self, uid: &str) {
        if let Some(tracked) = self.pods.remove(uid)
            && let Some(ip) = tracked.ip
            && let Some(pool) = self.nodes[tracked.node].pool.as_mut()
        {
            pool.release(ip);
        }
    }

    /// A request for the pod with `uid` ended.
    pub fn finished(&mut self, uid: &str, kind: RequestKind, outcome: Outcome, clock: &Clock) {
        let Some(tracked) = self.pods.get_mut(uid) else {
            return;
        };
        match kind {
            RequestKind::WriteStatus(_) => tracked.writing = None,
            RequestKind::Delete => tracked.deleting = false,
            RequestKind::Fetch => {}
        }
        match outcome {
            Outcome::Done => tracked.failures = 0,
            Outcome::Gone => {
                if kind != RequestKind::Fetch && kind != RequestKind::Delete {
                    // The watch reports the deletion; until then nothing to do.
                    return;
                }
                self.forget(uid);
            }
            Outcome::Failed => {
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << tracked.failures.min(5))
                    .min(MAX_BACKOFF);
                tracked.failures = tracked.failures.saturating_add(1);
                let timer = if kind == RequestKind::Delete {
                    TimerKind::Delete
                } else {
                    tracked.resync_at = Some(clock.instant + backoff);
                    TimerKind::Resync
                };
                schedule(
                    &mut self.timers,
                    &mut self.next_sequence,
                    clock.instant + backoff,
                    timer,
                    uid,
                );
            }
        }
    }

    /// When the next timer is due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(timer)| timer.at)
    }

    /// The requests whose time has come, at most `limit` of them.
    pub fn due(&mut self, clock: &Clock, limit: usize) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(Reverse(timer)) = self.timers.peek() {
            if timer.at > clock.instant || actions.len() >= limit {
                break;
            }
            let Some(Reverse(timer)) = self.timers.pop() else {
                break;
            };
            let Some(tracked) = self.pods.get_mut(&timer.uid) else {
                continue;
            };
            match timer.kind {
                TimerKind::Delete => {
                    let due = tracked
                        .delete_at
                        .is_some_and(|at| clock.instant_of(at) <= clock.instant);
                    if due && !tracked.deleting {
                        tracked.deleting = true;
                        actions.push(Action::Delete {
                            pod: pod_ref(&timer.uid, tracked),
                        });
                    }
                }
                TimerKind::Resync => {
                    if tracked.resync_at != Some(timer.at) {
                        continue;
                    }
                    tracked.resync_at = None;
                    actions.push(Action::Fetch {
                        pod: pod_ref(&timer.uid, tracked),
                    });
                }
            }
        }
        actions
    }
}

fn pod_range(node: &NodeIdentity, pod_cidr: Option<&str>) -> Ipv4Cidr {
    pod_cidr
        .and_then(Ipv4Cidr::parse)
        .unwrap_or_else(|| Ipv4Cidr::fallback_for_node(node.index))
}

fn pool_of(slot: &mut NodeSlot) -> &mut PodIpPool {
    slot.pool.get_or_insert_with(|| PodIpPool::new(slot.range))
}

fn pod_ref(uid: &str, tracked: &TrackedPod) -> PodRef {
    PodRef {
        namespace: tracked.namespace.clone(),
        name: tracked.name.clone(),
        uid: uid.to_string(),
    }
}

fn schedule(
    timers: &mut BinaryHeap<Reverse<Timer>>,
    next_sequence: &mut u64,
    at: Instant,
    kind: TimerKind,
    uid: &str,
) {
    *next_sequence += 1;
    timers.push(Reverse(Timer {
        at,
        sequence: *next_sequence,
        kind,
        uid: uid.to_string(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn table() -> PodTable {
        let config = crate::SimConfig::default();
        PodTable::new((0..2).map(|i| (NodeIdentity::new(&config, i), None)))
    }

    fn bound_pod(name: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..PodStatus::default()
            }),
        }
    }

    /// The pod as the API holds it after the action's status write.
    fn applied(mut pod: Pod, action: &Action) -> Pod {
        let Action::WriteStatus { patch, .. } = action else {
            panic!("expected a status write, got {action:?}");
        };
        pod.status = Some(patch.status.clone());
        pod
    }

    fn written_ip(action: &Option<Action>) -> String {
        match action {
            Some(Action::WriteStatus { patch, .. }) => {
                patch.status.pod_ip.clone().unwrap_or_default()
            }
            other => panic!("expected a status write, got {other:?}"),
        }
    }

    #[test]
    fn pods_of_other_nodes_are_ignored() {
        let mut table = table();
        assert_eq!(
            table.observe(&bound_pod("a", "real-node"), &Clock::now()),
            None
        );
        assert!(table.pods.is_empty());
    }

    #[test]
    fn a_bound_pod_is_started_once_with_an_ip_from_its_node() {
        let mut table = table();
        let clock = Clock::now();
        let pod = bound_pod("a", "sim-node-1");
        let action = table.observe(&pod, &clock);
        assert_eq!(written_ip(&action), "10.244.1.2");
        assert_eq!(
            table.observe(&pod, &clock),
            None,
            "the same write is in flight"
        );
        let action = action.expect("a write");
        table.finished(
            "uid-a",
            RequestKind::WriteStatus(Target::Running),
            Outcome::Done,
            &clock,
        );
        assert_eq!(
            table.observe(&applied(pod, &action), &clock),
            None,
            "already running"
        );
        let second = table.observe(&bound_pod("b", "sim-node-1"), &clock);
        assert_eq!(written_ip(&second), "10.244.1.3");
    }

    #[test]
    fn a_pod_cidr_replaces_the_fallback_range() {
        let mut table = table();
        table.set_pod_cidr("sim-node-0", Some("10.42.7.0/24"));
        let action = table.observe(&bound_pod("a", "sim-node-0"), &Clock::now());
        assert_eq!(written_ip(&action), "10.42.7.2");
    }

    #[test]
    fn deletion_waits_for_the_deletion_timestamp() {
        let mut table = table();
        let clock = Clock::now();
        let mut pod = bound_pod("a", "sim-node-0");
        let deadline = clock
            .wall
            .checked_add(Duration::from_secs(2))
            .expect("in range");
        pod.metadata.deletion_timestamp = Some(Time(deadline));
        assert_eq!(table.observe(&pod, &clock), None);
        assert_eq!(
            table.next_timer(),
            Some(clock.instant + Duration::from_secs(2))
        );
        let early = Clock {
            instant: clock.instant + Duration::from_millis(1_900),
            wall: clock.wall,
        };
        assert_eq!(table.due(&early, 10), vec![]);
        let late = Clock {
            instant: clock.instant + Duration::from_secs(2),
            wall: deadline,
        };
        let actions = table.due(&late, 10);
        assert!(matches!(&actions[..], [Action::Delete { pod }] if pod.uid == "uid-a"));
        table.finished("uid-a", RequestKind::Delete, Outcome::Failed, &late);
        assert_eq!(table.due(&late, 10), vec![], "retried after a backoff");
        let retry = Clock {
            instant: late.instant + FIRST_BACKOFF,
            wall: deadline,
        };
        assert_eq!(table.due(&retry, 10).len(), 1);
        table.forget("uid-a");
        assert!(table.pods.is_empty());
    }

    #[test]
    fn forgotten_and_vanished_pods_give_their_ips_back() {
        let mut table = table();
        let clock = Clock::now();
        for name in ["a", "b"] {
            assert!(
                table
                    .observe(&bound_pod(name, "sim-node-0"), &clock)
                    .is_some()
            );
        }
        table.begin_relist();
        assert_eq!(
            table.observe(&bound_pod("b", "sim-node-0"), &clock),
            None,
            "write in flight"
        );
        table.end_relist();
        assert_eq!(table.pods.len(), 1, "a was not listed again");
        table.forget("uid-b");
        let pool = table.nodes[0].pool.as_mut().expect("created");
        assert_eq!(
            std::iter::from_fn(|| pool.allocate()).count(),
            253,
            "every address is free"
        );
    }

    #[test]
    fn a_pod_that_already_has_an_ip_keeps_it() {
        let mut table = table();
        let mut pod = bound_pod("a", "sim-node-0");
        if let Some(status) = pod.status.as_mut() {
            status.pod_ip = Some("10.244.0.9".into());
        }
        let action = table.observe(&pod, &Clock::now());
        assert_eq!(written_ip(&action), "10.244.0.9");
    }

    #[test]
    fn host_network_pods_take_the_node_ip() {
        let mut table = table();
        let mut pod = bound_pod("a", "sim-node-1");
        if let Some(spec) = pod.spec.as_mut() {
            spec.host_network = Some(true);
        }
        let action = table.observe(&pod, &Clock::now());
        assert_eq!(written_ip(&action), "172.16.0.2");
    }

    #[test]
    fn a_failed_write_is_followed_by_a_fetch() {
        let mut table = table();
        let clock = Clock::now();
        assert!(
            table
                .observe(&bound_pod("a", "sim-node-0"), &clock)
                .is_some()
        );
        table.finished(
            "uid-a",
            RequestKind::WriteStatus(Target::Running),
            Outcome::Failed,
            &clock,
        );
        let retry = Clock {
            instant: clock.instant + FIRST_BACKOFF,
            wall: clock.wall,
        };
        let actions = table.due(&retry, 10);
        assert!(matches!(&actions[..], [Action::Fetch { pod }] if pod.name == "a"));
    }
}
