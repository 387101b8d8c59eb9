//! The DaemonSet controller against a real API server: one pod per eligible node, taints, node changes, rolling updates, failed pods and status; the test plays scheduler and kubelet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use client::Informers;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use testcluster::TestCluster;

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    _cluster: TestCluster,
    client: Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn start() -> Harness {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let informers = Arc::new(Informers::new(client.clone()));
    let controller = tokio::spawn({
        let client = client.clone();
        async move { daemonset::run(client, informers, 2).await.unwrap() }
    });
    let node_agent = tokio::spawn(scheduler_and_kubelet(Api::default_namespaced(
        client.clone(),
    )));
    Harness {
        _cluster: cluster,
        client,
        tasks: vec![controller, node_agent],
    }
}

/// The node a daemon pod's required affinity names.
fn affinity_node(pod: &Pod) -> Option<String> {
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let field = terms.first()?.match_fields.as_ref()?.first()?;
    (field.key == "metadata.name" && field.operator == "In")
        .then(|| field.values.as_ref()?.first().cloned())?
}

/// Binds unscheduled pods to the node in their affinity term (pods/binding),
/// reports bound pending pods Running and Ready, and finishes graceful
/// deletions as the node's kubelet would.
async fn scheduler_and_kubelet(pods: Api<Pod>) {
    loop {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let bound = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                if pod.metadata.deletion_timestamp.is_some() {
                    if bound.is_some() {
                        let _ = pods
                            .delete(
                                &name,
                                &DeleteParams {
                                    grace_period_seconds: Some(0),
                                    ..Default::default()
                                },
                            )
                            .await;
                    }
                    continue;
                }
                match bound {
                    None => {
                        if let Some(node) = affinity_node(&pod) {
                            let binding = json!({"apiVersion": "v1", "kind": "Binding",
                                "metadata": {"name": name}, "target": {"kind": "Node", "name": node}});
                            let _ = pods
                                .create_subresource::<_, serde_json::Value>(
                                    "binding",
                                    &name,
                                    &PostParams::default(),
                                    &binding,
                                )
                                .await;
                        }
                    }
                    Some(_) => {
                        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                        if phase == Some("Pending") {
                            let now = k8s_openapi::jiff::Timestamp::now().to_string();
                            let status = json!({"status": {"phase": "Running",
                                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                            let _ = pods
                                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                                .await;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

async fn create_node(
    client: &Client,
    name: &str,
    labels: serde_json::Value,
    taints: serde_json::Value,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

fn daemon_set(node_selector: serde_json::Value, strategy: serde_json::Value) -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": node_selector,
                         "containers": [{"name": "agent", "image": "agent:1"}]}
            }
        }
    }))
    .unwrap()
}

async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Live (not terminating) pods by the node they are bound to.
async fn pods_by_node(pods: &Api<Pod>) -> BTreeMap<String, Vec<Pod>> {
    let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in pods.list(&ListParams::default()).await.unwrap().items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        by_node.entry(node).or_default().push(pod);
    }
    by_node
}

fn nodes_of(by_node: &BTreeMap<String, Vec<Pod>>) -> Vec<String> {
    by_node.keys().cloned().collect()
}

async fn status(daemon_sets: &Api<DaemonSet>) -> DaemonSetStatus {
    daemon_sets
        .get("agent")
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

fn counts(status: &DaemonSetStatus) -> [i32; 7] {
    [
        status.desired_number_scheduled,
        status.current_number_scheduled,
        status.number_ready,
        status.number_available.unwrap_or(0),
        status.updated_number_scheduled.unwrap_or(0),
        status.number_misscheduled,
        status.number_unavailable.unwrap_or(0),
    ]
}

#[tokio::test]
async fn one_pod_per_eligible_node_following_node_changes() {
    let harness = start().await;
    let client = &harness.client;
    let worker = json!({"role": "worker"});
    create_node(client, "n1", worker.clone(), json!([])).await;
    create_node(client, "n2", worker.clone(), json!([])).await;
    create_node(
        client,
        "n3",
        worker.clone(),
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    .await;
    create_node(client, "other", json!({"role": "db"}), json!([])).await;
    let daemon_sets: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    daemon_sets
        .create(
            &PostParams::default(),
            &daemon_set(worker.clone(), json!({"type": "RollingUpdate"})),
        )
        .await
        .unwrap();

    let ready = wait_for("status 2/2 ready", || async {
        let status = status(&daemon_sets).await;
        (counts(&status) == [2, 2, 2, 2, 2, 0, 0]).then_some(status)
    })
    .await;
    assert_eq!(ready.observed_generation, Some(1));
    let by_node = pods_by_node(&pods).await;
    assert_eq!(
        nodes_of(&by_node),
        ["n1", "n2"],
        "none on the tainted node nor the unselected one"
    );
    let pod = &by_node["n1"][0];
    assert_eq!(affinity_node(pod).as_deref(), Some("n1"));
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
    let tolerations: Vec<String> = pod
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t.key.clone().unwrap_or_default(),
                t.effect.clone().unwrap_or_default()
            )
        })
        .collect();
    for expected in [
        "node.kubernetes.io/not-ready:NoExecute",
        "node.kubernetes.io/unreachable:NoExecute",
        "node.kubernetes.io/disk-pressure:NoSchedule",
        "node.kubernetes.io/memory-pressure:NoSchedule",
        "node.kubernetes.io/pid-pressure:NoSchedule",
        "node.kubernetes.io/unschedulable:NoSchedule",
    ] {
        assert!(
            tolerations.contains(&expected.to_string()),
            "missing {expected}"
        );
    }
    let hash = pod.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    let revisions: Api<ControllerRevision> = Api::default_namespaced(client.clone());
    let revision = revisions.get(&format!("agent-{hash}")).await.unwrap();
    assert_eq!(revision.revision, Some(1));
    let owner = client::owners::controller_of(&pod.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("DaemonSet", "agent")
    );

    let events: Api<Event> = Api::default_namespaced(client.clone());
    let created = wait_for("a SuccessfulCreate event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .and_then(|e| e.message)
    })
    .await;
    assert!(created.starts_with("Created pod: agent-"), "{created}");

    // A new eligible node gets its pod.
    create_node(client, "n4", worker.clone(), json!([])).await;
    wait_for("a pod on n4", || async {
        pods_by_node(&pods).await.contains_key("n4").then_some(())
    })
    .await;

    // A node that loses the selected label loses its pod.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": null}}})),
        )
        .await
        .unwrap();
    wait_for("n2's pod gone", || async {
        (nodes_of(&pods_by_node(&pods).await) == ["n1", "n4"]).then_some(())
    })
    .await;
    wait_for("status 2/2", || async {
        (counts(&status(&daemon_sets).await) == [2, 2, 2, 2, 2, 0, 0]).then_some(())
    })
    .await;

    // A NoSchedule taint keeps the running pod (misscheduled now); a
    // NoExecute taint evicts it.
    nodes
        .patch(
            "n4",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
            {"key": "maintenance", "effect": "NoSchedule"}]}})),
        )
        .await
        .unwrap();
    wait_for("n4 misscheduled", || async {
        (counts(&status(&daemon_sets).await) == [1, 1, 1, 1, 1, 1, 0]).then_some(())
    })
    .await;
    assert!(pods_by_node(&pods).await.contains_key("n4"));
    nodes
        .patch(
            "n4",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
            {"key": "maintenance", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    wait_for("n4's pod evicted", || async {
        (nodes_of(&pods_by_node(&pods).await) == ["n1"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_rolling_update_replaces_one_node_at_a_time() {
    let harness = start().await;
    let client = &harness.client;
    for name in ["n1", "n2", "n3"] {
        create_node(client, name, json!({}), json!([])).await;
    }
    let daemon_sets: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
    daemon_sets
        .create(&PostParams::default(), &daemon_set(json!({}), strategy))
        .await
        .unwrap();
    wait_for("3 available", || async {
        (counts(&status(&daemon_sets).await) == [3, 3, 3, 3, 3, 0, 0]).then_some(())
    })
    .await;
    let old_hash = pods_by_node(&pods).await["n1"][0]
        .metadata
        .labels
        .as_ref()
        .unwrap()["controller-revision-hash"]
        .clone();

    // Watch how many nodes lack an available pod while the update runs.
    let worst = Arc::new(AtomicUsize::new(0));
    let monitor = tokio::spawn({
        let pods = pods.clone();
        let worst = worst.clone();
        async move {
            loop {
                let by_node = pods_by_node(&pods).await;
                let serving = ["n1", "n2", "n3"]
                    .iter()
                    .filter(|node| {
                        by_node.get(**node).is_some_and(|pods| {
                            pods.iter().any(|p| {
                                p.status
                                    .as_ref()
                                    .and_then(|s| s.conditions.as_ref())
                                    .is_some_and(|c| {
                                        c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                    })
                            })
                        })
                    })
                    .count();
                worst.fetch_max(3 - serving, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    daemon_sets
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}})),
        )
        .await
        .unwrap();
    let done = wait_for("all updated and available", || async {
        let status = status(&daemon_sets).await;
        (status.observed_generation == Some(2) && counts(&status) == [3, 3, 3, 3, 3, 0, 0])
            .then_some(status)
    })
    .await;
    monitor.abort();
    assert_eq!(done.observed_generation, Some(2));
    assert!(
        worst.load(Ordering::SeqCst) <= 1,
        "maxUnavailable=1 was exceeded"
    );
    let by_node = pods_by_node(&pods).await;
    for pods in by_node.values() {
        assert_eq!(pods.len(), 1);
        let image = pods[0].spec.as_ref().unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("agent:2"));
        assert_ne!(
            pods[0].metadata.labels.as_ref().unwrap()["controller-revision-hash"],
            old_hash
        );
    }
    let revisions: Api<ControllerRevision> = Api::default_namespaced(client.clone());
    let mut numbers: Vec<i64> = revisions
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.revision.unwrap_or_default())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
}

#[tokio::test]
async fn a_failed_pod_is_deleted_and_replaced() {
    let harness = start().await;
    let client = &harness.client;
    create_node(client, "n1", json!({}), json!([])).await;
    let daemon_sets: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    daemon_sets
        .create(
            &PostParams::default(),
            &daemon_set(json!({}), json!({"type": "OnDelete"})),
        )
        .await
        .unwrap();
    let first = wait_for("a ready pod", || async {
        let by_node = pods_by_node(&pods).await;
        let pod = by_node.get("n1")?.first()?.clone();
        (status(&daemon_sets).await.number_ready == 1).then_some(pod)
    })
    .await;
    pods.patch_status(
        first.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]}})),
    )
    .await
    .unwrap();
    let replacement = wait_for("a replacement pod", || async {
        let by_node = pods_by_node(&pods).await;
        let pod = by_node.get("n1")?.first()?.clone();
        (pod.metadata.uid != first.metadata.uid).then_some(pod)
    })
    .await;
    assert_eq!(affinity_node(&replacement).as_deref(), Some("n1"));
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let message = wait_for("a FailedDaemonPod event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedDaemonPod"))
            .and_then(|e| e.message)
    })
    .await;
    assert_eq!(
        message,
        format!(
            "Found failed daemon pod default/{} on node n1, will try to kill it",
            first.metadata.name.unwrap()
        )
    );
}
