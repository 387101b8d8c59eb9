//! Joining through a real API server (testcluster): the token buys a node's certificates, the written kubeconfig works over HTTPS as that node, and a wrong token or a bad node name is refused.

use agent::join::{NodeFiles, join};
use api::join::NodeCredentialsRequest;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use testcluster::TestCluster;

fn request(name: &str) -> NodeCredentialsRequest {
    NodeCredentialsRequest {
        node_name: name.into(),
        addresses: vec!["127.0.0.1".into(), "192.0.2.9".into()],
    }
}

#[tokio::test]
async fn a_token_holder_gets_node_certificates_that_work() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let credentials = join(&cluster.url(), TestCluster::TOKEN, &request("worker-1")).await?;
    assert!(credentials.ca_certificate.contains("BEGIN CERTIFICATE"));
    assert!(credentials.serving_key.contains("PRIVATE KEY"));

    let dir = tempfile::tempdir()?;
    let files = NodeFiles::under(dir.path());
    files.write(&cluster.url(), &credentials)?;
    let client = client::from_kubeconfig(&files.kubeconfig).await?;
    let namespaces = Api::<Namespace>::all(client)
        .list(&Default::default())
        .await?;
    assert!(
        namespaces
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&files.serving_key)?.permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_or_a_bad_node_name_is_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let wrong = join(&cluster.url(), "not-the-token", &request("worker-1"))
        .await
        .unwrap_err();
    assert!(
        format!("{wrong:#}").contains("rejected the token (401)"),
        "{wrong:#}"
    );
    let bad = join(&cluster.url(), TestCluster::TOKEN, &request("Not_A_Name"))
        .await
        .unwrap_err();
    assert!(format!("{bad:#}").contains("answered 400"), "{bad:#}");
    assert!(format!("{bad:#}").contains("invalid node name"), "{bad:#}");
    Ok(())
}
