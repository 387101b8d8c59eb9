//! The agent's Node through a real API server (testcluster): registered with this machine's capacity, nodeInfo, labels and conditions, its Lease held by the node, and a restart taking the Node over without losing its Ready history.

use std::collections::BTreeMap;

use agent::host::HostFacts;
use agent::node::{CONTROL_PLANE_LABEL, NodeIdentity};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use testcluster::TestCluster;

fn identity() -> NodeIdentity {
    NodeIdentity {
        name: "agent-node".into(),
        internal_ip: "192.0.2.7".parse().unwrap(),
        control_plane: true,
        labels: BTreeMap::from([("tier".into(), "edge".into())]),
        container_runtime_version: "containerd://1.6.20".into(),
        kubelet_version: "v1.32.0+krust".into(),
        kubelet_port: 10250,
    }
}

#[tokio::test]
async fn the_node_registers_with_host_facts_and_a_lease() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let data_dir = tempfile::tempdir()?;
    let host = HostFacts::read(data_dir.path());
    let registered = agent::registration::register(&client, &identity(), &host).await?;

    let node = Api::<Node>::all(client.clone()).get("agent-node").await?;
    assert_eq!(node.metadata.uid.as_deref(), Some(registered.uid.as_str()));
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "agent-node");
    assert_eq!(labels[CONTROL_PLANE_LABEL], "true");
    assert_eq!(labels["tier"], "edge");
    let status = node.status.clone().unwrap();
    let capacity = status.capacity.unwrap();
    assert_eq!(capacity["cpu"].0, host.cpus.to_string());
    assert_eq!(capacity["pods"].0, "110");
    let info = status.node_info.unwrap();
    assert_eq!(info.kernel_version, host.kernel_version);
    assert_eq!(info.container_runtime_version, "containerd://1.6.20");
    let addresses = status.addresses.unwrap();
    assert_eq!(addresses[0].type_, "InternalIP");
    assert_eq!(addresses[0].address, "192.0.2.7");
    let conditions = status.conditions.unwrap();
    let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));

    let lease = Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .get("agent-node")
        .await?;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("agent-node"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert_eq!(
        lease.metadata.owner_references.unwrap()[0].uid,
        registered.uid
    );

    // A restarted agent takes the Node over: same uid, Ready since before.
    let again = agent::registration::register(&client, &identity(), &host).await?;
    assert_eq!(again.uid, registered.uid);
    assert_eq!(again.ready_since, registered.ready_since);
    Ok(())
}
