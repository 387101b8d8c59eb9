//! The built-in service load balancer (k3s's ServiceLB): a LoadBalancer Service without a `loadBalancerClass` gets its Ready nodes' addresses as `status.loadBalancer.ingress`, where every node's Service proxy serves it; `--disable servicelb` leaves such Services to another controller.

use std::collections::BTreeSet;
use std::sync::Arc;

use client::{Change, Informers, WorkQueue};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

/// Whether this controller answers for `service`.
pub fn is_served(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|spec| {
        spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none()
    })
}

/// The addresses LoadBalancer Services are reached on: each Ready,
/// schedulable node's ExternalIP, else its InternalIP, in address order.
pub fn ingress_addresses(nodes: &[Arc<Node>]) -> Vec<String> {
    let mut addresses = BTreeSet::new();
    for node in nodes {
        let ready = node
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition.type_ == "Ready" && condition.status == "True")
            });
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|spec| spec.unschedulable)
            .unwrap_or(false);
        if !ready || unschedulable {
            continue;
        }
        let listed = node
            .status
            .as_ref()
            .and_then(|status| status.addresses.clone())
            .unwrap_or_default();
        let pick = |kind: &str| {
            listed
                .iter()
                .filter(|address| address.type_ == kind)
                .map(|address| address.address.clone())
                .collect::<Vec<_>>()
        };
        let external = pick("ExternalIP");
        addresses.extend(if external.is_empty() {
            pick("InternalIP")
        } else {
            external
        });
    }
    addresses.into_iter().collect()
}

/// The `status.loadBalancer.ingress` the Service should have.
pub fn desired_ingress(service: &Service, addresses: &[String]) -> Vec<LoadBalancerIngress> {
    if !is_served(service) {
        return Vec::new();
    }
    let families: Vec<String> = service
        .spec
        .as_ref()
        .and_then(|spec| spec.ip_families.clone())
        .unwrap_or_else(|| vec!["IPv4".to_string()]);
    addresses
        .iter()
        .filter(|address| {
            let family = if address.contains(':') {
                "IPv6"
            } else {
                "IPv4"
            };
            families.iter().any(|wanted| wanted == family)
        })
        .map(|address| LoadBalancerIngress {
            ip: Some(address.clone()),
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

pub async fn run(
    client: kube::Client,
    informers: Arc<Informers>,
    workers: usize,
) -> anyhow::Result<()> {
    let services = informers.informer::<Service>();
    let nodes = informers.informer::<Node>();
    let queue: WorkQueue<(String, String)> = WorkQueue::new();

    let mut service_changes = services.subscribe();
    let enqueue = queue.clone();
    tokio::spawn(async move {
        while let Some(change) = service_changes.recv().await {
            if let Change::Applied { new, .. } = change {
                enqueue.add((
                    new.metadata.namespace.clone().unwrap_or_default(),
                    new.metadata.name.clone().unwrap_or_default(),
                ));
            }
        }
    });
    let mut node_changes = nodes.subscribe();
    let enqueue = queue.clone();
    let all_services = services.clone();
    tokio::spawn(async move {
        while node_changes.recv().await.is_some() {
            for service in all_services.store().state() {
                if is_served(&service) {
                    enqueue.add((
                        service.metadata.namespace.clone().unwrap_or_default(),
                        service.metadata.name.clone().unwrap_or_default(),
                    ));
                }
            }
        }
    });

    services.wait_synced().await;
    nodes.wait_synced().await;
    client::workqueue::run_workers(
        queue,
        workers,
        move |(namespace, name): (String, String)| {
            let client = client.clone();
            let services = services.clone();
            let nodes = nodes.clone();
            async move {
                let Some(service) = services
                    .store()
                    .get(&ObjectRef::new(&name).within(&namespace))
                else {
                    return Ok(None);
                };
                let current: Vec<LoadBalancerIngress> = service
                    .status
                    .as_ref()
                    .and_then(|status| status.load_balancer.as_ref())
                    .and_then(|balancer| balancer.ingress.clone())
                    .unwrap_or_default();
                // Services of another class, or no longer LoadBalancers with
                // nothing to clear, are not this controller's.
                if !is_served(&service) && (current.is_empty() || service_has_class(&service)) {
                    return Ok(None);
                }
                let wanted = desired_ingress(&service, &ingress_addresses(&nodes.store().state()));
                if wanted == current {
                    return Ok(None);
                }
                let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": wanted}}})),
                )
                .await?;
                Ok(None)
            }
        },
    )
    .await;
    Ok(())
}

fn service_has_class(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .is_some_and(|spec| spec.load_balancer_class.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, addresses: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "addresses": addresses,
                },
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ready_nodes_external_addresses_first() {
        let nodes = [
            node(
                "a",
                true,
                json!([{"type": "InternalIP", "address": "10.0.0.2"}]),
            ),
            node(
                "b",
                true,
                json!([{"type": "InternalIP", "address": "10.0.0.3"}, {"type": "ExternalIP", "address": "203.0.113.3"}]),
            ),
            node(
                "c",
                false,
                json!([{"type": "InternalIP", "address": "10.0.0.4"}]),
            ),
        ];
        assert_eq!(ingress_addresses(&nodes), ["10.0.0.2", "203.0.113.3"]);
    }

    #[test]
    fn only_classless_load_balancers_get_ingress() {
        let service = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
        };
        let addresses = vec!["10.0.0.2".to_string(), "fd00::2".to_string()];
        let ingress = desired_ingress(&service(json!({"type": "LoadBalancer"})), &addresses);
        assert_eq!(ingress.len(), 1);
        assert_eq!(ingress[0].ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(ingress[0].ip_mode.as_deref(), Some("VIP"));
        assert!(
            desired_ingress(
                &service(json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"})),
                &addresses
            )
            .is_empty()
        );
        assert!(desired_ingress(&service(json!({"type": "NodePort"})), &addresses).is_empty());
    }
}
