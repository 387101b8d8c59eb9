//! Container resources as the kubelet hands them to the runtime: QoS class, CPU shares and CFS quota, memory limit, OOM score adjustment, and the QoS and pod cgroup names.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::Quantity;
use crate::spec;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// Kernel bounds of cpu.shares.
pub const MIN_SHARES: i64 = 2;
pub const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
const MILLI_CPU_PER_CPU: i64 = 1000;
/// The CFS period the kubelet uses, in microseconds (100 ms).
pub const QUOTA_PERIOD_MICROS: i64 = 100_000;
/// The kernel refuses a quota under 1 ms.
pub const MIN_QUOTA_MICROS: i64 = 1000;

const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    pub fn parse(text: &str) -> Option<QosClass> {
        match text {
            "Guaranteed" => Some(QosClass::Guaranteed),
            "Burstable" => Some(QosClass::Burstable),
            "BestEffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quantity from a resource list; unparsable text counts as absent (the
/// API server refuses it before it gets here).
pub fn quantity_in(list: Option<&BTreeMap<String, ApiQuantity>>, name: &str) -> Option<Quantity> {
    list.and_then(|l| l.get(name))
        .and_then(|q| Quantity::from_api(q).ok())
}

pub fn requests(container: &Container) -> Option<&BTreeMap<String, ApiQuantity>> {
    container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
}

pub fn limits(container: &Container) -> Option<&BTreeMap<String, ApiQuantity>> {
    container.resources.as_ref().and_then(|r| r.limits.as_ref())
}

/// The QoS class the pod reports: the recorded one once set (it never
/// changes for a pod), otherwise computed.
pub fn pod_qos_class(pod: &Pod) -> QosClass {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .and_then(QosClass::parse)
        .unwrap_or_else(|| compute_pod_qos(pod))
}

/// Guaranteed when every container limits cpu and memory at its requests,
/// BestEffort when nothing requests or limits cpu or memory, Burstable
/// otherwise. Pod-level resources, when set, decide instead.
pub fn compute_pod_qos(pod: &Pod) -> QosClass {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let mut account = |resources: Option<&ResourceRequirements>| {
        let mut limited = (false, false);
        for (name, list, sums) in [
            (
                "requests",
                resources.and_then(|r| r.requests.as_ref()),
                &mut requests,
            ),
            (
                "limits",
                resources.and_then(|r| r.limits.as_ref()),
                &mut limits,
            ),
        ] {
            for resource in [CPU, MEMORY] {
                let Some(amount) = quantity_in(list, resource).filter(|q| q.is_positive()) else {
                    continue;
                };
                let sum = sums.entry(resource).or_default();
                *sum = sum.saturating_add(amount);
                if name == "limits" {
                    if resource == CPU {
                        limited.0 = true;
                    } else {
                        limited.1 = true;
                    }
                }
            }
        }
        if limited != (true, true) {
            guaranteed = false;
        }
    };
    match pod_level_resources(pod) {
        Some(resources) => account(Some(resources)),
        None => {
            for container in spec::containers(pod)
                .iter()
                .chain(spec::init_containers(pod))
            {
                account(container.resources.as_ref());
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    let requests_match_limits = requests
        .iter()
        .all(|(name, request)| limits.get(name) == Some(request));
    if guaranteed && requests_match_limits && requests.len() == limits.len() {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// Pod-level requests or limits on cpu or memory, which then decide QoS.
fn pod_level_resources(pod: &Pod) -> Option<&ResourceRequirements> {
    let resources = pod.spec.as_ref()?.resources.as_ref()?;
    let sets_compute = [resources.requests.as_ref(), resources.limits.as_ref()]
        .into_iter()
        .flatten()
        .any(|list| list.contains_key(CPU) || list.contains_key(MEMORY));
    sets_compute.then_some(resources)
}

/// Node-critical pods are the last to be OOM killed.
pub fn is_node_critical_pod(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.priority_class_name.as_deref() != Some("system-node-critical") {
        return false;
    }
    let annotations = pod.metadata.annotations.as_ref();
    let is_static = annotations
        .and_then(|a| a.get("kubernetes.io/config.source"))
        .is_some_and(|source| source != "api");
    let is_mirror = annotations.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    is_static || is_mirror || spec.priority.unwrap_or(0) >= SYSTEM_CRITICAL_PRIORITY
}

fn memory_request_bytes(container: &Container) -> i64 {
    quantity_in(requests(container), MEMORY).map_or(0, Quantity::value)
}

/// The container's oom_score_adj: -997 for Guaranteed (and node-critical)
/// pods, 1000 for BestEffort, and for Burstable the share of node memory
/// the container did not request, kept within [3, 999] so it always sits
/// between the other two classes.
pub fn container_oom_score_adjust(
    pod: &Pod,
    container: &Container,
    memory_capacity_bytes: i64,
) -> i64 {
    if is_node_critical_pod(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match pod_qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = memory_capacity_bytes.max(1);
    let unrequested_share = |request: i64| {
        1000 - i64::try_from(i128::from(request) * 1000 / i128::from(capacity)).unwrap_or(i64::MAX)
    };
    let mut adjust = unrequested_share(memory_request_bytes(container));
    let is_sidecar = spec::is_restartable_init_container(container)
        && spec::init_containers(pod)
            .iter()
            .any(|c| c.name == container.name);
    if is_sidecar {
        // A sidecar must not be killed before the app containers it serves.
        let smallest_app_request = spec::containers(pod)
            .iter()
            .map(memory_request_bytes)
            .min()
            .unwrap_or(0);
        adjust = adjust.min(unrequested_share(smallest_app_request));
    }
    let floor = 1000 + GUARANTEED_OOM_SCORE_ADJ;
    if adjust < floor {
        return floor;
    }
    if adjust == BEST_EFFORT_OOM_SCORE_ADJ {
        return adjust - 1;
    }
    adjust
}

/// cpu.shares for a cpu request in millicores: 1024 per cpu, at least 2.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        // Zero means "unset", which the kernel would read as 1024.
        return MIN_SHARES;
    }
    let shares = i64::try_from(
        i128::from(milli_cpu) * i128::from(SHARES_PER_CPU) / i128::from(MILLI_CPU_PER_CPU),
    )
    .unwrap_or(i64::MAX);
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// The CFS quota for a cpu limit over `period_micros`; 0 (no quota) when
/// there is no limit, at least 1 ms otherwise.
pub fn milli_cpu_to_quota(milli_cpu: i64, period_micros: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    let quota = i64::try_from(
        i128::from(milli_cpu) * i128::from(period_micros) / i128::from(MILLI_CPU_PER_CPU),
    )
    .unwrap_or(i64::MAX);
    quota.max(MIN_QUOTA_MICROS)
}

/// Node facts and kubelet settings the container resources depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceSettings {
    pub memory_capacity_bytes: i64,
    /// The kubelet's cpuCFSQuota (default true).
    pub cpu_cfs_quota: bool,
    pub cgroup_v2: bool,
    /// The kubelet's singleProcessOOMKill (default false): when false on
    /// cgroup v2, an OOM kills the whole container, not one process.
    pub single_process_oom_kill: bool,
}

impl ResourceSettings {
    pub fn new(memory_capacity_bytes: i64) -> ResourceSettings {
        ResourceSettings {
            memory_capacity_bytes,
            cpu_cfs_quota: true,
            cgroup_v2: true,
            single_process_oom_kill: false,
        }
    }
}

/// The CRI `LinuxContainerResources` fields the kubelet sets; a zero means
/// "leave unset" where the CRI reads it that way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxContainerResources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub oom_score_adj: i64,
    pub unified: BTreeMap<String, String>,
}

pub fn linux_container_resources(
    pod: &Pod,
    container: &Container,
    settings: &ResourceSettings,
) -> LinuxContainerResources {
    let cpu_request = quantity_in(requests(container), CPU);
    let cpu_limit_milli = quantity_in(limits(container), CPU).map_or(0, Quantity::milli_value);
    // A limit without a request stands for the request too, as the API
    // server defaults it for new pods.
    let shares_basis = match cpu_request {
        None if cpu_limit_milli != 0 => cpu_limit_milli,
        request => request.map_or(0, Quantity::milli_value),
    };
    let mut resources = LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(shares_basis),
        memory_limit_in_bytes: quantity_in(limits(container), MEMORY).map_or(0, Quantity::value),
        oom_score_adj: container_oom_score_adjust(pod, container, settings.memory_capacity_bytes),
        ..Default::default()
    };
    if settings.cpu_cfs_quota {
        resources.cpu_period = QUOTA_PERIOD_MICROS;
        resources.cpu_quota = milli_cpu_to_quota(cpu_limit_milli, QUOTA_PERIOD_MICROS);
    }
    if settings.cgroup_v2 && !settings.single_process_oom_kill {
        resources
            .unified
            .insert("memory.oom.group".to_string(), "1".to_string());
    }
    resources
}

/// A cgroup name as a list of components, rendered for either driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupName(pub Vec<String>);

impl CgroupName {
    /// The cgroupfs path: "/kubepods/burstable/pod<uid>".
    pub fn to_cgroupfs(&self) -> String {
        format!("/{}", self.0.join("/"))
    }

    /// The systemd slice path:
    /// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice",
    /// with dashes inside components turned into underscores.
    pub fn to_systemd(&self) -> String {
        if self.0.is_empty() {
            return "/".to_string();
        }
        let escaped: Vec<String> = self.0.iter().map(|part| part.replace('-', "_")).collect();
        let mut path = String::new();
        for depth in 1..=escaped.len() {
            path.push('/');
            path.push_str(&escaped[..depth].join("-"));
            path.push_str(".slice");
        }
        path
    }
}

/// The QoS-level parent: Guaranteed pods sit directly under kubepods.
pub fn qos_cgroup_name(qos: QosClass) -> CgroupName {
    let mut parts = vec!["kubepods".to_string()];
    match qos {
        QosClass::Guaranteed => {}
        QosClass::Burstable => parts.push("burstable".to_string()),
        QosClass::BestEffort => parts.push("besteffort".to_string()),
    }
    CgroupName(parts)
}

/// The pod's own cgroup, the parent of its containers' cgroups.
pub fn pod_cgroup_name(pod: &Pod) -> CgroupName {
    let mut name = qos_cgroup_name(pod_qos_class(pod));
    name.0.push(format!("pod{}", spec::pod_uid(pod)));
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    fn list(entries: &[(&str, &str)]) -> Option<BTreeMap<String, ApiQuantity>> {
        if entries.is_empty() {
            return None;
        }
        Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
                .collect(),
        )
    }

    fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: name.to_string(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: (!init.is_empty()).then_some(init),
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.uid = Some("1234-abcd".into());
        pod
    }

    #[test]
    fn qos_classes() {
        let full = [("cpu", "500m"), ("memory", "128Mi")];
        let cases: Vec<(&str, Pod, QosClass)> = vec![
            (
                "nothing set",
                pod(vec![container("a", &[], &[])], vec![]),
                QosClass::BestEffort,
            ),
            (
                "zero requests ignored",
                pod(vec![container("a", &[("cpu", "0")], &[])], vec![]),
                QosClass::BestEffort,
            ),
            (
                "only extended resources",
                pod(
                    vec![container(
                        "a",
                        &[("nvidia.com/gpu", "1")],
                        &[("nvidia.com/gpu", "1")],
                    )],
                    vec![],
                ),
                QosClass::BestEffort,
            ),
            (
                "limits equal requests",
                pod(vec![container("a", &full, &full)], vec![]),
                QosClass::Guaranteed,
            ),
            (
                "limits only, requests not defaulted",
                pod(vec![container("a", &[], &full)], vec![]),
                QosClass::Burstable,
            ),
            (
                "request below limit",
                pod(
                    vec![container(
                        "a",
                        &[("cpu", "250m"), ("memory", "128Mi")],
                        &full,
                    )],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                "memory limit missing",
                pod(
                    vec![container("a", &[("cpu", "500m")], &[("cpu", "500m")])],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                "one container best effort",
                pod(
                    vec![container("a", &full, &full), container("b", &[], &[])],
                    vec![],
                ),
                QosClass::Burstable,
            ),
            (
                "init container counts",
                pod(
                    vec![container("a", &full, &full)],
                    vec![container("i", &[("cpu", "100m")], &[])],
                ),
                QosClass::Burstable,
            ),
            (
                "equal in other units",
                pod(
                    vec![container(
                        "a",
                        &[("cpu", "0.5"), ("memory", "134217728")],
                        &full,
                    )],
                    vec![],
                ),
                QosClass::Guaranteed,
            ),
        ];
        for (name, pod, expected) in cases {
            assert_eq!(compute_pod_qos(&pod), expected, "{name}");
        }
    }

    #[test]
    fn recorded_and_pod_level_qos() {
        let mut recorded = pod(vec![container("a", &[], &[])], vec![]);
        recorded.status = Some(PodStatus {
            qos_class: Some("Burstable".into()),
            ..Default::default()
        });
        assert_eq!(pod_qos_class(&recorded), QosClass::Burstable);

        let mut pod_level = pod(vec![container("a", &[], &[])], vec![]);
        pod_level.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
            requests: list(&[("cpu", "1"), ("memory", "1Gi")]),
            limits: list(&[("cpu", "1"), ("memory", "1Gi")]),
            ..Default::default()
        });
        assert_eq!(compute_pod_qos(&pod_level), QosClass::Guaranteed);
    }

    #[test]
    fn cpu_shares_and_quota() {
        // milli, shares, quota
        let cases = [
            (0, 2, 0),
            (1, 2, 1000),
            (5, 5, 1000),
            (10, 10, 1000),
            (100, 102, 10_000),
            (250, 256, 25_000),
            (1000, 1024, 100_000),
            (1500, 1536, 150_000),
            (300_000, 262_144, 30_000_000),
        ];
        for (milli, shares, quota) in cases {
            assert_eq!(milli_cpu_to_shares(milli), shares, "shares of {milli}m");
            assert_eq!(
                milli_cpu_to_quota(milli, QUOTA_PERIOD_MICROS),
                quota,
                "quota of {milli}m"
            );
        }
    }

    #[test]
    fn oom_score_adjust_per_class() {
        const GIB: i64 = 1 << 30;
        let full = [("cpu", "1"), ("memory", "1Gi")];
        let mut critical = pod(vec![container("a", &[("memory", "1Gi")], &[])], vec![]);
        let critical_spec = critical.spec.as_mut().unwrap();
        critical_spec.priority_class_name = Some("system-node-critical".into());
        critical_spec.priority = Some(2_000_001_000);
        let mut sidecar = container("side", &[("memory", "100Mi")], &[]);
        sidecar.restart_policy = Some("Always".into());
        let with_sidecar = pod(
            vec![container("app", &[("memory", "4Gi")], &[])],
            vec![sidecar.clone()],
        );
        let cases: Vec<(&str, Pod, Container, i64)> = vec![
            (
                "guaranteed",
                pod(vec![container("a", &full, &full)], vec![]),
                container("a", &full, &full),
                -997,
            ),
            (
                "best effort",
                pod(vec![container("a", &[], &[])], vec![]),
                container("a", &[], &[]),
                1000,
            ),
            (
                "burstable quarter of memory",
                pod(vec![container("a", &[("memory", "4Gi")], &[])], vec![]),
                container("a", &[("memory", "4Gi")], &[]),
                750,
            ),
            (
                "burstable without memory request",
                pod(vec![container("a", &[("cpu", "1")], &[])], vec![]),
                container("a", &[("cpu", "1")], &[]),
                999,
            ),
            (
                "burstable asking for everything",
                pod(vec![container("a", &[("memory", "16Gi")], &[])], vec![]),
                container("a", &[("memory", "16Gi")], &[]),
                3,
            ),
            (
                "node critical",
                critical.clone(),
                container("a", &[("memory", "1Gi")], &[]),
                -997,
            ),
            ("sidecar not above its app", with_sidecar, sidecar, 750),
        ];
        for (name, pod, container, expected) in cases {
            assert_eq!(
                container_oom_score_adjust(&pod, &container, 16 * GIB),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn linux_resources_of_a_container() {
        let settings = ResourceSettings::new(8 << 30);
        let burstable = container(
            "a",
            &[("cpu", "250m"), ("memory", "64Mi")],
            &[("cpu", "500m"), ("memory", "128Mi")],
        );
        let resources =
            linux_container_resources(&pod(vec![burstable.clone()], vec![]), &burstable, &settings);
        assert_eq!(resources.cpu_shares, 256);
        assert_eq!(resources.cpu_quota, 50_000);
        assert_eq!(resources.cpu_period, 100_000);
        assert_eq!(resources.memory_limit_in_bytes, 128 << 20);
        assert_eq!(
            resources.oom_score_adj,
            1000 - (1000 * (64 << 20)) / (8 << 30)
        );
        assert_eq!(
            resources
                .unified
                .get("memory.oom.group")
                .map(String::as_str),
            Some("1")
        );

        let limit_only = container("b", &[], &[("cpu", "2")]);
        let resources = linux_container_resources(
            &pod(vec![limit_only.clone()], vec![]),
            &limit_only,
            &ResourceSettings {
                cpu_cfs_quota: false,
                single_process_oom_kill: true,
                ..settings
            },
        );
        assert_eq!(resources.cpu_shares, 2048);
        assert_eq!((resources.cpu_quota, resources.cpu_period), (0, 0));
        assert_eq!(resources.memory_limit_in_bytes, 0);
        assert!(resources.unified.is_empty());
    }

    #[test]
    fn cgroup_names() {
        let full = [("cpu", "1"), ("memory", "1Gi")];
        let cases = [
            (
                pod(vec![container("a", &full, &full)], vec![]),
                "/kubepods/pod1234-abcd",
                "/kubepods.slice/kubepods-pod1234_abcd.slice",
            ),
            (
                pod(vec![container("a", &[("cpu", "1")], &[])], vec![]),
                "/kubepods/burstable/pod1234-abcd",
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_abcd.slice",
            ),
            (
                pod(vec![container("a", &[], &[])], vec![]),
                "/kubepods/besteffort/pod1234-abcd",
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_abcd.slice",
            ),
        ];
        for (pod, cgroupfs, systemd) in cases {
            let name = pod_cgroup_name(&pod);
            assert_eq!(name.to_cgroupfs(), cgroupfs);
            assert_eq!(name.to_systemd(), systemd);
        }
        assert_eq!(
            qos_cgroup_name(QosClass::Burstable).to_cgroupfs(),
            "/kubepods/burstable"
        );
    }
}
