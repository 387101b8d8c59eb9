//! The garbage collector: metadata-only monitors of every deletable resource feed the ownership graph; workers delete what lost all owners, cascade foreground deletions and orphan dependents.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use client::WorkQueue;
use client::workqueue::{Requeue, run_workers};

use crate::discovery::{self, DiscoveredResource, ResourceMap};
use crate::graph::{
    Effects, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Graph, GraphChange, Identity, Observed,
};

/// Options of the garbage collector.
#[derive(Clone, Debug)]
pub struct GarbageCollectorConfig {
    /// How often discovery runs again to monitor new resources (upstream's
    /// 30 s resource resync).
    pub discovery_period: Duration,
    /// `(group, resource)` pairs never monitored (upstream ignores events).
    pub ignored_resources: Vec<(String, String)>,
}

impl Default for GarbageCollectorConfig {
    fn default() -> Self {
        GarbageCollectorConfig {
            discovery_period: Duration::from_secs(30),
            ignored_resources: vec![
                (String::new(), "events".into()),
                ("events.k8s.io".into(), "events".into()),
            ],
        }
    }
}

/// Upstream's absent-owner LRU: identities verified not to exist.
struct AbsentOwners {
    order: VecDeque<Identity>,
    known: HashSet<Identity>,
}

const ABSENT_OWNER_CACHE_SIZE: usize = 500;

impl AbsentOwners {
    fn add(&mut self, identity: Identity) {
        if self.known.insert(identity.clone()) {
            self.order.push_back(identity);
            if self.order.len() > ABSENT_OWNER_CACHE_SIZE
                && let Some(oldest) = self.order.pop_front()
            {
                self.known.remove(&oldest);
            }
        }
    }

    fn has(&self, identity: &Identity) -> bool {
        self.known.contains(identity)
    }
}

struct Collector {
    client: Client,
    graph: Mutex<Graph>,
    resources: RwLock<ResourceMap>,
    absent: Mutex<AbsentOwners>,
    attempt_to_delete: WorkQueue<String>,
    attempt_to_orphan: WorkQueue<String>,
    recorder: client::EventRecorder,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why an attempt to delete ends without a retry.
enum Outcome {
    Done,
    /// The item exists in the API but the monitors have not shown it yet.
    NotYetObserved,
}

/// How an owner reference resolved.
enum Owner {
    Dangling,
    Solid,
    WaitingForDependentsDeletion,
}

/// A cluster-scoped dependent naming a namespaced owner: never resolvable.
#[derive(Debug)]
struct NamespacedOwnerOfClusterScopedObject;

impl std::fmt::Display for NamespacedOwnerOfClusterScopedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cluster-scoped object cannot refer to namespace-scoped owner")
    }
}

impl std::error::Error for NamespacedOwnerOfClusterScopedObject {}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// The dynamic API of `resource`, in `namespace` when it is namespaced.
fn api_for(client: &Client, resource: &DiscoveredResource, namespace: &str) -> Api<DynamicObject> {
    if resource.namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource.api_resource)
    } else {
        Api::all_with(client.clone(), &resource.api_resource)
    }
}

impl Collector {
    fn apply_effects(&self, effects: Effects) {
        if !effects.absent.is_empty() {
            let mut absent = lock(&self.absent);
            for identity in effects.absent {
                absent.add(identity);
            }
        }
        for uid in effects.attempt_to_delete {
            self.attempt_to_delete.add(uid);
        }
        for uid in effects.attempt_to_orphan {
            self.attempt_to_orphan.add(uid);
        }
        for invalid in effects.invalid_references {
            let message = invalid.message();
            let dependent = invalid.dependent;
            self.recorder.publish(
                ObjectReference {
                    api_version: Some(dependent.api_version),
                    kind: Some(dependent.kind),
                    namespace: (!dependent.namespace.is_empty()).then_some(dependent.namespace),
                    name: Some(dependent.name),
                    uid: Some(dependent.uid),
                    ..ObjectReference::default()
                },
                client::events::EventType::Warning,
                "OwnerRefInvalidNamespace",
                message,
            );
        }
    }

    fn resource(&self, api_version: &str, kind: &str) -> anyhow::Result<DiscoveredResource> {
        self.resources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .lookup(api_version, kind)
            .ok_or_else(|| anyhow!("unable to get REST mapping for {api_version}/{kind}"))
    }

    /// The live metadata of `identity`'s object, if it exists (by name).
    async fn get_object(
        &self,
        identity: &Identity,
    ) -> anyhow::Result<Option<PartialObjectMeta<DynamicObject>>> {
        let resource = self.resource(&identity.api_version, &identity.kind)?;
        if resource.namespaced && identity.namespace.is_empty() {
            return Ok(None);
        }
        let api = api_for(&self.client, &resource, &identity.namespace);
        Ok(api.get_metadata_opt(&identity.name).await?)
    }

    async fn attempt_to_delete_worker(&self, uid: String) -> anyhow::Result<Requeue> {
        let node = lock(&self.graph).get(&uid).cloned();
        let Some(node) = node else {
            return Ok(None);
        };
        match self.attempt_to_delete_item(&uid, &node).await {
            Ok(Outcome::Done) => Ok(None),
            Ok(Outcome::NotYetObserved) => Err(anyhow!("{} not yet observed", node.identity)),
            Err(error) if error.is::<NamespacedOwnerOfClusterScopedObject>() => Ok(None),
            Err(error) => Err(error.context(format!("error syncing item {}", node.identity))),
        }
    }

    async fn attempt_to_delete_item(
        &self,
        uid: &str,
        node: &crate::graph::Node,
    ) -> anyhow::Result<Outcome> {
        if node.being_deleted && !node.deleting_dependents() {
            // Being deleted is a one-way trip: its dependents are looked at
            // once it is gone.
            return Ok(Outcome::Done);
        }
        let latest = self.get_object(&node.identity).await?;
        let latest = match latest {
            Some(latest) if latest.metadata.uid.as_deref() == Some(uid) => latest,
            _ => {
                // Gone (or replaced by a namesake). A real node waits for its
                // monitor's delete; a virtual one is resolved here.
                if !node.observed {
                    let effects = lock(&self.graph).remove_virtual(uid);
                    lock(&self.absent).add(node.identity.clone());
                    self.apply_effects(effects);
                }
                return Ok(Outcome::Done);
            }
        };
        if !node.observed {
            return Ok(Outcome::NotYetObserved);
        }
        if node.deleting_dependents() {
            return self.process_deleting_dependents(uid, node).await;
        }
        let references = latest.metadata.owner_references.clone().unwrap_or_default();
        if references.is_empty() {
            return Ok(Outcome::Done);
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for reference in references {
            match self.classify(&reference, node).await? {
                Owner::Solid => solid.push(reference),
                Owner::Dangling => dangling.push(reference),
                Owner::WaitingForDependentsDeletion => waiting.push(reference),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Outcome::Done);
            }
            // References to owners waiting for this dependent would keep
            // them stuck on the foreground finalizer.
            let remove: Vec<String> = dangling
                .iter()
                .chain(&waiting)
                .map(|reference| reference.uid.clone())
                .collect();
            self.remove_owner_references(&node.identity, &remove)
                .await?;
            return Ok(Outcome::Done);
        }
        let has_dependents = !node.dependents.is_empty();
        if !waiting.is_empty() && has_dependents {
            let dependent_deleting = {
                let graph = lock(&self.graph);
                node.dependents.iter().any(|dependent| {
                    graph
                        .get(dependent)
                        .is_some_and(|dependent| dependent.deleting_dependents())
                })
            };
            if dependent_deleting {
                // Owner and dependent both wait on each other: unblock this
                // item's references to break a possible cycle.
                self.unblock_owner_references(&node.identity).await?;
            }
            self.delete_object(&node.identity, PropagationPolicy::Foreground)
                .await?;
            return Ok(Outcome::Done);
        }
        let finalizers = latest.metadata.finalizers.unwrap_or_default();
        let policy = if finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
            PropagationPolicy::Orphan
        } else if finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(item = %node.identity, ?policy, "deleting item");
        self.delete_object(&node.identity, policy).await?;
        Ok(Outcome::Done)
    }

    async fn classify(
        &self,
        reference: &OwnerReference,
        item: &crate::graph::Node,
    ) -> anyhow::Result<Owner> {
        let mut key = Identity::of_owner(reference, "");
        if lock(&self.absent).has(&key) {
            return Ok(Owner::Dangling);
        }
        key.namespace = item.identity.namespace.clone();
        if lock(&self.absent).has(&key) {
            return Ok(Owner::Dangling);
        }
        let resource = self.resource(&reference.api_version, &reference.kind)?;
        if !resource.namespaced {
            key.namespace = String::new();
        }
        if item.identity.namespace.is_empty() && resource.namespaced {
            let owner = Identity::of_owner(reference, "");
            self.apply_effects(Effects {
                invalid_references: vec![crate::graph::InvalidOwnerReference {
                    dependent: item.identity.clone(),
                    owner,
                }],
                ..Effects::default()
            });
            return Err(NamespacedOwnerOfClusterScopedObject.into());
        }
        let api = api_for(&self.client, &resource, &item.identity.namespace);
        let owner = api.get_metadata_opt(&reference.name).await?;
        let Some(owner) =
            owner.filter(|owner| owner.metadata.uid.as_deref() == Some(&reference.uid))
        else {
            lock(&self.absent).add(key);
            return Ok(Owner::Dangling);
        };
        let foreground = owner
            .metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|f| f == FINALIZER_FOREGROUND);
        if owner.metadata.deletion_timestamp.is_some() && foreground {
            Ok(Owner::WaitingForDependentsDeletion)
        } else {
            Ok(Owner::Solid)
        }
    }

    async fn process_deleting_dependents(
        &self,
        uid: &str,
        node: &crate::graph::Node,
    ) -> anyhow::Result<Outcome> {
        let blocking = lock(&self.graph).blocking_dependents(uid);
        if blocking.is_empty() {
            self.remove_finalizer(&node.identity, FINALIZER_FOREGROUND)
                .await?;
            return Ok(Outcome::Done);
        }
        for (dependent, deleting_dependents) in blocking {
            if !deleting_dependents {
                self.attempt_to_delete.add(dependent);
            }
        }
        Ok(Outcome::Done)
    }

    async fn delete_object(
        &self,
        identity: &Identity,
        policy: PropagationPolicy,
    ) -> anyhow::Result<()> {
        let resource = self.resource(&identity.api_version, &identity.kind)?;
        let api = api_for(&self.client, &resource, &identity.namespace);
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&identity.name, &params).await {
            Ok(_) => Ok(()),
            Err(error) if is_status(&error, 404) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("deleting {identity}")),
        }
    }

    /// Rewrites an object's owner references with `change`, guarded by its
    /// resourceVersion (a JSON merge patch, like upstream's fallback).
    async fn patch_owner_references(
        &self,
        identity: &Identity,
        change: impl Fn(Vec<OwnerReference>) -> Option<Vec<OwnerReference>>,
    ) -> anyhow::Result<()> {
        let resource = self.resource(&identity.api_version, &identity.kind)?;
        let api = api_for(&self.client, &resource, &identity.namespace);
        for _ in 0..5 {
            let Some(current) = api.get_metadata_opt(&identity.name).await? else {
                return Ok(());
            };
            if current.metadata.uid.as_deref() != Some(&identity.uid) {
                return Ok(());
            }
            let references = current
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            let Some(references) = change(references) else {
                return Ok(());
            };
            let references = if references.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::to_value(&references)?
            };
            let patch = json!({"metadata": {
                "ownerReferences": references,
                "resourceVersion": current.metadata.resource_version,
            }});
            match api
                .patch(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if is_status(&error, 404) => return Ok(()),
                Err(error) if is_status(&error, 409) => continue,
                Err(error) => return Err(error).with_context(|| format!("patching {identity}")),
            }
        }
        Err(anyhow!("too many conflicts patching {identity}"))
    }

    async fn remove_owner_references(
        &self,
        identity: &Identity,
        owners: &[String],
    ) -> anyhow::Result<()> {
        self.patch_owner_references(identity, |references| {
            let kept: Vec<OwnerReference> = references
                .iter()
                .filter(|reference| !owners.contains(&reference.uid))
                .cloned()
                .collect();
            (kept.len() != references.len()).then_some(kept)
        })
        .await
    }

    async fn unblock_owner_references(&self, identity: &Identity) -> anyhow::Result<()> {
        self.patch_owner_references(identity, |mut references| {
            let mut changed = false;
            for reference in &mut references {
                if reference.block_owner_deletion == Some(true) {
                    reference.block_owner_deletion = Some(false);
                    changed = true;
                }
            }
            changed.then_some(references)
        })
        .await
    }

    async fn remove_finalizer(&self, identity: &Identity, finalizer: &str) -> anyhow::Result<()> {
        let resource = self.resource(&identity.api_version, &identity.kind)?;
        let api = api_for(&self.client, &resource, &identity.namespace);
        for _ in 0..5 {
            let Some(current) = api.get_metadata_opt(&identity.name).await? else {
                return Ok(());
            };
            if current.metadata.uid.as_deref() != Some(&identity.uid) {
                return Ok(());
            }
            let finalizers = current.metadata.finalizers.clone().unwrap_or_default();
            if !finalizers.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
            let kept = if kept.is_empty() {
                json!(null)
            } else {
                json!(kept)
            };
            let patch = json!({"metadata": {
                "finalizers": kept,
                "resourceVersion": current.metadata.resource_version,
            }});
            match api
                .patch(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if is_status(&error, 404) => return Ok(()),
                Err(error) if is_status(&error, 409) => continue,
                Err(error) => return Err(error).with_context(|| format!("patching {identity}")),
            }
        }
        Err(anyhow!(
            "updateMaxRetries(5) has reached. The garbage collector will retry later for owner {identity}"
        ))
    }

    async fn attempt_to_orphan_worker(&self, uid: String) -> anyhow::Result<Requeue> {
        let node = lock(&self.graph).get(&uid).cloned();
        let Some(owner) = node else {
            return Ok(None);
        };
        let dependents: Vec<Identity> = {
            let graph = lock(&self.graph);
            owner
                .dependents
                .iter()
                .filter_map(|dependent| graph.get(dependent).map(|n| n.identity.clone()))
                .collect()
        };
        let results =
            futures::future::join_all(dependents.iter().map(|dependent| {
                self.remove_owner_references(dependent, std::slice::from_ref(&uid))
            }))
            .await;
        let errors: Vec<String> = results
            .into_iter()
            .zip(&dependents)
            .filter_map(|(result, dependent)| {
                result
                    .err()
                    .map(|error| format!("orphaning {dependent} failed, {error:#}"))
            })
            .collect();
        if !errors.is_empty() {
            return Err(anyhow!(
                "failed to orphan dependents of owner {}, got errors: [{}]",
                owner.identity,
                errors.join(", ")
            ));
        }
        self.remove_finalizer(&owner.identity, FINALIZER_ORPHAN)
            .await?;
        Ok(None)
    }
}

/// Watches one resource's metadata and reports every change to the graph.
async fn monitor(
    client: Client,
    resource: DiscoveredResource,
    key: String,
    changes: mpsc::UnboundedSender<GraphChange>,
    synced: watch::Sender<bool>,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &resource.api_resource);
    let config = watcher::Config::default().page_size(500);
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed: HashSet<String> = HashSet::new();
    let observe = |object: &PartialObjectMeta<DynamicObject>| -> Option<Observed> {
        let meta = &object.metadata;
        Some(Observed {
            identity: Identity {
                api_version: resource.api_resource.api_version.clone(),
                kind: resource.api_resource.kind.clone(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                uid: meta.uid.clone()?,
            },
            resource: key.clone(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    };
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::debug!(resource = %key, %error, "monitor watch failed; retrying");
                continue;
            }
        };
        let change = match event {
            watcher::Event::Init => {
                listed.clear();
                continue;
            }
            watcher::Event::InitApply(object) => {
                let Some(observed) = observe(&object) else {
                    continue;
                };
                listed.insert(observed.identity.uid.clone());
                GraphChange::Upsert(observed)
            }
            watcher::Event::InitDone => {
                let uids = std::mem::take(&mut listed);
                let _ = changes.send(GraphChange::Relisted {
                    resource: key.clone(),
                    uids,
                });
                synced.send_replace(true);
                continue;
            }
            watcher::Event::Apply(object) => {
                let Some(observed) = observe(&object) else {
                    continue;
                };
                GraphChange::Upsert(observed)
            }
            watcher::Event::Delete(object) => {
                let Some(uid) = object.metadata.uid.clone() else {
                    continue;
                };
                GraphChange::Deleted { uid }
            }
        };
        if changes.send(change).is_err() {
            return;
        }
    }
}

/// The monitors running, by `group/plural`.
struct Monitors {
    running: HashMap<String, (JoinHandle<()>, watch::Receiver<bool>)>,
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for (task, _) in self.running.values() {
            task.abort();
        }
    }
}

impl Monitors {
    /// Starts monitors for new deletable resources and stops those of
    /// resources no longer served.
    fn sync(
        &mut self,
        client: &Client,
        resources: &[DiscoveredResource],
        config: &GarbageCollectorConfig,
        changes: &mpsc::UnboundedSender<GraphChange>,
    ) {
        let mut wanted: HashMap<String, &DiscoveredResource> = HashMap::new();
        for resource in resources {
            let ar: &ApiResource = &resource.api_resource;
            let ignored = config
                .ignored_resources
                .iter()
                .any(|(group, plural)| *group == ar.group && *plural == ar.plural);
            if ignored || !resource.supports(&["delete", "list", "watch"]) {
                continue;
            }
            wanted.insert(format!("{}/{}", ar.group, ar.plural), resource);
        }
        self.running.retain(|key, (task, _)| {
            let keep = wanted.contains_key(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, resource) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let (synced_sender, synced) = watch::channel(false);
            let task = tokio::spawn(monitor(
                client.clone(),
                resource.clone(),
                key.clone(),
                changes.clone(),
                synced_sender,
            ));
            self.running.insert(key, (task, synced));
        }
    }

    async fn wait_synced(&self) {
        for (_, synced) in self.running.values() {
            let mut synced = synced.clone();
            let _ = synced.wait_for(|synced| *synced).await;
        }
    }
}

/// Runs the garbage collector until dropped: `workers` workers each for
/// deleting and for orphaning. It keeps its own metadata-only monitors of
/// every resource (the shared informers are typed).
pub async fn run(
    client: Client,
    _informers: Arc<client::Informers>,
    workers: usize,
    config: GarbageCollectorConfig,
) -> anyhow::Result<()> {
    let collector = Arc::new(Collector {
        client: client.clone(),
        graph: Mutex::new(Graph::default()),
        resources: RwLock::new(ResourceMap::default()),
        absent: Mutex::new(AbsentOwners {
            order: VecDeque::new(),
            known: HashSet::new(),
        }),
        attempt_to_delete: WorkQueue::new(),
        attempt_to_orphan: WorkQueue::new(),
        recorder: client::EventRecorder::new(client.clone(), "garbage-collector-controller"),
    });
    let _shutdown = (
        crate::ShutDownOnDrop(collector.attempt_to_delete.clone()),
        crate::ShutDownOnDrop(collector.attempt_to_orphan.clone()),
    );
    let (changes, mut change_receiver) = mpsc::unbounded_channel::<GraphChange>();
    let graph_task = {
        let collector = collector.clone();
        tokio::spawn(async move {
            while let Some(change) = change_receiver.recv().await {
                let effects = lock(&collector.graph).apply(change);
                collector.apply_effects(effects);
            }
        })
    };
    let _graph_task = AbortOnDrop(graph_task);
    let mut monitors = Monitors {
        running: HashMap::new(),
    };
    let mut workers_task: Option<AbortOnDrop> = None;
    loop {
        let (resources, error) = discovery::server_preferred_resources(&client).await;
        if let Some(error) = &error {
            tracing::warn!(%error, "garbage collector discovery failed");
        }
        if !resources.is_empty() {
            *collector
                .resources
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = ResourceMap::new(&resources);
            monitors.sync(&client, &resources, &config, &changes);
            if workers_task.is_none() {
                monitors.wait_synced().await;
                let deleting = {
                    let collector = collector.clone();
                    run_workers(collector.attempt_to_delete.clone(), workers, move |uid| {
                        let collector = collector.clone();
                        async move { collector.attempt_to_delete_worker(uid).await }
                    })
                };
                let orphaning = {
                    let collector = collector.clone();
                    run_workers(collector.attempt_to_orphan.clone(), workers, move |uid| {
                        let collector = collector.clone();
                        async move { collector.attempt_to_orphan_worker(uid).await }
                    })
                };
                workers_task = Some(AbortOnDrop(tokio::spawn(async move {
                    futures::join!(deleting, orphaning);
                })));
            }
        }
        let wait = if resources.is_empty() {
            Duration::from_secs(1)
        } else {
            config.discovery_period
        };
        tokio::time::sleep(wait).await;
    }
}

/// A task that ends with its owner (the controller's future being dropped).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
