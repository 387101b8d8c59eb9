//! The DaemonSet controller's IO: informer events to queue keys and expectations, and a sync that keeps the revision history, adopts pods, executes the plans of `control` and writes the status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use client::{Change, EventRecorder, Informer, Informers, WorkQueue};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde_json::json;

use crate::control::{self, FailedPodBackoff, NodePods};
use crate::revision::{self, HASH_LABEL};
use client::selector::Selector;

const CONTROLLER_NAME: &str = "daemonset-controller";
/// Expectations older than this are considered satisfied (upstream's
/// ExpectationsTimeout), so a lost watch event cannot stall a DaemonSet.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The queue key of a DaemonSet: `namespace/name`.
pub type Key = String;

fn key_of(daemon_set: &DaemonSet) -> Key {
    format!(
        "{}/{}",
        daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        name_of(daemon_set)
    )
}

fn name_of(daemon_set: &DaemonSet) -> &str {
    daemon_set.metadata.name.as_deref().unwrap_or_default()
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists")
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Creations and deletions issued but not yet seen in the pod informer.
#[derive(Clone, Copy)]
struct Expectation {
    adds: i64,
    deletes: i64,
    since: Instant,
}

#[derive(Default)]
struct Expectations {
    by_key: Mutex<HashMap<Key, Expectation>>,
}

impl Expectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Expectation>> {
        self.by_key
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn satisfied(&self, key: &str) -> bool {
        self.lock().get(key).is_none_or(|e| {
            (e.adds <= 0 && e.deletes <= 0) || e.since.elapsed() > EXPECTATIONS_TIMEOUT
        })
    }

    fn expect(&self, key: &str, adds: usize, deletes: usize) {
        self.lock().insert(
            key.into(),
            Expectation {
                adds: adds as i64,
                deletes: deletes as i64,
                since: Instant::now(),
            },
        );
    }

    fn observed(&self, key: &str, adds: i64, deletes: i64) {
        if let Some(expectation) = self.lock().get_mut(key) {
            expectation.adds -= adds;
            expectation.deletes -= deletes;
        }
    }

    fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

pub(crate) struct Controller {
    client: Client,
    daemon_sets: Informer<DaemonSet>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    recorder: EventRecorder,
    queue: WorkQueue<Key>,
    expectations: Expectations,
    failed_pods_backoff: Mutex<FailedPodBackoff>,
}

impl Controller {
    pub(crate) fn new(client: Client, informers: &Informers) -> Controller {
        Controller {
            recorder: EventRecorder::new(client.clone(), CONTROLLER_NAME),
            client,
            daemon_sets: informers.informer::<DaemonSet>(),
            pods: informers.informer::<Pod>(),
            nodes: informers.informer::<Node>(),
            revisions: informers.informer::<ControllerRevision>(),
            queue: WorkQueue::new(),
            expectations: Expectations::default(),
            failed_pods_backoff: Mutex::new(FailedPodBackoff::default()),
        }
    }

    pub(crate) fn queue(&self) -> &WorkQueue<Key> {
        &self.queue
    }

    pub(crate) async fn wait_synced(&self) {
        self.daemon_sets.wait_synced().await;
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.revisions.wait_synced().await;
    }

    pub(crate) async fn watch_daemon_sets(self: Arc<Self>) {
        let mut changes = self.daemon_sets.subscribe();
        while let Some(change) = changes.recv().await {
            self.queue.add(key_of(change.object()));
        }
    }

    /// Node changes that can change eligibility queue every DaemonSet
    /// (status-only updates such as heartbeats do not).
    pub(crate) async fn watch_nodes(self: Arc<Self>) {
        let mut changes = self.nodes.subscribe();
        while let Some(change) = changes.recv().await {
            if let Change::Applied {
                old: Some(old),
                new,
            } = &change
                && old.metadata.labels == new.metadata.labels
                && old.spec == new.spec
            {
                continue;
            }
            for daemon_set in self.daemon_sets.store().state() {
                self.queue.add(key_of(&daemon_set));
            }
        }
    }

    pub(crate) async fn watch_pods(self: Arc<Self>) {
        let mut changes = self.pods.subscribe();
        while let Some(change) = changes.recv().await {
            match change {
                Change::Applied { old: None, new } => {
                    if new.metadata.deletion_timestamp.is_some() {
                        self.pod_deleted(&new);
                    } else if let Some(daemon_set) = self.controller_of(&new) {
                        let key = key_of(&daemon_set);
                        self.expectations.observed(&key, 1, 0);
                        self.queue.add(key);
                    } else if client::owners::controller_of(&new.metadata).is_none() {
                        self.enqueue_matching(&new);
                    }
                }
                Change::Applied {
                    old: Some(old),
                    new,
                } => {
                    if old.metadata.resource_version == new.metadata.resource_version {
                        continue;
                    }
                    if new.metadata.deletion_timestamp.is_some() {
                        if old.metadata.deletion_timestamp.is_none() {
                            self.pod_deleted(&new);
                        } else if let Some(daemon_set) = self.controller_of(&new) {
                            self.queue.add(key_of(&daemon_set));
                        }
                        continue;
                    }
                    let old_controller = client::owners::controller_of(&old.metadata);
                    let new_controller = client::owners::controller_of(&new.metadata);
                    if old_controller != new_controller
                        && let Some(daemon_set) = self.controller_of(&old)
                    {
                        self.queue.add(key_of(&daemon_set));
                    }
                    if let Some(daemon_set) = self.controller_of(&new) {
                        let key = key_of(&daemon_set);
                        self.queue.add(key.clone());
                        let min_ready = daemon_set.spec.min_ready_seconds.unwrap_or(0);
                        if min_ready > 0 && !control::is_ready(&old) && control::is_ready(&new) {
                            self.queue
                                .add_after(key, Duration::from_secs(min_ready as u64 + 1));
                        }
                    } else if new_controller.is_none()
                        && (old.metadata.labels != new.metadata.labels || old_controller.is_some())
                    {
                        self.enqueue_matching(&new);
                    }
                }
                Change::Deleted(pod) => self.pod_deleted(&pod),
            }
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(daemon_set) = self.controller_of(pod) {
            let key = key_of(&daemon_set);
            self.expectations.observed(&key, 0, 1);
            self.queue.add(key);
        }
    }

    fn controller_of(&self, pod: &Pod) -> Option<Arc<DaemonSet>> {
        let owner = client::owners::controller_of(&pod.metadata)?;
        if owner.kind != "DaemonSet" || !owner.api_version.starts_with("apps/") {
            return None;
        }
        let reference = ObjectRef::new(&owner.name).within(pod.metadata.namespace.as_deref()?);
        let daemon_set = self.daemon_sets.store().get(&reference)?;
        (daemon_set.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(daemon_set)
    }

    fn enqueue_matching(&self, pod: &Pod) {
        for daemon_set in self.daemon_sets.store().state() {
            if daemon_set.metadata.namespace != pod.metadata.namespace {
                continue;
            }
            if Selector::parse(&daemon_set.spec.selector)
                .is_some_and(|s| !s.is_empty() && s.matches(pod.metadata.labels.as_ref()))
            {
                self.queue.add(key_of(&daemon_set));
            }
        }
    }

    pub(crate) async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(daemon_set) = self
            .daemon_sets
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let Some(selector) = Selector::parse(&daemon_set.spec.selector) else {
            tracing::warn!(daemonset = key, "invalid selector; not syncing");
            return Ok(None);
        };
        if selector.is_empty() {
            self.recorder.warning(
                daemon_set.as_ref(),
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.".into(),
            );
            return Ok(None);
        }
        // The history and pods of a DaemonSet being deleted may already be
        // gone or orphaned; its status cannot be trusted any more.
        if daemon_set.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let mut nodes = self.nodes.store().state();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let (current, old) = self.construct_history(&daemon_set, &selector).await?;
        let hash = revision::revision_hash(&current)
            .unwrap_or_default()
            .to_string();
        let pods = self.claim_pods(&daemon_set, &selector).await?;
        let node_pods = control::group_by_node(&pods);

        if !self.expectations.satisfied(key) {
            self.write_status(&daemon_set, &nodes, &node_pods, &hash, false)
                .await?;
            return Ok(None);
        }
        let now = Timestamp::now();
        let manage = {
            let mut backoff = self
                .failed_pods_backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            backoff.collect_garbage(now);
            control::plan_manage(
                &daemon_set,
                key,
                &nodes,
                &node_pods,
                &hash,
                &mut backoff,
                now,
            )
        };
        for (pod, node) in &manage.failed {
            self.recorder.warning(
                daemon_set.as_ref(),
                "FailedDaemonPod",
                format!(
                    "Found failed daemon pod {namespace}/{pod} on node {node}, will try to kill it"
                ),
            );
        }
        let mut outcome = self
            .sync_nodes(&daemon_set, key, &manage.delete, &manage.create_on, &hash)
            .await;
        if outcome.is_ok() && !manage.failed.is_empty() {
            outcome = Err(anyhow::anyhow!(
                "deleted {} failed pods of DaemonSet {name}",
                manage.failed.len()
            ));
        }
        if outcome.is_ok() && self.expectations.satisfied(key) && is_rolling_update(&daemon_set) {
            let rolling = control::plan_rolling_update(&daemon_set, &nodes, &node_pods, &hash, now);
            outcome = self
                .sync_nodes(&daemon_set, key, &rolling.delete, &rolling.create_on, &hash)
                .await;
        }
        if outcome.is_ok() {
            outcome = self
                .cleanup_history(&daemon_set, &old, &pods)
                .await
                .context("failed to clean up revisions of DaemonSet");
        }
        let status = self
            .write_status(&daemon_set, &nodes, &node_pods, &hash, true)
            .await;
        outcome?;
        let status = status?;
        let min_ready = daemon_set.spec.min_ready_seconds.unwrap_or(0);
        let mut requeue = manage.requeue_after;
        if min_ready > 0 && status.number_ready != status.number_available.unwrap_or(0) {
            let after = Duration::from_secs(min_ready as u64);
            requeue = Some(requeue.map_or(after, |r| r.min(after)));
        }
        Ok(requeue)
    }

    async fn can_adopt(&self, daemon_set: &DaemonSet) -> anyhow::Result<()> {
        let api: Api<DaemonSet> = Api::namespaced(
            self.client.clone(),
            daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let fresh = api.get(name_of(daemon_set)).await?;
        if fresh.metadata.uid != daemon_set.metadata.uid {
            anyhow::bail!("original DaemonSet {} is gone", name_of(daemon_set));
        }
        if fresh.metadata.deletion_timestamp.is_some() {
            anyhow::bail!("DaemonSet {} has just been deleted", name_of(daemon_set));
        }
        Ok(())
    }

    /// Owned objects after adopting matching orphans and releasing owned
    /// ones that stopped matching (upstream's ClaimPods / ClaimControllerRevisions).
    async fn claim<K>(
        &self,
        daemon_set: &DaemonSet,
        selector: &Selector,
        candidates: Vec<Arc<K>>,
    ) -> anyhow::Result<Vec<Arc<K>>>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let uid = daemon_set.metadata.uid.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let mut owned = Vec::new();
        let mut adoption_checked = false;
        for object in candidates {
            let meta = object.meta();
            if meta.namespace != daemon_set.metadata.namespace {
                continue;
            }
            let name = meta.name.clone().unwrap_or_default();
            let object_uid = meta.uid.clone().unwrap_or_default();
            let matches = selector.matches(meta.labels.as_ref());
            match client::owners::controller_of(meta) {
                Some(owner) if owner.uid == uid => {
                    if matches {
                        owned.push(object);
                    } else {
                        let patch = json!({"metadata": {
                            "ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": object_uid}});
                        match api
                            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
                            .await
                        {
                            Ok(_) => {}
                            Err(error) if is_not_found(&error) => {}
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
                Some(_) => {}
                None => {
                    if !matches || meta.deletion_timestamp.is_some() {
                        continue;
                    }
                    if !adoption_checked {
                        self.can_adopt(daemon_set).await.context("can't adopt")?;
                        adoption_checked = true;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [client::owners::controller_reference(daemon_set)],
                        "uid": object_uid}});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                    {
                        Ok(adopted) => owned.push(Arc::new(adopted)),
                        Err(error) if is_not_found(&error) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
        Ok(owned)
    }

    async fn claim_pods(
        &self,
        daemon_set: &DaemonSet,
        selector: &Selector,
    ) -> anyhow::Result<Vec<Arc<Pod>>> {
        self.claim(daemon_set, selector, self.pods.store().state())
            .await
    }

    /// The revision of the current template (created, or renumbered to be
    /// the newest) and the older ones.
    async fn construct_history(
        &self,
        daemon_set: &DaemonSet,
        selector: &Selector,
    ) -> anyhow::Result<(ControllerRevision, Vec<ControllerRevision>)> {
        let histories = self
            .claim(daemon_set, selector, self.revisions.store().state())
            .await?;
        let (mut current, old): (Vec<ControllerRevision>, Vec<ControllerRevision>) = histories
            .iter()
            .map(|h| (**h).clone())
            .partition(|h| revision::matches(daemon_set, h));
        let next = old.iter().filter_map(|h| h.revision).max().unwrap_or(0) + 1;
        let api: Api<ControllerRevision> = Api::namespaced(
            self.client.clone(),
            daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        if current.is_empty() {
            return Ok((self.snapshot(daemon_set, next).await?, old));
        }
        current.sort_by_key(|h| h.revision.unwrap_or(0));
        let mut keep = current.pop().expect("current is not empty");
        for duplicate in current {
            self.dedup_revision(daemon_set, &duplicate, &keep).await?;
        }
        if keep.revision.unwrap_or(0) < next {
            keep = api
                .patch(
                    keep.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": next})),
                )
                .await?;
        }
        Ok((keep, old))
    }

    /// Moves pods labelled with a duplicate revision's hash to the kept
    /// revision's hash, then deletes the duplicate.
    async fn dedup_revision(
        &self,
        daemon_set: &DaemonSet,
        duplicate: &ControllerRevision,
        keep: &ControllerRevision,
    ) -> anyhow::Result<()> {
        let namespace = daemon_set.metadata.namespace.as_deref().unwrap_or_default();
        let (Some(old_hash), Some(new_hash)) = (
            revision::revision_hash(duplicate),
            revision::revision_hash(keep),
        ) else {
            return Ok(());
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        for pod in self.pods.store().state() {
            if pod.metadata.namespace.as_deref() == Some(namespace)
                && pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(HASH_LABEL))
                    .map(String::as_str)
                    == Some(old_hash)
            {
                let patch = json!({"metadata": {"labels": {HASH_LABEL: new_hash}}});
                pods.patch(
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
            }
        }
        let revisions: Api<ControllerRevision> = Api::namespaced(self.client.clone(), namespace);
        match revisions
            .delete(
                duplicate.metadata.name.as_deref().unwrap_or_default(),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates the revision of the current template; a name taken by another
    /// template bumps the collision count (the next sync hashes anew).
    async fn snapshot(
        &self,
        daemon_set: &DaemonSet,
        number: i64,
    ) -> anyhow::Result<ControllerRevision> {
        let namespace = daemon_set.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), namespace);
        let wanted = revision::snapshot(daemon_set, number);
        let name = wanted.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &wanted).await {
            Ok(created) => Ok(created),
            Err(error) if is_already_exists(&error) => {
                let existing = api.get(&name).await?;
                if revision::matches(daemon_set, &existing) {
                    return Ok(existing);
                }
                let daemon_sets: Api<DaemonSet> = Api::namespaced(self.client.clone(), namespace);
                let mut fresh = daemon_sets.get(name_of(daemon_set)).await?;
                let seen = daemon_set.status.as_ref().and_then(|s| s.collision_count);
                let stored = fresh.status.as_ref().and_then(|s| s.collision_count);
                if seen != stored {
                    anyhow::bail!(
                        "found a stale collision count ({seen:?}, expected {stored:?}) of DaemonSet {name}; will retry until it is updated"
                    );
                }
                let status = fresh.status.get_or_insert_with(DaemonSetStatus::default);
                status.collision_count = Some(stored.unwrap_or(0) + 1);
                daemon_sets
                    .replace_status(name_of(daemon_set), &PostParams::default(), &fresh)
                    .await?;
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the oldest revisions no pod runs, beyond revisionHistoryLimit.
    async fn cleanup_history(
        &self,
        daemon_set: &DaemonSet,
        old: &[ControllerRevision],
        pods: &[Arc<Pod>],
    ) -> anyhow::Result<()> {
        let limit = daemon_set.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut to_kill = old.len().saturating_sub(limit);
        if to_kill == 0 {
            return Ok(());
        }
        let live: Vec<&str> = pods
            .iter()
            .filter_map(|p| {
                p.metadata
                    .labels
                    .as_ref()?
                    .get(HASH_LABEL)
                    .map(String::as_str)
            })
            .collect();
        let mut old: Vec<&ControllerRevision> = old.iter().collect();
        old.sort_by_key(|h| h.revision.unwrap_or(0));
        let api: Api<ControllerRevision> = Api::namespaced(
            self.client.clone(),
            daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        for history in old {
            if to_kill == 0 {
                break;
            }
            if revision::revision_hash(history).is_some_and(|hash| live.contains(&hash)) {
                continue;
            }
            match api
                .delete(
                    history.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(error.into()),
            }
            to_kill -= 1;
        }
        Ok(())
    }

    /// Deletes `delete` and creates a pod on each of `create_on`, raising
    /// the expectations first and lowering them for what fails.
    async fn sync_nodes(
        &self,
        daemon_set: &DaemonSet,
        key: &str,
        delete: &[String],
        create_on: &[String],
        hash: &str,
    ) -> anyhow::Result<()> {
        if delete.is_empty() && create_on.is_empty() {
            return Ok(());
        }
        self.expectations.expect(key, create_on.len(), delete.len());
        let pods: Api<Pod> = Api::namespaced(
            self.client.clone(),
            daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let mut errors = Vec::new();
        for node in create_on {
            let pod = control::new_pod(daemon_set, node, hash);
            match pods.create(&PostParams::default(), &pod).await {
                Ok(created) => self.recorder.normal(
                    daemon_set,
                    "SuccessfulCreate",
                    format!("Created pod: {}", created.metadata.name.unwrap_or_default()),
                ),
                Err(error) => {
                    self.expectations.observed(key, 1, 0);
                    let terminating = matches!(&error, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"));
                    if !terminating {
                        self.recorder.warning(
                            daemon_set,
                            "FailedCreate",
                            format!("Error creating: {error}"),
                        );
                        errors.push(format!("creating a pod on node {node}: {error}"));
                    }
                }
            }
        }
        for name in delete {
            match pods.delete(name, &DeleteParams::default()).await {
                Ok(_) => self.recorder.normal(
                    daemon_set,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(error) => {
                    self.expectations.observed(key, 0, 1);
                    if !is_not_found(&error) {
                        self.recorder.warning(
                            daemon_set,
                            "FailedDelete",
                            format!("Error deleting: {error}"),
                        );
                        errors.push(format!("deleting pod {name}: {error}"));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", errors.join("; "))
        }
    }

    async fn write_status(
        &self,
        daemon_set: &DaemonSet,
        nodes: &[Arc<Node>],
        node_pods: &NodePods,
        hash: &str,
        update_observed_generation: bool,
    ) -> anyhow::Result<DaemonSetStatus> {
        let counts = control::compute_status(daemon_set, nodes, node_pods, hash, Timestamp::now());
        let existing = daemon_set.status.clone().unwrap_or_default();
        let generation = daemon_set.metadata.generation.unwrap_or(0);
        let same_counts = existing.desired_number_scheduled == counts.desired_number_scheduled
            && existing.current_number_scheduled == counts.current_number_scheduled
            && existing.number_misscheduled == counts.number_misscheduled
            && existing.number_ready == counts.number_ready
            && existing.updated_number_scheduled.unwrap_or(0)
                == counts.updated_number_scheduled.unwrap_or(0)
            && existing.number_available.unwrap_or(0) == counts.number_available.unwrap_or(0)
            && existing.number_unavailable.unwrap_or(0) == counts.number_unavailable.unwrap_or(0);
        if same_counts && existing.observed_generation.unwrap_or(0) >= generation {
            return Ok(counts);
        }
        let api: Api<DaemonSet> = Api::namespaced(
            self.client.clone(),
            daemon_set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let mut target = daemon_set.clone();
        for _ in 0..10 {
            let mut status = target.status.clone().unwrap_or_default();
            if update_observed_generation {
                status.observed_generation = Some(generation);
            }
            status.desired_number_scheduled = counts.desired_number_scheduled;
            status.current_number_scheduled = counts.current_number_scheduled;
            status.number_misscheduled = counts.number_misscheduled;
            status.number_ready = counts.number_ready;
            status.updated_number_scheduled = counts.updated_number_scheduled;
            status.number_available = counts.number_available;
            status.number_unavailable = counts.number_unavailable;
            target.status = Some(status);
            match api
                .replace_status(name_of(daemon_set), &PostParams::default(), &target)
                .await
            {
                Ok(_) => return Ok(counts),
                Err(error) if is_not_found(&error) => return Ok(counts),
                Err(error) if is_conflict(&error) => target = api.get(name_of(daemon_set)).await?,
                Err(error) => return Err(error.into()),
            }
        }
        anyhow::bail!("aborting DaemonSet status update after repeated conflicts")
    }
}

fn is_rolling_update(daemon_set: &DaemonSet) -> bool {
    daemon_set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}
