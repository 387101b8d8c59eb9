//! Shared helpers of the replication integration tests: a cluster with the controllers running, a test "kubelet" that marks pods Running and Ready, and polling.

#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use testcluster::TestCluster;
use tokio::task::JoinHandle;

pub const NAMESPACE: &str = "default";

/// A test cluster, the controllers under test, and the test kubelet.
pub struct Env {
    pub cluster: TestCluster,
    pub client: Client,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Run {
    ReplicaSets,
    ReplicationControllers,
    Deployments,
}

/// Which pods the test kubelet makes ready.
pub type ReadyFilter = Arc<dyn Fn(&Pod) -> bool + Send + Sync>;

pub fn all_pods() -> Option<ReadyFilter> {
    Some(Arc::new(|_: &Pod| true))
}

impl Env {
    /// Starts a cluster with `controllers`, and a kubelet marking the pods
    /// `ready` admits Running and Ready (none without one).
    pub async fn start(controllers: &[Run], ready: Option<ReadyFilter>) -> anyhow::Result<Env> {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let informers = Arc::new(client::Informers::new(client.clone()));
        let mut tasks = Vec::new();
        for which in controllers.iter().copied() {
            let (client, informers) = (client.clone(), informers.clone());
            tasks.push(tokio::spawn(async move {
                let result = match which {
                    Run::ReplicaSets => replication::run_replicasets(client, informers, 5).await,
                    Run::ReplicationControllers => {
                        replication::run_replication_controllers(client, informers, 5).await
                    }
                    Run::Deployments => replication::run_deployments(client, informers, 5).await,
                };
                if let Err(error) = result {
                    panic!("controller failed: {error:#}");
                }
            }));
        }
        // Let the controllers create their informers, then start them all.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        informers.start();
        if let Some(filter) = ready {
            tasks.push(tokio::spawn(kubelet(client.clone(), filter)));
        }
        let keep_informers = informers.clone();
        tasks.push(tokio::spawn(async move {
            // The informers live as long as the test.
            let _informers = keep_informers;
            std::future::pending::<()>().await;
        }));
        Ok(Env {
            cluster,
            client,
            tasks,
        })
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Notes of the events with `reason` about objects named `name`, each
    /// with how often it happened (events aggregate into series).
    pub async fn events(&self, name: &str, reason: &str) -> anyhow::Result<Vec<(String, i32)>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), NAMESPACE);
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| {
                let count = e
                    .series
                    .as_ref()
                    .and_then(|s| s.count)
                    .or(e.count)
                    .unwrap_or(1);
                (e.message.unwrap_or_default(), count)
            })
            .collect())
    }
}

pub fn ready_status() -> serde_json::Value {
    let now = jiff::Timestamp::now();
    let now = jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", now).unwrap_or_default();
    json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ],
    }})
}

/// Marks every new pod the filter admits Running and Ready, many at a time.
async fn kubelet(client: Client, filter: ReadyFilter) {
    let api: Api<Pod> = Api::all(client.clone());
    let done: Arc<Mutex<HashSet<String>>> = Arc::default();
    let limit = Arc::new(tokio::sync::Semaphore::new(256));
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = events.next().await {
        let Ok(pod) = event else { continue };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some()
            || replication::pods::is_ready(&pod)
            || !filter(&pod)
            || !done.lock().unwrap().insert(uid)
        {
            continue;
        }
        let permit = limit.clone().acquire_owned().await;
        let client = client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let _ = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(ready_status()),
                )
                .await;
        });
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Active (not terminating, not terminal) pods with label `app=<app>`.
pub async fn active_pods(api: &Api<Pod>, app: &str) -> anyhow::Result<Vec<Pod>> {
    Ok(api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items
        .into_iter()
        .filter(replication::pods::is_active)
        .collect())
}
