//! The node lifecycle controller: marks silent nodes Unknown, keeps the not-ready/unreachable/unschedulable taints in step with node state (NoExecute taints rate-limited per zone), and marks Pods on failed nodes not ready.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use client::{Change, EventRecorder, Informers, WorkQueue};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde_json::json;
use tokio::time::Instant;

use crate::health::{self, NodeHealth};
use crate::taints::{self, NO_EXECUTE, TAINT_NOT_READY, TAINT_UNREACHABLE};

/// Upstream's kube-controller-manager flags for this controller.
#[derive(Clone, Debug)]
pub struct NodeLifecycleConfig {
    /// `--node-monitor-period`.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`.
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate`: NoExecute taintings per second per zone.
    pub eviction_rate: f64,
    /// `--secondary-node-eviction-rate`, for large partially disrupted zones.
    pub secondary_eviction_rate: f64,
    /// `--large-cluster-size-threshold`.
    pub large_cluster_threshold: usize,
    /// `--unhealthy-zone-threshold`.
    pub unhealthy_zone_threshold: f64,
    /// Also run the taint-eviction controller (upstream runs it by default).
    pub taint_eviction: bool,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            eviction_rate: 0.1,
            secondary_eviction_rate: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
            taint_eviction: true,
        }
    }
}

const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
const EXCLUDE_DISRUPTION_LABEL: &str = "node.kubernetes.io/exclude-disruption";
/// How often queued nodes get their NoExecute taint (upstream's NodeEvictionPeriod).
const TAINTING_PERIOD: Duration = Duration::from_millis(100);
const SWAP_RETRIES: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ZoneState {
    Initial,
    Normal,
    FullDisruption,
    PartialDisruption,
}

/// A token bucket with a burst of one, as upstream's eviction limiter.
struct RateLimiter {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(qps: f64) -> RateLimiter {
        RateLimiter {
            qps,
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    fn try_accept(&mut self) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Nodes waiting for their NoExecute taint in one zone (upstream's
/// RateLimitedTimedQueue): a node stays in `members` after tainting so it is
/// not queued again until it is marked reachable.
struct ZoneTainter {
    limiter: RateLimiter,
    queue: VecDeque<String>,
    members: HashSet<String>,
}

impl ZoneTainter {
    fn add(&mut self, node: &str) -> bool {
        if !self.members.insert(node.to_string()) {
            return false;
        }
        self.queue.push_back(node.to_string());
        true
    }

    fn remove(&mut self, node: &str) {
        self.members.remove(node);
        self.queue.retain(|queued| queued != node);
    }
}

/// Upstream's zone key: region and zone labels joined by ":\0:".
fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let pick = |stable: &str, beta: &str| {
        labels
            .get(stable)
            .or_else(|| labels.get(beta))
            .cloned()
            .unwrap_or_default()
    };
    let region = pick(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = pick(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

fn compute_zone_state(ready_statuses: &[Option<String>], unhealthy_threshold: f64) -> ZoneState {
    let ready = ready_statuses
        .iter()
        .filter(|s| s.as_deref() == Some("True"))
        .count();
    let not_ready = ready_statuses.len() - ready;
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / (ready + not_ready) as f64 >= unhealthy_threshold
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

fn not_ready_taint() -> Taint {
    taints::taint(TAINT_NOT_READY, NO_EXECUTE)
}

fn unreachable_taint() -> Taint {
    taints::taint(TAINT_UNREACHABLE, NO_EXECUTE)
}

/// Swaps controller taints on a node through the API: the cached node first,
/// then fresh reads on conflict. Returns whether the node now has them.
pub(crate) async fn swap_node_taints(
    api: &Api<Node>,
    cached: Option<&Node>,
    name: &str,
    add: &[Taint],
    remove: &[Taint],
) -> anyhow::Result<()> {
    let mut node = cached.cloned();
    for _ in 0..SWAP_RETRIES {
        let current = match node.take() {
            Some(node) => node,
            None => match api.get_opt(name).await? {
                Some(node) => node,
                None => return Ok(()),
            },
        };
        let Some(new_taints) = taints::swap_taints(
            taints::node_taints(&current),
            add,
            remove,
            Time(Timestamp::now()),
        ) else {
            return Ok(());
        };
        let taints_value = if new_taints.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&new_taints)?
        };
        let patch = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": {"taints": taints_value},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("failed to swap taints of node {name}: kept conflicting")
}

struct Lifecycle {
    client: Client,
    config: NodeLifecycleConfig,
    nodes: client::Informer<Node>,
    leases: client::Informer<Lease>,
    pods: client::Informer<Pod>,
    recorder: EventRecorder,
    health: HashMap<String, NodeHealth>,
    known: HashMap<String, Arc<Node>>,
    zone_states: HashMap<String, ZoneState>,
    tainters: HashMap<String, ZoneTainter>,
    retry_mark_pods: HashSet<String>,
}

impl Lifecycle {
    fn node_api(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn add_zone(&mut self, node: &Node) {
        let zone = zone_key(node);
        if !self.zone_states.contains_key(&zone) {
            self.zone_states.insert(zone.clone(), ZoneState::Initial);
            self.tainters.insert(
                zone,
                ZoneTainter {
                    limiter: RateLimiter::new(self.config.eviction_rate),
                    queue: VecDeque::new(),
                    members: HashSet::new(),
                },
            );
        }
    }

    fn tainter(&mut self, node: &Node) -> &mut ZoneTainter {
        self.add_zone(node);
        self.tainters
            .get_mut(&zone_key(node))
            .expect("zone added above")
    }

    /// Removes the NoExecute not-ready/unreachable taints and any queued tainting.
    async fn mark_reachable(&mut self, node: &Node) -> anyhow::Result<()> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let present = taints::node_taints(node);
        if taints::has_taint(present, &unreachable_taint())
            || taints::has_taint(present, &not_ready_taint())
        {
            swap_node_taints(
                &self.node_api(),
                Some(node),
                &name,
                &[],
                &[unreachable_taint(), not_ready_taint()],
            )
            .await?;
        }
        self.tainter(node).remove(&name);
        Ok(())
    }

    fn mark_for_tainting(&mut self, node: &Node, status: &str) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let template = if status == "False" {
            not_ready_taint()
        } else {
            unreachable_taint()
        };
        let tainted = taints::has_taint(taints::node_taints(node), &template);
        let tainter = self.tainter(node);
        if !tainted {
            // Someone removed our taint (or it was never there): queue anew.
            tainter.remove(&name);
        }
        tainter.add(&name);
    }

    /// Upstream's processTaintBaseEviction, on the Ready status seen before this pass.
    async fn taint_by_ready_status(&mut self, node: &Node, observed: &str) -> anyhow::Result<()> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let present = taints::node_taints(node);
        match observed {
            "False" if taints::has_taint(present, &unreachable_taint()) => {
                swap_node_taints(
                    &self.node_api(),
                    Some(node),
                    &name,
                    &[not_ready_taint()],
                    &[unreachable_taint()],
                )
                .await
            }
            "Unknown" if taints::has_taint(present, &not_ready_taint()) => {
                swap_node_taints(
                    &self.node_api(),
                    Some(node),
                    &name,
                    &[unreachable_taint()],
                    &[not_ready_taint()],
                )
                .await
            }
            "False" | "Unknown" => {
                self.mark_for_tainting(node, observed);
                Ok(())
            }
            "True" => self.mark_reachable(node).await,
            _ => Ok(()),
        }
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .store()
            .state()
            .into_iter()
            .filter(|pod| pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }

    /// Upstream's MarkPodsNotReady: flips each Pod's Ready condition to False.
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>]) -> anyhow::Result<()> {
        let mut failed = None;
        for pod in pods {
            let mut updated = (**pod).clone();
            let Some(ready) = updated
                .status
                .as_mut()
                .and_then(|status| status.conditions.as_mut())
                .and_then(|conditions| conditions.iter_mut().find(|c| c.type_ == "Ready"))
            else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            ready.status = "False".into();
            ready.last_transition_time = Some(Time(Timestamp::now()));
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            match api
                .replace_status(&name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {
                    self.recorder
                        .warning(pod.as_ref(), "NodeNotReady", "Node is not ready".into());
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    fn lease_renewed(&self, node: &str) -> Option<Timestamp> {
        self.leases
            .store()
            .get(&ObjectRef::new(node).within(NODE_LEASE_NAMESPACE))
            .and_then(|lease| lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0))
    }

    /// One pass of upstream's monitorNodeHealth.
    async fn monitor(&mut self) {
        let nodes = self.nodes.store().state();
        let current: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            if self.known.contains_key(&name) {
                continue;
            }
            self.recorder.normal(
                node.as_ref(),
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            );
            self.known.insert(name, node.clone());
            self.add_zone(node);
            if let Err(error) = self.mark_reachable(node).await {
                tracing::warn!(%error, "removing taints from a newly seen node");
            }
        }
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|name| !current.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(node) = self.known.remove(&name) {
                self.recorder.normal(
                    node.as_ref(),
                    "RemovingNode",
                    format!("Node {name} event: Removing Node {name} from Controller"),
                );
                self.tainter(&node).remove(&name);
            }
            self.health.remove(&name);
        }

        let mut zone_conditions: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let Some(assessment) = self.update_health(node).await else {
                continue;
            };
            if !node
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION_LABEL))
            {
                zone_conditions
                    .entry(zone_key(node))
                    .or_default()
                    .push(assessment.current_ready.clone());
            }
            let Some(current_ready) = assessment.current_ready.as_deref() else {
                self.retry_mark_pods.remove(&name);
                continue;
            };
            if let Err(error) = self
                .taint_by_ready_status(node, &assessment.observed_ready)
                .await
            {
                tracing::warn!(node = %name, %error, "updating NoExecute taints");
            }
            let became_not_ready = current_ready != "True" && assessment.observed_ready == "True";
            let retry = self.retry_mark_pods.contains(&name) && assessment.observed_ready != "True";
            if became_not_ready {
                self.recorder.normal(
                    node.as_ref(),
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
            }
            if (became_not_ready || retry)
                && let Err(error) = self.mark_pods_not_ready(&self.pods_on(&name)).await
            {
                tracing::warn!(node = %name, %error, "marking pods not ready; will retry");
                self.retry_mark_pods.insert(name);
                continue;
            }
            self.retry_mark_pods.remove(&name);
        }
        self.handle_disruption(&zone_conditions, &nodes).await;
    }

    async fn update_health(&mut self, node: &Arc<Node>) -> Option<health::Assessment> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut node = node.clone();
        for _ in 0..SWAP_RETRIES {
            let assessment = health::assess(
                self.health.get(&name),
                &node,
                self.lease_renewed(&name),
                Instant::now(),
                Timestamp::now(),
                self.config.node_monitor_grace_period,
                self.config.node_startup_grace_period,
            );
            let Some(conditions) = &assessment.new_conditions else {
                self.health.insert(name, assessment.health.clone());
                return Some(assessment);
            };
            let mut updated = (*node).clone();
            updated
                .status
                .get_or_insert_with(Default::default)
                .conditions = Some(conditions.clone());
            match self
                .node_api()
                .replace_status(&name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {
                    self.health.insert(name, assessment.health.clone());
                    return Some(assessment);
                }
                Err(error) => {
                    tracing::debug!(node = %name, %error, "updating node status; retrying with a fresh read");
                    node = Arc::new(self.node_api().get_opt(&name).await.ok()??);
                }
            }
        }
        None
    }

    /// Upstream's handleDisruption: per-zone eviction rates, and no
    /// evictions at all while every zone is fully disrupted.
    async fn handle_disruption(
        &mut self,
        zones: &BTreeMap<String, Vec<Option<String>>>,
        nodes: &[Arc<Node>],
    ) {
        let threshold = self.config.unhealthy_zone_threshold;
        let new_states: HashMap<String, ZoneState> = zones
            .iter()
            .map(|(zone, statuses)| (zone.clone(), compute_zone_state(statuses, threshold)))
            .collect();
        let all_fully_disrupted = new_states.values().all(|s| *s == ZoneState::FullDisruption);
        for zone in zones.keys() {
            self.zone_states
                .entry(zone.clone())
                .or_insert(ZoneState::Initial);
        }
        self.zone_states.retain(|zone, _| zones.contains_key(zone));
        let all_were_fully_disrupted = self
            .zone_states
            .values()
            .all(|s| *s == ZoneState::FullDisruption);
        if all_fully_disrupted && all_were_fully_disrupted {
            return;
        }
        if all_fully_disrupted {
            tracing::info!("all nodes are not ready; entering master disruption mode");
            for node in nodes {
                if let Err(error) = self.mark_reachable(node).await {
                    tracing::warn!(%error, "removing taints in master disruption mode");
                }
            }
            for (zone, state) in self.zone_states.iter_mut() {
                if let Some(tainter) = self.tainters.get_mut(zone) {
                    tainter.limiter = RateLimiter::new(0.0);
                }
                *state = ZoneState::FullDisruption;
            }
            return;
        }
        if all_were_fully_disrupted {
            tracing::info!("some nodes are ready; exiting master disruption mode");
            let now = Instant::now();
            for health in self.health.values_mut() {
                health.probe = now;
                health.ready_transition = now;
            }
        }
        let zones_to_set: Vec<(String, ZoneState)> = self
            .zone_states
            .iter()
            .filter_map(|(zone, state)| {
                let new_state = *new_states.get(zone)?;
                (all_were_fully_disrupted || *state != new_state).then(|| (zone.clone(), new_state))
            })
            .collect();
        for (zone, state) in zones_to_set {
            let size = zones.get(&zone).map_or(0, Vec::len);
            let qps = match state {
                ZoneState::PartialDisruption if size > self.config.large_cluster_threshold => {
                    self.config.secondary_eviction_rate
                }
                ZoneState::PartialDisruption => 0.0,
                _ => self.config.eviction_rate,
            };
            if let Some(tainter) = self.tainters.get_mut(&zone) {
                tainter.limiter = RateLimiter::new(qps);
            }
            self.zone_states.insert(zone, state);
        }
    }

    /// Upstream's doNoExecuteTaintingPass: taints queued nodes as the zone's
    /// rate allows.
    async fn taint_queued(&mut self) {
        let zones: Vec<String> = self.tainters.keys().cloned().collect();
        for zone in zones {
            while let Some(tainter) = self.tainters.get_mut(&zone) {
                let Some(name) = tainter.queue.front().cloned() else {
                    break;
                };
                if !tainter.limiter.try_accept() {
                    break;
                }
                tainter.queue.pop_front();
                let Some(node) = self.nodes.store().get(&ObjectRef::new(&name)) else {
                    continue;
                };
                let status = health::condition(&node, "Ready").map(|c| c.status.clone());
                let (add, remove) = match status.as_deref() {
                    Some("False") => (not_ready_taint(), unreachable_taint()),
                    Some("Unknown") => (unreachable_taint(), not_ready_taint()),
                    // Ready again (or never reported): nothing to taint.
                    _ => continue,
                };
                if let Err(error) =
                    swap_node_taints(&self.node_api(), Some(&node), &name, &[add], &[remove]).await
                {
                    tracing::warn!(node = %name, %error, "adding NoExecute taint; will retry");
                    if let Some(tainter) = self.tainters.get_mut(&zone) {
                        tainter.queue.push_back(name);
                    }
                    break;
                }
            }
        }
    }

    /// Upstream's processPod: a Pod newly bound to a node that is not ready
    /// is marked not ready at once.
    async fn pod_bound(&self, pod: &Arc<Pod>) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let Some(health) = self.health.get(&node) else {
            return;
        };
        let Some(ready) = &health.ready else { return };
        if ready.status != "True"
            && let Err(error) = self.mark_pods_not_ready(std::slice::from_ref(pod)).await
        {
            tracing::warn!(%error, "marking a pod on a not-ready node not ready");
        }
    }
}

/// Upstream's doNoScheduleTaintingPass and reconcileNodeLabels for one node.
async fn sync_node(
    client: &Client,
    nodes: &client::Informer<Node>,
    name: &str,
) -> anyhow::Result<()> {
    let Some(node) = nodes.store().get(&ObjectRef::new(name)) else {
        return Ok(());
    };
    let api: Api<Node> = Api::all(client.clone());
    let (add, remove) = taints::no_schedule_changes(&node);
    if !add.is_empty() || !remove.is_empty() {
        swap_node_taints(&api, Some(&node), name, &add, &remove).await?;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let mut missing = serde_json::Map::new();
    for (stable, beta) in [
        ("kubernetes.io/os", "beta.kubernetes.io/os"),
        ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
    ] {
        if let Some(value) = labels.get(stable)
            && labels.get(beta) != Some(value)
        {
            missing.insert(beta.into(), json!(value));
        }
    }
    if !missing.is_empty() {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": missing}})),
        )
        .await?;
    }
    Ok(())
}

/// Runs the node lifecycle controller (and, unless disabled, the taint
/// eviction controller) until dropped.
pub async fn run_node_lifecycle(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    config: NodeLifecycleConfig,
) -> anyhow::Result<()> {
    let nodes = informers.informer::<Node>();
    let pods = informers.informer::<Pod>();
    let leases = informers.informer::<Lease>();
    let mut node_changes = nodes.subscribe();
    let mut pod_changes = pods.subscribe();
    nodes.wait_synced().await;
    pods.wait_synced().await;
    leases.wait_synced().await;

    let eviction = {
        let (client, informers, enabled) =
            (client.clone(), informers.clone(), config.taint_eviction);
        async move {
            if enabled {
                crate::eviction::run_taint_eviction(client, informers).await
            } else {
                Ok(())
            }
        }
    };

    let queue: WorkQueue<String> = WorkQueue::new();
    let no_schedule_workers = {
        let (client, nodes) = (client.clone(), nodes.clone());
        client::workqueue::run_workers(queue.clone(), workers, move |name: String| {
            let (client, nodes) = (client.clone(), nodes.clone());
            async move {
                sync_node(&client, &nodes, &name).await?;
                Ok(None)
            }
        })
    };

    let mut lifecycle = Lifecycle {
        recorder: EventRecorder::new(client.clone(), "node-controller"),
        client,
        config: config.clone(),
        nodes,
        leases,
        pods,
        health: HashMap::new(),
        known: HashMap::new(),
        zone_states: HashMap::new(),
        tainters: HashMap::new(),
        retry_mark_pods: HashSet::new(),
    };
    let monitor = async move {
        let mut monitor_tick = tokio::time::interval(config.node_monitor_period);
        let mut tainting_tick = tokio::time::interval(TAINTING_PERIOD);
        monitor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tainting_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = monitor_tick.tick() => lifecycle.monitor().await,
                _ = tainting_tick.tick() => lifecycle.taint_queued().await,
                change = node_changes.recv() => {
                    let Some(change) = change else { break };
                    if let Change::Applied { new, .. } = change
                        && let Some(name) = new.metadata.name.clone()
                    {
                        queue.add(name);
                    }
                }
                change = pod_changes.recv() => {
                    let Some(change) = change else { break };
                    if let Change::Applied { old, new } = change {
                        let node_of = |pod: &Pod| pod.spec.as_ref().and_then(|s| s.node_name.clone());
                        let newly_bound = node_of(&new).is_some()
                            && old.as_deref().map(node_of) != Some(node_of(&new));
                        if newly_bound {
                            lifecycle.pod_bound(&new).await;
                        }
                    }
                }
            }
        }
    };
    let (eviction, (), ()) = tokio::join!(eviction, no_schedule_workers, monitor);
    eviction
}
