//! Node IPAM against a real API server: distinct per-node ranges, allocations kept across a restart, exhaustion reported and ranges freed by node deletion.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use client::Informers;
use common::*;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::DeleteParams;

const WAIT: Duration = Duration::from_secs(10);

async fn pod_cidr(client: &kube::Client, name: &str) -> anyhow::Result<String> {
    eventually(WAIT, &format!("{name} gets a pod CIDR"), || async {
        let node = get_node(client, name).await?;
        let spec = node.spec.unwrap_or_default();
        Ok(spec
            .pod_cidr
            .clone()
            .filter(|_| spec.pod_cidrs.as_ref() == Some(&vec![spec.pod_cidr.clone().unwrap()])))
    })
    .await
}

#[tokio::test]
async fn nodes_get_distinct_ranges_that_survive_a_restart() -> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    let ipam = tokio::spawn(nodes::run_node_ipam(
        client.clone(),
        h.informers.clone(),
        nodes::NodeIpamConfig::default(),
    ));
    h.informers.start();
    let mut ranges = BTreeSet::new();
    for name in ["n1", "n2", "n3"] {
        create_node(&client, name).await?;
        let cidr = pod_cidr(&client, name).await?;
        assert!(
            cidr.starts_with("10.42.") && cidr.ends_with(".0/24"),
            "{cidr}"
        );
        ranges.insert(cidr);
    }
    assert_eq!(ranges.len(), 3);

    // A new controller learns the existing ranges before handing out more.
    ipam.abort();
    let informers = Arc::new(Informers::new(client.clone()));
    let ipam = tokio::spawn(nodes::run_node_ipam(
        client.clone(),
        informers.clone(),
        nodes::NodeIpamConfig::default(),
    ));
    informers.start();
    create_node(&client, "n4").await?;
    let fourth = pod_cidr(&client, "n4").await?;
    assert!(!ranges.contains(&fourth), "{fourth} was already taken");
    for (name, cidr) in ["n1", "n2", "n3"].iter().zip(&ranges) {
        assert_eq!(&pod_cidr(&client, name).await?, cidr);
    }
    ipam.abort();
    Ok(())
}

#[tokio::test]
async fn an_exhausted_range_is_reported_and_a_deleted_nodes_range_reused() -> anyhow::Result<()> {
    let h = start().await?;
    let client = h.client.clone();
    let config = nodes::NodeIpamConfig {
        cluster_cidrs: vec!["10.42.0.0/23".into()],
        ..Default::default()
    };
    let ipam = tokio::spawn(nodes::run_node_ipam(
        client.clone(),
        h.informers.clone(),
        config,
    ));
    h.informers.start();
    create_node(&client, "n1").await?;
    let first = pod_cidr(&client, "n1").await?;
    create_node(&client, "n2").await?;
    pod_cidr(&client, "n2").await?;
    create_node(&client, "n3").await?;
    eventually(WAIT, "CIDRNotAvailable event", || async {
        let found = events(&client, "n3", "CIDRNotAvailable").await?;
        Ok(found.first().and_then(|e| e.message.clone()))
    })
    .await
    .map(|message| assert_eq!(message, "Node n3 status is now: CIDRNotAvailable"))?;
    assert!(
        get_node(&client, "n3")
            .await?
            .spec
            .unwrap_or_default()
            .pod_cidr
            .is_none()
    );

    Api::<Node>::all(client.clone())
        .delete("n1", &DeleteParams::default())
        .await?;
    assert_eq!(pod_cidr(&client, "n3").await?, first);
    ipam.abort();
    Ok(())
}
