//! The ReplicaSet controller's core, shared by ReplicaSets and ReplicationControllers: keep `replicas` active pods matching the selector, adopting and releasing, with expectations, slow-start creation and ranked deletion.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use client::{Change, EventRecorder, Informers, WorkQueue};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};

use crate::expectations::Expectations;
use crate::pods;
use crate::ranking;
use crate::selector::Selector;
use crate::workload::{ReplicaCondition, ReplicaOwner, ReplicaStatus};

/// Options of the ReplicaSet and ReplicationController controllers.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Pods created or deleted by one sync at most (upstream's `BurstReplicas`).
    pub burst_replicas: usize,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            burst_replicas: 500,
        }
    }
}

/// Upstream's `SlowStartInitialBatchSize`.
const SLOW_START_INITIAL_BATCH: usize = 1;

/// Pods by their controller's UID, and orphans by namespace, kept from the
/// pod informer's changes so a sync costs the owner's pods, not the cluster's.
#[derive(Default)]
pub struct PodIndex {
    by_controller: HashMap<String, HashMap<String, Arc<Pod>>>,
    orphans: HashMap<String, HashMap<String, Arc<Pod>>>,
    /// Where each pod key is filed: `Some(uid)` under a controller, `None`
    /// among its namespace's orphans.
    filed_under: HashMap<String, Option<String>>,
}

impl PodIndex {
    pub fn insert(&mut self, pod: Arc<Pod>) {
        let key = pods::key(&pod);
        self.remove_key(&key);
        match client::owners::controller_of(&pod.metadata) {
            Some(controller) => {
                self.by_controller
                    .entry(controller.uid.clone())
                    .or_default()
                    .insert(key.clone(), pod.clone());
                self.filed_under.insert(key, Some(controller.uid.clone()));
            }
            None => {
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                self.orphans
                    .entry(namespace)
                    .or_default()
                    .insert(key.clone(), pod.clone());
                self.filed_under.insert(key, None);
            }
        }
    }

    pub fn remove(&mut self, pod: &Pod) {
        self.remove_key(&pods::key(pod));
    }

    fn remove_key(&mut self, key: &str) {
        let Some(filed) = self.filed_under.remove(key) else {
            return;
        };
        let (map, bucket) = match filed {
            Some(uid) => (&mut self.by_controller, uid),
            None => (
                &mut self.orphans,
                key.split_once('/')
                    .map(|(ns, _)| ns)
                    .unwrap_or("")
                    .to_string(),
            ),
        };
        if let Some(pods) = map.get_mut(&bucket) {
            pods.remove(key);
            if pods.is_empty() {
                map.remove(&bucket);
            }
        }
    }

    /// The pods whose controller has `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<Pod>> {
        self.by_controller
            .get(uid)
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<Pod>> {
        self.orphans
            .get(namespace)
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    pods: PodIndex,
    expectations: Expectations,
}

struct Controller<K: ReplicaOwner> {
    client: Client,
    owners: Store<K>,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
    state: Mutex<State>,
    config: ReplicaConfig,
}

/// Stops the workers and the event handler when `run` is dropped.
struct StopOnDrop {
    queue: WorkQueue<String>,
    handler: tokio::task::JoinHandle<()>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.queue.shut_down();
        self.handler.abort();
    }
}

pub fn owner_key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Runs the controller for owner kind `K` until dropped.
pub async fn run<K: ReplicaOwner>(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    config: ReplicaConfig,
) -> anyhow::Result<()> {
    let owner_informer = informers.informer::<K>();
    let pod_informer = informers.informer::<Pod>();
    let mut owner_changes = owner_informer.subscribe();
    let mut pod_changes = pod_informer.subscribe();
    let controller = Arc::new(Controller {
        recorder: EventRecorder::new(client.clone(), K::CONTROLLER_NAME),
        client,
        owners: owner_informer.store().clone(),
        queue: WorkQueue::new(),
        state: Mutex::new(State::default()),
        config,
    });
    owner_informer.wait_synced().await;
    pod_informer.wait_synced().await;
    // Everything listed so far is already in the channels: index it before
    // any sync runs, or a sync would see too few pods and create more.
    while let Ok(change) = pod_changes.try_recv() {
        controller.on_pod(change);
    }
    while let Ok(change) = owner_changes.try_recv() {
        controller.on_owner(change);
    }
    let handler = {
        let controller = controller.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(change) = pod_changes.recv() => controller.on_pod(change),
                    Some(change) = owner_changes.recv() => controller.on_owner(change),
                    else => break,
                }
            }
        })
    };
    let _stop = StopOnDrop {
        queue: controller.queue.clone(),
        handler,
    };
    client::workqueue::run_workers(controller.queue.clone(), workers, move |key: String| {
        let controller = controller.clone();
        async move { controller.sync(&key).await }
    })
    .await;
    Ok(())
}

impl<K: ReplicaOwner> Controller<K> {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_owner(&self, change: Change<K>) {
        match change {
            Change::Applied { new, .. } => self.queue.add(owner_key(new.meta())),
            Change::Deleted(gone) => {
                let key = owner_key(gone.meta());
                self.state().expectations.forget(&key);
                self.queue.add(key);
            }
        }
    }

    /// The owner a controller reference names, if it is of our kind and
    /// still the same object.
    fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<K>> {
        if reference.kind != K::kind(&()) || group_of(&reference.api_version) != K::group(&()) {
            return None;
        }
        let owner = self
            .owners
            .get(&ObjectRef::new(&reference.name).within(namespace))?;
        (owner.meta().uid.as_deref() == Some(reference.uid.as_str())).then_some(owner)
    }

    /// Owners in the pod's namespace whose selector matches it.
    fn matching_owners(&self, pod: &Pod) -> Vec<String> {
        let namespace = pod.metadata.namespace.as_deref();
        self.owners
            .state()
            .into_iter()
            .filter(|owner| owner.meta().namespace.as_deref() == namespace)
            .filter(|owner| {
                owner
                    .pod_selector()
                    .is_ok_and(|selector| selector.matches(pod.metadata.labels.as_ref()))
            })
            .map(|owner| owner_key(owner.meta()))
            .collect()
    }

    fn on_pod(&self, change: Change<Pod>) {
        match change {
            Change::Applied { old: None, new } => self.pod_added(new),
            Change::Applied {
                old: Some(old),
                new,
            } => self.pod_updated(old, new),
            Change::Deleted(gone) => {
                self.state().pods.remove(&gone);
                self.pod_gone(&gone);
            }
        }
    }

    fn pod_added(&self, pod: Arc<Pod>) {
        self.state().pods.insert(pod.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            // Seen for the first time already terminating (e.g. after a
            // restart): a deletion, not a creation.
            self.pod_gone(&pod);
            return;
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(reference) = client::owners::controller_of(&pod.metadata) {
            if let Some(owner) = self.resolve(namespace, reference) {
                let key = owner_key(owner.meta());
                self.state().expectations.creation_observed(&key);
                self.queue.add(key);
            }
            return;
        }
        for key in self.matching_owners(&pod) {
            self.queue.add(key);
        }
    }

    fn pod_updated(&self, old: Arc<Pod>, new: Arc<Pod>) {
        self.state().pods.insert(new.clone());
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        let labels_changed = old.metadata.labels != new.metadata.labels;
        if new.metadata.deletion_timestamp.is_some() {
            self.pod_gone(&new);
            if labels_changed {
                self.pod_gone(&old);
            }
            return;
        }
        let namespace = new.metadata.namespace.as_deref().unwrap_or_default();
        let old_reference = client::owners::controller_of(&old.metadata);
        let new_reference = client::owners::controller_of(&new.metadata);
        let reference_changed = old_reference != new_reference;
        if reference_changed
            && let Some(owner) = old_reference.and_then(|r| self.resolve(namespace, r))
        {
            self.queue.add(owner_key(owner.meta()));
        }
        if let Some(reference) = new_reference {
            if let Some(owner) = self.resolve(namespace, reference) {
                let key = owner_key(owner.meta());
                let min_ready = owner.min_ready_seconds();
                if min_ready > 0 && !pods::is_ready(&old) && pods::is_ready(&new) {
                    // Check again once it has been ready long enough.
                    self.queue.add_after(
                        key.clone(),
                        Duration::from_secs(min_ready as u64) + Duration::from_secs(1),
                    );
                }
                self.queue.add(key);
            }
            return;
        }
        if labels_changed || reference_changed {
            for key in self.matching_owners(&new) {
                self.queue.add(key);
            }
        }
    }

    /// A pod deleted or terminating: an awaited deletion is observed.
    fn pod_gone(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(reference) = client::owners::controller_of(&pod.metadata) else {
            return;
        };
        if let Some(owner) = self.resolve(namespace, reference) {
            let key = owner_key(owner.meta());
            self.state()
                .expectations
                .deletion_observed(&key, &pods::key(pod));
            self.queue.add(key);
        }
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(owner) = self.owners.get(&ObjectRef::new(name).within(namespace)) else {
            self.state().expectations.forget(key);
            return Ok(None);
        };
        let needs_sync = self.state().expectations.satisfied(key);
        let selector = match owner.pod_selector() {
            Ok(selector) => selector,
            Err(error) => {
                tracing::warn!(key, %error, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let uid = owner.meta().uid.clone().unwrap_or_default();
        let candidates: Vec<Arc<Pod>> = {
            let state = self.state();
            let mut candidates = state.pods.controlled_by(&uid);
            candidates.extend(state.pods.orphans_in(namespace));
            candidates
        };
        let active: Vec<Arc<Pod>> = candidates
            .into_iter()
            .filter(|pod| pods::is_active(pod))
            .collect();
        let mut claimed = crate::claim::claim(&self.client, &*owner, active, |pod: &Pod| {
            selector.matches(pod.metadata.labels.as_ref())
        })
        .await?;

        let mut failure = None;
        if needs_sync && owner.meta().deletion_timestamp.is_none() {
            let outcome = self.manage_replicas(key, &owner, &claimed).await;
            if !outcome.deleted.is_empty() {
                // Deleted pods are gone (or terminating) already; counting
                // them until the informer says so would overstate the
                // status that rollouts rely on.
                claimed.retain(|pod| !outcome.deleted.contains(&pods::key(pod)));
            }
            failure = outcome.failure;
        }

        let now = Timestamp::now();
        let status = calculate_status(&*owner, &claimed, failure.as_ref(), now);
        self.update_status(&owner, status.clone()).await?;
        if let Some(failure) = failure {
            return Err(anyhow::anyhow!("{}", failure.message));
        }
        let min_ready = owner.min_ready_seconds();
        if min_ready > 0
            && status.ready_replicas == owner.desired_replicas()
            && status.available_replicas != owner.desired_replicas()
        {
            let soonest = claimed
                .iter()
                .filter_map(|pod| pods::until_available(pod, min_ready, now))
                .min()
                .unwrap_or(Duration::from_secs(min_ready as u64));
            return Ok(Some(soonest));
        }
        Ok(None)
    }

    async fn manage_replicas(&self, key: &str, owner: &Arc<K>, pods: &[Arc<Pod>]) -> Outcome {
        let desired = owner.desired_replicas().max(0) as usize;
        let mut outcome = Outcome::default();
        if pods.len() < desired {
            let count = (desired - pods.len()).min(self.config.burst_replicas);
            let Some(template) = owner.pod_template() else {
                return outcome;
            };
            self.state().expectations.expect_creations(key, count);
            let (created, error) = slow_start_batch(count, SLOW_START_INITIAL_BATCH, || {
                self.create_pod(owner, template)
            })
            .await;
            // Creations never attempted or failed will not be observed.
            let mut state = self.state();
            for _ in created..count {
                state.expectations.creation_observed(key);
            }
            outcome.failure = error.map(|message| Failure {
                reason: "FailedCreate",
                message,
            });
        } else if pods.len() > desired {
            let count = (pods.len() - desired).min(self.config.burst_replicas);
            let related = self.related_pods(owner);
            let victims = ranking::pods_to_delete(pods, &related, count, Timestamp::now());
            let keys: Vec<String> = victims.iter().map(|pod| pods::key(pod)).collect();
            self.state()
                .expectations
                .expect_deletions(key, keys.clone());
            let results =
                futures::future::join_all(victims.iter().map(|pod| self.delete_pod(owner, pod)))
                    .await;
            for (pod_key, result) in keys.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        outcome.deleted.insert(pod_key);
                    }
                    Err(error) => {
                        self.state().expectations.deletion_observed(key, &pod_key);
                        if let Some(message) = error {
                            outcome.failure.get_or_insert(Failure {
                                reason: "FailedDelete",
                                message,
                            });
                        } else {
                            outcome.deleted.insert(pod_key);
                        }
                    }
                }
            }
        }
        outcome
    }

    /// Active pods of the owner's siblings (objects with the same
    /// controller), which tell how crowded each node is.
    fn related_pods(&self, owner: &K) -> Vec<Arc<Pod>> {
        let Some(controller) = client::owners::controller_of(owner.meta()) else {
            return Vec::new();
        };
        let namespace = owner.meta().namespace.as_deref();
        let siblings: Vec<String> = self
            .owners
            .state()
            .into_iter()
            .filter(|other| other.meta().namespace.as_deref() == namespace)
            .filter(|other| client::owners::is_controlled_by(other.meta(), &controller.uid))
            .filter_map(|other| other.meta().uid.clone())
            .collect();
        let state = self.state();
        let mut seen = HashSet::new();
        siblings
            .iter()
            .flat_map(|uid| state.pods.controlled_by(uid))
            .filter(|pod| seen.insert(pods::key(pod)))
            .collect()
    }

    async fn create_pod(&self, owner: &K, template: &PodTemplateSpec) -> Result<(), String> {
        let pod = pod_from_template(owner, template);
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Err("unable to create pods, no labels".into());
        }
        let namespace = owner.meta().namespace.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                self.recorder
                    .normal(owner, "SuccessfulCreate", format!("Created pod: {name}"));
                Ok(())
            }
            // Nothing can be created in a terminating namespace; not a failure.
            Err(kube::Error::Api(status)) if has_cause(&status, "NamespaceTerminating") => Ok(()),
            Err(error) => {
                let message = api_message(&error);
                self.recorder
                    .warning(owner, "FailedCreate", format!("Error creating: {message}"));
                Err(message)
            }
        }
    }

    /// `Err(None)`: already gone; `Err(Some(message))`: failed.
    async fn delete_pod(&self, owner: &K, pod: &Pod) -> Result<(), Option<String>> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder
                    .normal(owner, "SuccessfulDelete", format!("Deleted pod: {name}"));
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Err(None),
            Err(error) => {
                let message = api_message(&error);
                self.recorder
                    .warning(owner, "FailedDelete", format!("Error deleting: {message}"));
                Err(Some(format!("unable to delete pods: {message}")))
            }
        }
    }

    async fn update_status(&self, owner: &K, mut status: ReplicaStatus) -> anyhow::Result<()> {
        status.observed_generation = owner.meta().generation.unwrap_or(0);
        if owner.replica_status() == status {
            return Ok(());
        }
        let meta = owner.meta();
        let name = meta.name.as_deref().unwrap_or_default();
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            meta.namespace.as_deref().unwrap_or_default(),
        );
        let mut updated = owner.clone();
        updated.set_replica_status(status.clone());
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(error)) if error.code == 409 => {
                // Upstream retries once on the latest version.
                let mut latest = api.get(name).await?;
                if latest.meta().uid != meta.uid {
                    return Ok(());
                }
                latest.set_replica_status(status);
                api.replace_status(name, &PostParams::default(), &latest)
                    .await?;
                Ok(())
            }
            Err(kube::Error::Api(error)) if error.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[derive(Default)]
struct Outcome {
    deleted: HashSet<String>,
    failure: Option<Failure>,
}

/// Why the last sync could not reach the desired count.
pub struct Failure {
    reason: &'static str,
    message: String,
}

fn group_of(api_version: &str) -> &str {
    api_version
        .split_once('/')
        .map(|(group, _)| group)
        .unwrap_or("")
}

fn has_cause(status: &kube::core::Status, cause: &str) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|details| details.causes.iter().any(|c| c.reason == cause))
}

/// The API's message for an error, as Go's `StatusError.Error()` gives it.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// A pod as upstream's `GetPodFromTemplate` makes it.
pub fn pod_from_template<K: Resource<DynamicType = ()>>(
    owner: &K,
    template: &PodTemplateSpec,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    let owner_meta = owner.meta();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                owner_meta.name.as_deref().unwrap_or_default()
            )),
            namespace: owner_meta.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![client::owners::controller_reference(owner)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Runs `count` calls of `call` in batches of 1, 2, 4, … (upstream's
/// `slowStartBatch`): a failing call stops further batches, so a quota or
/// admission refusal costs one request rather than hundreds. Returns the
/// successes and the first error.
pub async fn slow_start_batch<F, Fut>(
    count: usize,
    initial: usize,
    call: F,
) -> (usize, Option<String>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = initial.max(1).min(remaining);
    while batch > 0 {
        let results = futures::future::join_all((0..batch).map(|_| call())).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => successes += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if first_error.is_some() {
            return (successes, first_error);
        }
        remaining -= batch;
        batch = (batch * 2).min(remaining);
    }
    (successes, None)
}

/// The owner's status for `pods` (its active, claimed pods), as upstream's
/// `calculateStatus`; a failure sets the ReplicaFailure condition, success
/// clears it.
pub fn calculate_status<K: ReplicaOwner>(
    owner: &K,
    pods: &[Arc<Pod>],
    failure: Option<&Failure>,
    now: Timestamp,
) -> ReplicaStatus {
    let mut status = owner.replica_status();
    let template_labels = owner
        .pod_template()
        .and_then(|template| template.metadata.as_ref())
        .and_then(|meta| meta.labels.clone())
        .unwrap_or_default();
    let template_selector = Selector::from_map(&template_labels);
    let min_ready = owner.min_ready_seconds();
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        if template_selector.matches(pod.metadata.labels.as_ref()) {
            fully_labeled += 1;
        }
        if pods::is_ready(pod) {
            ready += 1;
            if pods::is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .iter()
        .any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some(failure) if !has_failure => status.conditions.push(ReplicaCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(failure.reason.into()),
            message: Some(failure.message.clone()),
            last_transition_time: Some(Time(pods::now_seconds())),
        }),
        None if has_failure => status.conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = fully_labeled;
    status.ready_replicas = ready;
    status.available_replicas = available;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_at_the_first_failure() {
        let calls = AtomicUsize::new(0);
        let (successes, error) = slow_start_batch(10, 1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!((successes, error), (10, None));
        assert_eq!(calls.load(Ordering::SeqCst), 10);

        // Batches 1, 2, 4: the fourth call (first of the 4-batch) fails.
        let calls = AtomicUsize::new(0);
        let (successes, error) = slow_start_batch(10, 1, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 3 {
                Err("quota".to_string())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        assert_eq!((successes, error.as_deref()), (6, Some("quota")));
    }

    #[test]
    fn a_failed_create_sets_replica_failure_and_success_clears_it() {
        use k8s_openapi::api::apps::v1::ReplicaSet;
        let mut rs = ReplicaSet::default();
        rs.spec.replicas = Some(2);
        let failure = Failure {
            reason: "FailedCreate",
            message: "exceeded quota".into(),
        };
        let status = calculate_status(&rs, &[], Some(&failure), Timestamp::now());
        let condition = &status.conditions[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("ReplicaFailure", "True")
        );
        assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(condition.message.as_deref(), Some("exceeded quota"));
        rs.set_replica_status(status);
        let status = calculate_status(&rs, &[], None, Timestamp::now());
        assert!(status.conditions.is_empty());
    }

    #[test]
    fn the_index_files_pods_under_their_controller_and_moves_them() {
        let mut index = PodIndex::default();
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.name = Some("p".into());
        index.insert(Arc::new(pod.clone()));
        assert_eq!(index.orphans_in("ns").len(), 1);
        pod.metadata.owner_references = Some(vec![OwnerReference {
            uid: "rs-1".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        index.insert(Arc::new(pod.clone()));
        assert!(index.orphans_in("ns").is_empty());
        assert_eq!(index.controlled_by("rs-1").len(), 1);
        index.remove(&pod);
        assert!(index.controlled_by("rs-1").is_empty());
    }
}
