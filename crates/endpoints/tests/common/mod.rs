//! Test helpers for the endpoint controllers: a cluster with informers, and a stand-in kubelet that creates Nodes and reports Pod IPs and readiness.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::Informers;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Patch, PatchParams, PostParams};
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

pub async fn create_node(client: &Client, name: &str, zone: &str) -> anyhow::Result<()> {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
    }))?;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    Ok(())
}

/// A Pod on `node` with a container port named `web`.
pub async fn create_pod(
    client: &Client,
    name: &str,
    labels: serde_json::Value,
    web_port: i32,
    node: &str,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx",
                "ports": [{"name": "web", "containerPort": web_port}]}],
        },
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await?)
}

/// Reports the Pod running at `ip`, ready or not, as its kubelet would.
pub async fn set_pod_status(
    client: &Client,
    name: &str,
    ip: &str,
    ready: bool,
) -> anyhow::Result<()> {
    let status = if ready { "True" } else { "False" };
    let now = jiff::Timestamp::now().to_string();
    Api::<Pod>::namespaced(client.clone(), "default")
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": now}],
            }})),
        )
        .await?;
    Ok(())
}

pub async fn create_service(client: &Client, spec: serde_json::Value) -> anyhow::Result<Service> {
    let service: Service = serde_json::from_value(spec)?;
    Ok(Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &service)
        .await?)
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
