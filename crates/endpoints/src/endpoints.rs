//! The Endpoints controller: one core/v1 Endpoints per Service with a selector, its subsets grouped like upstream's RepackSubsets, written only when something changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{Change, EventRecorder, Informers, WorkQueue};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};

use crate::pods::{
    self, HEADLESS_LABEL, LAST_CHANGE_TRIGGER_TIME, TriggerTimeTracker, is_pod_ready,
};

/// Most addresses one Endpoints object holds; the rest are dropped.
pub const MAX_ENDPOINTS_CAPACITY: usize = 1000;
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints carrying this annotation are leader-election locks, not a Service's.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

#[derive(Clone, Debug, Default)]
pub struct EndpointsConfig {
    /// Upstream's `--endpoint-updates-batch-period`: how long a Pod change
    /// waits before its Services sync, so bursts are written once.
    pub batch_period: Duration,
}

/// One Pod's part of a Service's endpoints before repacking.
#[derive(Clone, Debug)]
pub struct PodEndpoint {
    pub address: EndpointAddress,
    pub ready: bool,
    pub ports: Vec<EndpointPort>,
}

/// The address of `pod` in the Service's primary IP family.
fn address_for(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let families = service
        .spec
        .as_ref()
        .and_then(|spec| spec.ip_families.as_deref())
        .unwrap_or_default();
    let ips = pods::pod_ips(pod);
    let want_v6 = match families.first() {
        Some(family) => family == "IPv6",
        None if pods::is_service_ip_set(service) => service
            .spec
            .as_ref()
            .and_then(|spec| spec.cluster_ip.as_deref())
            .is_some_and(pods::is_ipv6),
        None => ips.first().is_some_and(|ip| pods::is_ipv6(ip)),
    };
    let ip = ips.into_iter().find(|ip| pods::is_ipv6(ip) == want_v6)?;
    Some(EndpointAddress {
        ip,
        hostname: pods::hostname_for(pod, service),
        node_name: pods::node_name(pod),
        target_ref: Some(pods::pod_reference(pod)),
    })
}

/// Every selected Pod's contribution, as upstream's syncService computes it.
pub fn pod_endpoints(service: &Service, pods: &[Arc<Pod>]) -> Vec<PodEndpoint> {
    let tolerate_unready = pods::publish_not_ready_addresses(service);
    let mut result = Vec::new();
    for pod in pods {
        if !pods::should_pod_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(address) = address_for(service, pod) else {
            continue;
        };
        let ready = tolerate_unready || is_pod_ready(pod);
        if pods::service_ports(service).is_empty() {
            // A headless Service may have no ports: its addresses still count.
            if pods::is_headless(service) {
                result.push(PodEndpoint {
                    address,
                    ready,
                    ports: Vec::new(),
                });
            }
            continue;
        }
        for resolved in pods::resolved_ports(service, pod) {
            result.push(PodEndpoint {
                address: address.clone(),
                ready,
                ports: vec![EndpointPort {
                    name: Some(resolved.name).filter(|name| !name.is_empty()),
                    port: resolved.port,
                    protocol: Some(resolved.protocol),
                    app_protocol: resolved.app_protocol,
                }],
            });
        }
    }
    result
}

type AddressKey = (String, String);
type PortKey = (String, i32, String, String);

fn address_key(address: &EndpointAddress) -> AddressKey {
    let uid = address
        .target_ref
        .as_ref()
        .and_then(|target| target.uid.clone())
        .unwrap_or_default();
    (address.ip.clone(), uid)
}

fn port_key(port: &EndpointPort) -> PortKey {
    (
        port.name.clone().unwrap_or_default(),
        port.port,
        port.protocol.clone().unwrap_or_default(),
        port.app_protocol.clone().unwrap_or_default(),
    )
}

/// Upstream's RepackSubsets: each port maps to the set of addresses serving
/// it; ports with the same address set share one subset. A ready address
/// stays ready when it also appears not ready.
pub fn repack(contributions: &[PodEndpoint]) -> Vec<EndpointSubset> {
    const NO_PORT: i32 = -1;
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<PortKey, EndpointPort> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    for contribution in contributions {
        let key = address_key(&contribution.address);
        addresses
            .entry(key.clone())
            .or_insert_with(|| contribution.address.clone());
        let sentinel = EndpointPort {
            port: NO_PORT,
            ..EndpointPort::default()
        };
        let contributed: Vec<&EndpointPort> = if contribution.ports.is_empty() {
            vec![&sentinel]
        } else {
            contribution.ports.iter().collect()
        };
        for port in contributed {
            let pkey = port_key(port);
            ports.entry(pkey.clone()).or_insert_with(|| port.clone());
            let ready = by_port
                .entry(pkey)
                .or_default()
                .entry(key.clone())
                .or_insert(false);
            *ready |= contribution.ready;
        }
    }
    let mut by_address_set: BTreeMap<Vec<(AddressKey, bool)>, BTreeSet<PortKey>> = BTreeMap::new();
    for (port, members) in by_port {
        let set: Vec<(AddressKey, bool)> = members.into_iter().collect();
        let entry = by_address_set.entry(set).or_default();
        if port.1 != NO_PORT {
            entry.insert(port);
        }
    }
    by_address_set
        .into_iter()
        .map(|(members, port_keys)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = members.iter().partition(|(_, r)| *r);
            let pick = |list: Vec<&(AddressKey, bool)>| -> Option<Vec<EndpointAddress>> {
                let list: Vec<EndpointAddress> =
                    list.iter().map(|(key, _)| addresses[key].clone()).collect();
                (!list.is_empty()).then_some(list)
            };
            let subset_ports: Vec<EndpointPort> =
                port_keys.iter().map(|key| ports[key].clone()).collect();
            EndpointSubset {
                addresses: pick(ready),
                not_ready_addresses: pick(not_ready),
                ports: (!subset_ports.is_empty()).then_some(subset_ports),
            }
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(ready, not_ready), subset| {
        (
            ready + subset.addresses.as_ref().map_or(0, Vec::len),
            not_ready + subset.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream's truncateEndpoints: keeps at most `capacity` addresses, ready
/// ones first, each subset keeping its proportional share (rounded up).
/// Returns whether anything was dropped.
pub fn truncate(subsets: &mut [EndpointSubset], capacity: usize) -> bool {
    let (total_ready, total_not_ready) = count(subsets);
    if total_ready + total_not_ready <= capacity {
        return false;
    }
    let truncate_ready = total_ready > capacity;
    let (max, total) = if truncate_ready {
        (capacity, total_ready)
    } else {
        (capacity - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            subset.addresses.as_ref().map_or(0, Vec::len)
        } else {
            subset.not_ready_addresses.as_ref().map_or(0, Vec::len)
        };
        let share = ((in_subset as f64 / total as f64) * max as f64).ceil() as usize;
        let to_keep = share.min(can_be_added);
        if truncate_ready {
            if let Some(addresses) = subset.addresses.as_mut() {
                addresses.truncate(to_keep);
                can_be_added -= addresses.len();
            }
            subset.not_ready_addresses = None;
        } else if let Some(addresses) = subset.not_ready_addresses.as_mut() {
            addresses.truncate(to_keep);
            can_be_added -= addresses.len();
        }
    }
    true
}

/// The Endpoints `service` should have, or `None` when `current` already
/// says the same (subsets, labels, capacity annotation; the trigger time
/// alone is not worth a write).
pub fn plan_endpoints(
    service: &Service,
    pods: &[Arc<Pod>],
    current: Option<&Endpoints>,
    trigger_time: Option<Timestamp>,
) -> Option<Endpoints> {
    let mut subsets = repack(&pod_endpoints(service, pods));
    let truncated = truncate(&mut subsets, MAX_ENDPOINTS_CAPACITY);
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if pods::is_service_ip_set(service) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    if let Some(current) = current {
        let same_subsets = current.subsets.clone().unwrap_or_default() == subsets;
        let same_labels = current.metadata.labels.clone().unwrap_or_default() == labels;
        let current_truncated = current
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(OVER_CAPACITY_ANNOTATION));
        if same_subsets && same_labels && current_truncated == truncated {
            return None;
        }
    }
    let mut endpoints = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        ..Endpoints::default()
    });
    let annotations = endpoints
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match trigger_time {
        Some(time) => {
            annotations.insert(
                LAST_CHANGE_TRIGGER_TIME.into(),
                pods::format_trigger_time(time),
            );
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    if annotations.is_empty() {
        endpoints.metadata.annotations = None;
    }
    endpoints.metadata.labels = (!labels.is_empty()).then_some(labels);
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    Some(endpoints)
}

struct Controller {
    client: Client,
    services: client::Informer<Service>,
    pods: client::Informer<Pod>,
    endpoints: client::Informer<Endpoints>,
    tracker: Mutex<TriggerTimeTracker>,
    recorder: EventRecorder,
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl Controller {
    async fn sync(&self, key: String) -> anyhow::Result<Option<Duration>> {
        let (namespace, name) = split_key(&key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
        let Some(service) = self
            .services
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            // Also reached at start for Endpoints whose Service went while we were down.
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
            self.lock_tracker().forget(&key);
            return Ok(None);
        };
        if pods::selector_of(&service).is_none() {
            return Ok(None);
        }
        let selected = pods::selected_pods(&service, self.pods.store().state().iter());
        let trigger_time = self.lock_tracker().compute(&service, &selected);
        let current = self
            .endpoints
            .store()
            .get(&ObjectRef::new(name).within(namespace));
        let Some(desired) = plan_endpoints(&service, &selected, current.as_deref(), trigger_time)
        else {
            return Ok(None);
        };
        let creating = desired.metadata.resource_version.is_none();
        let result = if creating {
            api.create(&PostParams::default(), &desired).await
        } else {
            api.replace(name, &PostParams::default(), &desired).await
        };
        match result {
            Ok(_) => Ok(None),
            // Nothing can be created in a namespace being deleted; the
            // Service goes with it.
            Err(kube::Error::Api(status))
                if creating && status.code == 403 && status.message.contains("terminat") =>
            {
                Ok(None)
            }
            Err(error) => {
                let (reason, note) = if creating {
                    (
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {key}: {error}"),
                    )
                } else {
                    (
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {key}: {error}"),
                    )
                };
                self.recorder.warning(service.as_ref(), reason, note);
                Err(error.into())
            }
        }
    }

    fn lock_tracker(&self) -> std::sync::MutexGuard<'_, TriggerTimeTracker> {
        self.tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The Services in the Pod's namespace whose selector picks it.
    fn services_of(&self, pod: &Pod) -> Vec<String> {
        services_selecting(&self.services.store().state(), pod)
    }
}

/// Keys of the Services among `services` that select `pod`.
pub(crate) fn services_selecting(services: &[Arc<Service>], pod: &Pod) -> Vec<String> {
    services
        .iter()
        .filter(|service| service.metadata.namespace == pod.metadata.namespace)
        .filter(|service| {
            pods::selector_of(service).is_some_and(|selector| {
                pods::selector_matches(selector, pod.metadata.labels.as_ref())
            })
        })
        .map(|service| pods::key_of(&service.metadata))
        .collect()
}

/// Runs the Endpoints controller until dropped.
pub async fn run_endpoints(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    config: EndpointsConfig,
) -> anyhow::Result<()> {
    let controller = Arc::new(Controller {
        recorder: EventRecorder::new(client.clone(), "endpoint-controller"),
        client,
        services: informers.informer::<Service>(),
        pods: informers.informer::<Pod>(),
        endpoints: informers.informer::<Endpoints>(),
        tracker: Mutex::new(TriggerTimeTracker::default()),
    });
    let queue: WorkQueue<String> = WorkQueue::new();
    let mut service_changes = controller.services.subscribe();
    let mut pod_changes = controller.pods.subscribe();
    let mut endpoints_changes = controller.endpoints.subscribe();
    controller.services.wait_synced().await;
    controller.pods.wait_synced().await;
    controller.endpoints.wait_synced().await;
    // Endpoints left behind by Services deleted while no controller ran.
    for endpoints in controller.endpoints.store().state() {
        let is_lock = endpoints
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
        if !is_lock {
            queue.add(pods::key_of(&endpoints.metadata));
        }
    }
    let handlers = {
        let controller = controller.clone();
        let queue = queue.clone();
        async move {
            loop {
                tokio::select! {
                    Some(change) = service_changes.recv() => {
                        queue.add(pods::key_of(&change.object().metadata));
                    }
                    Some(change) = pod_changes.recv() => {
                        let mut keys = Vec::new();
                        if let Change::Applied { old: Some(old), .. } = &change {
                            keys.extend(controller.services_of(old));
                        }
                        keys.extend(controller.services_of(change.object()));
                        for key in keys {
                            queue.add_after(key, config.batch_period);
                        }
                    }
                    Some(change) = endpoints_changes.recv() => {
                        if let Change::Deleted(endpoints) = change {
                            queue.add(pods::key_of(&endpoints.metadata));
                        }
                    }
                    else => break,
                }
            }
        }
    };
    let workers = client::workqueue::run_workers(queue, workers, move |key| {
        let controller = controller.clone();
        async move { controller.sync(key).await }
    });
    tokio::join!(handlers, workers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn contribution(ip: &str, ready: bool, ports: &[(&str, i32)]) -> PodEndpoint {
        PodEndpoint {
            address: EndpointAddress {
                ip: ip.into(),
                target_ref: Some(ObjectReference {
                    uid: Some(format!("uid-{ip}")),
                    ..ObjectReference::default()
                }),
                ..EndpointAddress::default()
            },
            ready,
            ports: ports
                .iter()
                .map(|(name, port)| EndpointPort {
                    name: Some(name.to_string()),
                    port: *port,
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                })
                .collect(),
        }
    }

    fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addresses
            .iter()
            .flatten()
            .map(|address| address.ip.as_str())
            .collect()
    }

    #[test]
    fn pods_with_the_same_ports_share_a_subset_with_ready_and_not_ready_addresses() {
        let subsets = repack(&[
            contribution("10.0.0.2", true, &[("http", 80)]),
            contribution("10.0.0.1", false, &[("http", 80)]),
            contribution("10.0.0.3", true, &[("http", 80)]),
        ]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.1"]);
    }

    #[test]
    fn a_named_port_resolved_differently_per_pod_splits_subsets() {
        let subsets = repack(&[
            contribution("10.0.0.1", true, &[("http", 8080)]),
            contribution("10.0.0.2", true, &[("http", 9090)]),
        ]);
        assert_eq!(subsets.len(), 2);
        let ports: BTreeSet<i32> = subsets
            .iter()
            .map(|subset| subset.ports.as_ref().unwrap()[0].port)
            .collect();
        assert_eq!(ports, BTreeSet::from([8080, 9090]));
    }

    #[test]
    fn ports_served_by_the_same_addresses_are_grouped_like_upstream() {
        // A serves 80 and 443, B only 80: port 80 → {A,B}, 443 → {A}.
        let subsets = repack(&[
            contribution("10.0.0.1", true, &[("http", 80)]),
            contribution("10.0.0.1", true, &[("https", 443)]),
            contribution("10.0.0.2", true, &[("http", 80)]),
        ]);
        assert_eq!(subsets.len(), 2);
        let shapes: BTreeSet<(Vec<&str>, Vec<i32>)> = subsets
            .iter()
            .map(|subset| {
                (
                    ips(&subset.addresses),
                    subset.ports.iter().flatten().map(|p| p.port).collect(),
                )
            })
            .collect();
        assert_eq!(
            shapes,
            BTreeSet::from([
                (vec!["10.0.0.1", "10.0.0.2"], vec![80]),
                (vec!["10.0.0.1"], vec![443]),
            ])
        );
    }

    #[test]
    fn headless_addresses_without_ports_are_kept() {
        let subsets = repack(&[contribution("10.0.0.1", true, &[])]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].ports, None);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    }

    #[test]
    fn truncation_keeps_ready_addresses_first_up_to_capacity() {
        let mut all: Vec<PodEndpoint> = (0..8)
            .map(|i| contribution(&format!("10.0.1.{i}"), true, &[("http", 80)]))
            .collect();
        all.extend((0..4).map(|i| contribution(&format!("10.0.2.{i}"), false, &[("http", 80)])));
        let mut subsets = repack(&all);
        assert!(truncate(&mut subsets, 10));
        let (ready, not_ready) = count(&subsets);
        assert_eq!((ready, not_ready), (8, 2));

        let mut subsets = repack(&all);
        assert!(truncate(&mut subsets, 5));
        assert_eq!(count(&subsets), (5, 0));

        let mut subsets = repack(&all);
        assert!(!truncate(&mut subsets, 12));
    }
}
