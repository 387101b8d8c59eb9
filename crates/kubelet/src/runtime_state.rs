//! What the container runtime holds for one pod (sandboxes and containers), as plain data the IO shell fills from CRI, with the lookups the kubelet's decisions need.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::spec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    NotReady,
}

/// Whose network namespace a sandbox joined: its own, or the node's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceMode {
    Pod,
    Node,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRecord {
    pub id: String,
    pub attempt: u32,
    pub state: SandboxState,
    pub created_at: Timestamp,
    /// Primary IP first, then the additional ones, as the CRI reports them.
    pub ips: Vec<String>,
    pub network_namespace: NamespaceMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerRunState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl fmt::Display for ContainerRunState {
    /// Upstream's lower-case state names, which appear in kill messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerRunState::Created => "created",
            ContainerRunState::Running => "running",
            ContainerRunState::Exited => "exited",
            ContainerRunState::Unknown => "unknown",
        })
    }
}

/// The process identity the runtime reports for a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerUserIds {
    pub uid: i64,
    pub gid: i64,
    pub supplemental_groups: Vec<i64>,
}

/// One container instance (one attempt) of the pod, running or dead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    /// The runtime's id, without the `containerd://` prefix.
    pub id: String,
    pub sandbox_id: String,
    /// The spec container name this instance was created for.
    pub name: String,
    pub attempt: u32,
    pub state: ContainerRunState,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: i32,
    /// "OOMKilled", "Error", "Completed"... as the runtime reports it.
    pub reason: String,
    /// The runtime's message, or the termination message file's content.
    pub message: String,
    /// The image as the user wrote it when the runtime knows it, otherwise
    /// the runtime's image name.
    pub image: String,
    /// The digested reference (becomes `imageID`).
    pub image_ref: String,
    /// [`crate::spec::container_spec_hash`] of the spec it was created from.
    pub spec_hash: u64,
    /// The restart count the kubelet recorded when creating it.
    pub restart_count: i32,
    pub user: Option<ContainerUserIds>,
}

/// Everything the runtime holds for one pod. Order does not matter: the
/// lookups sort newest first, as upstream's runtime manager does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRuntimeState {
    pub sandboxes: Vec<SandboxRecord>,
    pub containers: Vec<ContainerRecord>,
}

/// Why the pod needs a new sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxChangeReason {
    NoSandbox,
    MultipleReadySandboxes,
    SandboxNotReady,
    NetworkNamespaceChanged,
    NoPodIp,
}

/// Whether the pod's sandbox must be (re)created, like upstream's
/// `PodSandboxChanged`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxChange {
    /// `None` when the current sandbox can host the pod's containers.
    pub reason: Option<SandboxChangeReason>,
    /// The attempt number a new sandbox gets, or the current one's.
    pub attempt: u32,
    /// The newest sandbox, when one exists and its network is still usable.
    pub sandbox_id: Option<String>,
}

impl SandboxChange {
    pub fn needs_new_sandbox(&self) -> bool {
        self.reason.is_some()
    }
}

impl PodRuntimeState {
    pub fn sandboxes_newest_first(&self) -> Vec<&SandboxRecord> {
        let mut sandboxes: Vec<&SandboxRecord> = self.sandboxes.iter().collect();
        sandboxes.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        sandboxes
    }

    pub fn newest_sandbox(&self) -> Option<&SandboxRecord> {
        self.sandboxes_newest_first().into_iter().next()
    }

    pub fn containers_newest_first(&self) -> Vec<&ContainerRecord> {
        let mut containers: Vec<&ContainerRecord> = self.containers.iter().collect();
        containers.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        containers
    }

    /// The newest instance of a container name (upstream's
    /// `FindContainerStatusByName`).
    pub fn latest_container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers_newest_first()
            .into_iter()
            .find(|c| c.name == name)
    }

    /// The newest exited instance of a container name: the one whose finish
    /// time crash-loop backoff counts from.
    pub fn latest_exited_container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers_newest_first()
            .into_iter()
            .find(|c| c.name == name && c.state == ContainerRunState::Exited)
    }

    /// Containers of the newest sandbox only (upstream's
    /// `ActiveContainerStatuses`): instances from an older sandbox say
    /// nothing about whether the current one has been initialized.
    pub fn active_containers(&self) -> Vec<&ContainerRecord> {
        let Some(sandbox) = self.newest_sandbox() else {
            return Vec::new();
        };
        self.containers_newest_first()
            .into_iter()
            .filter(|c| c.sandbox_id == sandbox.id)
            .collect()
    }

    /// The pod's IPs: those of the newest sandbox, and only while it is ready.
    pub fn pod_ips(&self) -> Vec<String> {
        match self.newest_sandbox() {
            Some(sandbox) if sandbox.state == SandboxState::Ready => sandbox.ips.clone(),
            _ => Vec::new(),
        }
    }

    /// The restart count (and CRI attempt) the next instance of a container
    /// gets: one more than the newest instance's, or 0.
    pub fn next_restart_count(&self, name: &str) -> i32 {
        self.latest_container(name)
            .map_or(0, |c| c.restart_count.saturating_add(1))
    }

    pub fn running_containers(&self) -> Vec<&ContainerRecord> {
        self.containers_newest_first()
            .into_iter()
            .filter(|c| c.state == ContainerRunState::Running)
            .collect()
    }

    /// Whether the pod needs a new sandbox, and with which attempt number.
    pub fn sandbox_change(&self, pod: &Pod) -> SandboxChange {
        let sandboxes = self.sandboxes_newest_first();
        let Some(newest) = sandboxes.first() else {
            return SandboxChange {
                reason: Some(SandboxChangeReason::NoSandbox),
                attempt: 0,
                sandbox_id: None,
            };
        };
        let max_attempt = sandboxes.iter().map(|s| s.attempt).max().unwrap_or(0);
        let ready_count = sandboxes
            .iter()
            .filter(|s| s.state == SandboxState::Ready)
            .count();
        let change = |reason, sandbox_id: Option<String>| SandboxChange {
            reason: Some(reason),
            attempt: max_attempt.saturating_add(1),
            sandbox_id,
        };
        if ready_count > 1 {
            return change(
                SandboxChangeReason::MultipleReadySandboxes,
                Some(newest.id.clone()),
            );
        }
        if newest.state != SandboxState::Ready {
            return change(
                SandboxChangeReason::SandboxNotReady,
                Some(newest.id.clone()),
            );
        }
        let wanted_namespace = if spec::is_host_network(pod) {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        };
        if newest.network_namespace != wanted_namespace {
            // Upstream forgets the old sandbox here: its network cannot serve.
            return change(SandboxChangeReason::NetworkNamespaceChanged, None);
        }
        if !spec::is_host_network(pod) && newest.ips.iter().all(|ip| ip.is_empty()) {
            return change(SandboxChangeReason::NoPodIp, Some(newest.id.clone()));
        }
        SandboxChange {
            reason: None,
            attempt: max_attempt,
            sandbox_id: Some(newest.id.clone()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    pub(crate) fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    pub(crate) fn sandbox(
        id: &str,
        attempt: u32,
        state: SandboxState,
        created: i64,
    ) -> SandboxRecord {
        SandboxRecord {
            id: id.to_string(),
            attempt,
            state,
            created_at: at(created),
            ips: vec!["10.0.0.5".to_string()],
            network_namespace: NamespaceMode::Pod,
        }
    }

    pub(crate) fn record(
        id: &str,
        name: &str,
        state: ContainerRunState,
        created: i64,
    ) -> ContainerRecord {
        ContainerRecord {
            id: id.to_string(),
            sandbox_id: "sb".to_string(),
            name: name.to_string(),
            attempt: 0,
            state,
            created_at: at(created),
            started_at: Some(at(created + 1)),
            finished_at: (state == ContainerRunState::Exited).then(|| at(created + 5)),
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: "busybox".to_string(),
            image_ref: "docker.io/library/busybox@sha256:abc".to_string(),
            spec_hash: 0,
            restart_count: 0,
            user: None,
        }
    }

    fn pod(host_network: bool) -> Pod {
        Pod {
            spec: Some(PodSpec {
                host_network: Some(host_network),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sandbox_change_follows_upstream_rules() {
        struct Case {
            name: &'static str,
            host_network: bool,
            sandboxes: Vec<SandboxRecord>,
            expected: SandboxChange,
        }
        let mut host_sandbox = sandbox("a", 2, SandboxState::Ready, 10);
        host_sandbox.network_namespace = NamespaceMode::Node;
        host_sandbox.ips.clear();
        let mut no_ip = sandbox("a", 0, SandboxState::Ready, 10);
        no_ip.ips.clear();
        let cases = vec![
            Case {
                name: "no sandbox",
                host_network: false,
                sandboxes: vec![],
                expected: SandboxChange {
                    reason: Some(SandboxChangeReason::NoSandbox),
                    attempt: 0,
                    sandbox_id: None,
                },
            },
            Case {
                name: "one ready sandbox is kept",
                host_network: false,
                sandboxes: vec![sandbox("a", 1, SandboxState::Ready, 10)],
                expected: SandboxChange {
                    reason: None,
                    attempt: 1,
                    sandbox_id: Some("a".into()),
                },
            },
            Case {
                name: "newest not ready",
                host_network: false,
                sandboxes: vec![
                    sandbox("old", 0, SandboxState::Ready, 1),
                    sandbox("new", 1, SandboxState::NotReady, 10),
                ],
                expected: SandboxChange {
                    reason: Some(SandboxChangeReason::SandboxNotReady),
                    attempt: 2,
                    sandbox_id: Some("new".into()),
                },
            },
            Case {
                name: "two ready sandboxes",
                host_network: false,
                sandboxes: vec![
                    sandbox("old", 3, SandboxState::Ready, 1),
                    sandbox("new", 1, SandboxState::Ready, 10),
                ],
                expected: SandboxChange {
                    reason: Some(SandboxChangeReason::MultipleReadySandboxes),
                    attempt: 4,
                    sandbox_id: Some("new".into()),
                },
            },
            Case {
                name: "pod network but sandbox in the node's namespace",
                host_network: false,
                sandboxes: vec![host_sandbox.clone()],
                expected: SandboxChange {
                    reason: Some(SandboxChangeReason::NetworkNamespaceChanged),
                    attempt: 3,
                    sandbox_id: None,
                },
            },
            Case {
                name: "host network needs no IP",
                host_network: true,
                sandboxes: vec![host_sandbox],
                expected: SandboxChange {
                    reason: None,
                    attempt: 2,
                    sandbox_id: Some("a".into()),
                },
            },
            Case {
                name: "pod network without IP",
                host_network: false,
                sandboxes: vec![no_ip],
                expected: SandboxChange {
                    reason: Some(SandboxChangeReason::NoPodIp),
                    attempt: 1,
                    sandbox_id: Some("a".into()),
                },
            },
        ];
        for case in cases {
            let state = PodRuntimeState {
                sandboxes: case.sandboxes,
                containers: vec![],
            };
            assert_eq!(
                state.sandbox_change(&pod(case.host_network)),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn lookups_prefer_the_newest_instance() {
        let mut old = record("c1", "app", ContainerRunState::Exited, 1);
        old.restart_count = 3;
        let mut new = record("c2", "app", ContainerRunState::Running, 20);
        new.restart_count = 4;
        new.sandbox_id = "sb2".into();
        let state = PodRuntimeState {
            sandboxes: vec![
                sandbox("sb", 0, SandboxState::NotReady, 0),
                sandbox("sb2", 1, SandboxState::Ready, 15),
            ],
            containers: vec![old, new],
        };
        assert_eq!(state.latest_container("app").unwrap().id, "c2");
        assert_eq!(state.latest_exited_container("app").unwrap().id, "c1");
        assert_eq!(state.next_restart_count("app"), 5);
        assert_eq!(state.next_restart_count("other"), 0);
        let active: Vec<&str> = state
            .active_containers()
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(active, ["c2"]);
        assert_eq!(state.pod_ips(), ["10.0.0.5"]);
    }

    #[test]
    fn state_names_match_upstream() {
        let cases = [
            (ContainerRunState::Created, "created"),
            (ContainerRunState::Running, "running"),
            (ContainerRunState::Exited, "exited"),
            (ContainerRunState::Unknown, "unknown"),
        ];
        for (state, text) in cases {
            assert_eq!(state.to_string(), text);
        }
    }
}
