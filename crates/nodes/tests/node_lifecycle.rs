//! The node lifecycle and taint eviction controllers against a real API server, with the test playing the kubelets: a silent node turns Unknown and unreachable, Pods leave by their tolerations, and recovery lifts the taints.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

fn has(node: &Node, key: &str, effect: &str) -> bool {
    taints(node)
        .iter()
        .any(|t| t.key == key && t.effect == effect)
}

fn ready_condition(node: &Node) -> Option<k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
}

fn pod_ready_status(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn disruption_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")?
        .reason
        .clone()
}

#[tokio::test]
async fn a_silent_node_is_tainted_unreachable_its_pods_evicted_by_toleration_and_recovery_lifts_the_taints()
-> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    for name in ["good", "bad"] {
        create_node(&client, name).await?;
        post_ready(&client, name).await?;
        renew_lease(&client, name).await?;
    }
    let unreachable = "node.kubernetes.io/unreachable";
    create_pod(&client, "tolerates-3s", "bad", json!([
        {"key": unreachable, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3},
    ])).await?;
    // Admission gives this one upstream's default 300 s.
    create_pod(&client, "default-tolerations", "bad", json!([])).await?;

    let bad_alive = Arc::new(AtomicBool::new(true));
    let kubelets = {
        let (client, bad_alive) = (client.clone(), bad_alive.clone());
        tokio::spawn(async move {
            loop {
                let _ = renew_lease(&client, "good").await;
                if bad_alive.load(Ordering::SeqCst) {
                    let _ = renew_lease(&client, "bad").await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let config = nodes::NodeLifecycleConfig {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(2),
        node_startup_grace_period: Duration::from_secs(2),
        ..Default::default()
    };
    let controller = tokio::spawn(nodes::run_node_lifecycle(
        client.clone(),
        h.informers.clone(),
        2,
        config,
    ));
    h.informers.start();

    // Leases alone keep nodes healthy beyond the grace period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bad = get_node(&client, "bad").await?;
    assert_eq!(ready_condition(&bad).unwrap().status, "True");
    assert!(taints(&bad).is_empty());

    bad_alive.store(false, Ordering::SeqCst);
    let stopped = Instant::now();
    let bad = eventually(WAIT, "bad tainted unreachable", || async {
        let node = get_node(&client, "bad").await?;
        Ok(
            (has(&node, unreachable, "NoExecute") && has(&node, unreachable, "NoSchedule"))
                .then_some(node),
        )
    })
    .await?;
    let tainted_at = Instant::now();
    // The grace period runs from the last renewal, up to one renewal
    // interval (plus a slow request) before renewals stopped.
    assert!(
        stopped.elapsed() >= Duration::from_millis(1500),
        "not before the grace period"
    );
    let ready = ready_condition(&bad).unwrap();
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert!(taints(&bad).iter().all(|t| t.time_added.is_some()));
    assert_eq!(taints(&bad).len(), 2);

    // The node's Pods are marked not ready.
    eventually(WAIT, "pods on bad not ready", || async {
        let pod = get_pod(&client, "default-tolerations").await?;
        Ok((pod_ready_status(&pod).as_deref() == Some("False")).then_some(()))
    })
    .await?;

    // Tolerating for 3 s: still there after 1 s, deleted after about 3 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        get_pod(&client, "tolerates-3s")
            .await?
            .metadata
            .deletion_timestamp
            .is_none()
    );
    let evicted = eventually(WAIT, "tolerates-3s deleted", || async {
        let pod = get_pod(&client, "tolerates-3s").await?;
        Ok(pod.metadata.deletion_timestamp.is_some().then_some(pod))
    })
    .await?;
    let waited = tainted_at.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "evicted after {waited:?}"
    );
    assert_eq!(
        disruption_reason(&evicted).as_deref(),
        Some("DeletionByTaintManager")
    );
    assert!(
        get_pod(&client, "default-tolerations")
            .await?
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert!(
        !events(&client, "tolerates-3s", "TaintManagerEviction")
            .await?
            .is_empty()
    );

    // The other node stays healthy throughout.
    let good = get_node(&client, "good").await?;
    assert_eq!(ready_condition(&good).unwrap().status, "True");
    assert!(taints(&good).is_empty());

    // The kubelet comes back: taints are lifted.
    bad_alive.store(true, Ordering::SeqCst);
    post_ready(&client, "bad").await?;
    eventually(WAIT, "bad untainted", || async {
        let node = get_node(&client, "bad").await?;
        Ok(taints(&node).is_empty().then_some(()))
    })
    .await?;
    kubelets.abort();
    controller.abort();
    Ok(())
}

#[tokio::test]
async fn no_execute_taints_evict_intolerant_pods_at_once_and_removing_the_taint_cancels()
-> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    create_node(&client, "n1").await?;
    let key = "example.com/maintenance";
    create_pod(&client, "intolerant", "n1", json!([])).await?;
    create_pod(
        &client,
        "forever",
        "n1",
        json!([{"key": key, "operator": "Exists", "effect": "NoExecute"}]),
    )
    .await?;
    create_pod(
        &client,
        "short",
        "n1",
        json!([{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]),
    )
    .await?;
    create_pod(
        &client,
        "long",
        "n1",
        json!([{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 4}]),
    )
    .await?;
    let controller = tokio::spawn(nodes::run_taint_eviction(
        client.clone(),
        h.informers.clone(),
    ));
    h.informers.start();
    h.informers.wait_synced().await;

    let nodes_api: Api<Node> = Api::all(client.clone());
    let set_taints = |taints: serde_json::Value| {
        let nodes_api = nodes_api.clone();
        async move {
            nodes_api
                .patch(
                    "n1",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"taints": taints}})),
                )
                .await
        }
    };
    set_taints(json!([{"key": key, "effect": "NoExecute"}])).await?;
    let intolerant = eventually(WAIT, "intolerant deleted", || async {
        let pod = get_pod(&client, "intolerant").await?;
        Ok(pod.metadata.deletion_timestamp.is_some().then_some(pod))
    })
    .await?;
    assert_eq!(
        disruption_reason(&intolerant).as_deref(),
        Some("DeletionByTaintManager")
    );
    eventually(WAIT, "short deleted", || async {
        Ok(get_pod(&client, "short")
            .await?
            .metadata
            .deletion_timestamp
            .map(|_| ()))
    })
    .await?;
    // Removing the taint before "long" runs out cancels its eviction.
    set_taints(serde_json::Value::Null).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        get_pod(&client, "long")
            .await?
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert!(
        get_pod(&client, "forever")
            .await?
            .metadata
            .deletion_timestamp
            .is_none()
    );
    controller.abort();
    Ok(())
}
