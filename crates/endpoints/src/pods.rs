//! What both endpoint controllers ask of a Service and its Pods: selection, readiness, addresses by family, named target ports, hostnames, and the last-change trigger time.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label marking the Endpoints and EndpointSlices of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Annotation with the time of the first change that led to this write.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Whether `service` gets endpoints from the controllers at all: it must have
/// a selector (a Service without one has hand-made Endpoints) and must not be
/// an ExternalName alias.
pub fn selector_of(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref()
}

/// Whether `labels` carry every pair of `selector` (a map selector, as
/// Services have).
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.and_then(|labels| labels.get(key)) == Some(value))
}

/// The Pods of `service`'s namespace its selector picks.
pub fn selected_pods<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a std::sync::Arc<Pod>>,
) -> Vec<std::sync::Arc<Pod>> {
    let Some(selector) = selector_of(service) else {
        return Vec::new();
    };
    let namespace = service.metadata.namespace.as_deref();
    pods.into_iter()
        .filter(|pod| pod.metadata.namespace.as_deref() == namespace)
        .filter(|pod| selector_matches(selector, pod.metadata.labels.as_ref()))
        .cloned()
        .collect()
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status
            .as_ref()
            .and_then(|status| status.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The Pod's IPs in kubelet order (`podIPs`, or the single `podIP`).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .iter()
        .filter(|ip| !ip.is_empty())
        .cloned()
        .collect()
}

/// Upstream's ShouldPodBeInEndpoints: running or pending with an IP; a
/// terminating Pod only when `include_terminating`.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !is_terminating(pod)
}

pub fn is_ipv6(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
}

/// Whether the Service has a cluster IP (is not headless).
pub fn is_service_ip_set(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

pub fn is_headless(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.cluster_ip.as_deref())
        == Some("None")
}

pub fn service_ports(service: &Service) -> &[ServicePort] {
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_deref())
        .unwrap_or_default()
}

pub fn publish_not_ready_addresses(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The Pod's hostname for this Service's endpoints: only when the Pod names
/// a hostname and the Service as its subdomain.
pub fn hostname_for(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_namespace = pod.metadata.namespace == service.metadata.namespace;
    (same_namespace && spec.subdomain.as_deref() == service.metadata.name.as_deref())
        .then(|| hostname.to_string())
}

pub fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.clone())
        .filter(|name| !name.is_empty())
}

pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

fn protocol(protocol: Option<&str>) -> &str {
    protocol.filter(|p| !p.is_empty()).unwrap_or("TCP")
}

/// The container port a Service port reaches on this Pod (upstream's
/// FindPort): a named target port is looked up among the containers' ports
/// (and restartable init containers') with the same protocol.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    let wanted_protocol = protocol(service_port.protocol.as_deref());
    match &service_port.target_port {
        None => Some(service_port.port),
        Some(IntOrString::Int(port)) => Some(*port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|container| container.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|container| container.ports.iter().flatten())
                .find(|port| {
                    port.name.as_deref() == Some(name.as_str())
                        && protocol(port.protocol.as_deref()) == wanted_protocol
                })
                .map(|port| port.container_port)
        }
    }
}

/// Service port → (name, number on this pod, protocol, appProtocol), for
/// every port the Pod serves.
pub struct ResolvedPort {
    pub name: String,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

pub fn resolved_ports(service: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    service_ports(service)
        .iter()
        .filter_map(|service_port| {
            let port = find_port(pod, service_port)?;
            Some(ResolvedPort {
                name: service_port.name.clone().unwrap_or_default(),
                port,
                protocol: protocol(service_port.protocol.as_deref()).to_string(),
                app_protocol: service_port.app_protocol.clone(),
            })
        })
        .collect()
}

/// Service (or Pod) key `namespace/name`.
pub fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Upstream's TriggerTimeTracker: per Service, the Ready transition times of
/// its Pods as of the last sync; a sync's trigger time is the earliest change
/// since then (or the Service's creation, the first time it is seen).
#[derive(Default)]
pub struct TriggerTimeTracker {
    services: HashMap<String, ServiceTriggerState>,
}

#[derive(Default)]
struct ServiceTriggerState {
    service_created: Option<Timestamp>,
    pod_ready_transitions: HashMap<String, Timestamp>,
}

fn ready_transition(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| condition.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|time| time.0)
}

impl TriggerTimeTracker {
    pub fn compute(
        &mut self,
        service: &Service,
        pods: &[std::sync::Arc<Pod>],
    ) -> Option<Timestamp> {
        let key = key_of(&service.metadata);
        let previous = self.services.remove(&key);
        let mut earliest: Option<Timestamp> = None;
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let mut state = ServiceTriggerState {
            service_created: created,
            pod_ready_transitions: HashMap::new(),
        };
        let known_created = previous.as_ref().and_then(|p| p.service_created);
        if previous.is_none() || created > known_created {
            earliest = created;
        }
        for pod in pods {
            let Some(transition) = ready_transition(pod) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let before = previous
                .as_ref()
                .and_then(|p| p.pod_ready_transitions.get(&name).copied());
            if before.is_none_or(|before| transition > before) {
                earliest = Some(earliest.map_or(transition, |e| e.min(transition)));
            }
            state.pod_ready_transitions.insert(name, transition);
        }
        self.services.insert(key, state);
        earliest
    }

    pub fn forget(&mut self, key: &str) {
        self.services.remove(key);
    }
}

/// Go's RFC 3339 with nanoseconds, trailing zeros trimmed, as the annotation holds it.
pub fn format_trigger_time(time: Timestamp) -> String {
    time.to_string()
}
