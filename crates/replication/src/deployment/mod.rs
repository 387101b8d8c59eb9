//! The Deployment controller: a ReplicaSet per pod template (named by its hash), rolled from old to new by RollingUpdate or Recreate, scaled proportionally, with revisions, history cleanup, and Progressing/Available conditions.

pub mod hash;
pub mod util;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use client::{Change, EventRecorder, Informers, WorkQueue};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use serde_json::json;

use crate::pods;
use crate::replicas::{PodIndex, api_message, owner_key};
use crate::selector::{Selector, selects_everything};
use util::*;

/// Options of the Deployment controller.
#[derive(Clone, Debug, Default)]
pub struct DeploymentConfig {}

struct Controller {
    client: Client,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
    /// Pods by controlling ReplicaSet, for Recreate's "old pods gone" check.
    pods: Mutex<PodIndex>,
}

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

pub async fn run(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    _config: DeploymentConfig,
) -> anyhow::Result<()> {
    let deployment_informer = informers.informer::<Deployment>();
    let rs_informer = informers.informer::<ReplicaSet>();
    let pod_informer = informers.informer::<Pod>();
    let mut deployment_changes = deployment_informer.subscribe();
    let mut rs_changes = rs_informer.subscribe();
    let mut pod_changes = pod_informer.subscribe();
    let controller = Arc::new(Controller {
        recorder: EventRecorder::new(client.clone(), "deployment-controller"),
        client,
        deployments: deployment_informer.store().clone(),
        replica_sets: rs_informer.store().clone(),
        queue: WorkQueue::new(),
        pods: Mutex::new(PodIndex::default()),
    });
    deployment_informer.wait_synced().await;
    rs_informer.wait_synced().await;
    pod_informer.wait_synced().await;
    while let Ok(change) = pod_changes.try_recv() {
        controller.on_pod(change);
    }
    while let Ok(change) = rs_changes.try_recv() {
        controller.on_replica_set(change);
    }
    while let Ok(change) = deployment_changes.try_recv() {
        controller.on_deployment(change);
    }
    let handler = {
        let controller = controller.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(change) = pod_changes.recv() => controller.on_pod(change),
                    Some(change) = rs_changes.recv() => controller.on_replica_set(change),
                    Some(change) = deployment_changes.recv() => controller.on_deployment(change),
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

fn deployment_selector(d: &Deployment) -> Result<Selector, String> {
    Selector::from_label_selector(Some(&d.spec.selector))
}

fn is_deployment_reference(reference: &OwnerReference) -> bool {
    reference.kind == "Deployment" && reference.api_version.starts_with("apps/")
}

impl Controller {
    fn pods(&self) -> MutexGuard<'_, PodIndex> {
        self.pods
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_deployment(&self, change: Change<Deployment>) {
        self.queue.add(owner_key(change.object().meta()));
    }

    fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<Deployment>> {
        if !is_deployment_reference(reference) {
            return None;
        }
        let d = self
            .deployments
            .get(&ObjectRef::new(&reference.name).within(namespace))?;
        (d.metadata.uid.as_deref() == Some(reference.uid.as_str())).then_some(d)
    }

    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let namespace = rs.metadata.namespace.as_deref();
        for d in self.deployments.state() {
            if d.metadata.namespace.as_deref() == namespace
                && deployment_selector(&d).is_ok_and(|s| s.matches(rs.metadata.labels.as_ref()))
            {
                self.queue.add(owner_key(&d.metadata));
            }
        }
    }

    fn enqueue_controller(&self, rs: &ReplicaSet) -> bool {
        let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
        match client::owners::controller_of(&rs.metadata) {
            Some(reference) => {
                if let Some(d) = self.resolve(namespace, reference) {
                    self.queue.add(owner_key(&d.metadata));
                }
                true
            }
            None => false,
        }
    }

    fn on_replica_set(&self, change: Change<ReplicaSet>) {
        match change {
            Change::Applied { old: None, new } => {
                if !self.enqueue_controller(&new) && new.metadata.deletion_timestamp.is_none() {
                    self.enqueue_matching(&new);
                }
            }
            Change::Applied {
                old: Some(old),
                new,
            } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let old_reference = client::owners::controller_of(&old.metadata);
                let new_reference = client::owners::controller_of(&new.metadata);
                let reference_changed = old_reference != new_reference;
                if reference_changed {
                    self.enqueue_controller(&old);
                }
                if !self.enqueue_controller(&new)
                    && (reference_changed || old.metadata.labels != new.metadata.labels)
                {
                    self.enqueue_matching(&new);
                }
            }
            Change::Deleted(gone) => {
                self.enqueue_controller(&gone);
            }
        }
    }

    fn on_pod(&self, change: Change<Pod>) {
        match change {
            Change::Applied { new, .. } => self.pods().insert(new),
            Change::Deleted(gone) => {
                self.pods().remove(&gone);
                // A Recreate rollout waits for the old pods to be gone.
                let namespace = gone.metadata.namespace.as_deref().unwrap_or_default();
                let Some(reference) = client::owners::controller_of(&gone.metadata) else {
                    return;
                };
                if reference.kind != "ReplicaSet" {
                    return;
                }
                let Some(rs) = self
                    .replica_sets
                    .get(&ObjectRef::new(&reference.name).within(namespace))
                else {
                    return;
                };
                if let Some(d_reference) = client::owners::controller_of(&rs.metadata)
                    && let Some(d) = self.resolve(namespace, d_reference)
                    && is_recreate(&d)
                {
                    self.queue.add(owner_key(&d.metadata));
                }
            }
        }
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(cached) = self
            .deployments
            .get(&ObjectRef::new(name).within(namespace))
        else {
            return Ok(None);
        };
        let mut d = (*cached).clone();
        if selects_everything(&d.spec.selector) {
            self.recorder.warning(
                &d,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let observed = d
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if observed < d.metadata.generation.unwrap_or(0) {
                d.status
                    .get_or_insert_with(Default::default)
                    .observed_generation = d.metadata.generation;
                self.write_status(&mut d).await?;
            }
            return Ok(None);
        }
        let rs_list = self.replica_sets_for(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old_rss) = self.all_replica_sets(&mut d, &rs_list, false).await?;
            self.sync_deployment_status(&old_rss, new_rs.as_ref(), &mut d)
                .await?;
            return Ok(None);
        }
        self.check_paused_conditions(&mut d).await?;
        if d.spec.paused == Some(true) {
            return self.sync_scale(&mut d, &rs_list).await;
        }
        if self.is_scaling_event(&mut d, &rs_list).await? {
            return self.sync_scale(&mut d, &rs_list).await;
        }
        if is_recreate(&d) {
            self.rollout_recreate(&mut d, &rs_list).await
        } else {
            self.rollout_rolling(&mut d, &rs_list).await
        }
    }

    /// The ReplicaSets this Deployment controls after adopting matching
    /// orphans and releasing what no longer matches.
    async fn replica_sets_for(&self, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
        let selector = deployment_selector(d).map_err(anyhow::Error::msg)?;
        let namespace = d.metadata.namespace.as_deref();
        let candidates: Vec<Arc<ReplicaSet>> = self
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == namespace)
            .collect();
        let claimed = crate::claim::claim(&self.client, d, candidates, |rs: &ReplicaSet| {
            selector.matches(rs.metadata.labels.as_ref())
        })
        .await?;
        Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
    }

    fn rs_api(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Writes the Deployment's status and keeps `d` as written. Upstream's
    /// status write also carries the revision annotation; where the status
    /// subresource keeps metadata, a metadata patch does it.
    async fn write_status(&self, d: &mut Deployment) -> anyhow::Result<()> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let wanted_revision =
            annotation(&d.metadata.annotations, REVISION_ANNOTATION).map(str::to_string);
        let mut written = api.replace_status(&name, &PostParams::default(), d).await?;
        if let Some(revision) = wanted_revision
            && annotation(&written.metadata.annotations, REVISION_ANNOTATION)
                != Some(revision.as_str())
        {
            let patch = json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}});
            written = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        *d = written;
        Ok(())
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> anyhow::Result<()> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let status = d.status.get_or_insert_with(Default::default);
        let reason = condition(status, PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT_REASON) {
            return Ok(());
        }
        let paused_condition = reason.as_deref() == Some(PAUSED_REASON);
        let paused = d.spec.paused == Some(true);
        let now = pods::now_seconds();
        if paused && !paused_condition {
            set_condition(
                status,
                new_condition(
                    PROGRESSING,
                    "Unknown",
                    PAUSED_REASON,
                    "Deployment is paused".into(),
                    now,
                ),
            );
        } else if !paused && paused_condition {
            set_condition(
                status,
                new_condition(
                    PROGRESSING,
                    "Unknown",
                    RESUMED_REASON,
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(d).await
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet
    /// (created if asked and missing) and all old ones.
    async fn all_replica_sets(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> anyhow::Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let new_uid = find_new_replica_set(d, rs_list).and_then(|rs| rs.metadata.uid.clone());
        let old: Vec<ReplicaSet> = rs_list
            .iter()
            .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
            .cloned()
            .collect();
        let new_rs = self.new_replica_set(d, rs_list, &old, create).await?;
        Ok((new_rs, old))
    }

    async fn new_replica_set(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        old: &[ReplicaSet],
        create: bool,
    ) -> anyhow::Result<Option<ReplicaSet>> {
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        let new_revision = max_revision(&old_refs) + 1;
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let now = pods::now_seconds();
        if let Some(existing) = find_new_replica_set(d, rs_list) {
            let mut rs = existing.clone();
            let annotations_updated =
                set_new_replica_set_annotations(d, &mut rs, new_revision, true);
            let min_ready_changed =
                rs.spec.min_ready_seconds.unwrap_or(0) != d.spec.min_ready_seconds.unwrap_or(0);
            if annotations_updated || min_ready_changed {
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
                let name = rs.metadata.name.clone().unwrap_or_default();
                let updated = self
                    .rs_api(&namespace)
                    .replace(&name, &PostParams::default(), &rs)
                    .await?;
                return Ok(Some(updated));
            }
            let revision = annotation(&rs.metadata.annotations, REVISION_ANNOTATION)
                .unwrap_or_default()
                .to_string();
            let mut needs_update = set_deployment_revision(d, &revision);
            let has_deadline = progress_deadline(d).is_some();
            let status = d.status.get_or_insert_with(Default::default);
            if has_deadline && condition(status, PROGRESSING).is_none() {
                let message = format!(
                    "Found new replica set {:?}",
                    rs.metadata.name.as_deref().unwrap_or_default()
                );
                set_condition(
                    status,
                    new_condition(PROGRESSING, "True", FOUND_NEW_RS_REASON, message, now),
                );
                needs_update = true;
            }
            if needs_update {
                self.write_status(d).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let template_hash = hash::pod_template_hash(&d.spec.template, collision_count);
        let mut template = d.spec.template.clone();
        let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        template_meta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), template_hash.clone());
        let mut selector: LabelSelector = d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), template_hash.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{d_name}-{template_hash}")),
                namespace: Some(namespace.clone()),
                owner_references: Some(vec![client::owners::controller_reference(d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.push(&rs);
        let new_replicas = new_rs_new_replicas(d, &all, 0);
        rs.spec.replicas = Some(new_replicas);
        set_new_replica_set_annotations(d, &mut rs, new_revision, false);
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        let mut already_exists = false;
        let created = match self
            .rs_api(&namespace)
            .create(&PostParams::default(), &rs)
            .await
        {
            Ok(created) => created,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                already_exists = true;
                let existing = self
                    .replica_sets
                    .get(&ObjectRef::new(&rs_name).within(&namespace));
                let ours = existing.as_ref().is_some_and(|existing| {
                    client::owners::is_controlled_by(
                        &existing.metadata,
                        d.metadata.uid.as_deref().unwrap_or_default(),
                    ) && existing
                        .spec
                        .template
                        .as_ref()
                        .is_some_and(|t| equal_ignore_hash(&d.spec.template, t))
                });
                match existing {
                    Some(existing) if ours => (*existing).clone(),
                    _ => {
                        // A different template hashed to this name: bump the
                        // collision count so the next try gets another name.
                        let status = d.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        self.write_status(d).await?;
                        anyhow::bail!("replica set {rs_name:?} already exists (hash collision)");
                    }
                }
            }
            Err(kube::Error::Api(status))
                if status.details.as_ref().is_some_and(|details| {
                    details
                        .causes
                        .iter()
                        .any(|c| c.reason == "NamespaceTerminating")
                }) =>
            {
                anyhow::bail!("{}", status.message);
            }
            Err(error) => {
                let message = format!(
                    "Failed to create new replica set {rs_name:?}: {}",
                    api_message(&error)
                );
                if progress_deadline(d).is_some() {
                    let status = d.status.get_or_insert_with(Default::default);
                    set_condition(
                        status,
                        new_condition(
                            PROGRESSING,
                            "False",
                            FAILED_RS_CREATE_REASON,
                            message.clone(),
                            now,
                        ),
                    );
                    let _ = self.write_status(d).await;
                }
                self.recorder.warning(d, FAILED_RS_CREATE_REASON, message);
                return Err(error.into());
            }
        };
        if !already_exists && new_replicas > 0 {
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                format!("Scaled up replica set {rs_name} from 0 to {new_replicas}"),
            );
        }
        let mut needs_update = set_deployment_revision(d, &new_revision.to_string());
        if !already_exists && progress_deadline(d).is_some() {
            let status = d.status.get_or_insert_with(Default::default);
            set_condition(
                status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_REASON,
                    format!("Created new replica set {rs_name:?}"),
                    now,
                ),
            );
            needs_update = true;
        }
        if needs_update {
            self.write_status(d).await?;
        }
        Ok(Some(created))
    }

    async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> anyhow::Result<bool> {
        let (new_rs, old) = self.all_replica_sets(d, rs_list, false).await?;
        let desired = desired_replicas(d);
        Ok(old
            .iter()
            .chain(new_rs.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(|rs| annotation(&rs.metadata.annotations, DESIRED_REPLICAS_ANNOTATION))
            .filter_map(|text| text.parse::<i32>().ok())
            .any(|annotated| annotated != desired))
    }

    /// Upstream's `sync`: scaling (proportionally) and, when paused,
    /// history cleanup.
    async fn sync_scale(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> anyhow::Result<Option<Duration>> {
        let (mut new_rs, mut old) = self.all_replica_sets(d, rs_list, false).await?;
        self.scale(d, &mut new_rs, &mut old).await?;
        if d.spec.paused == Some(true) {
            self.cleanup(d, &old).await?;
        }
        self.sync_deployment_status(&old, new_rs.as_ref(), d)
            .await?;
        Ok(None)
    }

    async fn sync_deployment_status(
        &self,
        old: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> anyhow::Result<()> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let status = calculate_status(&all, new_rs, d, pods::now_seconds());
        if normalized(d.status.as_ref()) == status {
            return Ok(());
        }
        d.status = Some(status);
        self.write_status(d).await
    }

    /// Scales one ReplicaSet, records the event, and returns whether its
    /// size changed and the ReplicaSet as written.
    async fn scale_replica_set(
        &self,
        rs: &ReplicaSet,
        new_scale: i32,
        d: &Deployment,
    ) -> anyhow::Result<(bool, ReplicaSet)> {
        let old_scale = rs_replicas(rs);
        let size_changes = old_scale != new_scale;
        let desired = desired_replicas(d);
        let max = desired + max_surge(d);
        if !size_changes && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        copy.spec.replicas = Some(new_scale);
        set_replicas_annotations(&mut copy, desired, max);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let written = self
            .rs_api(rs.metadata.namespace.as_deref().unwrap_or_default())
            .replace(&name, &PostParams::default(), &copy)
            .await?;
        if size_changes {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        Ok((size_changes, written))
    }

    /// Upstream's `scaleReplicaSetAndRecordEvent`: nothing when the size holds.
    async fn scale_if_needed(
        &self,
        rs: &ReplicaSet,
        new_scale: i32,
        d: &Deployment,
    ) -> anyhow::Result<(bool, ReplicaSet)> {
        if rs_replicas(rs) == new_scale {
            return Ok((false, rs.clone()));
        }
        self.scale_replica_set(rs, new_scale, d).await
    }

    /// Upstream's `scale`: a lone active ReplicaSet takes the whole size;
    /// a saturated new one drains the old; otherwise the change is spread
    /// over all active ReplicaSets in proportion to their size.
    async fn scale(
        &self,
        d: &Deployment,
        new_rs: &mut Option<ReplicaSet>,
        old: &mut [ReplicaSet],
    ) -> anyhow::Result<()> {
        let desired = desired_replicas(d);
        old.sort_by(|a, b| by_creation(b, a));
        let active_count = old
            .iter()
            .chain(new_rs.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .count();
        // Which ReplicaSet is the "active or latest" one, if exactly one.
        enum Target {
            New,
            Old(usize),
        }
        let target = match active_count {
            0 if new_rs.is_some() => Some(Target::New),
            0 if !old.is_empty() => Some(Target::Old(0)),
            1 => {
                if new_rs.as_ref().is_some_and(|rs| rs_replicas(rs) > 0) {
                    Some(Target::New)
                } else {
                    old.iter()
                        .position(|rs| rs_replicas(rs) > 0)
                        .map(Target::Old)
                }
            }
            _ => None,
        };
        if let Some(target) = target {
            let rs = match &target {
                Target::New => new_rs.as_mut(),
                Target::Old(index) => old.get_mut(*index),
            };
            if let Some(rs) = rs
                && rs_replicas(rs) != desired
            {
                let (_, written) = self.scale_if_needed(rs, desired, d).await?;
                *rs = written;
            }
            return Ok(());
        }
        if is_saturated(d, new_rs.as_ref()) {
            for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
                let (_, written) = self.scale_if_needed(rs, 0, d).await?;
                *rs = written;
            }
            return Ok(());
        }
        if !is_rolling_update(d) {
            return Ok(());
        }
        // Indices into old (Some) or the new ReplicaSet (None), active only.
        let mut active: Vec<Option<usize>> = (0..old.len())
            .filter(|i| rs_replicas(&old[*i]) > 0)
            .map(Some)
            .collect();
        if new_rs.as_ref().is_some_and(|rs| rs_replicas(rs) > 0) {
            active.push(None);
        }
        let get =
            |slot: &Option<usize>, old: &[ReplicaSet], new_rs: &Option<ReplicaSet>| -> ReplicaSet {
                match slot {
                    Some(i) => old[*i].clone(),
                    None => new_rs.clone().unwrap_or_default(),
                }
            };
        let current: i32 = active
            .iter()
            .map(|slot| rs_replicas(&get(slot, old, new_rs)))
            .sum();
        let allowed = if desired > 0 {
            desired + max_surge(d)
        } else {
            0
        };
        let to_add = allowed - current;
        if to_add > 0 {
            active.sort_by(|a, b| by_size_newer(&get(a, old, new_rs), &get(b, old, new_rs)));
        } else if to_add < 0 {
            active.sort_by(|a, b| by_size_older(&get(a, old, new_rs), &get(b, old, new_rs)));
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for slot in &active {
            let rs = get(slot, old, new_rs);
            if to_add != 0 {
                let share = proportion(&rs, d, to_add, added);
                sizes.push(rs_replicas(&rs) + share);
                added += share;
            } else {
                sizes.push(rs_replicas(&rs));
            }
        }
        for (i, slot) in active.iter().enumerate() {
            if i == 0 && to_add != 0 {
                // Leftovers go to (or come from) the largest.
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            let rs = get(slot, old, new_rs);
            let (_, written) = self.scale_replica_set(&rs, sizes[i], d).await?;
            match slot {
                Some(index) => old[*index] = written,
                None => *new_rs = Some(written),
            }
        }
        Ok(())
    }

    /// Deletes the oldest zero-sized old ReplicaSets beyond
    /// revisionHistoryLimit.
    async fn cleanup(&self, d: &Deployment, old: &[ReplicaSet]) -> anyhow::Result<()> {
        let Some(limit) = revision_history_limit(d) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        for rs in cleanable.into_iter().take(excess as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            match self
                .rs_api(rs.metadata.namespace.as_deref().unwrap_or_default())
                .delete(name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Upstream's `syncRolloutStatus`: status plus the Progressing
    /// condition (complete, progressing, or timed out) and ReplicaFailure;
    /// a stuck rollout is looked at again when its deadline passes.
    async fn sync_rollout_status(
        &self,
        old: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> anyhow::Result<Option<Duration>> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let now = pods::now_seconds();
        let mut status = calculate_status(&all, new_rs, d, now);
        if progress_deadline(d).is_none() {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = d
            .status
            .as_ref()
            .and_then(|s| condition(s, PROGRESSING))
            .cloned();
        let complete_before = count_of(status.replicas) == count_of(status.updated_replicas)
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE_REASON);
        if progress_deadline(d).is_some() && !complete_before {
            let rs_name = new_rs.and_then(|rs| rs.metadata.name.clone());
            let d_name = d.metadata.name.clone().unwrap_or_default();
            if deployment_complete(d, &status) {
                let message = match &rs_name {
                    Some(name) => format!("ReplicaSet {name:?} has successfully progressed."),
                    None => format!("Deployment {d_name:?} has successfully progressed."),
                };
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, message, now),
                );
            } else if deployment_progressing(d, &status) {
                let message = match &rs_name {
                    Some(name) => format!("ReplicaSet {name:?} is progressing."),
                    None => format!("Deployment {d_name:?} is progressing."),
                };
                let mut progressing =
                    new_condition(PROGRESSING, "True", RS_UPDATED_REASON, message, now);
                // Progress refreshes the update time even with the same
                // reason; the transition time holds while it stays True.
                if let Some(current) = &current {
                    if current.status.as_deref() == Some("True") {
                        progressing.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, progressing);
            } else if deployment_timed_out(d, &status, now) {
                let message = match &rs_name {
                    Some(name) => format!("ReplicaSet {name:?} has timed out progressing."),
                    None => format!("Deployment {d_name:?} has timed out progressing."),
                };
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "False", TIMED_OUT_REASON, message, now),
                );
            }
        }
        match replica_failures(&all, new_rs).into_iter().next() {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        if status.conditions.as_ref().is_some_and(Vec::is_empty) {
            status.conditions = None;
        }
        if normalized(d.status.as_ref()) == status {
            return Ok(self.stuck_requeue(d, &status, now));
        }
        d.status = Some(status);
        self.write_status(d).await?;
        Ok(None)
    }

    /// Upstream's `requeueStuckDeployment`: when the deadline would pass.
    fn stuck_requeue(
        &self,
        d: &Deployment,
        status: &k8s_openapi::api::apps::v1::DeploymentStatus,
        now: Timestamp,
    ) -> Option<Duration> {
        let deadline = progress_deadline(d)?;
        let current = d.status.as_ref().and_then(|s| condition(s, PROGRESSING))?;
        if deployment_complete(d, status) || current.reason.as_deref() == Some(TIMED_OUT_REASON) {
            return None;
        }
        let updated = current.last_update_time.as_ref()?.0;
        let due = updated.as_second() + i64::from(deadline);
        let after = due - now.as_second();
        if after < 1 {
            return Some(Duration::from_secs(1));
        }
        Some(Duration::from_secs(after as u64 + 1))
    }

    async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> anyhow::Result<Option<Duration>> {
        let (new_rs, old) = self.all_replica_sets(d, rs_list, true).await?;
        let Some(new_rs) = new_rs else {
            return Ok(None);
        };
        if self.reconcile_new_replica_set(&old, &new_rs, d).await? {
            return self.sync_rollout_status(&old, Some(&new_rs), d).await;
        }
        let mut active_old: Vec<ReplicaSet> = old
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .cloned()
            .collect();
        if self
            .reconcile_old_replica_sets(&old, &mut active_old, &new_rs, d)
            .await?
        {
            return self.sync_rollout_status(&old, Some(&new_rs), d).await;
        }
        let status = normalized(d.status.as_ref());
        if deployment_complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(&old, Some(&new_rs), d).await
    }

    async fn reconcile_new_replica_set(
        &self,
        old: &[ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> anyhow::Result<bool> {
        let desired = desired_replicas(d);
        let current = rs_replicas(new_rs);
        if current == desired {
            return Ok(false);
        }
        if current > desired {
            return Ok(self.scale_if_needed(new_rs, desired, d).await?.0);
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(new_rs)).collect();
        let target = new_rs_new_replicas(d, &all, current);
        Ok(self.scale_if_needed(new_rs, target, d).await?.0)
    }

    async fn reconcile_old_replica_sets(
        &self,
        all_old: &[ReplicaSet],
        active_old: &mut [ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> anyhow::Result<bool> {
        let old_pods: i32 = active_old.iter().map(rs_replicas).sum();
        if old_pods == 0 {
            return Ok(false);
        }
        let all_pods: i32 = all_old.iter().map(rs_replicas).sum::<i32>() + rs_replicas(new_rs);
        let min_available = desired_replicas(d) - max_unavailable(d);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let cleaned = self
            .cleanup_unhealthy_replicas(active_old, d, max_scaled_down)
            .await?;
        let scaled = self
            .scale_down_old_for_rolling_update(active_old, new_rs, d)
            .await?;
        Ok(cleaned + scaled > 0)
    }

    /// Scales down old ReplicaSets' unavailable replicas first, so they
    /// cannot block the rollout.
    async fn cleanup_unhealthy_replicas(
        &self,
        old: &mut [ReplicaSet],
        d: &Deployment,
        max_cleanup: i32,
    ) -> anyhow::Result<i32> {
        old.sort_by(by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let replicas = rs_replicas(rs);
            let available = rs_available(rs);
            if replicas == 0 || replicas == available {
                continue;
            }
            let scale_down = (max_cleanup - total).min(replicas - available);
            let new_count = replicas - scale_down;
            if new_count > replicas {
                anyhow::bail!(
                    "when cleaning up unhealthy replicas, got invalid request to scale down {}/{} {} -> {}",
                    rs.metadata.namespace.as_deref().unwrap_or_default(),
                    rs.metadata.name.as_deref().unwrap_or_default(),
                    replicas,
                    new_count
                );
            }
            let (_, written) = self.scale_if_needed(rs, new_count, d).await?;
            *rs = written;
            total += scale_down;
        }
        Ok(total)
    }

    async fn scale_down_old_for_rolling_update(
        &self,
        old: &mut [ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> anyhow::Result<i32> {
        let min_available = desired_replicas(d) - max_unavailable(d);
        let available: i32 = old.iter().map(rs_available).sum::<i32>() + rs_available(new_rs);
        if available <= min_available {
            return Ok(0);
        }
        old.sort_by(by_creation);
        let to_scale_down = available - min_available;
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= to_scale_down {
                break;
            }
            let replicas = rs_replicas(rs);
            if replicas == 0 {
                continue;
            }
            let scale_down = replicas.min(to_scale_down - total);
            let (_, written) = self.scale_if_needed(rs, replicas - scale_down, d).await?;
            *rs = written;
            total += scale_down;
        }
        Ok(total)
    }

    /// Whether any pod of an old ReplicaSet may still run.
    fn old_pods_running(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
        if old.iter().map(rs_status_replicas).sum::<i32>() > 0 {
            return true;
        }
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
        let index = self.pods();
        old.iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .filter(|uid| Some(*uid) != new_uid)
            .flat_map(|uid| index.controlled_by(uid))
            .any(|pod| !matches!(pods::phase(&pod), "Succeeded" | "Failed"))
    }

    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> anyhow::Result<Option<Duration>> {
        let (mut new_rs, mut old) = self.all_replica_sets(d, rs_list, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            let (scaled, written) = self.scale_if_needed(rs, 0, d).await?;
            if scaled {
                *rs = written;
                scaled_down = true;
            }
        }
        if scaled_down || self.old_pods_running(new_rs.as_ref(), &old) {
            return self.sync_rollout_status(&old, new_rs.as_ref(), d).await;
        }
        if new_rs.is_none() {
            let (created, refreshed_old) = self.all_replica_sets(d, rs_list, true).await?;
            new_rs = created;
            old = refreshed_old;
        }
        if let Some(rs) = &new_rs {
            let (_, written) = self.scale_if_needed(rs, desired_replicas(d), d).await?;
            new_rs = Some(written);
        }
        if deployment_complete(d, &normalized(d.status.as_ref())) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(&old, new_rs.as_ref(), d).await
    }
}

fn count_of(value: Option<i32>) -> i32 {
    value.unwrap_or(0)
}
