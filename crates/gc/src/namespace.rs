//! The namespace controller: a terminating namespace's content is deleted, kind by kind as discovery lists them, then its `kubernetes` finalizer is removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};

use client::workqueue::{Requeue, run_workers};
use client::{Change, WorkQueue};

use crate::conditions::{DeletionReport, update_conditions};
use crate::discovery::{self, DiscoveredResource, DiscoveryError};

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// Upstream's default wait for finalizers on remaining content.
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// Options of the namespace controller.
#[derive(Clone, Debug)]
pub struct NamespaceConfig {
    /// How long after a namespace change its deletion is processed, so late
    /// creations inside it are seen (upstream: 5 s).
    pub deletion_grace_period: Duration,
    /// How often every terminating namespace is looked at again (upstream's
    /// informer resync: 5 min).
    pub resync_period: Duration,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            deletion_grace_period: Duration::from_secs(5),
            resync_period: Duration::from_secs(300),
        }
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// What deleting one resource type's content left behind.
#[derive(Debug, Default)]
struct ContentLeft {
    estimate_seconds: i64,
    remaining: usize,
    finalizers: BTreeMap<String, usize>,
}

/// How long to wait before looking again when content remains (upstream:
/// half the estimate plus one second).
pub fn content_recheck_delay(estimate_seconds: i64) -> Duration {
    Duration::from_secs((estimate_seconds / 2 + 1).max(1) as u64)
}

/// The grace-period estimate for pods still terminating: the longest
/// termination grace period of a non-terminal pod, or zero once that long
/// has passed since the namespace's deletion began.
pub fn pod_termination_estimate(pods: &[Pod], seconds_since_deletion: i64) -> i64 {
    let estimate = pods
        .iter()
        .filter(|pod| {
            !matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter_map(|pod| pod.spec.as_ref()?.termination_grace_period_seconds)
        .max()
        .unwrap_or(0);
    if seconds_since_deletion >= estimate {
        0
    } else {
        estimate
    }
}

struct Deleter {
    client: Client,
}

impl Deleter {
    /// Upstream's `namespacedResourcesDeleter.Delete`.
    async fn sync(&self, name: &str) -> anyhow::Result<Requeue> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let Some(mut namespace) = namespaces.get_opt(name).await? else {
            return Ok(None);
        };
        if namespace.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let terminating = namespace
            .status
            .as_ref()
            .and_then(|status| status.phase.as_deref())
            == Some("Terminating");
        if !terminating {
            namespace.status.get_or_insert_with(Default::default).phase =
                Some("Terminating".into());
            namespace = match namespaces
                .replace_status(name, &PostParams::default(), &namespace)
                .await
            {
                Ok(updated) => updated,
                Err(error) if is_status(&error, 404) => return Ok(None),
                Err(error) => return Err(error.into()),
            };
            if namespace.metadata.deletion_timestamp.is_none() {
                return Ok(None);
            }
        }
        let finalized = namespace
            .spec
            .as_ref()
            .and_then(|spec| spec.finalizers.as_ref())
            .is_none_or(|finalizers| finalizers.is_empty());
        if finalized {
            return Ok(None);
        }
        let estimate = self.delete_all_content(&namespaces, &mut namespace).await?;
        if estimate > 0 {
            tracing::debug!(namespace = name, estimate, "content remains in namespace");
            return Ok(Some(content_recheck_delay(estimate)));
        }
        self.finalize(&namespaces, namespace).await?;
        Ok(None)
    }

    /// Removes this controller's finalizer through the finalize
    /// subresource, retrying on conflicts.
    async fn finalize(
        &self,
        namespaces: &Api<Namespace>,
        mut namespace: Namespace,
    ) -> anyhow::Result<()> {
        let name = namespace.name_any();
        let uid = namespace.metadata.uid.clone();
        for _ in 0..10 {
            let spec = namespace.spec.get_or_insert_with(Default::default);
            let mut kept: Vec<String> = spec
                .finalizers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|finalizer| finalizer != FINALIZER_KUBERNETES)
                .collect();
            kept.sort();
            kept.dedup();
            spec.finalizers = Some(kept);
            match namespaces
                .replace_subresource("finalize", &name, &PostParams::default(), &namespace)
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if is_status(&error, 404) => return Ok(()),
                Err(error) if is_status(&error, 409) => {
                    let Some(latest) = namespaces.get_opt(&name).await? else {
                        return Ok(());
                    };
                    if latest.metadata.uid != uid {
                        return Err(anyhow!("namespace uid has changed across retries"));
                    }
                    namespace = latest;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(anyhow!("too many conflicts finalizing namespace {name}"))
    }

    /// Deletes every namespaced resource in the namespace, records the
    /// outcome in its conditions, and returns how many seconds the content
    /// left is estimated to need.
    async fn delete_all_content(
        &self,
        namespaces: &Api<Namespace>,
        namespace: &mut Namespace,
    ) -> anyhow::Result<i64> {
        let name = namespace.name_any();
        let deleted_at = namespace
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|time| time.0)
            .unwrap_or_else(jiff::Timestamp::now);
        let seconds_since_deletion = jiff::Timestamp::now().as_second() - deleted_at.as_second();
        let mut report = DeletionReport::default();
        let mut errors: Vec<String> = Vec::new();
        let (resources, discovery_error) =
            discovery::server_preferred_resources(&self.client).await;
        if let Some(error) = discovery_error {
            let message = match &error {
                DiscoveryError::Partial(failed) => format!(
                    "Discovery failed for some groups, {} failing: {failed}",
                    failed.groups.len()
                ),
                DiscoveryError::Unavailable(error) => error.to_string(),
            };
            errors.push(error.to_string());
            report.discovery_error = Some(message);
        }
        let mut estimate = 0;
        for resource in resources
            .iter()
            .filter(|resource| resource.namespaced && resource.supports(&["delete"]))
        {
            let left = match self
                .delete_content_of(resource, &name, seconds_since_deletion)
                .await
            {
                Ok(left) => left,
                Err((left, error)) => {
                    errors.push(error.clone());
                    report.content_errors.push(error);
                    left
                }
            };
            estimate = estimate.max(left.estimate_seconds);
            if left.remaining > 0 {
                let ar = &resource.api_resource;
                report
                    .remaining
                    .insert(format!("{}.{}", ar.plural, ar.group), left.remaining);
                for (finalizer, count) in left.finalizers {
                    *report.finalizers_remaining.entry(finalizer).or_default() += count;
                }
            }
        }
        let status = namespace.status.get_or_insert_with(Default::default);
        if update_conditions(status, &report, now())
            && let Err(error) = namespaces
                .replace_status(&name, &PostParams::default(), &*namespace)
                .await
        {
            tracing::warn!(namespace = %name, %error, "couldn't update status condition for namespace");
        }
        if !errors.is_empty() {
            return Err(anyhow!("[{}]", errors.join(", ")));
        }
        Ok(estimate)
    }

    /// Upstream's `deleteAllContentForGroupVersionResource`.
    async fn delete_content_of(
        &self,
        resource: &DiscoveredResource,
        namespace: &str,
        seconds_since_deletion: i64,
    ) -> Result<ContentLeft, (ContentLeft, String)> {
        let ar = &resource.api_resource;
        let mut left = ContentLeft::default();
        if ar.group.is_empty() && ar.plural == "pods" {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            match pods.list(&ListParams::default()).await {
                Ok(list) => {
                    left.estimate_seconds =
                        pod_termination_estimate(&list.items, seconds_since_deletion);
                }
                Err(error) => return Err((left, error.to_string())),
            }
        }
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, ar);
        let background = DeleteParams::background();
        let mut collection_deleted = false;
        if resource.supports(&["deletecollection"]) {
            match api
                .delete_collection(&background, &ListParams::default())
                .await
            {
                Ok(_) => collection_deleted = true,
                Err(error) if is_status(&error, 404) || is_status(&error, 405) => {}
                Err(error) => return Err((left, error.to_string())),
            }
        }
        let listable = resource.supports(&["list"]);
        if !collection_deleted && listable {
            let items = match api.list_metadata(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(error) if is_status(&error, 404) || is_status(&error, 405) => Vec::new(),
                Err(error) => return Err((left, error.to_string())),
            };
            for item in items {
                match api.delete(&item.name_any(), &background).await {
                    Ok(_) => {}
                    Err(error) if is_status(&error, 404) || is_status(&error, 405) => {}
                    Err(error) => return Err((left, error.to_string())),
                }
            }
        }
        if !listable {
            return Ok(left);
        }
        let items = match api.list_metadata(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) if is_status(&error, 404) || is_status(&error, 405) => return Ok(left),
            Err(error) => return Err((left, error.to_string())),
        };
        if items.is_empty() {
            return Ok(ContentLeft::default());
        }
        left.remaining = items.len();
        for item in &items {
            for finalizer in item.metadata.finalizers.as_deref().unwrap_or_default() {
                *left.finalizers.entry(finalizer.clone()).or_default() += 1;
            }
        }
        if left.estimate_seconds != 0 {
            return Ok(left);
        }
        if !left.finalizers.is_empty() {
            left.estimate_seconds = FINALIZER_ESTIMATE_SECONDS;
            return Ok(left);
        }
        let error = format!(
            "unexpected items still remain in namespace: {namespace} for gvr: {}",
            resource.gvr_string()
        );
        Err((left, error))
    }
}

/// Runs the namespace controller until dropped.
pub async fn run(
    client: Client,
    informers: Arc<client::Informers>,
    workers: usize,
    config: NamespaceConfig,
) -> anyhow::Result<()> {
    let informer = informers.informer::<Namespace>();
    let queue: WorkQueue<String> = WorkQueue::new();
    let _shutdown = crate::ShutDownOnDrop(queue.clone());
    let mut changes = informer.subscribe();
    let grace = config.deletion_grace_period;
    let handler = {
        let queue = queue.clone();
        async move {
            while let Some(change) = changes.recv().await {
                if let Change::Applied { new, .. } = change
                    && new.metadata.deletion_timestamp.is_some()
                {
                    queue.add_after(new.name_any(), grace);
                }
            }
        }
    };
    let resync = {
        let queue = queue.clone();
        let informer = informer.clone();
        async move {
            loop {
                tokio::time::sleep(config.resync_period).await;
                for namespace in informer.store().state() {
                    if namespace.metadata.deletion_timestamp.is_some() {
                        queue.add(namespace.name_any());
                    }
                }
            }
        }
    };
    informer.wait_synced().await;
    let deleter = Arc::new(Deleter { client });
    let work = run_workers(queue, workers, move |name: String| {
        let deleter = deleter.clone();
        async move { deleter.sync(&name).await }
    });
    tokio::join!(handler, resync, work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    fn pod(grace: i64, phase: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(grace),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn pods_still_running_hold_the_namespace_for_their_grace_period() {
        let pods = [pod(30, "Running"), pod(90, "Succeeded"), pod(10, "Pending")];
        assert_eq!(pod_termination_estimate(&pods, 0), 30);
        assert_eq!(pod_termination_estimate(&pods, 29), 30);
        assert_eq!(pod_termination_estimate(&pods, 30), 0);
        assert_eq!(pod_termination_estimate(&[], 0), 0);
    }

    #[test]
    fn remaining_content_is_looked_at_again_after_half_the_estimate() {
        assert_eq!(content_recheck_delay(15), Duration::from_secs(8));
        assert_eq!(content_recheck_delay(30), Duration::from_secs(16));
        assert_eq!(content_recheck_delay(0), Duration::from_secs(1));
    }
}
