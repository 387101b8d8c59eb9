//! The EndpointSlice controller against a real API server: packing 250 Pods, labels and owner, terminating conditions, scale-down without churn, and cleanup.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

async fn slices_of(api: &Api<EndpointSlice>, service: &str) -> anyhow::Result<Vec<EndpointSlice>> {
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    Ok(api.list(&params).await?.items)
}

fn sizes(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut sizes: Vec<usize> = slices
        .iter()
        .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

fn pod_names(slice: &EndpointSlice) -> Vec<String> {
    slice
        .endpoints
        .iter()
        .flatten()
        .filter_map(|e| e.target_ref.as_ref()?.name.clone())
        .collect()
}

#[tokio::test]
async fn slices_pack_pods_and_follow_their_lifecycle() -> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    create_node(&client, "n1", "zone-a").await?;
    let labels = json!({"app": "web"});
    for i in 0..250 {
        let name = format!("web-{i}");
        create_pod(&client, &name, labels.clone(), 8080, "n1").await?;
        set_pod_status(
            &client,
            &name,
            &format!("10.42.{}.{}", i / 200, i % 200 + 1),
            true,
        )
        .await?;
    }
    let controller = tokio::spawn(endpoints::run_endpoint_slices(
        client.clone(),
        h.informers.clone(),
        2,
        endpoints::EndpointSliceConfig {
            batch_period: Duration::from_millis(200),
            ..Default::default()
        },
    ));
    h.informers.start();
    let service = create_service(&client, json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    }))
    .await?;

    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slices = eventually(WAIT, "three slices of 100/100/50", || async {
        let slices = slices_of(&api, "web").await?;
        Ok((sizes(&slices) == [100, 100, 50]).then_some(slices))
    })
    .await?;
    for slice in &slices {
        assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"));
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(slice.address_type, "IPv4");
        let labels = slice.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernetes.io/service-name"], "web");
        assert_eq!(
            labels["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(labels["team"], "a");
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            (
                "Service",
                "web",
                service.metadata.uid.as_deref().unwrap(),
                Some(true)
            )
        );
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("http"), Some(8080))
        );
        let endpoint = &slice.endpoints.as_ref().unwrap()[0];
        assert_eq!(endpoint.zone.as_deref(), Some("zone-a"));
        assert_eq!(endpoint.node_name.as_deref(), Some("n1"));
        assert_eq!(
            endpoint.target_ref.as_ref().unwrap().kind.as_deref(),
            Some("Pod")
        );
    }

    // A terminating Pod stays, not ready but still serving.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("web-0", &DeleteParams::default()).await?;
    eventually(WAIT, "web-0 terminating in its slice", || async {
        let slices = slices_of(&api, "web").await?;
        let endpoint = slices
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some("web-0"))
            .cloned();
        Ok(endpoint.and_then(|e| e.conditions).filter(|c| {
            (c.ready, c.serving, c.terminating) == (Some(false), Some(true), Some(true))
        }))
    })
    .await?;

    // Scaling down rewrites only the slice that held the removed Pods.
    let slices = slices_of(&api, "web").await?;
    let versions: BTreeMap<String, String> = slices
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap(),
                s.metadata.resource_version.clone().unwrap(),
            )
        })
        .collect();
    let half = slices
        .iter()
        .find(|s| s.endpoints.as_ref().map_or(0, Vec::len) == 50)
        .unwrap();
    let half_name = half.metadata.name.clone().unwrap();
    let removed: Vec<String> = pod_names(half).into_iter().take(10).collect();
    for name in &removed {
        pods.delete(name, &DeleteParams::default().grace_period(0))
            .await?;
    }
    let after = eventually(WAIT, "the removed Pods leave their slice", || async {
        let slices = slices_of(&api, "web").await?;
        Ok((sizes(&slices) == [100, 100, 40]).then_some(slices))
    })
    .await?;
    for slice in &after {
        let name = slice.metadata.name.clone().unwrap();
        let unchanged = versions.get(&name) == slice.metadata.resource_version.as_ref();
        assert_eq!(
            unchanged,
            name != half_name,
            "only {half_name} is rewritten, not {name}"
        );
    }

    // The Service going takes its slices with it.
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await?;
    eventually(WAIT, "slices deleted", || async {
        Ok(slices_of(&api, "web").await?.is_empty().then_some(()))
    })
    .await?;
    controller.abort();
    Ok(())
}

#[tokio::test]
async fn a_service_without_ready_pods_gets_an_empty_slice_and_selectorless_services_none()
-> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    let controller = tokio::spawn(endpoints::run_endpoint_slices(
        client.clone(),
        h.informers.clone(),
        1,
        endpoints::EndpointSliceConfig::default(),
    ));
    h.informers.start();
    create_service(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "empty", "namespace": "default"},
            "spec": {"selector": {"app": "none"}, "clusterIP": "None"},
        }),
    )
    .await?;
    create_service(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "manual", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]},
        }),
    )
    .await?;
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slices = eventually(WAIT, "placeholder slice", || async {
        let slices = slices_of(&api, "empty").await?;
        Ok((!slices.is_empty()).then_some(slices))
    })
    .await?;
    assert_eq!(slices.len(), 1);
    assert!(slices[0].endpoints.as_ref().is_none_or(Vec::is_empty));
    let labels = slices[0].metadata.labels.clone().unwrap();
    assert_eq!(
        labels
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slices_of(&api, "empty").await?.len(), 1);
    assert!(slices_of(&api, "manual").await?.is_empty());
    controller.abort();
    Ok(())
}
