//! The status a kubelet would report for a pod on a simulated node, and whether the pod's current status already says so: pure functions, no IO.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A pod with this annotation (e.g. `5s`, `1m30s`) and restartPolicy Never
/// or OnFailure succeeds that long after it started, like a Job's pod whose
/// containers exit 0.
pub const COMPLETE_AFTER_ANNOTATION: &str = "sim.krust.dev/complete-after";

/// Where a pod is in its life, as far as the simulated kubelet is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Marked for deletion: remove it once the grace period ends at `at`.
    Terminating { at: Timestamp },
    /// Succeeded or Failed; nothing more happens until it is deleted.
    Finished,
    /// Should be running; `complete_at` when it is set to succeed later.
    Running { complete_at: Option<Timestamp> },
    /// Its containers have exited 0.
    Succeeded,
}

/// The phase a pod should be moved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Running,
    Succeeded,
}

pub fn lifecycle(pod: &Pod, now: Timestamp) -> Lifecycle {
    if let Some(deletion) = &pod.metadata.deletion_timestamp {
        return Lifecycle::Terminating { at: deletion.0 };
    }
    let status = pod.status.as_ref();
    if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return Lifecycle::Finished;
    }
    let Some(run_for) = complete_after(pod) else {
        return Lifecycle::Running { complete_at: None };
    };
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0);
    match started.checked_add(run_for) {
        Ok(at) if at > now => Lifecycle::Running {
            complete_at: Some(at),
        },
        _ => Lifecycle::Succeeded,
    }
}

/// How long the pod runs before it succeeds; `None` for pods that run until deleted.
fn complete_after(pod: &Pod) -> Option<Duration> {
    let spec = pod.spec.as_ref()?;
    if !matches!(spec.restart_policy.as_deref(), Some("Never" | "OnFailure")) {
        return None;
    }
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get(COMPLETE_AFTER_ANNOTATION)?;
    parse_duration(text)
}

/// Go-style durations with `ms`, `s`, `m` and `h` units (`1m30s`, `500ms`);
/// a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * unit).ok()?;
    }
    (!text.is_empty()).then_some(total)
}

/// Addresses and time the status is built from.
pub struct Placement<'a> {
    pub host_ip: Ipv4Addr,
    pub pod_ip: Ipv4Addr,
    pub now: &'a Time,
}

/// The status fields a kubelet owns, as they should be for `target`.
/// Timestamps already in the pod are kept wherever the state they date has
/// not changed, so the same pod always yields the same status.
pub fn desired_status(pod: &Pod, target: Target, placement: &Placement) -> PodStatus {
    let no_status = PodStatus::default();
    let current = pod.status.as_ref().unwrap_or(&no_status);
    let no_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&no_spec);
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let now = placement.now;
    let start_time = current.start_time.clone().unwrap_or_else(|| now.clone());

    let init_container_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|container| {
            let previous = find_status(&current.init_container_statuses, &container.name);
            let sidecar = container.restart_policy.as_deref() == Some("Always");
            if sidecar && target == Target::Running {
                running_status(uid, container, previous, now)
            } else {
                terminated_status(uid, container, previous, &start_time, true)
            }
        })
        .collect();
    let container_statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|container| {
            let previous = find_status(&current.container_statuses, &container.name);
            match target {
                Target::Running => running_status(uid, container, previous, now),
                Target::Succeeded => terminated_status(uid, container, previous, now, false),
            }
        })
        .collect();

    let mut conditions = current.conditions.clone().unwrap_or_default();
    let running = target == Target::Running;
    let (ready, ready_reason) = match target {
        Target::Succeeded => (false, Some("PodCompleted")),
        Target::Running => match missing_readiness_gate(pod, &conditions) {
            Some(_) => (false, Some("ReadinessGatesNotReady")),
            None => (true, None),
        },
    };
    let finished_reason = (!running).then_some("PodCompleted");
    set_condition(
        &mut conditions,
        "PodReadyToStartContainers",
        running,
        None,
        now,
    );
    set_condition(&mut conditions, "Initialized", true, finished_reason, now);
    set_condition(&mut conditions, "Ready", ready, ready_reason, now);
    set_condition(
        &mut conditions,
        "ContainersReady",
        running,
        finished_reason,
        now,
    );
    set_condition(&mut conditions, "PodScheduled", true, None, now);

    let host_ip = placement.host_ip.to_string();
    let pod_ip = placement.pod_ip.to_string();
    PodStatus {
        phase: Some(
            match target {
                Target::Running => "Running",
                Target::Succeeded => "Succeeded",
            }
            .to_string(),
        ),
        conditions: Some(conditions),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        start_time: Some(start_time),
        init_container_statuses: (!init_container_statuses.is_empty())
            .then_some(init_container_statuses),
        container_statuses: Some(container_statuses),
        ..PodStatus::default()
    }
}

/// Whether every status field the kubelet owns already is as `desired`.
pub fn is_current(pod: &Pod, desired: &PodStatus) -> bool {
    let Some(current) = &pod.status else {
        return false;
    };
    current.phase == desired.phase
        && current.pod_ip == desired.pod_ip
        && current.pod_ips == desired.pod_ips
        && current.host_ip == desired.host_ip
        && current.host_ips == desired.host_ips
        && current.start_time == desired.start_time
        && current.conditions == desired.conditions
        && current.container_statuses == desired.container_statuses
        && current.init_container_statuses == desired.init_container_statuses
}

/// The merge patch that sets the kubelet's status fields: only those
/// `desired` has, so qosClass and the rest stay as they are.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct StatusPatch {
    pub status: PodStatus,
}

/// The first readiness gate whose condition is not True.
fn missing_readiness_gate<'a>(pod: &'a Pod, conditions: &[PodCondition]) -> Option<&'a str> {
    let gates = pod.spec.as_ref()?.readiness_gates.as_ref()?;
    gates
        .iter()
        .map(|gate| gate.condition_type.as_str())
        .find(|gate| {
            !conditions
                .iter()
                .any(|c| c.type_ == *gate && c.status == "True")
        })
}

/// Sets a condition's status; an unchanged condition keeps its transition
/// time, reason and message, a changed one dates from now.
fn set_condition(
    conditions: &mut Vec<PodCondition>,
    type_: &str,
    status: bool,
    reason: Option<&str>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let fresh = PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        last_transition_time: Some(now.clone()),
        ..PodCondition::default()
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) if existing.status == status => {}
        Some(existing) => *existing = fresh,
        None => conditions.push(fresh),
    }
}

fn find_status<'a>(
    statuses: &'a Option<Vec<ContainerStatus>>,
    name: &str,
) -> Option<&'a ContainerStatus> {
    statuses.as_ref()?.iter().find(|s| s.name == name)
}

fn running_status(
    pod_uid: &str,
    container: &Container,
    previous: Option<&ContainerStatus>,
    now: &Time,
) -> ContainerStatus {
    let started_at = previous
        .and_then(|s| s.state.as_ref()?.running.as_ref()?.started_at.clone())
        .unwrap_or_else(|| now.clone());
    ContainerStatus {
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at),
            }),
            ..ContainerState::default()
        }),
        ready: true,
        started: Some(true),
        ..base_status(pod_uid, container)
    }
}

/// A container that exited 0. Init containers count as ready once done
/// (the kubelet reports them so); app containers of a finished pod do not.
fn terminated_status(
    pod_uid: &str,
    container: &Container,
    previous: Option<&ContainerStatus>,
    now: &Time,
    ready: bool,
) -> ContainerStatus {
    let base = base_status(pod_uid, container);
    let state = previous.and_then(|s| s.state.as_ref());
    let terminated =
        state
            .and_then(|s| s.terminated.clone())
            .unwrap_or_else(|| ContainerStateTerminated {
                container_id: base.container_id.clone(),
                exit_code: 0,
                reason: Some("Completed".to_string()),
                started_at: Some(
                    state
                        .and_then(|s| s.running.as_ref()?.started_at.clone())
                        .unwrap_or_else(|| now.clone()),
                ),
                finished_at: Some(now.clone()),
                ..ContainerStateTerminated::default()
            });
    ContainerStatus {
        state: Some(ContainerState {
            terminated: Some(terminated),
            ..ContainerState::default()
        }),
        ready,
        started: Some(false),
        ..base
    }
}

fn base_status(pod_uid: &str, container: &Container) -> ContainerStatus {
    let image = qualified_image(container.image.as_deref().unwrap_or_default());
    ContainerStatus {
        name: container.name.clone(),
        image_id: image_id(&image),
        image,
        container_id: Some(format!(
            "sim://{}",
            crate::digest::hex(&format!("{pod_uid}/{}", container.name), 64)
        )),
        restart_count: 0,
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

/// The image reference as containerd reports it: `nginx` is
/// `docker.io/library/nginx:latest`.
pub fn qualified_image(image: &str) -> String {
    if image.is_empty() {
        return String::new();
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut qualified = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = qualified.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(digest) => {
            qualified.push('@');
            qualified.push_str(digest);
        }
        None if !last.contains(':') => qualified.push_str(":latest"),
        None => {}
    }
    qualified
}

/// `repository@sha256:…`: the image's own digest when it names one, else a
/// stable made-up one.
fn image_id(qualified: &str) -> String {
    if qualified.contains('@') {
        return qualified.to_string();
    }
    let repository = match qualified.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => qualified,
    };
    format!("{repository}@sha256:{}", crate::digest::hex(qualified, 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).expect("valid"))
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("sim-node-0".into()),
                init_containers: Some(vec![
                    Container {
                        name: "setup".into(),
                        image: Some("busybox".into()),
                        ..Container::default()
                    },
                    Container {
                        name: "proxy".into(),
                        image: Some("envoyproxy/envoy:v1.30".into()),
                        restart_policy: Some("Always".into()),
                        ..Container::default()
                    },
                ]),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("registry.k8s.io/pause:3.10".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some("BestEffort".into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(at(100)),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    fn placement(now: &Time) -> Placement<'_> {
        Placement {
            host_ip: Ipv4Addr::new(172, 16, 0, 1),
            pod_ip: Ipv4Addr::new(10, 244, 0, 2),
            now,
        }
    }

    fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn a_bound_pod_becomes_running_and_ready() {
        let pod = pod();
        let now = at(200);
        let status = desired_status(&pod, Target::Running, &placement(&now));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(status.host_ip.as_deref(), Some("172.16.0.1"));
        assert_eq!(status.start_time, Some(now.clone()));
        for type_ in [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
        ] {
            let c = condition(&status, type_);
            assert_eq!(
                (c.status.as_str(), c.last_transition_time.as_ref()),
                ("True", Some(&now)),
                "{type_}"
            );
        }
        assert_eq!(
            condition(&status, "PodScheduled").last_transition_time,
            Some(at(100)),
            "kept"
        );
        let app = &status.container_statuses.as_ref().expect("set")[0];
        assert!(app.ready && app.started == Some(true));
        assert_eq!(app.image, "registry.k8s.io/pause:3.10");
        assert!(app.image_id.starts_with("registry.k8s.io/pause@sha256:"));
        assert!(
            app.container_id
                .as_deref()
                .is_some_and(|id| id.starts_with("sim://"))
        );
        let init = status.init_container_statuses.as_ref().expect("set");
        let setup = init[0]
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!(
            (setup.exit_code, setup.reason.as_deref()),
            (0, Some("Completed"))
        );
        assert!(
            init[1].state.as_ref().is_some_and(|s| s.running.is_some()),
            "sidecars keep running"
        );
        assert!(status.qos_class.is_none(), "qosClass is left as it is");
    }

    #[test]
    fn a_pod_already_running_needs_no_write() {
        let mut pod = pod();
        let first = desired_status(&pod, Target::Running, &placement(&at(200)));
        assert!(!is_current(&pod, &first));
        let mut applied = first.clone();
        applied.qos_class = Some("BestEffort".into());
        pod.status = Some(applied);
        let later = desired_status(&pod, Target::Running, &placement(&at(500)));
        assert_eq!(later, first, "timestamps are kept");
        assert!(is_current(&pod, &later));
    }

    #[test]
    fn the_patch_carries_only_kubelet_fields() {
        let pod = pod();
        let now = at(200);
        let status = desired_status(&pod, Target::Running, &placement(&now));
        let patch = serde_json::to_value(StatusPatch { status }).expect("serializes");
        let status = patch["status"].as_object().expect("object");
        assert!(!status.contains_key("qosClass"));
        assert_eq!(
            patch["status"]["podIPs"],
            serde_json::json!([{"ip": "10.244.0.2"}])
        );
        assert_eq!(patch["status"]["startTime"], "1970-01-01T00:03:20Z");
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let mut pod = pod();
        if let Some(spec) = pod.spec.as_mut() {
            spec.readiness_gates = Some(vec![PodReadinessGate {
                condition_type: "example.com/lb".into(),
            }]);
        }
        let status = desired_status(&pod, Target::Running, &placement(&at(200)));
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ReadinessGatesNotReady"))
        );
        assert_eq!(condition(&status, "ContainersReady").status, "True");
    }

    #[test]
    fn completion_follows_the_annotation_for_pods_that_do_not_restart() {
        let mut pod = pod();
        let now = Timestamp::from_second(1_000).expect("valid");
        pod.metadata.annotations =
            Some([(COMPLETE_AFTER_ANNOTATION.to_string(), "5s".to_string())].into());
        assert_eq!(
            lifecycle(&pod, now),
            Lifecycle::Running { complete_at: None },
            "restartPolicy Always"
        );
        if let Some(spec) = pod.spec.as_mut() {
            spec.restart_policy = Some("Never".into());
        }
        assert_eq!(
            lifecycle(&pod, now),
            Lifecycle::Running {
                complete_at: Some(Timestamp::from_second(1_005).expect("valid"))
            }
        );
        if let Some(status) = pod.status.as_mut() {
            status.start_time = Some(at(990));
        }
        assert_eq!(lifecycle(&pod, now), Lifecycle::Succeeded);

        let status = desired_status(&pod, Target::Succeeded, &placement(&at(1_000)));
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        let app = &status.container_statuses.as_ref().expect("set")[0];
        assert!(!app.ready);
        let terminated = app
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!(terminated.reason.as_deref(), Some("Completed"));
        assert_eq!(
            condition(&status, "Ready").reason.as_deref(),
            Some("PodCompleted")
        );
        assert_eq!(
            condition(&status, "PodReadyToStartContainers").status,
            "False"
        );
    }

    #[test]
    fn deletion_and_finished_phases() {
        let mut pod = pod();
        pod.metadata.deletion_timestamp = Some(at(300));
        let now = Timestamp::from_second(200).expect("valid");
        assert_eq!(
            lifecycle(&pod, now),
            Lifecycle::Terminating { at: at(300).0 }
        );
        pod.metadata.deletion_timestamp = None;
        if let Some(status) = pod.status.as_mut() {
            status.phase = Some("Failed".into());
        }
        assert_eq!(lifecycle(&pod, now), Lifecycle::Finished);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn images_are_qualified_like_containerd_reports_them() {
        assert_eq!(qualified_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            qualified_image("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            qualified_image("bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
        assert_eq!(
            qualified_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(qualified_image("quay.io/a/b:v1"), "quay.io/a/b:v1");
        let pinned = format!("nginx@sha256:{}", "a".repeat(64));
        assert_eq!(
            qualified_image(&pinned),
            format!("docker.io/library/{pinned}")
        );
        assert_eq!(
            image_id(&qualified_image(&pinned)),
            qualified_image(&pinned)
        );
        assert!(image_id("localhost:5000/app:latest").starts_with("localhost:5000/app@sha256:"));
    }
}
