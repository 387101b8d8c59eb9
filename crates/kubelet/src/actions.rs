//! What to change for a pod next, like upstream's computePodActions: sandbox (re)creation, init containers and sidecars in order, restarts by restart policy, spec changes, probe kills, crash-loop backoff, and termination.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::backoff::{self, BackoffKey, ContainerBackoff};
use crate::probes::{ProbeKind, ProbeResult, ProbeResults};
use crate::runtime_state::{ContainerRecord, ContainerRunState, PodRuntimeState};
use crate::spec::{self, ContainerKind, RestartPolicy};
use crate::status::WaitingReason;

/// The runtime always gets at least this long to stop a container, even
/// after a preStop hook used up the grace period.
pub const MINIMUM_GRACE_PERIOD_SECONDS: i64 = 2;

/// The waiting reason of a container held back by its restart backoff.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// What the sync needs besides the pod and the runtime state.
pub struct ActionsContext<'a> {
    pub now: Timestamp,
    pub probe_results: &'a ProbeResults,
    pub backoff: &'a ContainerBackoff,
}

/// Why a container is killed, when it matters for its grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    LivenessProbe,
    StartupProbe,
    /// The runtime lost track of it; killed to avoid running it twice.
    UnknownState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerKill {
    pub container_id: String,
    pub name: String,
    pub kind: Option<ContainerKind>,
    /// The Killing event's message.
    pub message: String,
    pub reason: Option<KillReason>,
    /// The budget before any preStop hook; the runtime gets at least
    /// [`MINIMUM_GRACE_PERIOD_SECONDS`] of what is left.
    pub grace_period_seconds: i64,
}

/// The exit a restart follows, for [`ContainerBackoff::next`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousExit {
    pub key: BackoffKey,
    pub exited_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStart {
    pub kind: ContainerKind,
    /// Position in the spec's `initContainers` or `containers`.
    pub index: usize,
    pub name: String,
    /// The restart count (and CRI attempt) to record on the new instance.
    pub restart_count: i32,
    pub previous_exit: Option<PreviousExit>,
}

/// A container that should run again but whose backoff has not elapsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffWait {
    pub kind: ContainerKind,
    pub index: usize,
    pub name: String,
    pub delay: Duration,
    /// "back-off 10s restarting failed container=NAME pod=NAME_NS(UID)".
    pub message: String,
    /// The BackOff event's message.
    pub event_message: String,
}

/// The changes one sync makes, in the order the shell applies them:
/// stop (the whole pod or single containers), remove dead init containers,
/// create the sandbox, start init containers, then regular containers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every running container and every sandbox of the pod.
    pub kill_pod: bool,
    /// Create a new sandbox (after the pod was killed).
    pub create_sandbox: bool,
    /// The sandbox the starts go into when none is created; when a sandbox
    /// is replaced this is the old one (upstream records a SandboxChanged
    /// event, "Pod sandbox changed, it will be killed and re-created.").
    pub existing_sandbox_id: Option<String>,
    pub sandbox_attempt: u32,
    /// Filled when `kill_pod`: every sandbox, newest first.
    pub sandboxes_to_stop: Vec<String>,
    /// When `kill_pod`: every running container, app containers first and
    /// sidecars last in reverse order (upstream stops sidecars only once the
    /// containers before them are gone). Otherwise the single containers to
    /// replace.
    pub containers_to_kill: Vec<ContainerKill>,
    /// Dead init container instances to remove before starting anything.
    pub containers_to_remove: Vec<String>,
    pub init_containers_to_start: Vec<ContainerStart>,
    pub containers_to_start: Vec<ContainerStart>,
    pub backing_off: Vec<BackoffWait>,
}

impl PodActions {
    /// The waiting reasons this plan establishes, for the shell's table of
    /// last start failures (which [`crate::status::pod_status`] reads).
    pub fn waiting_reasons(&self) -> Vec<(String, WaitingReason)> {
        self.backing_off
            .iter()
            .map(|wait| {
                (
                    wait.name.clone(),
                    WaitingReason {
                        reason: CRASH_LOOP_BACK_OFF.to_string(),
                        message: wait.message.clone(),
                    },
                )
            })
            .collect()
    }
}

/// Decides the next changes for the pod.
pub fn compute_pod_actions(
    pod: &Pod,
    state: &PodRuntimeState,
    context: &ActionsContext<'_>,
) -> PodActions {
    if spec::is_being_deleted(pod) || spec::is_terminal_phase(spec::phase(pod)) {
        return terminate_pod(pod, state);
    }
    let plan = plan_pod(pod, state, context);
    carry_out(pod, state, context, plan)
}

/// A kill decided while walking the containers, before grace periods.
struct PlannedKill<'a> {
    record: &'a ContainerRecord,
    kind: ContainerKind,
    message: String,
    reason: Option<KillReason>,
}

/// Upstream's podActions, with container indexes.
struct Plan<'a> {
    kill_pod: bool,
    create_sandbox: bool,
    sandbox_id: Option<String>,
    attempt: u32,
    init_starts: Vec<usize>,
    starts: Vec<usize>,
    kills: Vec<PlannedKill<'a>>,
}

fn plan_pod<'a>(
    pod: &'a Pod,
    state: &'a PodRuntimeState,
    context: &ActionsContext<'_>,
) -> Plan<'a> {
    let change = state.sandbox_change(pod);
    let mut plan = Plan {
        kill_pod: change.needs_new_sandbox(),
        create_sandbox: change.needs_new_sandbox(),
        sandbox_id: change.sandbox_id,
        attempt: change.attempt,
        init_starts: Vec::new(),
        starts: Vec::new(),
        kills: Vec::new(),
    };
    if plan.create_sandbox {
        plan_new_sandbox(pod, state, &mut plan);
        return plan;
    }
    let initialized = plan_init_containers(pod, state, context, &mut plan);
    if plan.kill_pod || !initialized {
        return plan;
    }
    plan_regular_containers(pod, state, context, &mut plan);
    plan
}

/// The sandbox is gone or unusable: everything starts over from the first
/// init container, unless the pod has nothing left to run.
fn plan_new_sandbox(pod: &Pod, state: &PodRuntimeState, plan: &mut Plan<'_>) {
    if !spec::should_restart_on_failure(pod) && plan.attempt != 0 && !state.containers.is_empty() {
        // A Never pod that already ran: do not bring it back for nothing.
        plan.create_sandbox = false;
        return;
    }
    let on_failure = spec::restart_policy(pod) == RestartPolicy::OnFailure;
    let to_start: Vec<usize> = spec::containers(pod)
        .iter()
        .enumerate()
        .filter(|(_, c)| !(on_failure && container_succeeded(c, state)))
        .map(|(index, _)| index)
        .collect();
    if to_start.is_empty() && has_any_regular_container_created(pod, state) {
        plan.create_sandbox = false;
        return;
    }
    if !spec::init_containers(pod).is_empty() {
        plan.init_starts = vec![0];
        return;
    }
    plan.starts = to_start;
}

fn container_succeeded(container: &Container, state: &PodRuntimeState) -> bool {
    state
        .latest_container(&container.name)
        .is_some_and(|c| c.state == ContainerRunState::Exited && c.exit_code == 0)
}

fn has_any_regular_container_created(pod: &Pod, state: &PodRuntimeState) -> bool {
    spec::containers(pod).iter().any(|container| {
        state.latest_container(&container.name).is_some_and(|c| {
            matches!(
                c.state,
                ContainerRunState::Created | ContainerRunState::Running | ContainerRunState::Exited
            )
        })
    })
}

/// An init container failed when it exited non-zero, was OOM killed, or
/// the runtime lost it.
pub fn is_init_container_failed(record: &ContainerRecord) -> bool {
    record.reason == "OOMKilled"
        || (record.state == ContainerRunState::Exited && record.exit_code != 0)
        || record.state == ContainerRunState::Unknown
}

fn unknown_state_message(prefix: &str, record: &ContainerRecord) -> String {
    format!(
        "{prefix} is in \"{}\" state, try killing it before restart",
        record.state
    )
}

/// Upstream's computeInitContainerActions: walks the init containers from
/// the last, because completed ones may have been garbage collected and the
/// last one seen is the best evidence of progress. Returns whether the pod
/// is initialized.
fn plan_init_containers<'a>(
    pod: &'a Pod,
    state: &'a PodRuntimeState,
    context: &ActionsContext<'_>,
    plan: &mut Plan<'a>,
) -> bool {
    let init_containers = spec::init_containers(pod);
    if init_containers.is_empty() {
        return true;
    }
    // A created or running app container proves initialization happened,
    // even if the init containers are gone. Exited ones do not: after a
    // reboot every container is exited and the new sandbox starts afresh.
    let mut initialized = spec::containers(pod).iter().any(|container| {
        state.latest_container(&container.name).is_some_and(|c| {
            matches!(
                c.state,
                ContainerRunState::Created | ContainerRunState::Running
            )
        })
    });
    let mut previously_initialized = initialized;
    let restart_on_failure = spec::should_restart_on_failure(pod);
    let last = init_containers.len() - 1;
    let mut starts = Vec::new();

    for (index, container) in init_containers.iter().enumerate().rev() {
        let sidecar = spec::is_restartable_init_container(container);
        let Some(record) = state.latest_container(&container.name) else {
            if previously_initialized && sidecar {
                starts.push(index);
            }
            continue;
        };
        if previously_initialized && !sidecar {
            continue;
        }
        let mut kill = |message: String, reason: Option<KillReason>| {
            plan.kills.push(PlannedKill {
                record,
                kind: ContainerKind::Init,
                message,
                reason,
            });
        };
        match record.state {
            ContainerRunState::Created => starts.push(index),
            ContainerRunState::Running if sidecar => {
                if container.startup_probe.is_some() {
                    match context.probe_results.get(ProbeKind::Startup, &record.id) {
                        Some(ProbeResult::Success) => {}
                        Some(ProbeResult::Failure) => {
                            kill(
                                format!("Init container {} failed startup probe", container.name),
                                Some(KillReason::StartupProbe),
                            );
                            starts.push(index);
                            mark_seen(&mut previously_initialized);
                            continue;
                        }
                        // Not started yet: the next init container waits.
                        _ => {
                            mark_seen(&mut previously_initialized);
                            continue;
                        }
                    }
                }
                if index == last {
                    initialized = true;
                } else if !previously_initialized {
                    starts.push(index + 1);
                }
                if record.spec_hash != spec::container_spec_hash(container) {
                    kill(
                        format!("Init container {} definition changed", container.name),
                        None,
                    );
                    starts.push(index);
                } else if container.liveness_probe.is_some()
                    && context.probe_results.get(ProbeKind::Liveness, &record.id)
                        == Some(ProbeResult::Failure)
                {
                    kill(
                        format!("Init container {} failed liveness probe", container.name),
                        Some(KillReason::LivenessProbe),
                    );
                    starts.push(index);
                }
            }
            // A regular init container still running: wait for it.
            ContainerRunState::Running => {}
            ContainerRunState::Exited if sidecar => starts.push(index),
            ContainerRunState::Exited => {
                if is_init_container_failed(record) {
                    if !restart_on_failure {
                        plan.kill_pod = true;
                        plan.init_starts.clear();
                        return false;
                    }
                    starts.push(index);
                } else if index == last {
                    initialized = true;
                } else {
                    starts.push(index + 1);
                }
            }
            ContainerRunState::Unknown => {
                if !sidecar && !restart_on_failure {
                    plan.kill_pod = true;
                    plan.init_starts.clear();
                    return false;
                }
                kill(
                    unknown_state_message("Init container", record),
                    Some(KillReason::UnknownState),
                );
                starts.push(index);
            }
        }
        mark_seen(&mut previously_initialized);
    }
    if !previously_initialized {
        starts.push(0);
    }
    starts.reverse();
    plan.init_starts = starts;
    initialized
}

/// Once the walk meets an init container with a record, every earlier one
/// has run at least once.
fn mark_seen(previously_initialized: &mut bool) {
    *previously_initialized = true;
}

/// Whether a container that is not running should be started, by restart
/// policy (upstream's `ShouldContainerBeRestarted`).
pub fn should_container_be_restarted(
    container: &Container,
    pod: &Pod,
    state: &PodRuntimeState,
) -> bool {
    if spec::is_being_deleted(pod) {
        return false;
    }
    let Some(record) = state.latest_container(&container.name) else {
        return true;
    };
    match record.state {
        ContainerRunState::Running => false,
        ContainerRunState::Unknown | ContainerRunState::Created => true,
        ContainerRunState::Exited => match spec::restart_policy(pod) {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => record.exit_code != 0,
            RestartPolicy::Always => true,
        },
    }
}

fn plan_regular_containers<'a>(
    pod: &'a Pod,
    state: &'a PodRuntimeState,
    context: &ActionsContext<'_>,
    plan: &mut Plan<'a>,
) {
    let mut kept = 0;
    for (index, container) in spec::containers(pod).iter().enumerate() {
        let record = state.latest_container(&container.name);
        let Some(running) = record.filter(|r| r.state == ContainerRunState::Running) else {
            if should_container_be_restarted(container, pod, state) {
                plan.starts.push(index);
                if let Some(unknown) = record.filter(|r| r.state == ContainerRunState::Unknown) {
                    plan.kills.push(PlannedKill {
                        record: unknown,
                        kind: ContainerKind::Regular,
                        message: unknown_state_message("Container", unknown),
                        reason: Some(KillReason::UnknownState),
                    });
                }
            }
            continue;
        };
        let mut restart = spec::should_restart_on_failure(pod);
        let (message, reason) = if running.spec_hash != spec::container_spec_hash(container) {
            // A changed spec runs again whatever the restart policy.
            restart = true;
            (
                format!("Container {} definition changed", container.name),
                None,
            )
        } else if context.probe_results.get(ProbeKind::Liveness, &running.id)
            == Some(ProbeResult::Failure)
        {
            (
                format!("Container {} failed liveness probe", container.name),
                Some(KillReason::LivenessProbe),
            )
        } else if context.probe_results.get(ProbeKind::Startup, &running.id)
            == Some(ProbeResult::Failure)
        {
            (
                format!("Container {} failed startup probe", container.name),
                Some(KillReason::StartupProbe),
            )
        } else {
            kept += 1;
            continue;
        };
        let message = if restart {
            plan.starts.push(index);
            format!("{message}, will be restarted")
        } else {
            message
        };
        plan.kills.push(PlannedKill {
            record: running,
            kind: ContainerKind::Regular,
            message,
            reason,
        });
    }
    if kept == 0 && plan.starts.is_empty() {
        // Nothing left to run: stop the sandbox too. Sidecars must not keep
        // a finished pod alive.
        plan.kill_pod = true;
        plan.init_starts.clear();
    }
}

/// Turns the plan into concrete changes: grace periods, removals, restart
/// counts and crash-loop backoff.
fn carry_out(
    pod: &Pod,
    state: &PodRuntimeState,
    context: &ActionsContext<'_>,
    plan: Plan<'_>,
) -> PodActions {
    let mut actions = PodActions {
        kill_pod: plan.kill_pod,
        create_sandbox: plan.create_sandbox,
        existing_sandbox_id: plan.sandbox_id.clone(),
        sandbox_attempt: plan.attempt,
        ..Default::default()
    };
    if plan.kill_pod {
        actions.sandboxes_to_stop = sandbox_ids(state);
        actions.containers_to_kill = kill_running_containers(pod, state, |container| {
            termination_grace_period_seconds(pod, container, None)
        });
    } else {
        for kill in plan.kills {
            let container = spec::find_container(pod, &kill.record.name).map(|(_, c)| c);
            let planned = ContainerKill {
                container_id: kill.record.id.clone(),
                name: kill.record.name.clone(),
                kind: Some(kill.kind),
                message: kill.message,
                reason: kill.reason,
                grace_period_seconds: termination_grace_period_seconds(pod, container, kill.reason),
            };
            // One kill per instance; the later decision wins, as in
            // upstream's map keyed by container id.
            actions
                .containers_to_kill
                .retain(|k| k.container_id != planned.container_id);
            actions.containers_to_kill.push(planned);
        }
    }
    actions.containers_to_remove = init_containers_to_remove(pod, state, plan.create_sandbox);

    let init_containers = spec::init_containers(pod);
    let mut aborted = false;
    for index in plan.init_starts {
        let Some(container) = init_containers.get(index) else {
            continue;
        };
        match start_or_wait(pod, state, context, container, ContainerKind::Init, index) {
            Ok(start) => actions.init_containers_to_start.push(start),
            Err(wait) => {
                actions.backing_off.push(wait);
                // A sidecar in backoff is skipped; a regular init container
                // in backoff holds up everything after it.
                if !spec::is_restartable_init_container(container) {
                    aborted = true;
                    break;
                }
            }
        }
    }
    if !aborted {
        let containers = spec::containers(pod);
        for index in plan.starts {
            let Some(container) = containers.get(index) else {
                continue;
            };
            match start_or_wait(
                pod,
                state,
                context,
                container,
                ContainerKind::Regular,
                index,
            ) {
                Ok(start) => actions.containers_to_start.push(start),
                Err(wait) => actions.backing_off.push(wait),
            }
        }
    }
    actions
}

fn start_or_wait(
    pod: &Pod,
    state: &PodRuntimeState,
    context: &ActionsContext<'_>,
    container: &Container,
    kind: ContainerKind,
    index: usize,
) -> Result<ContainerStart, BackoffWait> {
    let key = BackoffKey::for_container(pod, container);
    let previous_exit = state
        .latest_exited_container(&container.name)
        .map(|exited| PreviousExit {
            key: key.clone(),
            exited_at: exited
                .finished_at
                .or(exited.started_at)
                .unwrap_or(exited.created_at),
        });
    if let Some(previous) = &previous_exit
        && context
            .backoff
            .is_in_backoff_since(&key, previous.exited_at, context.now)
    {
        let delay = context.backoff.delay(&key);
        return Err(BackoffWait {
            kind,
            index,
            name: container.name.clone(),
            delay,
            message: backoff::crash_loop_message(delay, &container.name, pod),
            event_message: backoff::crash_loop_event_message(&container.name, pod),
        });
    }
    Ok(ContainerStart {
        kind,
        index,
        name: container.name.clone(),
        restart_count: state.next_restart_count(&container.name),
        previous_exit,
    })
}

fn sandbox_ids(state: &PodRuntimeState) -> Vec<String> {
    state
        .sandboxes_newest_first()
        .into_iter()
        .map(|s| s.id.clone())
        .collect()
}

/// Every running container of the pod, app containers first, then init
/// containers from the last (sidecars stop after what they serve), then
/// instances whose name the spec no longer has.
fn kill_running_containers(
    pod: &Pod,
    state: &PodRuntimeState,
    grace_of: impl Fn(Option<&Container>) -> i64,
) -> Vec<ContainerKill> {
    let order = |record: &ContainerRecord| -> (u8, usize) {
        if let Some(i) = spec::containers(pod)
            .iter()
            .position(|c| c.name == record.name)
        {
            return (0, i);
        }
        let init = spec::init_containers(pod);
        if let Some(i) = init.iter().position(|c| c.name == record.name) {
            return (1, init.len() - i);
        }
        (2, 0)
    };
    let mut running = state.running_containers();
    running.sort_by_key(|record| order(record));
    running
        .into_iter()
        .map(|record| {
            let found = spec::find_container(pod, &record.name);
            ContainerKill {
                container_id: record.id.clone(),
                name: record.name.clone(),
                kind: found.map(|(kind, _)| kind),
                message: format!("Stopping container {}", record.name),
                reason: None,
                grace_period_seconds: grace_of(found.map(|(_, c)| c)),
            }
        })
        .collect()
}

/// Dead init container instances to remove: all of them when the sandbox
/// is replaced (initialization starts over), otherwise all but the newest
/// dead one per name.
fn init_containers_to_remove(pod: &Pod, state: &PodRuntimeState, purge: bool) -> Vec<String> {
    let mut removals = Vec::new();
    for container in spec::init_containers(pod) {
        let mut kept_one = false;
        for record in state.containers_newest_first() {
            if record.name != container.name {
                continue;
            }
            if purge {
                removals.push(record.id.clone());
                continue;
            }
            if !matches!(
                record.state,
                ContainerRunState::Exited | ContainerRunState::Unknown
            ) {
                continue;
            }
            if kept_one {
                removals.push(record.id.clone());
            }
            kept_one = true;
        }
    }
    removals
}

/// The grace period of a single-container kill: the deletion's, else the
/// probe's override for probe kills, else the pod's, else the minimum.
pub fn termination_grace_period_seconds(
    pod: &Pod,
    container: Option<&Container>,
    reason: Option<KillReason>,
) -> i64 {
    if let Some(grace) = pod.metadata.deletion_grace_period_seconds {
        return grace;
    }
    let Some(pod_grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    else {
        return MINIMUM_GRACE_PERIOD_SECONDS;
    };
    let probe = match reason {
        Some(KillReason::LivenessProbe) => container.and_then(|c| c.liveness_probe.as_ref()),
        Some(KillReason::StartupProbe) => container.and_then(|c| c.startup_probe.as_ref()),
        _ => None,
    };
    probe
        .and_then(|p| p.termination_grace_period_seconds)
        .unwrap_or(pod_grace)
}

/// The grace period of a pod being terminated (upstream's
/// calculateEffectiveGracePeriod): the deletion's, else the pod's, at least 1.
pub fn pod_termination_grace_period_seconds(pod: &Pod) -> i64 {
    let mut grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
    if grace == 0
        && let Some(pod_grace) = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
    {
        grace = pod_grace;
    }
    grace.max(1)
}

/// A pod being deleted, or already terminal: stop everything, start nothing.
fn terminate_pod(pod: &Pod, state: &PodRuntimeState) -> PodActions {
    let grace = pod_termination_grace_period_seconds(pod);
    PodActions {
        kill_pod: true,
        existing_sandbox_id: state.newest_sandbox().map(|s| s.id.clone()),
        sandbox_attempt: state.newest_sandbox().map_or(0, |s| s.attempt),
        sandboxes_to_stop: sandbox_ids(state),
        containers_to_kill: kill_running_containers(pod, state, |_| grace),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_state::SandboxState;
    use crate::runtime_state::tests::{at, record, sandbox};
    use k8s_openapi::api::core::v1::{PodSpec, Probe};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
                termination_grace_period_seconds: Some(30),
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some("uid-1".into());
        pod
    }

    /// A runtime record built from the pod's own spec so its hash matches.
    fn instance(
        pod: &Pod,
        id: &str,
        name: &str,
        state: ContainerRunState,
        created: i64,
        exit_code: i32,
    ) -> ContainerRecord {
        let mut r = record(id, name, state, created);
        r.exit_code = exit_code;
        r.spec_hash =
            spec::find_container(pod, name).map_or(0, |(_, c)| spec::container_spec_hash(c));
        r
    }

    fn ready_sandbox() -> Vec<crate::runtime_state::SandboxRecord> {
        vec![sandbox("sb", 0, SandboxState::Ready, 0)]
    }

    /// The parts of a plan the tables compare.
    #[derive(Debug, PartialEq, Eq)]
    struct Summary {
        kill_pod: bool,
        create_sandbox: bool,
        init_starts: Vec<usize>,
        starts: Vec<usize>,
        kills: Vec<(String, String)>,
        waits: Vec<String>,
    }

    fn summary(actions: &PodActions) -> Summary {
        Summary {
            kill_pod: actions.kill_pod,
            create_sandbox: actions.create_sandbox,
            init_starts: actions
                .init_containers_to_start
                .iter()
                .map(|s| s.index)
                .collect(),
            starts: actions
                .containers_to_start
                .iter()
                .map(|s| s.index)
                .collect(),
            kills: actions
                .containers_to_kill
                .iter()
                .map(|k| (k.container_id.clone(), k.message.clone()))
                .collect(),
            waits: actions
                .backing_off
                .iter()
                .map(|w| w.message.clone())
                .collect(),
        }
    }

    fn expect(
        kill_pod: bool,
        create_sandbox: bool,
        init_starts: &[usize],
        starts: &[usize],
        kills: &[(&str, &str)],
    ) -> Summary {
        Summary {
            kill_pod,
            create_sandbox,
            init_starts: init_starts.to_vec(),
            starts: starts.to_vec(),
            kills: kills
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            waits: vec![],
        }
    }

    struct Case {
        name: &'static str,
        pod: Pod,
        containers: Vec<(&'static str, &'static str, ContainerRunState, i32)>,
        sandboxes: Vec<crate::runtime_state::SandboxRecord>,
        probes: Vec<(ProbeKind, &'static str, ProbeResult)>,
        expected: Summary,
    }

    fn run(case: Case) {
        let records = case
            .containers
            .iter()
            .enumerate()
            .map(|(i, (id, name, state, exit))| {
                instance(&case.pod, id, name, *state, 10 + i as i64 * 10, *exit)
            })
            .collect();
        let state = PodRuntimeState {
            sandboxes: case.sandboxes,
            containers: records,
        };
        let mut probe_results = ProbeResults::default();
        for (kind, id, result) in case.probes {
            probe_results.set(kind, id, result);
        }
        let backoff = ContainerBackoff::default();
        let context = ActionsContext {
            now: at(1000),
            probe_results: &probe_results,
            backoff: &backoff,
        };
        let actions = compute_pod_actions(&case.pod, &state, &context);
        assert_eq!(summary(&actions), case.expected, "{}", case.name);
    }

    use ContainerRunState::{Created, Exited, Running, Unknown};

    #[test]
    fn sandbox_and_regular_containers() {
        let two = || vec![container("a"), container("b")];
        let cases = vec![
            Case {
                name: "new pod",
                pod: pod("Always", vec![], two()),
                containers: vec![],
                sandboxes: vec![],
                probes: vec![],
                expected: expect(true, true, &[], &[0, 1], &[]),
            },
            Case {
                name: "new pod with init containers",
                pod: pod("Always", vec![container("i")], two()),
                containers: vec![],
                sandboxes: vec![],
                probes: vec![],
                expected: expect(true, true, &[0], &[], &[]),
            },
            Case {
                name: "all running",
                pod: pod("Always", vec![], two()),
                containers: vec![("c1", "a", Running, 0), ("c2", "b", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[], &[]),
            },
            Case {
                name: "Always restarts a success",
                pod: pod("Always", vec![], two()),
                containers: vec![("c1", "a", Exited, 0), ("c2", "b", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[0], &[]),
            },
            Case {
                name: "OnFailure keeps a success",
                pod: pod("OnFailure", vec![], two()),
                containers: vec![("c1", "a", Exited, 0), ("c2", "b", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[], &[]),
            },
            Case {
                name: "OnFailure restarts a failure",
                pod: pod("OnFailure", vec![], two()),
                containers: vec![("c1", "a", Exited, 1), ("c2", "b", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[0], &[]),
            },
            Case {
                name: "Never keeps a failure",
                pod: pod("Never", vec![], two()),
                containers: vec![("c1", "a", Exited, 1), ("c2", "b", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[], &[]),
            },
            Case {
                name: "Never, all done: stop the sandbox",
                pod: pod("Never", vec![], two()),
                containers: vec![("c1", "a", Exited, 1), ("c2", "b", Exited, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(true, false, &[], &[], &[]),
            },
            Case {
                name: "OnFailure, all succeeded: stop the sandbox",
                pod: pod("OnFailure", vec![], two()),
                containers: vec![("c1", "a", Exited, 0), ("c2", "b", Exited, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(true, false, &[], &[], &[]),
            },
            Case {
                name: "created but never started",
                pod: pod("Never", vec![], vec![container("a")]),
                containers: vec![("c1", "a", Created, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[0], &[]),
            },
            Case {
                name: "unknown state is killed before restart",
                pod: pod("Never", vec![], vec![container("a")]),
                containers: vec![("c1", "a", Unknown, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(
                    false,
                    false,
                    &[],
                    &[0],
                    &[(
                        "c1",
                        "Container is in \"unknown\" state, try killing it before restart",
                    )],
                ),
            },
            Case {
                name: "sandbox died: start over",
                pod: pod("Always", vec![], two()),
                containers: vec![("c1", "a", Exited, 137), ("c2", "b", Exited, 0)],
                sandboxes: vec![sandbox("sb", 0, SandboxState::NotReady, 0)],
                probes: vec![],
                expected: expect(true, true, &[], &[0, 1], &[]),
            },
            Case {
                name: "sandbox died, OnFailure skips successes",
                pod: pod("OnFailure", vec![], two()),
                containers: vec![("c1", "a", Exited, 137), ("c2", "b", Exited, 0)],
                sandboxes: vec![sandbox("sb", 0, SandboxState::NotReady, 0)],
                probes: vec![],
                expected: expect(true, true, &[], &[0], &[]),
            },
            Case {
                name: "sandbox died, OnFailure all succeeded",
                pod: pod("OnFailure", vec![], two()),
                containers: vec![("c1", "a", Exited, 0), ("c2", "b", Exited, 0)],
                sandboxes: vec![sandbox("sb", 0, SandboxState::NotReady, 0)],
                probes: vec![],
                expected: expect(true, false, &[], &[], &[]),
            },
            Case {
                name: "sandbox died, Never after a run",
                pod: pod("Never", vec![], two()),
                containers: vec![("c1", "a", Exited, 137)],
                sandboxes: vec![sandbox("sb", 0, SandboxState::NotReady, 0)],
                probes: vec![],
                expected: expect(true, false, &[], &[], &[]),
            },
            Case {
                name: "liveness failure restarts",
                pod: pod("Always", vec![], vec![container("a")]),
                containers: vec![("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Liveness, "c1", ProbeResult::Failure)],
                expected: expect(
                    false,
                    false,
                    &[],
                    &[0],
                    &[("c1", "Container a failed liveness probe, will be restarted")],
                ),
            },
            Case {
                name: "startup failure restarts",
                pod: pod("OnFailure", vec![], vec![container("a")]),
                containers: vec![("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Startup, "c1", ProbeResult::Failure)],
                expected: expect(
                    false,
                    false,
                    &[],
                    &[0],
                    &[("c1", "Container a failed startup probe, will be restarted")],
                ),
            },
            Case {
                name: "liveness failure under Never only kills",
                pod: pod("Never", vec![], vec![container("a"), container("b")]),
                containers: vec![("c1", "a", Running, 0), ("c2", "b", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Liveness, "c1", ProbeResult::Failure)],
                expected: expect(
                    false,
                    false,
                    &[],
                    &[],
                    &[("c1", "Container a failed liveness probe")],
                ),
            },
            Case {
                name: "liveness failure of the last container under Never kills the pod",
                pod: pod("Never", vec![], vec![container("a")]),
                containers: vec![("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Liveness, "c1", ProbeResult::Failure)],
                expected: expect(true, false, &[], &[], &[("c1", "Stopping container a")]),
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn init_containers_and_sidecars() {
        let inits = || vec![container("i0"), container("i1")];
        let app = || vec![container("a")];
        let with_startup = |c: Container| Container {
            startup_probe: Some(Probe::default()),
            ..c
        };
        let cases = vec![
            Case {
                name: "first init running: wait",
                pod: pod("Always", inits(), app()),
                containers: vec![("x0", "i0", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[], &[]),
            },
            Case {
                name: "first init done: next",
                pod: pod("Always", inits(), app()),
                containers: vec![("x0", "i0", Exited, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[1], &[], &[]),
            },
            Case {
                name: "all init done: app containers",
                pod: pod("Always", inits(), app()),
                containers: vec![("x0", "i0", Exited, 0), ("x1", "i1", Exited, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[0], &[]),
            },
            Case {
                name: "init failed, OnFailure: retry it",
                pod: pod("OnFailure", inits(), app()),
                containers: vec![("x0", "i0", Exited, 0), ("x1", "i1", Exited, 2)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[1], &[], &[]),
            },
            Case {
                name: "init failed, Always: retry it",
                pod: pod("Always", inits(), app()),
                containers: vec![("x0", "i0", Exited, 1)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[0], &[], &[]),
            },
            Case {
                name: "init failed, Never: the pod fails",
                pod: pod("Never", inits(), app()),
                containers: vec![("x0", "i0", Exited, 0), ("x1", "i1", Exited, 2)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(true, false, &[], &[], &[]),
            },
            Case {
                name: "init unknown, OnFailure: kill and retry",
                pod: pod("OnFailure", inits(), app()),
                containers: vec![("x0", "i0", Unknown, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(
                    false,
                    false,
                    &[0],
                    &[],
                    &[(
                        "x0",
                        "Init container is in \"unknown\" state, try killing it before restart",
                    )],
                ),
            },
            Case {
                name: "app running proves initialization",
                pod: pod("Always", inits(), app()),
                containers: vec![("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[], &[]),
            },
            Case {
                name: "sidecar started, next init starts",
                pod: pod("Always", vec![sidecar("s"), container("i1")], app()),
                containers: vec![("s1", "s", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[1], &[], &[]),
            },
            Case {
                name: "sidecar last: app containers start",
                pod: pod("Always", vec![container("i0"), sidecar("s")], app()),
                containers: vec![("x0", "i0", Exited, 0), ("s1", "s", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[0], &[]),
            },
            Case {
                name: "sidecar startup probe pending: wait",
                pod: pod(
                    "Always",
                    vec![with_startup(sidecar("s")), container("i1")],
                    app(),
                ),
                containers: vec![("s1", "s", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[], &[], &[]),
            },
            Case {
                name: "sidecar startup probe passed: next",
                pod: pod(
                    "Always",
                    vec![with_startup(sidecar("s")), container("i1")],
                    app(),
                ),
                containers: vec![("s1", "s", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Startup, "s1", ProbeResult::Success)],
                expected: expect(false, false, &[1], &[], &[]),
            },
            Case {
                name: "sidecar startup probe failed: restart it",
                pod: pod(
                    "Always",
                    vec![with_startup(sidecar("s")), container("i1")],
                    app(),
                ),
                containers: vec![("s1", "s", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Startup, "s1", ProbeResult::Failure)],
                expected: expect(
                    false,
                    false,
                    &[0],
                    &[],
                    &[("s1", "Init container s failed startup probe")],
                ),
            },
            Case {
                name: "sidecar exited while app runs: restart only it",
                pod: pod("Never", vec![sidecar("s")], app()),
                containers: vec![("s1", "s", Exited, 1), ("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[0], &[], &[]),
            },
            Case {
                name: "sidecar gone while app runs: start it",
                pod: pod("Always", vec![sidecar("s")], app()),
                containers: vec![("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(false, false, &[0], &[], &[]),
            },
            Case {
                name: "sidecar liveness failure",
                pod: pod(
                    "Always",
                    vec![Container {
                        liveness_probe: Some(Probe::default()),
                        ..sidecar("s")
                    }],
                    app(),
                ),
                containers: vec![("s1", "s", Running, 0), ("c1", "a", Running, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![(ProbeKind::Liveness, "s1", ProbeResult::Failure)],
                expected: expect(
                    false,
                    false,
                    &[0],
                    &[],
                    &[("s1", "Init container s failed liveness probe")],
                ),
            },
            Case {
                name: "app done under Never: sidecars do not keep the pod",
                pod: pod("Never", vec![sidecar("s")], app()),
                containers: vec![("s1", "s", Running, 0), ("c1", "a", Exited, 0)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(true, false, &[], &[], &[("s1", "Stopping container s")]),
            },
            Case {
                name: "init OOMKilled counts as failed",
                pod: pod("Never", inits(), app()),
                containers: vec![("x0", "i0", Exited, 137)],
                sandboxes: ready_sandbox(),
                probes: vec![],
                expected: expect(true, false, &[], &[], &[]),
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn spec_change_kills_and_recreates_whatever_the_policy() {
        let original = pod("Never", vec![], vec![container("a")]);
        let mut updated = original.clone();
        updated.spec.as_mut().unwrap().containers[0].image = Some("a:2".into());
        let state = PodRuntimeState {
            sandboxes: ready_sandbox(),
            containers: vec![instance(&original, "c1", "a", Running, 10, 0)],
        };
        let results = ProbeResults::default();
        let backoff = ContainerBackoff::default();
        let context = ActionsContext {
            now: at(100),
            probe_results: &results,
            backoff: &backoff,
        };
        let actions = compute_pod_actions(&updated, &state, &context);
        assert_eq!(
            summary(&actions),
            expect(
                false,
                false,
                &[],
                &[0],
                &[("c1", "Container a definition changed, will be restarted")]
            )
        );
        assert_eq!(actions.containers_to_start[0].restart_count, 1);
        assert_eq!(actions.containers_to_kill[0].grace_period_seconds, 30);
    }

    #[test]
    fn deleted_and_terminal_pods_are_stopped() {
        let mut deleted = pod(
            "Always",
            vec![sidecar("s1"), sidecar("s2")],
            vec![container("a"), container("b")],
        );
        deleted.metadata.deletion_timestamp = Some(Time(at(50)));
        deleted.metadata.deletion_grace_period_seconds = Some(10);
        let mut terminal = pod("Never", vec![], vec![container("a")]);
        terminal.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Failed".into()),
            ..Default::default()
        });
        let cases = [
            (deleted, vec!["a", "b", "s2", "s1"], 10),
            (terminal, vec!["a"], 30),
        ];
        for (pod, kill_order, grace) in cases {
            let state = PodRuntimeState {
                sandboxes: vec![
                    sandbox("old", 0, SandboxState::NotReady, 0),
                    sandbox("sb", 1, SandboxState::Ready, 5),
                ],
                containers: ["s1", "s2", "a", "b"]
                    .iter()
                    .filter(|n| spec::find_container(&pod, n).is_some())
                    .enumerate()
                    .map(|(i, n)| instance(&pod, &format!("id-{n}"), n, Running, 10 + i as i64, 0))
                    .collect(),
            };
            let results = ProbeResults::default();
            let backoff = ContainerBackoff::default();
            let context = ActionsContext {
                now: at(100),
                probe_results: &results,
                backoff: &backoff,
            };
            let actions = compute_pod_actions(&pod, &state, &context);
            assert!(actions.kill_pod && !actions.create_sandbox);
            assert_eq!(actions.sandboxes_to_stop, ["sb", "old"]);
            let names: Vec<&str> = actions
                .containers_to_kill
                .iter()
                .map(|k| k.name.as_str())
                .collect();
            assert_eq!(names, kill_order);
            assert!(
                actions
                    .containers_to_kill
                    .iter()
                    .all(|k| k.grace_period_seconds == grace)
            );
            assert!(
                actions.init_containers_to_start.is_empty()
                    && actions.containers_to_start.is_empty()
            );
        }
    }

    #[test]
    fn crash_loop_backoff_holds_restarts() {
        let the_pod = pod(
            "Always",
            vec![container("i")],
            vec![container("a"), container("b")],
        );
        let mut oom = instance(&the_pod, "c1", "a", Exited, 10, 137);
        oom.reason = "OOMKilled".into();
        oom.finished_at = Some(at(100));
        let mut b_exit = instance(&the_pod, "c2", "b", Exited, 11, 1);
        b_exit.finished_at = Some(at(50));
        let state = PodRuntimeState {
            sandboxes: ready_sandbox(),
            containers: vec![instance(&the_pod, "x", "i", Exited, 1, 0), oom, b_exit],
        };
        let results = ProbeResults::default();
        let mut backoff = ContainerBackoff::default();
        let key_a =
            BackoffKey::for_container(&the_pod, &the_pod.spec.as_ref().unwrap().containers[0]);
        let key_b =
            BackoffKey::for_container(&the_pod, &the_pod.spec.as_ref().unwrap().containers[1]);
        // Both were restarted before; a twice (delay 20s).
        backoff.next(&key_a, at(0), at(5));
        backoff.next(&key_a, at(8), at(20));
        backoff.next(&key_b, at(0), at(5));
        let context = ActionsContext {
            now: at(110),
            probe_results: &results,
            backoff: &backoff,
        };
        let actions = compute_pod_actions(&the_pod, &state, &context);
        assert_eq!(actions.backing_off.len(), 1);
        let wait = &actions.backing_off[0];
        assert_eq!(wait.name, "a");
        assert_eq!(
            wait.message,
            "back-off 20s restarting failed container=a pod=web_default(uid-1)"
        );
        assert_eq!(actions.waiting_reasons()[0].1.reason, "CrashLoopBackOff");
        let starts: Vec<&str> = actions
            .containers_to_start
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(starts, ["b"]);
        assert_eq!(
            actions.containers_to_start[0]
                .previous_exit
                .as_ref()
                .unwrap()
                .exited_at,
            at(50)
        );
        assert!(!actions.kill_pod);

        // Once the shell starts b, its delay doubles from the exit it follows.
        backoff.record_starts(&actions, at(110));
        assert_eq!(backoff.delay(&key_b), Duration::from_secs(20));
    }

    #[test]
    fn a_regular_init_container_in_backoff_holds_up_the_rest() {
        let the_pod = pod(
            "Always",
            vec![sidecar("s"), container("i")],
            vec![container("a")],
        );
        let mut failed = instance(&the_pod, "x", "i", Exited, 20, 1);
        failed.finished_at = Some(at(100));
        let mut sidecar_exit = instance(&the_pod, "s1", "s", Exited, 10, 1);
        sidecar_exit.finished_at = Some(at(100));
        let state = PodRuntimeState {
            sandboxes: ready_sandbox(),
            containers: vec![sidecar_exit, failed],
        };
        let results = ProbeResults::default();
        let mut backoff = ContainerBackoff::default();
        let init = spec::init_containers(&the_pod);
        backoff.next(
            &BackoffKey::for_container(&the_pod, &init[0]),
            at(0),
            at(95),
        );
        backoff.next(
            &BackoffKey::for_container(&the_pod, &init[1]),
            at(0),
            at(95),
        );
        let context = ActionsContext {
            now: at(105),
            probe_results: &results,
            backoff: &backoff,
        };
        let actions = compute_pod_actions(&the_pod, &state, &context);
        let waiting: Vec<&str> = actions
            .backing_off
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        assert_eq!(waiting, ["s", "i"]);
        assert!(actions.init_containers_to_start.is_empty());
    }

    #[test]
    fn dead_init_containers_are_pruned_or_purged() {
        let the_pod = pod("Always", vec![container("i")], vec![container("a")]);
        let records = vec![
            instance(&the_pod, "i-old", "i", Exited, 1, 1),
            instance(&the_pod, "i-mid", "i", Exited, 2, 1),
            instance(&the_pod, "i-new", "i", Exited, 3, 0),
            instance(&the_pod, "c1", "a", Running, 4, 0),
        ];
        let results = ProbeResults::default();
        let backoff = ContainerBackoff::default();
        let context = ActionsContext {
            now: at(100),
            probe_results: &results,
            backoff: &backoff,
        };
        let cases = [
            (SandboxState::Ready, vec!["i-mid", "i-old"]),
            (SandboxState::NotReady, vec!["i-new", "i-mid", "i-old"]),
        ];
        for (sandbox_state, removed) in cases {
            let state = PodRuntimeState {
                sandboxes: vec![sandbox("sb", 0, sandbox_state, 0)],
                containers: records.clone(),
            };
            let actions = compute_pod_actions(&the_pod, &state, &context);
            assert_eq!(actions.containers_to_remove, removed, "{sandbox_state:?}");
        }
    }

    #[test]
    fn init_container_failure_rules() {
        let with = |state: ContainerRunState, exit_code: i32, reason: &str| {
            let mut r = record("x", "i", state, 0);
            r.exit_code = exit_code;
            r.reason = reason.into();
            r
        };
        let cases = [
            (with(Exited, 0, "Completed"), false),
            (with(Exited, 1, "Error"), true),
            (with(Exited, 0, "OOMKilled"), true),
            (with(Running, 0, "OOMKilled"), true),
            (with(Unknown, 0, ""), true),
            (with(Running, 0, ""), false),
            (with(Created, 0, ""), false),
        ];
        for (record, failed) in cases {
            assert_eq!(is_init_container_failed(&record), failed, "{record:?}");
        }
    }

    #[test]
    fn grace_periods() {
        let mut with_probe = container("a");
        with_probe.liveness_probe = Some(Probe {
            termination_grace_period_seconds: Some(5),
            ..Default::default()
        });
        let base = pod("Always", vec![], vec![with_probe.clone()]);
        let mut deleting = base.clone();
        deleting.metadata.deletion_grace_period_seconds = Some(7);
        let mut no_grace = base.clone();
        no_grace
            .spec
            .as_mut()
            .unwrap()
            .termination_grace_period_seconds = None;
        let cases = [
            (&base, Some(KillReason::LivenessProbe), 5),
            (&base, Some(KillReason::StartupProbe), 30),
            (&base, None, 30),
            (&deleting, Some(KillReason::LivenessProbe), 7),
            (&no_grace, None, 2),
        ];
        for (pod, reason, expected) in cases {
            assert_eq!(
                termination_grace_period_seconds(pod, Some(&with_probe), reason),
                expected,
                "{reason:?}"
            );
        }
        let mut zero = base.clone();
        zero.spec.as_mut().unwrap().termination_grace_period_seconds = Some(0);
        assert_eq!(pod_termination_grace_period_seconds(&zero), 1);
        assert_eq!(pod_termination_grace_period_seconds(&deleting), 7);
    }
}
