//! The EndpointSlice controller: watches Services, Pods, Nodes and managed slices, plans each Service's slices with the pure reconciler and writes the plan, never acting on a cache older than its own writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use client::{Change, EventRecorder, Informers, WorkQueue};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};

use crate::endpoints::services_selecting;
use crate::pods::{self, LAST_CHANGE_TRIGGER_TIME, TriggerTimeTracker};
use crate::slices::{self, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};

#[derive(Clone, Debug)]
pub struct EndpointSliceConfig {
    /// Upstream's `--max-endpoints-per-slice` (default 100).
    pub max_endpoints_per_slice: usize,
    /// Upstream's `--endpointslice-updates-batch-period` (default 0): how
    /// long a Pod change waits so a burst is written once per Service.
    pub batch_period: Duration,
}

impl Default for EndpointSliceConfig {
    fn default() -> Self {
        EndpointSliceConfig {
            max_endpoints_per_slice: slices::DEFAULT_MAX_ENDPOINTS_PER_SLICE,
            batch_period: Duration::ZERO,
        }
    }
}

/// Our own writes not yet seen in the informer (upstream's
/// endpointSliceTracker): until they are, the cache is stale for that Service.
#[derive(Default)]
struct WriteTracker {
    by_service: HashMap<String, HashMap<String, Expected>>,
}

#[derive(Clone, Debug)]
enum Expected {
    /// Written at this resourceVersion.
    Version(String, Instant),
    Deleted(Instant),
}

/// Expectations that stay unmet this long are dropped, so a missed watch
/// event cannot stall a Service forever.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `seen` is at least as new as `expected` (our API server's
/// resourceVersions are revisions; anything unparsable counts as caught up).
fn version_reached(seen: Option<&str>, expected: &str) -> bool {
    match (
        seen.and_then(|v| v.parse::<u64>().ok()),
        expected.parse::<u64>(),
    ) {
        (Some(seen), Ok(expected)) => seen >= expected,
        _ => seen.is_some(),
    }
}

impl WriteTracker {
    fn expect(&mut self, service: &str, slice: &str, expected: Expected) {
        self.by_service
            .entry(service.to_string())
            .or_default()
            .insert(slice.to_string(), expected);
    }

    /// Records that the informer saw `slice` (or its deletion); returns
    /// whether that was one of our own writes.
    fn observe(&mut self, service: &str, slice: &EndpointSlice, deleted: bool) -> bool {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let Some(expectations) = self.by_service.get_mut(service) else {
            return false;
        };
        let ours = match expectations.get(&name) {
            Some(Expected::Version(version, _)) if !deleted => {
                version_reached(slice.metadata.resource_version.as_deref(), version)
            }
            Some(Expected::Deleted(_)) => deleted,
            _ => false,
        };
        if ours || deleted {
            expectations.remove(&name);
        }
        if expectations.is_empty() {
            self.by_service.remove(service);
        }
        ours
    }

    /// Whether the cache is still missing some of our writes for `service`.
    fn is_stale(&mut self, service: &str, cached: &[Arc<EndpointSlice>]) -> bool {
        let Some(expectations) = self.by_service.get_mut(service) else {
            return false;
        };
        expectations.retain(|name, expected| {
            let found = cached
                .iter()
                .find(|slice| slice.metadata.name.as_deref() == Some(name.as_str()));
            match expected {
                Expected::Version(version, at) => {
                    at.elapsed() < EXPECTATION_TIMEOUT
                        && !found.is_some_and(|slice| {
                            version_reached(slice.metadata.resource_version.as_deref(), version)
                        })
                }
                Expected::Deleted(at) => at.elapsed() < EXPECTATION_TIMEOUT && found.is_some(),
            }
        });
        let stale = !expectations.is_empty();
        if !stale {
            self.by_service.remove(service);
        }
        stale
    }
}

struct Controller {
    client: Client,
    config: EndpointSliceConfig,
    services: client::Informer<Service>,
    pods: client::Informer<Pod>,
    nodes: client::Informer<Node>,
    slices: client::Informer<EndpointSlice>,
    triggers: Mutex<TriggerTimeTracker>,
    writes: Mutex<WriteTracker>,
    recorder: EventRecorder,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `namespace/name` of the Service a managed slice belongs to.
fn managed_service_key(slice: &EndpointSlice) -> Option<String> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let service = labels.get(LABEL_SERVICE_NAME)?;
    Some(format!(
        "{}/{service}",
        slice.metadata.namespace.as_deref().unwrap_or_default()
    ))
}

impl Controller {
    fn managed_slices(&self, key: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .store()
            .state()
            .into_iter()
            .filter(|slice| managed_service_key(slice).as_deref() == Some(key))
            .collect()
    }

    async fn sync(&self, key: String) -> anyhow::Result<Option<Duration>> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", &key));
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), namespace);
        let existing = self.managed_slices(&key);
        if lock(&self.writes).is_stale(&key, &existing) {
            anyhow::bail!("EndpointSlice informer cache is out of date for {key}");
        }
        let Some(service) = self
            .services
            .store()
            .get(&ObjectRef::new(name).within(namespace))
        else {
            lock(&self.triggers).forget(&key);
            // The garbage collector would remove them through their owner
            // reference too; deleting here does not depend on it running.
            for slice in existing {
                self.delete(&api, &key, &slice).await?;
            }
            return Ok(None);
        };
        if pods::selector_of(&service).is_none() {
            return Ok(None);
        }
        let selected = pods::selected_pods(&service, self.pods.store().state().iter());
        let trigger_time = lock(&self.triggers).compute(&service, &selected);
        let nodes = self.nodes.store();
        let node = |name: &str| nodes.get(&ObjectRef::new(name));
        let plan = slices::plan_slices(
            &service,
            &selected,
            &node,
            &existing,
            self.config.max_endpoints_per_slice,
        );
        let annotate = |slice: &mut EndpointSlice| {
            let annotations = slice
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            match trigger_time {
                Some(time) => {
                    annotations.insert(
                        LAST_CHANGE_TRIGGER_TIME.into(),
                        pods::format_trigger_time(time),
                    );
                }
                None => {
                    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
                }
            }
            if annotations.is_empty() {
                slice.metadata.annotations = None;
            }
        };
        // Creating while the Service is being deleted would race the
        // garbage collector.
        if service.metadata.deletion_timestamp.is_none() {
            for mut slice in plan.create {
                annotate(&mut slice);
                match api.create(&PostParams::default(), &slice).await {
                    Ok(created) => self.expect_written(&key, &created),
                    Err(kube::Error::Api(status))
                        if status.code == 403 && status.message.contains("terminat") =>
                    {
                        return Ok(None);
                    }
                    Err(error) => {
                        self.recorder.warning(
                            service.as_ref(),
                            "FailedToUpdateEndpointSlices",
                            format!("Error updating Endpoint Slices for Service {key}: failed to create EndpointSlice for Service {key}: {error}"),
                        );
                        return Err(error.into());
                    }
                }
            }
        }
        for mut slice in plan.update {
            annotate(&mut slice);
            let slice_name = slice.metadata.name.clone().unwrap_or_default();
            match api
                .replace(&slice_name, &PostParams::default(), &slice)
                .await
            {
                Ok(updated) => self.expect_written(&key, &updated),
                Err(error) => {
                    self.recorder.warning(
                        service.as_ref(),
                        "FailedToUpdateEndpointSlices",
                        format!("Error updating Endpoint Slices for Service {key}: failed to update {slice_name} EndpointSlice for Service {key}: {error}"),
                    );
                    return Err(error.into());
                }
            }
        }
        for slice in plan.delete {
            self.delete(&api, &key, &slice).await?;
        }
        if !plan.skipped_pods.is_empty() {
            anyhow::bail!(
                "skipped Pods of Service {key} whose Node is not known: {}",
                plan.skipped_pods.join(", ")
            );
        }
        Ok(None)
    }

    fn expect_written(&self, key: &str, slice: &EndpointSlice) {
        if let (Some(name), Some(version)) =
            (&slice.metadata.name, &slice.metadata.resource_version)
        {
            lock(&self.writes).expect(
                key,
                name,
                Expected::Version(version.clone(), Instant::now()),
            );
        }
    }

    async fn delete(
        &self,
        api: &Api<EndpointSlice>,
        key: &str,
        slice: &EndpointSlice,
    ) -> anyhow::Result<()> {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
        lock(&self.writes).expect(key, &name, Expected::Deleted(Instant::now()));
        Ok(())
    }
}

/// Runs the EndpointSlice controller until dropped.
pub async fn run_endpoint_slices(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    config: EndpointSliceConfig,
) -> anyhow::Result<()> {
    let batch_period = config.batch_period;
    let controller = Arc::new(Controller {
        recorder: EventRecorder::new(client.clone(), "endpoint-slice-controller"),
        client,
        config,
        services: informers.informer::<Service>(),
        pods: informers.informer::<Pod>(),
        nodes: informers.informer::<Node>(),
        slices: informers.informer::<EndpointSlice>(),
        triggers: Mutex::new(TriggerTimeTracker::default()),
        writes: Mutex::new(WriteTracker::default()),
    });
    let queue: WorkQueue<String> = WorkQueue::new();
    let mut service_changes = controller.services.subscribe();
    let mut pod_changes = controller.pods.subscribe();
    let mut slice_changes = controller.slices.subscribe();
    controller.services.wait_synced().await;
    controller.pods.wait_synced().await;
    controller.nodes.wait_synced().await;
    controller.slices.wait_synced().await;
    let handlers = {
        let controller = controller.clone();
        let queue = queue.clone();
        async move {
            loop {
                tokio::select! {
                    Some(change) = service_changes.recv() => {
                        queue.add(pods::key_of(&change.object().metadata));
                    }
                    Some(change) = pod_changes.recv() => {
                        let services = controller.services.store().state();
                        let mut keys = Vec::new();
                        if let Change::Applied { old: Some(old), .. } = &change {
                            keys.extend(services_selecting(&services, old));
                        }
                        keys.extend(services_selecting(&services, change.object()));
                        keys.dedup();
                        for key in keys {
                            queue.add_after(key, batch_period);
                        }
                    }
                    Some(change) = slice_changes.recv() => {
                        let deleted = matches!(change, Change::Deleted(_));
                        let slice = change.object();
                        let Some(key) = managed_service_key(slice) else { continue };
                        let ours = lock(&controller.writes).observe(&key, slice, deleted);
                        if !ours {
                            queue.add(key);
                        }
                    }
                    else => break,
                }
            }
        }
    };
    let workers = client::workqueue::run_workers(queue, workers, move |key| {
        let controller = controller.clone();
        async move { controller.sync(key).await }
    });
    tokio::join!(handlers, workers);
    Ok(())
}
