//! The StatefulSet controller's IO: informer events to queue keys, and a sync that adopts pods and revisions, keeps the revision history, executes the plan of `control` and writes the status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use client::{Change, EventRecorder, Informer, Informers, WorkQueue};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde_json::json;

use crate::control::{self, DeleteCause, Step, SyncInput};
use crate::identity;
use crate::revision::{
    self, apply_revision, equal_revisions, new_revision, next_revision, sort_revisions,
};
use client::selector::Selector;

const CONTROLLER_NAME: &str = "statefulset-controller";

/// The queue key of a StatefulSet: `namespace/name`.
pub type Key = String;

pub(crate) struct Controller {
    client: Client,
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
    claims: Informer<PersistentVolumeClaim>,
    recorder: EventRecorder,
    queue: WorkQueue<Key>,
}

fn key(namespace: Option<&str>, name: &str) -> Key {
    format!("{}/{name}", namespace.unwrap_or_default())
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

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec.min_ready_seconds.unwrap_or(0)
}

fn is_ready(pod: &Pod) -> bool {
    identity::is_available(pod, 0, Timestamp::now())
}

impl Controller {
    pub(crate) fn new(client: Client, informers: &Informers) -> Controller {
        Controller {
            recorder: EventRecorder::new(client.clone(), CONTROLLER_NAME),
            client,
            sets: informers.informer::<StatefulSet>(),
            pods: informers.informer::<Pod>(),
            revisions: informers.informer::<ControllerRevision>(),
            claims: informers.informer::<PersistentVolumeClaim>(),
            queue: WorkQueue::new(),
        }
    }

    pub(crate) fn queue(&self) -> &WorkQueue<Key> {
        &self.queue
    }

    pub(crate) async fn wait_synced(&self) {
        self.sets.wait_synced().await;
        self.pods.wait_synced().await;
        self.revisions.wait_synced().await;
        self.claims.wait_synced().await;
    }

    /// Every change to a StatefulSet queues it.
    pub(crate) async fn watch_sets(self: Arc<Self>) {
        let mut changes = self.sets.subscribe();
        while let Some(change) = changes.recv().await {
            let set = change.object();
            self.queue.add(key(
                set.metadata.namespace.as_deref(),
                set.metadata.name.as_deref().unwrap_or_default(),
            ));
        }
    }

    /// Pod changes queue their controlling set, or for orphans every set
    /// whose selector matches (it may adopt them).
    pub(crate) async fn watch_pods(self: Arc<Self>) {
        let mut changes = self.pods.subscribe();
        while let Some(change) = changes.recv().await {
            match change {
                Change::Applied { old: None, new } => {
                    if !self.enqueue_controller(&new) {
                        self.enqueue_matching_sets(&new);
                    }
                }
                Change::Applied {
                    old: Some(old),
                    new,
                } => {
                    if old.metadata.resource_version == new.metadata.resource_version {
                        continue;
                    }
                    let labels_changed = old.metadata.labels != new.metadata.labels;
                    let old_controller = client::owners::controller_of(&old.metadata);
                    let new_controller = client::owners::controller_of(&new.metadata);
                    if old_controller != new_controller && old_controller.is_some() {
                        self.enqueue_controller(&old);
                    }
                    if let Some(set) = self.controller_set(&new) {
                        let set_key =
                            key(set.metadata.namespace.as_deref(), identity::set_name(&set));
                        self.queue.add(set_key.clone());
                        let min_ready = min_ready_seconds(&set);
                        if min_ready > 0 && !is_ready(&old) && is_ready(&new) {
                            self.queue
                                .add_after(set_key, Duration::from_secs(min_ready as u64));
                        }
                    } else if new_controller.is_none()
                        && (labels_changed || old_controller.is_some())
                    {
                        self.enqueue_matching_sets(&new);
                    }
                }
                Change::Deleted(pod) => {
                    self.enqueue_controller(&pod);
                }
            }
        }
    }

    /// The StatefulSet controlling `pod`, if it is in the store with the
    /// referenced UID.
    fn controller_set(&self, pod: &Pod) -> Option<Arc<StatefulSet>> {
        let owner = client::owners::controller_of(&pod.metadata)?;
        if owner.kind != "StatefulSet" || !owner.api_version.starts_with("apps/") {
            return None;
        }
        let reference = ObjectRef::new(&owner.name).within(pod.metadata.namespace.as_deref()?);
        let set = self.sets.store().get(&reference)?;
        (set.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(set)
    }

    fn enqueue_controller(&self, pod: &Pod) -> bool {
        match self.controller_set(pod) {
            Some(set) => {
                self.queue.add(key(
                    set.metadata.namespace.as_deref(),
                    identity::set_name(&set),
                ));
                true
            }
            None => client::owners::controller_of(&pod.metadata).is_some(),
        }
    }

    fn enqueue_matching_sets(&self, pod: &Pod) {
        for set in self.sets.store().state() {
            if set.metadata.namespace != pod.metadata.namespace {
                continue;
            }
            let selector = Selector::parse(&set.spec.selector);
            if selector.is_some_and(|s| !s.is_empty() && s.matches(pod.metadata.labels.as_ref())) {
                self.queue.add(key(
                    set.metadata.namespace.as_deref(),
                    identity::set_name(&set),
                ));
            }
        }
    }

    /// One sync of the set under `key`; returns when to look again.
    pub(crate) async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(set) = self
            .sets
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            return Ok(None);
        };
        let Some(selector) = Selector::parse(&set.spec.selector) else {
            tracing::warn!(statefulset = key, "invalid selector; not syncing");
            return Ok(None);
        };
        let revisions = self.claim_revisions(&set, &selector).await?;
        let pods = self.claim_pods(&set, &selector).await?;
        let status = self.update_stateful_set(&set, revisions, &pods).await?;
        let min_ready = min_ready_seconds(&set);
        if min_ready > 0 && status.available_replicas.unwrap_or(0) != identity::replicas(&set) {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }

    /// Re-reads the set from the API before adopting, so a set deleted or
    /// replaced meanwhile adopts nothing (upstream's RecheckDeletionTimestamp).
    async fn can_adopt(&self, set: &StatefulSet) -> anyhow::Result<()> {
        let api: Api<StatefulSet> = Api::namespaced(
            self.client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let fresh = api.get(identity::set_name(set)).await?;
        if fresh.metadata.uid != set.metadata.uid {
            anyhow::bail!(
                "original StatefulSet {} is gone: got uid {:?}, wanted {:?}",
                identity::set_name(set),
                fresh.metadata.uid,
                set.metadata.uid
            );
        }
        if fresh.metadata.deletion_timestamp.is_some() {
            anyhow::bail!(
                "StatefulSet {} has just been deleted",
                identity::set_name(set)
            );
        }
        Ok(())
    }

    /// The revisions the set owns, adopting orphans its selector matches.
    async fn claim_revisions(
        &self,
        set: &StatefulSet,
        selector: &Selector,
    ) -> anyhow::Result<Vec<ControllerRevision>> {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let mut owned = Vec::new();
        let mut orphans = Vec::new();
        for revision in self.revisions.store().state() {
            if revision.metadata.namespace != set.metadata.namespace
                || !selector.matches(revision.metadata.labels.as_ref())
            {
                continue;
            }
            match client::owners::controller_of(&revision.metadata) {
                None => orphans.push((*revision).clone()),
                Some(owner) if owner.uid == uid => owned.push((*revision).clone()),
                Some(_) => {}
            }
        }
        if !orphans.is_empty() {
            self.can_adopt(set)
                .await
                .context("can't adopt ControllerRevisions")?;
            let api: Api<ControllerRevision> = Api::namespaced(
                self.client.clone(),
                set.metadata.namespace.as_deref().unwrap_or_default(),
            );
            for mut orphan in orphans {
                let patch = adopt_patch(set, orphan.metadata.uid.as_deref().unwrap_or_default());
                match api
                    .patch(
                        orphan.metadata.name.as_deref().unwrap_or_default(),
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await
                {
                    Ok(adopted) => orphan = adopted,
                    Err(error) if is_not_found(&error) => continue,
                    Err(error) => return Err(error.into()),
                }
                owned.push(orphan);
            }
        }
        Ok(owned)
    }

    /// The pods the set owns after adopting matching orphans named after it
    /// and releasing owned pods that no longer match (upstream's ClaimPods).
    async fn claim_pods(
        &self,
        set: &StatefulSet,
        selector: &Selector,
    ) -> anyhow::Result<Vec<Arc<Pod>>> {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let mut owned = Vec::new();
        let mut adoption_checked = false;
        for pod in self.pods.store().state() {
            if pod.metadata.namespace != set.metadata.namespace {
                continue;
            }
            let matches =
                selector.matches(pod.metadata.labels.as_ref()) && identity::is_member_of(set, &pod);
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            match client::owners::controller_of(&pod.metadata) {
                Some(owner) if owner.uid == uid => {
                    if matches {
                        owned.push(pod);
                    } else if set.metadata.deletion_timestamp.is_none() {
                        let patch = json!({"metadata": {
                            "ownerReferences": [{"$patch": "delete", "uid": uid}],
                            "uid": pod_uid}});
                        match api
                            .patch(
                                identity::name(&pod),
                                &PatchParams::default(),
                                &Patch::Strategic(patch),
                            )
                            .await
                        {
                            Ok(_) => {}
                            Err(error)
                                if is_not_found(&error)
                                    || matches!(&error, kube::Error::Api(s) if s.code == 422) => {}
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
                Some(_) => {}
                None => {
                    if !matches
                        || set.metadata.deletion_timestamp.is_some()
                        || pod.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    if !adoption_checked {
                        self.can_adopt(set).await.context("can't adopt Pods")?;
                        adoption_checked = true;
                    }
                    let patch = adopt_patch(set, &pod_uid);
                    match api
                        .patch(
                            identity::name(&pod),
                            &PatchParams::default(),
                            &Patch::Strategic(patch),
                        )
                        .await
                    {
                        Ok(adopted) => owned.push(Arc::new(adopted)),
                        Err(error) if is_not_found(&error) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
        owned.sort_by_key(|pod| identity::ordinal(pod));
        Ok(owned)
    }

    /// Finds or creates the update revision (rolling back to an equal older
    /// revision by renumbering it) and finds the current one.
    async fn current_and_update_revisions(
        &self,
        set: &StatefulSet,
        revisions: &[ControllerRevision],
    ) -> anyhow::Result<(ControllerRevision, ControllerRevision, i32)> {
        let mut collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let owner = client::owners::controller_reference(set);
        let candidate = new_revision(
            set,
            owner.clone(),
            next_revision(revisions),
            collision_count,
        );
        let equal: Vec<&ControllerRevision> = revisions
            .iter()
            .filter(|r| equal_revisions(r, &candidate))
            .collect();
        let api: Api<ControllerRevision> = Api::namespaced(
            self.client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let update = match (equal.last(), revisions.last()) {
            (Some(found), Some(latest)) if equal_revisions(latest, found) => latest.clone(),
            (Some(found), _) => {
                let patch = json!({"revision": candidate.revision});
                api.patch(
                    found.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?
            }
            (None, _) => loop {
                let mut attempt = candidate.clone();
                let hash = revision::revision_hash(&candidate.data.0, Some(collision_count));
                attempt.metadata.name =
                    Some(revision::revision_name(identity::set_name(set), &hash));
                match api.create(&PostParams::default(), &attempt).await {
                    Ok(created) => break created,
                    Err(error) if is_already_exists(&error) => {
                        let existing = api
                            .get(attempt.metadata.name.as_deref().unwrap_or_default())
                            .await?;
                        if existing.data.0 == attempt.data.0 {
                            break existing;
                        }
                        collision_count += 1;
                    }
                    Err(error) => return Err(error.into()),
                }
            },
        };
        let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = revisions
            .iter()
            .find(|r| r.metadata.name.is_some() && r.metadata.name == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    async fn update_stateful_set(
        &self,
        set: &StatefulSet,
        mut revisions: Vec<ControllerRevision>,
        pods: &[Arc<Pod>],
    ) -> anyhow::Result<StatefulSetStatus> {
        sort_revisions(&mut revisions);
        let (current, update, collision_count) =
            self.current_and_update_revisions(set, &revisions).await?;
        let current_set = apply_revision(set, &current);
        let update_set = apply_revision(set, &update);
        let claims: BTreeMap<String, Arc<PersistentVolumeClaim>> = self
            .claims
            .store()
            .state()
            .into_iter()
            .filter(|claim| claim.metadata.namespace == set.metadata.namespace)
            .map(|claim| (claim.metadata.name.clone().unwrap_or_default(), claim))
            .collect();
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let update_name = update.metadata.name.clone().unwrap_or_default();
        let plan = control::plan(&SyncInput {
            set,
            current_set: &current_set,
            update_set: &update_set,
            current_revision: &current_name,
            update_revision: &update_name,
            collision_count,
            pods,
            claims: &claims,
            now: Timestamp::now(),
        });
        let mut outcome = Ok(());
        for step in plan.steps {
            if let Err(error) = self.execute(set, step).await {
                outcome = Err(error);
                break;
            }
        }
        let mut status = plan.status;
        complete_rolling_update(set, &mut status);
        self.write_status(set, &status).await?;
        outcome?;
        self.truncate_history(set, pods, &revisions, &current_name, &update_name)
            .await?;
        Ok(status)
    }

    async fn execute(&self, set: &StatefulSet, step: Step) -> anyhow::Result<()> {
        let namespace = set.metadata.namespace.as_deref().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match step {
            Step::CreatePod { pod, claims } => {
                if let Err(error) = self.create_claims(set, identity::name(&pod), claims).await {
                    self.pod_event(
                        set,
                        "create",
                        identity::name(&pod),
                        Some(&error.to_string()),
                    );
                    return Err(error);
                }
                match pods.create(&PostParams::default(), &pod).await {
                    Ok(_) => {
                        self.pod_event(set, "create", identity::name(&pod), None);
                        Ok(())
                    }
                    Err(error) if is_already_exists(&error) => Err(error.into()),
                    Err(error) => {
                        self.pod_event(
                            set,
                            "create",
                            identity::name(&pod),
                            Some(&error.to_string()),
                        );
                        Err(error.into())
                    }
                }
            }
            Step::CreateClaims { pod, claims } => self.create_claims(set, &pod, claims).await,
            Step::DeletePod { pod, cause } => {
                tracing::debug!(
                    statefulset = identity::set_name(set),
                    pod = identity::name(&pod),
                    ?cause,
                    "deleting pod"
                );
                match pods
                    .delete(identity::name(&pod), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {
                        self.pod_event(set, "delete", identity::name(&pod), None);
                        Ok(())
                    }
                    Err(error) if cause == DeleteCause::Update && is_not_found(&error) => Ok(()),
                    Err(error) => {
                        self.pod_event(
                            set,
                            "delete",
                            identity::name(&pod),
                            Some(&error.to_string()),
                        );
                        Err(error.into())
                    }
                }
            }
            Step::UpdatePod { pod } => {
                let result = pods
                    .replace(identity::name(&pod), &PostParams::default(), &pod)
                    .await;
                match result {
                    Ok(_) => {
                        self.pod_event(set, "update", identity::name(&pod), None);
                        Ok(())
                    }
                    Err(error) => {
                        self.pod_event(
                            set,
                            "update",
                            identity::name(&pod),
                            Some(&error.to_string()),
                        );
                        Err(error.into())
                    }
                }
            }
            Step::UpdateClaim { pod, claim } => {
                let claims: Api<PersistentVolumeClaim> =
                    Api::namespaced(self.client.clone(), namespace);
                let name = claim.metadata.name.clone().unwrap_or_default();
                let patch = json!({"metadata": {
                    "ownerReferences": claim.metadata.owner_references.clone().unwrap_or_default(),
                    "resourceVersion": claim.metadata.resource_version}});
                claims
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .with_context(|| {
                        format!(
                            "could not update claim {name} of pod {pod} for delete policy ownerRefs"
                        )
                    })?;
                Ok(())
            }
        }
    }

    async fn create_claims(
        &self,
        set: &StatefulSet,
        pod: &str,
        claims: Vec<PersistentVolumeClaim>,
    ) -> anyhow::Result<()> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            self.client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let mut errors = Vec::new();
        for claim in claims {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => self.claim_event(set, pod, &name, None),
                Err(error) => {
                    if !is_already_exists(&error) {
                        self.claim_event(set, pod, &name, Some(&error.to_string()));
                    }
                    errors.push(format!("failed to create PVC {name}: {error}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", errors.join(", "))
        }
    }

    /// Upstream's recordPodEvent: "create Pod web-0 in StatefulSet web successful".
    fn pod_event(&self, set: &StatefulSet, verb: &str, pod: &str, error: Option<&str>) {
        let title = title_case(verb);
        let set_name = identity::set_name(set);
        match error {
            None => self.recorder.normal(
                set,
                &format!("Successful{title}"),
                format!("{verb} Pod {pod} in StatefulSet {set_name} successful"),
            ),
            Some(error) => self.recorder.warning(
                set,
                &format!("Failed{title}"),
                format!("{verb} Pod {pod} in StatefulSet {set_name} failed error: {error}"),
            ),
        }
    }

    /// Upstream's recordClaimEvent: "create Claim www-web-0 Pod web-0 in StatefulSet web success".
    fn claim_event(&self, set: &StatefulSet, pod: &str, claim: &str, error: Option<&str>) {
        let set_name = identity::set_name(set);
        match error {
            None => self.recorder.normal(
                set,
                "SuccessfulCreate",
                format!("create Claim {claim} Pod {pod} in StatefulSet {set_name} success"),
            ),
            Some(error) => self.recorder.warning(
                set,
                "FailedCreate",
                format!("create Claim {claim} for Pod {pod} in StatefulSet {set_name} failed error: {error}"),
            ),
        }
    }

    /// Writes `status` unless the set already shows it, retrying on
    /// conflicts with a fresh copy of the set.
    async fn write_status(
        &self,
        set: &StatefulSet,
        status: &StatefulSetStatus,
    ) -> anyhow::Result<()> {
        if !inconsistent_status(set, status) {
            return Ok(());
        }
        let api: Api<StatefulSet> = Api::namespaced(
            self.client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let mut target = set.clone();
        for _ in 0..10 {
            let mut status = status.clone();
            status.conditions = target.status.as_ref().and_then(|s| s.conditions.clone());
            target.status = Some(status);
            match api
                .replace_status(identity::set_name(set), &PostParams::default(), &target)
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if is_not_found(&error) => return Ok(()),
                Err(error) if is_conflict(&error) => {
                    target = api.get(identity::set_name(set)).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        anyhow::bail!("aborting StatefulSet status update after repeated conflicts")
    }

    /// Deletes the oldest revisions no pod, nor the current or update
    /// revision, uses, beyond revisionHistoryLimit.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        revisions: &[ControllerRevision],
        current: &str,
        update: &str,
    ) -> anyhow::Result<()> {
        let live: Vec<&str> = pods
            .iter()
            .map(|pod| identity::pod_revision(pod))
            .chain([current, update])
            .collect();
        let history: Vec<&ControllerRevision> = revisions
            .iter()
            .filter(|r| !live.contains(&r.metadata.name.as_deref().unwrap_or_default()))
            .collect();
        let limit = set.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        if history.len() <= limit {
            return Ok(());
        }
        let api: Api<ControllerRevision> = Api::namespaced(
            self.client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        for revision in &history[..history.len() - limit] {
            match api
                .delete(
                    revision.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

fn title_case(verb: &str) -> String {
    let mut chars = verb.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn adopt_patch(set: &StatefulSet, uid: &str) -> serde_json::Value {
    json!({"metadata": {
        "ownerReferences": [client::owners::controller_reference(set)],
        "uid": uid}})
}

/// When every replica runs the update revision and is ready, the update
/// revision becomes the current one.
fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let replicas = identity::replicas(set);
    let rolling = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.ready_replicas.unwrap_or(0) == replicas
        && status.replicas == replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

fn inconsistent_status(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let Some(existing) = set.status.as_ref() else {
        return true;
    };
    status.observed_generation.unwrap_or(0) > existing.observed_generation.unwrap_or(0)
        || status.replicas != existing.replicas
        || status.current_replicas.unwrap_or(0) != existing.current_replicas.unwrap_or(0)
        || status.ready_replicas.unwrap_or(0) != existing.ready_replicas.unwrap_or(0)
        || status.updated_replicas.unwrap_or(0) != existing.updated_replicas.unwrap_or(0)
        || status.current_revision != existing.current_revision
        || status.available_replicas.unwrap_or(0) != existing.available_replicas.unwrap_or(0)
        || status.update_revision != existing.update_revision
        || status.collision_count.unwrap_or(0) != existing.collision_count.unwrap_or(0)
}
