//! The EndpointSlice reconciler as a pure planner: desired endpoints per address type and port mapping, packed into existing slices before new ones, like upstream's reconciler.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

use crate::pods::{self, HEADLESS_LABEL};

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Upstream's `--max-endpoints-per-slice` default.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What to write for one Service.
#[derive(Debug, Default)]
pub struct SlicePlan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their Node is not known yet (retry later).
    pub skipped_pods: Vec<String>,
}

impl SlicePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

type PortMapKey = Vec<(String, i32, String, String)>;
type EndpointKey = (Vec<String>, String, String, String);

fn port_map_key(ports: &[EndpointPort]) -> PortMapKey {
    let mut key: PortMapKey = ports
        .iter()
        .map(|port| {
            (
                port.name.clone().unwrap_or_default(),
                port.port.unwrap_or_default(),
                port.protocol.clone().unwrap_or_default(),
                port.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// An endpoint's identity (upstream's endpoint hash): addresses, hostname
/// and the Pod it points to; everything else is its state.
fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    (
        addresses,
        endpoint.hostname.clone().unwrap_or_default(),
        target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        target.and_then(|t| t.name.clone()).unwrap_or_default(),
    )
}

/// The address types a Service's slices carry, from its IP families.
pub fn address_types(service: &Service) -> BTreeSet<String> {
    let families = service
        .spec
        .as_ref()
        .and_then(|spec| spec.ip_families.as_deref())
        .unwrap_or_default();
    let mut types: BTreeSet<String> = families
        .iter()
        .map(|family| {
            if family == "IPv6" {
                "IPv6".to_string()
            } else {
                "IPv4".to_string()
            }
        })
        .collect();
    if types.is_empty() {
        let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
        let v6 = pods::is_service_ip_set(service) && cluster_ip.is_some_and(pods::is_ipv6);
        types.insert(if v6 { "IPv6" } else { "IPv4" }.to_string());
    }
    types
}

/// The labels a slice of `service` carries: the Service's own (minus the
/// reserved keys), the headless marker, the Service name and our name.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(key, _)| key.as_str() != LABEL_SERVICE_NAME && key.as_str() != LABEL_MANAGED_BY)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if pods::is_service_ip_set(service) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// Whether the slice's controller reference is this Service (by UID).
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == uid && owner.kind == "Service" && owner.api_version == "v1")
}

fn new_slice(service: &Service, address_type: &str, ports: Vec<EndpointPort>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                service.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: service.metadata.namespace.clone(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![client::owners::controller_reference(service)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_string(),
        endpoints: Some(Vec::new()),
        ports: Some(ports),
    }
}

fn slice_endpoints(slice: &EndpointSlice) -> &[Endpoint] {
    slice.endpoints.as_deref().unwrap_or_default()
}

fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    if pods::service_ports(service).is_empty() && pods::is_headless(service) {
        return Vec::new();
    }
    pods::resolved_ports(service, pod)
        .into_iter()
        .map(|resolved| EndpointPort {
            name: Some(resolved.name),
            port: Some(resolved.port),
            protocol: Some(resolved.protocol),
            app_protocol: resolved.app_protocol,
        })
        .collect()
}

/// Upstream's podToEndpoint: serving follows readiness, ready is never true
/// for a terminating Pod unless the Service publishes not-ready addresses.
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    service: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = pods::is_pod_ready(pod);
    let terminating = pods::is_terminating(pod);
    let ready = pods::publish_not_ready_addresses(service) || (serving && !terminating);
    let want_v6 = address_type == "IPv6";
    Endpoint {
        addresses: pods::pod_ips(pod)
            .into_iter()
            .filter(|ip| pods::is_ipv6(ip) == want_v6)
            .collect(),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(pods::pod_reference(pod)),
        node_name: pods::node_name(pod),
        zone: node
            .and_then(|node| node.metadata.labels.as_ref())
            .and_then(|labels| labels.get(ZONE_LABEL))
            .filter(|zone| !zone.is_empty())
            .cloned(),
        hostname: pods::hostname_for(pod, service),
        ..Endpoint::default()
    }
}

/// Desired endpoints of one port mapping, ordered by identity so packing is
/// deterministic.
struct Desired {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<EndpointKey, Endpoint>,
}

/// Plans the writes that bring `existing` (this Service's managed slices, of
/// every address type) to what `pods` call for.
pub fn plan_slices(
    service: &Service,
    pods: &[Arc<Pod>],
    node: &dyn Fn(&str) -> Option<Arc<Node>>,
    existing: &[Arc<EndpointSlice>],
    max_per_slice: usize,
) -> SlicePlan {
    let max_per_slice = max_per_slice.max(1);
    let supported = address_types(service);
    let mut plan = SlicePlan::default();
    let mut by_type: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if supported.contains(&slice.address_type) {
            by_type
                .entry(slice.address_type.clone())
                .or_default()
                .push(slice);
        } else {
            plan.delete.push(slice.as_ref().clone());
        }
    }
    for address_type in &supported {
        let existing = by_type.remove(address_type).unwrap_or_default();
        plan_address_type(
            service,
            pods,
            node,
            existing,
            address_type,
            max_per_slice,
            &mut plan,
        );
    }
    plan
}

fn plan_address_type(
    service: &Service,
    pods: &[Arc<Pod>],
    node: &dyn Fn(&str) -> Option<Arc<Node>>,
    mut existing: Vec<&EndpointSlice>,
    address_type: &str,
    max_per_slice: usize,
    plan: &mut SlicePlan,
) {
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    let mut to_delete: Vec<EndpointSlice> = Vec::new();

    let mut existing_by_ports: BTreeMap<PortMapKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &existing {
        if owned_by(slice, service) {
            existing_by_ports
                .entry(port_map_key(slice.ports.as_deref().unwrap_or_default()))
                .or_default()
                .push(slice);
        } else {
            to_delete.push((*slice).clone());
        }
    }

    let publish_not_ready = pods::publish_not_ready_addresses(service);
    let mut desired: BTreeMap<PortMapKey, Desired> = BTreeMap::new();
    for pod in pods {
        if !pods::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let key = port_map_key(&ports);
        let node_name = pods::node_name(pod).unwrap_or_default();
        let pod_node = node(&node_name);
        if pod_node.is_none() && !publish_not_ready {
            // Upstream leaves such a Pod out and retries, so one Pod bound to
            // a vanished Node cannot hold the Service's slices back.
            plan.skipped_pods.push(pods::key_of(&pod.metadata));
            continue;
        }
        let group = desired.entry(key).or_insert_with(|| Desired {
            ports,
            endpoints: BTreeMap::new(),
        });
        let endpoint = pod_to_endpoint(pod, pod_node.as_deref(), service, address_type);
        if !endpoint.addresses.is_empty() {
            group.endpoints.insert(endpoint_key(&endpoint), endpoint);
        }
    }

    for (key, group) in desired.iter_mut() {
        let slices = existing_by_ports.get(key).cloned().unwrap_or_default();
        let (create, update, delete) = plan_port_mapping(
            service,
            address_type,
            &group.ports,
            slices,
            std::mem::take(&mut group.endpoints),
            max_per_slice,
        );
        to_create.extend(create);
        to_update.extend(update);
        to_delete.extend(delete);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            to_delete.extend(slices.iter().map(|slice| (*slice).clone()));
        }
    }

    // A Service without endpoints still gets one empty slice.
    if existing.len() == to_delete.len() && to_create.is_empty() {
        let placeholder = new_slice(service, address_type, Vec::new());
        if to_delete.len() == 1 && is_same_placeholder(&to_delete[0], &placeholder) {
            to_delete.clear();
        } else {
            to_create.push(placeholder);
        }
    }

    // Reuse slices about to be deleted for slices about to be created: an
    // update instead of a delete and a create.
    let mut index = 0;
    while index < to_delete.len() && !to_create.is_empty() {
        let doomed = &to_delete[index];
        let mut fresh = to_create.pop().expect("checked non-empty");
        if doomed.address_type == fresh.address_type && owned_by(doomed, service) {
            fresh.metadata.name = doomed.metadata.name.clone();
            fresh.metadata.generate_name = None;
            fresh.metadata.resource_version = doomed.metadata.resource_version.clone();
            to_update.push(fresh);
            to_delete.remove(index);
        } else {
            to_create.push(fresh);
            index += 1;
        }
    }
    plan.create.extend(to_create);
    plan.update.extend(to_update);
    plan.delete.extend(to_delete);
}

fn is_same_placeholder(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.metadata.namespace == placeholder.metadata.namespace
        && slice.metadata.labels.clone().unwrap_or_default()
            == placeholder.metadata.labels.clone().unwrap_or_default()
        && slice.address_type == placeholder.address_type
        && slice_endpoints(slice).is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
}

type Planned = (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>);

/// Upstream's reconcileByPortMapping: keep desired endpoints where they are,
/// drop the rest, top up slices already being rewritten (fullest first), then
/// fit what remains into the unchanged slice closest to full, and only then
/// create new slices.
fn plan_port_mapping(
    service: &Service,
    address_type: &str,
    ports: &[EndpointPort],
    existing: Vec<&EndpointSlice>,
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    max_per_slice: usize,
) -> Planned {
    let labels = slice_labels(service);
    let mut slices: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut endpoint_changed = false;
        for endpoint in slice_endpoints(slice) {
            if let Some(wanted) = desired.remove(&endpoint_key(endpoint)) {
                if wanted != *endpoint {
                    endpoint_changed = true;
                }
                kept.push(wanted);
            }
        }
        let labels_changed = slice.metadata.labels.as_ref() != Some(&labels);
        if endpoint_changed || kept.len() != slice_endpoints(slice).len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                slices.insert(name, slice.clone());
            } else {
                let mut updated = slice.clone();
                updated.endpoints = Some(kept);
                updated.metadata.labels = Some(labels.clone());
                to_update.insert(name.clone());
                slices.insert(name, updated);
            }
        } else if labels_changed {
            let mut updated = slice.clone();
            updated.metadata.labels = Some(labels.clone());
            to_update.insert(name.clone());
            slices.insert(name, updated);
        } else {
            unchanged.insert(name.clone());
            slices.insert(name, slice.clone());
        }
    }

    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|name| std::cmp::Reverse(slice_endpoints(&slices[name]).len()));
        for name in names {
            let slice = slices.get_mut(&name).expect("planned slice");
            let endpoints = slice.endpoints.get_or_insert_with(Vec::new);
            while endpoints.len() < max_per_slice {
                let Some((_, endpoint)) = desired.pop_first() else {
                    break;
                };
                endpoints.push(endpoint);
            }
        }
    }

    let mut to_create = Vec::new();
    while !desired.is_empty() {
        let mut fill_name = None;
        if desired.len() < max_per_slice && !unchanged.is_empty() {
            fill_name = closest_fit(&unchanged, &slices, desired.len(), max_per_slice);
        }
        let mut slice = match &fill_name {
            Some(name) => slices.remove(name).expect("planned slice"),
            None => new_slice(service, address_type, ports.to_vec()),
        };
        let endpoints = slice.endpoints.get_or_insert_with(Vec::new);
        while endpoints.len() < max_per_slice {
            let Some((_, endpoint)) = desired.pop_first() else {
                break;
            };
            endpoints.push(endpoint);
        }
        match fill_name {
            Some(name) => {
                unchanged.remove(&name);
                to_update.insert(name.clone());
                slices.insert(name, slice);
            }
            None => to_create.push(slice),
        }
    }

    let update = to_update.iter().map(|name| slices[name].clone()).collect();
    let delete = to_delete.iter().map(|name| slices[name].clone()).collect();
    (to_create, update, delete)
}

/// The unchanged slice that `count` more endpoints fill most closely.
fn closest_fit(
    names: &BTreeSet<String>,
    slices: &BTreeMap<String, EndpointSlice>,
    count: usize,
    max_per_slice: usize,
) -> Option<String> {
    let mut best: Option<(usize, &String)> = None;
    for name in names {
        let used = slice_endpoints(&slices[name]).len();
        if used + count > max_per_slice {
            continue;
        }
        let room_left = max_per_slice - used - count;
        if best.is_none_or(|(best_room, _)| room_left < best_room) {
            best = Some((room_left, name));
        }
    }
    best.map(|(_, name)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn service() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc-uid".into()),
                labels: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                cluster_ip: Some("10.43.0.10".into()),
                ip_families: Some(vec!["IPv4".into()]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    target_port: Some(IntOrString::String("web".into())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn pod(index: usize, container_port: i32) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(format!("web-{index:03}")),
                namespace: Some("default".into()),
                uid: Some(format!("pod-{index}")),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port,
                        protocol: Some("TCP".into()),
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some(format!("10.42.{}.{}", index / 250, index % 250 + 1)),
                pod_ips: Some(vec![PodIP {
                    ip: format!("10.42.{}.{}", index / 250, index % 250 + 1),
                }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..PodCondition::default()
                }]),
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        })
    }

    fn node(_: &str) -> Option<Arc<Node>> {
        Some(Arc::new(Node::default()))
    }

    /// Applies a plan as the API would, naming created slices.
    fn apply(existing: &mut Vec<Arc<EndpointSlice>>, plan: SlicePlan, next_name: &mut usize) {
        for slice in plan.delete {
            existing.retain(|s| s.metadata.name != slice.metadata.name);
        }
        for slice in plan.update {
            existing.retain(|s| s.metadata.name != slice.metadata.name);
            existing.push(Arc::new(slice));
        }
        for mut slice in plan.create {
            slice.metadata.name = Some(format!("web-{next_name}"));
            *next_name += 1;
            existing.push(Arc::new(slice));
        }
    }

    fn sizes(slices: &[Arc<EndpointSlice>]) -> Vec<usize> {
        let mut sizes: Vec<usize> = slices.iter().map(|s| slice_endpoints(s).len()).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    #[test]
    fn two_hundred_fifty_pods_pack_into_100_100_50() {
        let pods: Vec<Arc<Pod>> = (0..250).map(|i| pod(i, 8080)).collect();
        let plan = plan_slices(&service(), &pods, &node, &[], 100);
        assert_eq!(plan.create.len(), 3);
        let mut slices = Vec::new();
        apply(&mut slices, plan, &mut 0);
        assert_eq!(sizes(&slices), [100, 100, 50]);
        let labels = slices[0].metadata.labels.clone().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(labels["team"], "a");
        assert!(owned_by(&slices[0], &service()));
        // Planning again changes nothing.
        assert!(plan_slices(&service(), &pods, &node, &slices, 100).is_empty());
    }

    #[test]
    fn removing_pods_touches_only_the_slices_that_held_them() {
        let pods: Vec<Arc<Pod>> = (0..250).map(|i| pod(i, 8080)).collect();
        let mut slices = Vec::new();
        let mut names = 0;
        apply(
            &mut slices,
            plan_slices(&service(), &pods, &node, &[], 100),
            &mut names,
        );
        let holder_of_last = slices
            .iter()
            .find(|s| {
                slice_endpoints(s)
                    .iter()
                    .any(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("web-249"))
            })
            .unwrap()
            .metadata
            .name
            .clone();
        let fewer: Vec<Arc<Pod>> = pods[..240].to_vec();
        let plan = plan_slices(&service(), &fewer, &node, &slices, 100);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        let updated: Vec<_> = plan
            .update
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(updated, [holder_of_last]);
    }

    #[test]
    fn new_endpoints_fill_the_closest_fitting_unchanged_slice_before_creating() {
        let pods: Vec<Arc<Pod>> = (0..150).map(|i| pod(i, 8080)).collect();
        let mut slices = Vec::new();
        let mut names = 0;
        apply(
            &mut slices,
            plan_slices(&service(), &pods, &node, &[], 100),
            &mut names,
        );
        assert_eq!(sizes(&slices), [100, 50]);
        let more: Vec<Arc<Pod>> = (0..160).map(|i| pod(i, 8080)).collect();
        let plan = plan_slices(&service(), &more, &node, &slices, 100);
        assert!(plan.create.is_empty());
        assert_eq!(plan.update.len(), 1);
        apply(&mut slices, plan, &mut names);
        assert_eq!(sizes(&slices), [100, 60]);
    }

    #[test]
    fn pods_resolving_a_named_port_differently_land_in_different_slices() {
        let pods = vec![pod(0, 8080), pod(1, 9090), pod(2, 8080)];
        let plan = plan_slices(&service(), &pods, &node, &[], 100);
        assert_eq!(plan.create.len(), 2);
        let mut by_port: Vec<(i32, usize)> = plan
            .create
            .iter()
            .map(|s| {
                (
                    s.ports.as_ref().unwrap()[0].port.unwrap(),
                    slice_endpoints(s).len(),
                )
            })
            .collect();
        by_port.sort();
        assert_eq!(by_port, [(8080, 2), (9090, 1)]);
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_placeholder_slice() {
        let plan = plan_slices(&service(), &[], &node, &[], 100);
        assert_eq!(plan.create.len(), 1);
        let mut slices = Vec::new();
        apply(&mut slices, plan, &mut 0);
        assert!(plan_slices(&service(), &[], &node, &slices, 100).is_empty());
        // Once pods come, the placeholder is reused instead of replaced.
        let plan = plan_slices(&service(), &[pod(0, 8080)], &node, &slices, 100);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
    }

    #[test]
    fn a_terminating_pod_is_kept_not_ready_but_serving() {
        let mut terminating = (*pod(0, 8080)).clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let endpoint = pod_to_endpoint(&terminating, None, &service(), "IPv4");
        assert_eq!(
            endpoint.conditions,
            Some(EndpointConditions {
                ready: Some(false),
                serving: Some(true),
                terminating: Some(true),
            })
        );
    }

    #[test]
    fn pods_on_unknown_nodes_are_skipped() {
        let plan = plan_slices(&service(), &[pod(0, 8080)], &|_| None, &[], 100);
        assert_eq!(plan.skipped_pods, ["default/web-000"]);
    }
}
