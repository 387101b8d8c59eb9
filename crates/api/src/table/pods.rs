//! The pod table: READY, the STATUS reason (Init:…, CrashLoopBackOff, Terminating, …) and RESTARTS with the last restart's age.

use serde_json::{Value, json};

use super::fields::{at, flag, int, list, name, opt_text, text};
use super::time::Instant;
use super::{AGE, Clock, Column, NAME, Printer, column, wide};

pub(super) const PODS: Printer = Printer {
    conditions: Some(pod_row_conditions),
    ..Printer::new(POD_COLUMNS, pod_cells)
};

const POD_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    column(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    column(
        "Restarts",
        "string",
        "How many times the pod's containers have restarted, and how long ago the last restart was.",
    ),
    AGE,
    wide("IP", "string", "The pod's primary IP address."),
    wide("Node", "string", "The node the pod is bound to."),
    wide(
        "Nominated Node",
        "string",
        "The node the scheduler nominated while preempting other pods for this one.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "How many of the pod's readiness gates are satisfied.",
    ),
];

/// The STATUS column of `kubectl get pods` for a v1 Pod: the phase, refined
/// by init-container progress, container waiting/terminated reasons, and
/// deletion in progress.
pub fn pod_status_reason(pod: &Value) -> String {
    summarize(pod).reason
}

struct PodSummary {
    ready: i64,
    total: i64,
    reason: String,
    restarts: i64,
    last_restart: Option<Instant>,
}

/// Init containers with `restartPolicy: Always` are sidecars: they count
/// towards READY and keep running next to the app containers.
fn is_sidecar(container_spec: Option<&Value>) -> bool {
    container_spec.is_some_and(|spec| text(spec, &["restartPolicy"]) == "Always")
}

fn keep_latest(latest: &mut Option<Instant>, candidate: Option<Instant>) {
    if candidate > *latest {
        *latest = candidate;
    }
}

fn last_termination(container_status: &Value) -> Option<Instant> {
    Instant::from_value(at(
        container_status,
        &["lastState", "terminated", "finishedAt"],
    ))
}

fn condition_is_true(pod: &Value, condition_type: &str) -> bool {
    list(pod, &["status", "conditions"])
        .iter()
        .find(|condition| text(condition, &["type"]) == condition_type)
        .is_some_and(|condition| text(condition, &["status"]) == "True")
}

/// `Signal:N` or `ExitCode:N` for a container that terminated without a reason.
fn termination_code(terminated: &Value) -> String {
    match int(terminated, &["signal"]) {
        0 => format!("ExitCode:{}", int(terminated, &["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

fn summarize(pod: &Value) -> PodSummary {
    let phase = text(pod, &["status", "phase"]);
    let mut reason = match text(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        status_reason => status_reason.to_string(),
    };
    let scheduling_gated = list(pod, &["status", "conditions"])
        .iter()
        .any(|condition| {
            text(condition, &["type"]) == "PodScheduled"
                && text(condition, &["reason"]) == "SchedulingGated"
        });
    if scheduling_gated {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = list(pod, &["spec", "initContainers"]);
    let init_spec_named = |wanted: &str| {
        init_specs
            .iter()
            .find(|spec| text(spec, &["name"]) == wanted)
    };
    let sidecar_count = init_specs
        .iter()
        .filter(|spec| is_sidecar(Some(spec)))
        .count();
    let total = (list(pod, &["spec", "containers"]).len() + sidecar_count) as i64;

    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart = None;
    let mut sidecar_restarts = 0;
    let mut sidecar_last_restart = None;
    let mut initializing = false;

    for (index, status) in list(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let restart_count = int(status, &["restartCount"]);
        restarts += restart_count;
        keep_latest(&mut last_restart, last_termination(status));
        let sidecar = is_sidecar(init_spec_named(text(status, &["name"])));
        if sidecar {
            sidecar_restarts += restart_count;
            keep_latest(&mut sidecar_last_restart, last_termination(status));
        }

        let terminated = at(status, &["state", "terminated"]);
        let waiting_reason = opt_text(status, &["state", "waiting", "reason"]).unwrap_or("");
        if terminated.is_some_and(|terminated| int(terminated, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && flag(status, &["started"]) == Some(true) {
            if flag(status, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(terminated) = terminated {
            match text(terminated, &["reason"]) {
                "" => format!("Init:{}", termination_code(terminated)),
                terminated_reason => format!("Init:{terminated_reason}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{index}/{}", init_specs.len())
        };
        // The first init container still in the way decides the status.
        initializing = true;
        break;
    }

    if !initializing || condition_is_true(pod, "Initialized") {
        // Once initialised, only sidecars' restarts still matter among init containers.
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        // Walking backwards lets the first container's reason win.
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(status, &["restartCount"]);
            keep_latest(&mut last_restart, last_termination(status));
            let waiting_reason = opt_text(status, &["state", "waiting", "reason"]).unwrap_or("");
            let terminated = at(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(terminated) = terminated {
                reason = match text(terminated, &["reason"]) {
                    "" => termination_code(terminated),
                    terminated_reason => terminated_reason.to_string(),
                };
            } else if flag(status, &["ready"]) == Some(true)
                && at(status, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_is_true(pod, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if at(pod, &["metadata", "deletionTimestamp"]).is_some() {
        if text(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

fn or_none(value: &str) -> String {
    if value.is_empty() {
        "<none>".to_string()
    } else {
        value.to_string()
    }
}

fn pod_cells(pod: &Value, clock: &Clock) -> Vec<Value> {
    let summary = summarize(pod);
    let restarts = match summary.last_restart {
        Some(last) if summary.restarts != 0 => format!(
            "{} ({} ago)",
            summary.restarts,
            super::time::human_duration_nanos(clock.now.0 - last.0)
        ),
        _ => summary.restarts.to_string(),
    };

    // v1 keeps the primary IP in both fields; podIPs wins when both are set.
    let pod_ip = list(pod, &["status", "podIPs"])
        .first()
        .map(|entry| text(entry, &["ip"]))
        .unwrap_or_else(|| text(pod, &["status", "podIP"]));

    let gates = list(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = list(pod, &["status", "conditions"]);
        let satisfied = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, &["conditionType"]);
                conditions
                    .iter()
                    .find(|condition| text(condition, &["type"]) == wanted)
                    .is_some_and(|condition| text(condition, &["status"]) == "True")
            })
            .count();
        format!("{satisfied}/{}", gates.len())
    };

    vec![
        name(pod).into(),
        format!("{}/{}", summary.ready, summary.total).into(),
        summary.reason.into(),
        restarts.into(),
        clock.age(pod).into(),
        or_none(pod_ip).into(),
        or_none(text(pod, &["spec", "nodeName"])).into(),
        or_none(text(pod, &["status", "nominatedNodeName"])).into(),
        readiness_gates.into(),
    ]
}

/// Finished pods are flagged so clients can tell them apart from live ones.
fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}
