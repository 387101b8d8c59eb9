//! The pod status the kubelet reports, like upstream's generateAPIPodStatus followed by the status manager's merge: phase, conditions, container statuses, IPs, QoS and start time; plus when a status is worth writing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, ContainerUser, HostIP, LinuxContainerUser, Pod,
    PodCondition, PodIP, PodStatus, ResourceRequirements, VolumeMountStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::actions::should_container_be_restarted;
use crate::expansion::go_quote;
use crate::probes::{self, ProbeResults};
use crate::resources::{self, CPU, EPHEMERAL_STORAGE, MEMORY};
use crate::runtime_state::{ContainerRecord, ContainerRunState, PodRuntimeState};
use crate::spec::{
    self, PHASE_FAILED, PHASE_PENDING, PHASE_RUNNING, PHASE_SUCCEEDED, RestartPolicy,
};

pub const CONTAINER_CREATING: &str = "ContainerCreating";
pub const POD_INITIALIZING: &str = "PodInitializing";
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
pub const CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";

pub const CONDITION_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
pub const CONDITION_INITIALIZED: &str = "Initialized";
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_CONTAINERS_READY: &str = "ContainersReady";
pub const CONDITION_POD_SCHEDULED: &str = "PodScheduled";
pub const CONDITION_DISRUPTION_TARGET: &str = "DisruptionTarget";

/// Conditions only the kubelet sets; any other condition belongs to
/// someone else and is kept as it is.
const KUBELET_CONDITIONS: [&str; 7] = [
    CONDITION_POD_SCHEDULED,
    CONDITION_READY,
    CONDITION_INITIALIZED,
    CONDITION_CONTAINERS_READY,
    "PodResizeInProgress",
    "PodResizePending",
    CONDITION_READY_TO_START_CONTAINERS,
];

/// Upstream caps the termination messages of a pod at 12 KiB in total.
const MAX_POD_TERMINATION_MESSAGE_BYTES: usize = 12 * 1024;

/// Why a container that should run is waiting: the last start failure the
/// shell recorded for it (ErrImagePull, ImagePullBackOff, CrashLoopBackOff,
/// CreateContainerConfigError...), cleared once it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingReason {
    pub reason: String,
    pub message: String,
}

/// What the status depends on besides the pod and the runtime state.
pub struct StatusContext<'a> {
    pub now: Timestamp,
    /// Prefix of container ids: "containerd".
    pub runtime_name: &'a str,
    /// The node's IPs, primary first.
    pub node_ips: &'a [String],
    pub probe_results: &'a ProbeResults,
    /// Last start failure per container name.
    pub waiting_reasons: &'a BTreeMap<String, WaitingReason>,
    /// The kubelet finished terminating the pod: its containers are stopped
    /// for good and will not restart. Until then a terminal phase is held
    /// back, as containers could still be running.
    pub pod_is_terminal: bool,
}

/// The status to report for the pod. The pod's current status stands for
/// the previous one (restart counts, last states, condition transition
/// times, start time, terminal phase).
pub fn pod_status(pod: &Pod, state: &PodRuntimeState, context: &StatusContext<'_>) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let old_phase = old.phase.as_deref();
    let generation = pod.metadata.generation;
    let mut status = PodStatus::default();

    let mut ips = sort_pod_ips(&state.pod_ips(), context.node_ips);
    if ips.is_empty() {
        // The IPs outlive the sandbox: a pod that finished keeps them.
        ips = old
            .pod_ips
            .iter()
            .flatten()
            .map(|ip| ip.ip.clone())
            .collect();
    }
    set_pod_ips(&mut status, ips);
    status.qos_class = Some(resources::pod_qos_class(pod).as_str().to_string());

    let has_init_containers = !spec::init_containers(pod).is_empty();
    let mut regular = container_statuses(
        pod,
        state,
        old.container_statuses.as_deref(),
        spec::containers(pod),
        has_init_containers,
        false,
        context,
    );
    let mut init = container_statuses(
        pod,
        state,
        old.init_container_statuses.as_deref(),
        spec::init_containers(pod),
        has_init_containers,
        true,
        context,
    );

    let initialized_now = spec::containers(pod).iter().any(|container| {
        state
            .active_containers()
            .iter()
            .any(|record| record.name == container.name)
    });
    let mut phase = pod_phase(
        pod,
        &regular,
        &init,
        context.pod_is_terminal,
        initialized_now,
    );
    if !spec::is_terminal_phase(Some(phase)) && spec::is_terminal_phase(old_phase) {
        // A terminal phase never goes back.
        phase = old_phase.unwrap_or(phase);
    }
    let phase = phase.to_string();
    if Some(phase.as_str()) == old_phase {
        status.reason = old.reason.clone();
        status.message = old.message.clone();
    }

    // Started and ready come from the probes, after the phase (as upstream
    // orders it).
    set_probe_flags(pod, &mut regular, &mut init, context.probe_results);

    let all_statuses: Vec<&ContainerStatus> = init.iter().chain(regular.iter()).collect();
    let mut conditions: Vec<PodCondition> = old
        .conditions
        .iter()
        .flatten()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    conditions.push(condition(
        CONDITION_READY_TO_START_CONTAINERS,
        !state.sandbox_change(pod).needs_new_sandbox(),
        None,
        None,
    ));
    conditions.push(initialized_condition(pod, &all_statuses, &phase));
    let ready = ready_condition(pod, &conditions, &all_statuses, &phase);
    conditions.push(ready);
    conditions.push(containers_ready_condition(pod, &all_statuses, &phase));
    conditions.push(condition(CONDITION_POD_SCHEDULED, true, None, None));

    status.phase = Some(phase);
    status.container_statuses = Some(regular);
    status.init_container_statuses = has_init_containers.then_some(init);
    set_host_ips(pod, &mut status, context.node_ips);

    for condition in &mut conditions {
        let owned = KUBELET_CONDITIONS.contains(&condition.type_.as_str());
        if owned {
            condition.observed_generation = generation;
        }
        if owned || condition.type_ == CONDITION_DISRUPTION_TARGET {
            condition.last_transition_time = Some(transition_time(condition, &old, context.now));
        }
    }
    status.conditions = Some(conditions);
    status.start_time = Some(old.start_time.clone().unwrap_or(Time(context.now)));

    let new_phase = status.phase.as_deref();
    let becoming_terminal =
        !spec::is_terminal_phase(old_phase) && spec::is_terminal_phase(new_phase);
    if becoming_terminal && !context.pod_is_terminal {
        // Not terminal until every container is stopped for good. (The API
        // server gives every pod a phase; Pending stands in if it did not.)
        status.phase = Some(old_phase.unwrap_or(PHASE_PENDING).to_string());
        status.reason = old.reason.clone();
        status.message = old.message.clone();
    }
    if spec::is_terminal_phase(status.phase.as_deref()) {
        force_terminal_readiness(&mut status, generation, context.now);
    }

    status.observed_generation = generation;
    status.resource_claim_statuses = old.resource_claim_statuses.clone();
    status.extended_resource_claim_status = old.extended_resource_claim_status.clone();
    normalize_status(pod, &mut status);
    status
}

fn set_pod_ips(status: &mut PodStatus, ips: Vec<String>) {
    status.pod_ip = ips.first().cloned();
    status.pod_ips = (!ips.is_empty()).then(|| ips.into_iter().map(|ip| PodIP { ip }).collect());
}

/// At most one IP of the node's primary family, then one of the other
/// family, the order the downward API and the status use.
pub fn sort_pod_ips(pod_ips: &[String], node_ips: &[String]) -> Vec<String> {
    let primary_is_v4 = node_ips
        .first()
        .is_none_or(|ip| ip_family(ip) == Some(true));
    let first_of = |want_v4: bool| {
        pod_ips
            .iter()
            .find(|ip| ip_family(ip) == Some(want_v4))
            .cloned()
    };
    first_of(primary_is_v4)
        .into_iter()
        .chain(first_of(!primary_is_v4))
        .collect()
}

fn set_host_ips(pod: &Pod, status: &mut PodStatus, node_ips: &[String]) {
    let Some(primary) = node_ips.first() else {
        return;
    };
    let host_ips: Vec<&String> = node_ips.iter().take(2).collect();
    status.host_ip = Some(primary.clone());
    status.host_ips = Some(
        host_ips
            .iter()
            .map(|ip| HostIP { ip: (*ip).clone() })
            .collect(),
    );
    if spec::is_host_network(pod) {
        // Host-network pods take the node's IPs, once; a second family is
        // added if the node gains one.
        if status.pod_ip.as_deref().is_none_or(str::is_empty) {
            set_pod_ips(status, vec![primary.clone()]);
        }
        if let (Some(secondary), Some(pod_ips)) = (host_ips.get(1), status.pod_ips.as_mut())
            && pod_ips.len() == 1
            && ip_family(&pod_ips[0].ip) != ip_family(secondary)
        {
            pod_ips.push(PodIP {
                ip: (*secondary).clone(),
            });
        }
    }
}

fn ip_family(ip: &str) -> Option<bool> {
    ip.parse::<IpAddr>().ok().map(|ip| ip.is_ipv4())
}

fn waiting(reason: Option<&str>, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.filter(|r| !r.is_empty()).map(str::to_string),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// The volume mounts of a container as its status lists them: read-only
/// mounts say recursive read-only is off (the runtime is not asked for it).
fn volume_mount_statuses(container: &Container) -> Option<Vec<VolumeMountStatus>> {
    let mounts = container.volume_mounts.as_ref()?;
    Some(
        mounts
            .iter()
            .map(|mount| {
                let read_only = mount.read_only.unwrap_or(false);
                VolumeMountStatus {
                    name: mount.name.clone(),
                    mount_path: mount.mount_path.clone(),
                    read_only: read_only.then_some(true),
                    recursive_read_only: read_only.then(|| "Disabled".to_string()),
                    volume_status: None,
                }
            })
            .collect(),
    )
}

/// The resources a running container reports: its cpu, memory and
/// ephemeral-storage limits and requests.
fn running_resources(container: &Container) -> ResourceRequirements {
    let pick = |list: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        let picked: BTreeMap<_, _> = list
            .into_iter()
            .flatten()
            .filter(|(name, _)| [CPU, MEMORY, EPHEMERAL_STORAGE].contains(&name.as_str()))
            .map(|(name, q)| (name.clone(), q.clone()))
            .collect();
        (!picked.is_empty()).then_some(picked)
    };
    ResourceRequirements {
        limits: pick(resources::limits(container)),
        requests: pick(resources::requests(container)),
        claims: None,
    }
}

fn record_status(
    record: &ContainerRecord,
    old: Option<&ContainerStatus>,
    container: &Container,
    runtime_name: &str,
) -> ContainerStatus {
    let container_id = format!("{runtime_name}://{}", record.id);
    let mut restart_count = record.restart_count;
    let state = match record.state {
        ContainerRunState::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: record.started_at.map(Time),
            }),
            ..Default::default()
        },
        // Created but not started: waiting, with no reason of its own.
        ContainerRunState::Created => waiting(None, None),
        ContainerRunState::Exited => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: record.exit_code,
                reason: non_empty(&record.reason),
                message: non_empty(&record.message),
                started_at: record.started_at.map(Time),
                finished_at: record.finished_at.map(Time),
                container_id: Some(container_id.clone()),
                signal: None,
            }),
            ..Default::default()
        },
        ContainerRunState::Unknown
            if old.is_some_and(|o| o.state.as_ref().is_some_and(|s| s.running.is_some())) =>
        {
            // It ran and is gone: report a failure, not a fresh wait, so a
            // run-once pod is not run twice.
            restart_count = old.map_or(0, |o| o.restart_count.saturating_add(1));
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some(CONTAINER_STATUS_UNKNOWN.to_string()),
                    message: Some(
                        "The container could not be located when the pod was terminated"
                            .to_string(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
        ContainerRunState::Unknown => waiting(None, None),
    };
    let running = record.state == ContainerRunState::Running;
    ContainerStatus {
        name: record.name.clone(),
        restart_count,
        image: record.image.clone(),
        image_id: record.image_ref.clone(),
        container_id: Some(container_id),
        state: Some(state),
        last_state: Some(ContainerState::default()),
        volume_mounts: volume_mount_statuses(container),
        resources: running.then(|| running_resources(container)),
        user: record.user.as_ref().map(|user| ContainerUser {
            linux: Some(LinuxContainerUser {
                uid: user.uid,
                gid: user.gid,
                supplemental_groups: (!user.supplemental_groups.is_empty())
                    .then(|| user.supplemental_groups.clone()),
            }),
        }),
        ..Default::default()
    }
}

fn is_terminated(status: &ContainerStatus) -> bool {
    status
        .state
        .as_ref()
        .is_some_and(|s| s.terminated.is_some())
}

fn is_running(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.running.is_some())
}

fn waiting_reason_of(status: &ContainerStatus) -> Option<&str> {
    status
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .map(|w| w.reason.as_deref().unwrap_or_default())
}

fn last_terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
}

/// Upstream's convertToAPIContainerStatuses for one list of containers.
fn container_statuses(
    pod: &Pod,
    state: &PodRuntimeState,
    previous: Option<&[ContainerStatus]>,
    containers: &[Container],
    has_init_containers: bool,
    is_init: bool,
    context: &StatusContext<'_>,
) -> Vec<ContainerStatus> {
    let old: BTreeMap<&str, &ContainerStatus> = previous
        .into_iter()
        .flatten()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let default_reason = if has_init_containers {
        POD_INITIALIZING
    } else {
        CONTAINER_CREATING
    };
    let mut statuses: BTreeMap<&str, ContainerStatus> = BTreeMap::new();
    for container in containers {
        let mut status = ContainerStatus {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            state: Some(waiting(Some(default_reason), None)),
            last_state: Some(ContainerState::default()),
            volume_mounts: volume_mount_statuses(container),
            ..Default::default()
        };
        if let Some(previous) = old.get(container.name.as_str()) {
            if is_terminated(previous) {
                status = (*previous).clone();
            } else {
                status.restart_count = previous.restart_count;
                status.last_state = previous.last_state.clone();
            }
        }
        statuses.insert(&container.name, status);
    }

    for container in containers {
        if state.containers.iter().any(|r| r.name == container.name) {
            continue;
        }
        let Some(previous) = old.get(container.name.as_str()) else {
            continue;
        };
        if is_terminated(previous) || !is_running(previous) {
            continue;
        }
        let Some(status) = statuses.get_mut(container.name.as_str()) else {
            continue;
        };
        if waiting_reason_of(status) != Some(default_reason) || last_terminated(status).is_some() {
            continue;
        }
        // It was running and vanished without a trace: show it stopped
        // rather than waiting, which would push the pod back to Pending.
        status.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some(CONTAINER_STATUS_UNKNOWN.to_string()),
                message: Some(
                    "The container could not be located when the pod was deleted.  The container used to be Running"
                        .to_string(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
        if !spec::is_being_deleted(pod) {
            status.restart_count = status.restart_count.saturating_add(1);
        }
    }

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for record in state.containers_newest_first() {
        let Some(container) = containers.iter().find(|c| c.name == record.name) else {
            continue;
        };
        let count = seen.entry(record.name.as_str()).or_default();
        if *count >= 2 {
            continue;
        }
        let converted = record_status(
            record,
            old.get(record.name.as_str()).copied(),
            container,
            context.runtime_name,
        );
        if *count == 0 {
            statuses.insert(&container.name, converted);
        } else if let Some(status) = statuses.get_mut(container.name.as_str()) {
            status.last_state = converted.state;
        }
        *count += 1;
    }

    for container in containers {
        if is_init
            && state
                .latest_container(&container.name)
                .is_some_and(|r| r.state == ContainerRunState::Exited && r.exit_code == 0)
        {
            continue;
        }
        if !should_container_be_restarted(container, pod, state) {
            continue;
        }
        let Some(reason) = context.waiting_reasons.get(&container.name) else {
            // Without a recorded failure it restarts soon; keep its state.
            continue;
        };
        let Some(status) = statuses.get_mut(container.name.as_str()) else {
            continue;
        };
        if is_terminated(status) {
            status.last_state = status.state.clone();
        }
        status.state = Some(waiting(Some(&reason.reason), Some(&reason.message)));
    }

    let mut ordered: Vec<ContainerStatus> = containers
        .iter()
        .filter_map(|c| statuses.remove(c.name.as_str()))
        .collect();
    if !is_init {
        ordered.sort_by(|a, b| a.name.cmp(&b.name));
    }
    ordered
}

fn container_id_of(status: &ContainerStatus) -> Option<&str> {
    status
        .container_id
        .as_deref()
        .map(|id| id.split_once("://").map_or(id, |(_, raw)| raw))
}

/// Upstream's probe manager UpdatePodStatus.
fn set_probe_flags(
    pod: &Pod,
    regular: &mut [ContainerStatus],
    init: &mut [ContainerStatus],
    results: &ProbeResults,
) {
    let flags = |container: &Container, status: &ContainerStatus| {
        let running = is_running(status);
        let id = container_id_of(status);
        let started = probes::container_started(container, running, id, results);
        let ready = started && probes::container_ready(container, running, id, results);
        (started, ready)
    };
    for status in regular {
        let Some(container) = spec::containers(pod).iter().find(|c| c.name == status.name) else {
            continue;
        };
        let (started, ready) = flags(container, status);
        status.started = Some(started);
        status.ready = ready;
    }
    for status in init {
        let Some(container) = spec::init_containers(pod)
            .iter()
            .find(|c| c.name == status.name)
        else {
            continue;
        };
        let (started, ready) = flags(container, status);
        status.started = Some(started);
        status.ready = if spec::is_restartable_init_container(container) {
            ready
        } else {
            // A regular init container is ready once it completed.
            status
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        };
    }
}

/// Upstream's getPhase.
fn pod_phase(
    pod: &Pod,
    regular: &[ContainerStatus],
    init: &[ContainerStatus],
    pod_is_terminal: bool,
    pod_has_initialized: bool,
) -> &'static str {
    let find = |list: &'_ [ContainerStatus], name: &str| -> Option<ContainerStatus> {
        list.iter().find(|s| s.name == name).cloned()
    };
    let mut pending_regular_init = 0;
    let mut pending_sidecars = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);

    for container in spec::init_containers(pod) {
        let Some(status) = find(init, &container.name) else {
            if spec::is_restartable_init_container(container) {
                unknown += 1;
            } else {
                pending_regular_init += 1;
            }
            continue;
        };
        let state = status.state.clone().unwrap_or_default();
        let last = last_terminated(&status);
        if spec::is_restartable_init_container(container) {
            if state.running.is_some() {
                if status.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.terminated.is_some() {
                // Stopped sidecars do not count towards the phase.
            } else if state.waiting.is_some() {
                if last.is_none() {
                    pending_sidecars += 1;
                    waiting += 1;
                }
            } else {
                pending_sidecars += 1;
                unknown += 1;
            }
            continue;
        }
        if state.running.is_some() {
            pending_regular_init += 1;
        } else if let Some(terminated) = &state.terminated {
            if terminated.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last {
                Some(terminated) if terminated.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_regular_init += 1,
            }
        } else {
            pending_regular_init += 1;
        }
    }

    for container in spec::containers(pod) {
        let Some(status) = find(regular, &container.name) else {
            unknown += 1;
            continue;
        };
        let state = status.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(terminated) = &state.terminated {
            stopped += 1;
            if terminated.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last_terminated(&status).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    let policy = spec::restart_policy(pod);
    if failed_init > 0 && policy == RestartPolicy::Never {
        return PHASE_FAILED;
    }
    if pending_regular_init > 0 || (pending_sidecars > 0 && !pod_has_initialized) || waiting > 0 {
        return PHASE_PENDING;
    }
    if running > 0 && unknown == 0 {
        return PHASE_RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                PHASE_SUCCEEDED
            } else {
                PHASE_FAILED
            };
        }
        return match policy {
            // Restarting, still running as far as the pod is concerned.
            RestartPolicy::Always => PHASE_RUNNING,
            _ if stopped == succeeded => PHASE_SUCCEEDED,
            RestartPolicy::Never => PHASE_FAILED,
            RestartPolicy::OnFailure => PHASE_RUNNING,
        };
    }
    PHASE_PENDING
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// Go's `fmt.Sprintf("%s", names)` for a list: "[a b]".
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn find_status<'a>(statuses: &[&'a ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().copied().find(|s| s.name == name)
}

fn terminal_reason(phase: &str) -> Option<&'static str> {
    match phase {
        PHASE_FAILED => Some("PodFailed"),
        PHASE_SUCCEEDED => Some("PodCompleted"),
        _ => None,
    }
}

fn containers_ready_condition(
    pod: &Pod,
    statuses: &[&ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec::init_containers(pod)
        .iter()
        .filter(|c| spec::is_restartable_init_container(c));
    for container in sidecars.chain(spec::containers(pod)) {
        match find_status(statuses, &container.name) {
            Some(status) if !status.ready => unready.push(container.name.as_str()),
            Some(_) => {}
            None => unknown.push(container.name.as_str()),
        }
    }
    if (phase == PHASE_SUCCEEDED && unknown.is_empty()) || phase == PHASE_FAILED {
        return condition(
            CONDITION_CONTAINERS_READY,
            false,
            terminal_reason(phase),
            None,
        );
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        condition(CONDITION_CONTAINERS_READY, true, None, None)
    } else {
        condition(
            CONDITION_CONTAINERS_READY,
            false,
            Some("ContainersNotReady"),
            Some(messages.join(", ")),
        )
    }
}

fn ready_condition(
    pod: &Pod,
    conditions: &[PodCondition],
    statuses: &[&ContainerStatus],
    phase: &str,
) -> PodCondition {
    let containers_ready = containers_ready_condition(pod, statuses, phase);
    if containers_ready.status != "True" {
        return PodCondition {
            type_: CONDITION_READY.to_string(),
            ..containers_ready
        };
    }
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten();
    let mut messages = Vec::new();
    for gate in gates {
        let gate_type = &gate.condition_type;
        match conditions.iter().find(|c| &c.type_ == gate_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {} does not exist.",
                go_quote(gate_type)
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate {} is not \"True\", but {}",
                go_quote(gate_type),
                c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition(CONDITION_READY, true, None, None)
    } else {
        condition(
            CONDITION_READY,
            false,
            Some("ReadinessGatesNotReady"),
            Some(messages.join(", ")),
        )
    }
}

fn initialized_condition(pod: &Pod, statuses: &[&ContainerStatus], phase: &str) -> PodCondition {
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for container in spec::init_containers(pod) {
        let Some(status) = find_status(statuses, &container.name) else {
            unknown.push(container.name.as_str());
            continue;
        };
        let initialized = if spec::is_restartable_init_container(container) {
            status.started == Some(true)
        } else {
            status.ready
        };
        if !initialized {
            incomplete.push(container.name.as_str());
        }
    }
    if phase == PHASE_SUCCEEDED && unknown.is_empty() {
        return condition(CONDITION_INITIALIZED, true, Some("PodCompleted"), None);
    }
    // An app container that ran proves the pod was initialized, even while
    // its sidecars restart.
    let regular_started = spec::containers(pod).iter().any(|container| {
        find_status(statuses, &container.name).is_some_and(|s| {
            s.state
                .as_ref()
                .is_some_and(|state| state.running.is_some() || state.terminated.is_some())
        })
    });
    if regular_started {
        return condition(CONDITION_INITIALIZED, true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        condition(CONDITION_INITIALIZED, true, None, None)
    } else {
        condition(
            CONDITION_INITIALIZED,
            false,
            Some("ContainersNotInitialized"),
            Some(messages.join(", ")),
        )
    }
}

/// A condition keeps its transition time while its status stays the same.
fn transition_time(condition: &PodCondition, old: &PodStatus, now: Timestamp) -> Time {
    old.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == condition.type_ && c.status == condition.status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| condition.last_transition_time.clone())
        .unwrap_or(Time(now))
}

/// A terminal pod is never reported ready, even before readiness caught up.
fn force_terminal_readiness(status: &mut PodStatus, generation: Option<i64>, now: Timestamp) {
    let phase = status.phase.clone().unwrap_or_default();
    let Some(conditions) = status.conditions.as_mut() else {
        return;
    };
    let any_ready = conditions.iter().any(|c| {
        (c.type_ == CONDITION_READY || c.type_ == CONDITION_CONTAINERS_READY) && c.status == "True"
    });
    if !any_ready {
        return;
    }
    for c in conditions.iter_mut() {
        if c.type_ == CONDITION_READY || c.type_ == CONDITION_CONTAINERS_READY {
            let changed = c.status != "False";
            *c = PodCondition {
                last_transition_time: if changed {
                    Some(Time(now))
                } else {
                    c.last_transition_time.clone()
                },
                observed_generation: generation,
                ..condition(&c.type_, false, terminal_reason(&phase), None)
            };
        }
    }
}

fn truncate_to_second(time: &mut Time) {
    if let Ok(whole) = Timestamp::from_second(time.0.as_second()) {
        time.0 = whole;
    }
}

fn truncate_bytes(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

fn normalize_container_state(state: Option<&mut ContainerState>, message_limit: usize) {
    let Some(state) = state else {
        return;
    };
    if let Some(started) = state.running.as_mut().and_then(|r| r.started_at.as_mut()) {
        truncate_to_second(started);
    }
    if let Some(terminated) = state.terminated.as_mut() {
        for time in [
            terminated.started_at.as_mut(),
            terminated.finished_at.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            truncate_to_second(time);
        }
        if let Some(message) = terminated.message.as_mut() {
            truncate_bytes(message, message_limit);
        }
    }
}

/// What the API server will store anyway: whole-second times, termination
/// messages within the pod's budget, container statuses in a fixed order.
fn normalize_status(pod: &Pod, status: &mut PodStatus) {
    let container_count = spec::containers(pod).len() + spec::init_containers(pod).len();
    let message_limit = MAX_POD_TERMINATION_MESSAGE_BYTES / container_count.max(1);
    normalize_times_and_messages(status, message_limit);
    if let Some(statuses) = status.container_statuses.as_mut() {
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if let Some(statuses) = status.init_container_statuses.as_mut() {
        let position = |name: &str| {
            spec::init_containers(pod)
                .iter()
                .position(|c| c.name == name)
                .unwrap_or(usize::MAX)
        };
        statuses.sort_by_key(|s| position(&s.name));
    }
}

fn normalize_times_and_messages(status: &mut PodStatus, message_limit: usize) {
    if let Some(start) = status.start_time.as_mut() {
        truncate_to_second(start);
    }
    for condition in status.conditions.iter_mut().flatten() {
        for time in [
            condition.last_probe_time.as_mut(),
            condition.last_transition_time.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            truncate_to_second(time);
        }
    }
    for list in [
        status.container_statuses.as_mut(),
        status.init_container_statuses.as_mut(),
        status.ephemeral_container_statuses.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        for container in list {
            normalize_container_state(container.state.as_mut(), message_limit);
            normalize_container_state(container.last_state.as_mut(), message_limit);
        }
    }
}

/// Whether `new` differs from `old` in anything the kubelet owns, ignoring
/// order, sub-second times, transition times, and conditions set by others
/// (upstream's isPodStatusByKubeletEqual).
pub fn status_needs_write(old: &PodStatus, new: &PodStatus) -> bool {
    let owned = |status: &PodStatus| -> BTreeMap<String, (String, Option<String>, Option<String>)> {
        status
            .conditions
            .iter()
            .flatten()
            .filter(|c| {
                KUBELET_CONDITIONS.contains(&c.type_.as_str())
                    || c.type_ == CONDITION_DISRUPTION_TARGET
            })
            .map(|c| {
                (
                    c.type_.clone(),
                    (
                        c.status.clone(),
                        c.reason.clone().filter(|r| !r.is_empty()),
                        c.message.clone().filter(|m| !m.is_empty()),
                    ),
                )
            })
            .collect()
    };
    if owned(old) != owned(new) {
        return true;
    }
    let comparable = |status: &PodStatus| {
        let mut copy = status.clone();
        copy.conditions = None;
        normalize_times_and_messages(&mut copy, usize::MAX);
        for list in [
            copy.container_statuses.as_mut(),
            copy.init_container_statuses.as_mut(),
            copy.ephemeral_container_statuses.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        copy
    };
    comparable(old) != comparable(new)
}

/// Refuses a status that brings back a container that terminated for good
/// (upstream's checkContainerStateTransition, which aborts the update).
pub fn check_container_state_transition(
    pod: &Pod,
    old: &PodStatus,
    new: &PodStatus,
) -> Result<(), String> {
    let policy = spec::restart_policy(pod);
    if policy == RestartPolicy::Always {
        return Ok(());
    }
    let done_for_good = |status: &ContainerStatus| {
        status
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| !(t.exit_code != 0 && policy == RestartPolicy::OnFailure))
    };
    for (old_list, new_list, label) in [
        (
            &old.container_statuses,
            &new.container_statuses,
            "container",
        ),
        (
            &old.init_container_statuses,
            &new.init_container_statuses,
            "init container",
        ),
    ] {
        for previous in old_list.iter().flatten().filter(|s| done_for_good(s)) {
            if label == "init container"
                && spec::init_containers(pod)
                    .iter()
                    .any(|c| c.name == previous.name && spec::is_restartable_init_container(c))
            {
                continue;
            }
            if new_list
                .iter()
                .flatten()
                .any(|s| s.name == previous.name && !is_terminated(s))
            {
                return Err(format!(
                    "terminated {label} {} attempted illegal transition to non-terminated state",
                    previous.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
