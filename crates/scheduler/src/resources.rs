//! Resource amounts as integers: pod requests computed like upstream (containers, sidecars, init containers, overhead) and node allocatable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::Amount;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// The cpu scoring assumes for a container that requests none (upstream's
/// `DefaultMilliCPURequest`), so empty pods do not all pile onto one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory scoring assumes for a container that requests none (200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of every resource the scheduler accounts, as integers: cpu in
/// millicores, memory and storage in bytes, pods as a count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pods: i64,
    /// Extended and other scalar resources (`example.com/gpu`,
    /// `hugepages-2Mi`), sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    /// The amounts of a `ResourceList` (node allocatable, pod overhead).
    /// An unparsable quantity counts as zero: the API server validates them.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut resources = Resources::default();
        for (name, quantity) in list {
            let amount = Amount::parse(&quantity.0).unwrap_or_default();
            resources.add_amount(name, amount);
        }
        resources
    }

    fn add_amount(&mut self, name: &str, amount: Amount) {
        match name {
            CPU => self.milli_cpu += amount.milli_value(),
            MEMORY => self.memory += amount.value(),
            EPHEMERAL_STORAGE => self.ephemeral_storage += amount.value(),
            PODS => self.allowed_pods += amount.value(),
            _ if is_scalar_resource(name) => self.add_scalar(name, amount.value()),
            _ => {}
        }
    }

    /// The amount of one scalar resource, zero when absent.
    pub fn scalar(&self, name: &str) -> i64 {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1,
            Err(_) => 0,
        }
    }

    /// The amount of a resource by its API name (`cpu` in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pods,
            _ => self.scalar(name),
        }
    }

    fn add_scalar(&mut self, name: &str, value: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 += value,
            Err(i) => self.scalar.insert(i, (name.to_string(), value)),
        }
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pods += other.allowed_pods;
        for (name, value) in &other.scalar {
            self.add_scalar(name, *value);
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pods -= other.allowed_pods;
        for (name, value) in &other.scalar {
            self.add_scalar(name, -*value);
        }
    }
}

/// Whether upstream accounts `name` as a scalar resource: extended resources
/// (`example.com/gpu`), prefixed native ones (`kubernetes.io/...`), hugepages
/// and attachable volumes. Anything else without a domain is ignored.
pub fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("requests."))
}

/// What one pod asks of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub requests: Resources,
    /// cpu with 100m counted for each container that requests no cpu: what
    /// scoring spreads by (upstream's `NonZeroRequested`).
    pub non_zero_milli_cpu: i64,
    /// memory with 200Mi counted for each container that requests none.
    pub non_zero_memory: i64,
}

/// A pod's requests like upstream's `PodRequests`: the larger of (regular
/// containers + restartable init containers) and (each init container plus
/// the sidecars started before it), then the pod overhead on top.
pub fn pod_requests(pod: &Pod) -> PodRequests {
    let exact = aggregate(pod, false);
    let mut requests = Resources::default();
    for (name, amount) in &exact.0 {
        requests.add_amount(name, *amount);
    }
    let non_zero = aggregate(pod, true);
    PodRequests {
        requests,
        non_zero_milli_cpu: non_zero.get(CPU).milli_value(),
        non_zero_memory: non_zero.get(MEMORY).value(),
    }
}

/// A resource list with exact amounts; pods name few resources, so a vector
/// beats a map.
#[derive(Default)]
struct ResourceList<'a>(Vec<(&'a str, Amount)>);

impl<'a> ResourceList<'a> {
    fn get(&self, name: &str) -> Amount {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .unwrap_or_default()
    }

    fn slot(&mut self, name: &'a str) -> &mut Amount {
        let index = match self.0.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.0.push((name, Amount::ZERO));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }

    fn add_all(&mut self, other: &ResourceList<'a>) {
        for (name, amount) in &other.0 {
            let slot = self.slot(name);
            *slot = slot.saturating_add(*amount);
        }
    }

    fn max_all(&mut self, other: &ResourceList<'a>) {
        for (name, amount) in &other.0 {
            let slot = self.slot(name);
            if *amount > *slot {
                *slot = *amount;
            }
        }
    }

    fn add_quantities(&mut self, list: &'a BTreeMap<String, Quantity>) {
        for (name, quantity) in list {
            let slot = self.slot(name);
            *slot = slot.saturating_add(Amount::parse(&quantity.0).unwrap_or_default());
        }
    }
}

fn container_requests(container: &Container, non_missing: bool) -> ResourceList<'_> {
    let mut list = ResourceList::default();
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    if let Some(requests) = requests {
        list.add_quantities(requests);
    }
    if non_missing {
        // Only a request that is absent gets the default; an explicit zero
        // stays zero (upstream's applyNonMissing).
        let has = |name: &str| requests.is_some_and(|r| r.contains_key(name));
        if !has(CPU) {
            *list.slot(CPU) = Amount::from_milli(DEFAULT_MILLI_CPU_REQUEST);
        }
        if !has(MEMORY) {
            *list.slot(MEMORY) = Amount::from_units(DEFAULT_MEMORY_REQUEST);
        }
    }
    list
}

pub(crate) fn is_restartable_init_container(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

fn aggregate(pod: &Pod, non_missing: bool) -> ResourceList<'_> {
    let mut total = ResourceList::default();
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    for container in &spec.containers {
        total.add_all(&container_requests(container, non_missing));
    }
    // While init container i runs, the sidecars started before it run too.
    let mut sidecars = ResourceList::default();
    let mut init_peak = ResourceList::default();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container, non_missing);
        if is_restartable_init_container(container) {
            total.add_all(&requests);
            sidecars.add_all(&requests);
            init_peak.max_all(&sidecars);
        } else {
            let mut running = requests;
            running.add_all(&sidecars);
            init_peak.max_all(&running);
        }
    }
    total.max_all(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add_quantities(overhead);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap_or_default()
    }

    fn container(name: &str, requests: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": requests}})
    }

    #[test]
    fn sums_containers_and_takes_the_largest_init_container() {
        let p = pod(json!({
            "containers": [container("a", json!({"cpu": "100m", "memory": "1Gi"})), container("b", json!({"cpu": "200m"}))],
            "initContainers": [container("i", json!({"cpu": "1", "memory": "100Mi"}))],
        }));
        let r = pod_requests(&p);
        assert_eq!(r.requests.milli_cpu, 1000);
        assert_eq!(r.requests.memory, 1 << 30);
        // b requests no memory: 200Mi counted for scoring.
        assert_eq!(r.non_zero_memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
        assert_eq!(r.non_zero_milli_cpu, 1000);
    }

    #[test]
    fn sidecars_run_alongside_later_init_containers_and_the_app() {
        let p = pod(json!({
            "containers": [container("app", json!({"cpu": "500m"}))],
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
                container("migrate", json!({"cpu": "700m"})),
            ],
        }));
        // max(app 500m + sidecar 300m, migrate 700m + sidecar 300m) = 1000m
        assert_eq!(pod_requests(&p).requests.milli_cpu, 1000);
    }

    #[test]
    fn adds_overhead_and_keeps_extended_resources() {
        let p = pod(json!({
            "containers": [container("a", json!({"cpu": "1", "example.com/gpu": "2", "hugepages-2Mi": "4Mi", "ephemeral-storage": "1Gi", "unknown": "5"}))],
            "overhead": {"cpu": "250m", "memory": "64Mi"},
        }));
        let r = pod_requests(&p).requests;
        assert_eq!(r.milli_cpu, 1250);
        assert_eq!(r.memory, 64 << 20);
        assert_eq!(r.ephemeral_storage, 1 << 30);
        assert_eq!(r.scalar("example.com/gpu"), 2);
        assert_eq!(r.scalar("hugepages-2Mi"), 4 << 20);
        assert_eq!(r.scalar("unknown"), 0);
    }

    #[test]
    fn explicit_zero_requests_get_no_default() {
        let p = pod(json!({"containers": [container("a", json!({"cpu": "0"})), {"name": "b"}]}));
        let r = pod_requests(&p);
        assert_eq!(r.requests.milli_cpu, 0);
        assert_eq!(r.non_zero_milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.non_zero_memory, 2 * DEFAULT_MEMORY_REQUEST);
    }
}
