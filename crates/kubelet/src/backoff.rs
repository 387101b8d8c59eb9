//! Crash-loop restart backoff per pod container, with upstream's rules: 10 s first, doubling to 5 min, forgotten once an instance ran for 10 min; pure, `now` is always an argument.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::spec;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Upstream's kubelet replaces client-go's "2 × max" expiry with this: an
/// instance that ran longer than 10 minutes before exiting starts over.
pub const STABLE_RUN_RESET: Duration = Duration::from_secs(600);

/// What a backoff entry belongs to. Upstream keys it by the pod and by the
/// container's name, image and resources, so changing the image or the
/// resources starts the backoff over while changing the command does not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackoffKey {
    pub pod_uid: String,
    pub container_name: String,
    pub spec_fingerprint: u64,
}

impl BackoffKey {
    pub fn for_container(pod: &Pod, container: &Container) -> BackoffKey {
        let resources = container
            .resources
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok())
            .unwrap_or_default();
        let identity = format!(
            "{}/{}/{}/{}/{}/{}",
            spec::pod_name(pod),
            spec::pod_namespace(pod),
            spec::pod_uid(pod),
            container.name,
            container.image.as_deref().unwrap_or_default(),
            resources
        );
        BackoffKey {
            pod_uid: spec::pod_uid(pod).to_string(),
            container_name: container.name.clone(),
            spec_fingerprint: fnv1a_64(identity.as_bytes()),
        }
    }
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    /// When the container was last let through (started).
    last_restart: Timestamp,
}

/// The backoff table of a node's kubelet (upstream's `flowcontrol.Backoff`
/// without jitter, with the kubelet's expiry rule).
#[derive(Clone, Debug)]
pub struct ContainerBackoff {
    initial: Duration,
    max: Duration,
    entries: BTreeMap<BackoffKey, Entry>,
}

impl Default for ContainerBackoff {
    fn default() -> Self {
        ContainerBackoff::new(INITIAL_BACKOFF, MAX_BACKOFF)
    }
}

impl ContainerBackoff {
    pub fn new(initial: Duration, max: Duration) -> ContainerBackoff {
        ContainerBackoff {
            initial: initial.min(max),
            max,
            entries: BTreeMap::new(),
        }
    }

    /// The current delay of a key; zero when it has none yet.
    pub fn delay(&self, key: &BackoffKey) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// Whether a container that exited at `exited_at` must still wait: less
    /// time has passed since then than the current delay. The first crash
    /// never waits, as there is no entry yet.
    pub fn is_in_backoff_since(
        &self,
        key: &BackoffKey,
        exited_at: Timestamp,
        now: Timestamp,
    ) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        if ran_long_enough(exited_at, entry.last_restart) {
            return false;
        }
        elapsed(exited_at, now) < entry.delay
    }

    /// Records that the container is being restarted now after exiting at
    /// `exited_at`: the delay doubles up to the cap, or starts over when the
    /// previous instance ran long enough.
    pub fn next(&mut self, key: &BackoffKey, exited_at: Timestamp, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(entry) if !ran_long_enough(exited_at, entry.last_restart) => {
                entry.delay.saturating_mul(2).min(self.max)
            }
            _ => self.initial,
        };
        self.entries.insert(
            key.clone(),
            Entry {
                delay,
                last_restart: now,
            },
        );
    }

    /// Drops entries not touched for twice the cap, as upstream's periodic GC.
    pub fn collect_garbage(&mut self, now: Timestamp) {
        let horizon = self.max.saturating_mul(2);
        self.entries
            .retain(|_, entry| elapsed(entry.last_restart, now) <= horizon);
    }

    /// Drops every entry of a pod that is gone from the node.
    pub fn forget_pod(&mut self, pod_uid: &str) {
        self.entries.retain(|key, _| key.pod_uid != pod_uid);
    }

    /// Applies [`ContainerBackoff::next`] for every start in a plan, which the
    /// shell calls as it starts them (upstream advances the entry in the same
    /// step that lets the start through).
    pub fn record_starts(&mut self, actions: &crate::actions::PodActions, now: Timestamp) {
        for start in actions
            .init_containers_to_start
            .iter()
            .chain(&actions.containers_to_start)
        {
            if let Some(previous) = &start.previous_exit {
                self.next(&previous.key, previous.exited_at, now);
            }
        }
    }
}

fn ran_long_enough(exited_at: Timestamp, last_restart: Timestamp) -> bool {
    let ran = exited_at.duration_since(last_restart);
    ran > SignedDuration::try_from(STABLE_RUN_RESET).unwrap_or(SignedDuration::MAX)
}

/// Time from `from` to `to`; zero when `to` is earlier.
fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// The waiting message of a container held back by its backoff.
pub fn crash_loop_message(delay: Duration, container_name: &str, pod: &Pod) -> String {
    format!(
        "back-off {} restarting failed container={} pod={}",
        spec::format_go_duration(delay),
        container_name,
        spec::pod_full_name(pod)
    )
}

/// The text of the BackOff event upstream records alongside.
pub fn crash_loop_event_message(container_name: &str, pod: &Pod) -> String {
    format!(
        "Back-off restarting failed container {} in pod {}",
        container_name,
        spec::pod_full_name(pod)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn key(name: &str) -> BackoffKey {
        BackoffKey {
            pod_uid: "uid".into(),
            container_name: name.into(),
            spec_fingerprint: 1,
        }
    }

    /// One crash of a container: it exits at `exit`, the kubelet looks at
    /// `check` and, when not held back, restarts it then.
    struct Crash {
        exit: i64,
        check: i64,
        expect_waiting: bool,
        expect_delay_after: u64,
    }

    #[test]
    fn delays_double_to_the_cap_and_reset_after_a_long_run() {
        let crashes = [
            // First crash: no entry, restart at once; the delay becomes 10s.
            Crash {
                exit: 0,
                check: 1,
                expect_waiting: false,
                expect_delay_after: 10,
            },
            // Crashes 4s after the restart: 10s not yet passed since exit.
            Crash {
                exit: 5,
                check: 10,
                expect_waiting: true,
                expect_delay_after: 10,
            },
            Crash {
                exit: 5,
                check: 15,
                expect_waiting: false,
                expect_delay_after: 20,
            },
            Crash {
                exit: 20,
                check: 39,
                expect_waiting: true,
                expect_delay_after: 20,
            },
            Crash {
                exit: 20,
                check: 40,
                expect_waiting: false,
                expect_delay_after: 40,
            },
            Crash {
                exit: 41,
                check: 81,
                expect_waiting: false,
                expect_delay_after: 80,
            },
            Crash {
                exit: 82,
                check: 162,
                expect_waiting: false,
                expect_delay_after: 160,
            },
            Crash {
                exit: 163,
                check: 323,
                expect_waiting: false,
                expect_delay_after: 300,
            },
            Crash {
                exit: 324,
                check: 500,
                expect_waiting: true,
                expect_delay_after: 300,
            },
            Crash {
                exit: 324,
                check: 624,
                expect_waiting: false,
                expect_delay_after: 300,
            },
            // Ran for more than 10 minutes after the last restart: start over.
            Crash {
                exit: 1300,
                check: 1301,
                expect_waiting: false,
                expect_delay_after: 10,
            },
        ];
        let mut backoff = ContainerBackoff::default();
        let key = key("app");
        for (step, crash) in crashes.iter().enumerate() {
            let waiting = backoff.is_in_backoff_since(&key, at(crash.exit), at(crash.check));
            assert_eq!(waiting, crash.expect_waiting, "step {step}");
            if !waiting {
                backoff.next(&key, at(crash.exit), at(crash.check));
            }
            assert_eq!(
                backoff.delay(&key),
                Duration::from_secs(crash.expect_delay_after),
                "step {step}"
            );
        }
    }

    #[test]
    fn a_long_wait_between_crashes_does_not_reset() {
        // Upstream surprise: the reset counts run time, not idle time.
        let mut backoff = ContainerBackoff::default();
        let key = key("app");
        backoff.next(&key, at(0), at(1));
        // Short run (crash 2s after restart), then nobody looks for an hour.
        assert!(!backoff.is_in_backoff_since(&key, at(3), at(3603)));
        backoff.next(&key, at(3), at(3603));
        assert_eq!(backoff.delay(&key), Duration::from_secs(20));
    }

    #[test]
    fn garbage_collection_and_forgetting() {
        let mut backoff = ContainerBackoff::default();
        backoff.next(&key("a"), at(0), at(0));
        backoff.next(&key("b"), at(0), at(500));
        backoff.collect_garbage(at(601));
        assert_eq!(backoff.delay(&key("a")), Duration::ZERO);
        assert_eq!(backoff.delay(&key("b")), INITIAL_BACKOFF);
        backoff.forget_pod("uid");
        assert_eq!(backoff.delay(&key("b")), Duration::ZERO);
    }

    #[test]
    fn key_follows_image_and_resources_but_not_command() {
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u".into());
        let base = Container {
            name: "app".into(),
            image: Some("nginx:1".into()),
            ..Default::default()
        };
        let new_command = Container {
            command: Some(vec!["sh".into()]),
            ..base.clone()
        };
        let new_image = Container {
            image: Some("nginx:2".into()),
            ..base.clone()
        };
        let key_of = |c: &Container| BackoffKey::for_container(&pod, c);
        assert_eq!(key_of(&base), key_of(&new_command));
        assert_ne!(key_of(&base), key_of(&new_image));
    }

    #[test]
    fn messages_match_upstream() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("prod".into());
        pod.metadata.uid = Some("1234".into());
        assert_eq!(
            crash_loop_message(Duration::from_secs(80), "app", &pod),
            "back-off 1m20s restarting failed container=app pod=web_prod(1234)"
        );
        assert_eq!(
            crash_loop_event_message("app", &pod),
            "Back-off restarting failed container app in pod web_prod(1234)"
        );
    }
}
