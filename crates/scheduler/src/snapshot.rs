//! The scheduler's view of the cluster: nodes with the pods bound or assumed on them, maintained incrementally per event.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Taint};

use crate::counts::{AntiAffinityIndex, CountCache, CountKey, Counts};
use crate::labels::{LabelSelector, Labels, NO_LABELS, pod_labels, pod_namespace};
use crate::pod_info::{AffinityTerm, HostPort, PodInfo, pod_key};
use crate::resources::Resources;

/// One node and what is placed on it, with the sums filters and scores read
/// kept up to date as pods come and go.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    node: Arc<Node>,
    name: Arc<str>,
    /// Region and zone, upstream's `GetZoneKey`; orders the node list.
    zone_key: String,
    allocatable: Resources,
    requested: Resources,
    non_zero_milli_cpu: i64,
    non_zero_memory: i64,
    pods: Vec<Arc<PodInfo>>,
    pods_with_affinity: Vec<Arc<PodInfo>>,
    pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    /// Pods whose affinity terms score other pods (see
    /// `PodFacts::has_scoring_affinity`).
    scoring_affinity_pods: usize,
    /// Host ports in use; a set, as upstream's `HostPortInfo`.
    used_ports: Vec<HostPort>,
    /// Images present on the node: (snapshot image id, size in bytes),
    /// sorted by id.
    images: Vec<(u32, i64)>,
    /// Pods nominated to this node by preemption, not yet bound.
    nominated: Vec<Arc<PodInfo>>,
    unschedulable: bool,
    has_prefer_no_schedule_taint: bool,
    has_hard_taint: bool,
}

impl NodeInfo {
    fn new(node: Arc<Node>, images: Vec<(u32, i64)>) -> NodeInfo {
        let mut info = NodeInfo {
            name: Arc::from(node.metadata.name.as_deref().unwrap_or("")),
            node: node.clone(),
            zone_key: String::new(),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
            scoring_affinity_pods: 0,
            used_ports: Vec::new(),
            images: Vec::new(),
            nominated: Vec::new(),
            unschedulable: false,
            has_prefer_no_schedule_taint: false,
            has_hard_taint: false,
        };
        info.set_node(node, images);
        info
    }

    fn set_node(&mut self, node: Arc<Node>, images: Vec<(u32, i64)>) {
        self.zone_key = zone_key(&node);
        self.allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .map(Resources::from_list)
            .unwrap_or_default();
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
        self.has_prefer_no_schedule_taint = taints.iter().any(|t| t.effect == "PreferNoSchedule");
        self.has_hard_taint = taints
            .iter()
            .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
        self.images = images;
        self.node = node;
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn labels(&self) -> &Labels {
        self.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    pub fn taints(&self) -> &[Taint] {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }

    pub fn allocatable(&self) -> &Resources {
        &self.allocatable
    }

    /// The sum of the requests of the pods on the node.
    pub fn requested(&self) -> &Resources {
        &self.requested
    }

    /// Requested cpu (millicores) and memory with upstream's defaults for
    /// containers that request none; what scoring spreads by.
    pub fn non_zero_requested(&self) -> (i64, i64) {
        (self.non_zero_milli_cpu, self.non_zero_memory)
    }

    pub fn pods(&self) -> &[Arc<PodInfo>] {
        &self.pods
    }

    pub fn pods_with_affinity(&self) -> &[Arc<PodInfo>] {
        &self.pods_with_affinity
    }

    pub fn pods_with_required_anti_affinity(&self) -> &[Arc<PodInfo>] {
        &self.pods_with_required_anti_affinity
    }

    pub fn used_ports(&self) -> &[HostPort] {
        &self.used_ports
    }

    pub fn nominated_pods(&self) -> &[Arc<PodInfo>] {
        &self.nominated
    }

    pub fn unschedulable(&self) -> bool {
        self.unschedulable
    }

    pub(crate) fn has_prefer_no_schedule_taint(&self) -> bool {
        self.has_prefer_no_schedule_taint
    }

    pub(crate) fn has_hard_taint(&self) -> bool {
        self.has_hard_taint
    }

    /// The size of an image on this node, if it has it.
    pub(crate) fn image_size(&self, image: u32) -> Option<i64> {
        self.images
            .binary_search_by_key(&image, |(id, _)| *id)
            .ok()
            .map(|i| self.images[i].1)
    }

    /// Places a pod on the node and adds it to the sums.
    pub(crate) fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        for port in &pod.host_ports {
            if !self.used_ports.contains(port) {
                self.used_ports.push(port.clone());
            }
        }
        if pod.has_affinity {
            self.pods_with_affinity.push(pod.clone());
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        if pod.has_scoring_affinity() {
            self.scoring_affinity_pods += 1;
        }
        self.pods.push(pod);
    }

    /// Takes a pod off the node; order of the others may change, as with
    /// upstream's swap-remove.
    pub(crate) fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let index = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(index);
        self.requested.subtract(&pod.requests.requests);
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for port in &pod.host_ports {
            self.used_ports.retain(|p| p != port);
        }
        if let Some(i) = self.pods_with_affinity.iter().position(|p| p.key == key) {
            self.pods_with_affinity.swap_remove(i);
        }
        if let Some(i) = self
            .pods_with_required_anti_affinity
            .iter()
            .position(|p| p.key == key)
        {
            self.pods_with_required_anti_affinity.swap_remove(i);
        }
        if pod.has_scoring_affinity() {
            self.scoring_affinity_pods -= 1;
        }
        Some(pod)
    }
}

/// Upstream's `GetZoneKey`: region and zone (new labels first, then the
/// deprecated failure-domain ones), empty when the node has neither.
fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
    let get = |new: &str, old: &str| {
        labels
            .get(new)
            .or_else(|| labels.get(old))
            .map(String::as_str)
            .unwrap_or("")
    };
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    if zone.is_empty() && region.is_empty() {
        String::new()
    } else {
        format!("{region}:\u{0}:{zone}")
    }
}

/// Workloads whose selectors upstream's default spreading reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControllerKind {
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

impl ControllerKind {
    fn of_owner(api_version: &str, kind: &str) -> Option<ControllerKind> {
        match (api_version, kind) {
            ("v1", "ReplicationController") => Some(ControllerKind::ReplicationController),
            ("apps/v1", "ReplicaSet") => Some(ControllerKind::ReplicaSet),
            ("apps/v1", "StatefulSet") => Some(ControllerKind::StatefulSet),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct PodPlace {
    node: String,
    info: Arc<PodInfo>,
}

/// The cluster as the scheduler sees it. Every mutation is proportional to
/// the object changed (plus the pods on one node), never to the cluster:
/// the run loop applies watch events and assumed bindings one at a time.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Node slots; a removed node leaves a hole reused by the next one.
    nodes: Vec<Option<NodeInfo>>,
    free_slots: Vec<u32>,
    slot_by_name: HashMap<String, u32>,
    /// Upstream's node tree: zones in the order first seen, each with its
    /// nodes in the order added.
    zones: Vec<(String, Vec<u32>)>,
    /// Node slots in scheduling order (zones interleaved); rebuilt on first
    /// use after a node is added or removed.
    order: OnceLock<Vec<u32>>,
    pods: HashMap<String, PodPlace>,
    key_by_uid: HashMap<String, String>,
    /// Pods bound to nodes the snapshot has not seen yet, by node name.
    waiting_for_node: HashMap<String, Vec<Arc<PodInfo>>>,
    nominations: HashMap<String, PodPlace>,
    nominated_waiting_for_node: HashMap<String, Vec<Arc<PodInfo>>>,
    image_ids: HashMap<String, u32>,
    /// Per image id, the number of nodes that have it.
    image_node_counts: Vec<u32>,
    /// Slots of nodes with pods whose terms score other pods, so
    /// InterPodAffinity looks at no node when nobody uses such terms.
    nodes_with_scoring_affinity_pods: BTreeSet<u32>,
    /// Existing pods' required anti-affinity, by distinct term.
    anti_affinity: AntiAffinityIndex,
    /// Counts of matching pods per topology value, filled on first use by a
    /// scheduling cycle (hence the lock: cycles see `&Snapshot`) and kept
    /// current by pod events.
    counts: Mutex<CountCache>,
    namespace_labels: HashMap<String, Labels>,
    /// Service selectors by namespace and name (services without a
    /// selector select nothing and are not kept).
    services: HashMap<String, HashMap<String, Labels>>,
    controllers: HashMap<ControllerKind, HashMap<String, HashMap<String, LabelSelector>>>,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    pub fn num_nodes(&self) -> usize {
        self.slot_by_name.len()
    }

    pub fn num_pods(&self) -> usize {
        self.pods.len()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.slot_by_name.get(name).and_then(|slot| self.at(*slot))
    }

    /// Nodes in scheduling order: zones interleaved round-robin, as
    /// upstream's node tree lists them.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order().iter().filter_map(|slot| self.at(*slot))
    }

    pub(crate) fn at(&self, slot: u32) -> Option<&NodeInfo> {
        self.nodes.get(slot as usize).and_then(Option::as_ref)
    }

    pub(crate) fn slot_of(&self, name: &str) -> Option<u32> {
        self.slot_by_name.get(name).copied()
    }

    pub(crate) fn order(&self) -> &[u32] {
        self.order.get_or_init(|| {
            let mut order = Vec::with_capacity(self.slot_by_name.len());
            let mut index = 0;
            while order.len() < self.slot_by_name.len() {
                let before = order.len();
                for (_, slots) in &self.zones {
                    if let Some(slot) = slots.get(index) {
                        order.push(*slot);
                    }
                }
                if order.len() == before {
                    break;
                }
                index += 1;
            }
            order
        })
    }

    /// The pod with this `namespace/name` key, wherever it is placed.
    pub fn pod(&self, key: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(key).map(|p| &p.info)
    }

    /// Where a pod is placed (its node's name).
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|p| p.node.as_str())
    }

    pub(crate) fn nodes_with_scoring_affinity_pods(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes_with_scoring_affinity_pods
            .iter()
            .filter_map(|slot| self.at(*slot))
    }

    /// The distinct required anti-affinity terms of placed pods, each with
    /// how many pods carry it per topology value.
    pub(crate) fn anti_affinity_terms(&self) -> impl Iterator<Item = (&AffinityTerm, &Counts)> {
        self.anti_affinity.iter()
    }

    /// Matching pods per topology value; counted from scratch only the first
    /// time (or after node changes), then kept current by pod events.
    pub(crate) fn pod_counts(&self, key: &CountKey) -> Counts {
        let mut cache = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(key, || key.count(self.nodes()))
    }

    pub(crate) fn image_id(&self, name: &str) -> Option<u32> {
        self.image_ids.get(name).copied()
    }

    pub(crate) fn image_node_count(&self, image: u32) -> u32 {
        self.image_node_counts
            .get(image as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Adds a node, or updates it in place keeping its pods.
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let Some(name) = node.metadata.name.clone() else {
            return;
        };
        let images = self.intern_images(&node);
        match self.slot_by_name.get(&name).copied() {
            Some(slot) => {
                let Some(info) = self.nodes[slot as usize].as_mut() else {
                    return;
                };
                let old_images = std::mem::take(&mut info.images);
                let old_zone = std::mem::take(&mut info.zone_key);
                let old_node = info.node.clone();
                info.set_node(node, images);
                let new_zone = info.zone_key.clone();
                if old_node.metadata.labels != info.node.metadata.labels {
                    // Counts by topology value change with the labels.
                    let (old_labels, new_labels) = (
                        old_node.metadata.labels.as_ref(),
                        info.node.metadata.labels.as_ref(),
                    );
                    for pod in &info.pods_with_required_anti_affinity {
                        self.anti_affinity
                            .pod_moved(pod, old_labels.unwrap_or(&NO_LABELS), -1);
                        self.anti_affinity
                            .pod_moved(pod, new_labels.unwrap_or(&NO_LABELS), 1);
                    }
                    self.counts
                        .get_mut()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                }
                self.count_images(&old_images, -1);
                if let Some(info) = self.nodes[slot as usize].as_ref() {
                    let new_images = info.images.clone();
                    self.count_images(&new_images, 1);
                }
                if old_zone != new_zone {
                    self.remove_from_zone(&old_zone, slot);
                    self.add_to_zone(new_zone, slot);
                }
            }
            None => {
                let mut info = NodeInfo::new(node, images);
                let slot = match self.free_slots.pop() {
                    Some(slot) => slot,
                    None => {
                        self.nodes.push(None);
                        u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                info.nominated = self
                    .nominated_waiting_for_node
                    .remove(&name)
                    .unwrap_or_default();
                let new_images = info.images.clone();
                self.count_images(&new_images, 1);
                self.add_to_zone(info.zone_key.clone(), slot);
                self.nodes[slot as usize] = Some(info);
                self.slot_by_name.insert(name.clone(), slot);
                // A new node is a new topology value for every count.
                self.counts
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                for pod in self.waiting_for_node.remove(&name).unwrap_or_default() {
                    self.attach(slot, pod);
                }
            }
        }
    }

    /// Removes a node. Its pods stay known and return to it if a node of the
    /// same name comes back (upstream keeps them until they are deleted).
    pub fn remove_node(&mut self, name: &str) {
        let Some(slot) = self.slot_by_name.remove(name) else {
            return;
        };
        let Some(info) = self.nodes[slot as usize].take() else {
            return;
        };
        self.count_images(&info.images, -1);
        self.remove_from_zone(&info.zone_key, slot);
        self.nodes_with_scoring_affinity_pods.remove(&slot);
        for pod in &info.pods_with_required_anti_affinity {
            self.anti_affinity.pod_moved(pod, info.labels(), -1);
        }
        self.counts
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.free_slots.push(slot);
        if !info.pods.is_empty() {
            self.waiting_for_node.insert(name.to_string(), info.pods);
        }
        if !info.nominated.is_empty() {
            self.nominated_waiting_for_node
                .insert(name.to_string(), info.nominated);
        }
    }

    /// Adds a pod bound or assumed on `spec.nodeName`, or updates it. A pod
    /// without a node, or one that has finished (Succeeded, Failed), is
    /// removed instead: the scheduler accounts only pods that hold resources.
    /// A pod that is bound stops being nominated.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        self.remove_pod(&key);
        self.remove_nomination(&key);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
            return;
        }
        let node = node.to_string();
        if let Some(uid) = pod.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
            self.key_by_uid.insert(uid.to_string(), key.clone());
        }
        let info = Arc::new(PodInfo::new(pod));
        match self.slot_by_name.get(&node).copied() {
            Some(slot) => self.attach(slot, info.clone()),
            None => self
                .waiting_for_node
                .entry(node.clone())
                .or_default()
                .push(info.clone()),
        }
        self.pods.insert(key, PodPlace { node, info });
    }

    /// The same as [`Snapshot::add_pod`]: the new version replaces the old.
    pub fn update_pod(&mut self, pod: Arc<Pod>) {
        self.add_pod(pod);
    }

    /// Removes a pod by `namespace/name` or by UID; returns it if it was
    /// placed.
    pub fn remove_pod(&mut self, key_or_uid: &str) -> Option<Arc<Pod>> {
        let key = self.resolve_key(key_or_uid)?;
        let place = self.pods.remove(&key)?;
        if let Some(uid) = place.info.pod.metadata.uid.as_deref() {
            self.key_by_uid.remove(uid);
        }
        match self.slot_by_name.get(&place.node).copied() {
            Some(slot) => self.detach(slot, &key),
            None => {
                if let Some(waiting) = self.waiting_for_node.get_mut(&place.node) {
                    waiting.retain(|p| p.key != key);
                    if waiting.is_empty() {
                        self.waiting_for_node.remove(&place.node);
                    }
                }
            }
        }
        Some(place.info.pod.clone())
    }

    fn resolve_key(&self, key_or_uid: &str) -> Option<String> {
        if key_or_uid.contains('/') {
            Some(key_or_uid.to_string())
        } else {
            self.key_by_uid.get(key_or_uid).cloned()
        }
    }

    /// Records that `pod` (not yet bound) is nominated to `node_name`:
    /// filters then treat it as occupying that node for pods of lower or
    /// equal priority, as upstream's nominator does.
    pub fn nominate(&mut self, pod: Arc<Pod>, node_name: &str) {
        let key = pod_key(&pod);
        self.remove_nomination(&key);
        if node_name.is_empty() {
            return;
        }
        let info = Arc::new(PodInfo::new(pod));
        match self
            .slot_by_name
            .get(node_name)
            .and_then(|slot| self.nodes[*slot as usize].as_mut())
        {
            Some(node) => node.nominated.push(info.clone()),
            None => self
                .nominated_waiting_for_node
                .entry(node_name.to_string())
                .or_default()
                .push(info.clone()),
        }
        self.nominations.insert(
            key,
            PodPlace {
                node: node_name.to_string(),
                info,
            },
        );
    }

    /// Forgets a nomination, by `namespace/name` (or UID of a nominated pod).
    pub fn remove_nomination(&mut self, key_or_uid: &str) {
        let key = if key_or_uid.contains('/') {
            key_or_uid.to_string()
        } else {
            match self
                .nominations
                .iter()
                .find(|(_, p)| p.info.pod.metadata.uid.as_deref() == Some(key_or_uid))
            {
                Some((key, _)) => key.clone(),
                None => return,
            }
        };
        let Some(place) = self.nominations.remove(&key) else {
            return;
        };
        let list = match self
            .slot_by_name
            .get(&place.node)
            .and_then(|slot| self.nodes[*slot as usize].as_mut())
        {
            Some(node) => &mut node.nominated,
            None => match self.nominated_waiting_for_node.get_mut(&place.node) {
                Some(list) => list,
                None => return,
            },
        };
        list.retain(|p| p.key != key);
    }

    /// The node a pod is nominated to.
    pub fn nominated_node(&self, key: &str) -> Option<&str> {
        self.nominations.get(key).map(|p| p.node.as_str())
    }

    /// Sets a namespace's labels (namespaceSelector in affinity terms reads them).
    pub fn set_namespace(&mut self, name: &str, labels: Labels) {
        self.namespace_labels.insert(name.to_string(), labels);
    }

    /// Records a Namespace's labels from the object.
    pub fn upsert_namespace(&mut self, namespace: &Namespace) {
        if let Some(name) = namespace.metadata.name.as_deref() {
            self.set_namespace(name, namespace.metadata.labels.clone().unwrap_or_default());
        }
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespace_labels.remove(name);
    }

    pub fn namespace_labels(&self, name: &str) -> Option<&Labels> {
        self.namespace_labels.get(name)
    }

    pub(crate) fn namespaces_matching<'a>(
        &'a self,
        selector: &'a LabelSelector,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.namespace_labels
            .iter()
            .filter(|(_, labels)| selector.matches(labels))
            .map(|(name, _)| name.as_str())
    }

    /// Records a Service's selector (default spreading groups the pods a
    /// Service selects). `None`: the Service selects nothing.
    pub fn upsert_service(&mut self, namespace: &str, name: &str, selector: Option<&Labels>) {
        match selector {
            Some(selector) => {
                self.services
                    .entry(namespace.to_string())
                    .or_default()
                    .insert(name.to_string(), selector.clone());
            }
            None => self.remove_service(namespace, name),
        }
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        if let Some(services) = self.services.get_mut(namespace) {
            services.remove(name);
        }
    }

    /// Records the selector of a ReplicationController, ReplicaSet or
    /// StatefulSet (default spreading groups the pods it owns).
    pub fn upsert_controller(
        &mut self,
        kind: ControllerKind,
        namespace: &str,
        name: &str,
        selector: LabelSelector,
    ) {
        self.controllers
            .entry(kind)
            .or_default()
            .entry(namespace.to_string())
            .or_default()
            .insert(name.to_string(), selector);
    }

    pub fn remove_controller(&mut self, kind: ControllerKind, namespace: &str, name: &str) {
        if let Some(names) = self
            .controllers
            .get_mut(&kind)
            .and_then(|n| n.get_mut(namespace))
        {
            names.remove(name);
        }
    }

    /// Upstream's `DefaultSelector`: the selectors of the Services that
    /// select the pod, plus that of its controlling RC, ReplicaSet or
    /// StatefulSet. Empty when nothing groups the pod.
    pub(crate) fn default_spread_selector(&self, pod: &Pod) -> LabelSelector {
        let namespace = pod_namespace(pod);
        let labels = pod_labels(pod);
        let mut set = Labels::new();
        for selector in self
            .services
            .get(namespace)
            .into_iter()
            .flat_map(|s| s.values())
        {
            if LabelSelector::from_map(selector).matches(labels) {
                set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let controller = owner.and_then(|o| {
            let kind = ControllerKind::of_owner(&o.api_version, &o.kind)?;
            self.controllers
                .get(&kind)?
                .get(namespace)?
                .get(&o.name)
                .map(|s| (kind, s))
        });
        let mut selector = LabelSelector::from_map(&set);
        if let Some((_, LabelSelector::All(requirements))) = controller {
            // An RC's map merges into the set; a ReplicaSet's or
            // StatefulSet's requirements are added. Both amount to adding
            // the requirements.
            selector.add(requirements.iter().cloned());
        }
        selector
    }

    fn intern_images(&mut self, node: &Node) -> Vec<(u32, i64)> {
        let mut images: Vec<(u32, i64)> = Vec::new();
        for image in node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
        {
            let size = image.size_bytes.unwrap_or(0);
            for name in image.names.iter().flatten() {
                let next = u32::try_from(self.image_node_counts.len()).unwrap_or(u32::MAX);
                let id = *self.image_ids.entry(name.clone()).or_insert(next);
                if id == next {
                    self.image_node_counts.push(0);
                }
                match images.iter_mut().find(|(i, _)| *i == id) {
                    Some(entry) => entry.1 = size,
                    None => images.push((id, size)),
                }
            }
        }
        images.sort_unstable_by_key(|(id, _)| *id);
        images
    }

    fn count_images(&mut self, images: &[(u32, i64)], delta: i32) {
        for (id, _) in images {
            if let Some(count) = self.image_node_counts.get_mut(*id as usize) {
                *count = count.saturating_add_signed(delta);
            }
        }
    }

    fn add_to_zone(&mut self, zone: String, slot: u32) {
        match self.zones.iter_mut().find(|(z, _)| *z == zone) {
            Some((_, slots)) => slots.push(slot),
            None => self.zones.push((zone, vec![slot])),
        }
        self.order = OnceLock::new();
    }

    fn remove_from_zone(&mut self, zone: &str, slot: u32) {
        if let Some(index) = self.zones.iter().position(|(z, _)| z == zone) {
            let slots = &mut self.zones[index].1;
            slots.retain(|s| *s != slot);
            if slots.is_empty() {
                self.zones.remove(index);
            }
        }
        self.order = OnceLock::new();
    }

    /// Places a pod on a known node and updates every index it is in.
    fn attach(&mut self, slot: u32, pod: Arc<PodInfo>) {
        let Some(node) = self.nodes[slot as usize].as_mut() else {
            return;
        };
        node.add_pod(pod.clone());
        let node = node.node.clone();
        self.account(slot, &pod, &node, 1);
    }

    fn detach(&mut self, slot: u32, key: &str) {
        let Some(node) = self.nodes[slot as usize].as_mut() else {
            return;
        };
        let Some(pod) = node.remove_pod(key) else {
            return;
        };
        let node = node.node.clone();
        self.account(slot, &pod, &node, -1);
    }

    fn account(&mut self, slot: u32, pod: &PodInfo, node: &Node, delta: i64) {
        let labels = node.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        self.counts
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .pod_moved(pod, node, delta);
        if !pod.required_anti_affinity.is_empty() {
            self.anti_affinity.pod_moved(pod, labels, delta);
        }
        if pod.has_scoring_affinity() {
            if self.at(slot).is_some_and(|n| n.scoring_affinity_pods > 0) {
                self.nodes_with_scoring_affinity_pods.insert(slot);
            } else {
                self.nodes_with_scoring_affinity_pods.remove(&slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{NodeBuilder, PodBuilder};

    fn names(snapshot: &Snapshot) -> Vec<&str> {
        snapshot.nodes().map(|n| n.name()).collect()
    }

    #[test]
    fn keeps_sums_as_pods_come_and_go() {
        let mut s = Snapshot::new();
        s.upsert_node(Arc::new(
            NodeBuilder::new("n1").cpu("4").memory("8Gi").build(),
        ));
        s.add_pod(Arc::new(
            PodBuilder::new("a")
                .uid("uid-a")
                .requests("1", "1Gi")
                .host_port(80)
                .node("n1")
                .build(),
        ));
        s.add_pod(Arc::new(PodBuilder::new("b").node("n1").build()));
        let n1 = s.node("n1").expect("n1");
        assert_eq!(n1.requested().milli_cpu, 1000);
        assert_eq!(n1.non_zero_requested(), (1100, (1 << 30) + (200 << 20)));
        assert_eq!(n1.pods().len(), 2);
        assert_eq!(n1.used_ports().len(), 1);
        assert_eq!(
            s.remove_pod("uid-a")
                .and_then(|p| p.metadata.name.clone())
                .as_deref(),
            Some("a")
        );
        let n1 = s.node("n1").expect("n1");
        assert_eq!(n1.requested().milli_cpu, 0);
        assert_eq!(n1.used_ports().len(), 0);
        assert!(s.remove_pod("default/b").is_some());
        assert_eq!(s.num_pods(), 0);
    }

    #[test]
    fn pods_wait_for_their_node_and_survive_its_removal() {
        let mut s = Snapshot::new();
        s.add_pod(Arc::new(
            PodBuilder::new("early")
                .requests("500m", "0")
                .node("n1")
                .build(),
        ));
        s.upsert_node(Arc::new(NodeBuilder::new("n1").build()));
        assert_eq!(s.node("n1").map(|n| n.requested().milli_cpu), Some(500));
        s.remove_node("n1");
        assert_eq!(s.num_nodes(), 0);
        assert_eq!(s.pod_node("default/early"), Some("n1"));
        s.upsert_node(Arc::new(NodeBuilder::new("n1").build()));
        assert_eq!(s.node("n1").map(|n| n.pods().len()), Some(1));
    }

    #[test]
    fn finished_and_unbound_pods_are_not_accounted() {
        let mut s = Snapshot::new();
        s.upsert_node(Arc::new(NodeBuilder::new("n1").build()));
        s.add_pod(Arc::new(PodBuilder::new("a").node("n1").build()));
        s.add_pod(Arc::new(
            PodBuilder::new("a").node("n1").phase("Succeeded").build(),
        ));
        s.add_pod(Arc::new(PodBuilder::new("pending").build()));
        assert_eq!(s.num_pods(), 0);
        assert_eq!(s.node("n1").map(|n| n.pods().len()), Some(0));
    }

    #[test]
    fn lists_nodes_round_robin_across_zones() {
        let mut s = Snapshot::new();
        for (name, zone) in [
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("a3", "a"),
            ("c1", "c"),
            ("b2", "b"),
        ] {
            s.upsert_node(Arc::new(
                NodeBuilder::new(name)
                    .label("topology.kubernetes.io/zone", zone)
                    .build(),
            ));
        }
        assert_eq!(names(&s), ["a1", "b1", "c1", "a2", "b2", "a3"]);
        s.remove_node("b1");
        assert_eq!(names(&s), ["a1", "b2", "c1", "a2", "a3"]);
        s.upsert_node(Arc::new(
            NodeBuilder::new("a1")
                .label("topology.kubernetes.io/zone", "c")
                .build(),
        ));
        assert_eq!(names(&s), ["a2", "b2", "c1", "a3", "a1"]);
    }

    #[test]
    fn tracks_nodes_with_affinity_pods_and_image_spread() {
        let mut s = Snapshot::new();
        s.upsert_node(Arc::new(
            NodeBuilder::new("n1").image(&["nginx:1.27"], 100).build(),
        ));
        s.upsert_node(Arc::new(
            NodeBuilder::new("n2")
                .image(&["nginx:1.27", "redis:7"], 100)
                .build(),
        ));
        let nginx = s.image_id("nginx:1.27").expect("interned");
        assert_eq!(s.image_node_count(nginx), 2);
        s.remove_node("n1");
        assert_eq!(s.image_node_count(nginx), 1);

        let anti = PodBuilder::new("anti")
            .label("app", "x")
            .anti_affinity("app", "x", "kubernetes.io/hostname")
            .node("n2")
            .build();
        s.add_pod(Arc::new(anti));
        assert_eq!(s.anti_affinity_terms().count(), 1);
        assert_eq!(
            s.nodes_with_scoring_affinity_pods().count(),
            0,
            "required anti-affinity only filters"
        );
        let fan = PodBuilder::new("fan")
            .preferred_affinity(1, "app", "x", "kubernetes.io/hostname")
            .node("n2")
            .build();
        s.add_pod(Arc::new(fan));
        assert_eq!(s.nodes_with_scoring_affinity_pods().count(), 1);
        s.remove_pod("default/anti");
        s.remove_pod("default/fan");
        assert_eq!(s.anti_affinity_terms().count(), 0);
        assert_eq!(s.nodes_with_scoring_affinity_pods().count(), 0);
    }

    #[test]
    fn nominations_follow_their_node() {
        let mut s = Snapshot::new();
        let pod = Arc::new(PodBuilder::new("big").priority(100).build());
        s.nominate(pod.clone(), "n1");
        s.upsert_node(Arc::new(NodeBuilder::new("n1").build()));
        assert_eq!(s.node("n1").map(|n| n.nominated_pods().len()), Some(1));
        // Binding the pod ends the nomination.
        let mut bound = (*pod).clone();
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some("n1".into());
        }
        s.add_pod(Arc::new(bound));
        assert_eq!(s.node("n1").map(|n| n.nominated_pods().len()), Some(0));
        assert_eq!(s.nominated_node("default/big"), None);
    }
}
