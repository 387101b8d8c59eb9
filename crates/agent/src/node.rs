//! The Node this agent registers and the status it reports: capacity and allocatable, addresses, nodeInfo, labels and conditions, built from host facts with no IO.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::host::HostFacts;

/// The kubelet's HTTPS port, as the Node advertises it.
pub const KUBELET_PORT: u16 = 10250;
/// Pods per node, upstream kubelet's `--max-pods` default.
pub const MAX_PODS: u32 = 110;
/// The label servers' nodes carry (k3s sets the same).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Who this node is, beyond the host facts.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    pub name: String,
    pub internal_ip: IpAddr,
    /// Whether a control plane runs beside this agent.
    pub control_plane: bool,
    /// Extra labels (`--node-label`).
    pub labels: BTreeMap<String, String>,
    /// `containerd://1.6.20`, from the runtime's version call.
    pub container_runtime_version: String,
    pub kubelet_version: String,
    /// The port the kubelet API listens on.
    pub kubelet_port: u16,
}

/// The node's labels: hostname, OS and architecture (both current and the
/// deprecated beta keys, as kubelet still sets them), and the role.
pub fn labels(identity: &NodeIdentity, host: &HostFacts) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), identity.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), host.architecture.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "beta.kubernetes.io/arch".to_string(),
            host.architecture.clone(),
        ),
    ]);
    if identity.control_plane {
        labels.insert(CONTROL_PLANE_LABEL.to_string(), "true".to_string());
    }
    labels.extend(identity.labels.clone());
    labels
}

/// The Node as created: metadata and spec; status follows through the
/// status subresource.
pub fn node_object(identity: &NodeIdentity, host: &HostFacts) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(identity.name.clone()),
            labels: Some(labels(identity, host)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    }
}

/// Capacity as kubelet reports it: CPUs, memory, pods, ephemeral storage
/// and (zero) hugepages.
pub fn capacity(host: &HostFacts) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(host.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", host.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(MAX_PODS.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", host.ephemeral_storage_bytes / 1024)),
        ),
        ("hugepages-1Gi".to_string(), Quantity("0".to_string())),
        ("hugepages-2Mi".to_string(), Quantity("0".to_string())),
    ])
}

/// Allocatable: capacity less upstream's default hard eviction thresholds
/// (memory.available 100Mi; nodefs.available 10%), with no reservations.
pub fn allocatable(host: &HostFacts) -> BTreeMap<String, Quantity> {
    let mut allocatable = capacity(host);
    let memory = host.memory_bytes.saturating_sub(100 * 1024 * 1024);
    allocatable.insert("memory".into(), Quantity(format!("{}Ki", memory / 1024)));
    let storage = host.ephemeral_storage_bytes - host.ephemeral_storage_bytes / 10;
    allocatable.insert("ephemeral-storage".into(), Quantity(storage.to_string()));
    allocatable
}

/// Everything kubelet reports about its node; `ready_since` dates the
/// conditions' last transition, `heartbeat` is now.
pub fn node_status(
    identity: &NodeIdentity,
    host: &HostFacts,
    ready_since: &Time,
    heartbeat: &Time,
) -> NodeStatus {
    NodeStatus {
        capacity: Some(capacity(host)),
        allocatable: Some(allocatable(host)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: identity.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: host.hostname.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(identity.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: host.architecture.clone(),
            operating_system: "linux".to_string(),
            os_image: host.os_image.clone(),
            kernel_version: host.kernel_version.clone(),
            kubelet_version: identity.kubelet_version.clone(),
            kube_proxy_version: String::new(),
            container_runtime_version: identity.container_runtime_version.clone(),
            machine_id: host.machine_id.clone(),
            system_uuid: host.system_uuid.clone(),
            boot_id: host.boot_id.clone(),
            ..NodeSystemInfo::default()
        }),
        conditions: Some(sim::healthy_node_conditions(ready_since, heartbeat)),
        ..NodeStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            hostname: "box".into(),
            cpus: 2,
            memory_bytes: 24 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 100 * 1024 * 1024 * 1024,
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            system_uuid: "u".into(),
            architecture: "amd64".into(),
        }
    }

    fn identity(control_plane: bool) -> NodeIdentity {
        NodeIdentity {
            name: "box".into(),
            internal_ip: "192.0.2.2".parse().unwrap(),
            control_plane,
            labels: BTreeMap::from([("tier".into(), "edge".into())]),
            container_runtime_version: "containerd://1.6.20".into(),
            kubelet_version: "v1.32.0".into(),
            kubelet_port: KUBELET_PORT,
        }
    }

    #[test]
    fn servers_carry_the_control_plane_role_and_agents_do_not() {
        let server = labels(&identity(true), &host());
        assert_eq!(server[CONTROL_PLANE_LABEL], "true");
        assert_eq!(server["kubernetes.io/hostname"], "box");
        assert_eq!(server["kubernetes.io/arch"], "amd64");
        assert_eq!(server["tier"], "edge");
        assert!(!labels(&identity(false), &host()).contains_key(CONTROL_PLANE_LABEL));
    }

    #[test]
    fn allocatable_keeps_the_eviction_thresholds_back() {
        let status = node_status(
            &identity(false),
            &host(),
            &Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            &Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        );
        let capacity = status.capacity.unwrap();
        let allocatable = status.allocatable.unwrap();
        assert_eq!(capacity["cpu"].0, "2");
        assert_eq!(capacity["pods"].0, "110");
        assert_eq!(capacity["memory"].0, "25165824Ki");
        assert_eq!(allocatable["memory"].0, "25063424Ki");
        assert_eq!(allocatable["ephemeral-storage"].0, "96636764160");
        let info = status.node_info.unwrap();
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(info.os_image, "Debian GNU/Linux 12 (bookworm)");
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|condition| condition.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
    }
}
