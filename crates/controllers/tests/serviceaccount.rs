//! The ServiceAccount controller through the API: every namespace gets a `default` account, recreated after deletion.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use testcluster::TestCluster;

async fn eventually_exists(accounts: &Api<ServiceAccount>) {
    for _ in 0..100 {
        if accounts.get_opt("default").await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no default ServiceAccount appeared");
}

#[tokio::test]
async fn every_namespace_gets_a_default_account() {
    let cluster = TestCluster::start().await.unwrap();
    let informers = Arc::new(client::Informers::new(cluster.client()));
    let controllers = tokio::spawn(controllers::run(
        cluster.client(),
        informers,
        controllers::ControllerOptions::default(),
    ));
    eventually_exists(&Api::namespaced(cluster.client(), "kube-system")).await;

    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "team-a"}})).unwrap();
    Api::<Namespace>::all(cluster.client())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client(), "team-a");
    eventually_exists(&accounts).await;
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually_exists(&accounts).await;
    controllers.abort();
}
