//! Test helpers for the node controllers: a cluster with informers, and a stand-in kubelet that registers Nodes, posts Ready heartbeats and renews Leases.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::Informers;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use testcluster::TestCluster;

pub struct Harness {
    pub cluster: TestCluster,
    pub client: Client,
    pub informers: Arc<Informers>,
}

pub async fn start() -> anyhow::Result<Harness> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let informers = Arc::new(Informers::new(client.clone()));
    Ok(Harness {
        cluster,
        client,
        informers,
    })
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

pub async fn create_node(client: &Client, name: &str) -> anyhow::Result<Node> {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "zone-a"}},
    }))?;
    Ok(Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?)
}

/// Posts a Ready=True heartbeat, as the kubelet's status loop does.
pub async fn post_ready(client: &Client, name: &str) -> anyhow::Result<()> {
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now(), "lastTransitionTime": now()},
    ]}});
    Api::<Node>::all(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Creates or renews the node's Lease in kube-node-lease.
pub async fn renew_lease(client: &Client, name: &str) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    if leases.get_opt(name).await?.is_none() {
        let lease: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
        }))?;
        leases.create(&PostParams::default(), &lease).await?;
    } else {
        leases
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"renewTime": renew}})),
            )
            .await?;
    }
    Ok(())
}

pub async fn create_pod(
    client: &Client,
    name: &str,
    node: &str,
    tolerations: serde_json::Value,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "tolerations": tolerations,
            "containers": [{"name": "c", "image": "nginx"}]},
    }))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = pods.create(&PostParams::default(), &pod).await?;
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.42.0.5",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now()}]}})),
    )
    .await?;
    Ok(created)
}

pub async fn get_pod(client: &Client, name: &str) -> anyhow::Result<Pod> {
    Ok(Api::<Pod>::namespaced(client.clone(), "default")
        .get(name)
        .await?)
}

pub async fn get_node(client: &Client, name: &str) -> anyhow::Result<Node> {
    Ok(Api::<Node>::all(client.clone()).get(name).await?)
}

/// Events about `object_name` with `reason`, in any namespace.
pub async fn events(
    client: &Client,
    object_name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let all: Api<Event> = Api::all(client.clone());
    Ok(all
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object_name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect())
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
