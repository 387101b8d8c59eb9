//! The scheduler's run loop: informers feed the snapshot and the queue, one task schedules pod after pod, bindings go out concurrently through `pods/binding`, failures become the PodScheduled condition and a FailedScheduling event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use client::{Change, EventRecorder, Informers};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use crate::framework::{Framework, Profile};
use crate::labels::LabelSelector;
use crate::preemption::{Preemption, PreemptionPlan};
use crate::queue::SchedulingQueue;
use crate::snapshot::{ControllerKind, Snapshot};

/// What the scheduler runs with.
#[derive(Clone)]
pub struct SchedulerConfig {
    /// One framework per profile; a pod is ours when its `spec.schedulerName`
    /// names one of them.
    pub profiles: Vec<Framework>,
    /// Bindings in flight at once.
    pub parallel_bindings: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            profiles: vec![Framework::new(Profile::default())],
            parallel_bindings: 256,
        }
    }
}

/// How a binding ended, reported back to the loop.
struct Bound {
    pod: Arc<Pod>,
    node: String,
    attempts: u32,
    result: Result<(), kube::Error>,
}

/// Schedules every pending pod of its profiles until the task is dropped.
pub async fn run(
    client: kube::Client,
    informers: Arc<Informers>,
    config: SchedulerConfig,
) -> anyhow::Result<()> {
    let nodes = informers.informer::<Node>();
    let pods = informers.informer::<Pod>();
    let budgets = informers.informer::<PodDisruptionBudget>();
    let namespaces = informers.informer::<Namespace>();
    let services = informers.informer::<Service>();
    let replica_sets = informers.informer::<ReplicaSet>();
    let controllers = informers.informer::<ReplicationController>();
    let stateful_sets = informers.informer::<StatefulSet>();
    let mut node_changes = nodes.subscribe();
    let mut pod_changes = pods.subscribe();
    let mut namespace_changes = namespaces.subscribe();
    let mut service_changes = services.subscribe();
    let mut replica_set_changes = replica_sets.subscribe();
    let mut controller_changes = controllers.subscribe();
    let mut stateful_set_changes = stateful_sets.subscribe();
    informers.start();
    nodes.wait_synced().await;
    pods.wait_synced().await;
    budgets.wait_synced().await;
    namespaces.wait_synced().await;

    let profiles: HashMap<String, Framework> = config
        .profiles
        .iter()
        .map(|framework| (framework.scheduler_name().to_string(), framework.clone()))
        .collect();
    let recorder = EventRecorder::new(client.clone(), "default-scheduler");
    let bindings = Arc::new(Semaphore::new(config.parallel_bindings.max(1)));
    let (bound_sender, mut bound) = mpsc::unbounded_channel::<Bound>();
    let mut state = State {
        snapshot: Snapshot::new(),
        queue: SchedulingQueue::new(),
        assumed: HashSet::new(),
        profiles,
        rng: rand::rngs::SmallRng::from_os_rng(),
    };

    loop {
        // Take in everything that happened before deciding anything.
        loop {
            let mut progressed = false;
            while let Ok(change) = namespace_changes.try_recv() {
                state.on_namespace(change);
                progressed = true;
            }
            while let Ok(change) = service_changes.try_recv() {
                state.on_service(change);
                progressed = true;
            }
            while let Ok(change) = replica_set_changes.try_recv() {
                state.on_workload(ControllerKind::ReplicaSet, change, |rs| {
                    Some(LabelSelector::from_api(Some(&rs.spec.selector)))
                });
                progressed = true;
            }
            while let Ok(change) = controller_changes.try_recv() {
                state.on_workload(ControllerKind::ReplicationController, change, |rc| {
                    rc.spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .map(LabelSelector::from_map)
                });
                progressed = true;
            }
            while let Ok(change) = stateful_set_changes.try_recv() {
                state.on_workload(ControllerKind::StatefulSet, change, |set| {
                    Some(LabelSelector::from_api(Some(&set.spec.selector)))
                });
                progressed = true;
            }
            while let Ok(change) = node_changes.try_recv() {
                state.on_node(change);
                progressed = true;
            }
            while let Ok(change) = pod_changes.try_recv() {
                state.on_pod(change);
                progressed = true;
            }
            while let Ok(result) = bound.try_recv() {
                state.on_bound(result, &recorder);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let next_tick = state.queue.tick(Instant::now());
        if let Some(queued) = state.queue.pop() {
            let pod = queued.pod.clone();
            let Some(framework) = state.framework_of(&pod).cloned() else {
                state.queue.remove(&queued.uid);
                continue;
            };
            match framework.schedule_one(&state.snapshot, &pod, &mut state.rng) {
                Ok(result) => {
                    let node = result.node.to_string();
                    state.assume(&pod, &node);
                    state.queue.done(&queued.uid);
                    let permit = bindings.clone().acquire_owned().await?;
                    let client = client.clone();
                    let sender = bound_sender.clone();
                    let attempts = queued.attempts;
                    tokio::spawn(async move {
                        let result = bind(&client, &pod, &node).await;
                        drop(permit);
                        let _ = sender.send(Bound {
                            pod,
                            node,
                            attempts,
                            result,
                        });
                    });
                }
                Err(mut fit_error) => {
                    let budgets: Vec<PodDisruptionBudget> = budgets
                        .store()
                        .state()
                        .iter()
                        .map(|budget| PodDisruptionBudget::clone(budget))
                        .collect();
                    let outcome = framework.preempt(
                        &state.snapshot,
                        &pod,
                        &fit_error,
                        &budgets,
                        &mut state.rng,
                    );
                    let nominated = match outcome {
                        Preemption::Nominate(plan) => Some(plan),
                        Preemption::Failed { message } => {
                            fit_error.set_post_filter_message(message);
                            None
                        }
                    };
                    state
                        .queue
                        .requeue_unschedulable(&queued.uid, Instant::now());
                    if let Some(plan) = nominated {
                        state.snapshot.nominate(pod.clone(), &plan.node);
                        for cleared in &plan.nominations_to_clear {
                            state
                                .snapshot
                                .remove_nomination(&crate::pod_info::pod_key(cleared));
                        }
                        tokio::spawn(preempt(
                            client.clone(),
                            recorder.clone(),
                            framework.scheduler_name().to_string(),
                            pod.clone(),
                            plan,
                        ));
                    } else {
                        tokio::spawn(report_unschedulable(
                            client.clone(),
                            recorder.clone(),
                            pod.clone(),
                            fit_error.to_string(),
                        ));
                    }
                }
            }
            continue;
        }
        let wake = next_tick.map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(change) = node_changes.recv() => state.on_node(change),
            Some(change) = pod_changes.recv() => state.on_pod(change),
            Some(change) = namespace_changes.recv() => state.on_namespace(change),
            Some(change) = service_changes.recv() => state.on_service(change),
            Some(change) = replica_set_changes.recv() => state.on_workload(ControllerKind::ReplicaSet, change, |rs| {
                Some(LabelSelector::from_api(Some(&rs.spec.selector)))
            }),
            Some(change) = controller_changes.recv() => state.on_workload(ControllerKind::ReplicationController, change, |rc| {
                rc.spec.as_ref().and_then(|s| s.selector.as_ref()).map(LabelSelector::from_map)
            }),
            Some(change) = stateful_set_changes.recv() => state.on_workload(ControllerKind::StatefulSet, change, |set| {
                Some(LabelSelector::from_api(Some(&set.spec.selector)))
            }),
            Some(result) = bound.recv() => state.on_bound(result, &recorder),
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The loop's own state: only the scheduling task touches it.
struct State {
    snapshot: Snapshot,
    queue: SchedulingQueue,
    /// Pods assumed on a node while their binding is in flight.
    assumed: HashSet<String>,
    profiles: HashMap<String, Framework>,
    rng: rand::rngs::SmallRng,
}

fn uid_of(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref()
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .filter(|name| !name.is_empty())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl State {
    fn framework_of(&self, pod: &Pod) -> Option<&Framework> {
        let name = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.scheduler_name.as_deref())
            .filter(|name| !name.is_empty())
            .unwrap_or("default-scheduler");
        self.profiles.get(name)
    }

    fn on_service(&mut self, change: Change<Service>) {
        let service = change.object().clone();
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        match change {
            Change::Applied { .. } => {
                let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
                self.snapshot.upsert_service(namespace, name, selector);
            }
            Change::Deleted(_) => self.snapshot.remove_service(namespace, name),
        }
    }

    fn on_workload<K: kube::Resource>(
        &mut self,
        kind: ControllerKind,
        change: Change<K>,
        selector: impl Fn(&K) -> Option<LabelSelector>,
    ) {
        let object = change.object().clone();
        let namespace = object.meta().namespace.as_deref().unwrap_or_default();
        let name = object.meta().name.as_deref().unwrap_or_default();
        match (change, selector(&object)) {
            (Change::Applied { .. }, Some(selector)) => self
                .snapshot
                .upsert_controller(kind, namespace, name, selector),
            _ => self.snapshot.remove_controller(kind, namespace, name),
        }
    }

    fn on_namespace(&mut self, change: Change<Namespace>) {
        match change {
            Change::Applied { new, .. } => self.snapshot.upsert_namespace(&new),
            Change::Deleted(old) => {
                if let Some(name) = &old.metadata.name {
                    self.snapshot.remove_namespace(name);
                }
            }
        }
    }

    fn on_node(&mut self, change: Change<Node>) {
        match change {
            Change::Applied { old, new } => {
                let helps = old.as_ref().is_none_or(|old| {
                    old.spec != new.spec
                        || old.metadata.labels != new.metadata.labels
                        || old.status.as_ref().map(|s| &s.allocatable)
                            != new.status.as_ref().map(|s| &s.allocatable)
                });
                self.snapshot.upsert_node(new);
                if helps {
                    self.queue.move_all_unschedulable(Instant::now());
                }
            }
            Change::Deleted(old) => {
                if let Some(name) = &old.metadata.name {
                    self.snapshot.remove_node(name);
                }
            }
        }
    }

    fn on_pod(&mut self, change: Change<Pod>) {
        match change {
            Change::Applied { old, new } => {
                let Some(uid) = uid_of(&new).map(str::to_string) else {
                    return;
                };
                if is_terminal(&new) {
                    self.queue.remove(&uid);
                    if self.snapshot.remove_pod(&uid).is_some() {
                        self.queue.move_all_unschedulable(Instant::now());
                    }
                    return;
                }
                if node_of(&new).is_some() {
                    self.queue.remove(&uid);
                    self.assumed.remove(&uid);
                    let labels_changed = old.as_ref().is_some_and(|old| {
                        node_of(old).is_some() && old.metadata.labels != new.metadata.labels
                    });
                    self.snapshot.add_pod(new);
                    if labels_changed {
                        self.queue.move_all_unschedulable(Instant::now());
                    }
                    return;
                }
                if self.assumed.contains(&uid) || new.metadata.deletion_timestamp.is_some() {
                    return;
                }
                if self.framework_of(&new).is_some() {
                    self.queue.add_or_update(new);
                }
            }
            Change::Deleted(old) => {
                let Some(uid) = uid_of(&old) else {
                    return;
                };
                self.queue.remove(uid);
                self.assumed.remove(uid);
                self.snapshot.remove_nomination(uid);
                if self.snapshot.remove_pod(uid).is_some() {
                    self.queue.move_all_unschedulable(Instant::now());
                }
            }
        }
    }

    /// Counts `pod` on `node` before its binding is confirmed, so the next
    /// decisions see the resources as taken.
    fn assume(&mut self, pod: &Arc<Pod>, node: &str) {
        let mut assumed = Pod::clone(pod);
        if let Some(spec) = assumed.spec.as_mut() {
            spec.node_name = Some(node.to_string());
        }
        if let Some(uid) = uid_of(pod) {
            self.assumed.insert(uid.to_string());
        }
        self.snapshot.add_pod(Arc::new(assumed));
    }

    fn on_bound(&mut self, bound: Bound, recorder: &EventRecorder) {
        let Some(uid) = uid_of(&bound.pod).map(str::to_string) else {
            return;
        };
        match bound.result {
            Ok(()) => {
                recorder.normal(
                    bound.pod.as_ref(),
                    "Scheduled",
                    format!(
                        "Successfully assigned {}/{} to {}",
                        bound.pod.metadata.namespace.as_deref().unwrap_or_default(),
                        bound.pod.metadata.name.as_deref().unwrap_or_default(),
                        bound.node
                    ),
                );
            }
            Err(error) => {
                // Forget the assumption; the informer has the truth.
                if self.assumed.remove(&uid) {
                    self.snapshot.remove_pod(&uid);
                }
                let gone_or_taken = matches!(&error, kube::Error::Api(status) if status.code == 404 || status.code == 409);
                if !gone_or_taken {
                    tracing::warn!(pod = %bound.pod.metadata.name.as_deref().unwrap_or_default(), %error, "binding failed; retrying");
                    self.queue.readd_after_failed_binding(
                        bound.pod,
                        bound.attempts,
                        Instant::now(),
                    );
                }
            }
        }
    }
}

async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

/// PodScheduled=False with upstream's reason and the fit message, written
/// only when it changed, and a FailedScheduling event.
async fn report_unschedulable(
    client: kube::Client,
    recorder: EventRecorder,
    pod: Arc<Pod>,
    message: String,
) {
    recorder.warning(pod.as_ref(), "FailedScheduling", message.clone());
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(&message)) {
        return;
    }
    let api: Api<Pod> = Api::namespaced(
        client,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": jiff::Timestamp::now().to_string(),
    }]}});
    if let Err(error) = api
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        tracing::debug!(%error, "PodScheduled condition not written");
    }
}

/// Carries out a preemption plan: nominates the node on the preemptor,
/// marks each victim with the DisruptionTarget condition, and deletes it
/// gracefully.
async fn preempt(
    client: kube::Client,
    recorder: EventRecorder,
    scheduler_name: String,
    preemptor: Arc<Pod>,
    plan: PreemptionPlan,
) {
    let namespace = preemptor.metadata.namespace.as_deref().unwrap_or("default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let nominate = json!({"status": {"nominatedNodeName": plan.node}});
    if let Err(error) = pods
        .patch_status(
            preemptor.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(nominate),
        )
        .await
    {
        tracing::debug!(%error, "nominatedNodeName not written");
    }
    // The room on that node is this pod's now.
    for cleared in &plan.nominations_to_clear {
        let api: Api<Pod> = Api::namespaced(
            client.clone(),
            cleared.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let _ = api
            .patch_status(
                cleared.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"nominatedNodeName": null}})),
            )
            .await;
    }
    for victim in &plan.victims {
        let victims: Api<Pod> = Api::namespaced(
            client.clone(),
            victim.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = victim.metadata.name.as_deref().unwrap_or_default();
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{scheduler_name}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": jiff::Timestamp::now().to_string(),
        }]}});
        let _ = victims
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
            .await;
        match victims.delete(name, &DeleteParams::default()).await {
            Ok(_) => recorder.normal(
                victim.as_ref(),
                "Preempted",
                format!(
                    "Preempted by pod {} on node {}",
                    preemptor.metadata.uid.as_deref().unwrap_or_default(),
                    plan.node
                ),
            ),
            Err(error) => tracing::debug!(%error, victim = %name, "victim not deleted"),
        }
    }
}
