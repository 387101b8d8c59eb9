//! ServiceLB through the API: a LoadBalancer Service gets its Ready nodes' addresses as ingress, follows node changes, and leaves other classes and types alone.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn ingress(services: &Api<Service>, name: &str) -> Vec<String> {
    let service = services.get(name).await.unwrap();
    service
        .status
        .and_then(|status| status.load_balancer)
        .and_then(|balancer| balancer.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|ingress| ingress.ip)
        .collect()
}

async fn eventually(services: &Api<Service>, name: &str, wanted: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = ingress(services, name).await;
        if now == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {now:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready_node(name: &str, address: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": address}],
        },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn load_balancers_get_their_nodes_addresses() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, address) in [("node-a", "192.0.2.10"), ("node-b", "192.0.2.11")] {
        let node: Node = serde_json::from_value(ready_node(name, address))?;
        nodes.create(&PostParams::default(), &node).await?;
        // Nodes keep the status they are created with.
    }
    let informers = Arc::new(client::Informers::new(client.clone()));
    let running = tokio::spawn(controllers::servicelb::run(
        client.clone(),
        informers.clone(),
        2,
    ));
    informers.start();

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service = |name: &str, spec: Value| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let port = json!([{"port": 80, "protocol": "TCP"}]);
    services
        .create(
            &PostParams::default(),
            &service("web", json!({"type": "LoadBalancer", "ports": port})),
        )
        .await?;
    services
        .create(
            &PostParams::default(),
            &service(
                "other-class",
                json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "ports": port}),
            ),
        )
        .await?;
    services
        .create(
            &PostParams::default(),
            &service("plain", json!({"type": "ClusterIP", "ports": port})),
        )
        .await?;
    eventually(&services, "web", &["192.0.2.10", "192.0.2.11"]).await;

    // A node going NotReady leaves the ingress.
    nodes
        .patch_status(
            "node-b",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        )
        .await?;
    eventually(&services, "web", &["192.0.2.10"]).await;

    // Turned into a ClusterIP Service, the ingress is cleared.
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP", "nodePort": null}]}})),
        )
        .await?;
    eventually(&services, "web", &[]).await;
    assert!(ingress(&services, "other-class").await.is_empty());
    assert!(ingress(&services, "plain").await.is_empty());
    running.abort();
    Ok(())
}
