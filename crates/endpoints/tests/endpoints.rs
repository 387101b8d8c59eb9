//! The Endpoints controller against a real API server: addresses, not-ready addresses, named ports per Pod, hostnames, publishNotReadyAddresses, headless labels and cleanup.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn subset_with_port(endpoints: &Endpoints, port: i32) -> Option<EndpointSubset> {
    endpoints
        .subsets
        .iter()
        .flatten()
        .find(|subset| subset.ports.iter().flatten().any(|p| p.port == port))
        .cloned()
}

fn ips(addresses: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    addresses.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[tokio::test]
async fn endpoints_follow_pods_and_services() -> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    create_node(&client, "n1", "zone-a").await?;
    let controller = tokio::spawn(endpoints::run_endpoints(
        client.clone(),
        h.informers.clone(),
        2,
        endpoints::EndpointsConfig::default(),
    ));
    h.informers.start();

    let web = json!({"app": "web"});
    let host: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "labels": web},
        "spec": {"nodeName": "n1", "hostname": "host1", "subdomain": "web",
            "containers": [{"name": "c", "image": "nginx",
                "ports": [{"name": "web", "containerPort": 8080}]}]},
    }))?;
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &host)
        .await?;
    create_pod(&client, "web-2", web.clone(), 8080, "n1").await?;
    create_pod(&client, "web-3", web.clone(), 9090, "n1").await?;
    create_pod(&client, "other", json!({"app": "other"}), 8080, "n1").await?;
    set_pod_status(&client, "web-1", "10.42.0.1", true).await?;
    set_pod_status(&client, "web-2", "10.42.0.2", false).await?;
    set_pod_status(&client, "web-3", "10.42.0.3", true).await?;
    set_pod_status(&client, "other", "10.42.0.9", true).await?;

    let ports = json!([{"name": "http", "port": 80, "targetPort": "web"}]);
    create_service(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
            "spec": {"selector": web, "ports": ports},
        }),
    )
    .await?;
    create_service(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-all", "namespace": "default"},
            "spec": {"selector": web, "ports": ports, "publishNotReadyAddresses": true,
                "clusterIP": "None"},
        }),
    )
    .await?;
    create_service(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "manual", "namespace": "default"},
            "spec": {"ports": ports},
        }),
    )
    .await?;

    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let endpoints = eventually(WAIT, "Endpoints web with both port groups", || async {
        let found = api.get_opt("web").await?;
        Ok(found
            .filter(|e| subset_with_port(e, 8080).is_some() && subset_with_port(e, 9090).is_some()))
    })
    .await?;
    let by_8080 = subset_with_port(&endpoints, 8080).unwrap();
    assert_eq!(ips(&by_8080.addresses), ["10.42.0.1"]);
    assert_eq!(ips(&by_8080.not_ready_addresses), ["10.42.0.2"]);
    let port = &by_8080.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.protocol.as_deref()),
        (Some("http"), Some("TCP"))
    );
    let address = &by_8080.addresses.as_ref().unwrap()[0];
    let target = address.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.name.as_deref(),
            target.namespace.as_deref()
        ),
        (Some("Pod"), Some("web-1"), Some("default"))
    );
    assert!(target.uid.is_some());
    assert_eq!(address.node_name.as_deref(), Some("n1"));
    assert_eq!(
        address.hostname.as_deref(),
        Some("host1"),
        "hostname and subdomain match"
    );
    let by_9090 = subset_with_port(&endpoints, 9090).unwrap();
    assert_eq!(ips(&by_9090.addresses), ["10.42.0.3"]);
    let labels = endpoints.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert!(!labels.contains_key("service.kubernetes.io/headless"));
    let annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    // publishNotReadyAddresses lists the not-ready Pod as an address.
    let all = eventually(WAIT, "Endpoints web-all", || async {
        Ok(api
            .get_opt("web-all")
            .await?
            .filter(|e| e.subsets.is_some()))
    })
    .await?;
    let mut published: Vec<String> = all
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| ips(&s.addresses))
        .collect();
    published.sort();
    assert_eq!(published, ["10.42.0.1", "10.42.0.2", "10.42.0.3"]);
    assert!(
        all.subsets
            .iter()
            .flatten()
            .all(|s| s.not_ready_addresses.is_none())
    );
    let hostnames: Vec<Option<String>> = all
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.ip == "10.42.0.1")
        .map(|a| a.hostname.clone())
        .collect();
    assert_eq!(hostnames, [None], "the subdomain names another Service");
    assert_eq!(
        all.metadata
            .labels
            .unwrap_or_default()
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );

    // A Pod turning ready moves to addresses.
    set_pod_status(&client, "web-2", "10.42.0.2", true).await?;
    eventually(WAIT, "web-2 ready", || async {
        let e = api.get("web").await?;
        Ok(subset_with_port(&e, 8080)
            .filter(|s| {
                ips(&s.addresses) == ["10.42.0.1", "10.42.0.2"] && s.not_ready_addresses.is_none()
            })
            .map(|_| ()))
    })
    .await?;

    // A terminating Pod leaves the Endpoints (no publishNotReadyAddresses).
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete("web-1", &DeleteParams::default())
        .await?;
    eventually(WAIT, "web-1 gone from Endpoints", || async {
        let e = api.get("web").await?;
        Ok(subset_with_port(&e, 8080)
            .filter(|s| ips(&s.addresses) == ["10.42.0.2"])
            .map(|_| ()))
    })
    .await?;

    // Unchanged inputs write nothing.
    let before = api.get("web").await?.metadata.resource_version;
    Api::<Service>::namespaced(client.clone(), "default")
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"touched": "yes"}}})),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.get("web").await?.metadata.resource_version, before);

    // The selector-less Service is left alone.
    assert!(api.get_opt("manual").await?.is_none());

    // Deleting the Service removes its Endpoints.
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await?;
    eventually(WAIT, "Endpoints web deleted", || async {
        Ok(api.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    controller.abort();
    Ok(())
}

#[tokio::test]
async fn more_than_a_thousand_addresses_are_truncated_and_annotated() -> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    create_node(&client, "n1", "zone-a").await?;
    let labels = json!({"app": "big"});
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..1005 {
        let name = format!("big-{i}");
        create_pod(&client, &name, labels.clone(), 8080, "n1").await?;
        set_pod_status(
            &client,
            &name,
            &format!("10.42.{}.{}", i / 200, i % 200 + 1),
            true,
        )
        .await?;
    }
    assert_eq!(pods.list(&Default::default()).await?.items.len(), 1005);
    let controller = tokio::spawn(endpoints::run_endpoints(
        client.clone(),
        h.informers.clone(),
        2,
        endpoints::EndpointsConfig::default(),
    ));
    h.informers.start();
    create_service(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "big", "namespace": "default"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        }),
    )
    .await?;
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let endpoints = eventually(WAIT, "Endpoints big", || async {
        Ok(api.get_opt("big").await?)
    })
    .await?;
    let count: usize = endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(count, 1000);
    assert_eq!(
        endpoints
            .metadata
            .annotations
            .unwrap_or_default()
            .get("endpoints.kubernetes.io/over-capacity")
            .map(String::as_str),
        Some("truncated")
    );
    controller.abort();
    Ok(())
}
