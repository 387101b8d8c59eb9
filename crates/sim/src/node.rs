//! What a simulated node looks like: name, labels, taints, addresses, capacity, system info and conditions, as a kubelet registers and reports them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::SimConfig;
use crate::addresses::node_internal_ip;

/// Marks the nodes a simulator registered (kwok's `type=kwok`); `--cleanup`
/// and the simulator's own node watch select on it.
pub const SIMULATED_LABEL: &str = "node.krust.dev/simulated";
/// The API server speaks Kubernetes 1.33; a kubelet of the same minor version
/// is inside every skew policy.
pub const KUBELET_VERSION: &str = "v1.33.0-krust-sim";
pub const CONTAINER_RUNTIME_VERSION: &str = "sim://0";
/// Where a real kubelet would serve; nothing listens there.
const KUBELET_PORT: i32 = 10250;

/// The identity of one simulated node, fixed by its index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub index: usize,
    pub name: String,
    pub internal_ip: Ipv4Addr,
}

impl NodeIdentity {
    pub fn new(config: &SimConfig, index: usize) -> NodeIdentity {
        NodeIdentity {
            index,
            name: format!("{}{index}", config.name_prefix),
            internal_ip: node_internal_ip(index),
        }
    }
}

/// The labels a node registers with: kubelet's well-known ones, the
/// simulator's marker, a zone when zones are configured, then the
/// configured labels (which win).
pub fn labels(config: &SimConfig, node: &NodeIdentity) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), node.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        (SIMULATED_LABEL.to_string(), "true".to_string()),
    ]);
    if config.zones > 0 {
        labels.insert(
            "topology.kubernetes.io/zone".to_string(),
            format!("zone-{}", node.index % config.zones),
        );
    }
    labels.extend(config.labels.clone());
    labels
}

/// The Node as created: metadata and spec. Status goes through the status
/// subresource afterwards.
pub fn node_object(config: &SimConfig, node: &NodeIdentity) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(labels(config, node)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// Everything a kubelet reports about its node. `ready_since` is when the
/// node became Ready (kept across heartbeats), `heartbeat` is now.
pub fn node_status(
    config: &SimConfig,
    node: &NodeIdentity,
    ready_since: &Time,
    heartbeat: &Time,
) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(config.cpu.clone())),
        ("memory".to_string(), Quantity(config.memory.clone())),
        ("pods".to_string(), Quantity(config.pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(config.ephemeral_storage.clone()),
        ),
        ("hugepages-1Gi".to_string(), Quantity("0".to_string())),
        ("hugepages-2Mi".to_string(), Quantity("0".to_string())),
    ]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: node.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: node.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".to_string(),
            operating_system: "linux".to_string(),
            os_image: "krust simulated node".to_string(),
            kernel_version: "6.8.0-krust-sim".to_string(),
            kubelet_version: KUBELET_VERSION.to_string(),
            kube_proxy_version: String::new(),
            container_runtime_version: CONTAINER_RUNTIME_VERSION.to_string(),
            machine_id: machine_id(&node.name),
            system_uuid: system_uuid(&node.name),
            boot_id: system_uuid(&format!("boot/{}", node.name)),
            swap: None,
            ..NodeSystemInfo::default()
        }),
        conditions: Some(conditions(ready_since, heartbeat)),
        ..NodeStatus::default()
    }
}

/// kubelet's four conditions of a healthy node, with its reasons and messages.
pub fn conditions(ready_since: &Time, heartbeat: &Time) -> Vec<NodeCondition> {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(heartbeat.clone()),
        last_transition_time: Some(ready_since.clone()),
    };
    vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// When an existing node's Ready condition has been True, so taking it over
/// keeps its history; `None` when it is not Ready now.
pub fn ready_since(node: &Node) -> Option<Time> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| condition.type_ == "Ready" && condition.status == "True")?
        .last_transition_time
        .clone()
}

/// 32 hex digits, stable per name, like /etc/machine-id.
fn machine_id(name: &str) -> String {
    crate::digest::hex(name, 32)
}

fn system_uuid(name: &str) -> String {
    let hex = crate::digest::hex(name, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimConfig {
        SimConfig {
            nodes: 3,
            zones: 2,
            labels: BTreeMap::from([("kubernetes.io/arch".into(), "arm64".into())]),
            taints: vec![crate::parse_taint("dedicated=sim:NoSchedule").expect("valid")],
            ..SimConfig::default()
        }
    }

    #[test]
    fn identity_follows_the_index() {
        let node = NodeIdentity::new(&config(), 7);
        assert_eq!(node.name, "sim-node-7");
        assert_eq!(node.internal_ip, Ipv4Addr::new(172, 16, 0, 8));
    }

    #[test]
    fn labels_spread_zones_and_let_configured_labels_win() {
        let config = config();
        let labels_of = |index| labels(&config, &NodeIdentity::new(&config, index));
        let first = labels_of(0);
        assert_eq!(first["kubernetes.io/hostname"], "sim-node-0");
        assert_eq!(first[SIMULATED_LABEL], "true");
        assert_eq!(first["topology.kubernetes.io/zone"], "zone-0");
        assert_eq!(first["kubernetes.io/arch"], "arm64");
        assert_eq!(labels_of(1)["topology.kubernetes.io/zone"], "zone-1");
        assert_eq!(labels_of(2)["topology.kubernetes.io/zone"], "zone-0");
        let without_zones = SimConfig::default();
        assert!(
            !labels(&without_zones, &NodeIdentity::new(&without_zones, 0))
                .contains_key("topology.kubernetes.io/zone")
        );
    }

    #[test]
    fn status_reports_capacity_as_allocatable_and_a_ready_node() {
        let config = config();
        let node = NodeIdentity::new(&config, 0);
        let since = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("valid"));
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_300).expect("valid"));
        let status = node_status(&config, &node, &since, &now);
        assert_eq!(status.capacity, status.allocatable);
        let capacity = status.capacity.expect("set");
        assert_eq!(capacity["cpu"].0, "32");
        assert_eq!(capacity["memory"].0, "256Gi");
        assert_eq!(capacity["pods"].0, "110");
        let conditions = status.conditions.expect("set");
        let ready = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        assert_eq!(ready.last_transition_time.as_ref(), Some(&since));
        assert_eq!(ready.last_heartbeat_time.as_ref(), Some(&now));
        assert_eq!(system_uuid("a").len(), 36);
        assert_eq!(
            status.node_info.expect("set").kubelet_version,
            KUBELET_VERSION
        );
    }
}
