//! Tables for the pod status: phases, conditions, container statuses, IPs and write decisions.

use super::*;
use crate::probes::{ProbeKind, ProbeResult};
use crate::runtime_state::tests::{at, record, sandbox};
use crate::runtime_state::{ContainerUserIds, SandboxState};
use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec, Probe, VolumeMount};

const NODE_IPS: [&str; 2] = ["192.168.1.10", "fd01::10"];

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(format!("{name}:1")),
        ..Default::default()
    }
}

fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(name)
    }
}

fn pod(policy: &str, init: Vec<Container>, containers: Vec<Container>) -> Pod {
    let mut pod = Pod {
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: (!init.is_empty()).then_some(init),
            containers,
            ..Default::default()
        }),
        ..Default::default()
    };
    pod.metadata.name = Some("web".into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some("uid-1".into());
    pod.metadata.generation = Some(3);
    pod
}

fn instance(
    id: &str,
    name: &str,
    state: ContainerRunState,
    created: i64,
    exit_code: i32,
) -> ContainerRecord {
    let mut r = record(id, name, state, created);
    r.exit_code = exit_code;
    r.restart_count = 0;
    r.image = format!("docker.io/library/{name}:1");
    r.image_ref = format!("docker.io/library/{name}@sha256:{id}");
    r
}

fn ready_state(containers: Vec<ContainerRecord>) -> PodRuntimeState {
    let mut sb = sandbox("sb", 0, SandboxState::Ready, 0);
    sb.ips = vec!["fd00::5".into(), "10.0.0.5".into()];
    PodRuntimeState {
        sandboxes: vec![sb],
        containers,
    }
}

struct Inputs {
    probes: ProbeResults,
    waiting: BTreeMap<String, WaitingReason>,
    terminal: bool,
}

impl Inputs {
    fn new() -> Inputs {
        Inputs {
            probes: ProbeResults::default(),
            waiting: BTreeMap::new(),
            terminal: false,
        }
    }
}

fn status_of(pod: &Pod, state: &PodRuntimeState, inputs: &Inputs) -> PodStatus {
    let node_ips: Vec<String> = NODE_IPS.iter().map(|s| s.to_string()).collect();
    let context = StatusContext {
        now: at(500),
        runtime_name: "containerd",
        node_ips: &node_ips,
        probe_results: &inputs.probes,
        waiting_reasons: &inputs.waiting,
        pod_is_terminal: inputs.terminal,
    };
    pod_status(pod, state, &context)
}

fn find_condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

/// (status, reason, message) of a condition, for compact tables.
fn brief(status: &PodStatus, type_: &str) -> (String, Option<String>, Option<String>) {
    let c = find_condition(status, type_);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn cond(
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> (String, Option<String>, Option<String>) {
    (
        status.into(),
        reason.map(Into::into),
        message.map(Into::into),
    )
}

fn container_status<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

fn state_word(status: &ContainerStatus) -> String {
    let state = status.state.clone().unwrap_or_default();
    if let Some(w) = state.waiting {
        format!("waiting:{}", w.reason.unwrap_or_default())
    } else if let Some(t) = state.terminated {
        format!(
            "terminated:{}:{}",
            t.reason.unwrap_or_default(),
            t.exit_code
        )
    } else if state.running.is_some() {
        "running".into()
    } else {
        "none".into()
    }
}

#[test]
fn phases_and_conditions() {
    struct Case {
        name: &'static str,
        pod: Pod,
        state: PodRuntimeState,
        inputs: Inputs,
        phase: &'static str,
        initialized: (&'static str, Option<&'static str>, Option<&'static str>),
        ready: (&'static str, Option<&'static str>, Option<&'static str>),
    }
    use ContainerRunState::{Exited, Running};
    let two = || vec![container("a"), container("b")];
    let terminal = || Inputs {
        terminal: true,
        ..Inputs::new()
    };
    let cases = vec![
        Case {
            name: "new pod",
            pod: pod("Always", vec![], two()),
            state: PodRuntimeState::default(),
            inputs: Inputs::new(),
            phase: "Pending",
            initialized: ("True", None, None),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]"),
            ),
        },
        Case {
            name: "all running and ready",
            pod: pod("Always", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Running, 10, 0),
                instance("c2", "b", Running, 11, 0),
            ]),
            inputs: Inputs::new(),
            phase: "Running",
            initialized: ("True", None, None),
            ready: ("True", None, None),
        },
        Case {
            name: "one still creating",
            pod: pod("Always", vec![], two()),
            state: ready_state(vec![instance("c1", "a", Running, 10, 0)]),
            inputs: Inputs::new(),
            phase: "Pending",
            initialized: ("True", None, None),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [b]"),
            ),
        },
        Case {
            name: "Always with everything exited is restarting",
            pod: pod("Always", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Exited, 10, 0),
                instance("c2", "b", Exited, 11, 0),
            ]),
            inputs: Inputs::new(),
            phase: "Running",
            initialized: ("True", None, None),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]"),
            ),
        },
        Case {
            name: "OnFailure with a failure is restarting",
            pod: pod("OnFailure", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Exited, 10, 0),
                instance("c2", "b", Exited, 11, 1),
            ]),
            inputs: Inputs::new(),
            phase: "Running",
            initialized: ("True", None, None),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]"),
            ),
        },
        Case {
            // The conditions already follow the terminal phase; only the
            // phase waits (as upstream's status manager merges them).
            name: "Never, done, held until terminated",
            pod: pod("Never", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Exited, 10, 0),
                instance("c2", "b", Exited, 11, 0),
            ]),
            inputs: Inputs::new(),
            phase: "Pending",
            initialized: ("True", Some("PodCompleted"), None),
            ready: ("False", Some("PodCompleted"), None),
        },
        Case {
            name: "Never, all succeeded, terminated",
            pod: pod("Never", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Exited, 10, 0),
                instance("c2", "b", Exited, 11, 0),
            ]),
            inputs: terminal(),
            phase: "Succeeded",
            initialized: ("True", Some("PodCompleted"), None),
            ready: ("False", Some("PodCompleted"), None),
        },
        Case {
            name: "Never, one failed, terminated",
            pod: pod("Never", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Exited, 10, 0),
                instance("c2", "b", Exited, 11, 2),
            ]),
            inputs: terminal(),
            phase: "Failed",
            initialized: ("True", None, None),
            ready: ("False", Some("PodFailed"), None),
        },
        Case {
            name: "deleted Always pod, stopped: terminal by exit codes",
            pod: pod("Always", vec![], two()),
            state: ready_state(vec![
                instance("c1", "a", Exited, 10, 0),
                instance("c2", "b", Exited, 11, 143),
            ]),
            inputs: terminal(),
            phase: "Failed",
            initialized: ("True", None, None),
            ready: ("False", Some("PodFailed"), None),
        },
        Case {
            name: "init container running",
            pod: pod(
                "Always",
                vec![container("i0"), container("i1")],
                vec![container("a")],
            ),
            state: ready_state(vec![instance("x0", "i0", Running, 10, 0)]),
            inputs: Inputs::new(),
            phase: "Pending",
            initialized: (
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [i0 i1]"),
            ),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a]"),
            ),
        },
        Case {
            name: "init container failed under Never, terminated",
            pod: pod("Never", vec![container("i0")], vec![container("a")]),
            state: ready_state(vec![instance("x0", "i0", Exited, 10, 1)]),
            inputs: terminal(),
            phase: "Failed",
            initialized: (
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [i0]"),
            ),
            ready: ("False", Some("PodFailed"), None),
        },
        Case {
            name: "sidecar started, app running",
            pod: pod("Always", vec![sidecar("s")], vec![container("a")]),
            state: ready_state(vec![
                instance("s1", "s", Running, 10, 0),
                instance("c1", "a", Running, 11, 0),
            ]),
            inputs: Inputs::new(),
            phase: "Running",
            initialized: ("True", None, None),
            ready: ("True", None, None),
        },
        Case {
            name: "sidecar alone, not yet initialized",
            pod: pod("Always", vec![sidecar("s")], vec![container("a")]),
            state: ready_state(vec![instance("s1", "s", Running, 10, 0)]),
            inputs: Inputs::new(),
            phase: "Pending",
            initialized: ("True", None, None),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a]"),
            ),
        },
        Case {
            // The app container only ran in the previous sandbox, so the
            // new one is initializing again while its sidecar starts.
            name: "sandbox recreated, sidecar running again",
            pod: pod("Always", vec![sidecar("s")], vec![container("a")]),
            state: {
                let mut state = ready_state(vec![instance("s1", "s", Running, 30, 0)]);
                state
                    .sandboxes
                    .push(sandbox("old", 0, SandboxState::NotReady, -10));
                let mut app = instance("c1", "a", Exited, 1, 137);
                app.sandbox_id = "old".into();
                state.containers.push(app);
                state
            },
            inputs: Inputs::new(),
            phase: "Pending",
            initialized: ("True", None, None),
            ready: (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a]"),
            ),
        },
    ];
    for case in cases {
        let status = status_of(&case.pod, &case.state, &case.inputs);
        assert_eq!(status.phase.as_deref(), Some(case.phase), "{}", case.name);
        let (s, r, m) = case.initialized;
        assert_eq!(
            brief(&status, "Initialized"),
            cond(s, r, m),
            "{} Initialized",
            case.name
        );
        let (s, r, m) = case.ready;
        assert_eq!(
            brief(&status, "Ready"),
            cond(s, r, m),
            "{} Ready",
            case.name
        );
        assert_eq!(
            brief(&status, "ContainersReady").0,
            brief(&status, "Ready").0,
            "{} ContainersReady",
            case.name
        );
        let types: Vec<&str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ],
            "{}",
            case.name
        );
        assert!(
            status
                .conditions
                .iter()
                .flatten()
                .all(|c| c.observed_generation == Some(3)),
            "{}",
            case.name
        );
    }
}

#[test]
fn readiness_probes_and_gates() {
    let probed = Container {
        readiness_probe: Some(Probe::default()),
        ..container("a")
    };
    let gated = |gates: &[&str], conditions: Vec<PodCondition>| {
        let mut p = pod("Always", vec![], vec![probed.clone()]);
        p.spec.as_mut().unwrap().readiness_gates = Some(
            gates
                .iter()
                .map(|g| PodReadinessGate {
                    condition_type: g.to_string(),
                })
                .collect(),
        );
        p.status = Some(PodStatus {
            conditions: Some(conditions),
            ..Default::default()
        });
        p
    };
    let gate_condition = |status: &str| PodCondition {
        type_: "example.com/lb".into(),
        status: status.into(),
        ..Default::default()
    };
    let state = ready_state(vec![instance("c1", "a", ContainerRunState::Running, 10, 0)]);
    let with_readiness = |result: Option<ProbeResult>| {
        let mut inputs = Inputs::new();
        if let Some(result) = result {
            inputs.probes.set(ProbeKind::Readiness, "c1", result);
        }
        inputs
    };
    let cases = [
        (
            "probe not yet run",
            gated(&[], vec![]),
            with_readiness(None),
            cond(
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a]"),
            ),
        ),
        (
            "probe failing",
            gated(&[], vec![]),
            with_readiness(Some(ProbeResult::Failure)),
            cond(
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a]"),
            ),
        ),
        (
            "probe passing",
            gated(&[], vec![]),
            with_readiness(Some(ProbeResult::Success)),
            cond("True", None, None),
        ),
        (
            "gate condition missing",
            gated(&["example.com/lb"], vec![]),
            with_readiness(Some(ProbeResult::Success)),
            cond(
                "False",
                Some("ReadinessGatesNotReady"),
                Some(
                    "corresponding condition of pod readiness gate \"example.com/lb\" does not exist.",
                ),
            ),
        ),
        (
            "gate condition false",
            gated(&["example.com/lb"], vec![gate_condition("False")]),
            with_readiness(Some(ProbeResult::Success)),
            cond(
                "False",
                Some("ReadinessGatesNotReady"),
                Some(
                    "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False",
                ),
            ),
        ),
        (
            "gate condition true",
            gated(&["example.com/lb"], vec![gate_condition("True")]),
            with_readiness(Some(ProbeResult::Success)),
            cond("True", None, None),
        ),
    ];
    for (name, pod, inputs, expected) in cases {
        let status = status_of(&pod, &state, &inputs);
        assert_eq!(brief(&status, "Ready"), expected, "{name}");
        // Conditions of others are kept, before the kubelet's.
        let kept = status
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.type_ == "example.com/lb")
            .count();
        assert_eq!(
            kept,
            pod.status
                .as_ref()
                .unwrap()
                .conditions
                .as_ref()
                .unwrap()
                .len(),
            "{name}"
        );
    }
}

#[test]
fn container_statuses_from_runtime_records() {
    use ContainerRunState::{Exited, Running, Unknown};
    struct Case {
        name: &'static str,
        pod: Pod,
        old: Vec<ContainerStatus>,
        records: Vec<ContainerRecord>,
        waiting: Vec<(&'static str, &'static str, &'static str)>,
        container: &'static str,
        state: &'static str,
        last_state: &'static str,
        restart_count: i32,
        waiting_message: Option<&'static str>,
    }
    let old_running = |name: &str, restarts: i32| ContainerStatus {
        name: name.into(),
        restart_count: restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(at(1))),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut oom = instance("c2", "a", Exited, 20, 137);
    oom.reason = "OOMKilled".into();
    oom.restart_count = 2;
    let mut first = instance("c1", "a", Exited, 10, 1);
    first.reason = "Error".into();
    first.restart_count = 1;
    let mut restarted = instance("c3", "a", Running, 30, 0);
    restarted.restart_count = 3;
    let mut deleted = pod("Always", vec![], vec![container("a")]);
    deleted.metadata.deletion_timestamp = Some(Time(at(400)));
    let backoff_message = "back-off 20s restarting failed container=a pod=web_default(uid-1)";
    let cases = vec![
        Case {
            name: "no record yet",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![],
            records: vec![],
            waiting: vec![],
            container: "a",
            state: "waiting:ContainerCreating",
            last_state: "none",
            restart_count: 0,
            waiting_message: None,
        },
        Case {
            name: "no record yet, pod with init containers",
            pod: pod("Always", vec![container("i")], vec![container("a")]),
            old: vec![],
            records: vec![],
            waiting: vec![],
            container: "a",
            state: "waiting:PodInitializing",
            last_state: "none",
            restart_count: 0,
            waiting_message: None,
        },
        Case {
            name: "OOMKilled then CrashLoopBackOff",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![],
            records: vec![first.clone(), oom.clone()],
            waiting: vec![("a", "CrashLoopBackOff", backoff_message)],
            container: "a",
            state: "waiting:CrashLoopBackOff",
            last_state: "terminated:OOMKilled:137",
            restart_count: 2,
            waiting_message: Some(backoff_message),
        },
        Case {
            name: "OOMKilled without a recorded failure stays terminated",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![],
            records: vec![first.clone(), oom.clone()],
            waiting: vec![],
            container: "a",
            state: "terminated:OOMKilled:137",
            last_state: "terminated:Error:1",
            restart_count: 2,
            waiting_message: None,
        },
        Case {
            name: "restarted: last state from the previous instance",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![],
            records: vec![first.clone(), oom.clone(), restarted.clone()],
            waiting: vec![],
            container: "a",
            state: "running",
            last_state: "terminated:OOMKilled:137",
            restart_count: 3,
            waiting_message: None,
        },
        Case {
            name: "Never does not wait after exit",
            pod: pod("Never", vec![], vec![container("a")]),
            old: vec![],
            records: vec![oom.clone()],
            waiting: vec![("a", "CrashLoopBackOff", backoff_message)],
            container: "a",
            state: "terminated:OOMKilled:137",
            last_state: "none",
            restart_count: 2,
            waiting_message: None,
        },
        Case {
            name: "image pull failure",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![],
            records: vec![],
            waiting: vec![("a", "ErrImagePull", "failed to pull image \"a:1\"")],
            container: "a",
            state: "waiting:ErrImagePull",
            last_state: "none",
            restart_count: 0,
            waiting_message: Some("failed to pull image \"a:1\""),
        },
        Case {
            name: "vanished while running",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![old_running("a", 4)],
            records: vec![],
            waiting: vec![],
            container: "a",
            state: "waiting:ContainerCreating",
            last_state: "terminated:ContainerStatusUnknown:137",
            restart_count: 5,
            waiting_message: None,
        },
        Case {
            name: "vanished while running, pod deleted",
            pod: deleted,
            old: vec![old_running("a", 4)],
            records: vec![],
            waiting: vec![],
            container: "a",
            state: "waiting:ContainerCreating",
            last_state: "terminated:ContainerStatusUnknown:137",
            restart_count: 4,
            waiting_message: None,
        },
        Case {
            name: "unknown after running",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![old_running("a", 4)],
            records: vec![instance("c1", "a", Unknown, 10, 0)],
            waiting: vec![],
            container: "a",
            state: "terminated:ContainerStatusUnknown:137",
            last_state: "none",
            restart_count: 5,
            waiting_message: None,
        },
        Case {
            name: "unknown never seen running",
            pod: pod("Always", vec![], vec![container("a")]),
            old: vec![],
            records: vec![instance("c1", "a", Unknown, 10, 0)],
            waiting: vec![],
            container: "a",
            state: "waiting:",
            last_state: "none",
            restart_count: 0,
            waiting_message: None,
        },
        Case {
            name: "completed init container is not put back to waiting",
            pod: pod("Always", vec![container("i")], vec![container("a")]),
            old: vec![],
            records: vec![instance("x", "i", Exited, 10, 0)],
            waiting: vec![("i", "CrashLoopBackOff", "stale")],
            container: "i",
            state: "terminated::0",
            last_state: "none",
            restart_count: 0,
            waiting_message: None,
        },
    ];
    for case in cases {
        let mut the_pod = case.pod;
        if !case.old.is_empty() {
            the_pod.status = Some(PodStatus {
                container_statuses: Some(case.old),
                phase: Some("Running".into()),
                ..Default::default()
            });
        }
        let mut inputs = Inputs::new();
        for (name, reason, message) in case.waiting {
            inputs.waiting.insert(
                name.into(),
                WaitingReason {
                    reason: reason.into(),
                    message: message.into(),
                },
            );
        }
        let status = status_of(&the_pod, &ready_state(case.records), &inputs);
        let container = container_status(&status, case.container);
        assert_eq!(state_word(container), case.state, "{}", case.name);
        let last = container.last_state.clone().unwrap_or_default();
        let last_word = if last == ContainerState::default() {
            "none".to_string()
        } else {
            state_word(&ContainerStatus {
                state: Some(last),
                ..Default::default()
            })
        };
        assert_eq!(last_word, case.last_state, "{}", case.name);
        assert_eq!(container.restart_count, case.restart_count, "{}", case.name);
        let message = container
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.as_deref());
        assert_eq!(message, case.waiting_message, "{}", case.name);
    }
}

#[test]
fn a_running_container_status_in_full() {
    let mut app = container("a");
    app.volume_mounts = Some(vec![
        VolumeMount {
            name: "kube-api-access".into(),
            mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..Default::default()
        },
    ]);
    let the_pod = pod("Always", vec![], vec![app]);
    let mut running = instance("abc123", "a", ContainerRunState::Running, 10, 0);
    running.restart_count = 1;
    running.user = Some(ContainerUserIds {
        uid: 0,
        gid: 0,
        supplemental_groups: vec![0, 10],
    });
    let status = status_of(&the_pod, &ready_state(vec![running]), &Inputs::new());
    let container = container_status(&status, "a");
    let expected = ContainerStatus {
        name: "a".into(),
        container_id: Some("containerd://abc123".into()),
        image: "docker.io/library/a:1".into(),
        image_id: "docker.io/library/a@sha256:abc123".into(),
        ready: true,
        started: Some(true),
        restart_count: 1,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(at(11))),
            }),
            ..Default::default()
        }),
        last_state: Some(ContainerState::default()),
        resources: Some(ResourceRequirements::default()),
        user: Some(ContainerUser {
            linux: Some(LinuxContainerUser {
                uid: 0,
                gid: 0,
                supplemental_groups: Some(vec![0, 10]),
            }),
        }),
        volume_mounts: Some(vec![
            VolumeMountStatus {
                name: "kube-api-access".into(),
                mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                read_only: Some(true),
                recursive_read_only: Some("Disabled".into()),
                volume_status: None,
            },
            VolumeMountStatus {
                name: "data".into(),
                mount_path: "/data".into(),
                read_only: None,
                recursive_read_only: None,
                volume_status: None,
            },
        ]),
        ..Default::default()
    };
    assert_eq!(container, &expected);
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.5"));
    let pod_ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .collect();
    assert_eq!(pod_ips, ["10.0.0.5", "fd00::5"]);
    assert_eq!(status.host_ip.as_deref(), Some("192.168.1.10"));
    assert_eq!(status.host_ips.as_ref().map(Vec::len), Some(2));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(status.start_time, Some(Time(at(500))));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(brief(&status, "PodReadyToStartContainers").0, "True");
}

#[test]
fn init_and_container_status_lists_are_ordered() {
    let the_pod = pod(
        "Always",
        vec![container("zeta-init"), container("alpha-init")],
        vec![container("zeta"), container("alpha")],
    );
    let status = status_of(&the_pod, &PodRuntimeState::default(), &Inputs::new());
    let names = |list: &Option<Vec<ContainerStatus>>| -> Vec<String> {
        list.iter().flatten().map(|s| s.name.clone()).collect()
    };
    assert_eq!(
        names(&status.init_container_statuses),
        ["zeta-init", "alpha-init"]
    );
    assert_eq!(names(&status.container_statuses), ["alpha", "zeta"]);
    let init_states: Vec<String> = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(state_word)
        .collect();
    assert_eq!(
        init_states,
        ["waiting:PodInitializing", "waiting:PodInitializing"]
    );
    assert_eq!(brief(&status, "PodReadyToStartContainers").0, "False");
}

#[test]
fn completed_init_containers_report_ready_not_started() {
    let the_pod = pod("Always", vec![container("i")], vec![container("a")]);
    let state = ready_state(vec![
        instance("x", "i", ContainerRunState::Exited, 10, 0),
        instance("c1", "a", ContainerRunState::Running, 20, 0),
    ]);
    let status = status_of(&the_pod, &state, &Inputs::new());
    let init = container_status(&status, "i");
    assert!(init.ready);
    assert_eq!(init.started, Some(false));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(brief(&status, "Initialized").0, "True");
}

#[test]
fn terminal_and_kept_fields() {
    struct Case {
        name: &'static str,
        old_phase: Option<&'static str>,
        records: Vec<ContainerRecord>,
        expected_phase: &'static str,
    }
    use ContainerRunState::Running;
    let cases = [
        Case {
            name: "terminal phase never goes back",
            old_phase: Some("Failed"),
            records: vec![instance("c1", "a", Running, 10, 0)],
            expected_phase: "Failed",
        },
        Case {
            name: "running stays running",
            old_phase: Some("Running"),
            records: vec![instance("c1", "a", Running, 10, 0)],
            expected_phase: "Running",
        },
        Case {
            name: "pending to running",
            old_phase: Some("Pending"),
            records: vec![instance("c1", "a", Running, 10, 0)],
            expected_phase: "Running",
        },
    ];
    for case in cases {
        let mut the_pod = pod("Always", vec![], vec![container("a")]);
        the_pod.status = Some(PodStatus {
            phase: case.old_phase.map(Into::into),
            reason: Some("Evicted".into()),
            message: Some("kept with its phase".into()),
            start_time: Some(Time(at(42))),
            pod_ips: Some(vec![PodIP {
                ip: "10.9.9.9".into(),
            }]),
            ..Default::default()
        });
        let status = status_of(&the_pod, &ready_state(case.records), &Inputs::new());
        assert_eq!(
            status.phase.as_deref(),
            Some(case.expected_phase),
            "{}",
            case.name
        );
        let same_phase = case.old_phase == Some(case.expected_phase);
        assert_eq!(status.reason.is_some(), same_phase, "{}", case.name);
        assert_eq!(status.start_time, Some(Time(at(42))), "{}", case.name);
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.5"), "{}", case.name);
    }

    // With no sandbox left, the pod keeps the IPs it had.
    let mut finished = pod("Never", vec![], vec![container("a")]);
    finished.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("10.9.9.9".into()),
        pod_ips: Some(vec![PodIP {
            ip: "10.9.9.9".into(),
        }]),
        ..Default::default()
    });
    let mut stopped = ready_state(vec![instance("c1", "a", ContainerRunState::Exited, 10, 0)]);
    stopped.sandboxes[0].state = SandboxState::NotReady;
    let status = status_of(
        &finished,
        &stopped,
        &Inputs {
            terminal: true,
            ..Inputs::new()
        },
    );
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.9.9.9"));
}

#[test]
fn transition_times_follow_status_changes() {
    let mut the_pod = pod("Always", vec![], vec![container("a")]);
    let old_condition = |type_: &str, status: &str| PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(Time(at(7))),
        ..Default::default()
    };
    the_pod.status = Some(PodStatus {
        conditions: Some(vec![
            old_condition("PodScheduled", "True"),
            old_condition("Ready", "False"),
            old_condition("Initialized", "True"),
        ]),
        ..Default::default()
    });
    let status = status_of(
        &the_pod,
        &ready_state(vec![instance("c1", "a", ContainerRunState::Running, 10, 0)]),
        &Inputs::new(),
    );
    let ltt = |type_: &str| find_condition(&status, type_).last_transition_time.clone();
    assert_eq!(ltt("PodScheduled"), Some(Time(at(7))));
    assert_eq!(ltt("Initialized"), Some(Time(at(7))));
    assert_eq!(ltt("Ready"), Some(Time(at(500))));
    assert_eq!(ltt("ContainersReady"), Some(Time(at(500))));
}

#[test]
fn host_network_pods_take_the_node_ips() {
    let mut the_pod = pod("Always", vec![], vec![container("a")]);
    the_pod.spec.as_mut().unwrap().host_network = Some(true);
    let mut state = ready_state(vec![instance("c1", "a", ContainerRunState::Running, 10, 0)]);
    state.sandboxes[0].ips.clear();
    state.sandboxes[0].network_namespace = crate::runtime_state::NamespaceMode::Node;
    let status = status_of(&the_pod, &state, &Inputs::new());
    let pod_ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .collect();
    assert_eq!(pod_ips, NODE_IPS);
    assert_eq!(status.pod_ip.as_deref(), Some(NODE_IPS[0]));
}

#[test]
fn pod_ip_order_follows_the_node_family() {
    let cases: [(&[&str], &[&str], &[&str]); 5] = [
        (
            &["10.0.0.5", "fd00::5"],
            &["192.168.1.1"],
            &["10.0.0.5", "fd00::5"],
        ),
        (
            &["10.0.0.5", "fd00::5"],
            &["fd01::1"],
            &["fd00::5", "10.0.0.5"],
        ),
        (
            &["fd00::5", "fd00::6", "10.0.0.5", "10.0.0.6"],
            &[],
            &["10.0.0.5", "fd00::5"],
        ),
        (&["fd00::5"], &["192.168.1.1"], &["fd00::5"]),
        (&["not-an-ip"], &[], &[]),
    ];
    for (pod_ips, node_ips, expected) in cases {
        let to_strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sort_pod_ips(&to_strings(pod_ips), &to_strings(node_ips)),
            to_strings(expected)
        );
    }
}

#[test]
fn writes_only_on_kubelet_owned_changes() {
    let base = {
        let the_pod = pod("Always", vec![], vec![container("a"), container("b")]);
        status_of(
            &the_pod,
            &ready_state(vec![
                instance("c1", "a", ContainerRunState::Running, 10, 0),
                instance("c2", "b", ContainerRunState::Exited, 11, 1),
            ]),
            &Inputs::new(),
        )
    };
    let changed = |edit: &dyn Fn(&mut PodStatus)| {
        let mut status = base.clone();
        edit(&mut status);
        status
    };
    let cases: Vec<(&str, PodStatus, bool)> = vec![
        ("identical", base.clone(), false),
        (
            "transition time only",
            changed(&|s| {
                s.conditions.as_mut().unwrap()[2].last_transition_time = Some(Time(at(1)))
            }),
            false,
        ),
        (
            "container statuses reordered",
            changed(&|s| s.container_statuses.as_mut().unwrap().reverse()),
            false,
        ),
        (
            "sub-second start time",
            changed(&|s| {
                s.start_time = Some(Time(
                    at(500)
                        .checked_add(jiff::SignedDuration::from_millis(300))
                        .unwrap(),
                ))
            }),
            false,
        ),
        (
            "condition of others",
            changed(&|s| {
                s.conditions.as_mut().unwrap().push(PodCondition {
                    type_: "example.com/x".into(),
                    status: "True".into(),
                    ..Default::default()
                })
            }),
            false,
        ),
        (
            "ready flipped",
            changed(&|s| s.conditions.as_mut().unwrap()[2].status = "True".into()),
            true,
        ),
        (
            "condition message",
            changed(&|s| s.conditions.as_mut().unwrap()[2].message = Some("other".into())),
            true,
        ),
        (
            "restart count",
            changed(&|s| s.container_statuses.as_mut().unwrap()[0].restart_count = 9),
            true,
        ),
        ("phase", changed(&|s| s.phase = Some("Failed".into())), true),
        ("pod IP", changed(&|s| s.pod_ip = None), true),
    ];
    for (name, new, expected) in cases {
        assert_eq!(status_needs_write(&base, &new), expected, "{name}");
    }
}

#[test]
fn illegal_container_state_transitions() {
    let terminated = |name: &str, exit_code: i32| ContainerStatus {
        name: name.into(),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let waiting_status = |name: &str| ContainerStatus {
        name: name.into(),
        state: Some(waiting(Some("PodInitializing"), None)),
        ..Default::default()
    };
    let lists = |regular: Vec<ContainerStatus>, init: Vec<ContainerStatus>| PodStatus {
        container_statuses: Some(regular),
        init_container_statuses: Some(init),
        ..Default::default()
    };
    let cases = [
        (
            "Never, terminated comes back",
            "Never",
            lists(vec![terminated("a", 0)], vec![]),
            lists(vec![waiting_status("a")], vec![]),
            Err(
                "terminated container a attempted illegal transition to non-terminated state"
                    .to_string(),
            ),
        ),
        (
            "Always may restart",
            "Always",
            lists(vec![terminated("a", 0)], vec![]),
            lists(vec![waiting_status("a")], vec![]),
            Ok(()),
        ),
        (
            "OnFailure may retry a failure",
            "OnFailure",
            lists(vec![terminated("a", 1)], vec![]),
            lists(vec![waiting_status("a")], vec![]),
            Ok(()),
        ),
        (
            "OnFailure keeps a success",
            "OnFailure",
            lists(vec![terminated("a", 0)], vec![]),
            lists(vec![waiting_status("a")], vec![]),
            Err(
                "terminated container a attempted illegal transition to non-terminated state"
                    .to_string(),
            ),
        ),
        (
            "init container completed comes back",
            "OnFailure",
            lists(vec![], vec![terminated("i", 0)]),
            lists(vec![], vec![waiting_status("i")]),
            Err(
                "terminated init container i attempted illegal transition to non-terminated state"
                    .to_string(),
            ),
        ),
        (
            "sidecars may restart",
            "Never",
            lists(vec![], vec![terminated("s", 0)]),
            lists(vec![], vec![waiting_status("s")]),
            Ok(()),
        ),
    ];
    for (name, policy, old, new, expected) in cases {
        let the_pod = pod(
            policy,
            vec![container("i"), sidecar("s")],
            vec![container("a")],
        );
        assert_eq!(
            check_container_state_transition(&the_pod, &old, &new),
            expected,
            "{name}"
        );
    }
}

#[test]
fn termination_messages_are_capped_per_container() {
    let the_pod = pod("Never", vec![], vec![container("a"), container("b")]);
    let mut long = instance("c1", "a", ContainerRunState::Exited, 10, 1);
    long.message = "é".repeat(5000);
    let status = status_of(&the_pod, &ready_state(vec![long]), &Inputs::new());
    let message = container_status(&status, "a")
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.message.clone())
        .unwrap();
    assert_eq!(message.len(), 6144);
}
