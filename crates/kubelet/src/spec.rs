//! Reading a Pod's spec and metadata the way the kubelet does: restart policy, sidecars, full names, the container spec hash, and Go's duration text.

use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

/// The pod-level restart policy; anything but OnFailure and Never behaves as
/// Always inside the kubelet (upstream compares against those two only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Which list of the pod spec a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerKind {
    Init,
    Regular,
}

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

pub fn restart_policy(pod: &Pod) -> RestartPolicy {
    match pod
        .spec
        .as_ref()
        .and_then(|spec| spec.restart_policy.as_deref())
    {
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        _ => RestartPolicy::Always,
    }
}

/// Whether a failed container may run again: every policy but Never.
pub fn should_restart_on_failure(pod: &Pod) -> bool {
    restart_policy(pod) != RestartPolicy::Never
}

/// A sidecar: an init container whose own restartPolicy is Always.
pub fn is_restartable_init_container(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

pub fn containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .map(|spec| spec.containers.as_slice())
        .unwrap_or_default()
}

pub fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.init_containers.as_deref())
        .unwrap_or_default()
}

/// The spec of a regular or init container by name.
pub fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(ContainerKind, &'a Container)> {
    containers(pod)
        .iter()
        .find(|c| c.name == name)
        .map(|c| (ContainerKind::Regular, c))
        .or_else(|| {
            init_containers(pod)
                .iter()
                .find(|c| c.name == name)
                .map(|c| (ContainerKind::Init, c))
        })
}

pub fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or_default()
}

pub fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `name_namespace(uid)`, the form upstream's `format.Pod` puts in messages.
pub fn pod_full_name(pod: &Pod) -> String {
    format!("{}_{}({})", pod_name(pod), pod_namespace(pod), pod_uid(pod))
}

pub fn is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.host_network)
        .unwrap_or(false)
}

pub fn is_being_deleted(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
}

pub fn is_terminal_phase(phase: Option<&str>) -> bool {
    matches!(phase, Some(PHASE_SUCCEEDED) | Some(PHASE_FAILED))
}

/// The hash the kubelet stamps on a container it creates, to notice later
/// that the spec it runs from has changed. Like upstream, only the name and
/// the image count: those are the fields a running pod may have mutated
/// underneath it. The bits differ from upstream's (they never leave the node).
pub fn container_spec_hash(container: &Container) -> u64 {
    let fields = serde_json::json!({
        "image": container.image.as_deref().unwrap_or_default(),
        "name": container.name,
    });
    u64::from(fnv1a_32(fields.to_string().as_bytes()))
}

fn fnv1a_32(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Go's `time.Duration.String()`: "10s", "1m20s", "5m0s", "1h0m0s",
/// "1.5s", "250ms". Upstream messages print durations this way.
pub fn format_go_duration(duration: Duration) -> String {
    let total_nanos = duration.as_nanos();
    if total_nanos == 0 {
        return "0s".to_string();
    }
    if total_nanos < 1_000_000_000 {
        let (unit_nanos, unit) = if total_nanos < 1_000 {
            (1, "ns")
        } else if total_nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", decimal_with_fraction(total_nanos, unit_nanos));
    }
    let total_seconds = total_nanos / 1_000_000_000;
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds_nanos = total_nanos % 60_000_000_000;
    let mut text = String::new();
    if hours > 0 {
        let _ = write!(text, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(text, "{minutes}m");
    }
    let _ = write!(
        text,
        "{}s",
        decimal_with_fraction(seconds_nanos, 1_000_000_000)
    );
    text
}

/// `value / unit` with the remainder as a fraction and no trailing zeros.
fn decimal_with_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let remainder = value % unit;
    if remainder == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let fraction = format!("{remainder:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    #[test]
    fn go_duration_text() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(40), "40s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(160), "2m40s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(42), "42ns"),
            (Duration::from_nanos(2_500), "2.5µs"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_go_duration(*duration), *text, "{duration:?}");
        }
    }

    #[test]
    fn restart_policy_defaults_to_always() {
        let cases: &[(Option<&str>, RestartPolicy)] = &[
            (None, RestartPolicy::Always),
            (Some(""), RestartPolicy::Always),
            (Some("Always"), RestartPolicy::Always),
            (Some("OnFailure"), RestartPolicy::OnFailure),
            (Some("Never"), RestartPolicy::Never),
        ];
        for (policy, expected) in cases {
            let pod = Pod {
                spec: Some(PodSpec {
                    restart_policy: policy.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(restart_policy(&pod), *expected, "{policy:?}");
        }
    }

    #[test]
    fn spec_hash_follows_name_and_image_only() {
        let base = Container {
            name: "app".into(),
            image: Some("nginx:1".into()),
            ..Default::default()
        };
        let other_image = Container {
            image: Some("nginx:2".into()),
            ..base.clone()
        };
        let other_args = Container {
            args: Some(vec!["-v".into()]),
            ..base.clone()
        };
        assert_ne!(
            container_spec_hash(&base),
            container_spec_hash(&other_image)
        );
        assert_eq!(container_spec_hash(&base), container_spec_hash(&other_args));
    }

    #[test]
    fn full_name_is_name_namespace_uid() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some("u-1".into());
        assert_eq!(pod_full_name(&pod), "web_default(u-1)");
    }
}
