//! Test helpers: a cluster with shared informers, polling, and a stand-in kubelet that moves pods to Running, Succeeded or Failed.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use testcluster::TestCluster;

pub const NAMESPACE: &str = "default";

pub async fn start() -> anyhow::Result<(TestCluster, Client, Arc<client::Informers>)> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let informers = Arc::new(client::Informers::new(client.clone()));
    informers.start();
    Ok((cluster, client, informers))
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn job_pods(client: &Client, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .expect("list pods");
    list.items
}

pub fn is_live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

pub async fn get_job(client: &Client, name: &str) -> Job {
    Api::<Job>::namespaced(client.clone(), NAMESPACE)
        .get(name)
        .await
        .expect("get job")
}

pub fn condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

async fn patch_pod_status(client: &Client, name: &str, status: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("patch pod status");
}

/// As a kubelet would report it: Running and Ready.
pub async fn run_pod(client: &Client, name: &str) {
    patch_pod_status(
        client,
        name,
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339()}
        ]}),
    )
    .await;
}

/// As a kubelet would report it: the container exited with `exit_code`
/// (0: Succeeded, else Failed).
pub async fn finish_pod(client: &Client, name: &str, exit_code: i32) {
    let now = now_rfc3339();
    let phase = if exit_code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    patch_pod_status(
        client,
        name,
        json!({
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{
                "name": "main", "image": "busybox", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": exit_code, "startedAt": now, "finishedAt": now,
                          "reason": if exit_code == 0 { "Completed" } else { "Error" }}}
            }]
        }),
    )
    .await;
}

/// As a kubelet would report a pod evicted by a disruption (preemption,
/// node drain): failed, with the `DisruptionTarget` condition.
pub async fn disrupt_pod(client: &Client, name: &str) {
    let now = now_rfc3339();
    patch_pod_status(
        client,
        name,
        json!({
            "phase": "Failed",
            "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "lastTransitionTime": now}
            ],
            "containerStatuses": [{
                "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "startedAt": now, "finishedAt": now, "reason": "Error"}}
            }]
        }),
    )
    .await;
}

/// The notes of events with `reason` about the object named `name`.
pub async fn events(client: &Client, name: &str, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

pub fn pod_template() -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "batch-test"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    })
}
