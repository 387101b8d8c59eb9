//! Builders of Nodes and Pods for tests and the benchmark, so cases read like the spec they check.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerImage, ContainerPort, Node, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinity,
    PodAffinityTerm, PodAntiAffinity, PodSpec, PodStatus, PreferredSchedulingTerm,
    ResourceRequirements, Taint, Toleration, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// A Node with 4 cpus, 16Gi of memory, room for 110 pods and its hostname label.
pub struct NodeBuilder {
    node: Node,
}

impl NodeBuilder {
    pub fn new(name: &str) -> NodeBuilder {
        let mut node = Node {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(BTreeMap::from([(HOSTNAME.to_string(), name.to_string())])),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
        };
        for (resource, amount) in [("cpu", "4"), ("memory", "16Gi"), ("pods", "110")] {
            allocatable(&mut node).insert(resource.to_string(), Quantity(amount.to_string()));
        }
        NodeBuilder { node }
    }

    pub fn cpu(self, amount: &str) -> NodeBuilder {
        self.allocatable("cpu", amount)
    }

    pub fn memory(self, amount: &str) -> NodeBuilder {
        self.allocatable("memory", amount)
    }

    pub fn pods(self, count: u32) -> NodeBuilder {
        self.allocatable("pods", &count.to_string())
    }

    pub fn allocatable(mut self, resource: &str, amount: &str) -> NodeBuilder {
        allocatable(&mut self.node).insert(resource.to_string(), Quantity(amount.to_string()));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> NodeBuilder {
        self.node
            .metadata
            .labels
            .get_or_insert_default()
            .insert(key.to_string(), value.to_string());
        self
    }

    pub fn zone(self, zone: &str) -> NodeBuilder {
        self.label(ZONE, zone)
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> NodeBuilder {
        let taint = Taint {
            key: key.to_string(),
            value: Some(value.to_string()),
            effect: effect.to_string(),
            time_added: None,
        };
        self.spec().taints.get_or_insert_default().push(taint);
        self
    }

    pub fn unschedulable(mut self) -> NodeBuilder {
        self.spec().unschedulable = Some(true);
        self
    }

    pub fn image(mut self, names: &[&str], size_bytes: i64) -> NodeBuilder {
        let image = ContainerImage {
            names: Some(names.iter().map(|n| n.to_string()).collect()),
            size_bytes: Some(size_bytes),
        };
        self.node
            .status
            .get_or_insert_default()
            .images
            .get_or_insert_default()
            .push(image);
        self
    }

    fn spec(&mut self) -> &mut NodeSpec {
        self.node.spec.get_or_insert_default()
    }

    pub fn build(self) -> Node {
        self.node
    }
}

fn allocatable(node: &mut Node) -> &mut BTreeMap<String, Quantity> {
    node.status
        .get_or_insert_default()
        .allocatable
        .get_or_insert_default()
}

/// A Pod in namespace "default" with one container that requests nothing.
pub struct PodBuilder {
    pod: Pod,
}

impl PodBuilder {
    pub fn new(name: &str) -> PodBuilder {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("default".to_string()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus::default()),
        };
        PodBuilder { pod }
    }

    pub fn namespace(mut self, namespace: &str) -> PodBuilder {
        self.pod.metadata.namespace = Some(namespace.to_string());
        self
    }

    pub fn uid(mut self, uid: &str) -> PodBuilder {
        self.pod.metadata.uid = Some(uid.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> PodBuilder {
        self.pod
            .metadata
            .labels
            .get_or_insert_default()
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Requests of the first container; an empty amount leaves it unset.
    pub fn requests(self, cpu: &str, memory: &str) -> PodBuilder {
        let mut builder = self;
        if !cpu.is_empty() {
            builder = builder.request("cpu", cpu);
        }
        if !memory.is_empty() {
            builder = builder.request("memory", memory);
        }
        builder
    }

    pub fn request(mut self, resource: &str, amount: &str) -> PodBuilder {
        let container = &mut self.spec().containers[0];
        let resources = container
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        resources
            .requests
            .get_or_insert_default()
            .insert(resource.to_string(), Quantity(amount.to_string()));
        self
    }

    pub fn image(mut self, image: &str) -> PodBuilder {
        self.spec().containers[0].image = Some(image.to_string());
        self
    }

    pub fn host_port(mut self, port: i32) -> PodBuilder {
        let port = ContainerPort {
            container_port: port,
            host_port: Some(port),
            ..Default::default()
        };
        self.spec().containers[0]
            .ports
            .get_or_insert_default()
            .push(port);
        self
    }

    pub fn host_port_on(mut self, port: i32, ip: &str, protocol: &str) -> PodBuilder {
        let port = ContainerPort {
            container_port: port,
            host_port: Some(port),
            host_ip: Some(ip.to_string()),
            protocol: Some(protocol.to_string()),
            ..Default::default()
        };
        self.spec().containers[0]
            .ports
            .get_or_insert_default()
            .push(port);
        self
    }

    /// Bound (or assumed) on a node.
    pub fn node(mut self, node: &str) -> PodBuilder {
        self.spec().node_name = Some(node.to_string());
        self
    }

    pub fn phase(mut self, phase: &str) -> PodBuilder {
        self.pod.status.get_or_insert_default().phase = Some(phase.to_string());
        self
    }

    pub fn priority(mut self, priority: i32) -> PodBuilder {
        self.spec().priority = Some(priority);
        self
    }

    pub fn preemption_policy(mut self, policy: &str) -> PodBuilder {
        self.spec().preemption_policy = Some(policy.to_string());
        self
    }

    pub fn start_time(mut self, unix_seconds: i64) -> PodBuilder {
        let time = Timestamp::from_second(unix_seconds).unwrap_or(Timestamp::UNIX_EPOCH);
        self.pod.status.get_or_insert_default().start_time = Some(Time(time));
        self
    }

    pub fn nominated_node(mut self, node: &str) -> PodBuilder {
        self.pod.status.get_or_insert_default().nominated_node_name = Some(node.to_string());
        self
    }

    pub fn terminating(mut self) -> PodBuilder {
        self.pod.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        self
    }

    pub fn owner(mut self, api_version: &str, kind: &str, name: &str) -> PodBuilder {
        let owner = OwnerReference {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            ..Default::default()
        };
        self.pod
            .metadata
            .owner_references
            .get_or_insert_default()
            .push(owner);
        self
    }

    /// Tolerates `key=value:effect` (an empty effect tolerates every effect).
    pub fn toleration(mut self, key: &str, value: &str, effect: &str) -> PodBuilder {
        let toleration = Toleration {
            key: Some(key.to_string()),
            operator: Some("Equal".to_string()),
            value: Some(value.to_string()),
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: None,
        };
        self.spec()
            .tolerations
            .get_or_insert_default()
            .push(toleration);
        self
    }

    pub fn toleration_exists(mut self, key: &str, effect: &str) -> PodBuilder {
        let toleration = Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".to_string()),
            value: None,
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: None,
        };
        self.spec()
            .tolerations
            .get_or_insert_default()
            .push(toleration);
        self
    }

    pub fn node_selector(mut self, key: &str, value: &str) -> PodBuilder {
        self.spec()
            .node_selector
            .get_or_insert_default()
            .insert(key.to_string(), value.to_string());
        self
    }

    /// A required node affinity term (ORed with earlier ones) with one
    /// expression `key operator values`.
    pub fn node_affinity(mut self, key: &str, operator: &str, values: &[&str]) -> PodBuilder {
        let term = node_term(key, operator, values);
        let required = self
            .node_affinity_mut()
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            });
        required.node_selector_terms.push(term);
        self
    }

    /// A required node affinity term on the node's name (`matchFields`).
    pub fn node_affinity_name(mut self, names: &[&str]) -> PodBuilder {
        let term = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_string(),
                operator: "In".to_string(),
                values: Some(names.iter().map(|n| n.to_string()).collect()),
            }]),
        };
        let required = self
            .node_affinity_mut()
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            });
        required.node_selector_terms.push(term);
        self
    }

    pub fn preferred_node_affinity(
        mut self,
        weight: i32,
        key: &str,
        operator: &str,
        values: &[&str],
    ) -> PodBuilder {
        let term = PreferredSchedulingTerm {
            weight,
            preference: node_term(key, operator, values),
        };
        self.node_affinity_mut()
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_default()
            .push(term);
        self
    }

    /// Required pod affinity to pods labelled `key=value` within `topology_key`.
    pub fn affinity(mut self, key: &str, value: &str, topology_key: &str) -> PodBuilder {
        let term = pod_term(key, value, topology_key);
        self.pod_affinity_mut()
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_default()
            .push(term);
        self
    }

    /// Required pod anti-affinity to pods labelled `key=value` within `topology_key`.
    pub fn anti_affinity(mut self, key: &str, value: &str, topology_key: &str) -> PodBuilder {
        let term = pod_term(key, value, topology_key);
        self.pod_anti_affinity_mut()
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_default()
            .push(term);
        self
    }

    pub fn preferred_affinity(
        mut self,
        weight: i32,
        key: &str,
        value: &str,
        topology_key: &str,
    ) -> PodBuilder {
        let term = WeightedPodAffinityTerm {
            weight,
            pod_affinity_term: pod_term(key, value, topology_key),
        };
        self.pod_affinity_mut()
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_default()
            .push(term);
        self
    }

    pub fn preferred_anti_affinity(
        mut self,
        weight: i32,
        key: &str,
        value: &str,
        topology_key: &str,
    ) -> PodBuilder {
        let term = WeightedPodAffinityTerm {
            weight,
            pod_affinity_term: pod_term(key, value, topology_key),
        };
        self.pod_anti_affinity_mut()
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_default()
            .push(term);
        self
    }

    /// A topology spread constraint over pods labelled `key=value`.
    pub fn spread(
        mut self,
        max_skew: i32,
        topology_key: &str,
        when_unsatisfiable: &str,
        key: &str,
        value: &str,
    ) -> PodBuilder {
        let constraint = TopologySpreadConstraint {
            max_skew,
            topology_key: topology_key.to_string(),
            when_unsatisfiable: when_unsatisfiable.to_string(),
            label_selector: Some(match_labels(key, value)),
            ..Default::default()
        };
        self.spec()
            .topology_spread_constraints
            .get_or_insert_default()
            .push(constraint);
        self
    }

    /// Edits the last topology spread constraint (minDomains, policies...).
    pub fn with_last_spread(
        mut self,
        edit: impl FnOnce(&mut TopologySpreadConstraint),
    ) -> PodBuilder {
        if let Some(last) = self
            .spec()
            .topology_spread_constraints
            .as_mut()
            .and_then(|c| c.last_mut())
        {
            edit(last);
        }
        self
    }

    /// Any other edit of the spec.
    pub fn with_spec(mut self, edit: impl FnOnce(&mut PodSpec)) -> PodBuilder {
        edit(self.spec());
        self
    }

    fn spec(&mut self) -> &mut PodSpec {
        self.pod.spec.get_or_insert_default()
    }

    fn node_affinity_mut(&mut self) -> &mut NodeAffinity {
        let affinity = self.spec().affinity.get_or_insert_with(Affinity::default);
        affinity.node_affinity.get_or_insert_default()
    }

    fn pod_affinity_mut(&mut self) -> &mut PodAffinity {
        let affinity = self.spec().affinity.get_or_insert_with(Affinity::default);
        affinity.pod_affinity.get_or_insert_default()
    }

    fn pod_anti_affinity_mut(&mut self) -> &mut PodAntiAffinity {
        let affinity = self.spec().affinity.get_or_insert_with(Affinity::default);
        affinity.pod_anti_affinity.get_or_insert_default()
    }

    pub fn build(self) -> Pod {
        self.pod
    }
}

pub fn match_labels(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        match_expressions: None,
    }
}

fn node_term(key: &str, operator: &str, values: &[&str]) -> NodeSelectorTerm {
    let values = (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect());
    NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: key.to_string(),
            operator: operator.to_string(),
            values,
        }]),
        match_fields: None,
    }
}

fn pod_term(key: &str, value: &str, topology_key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(match_labels(key, value)),
        topology_key: topology_key.to_string(),
        ..Default::default()
    }
}
