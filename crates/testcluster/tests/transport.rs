//! The in-process and HTTPS clients reach the same API server, and shared informers see its changes.

use std::time::Duration;

use client::{Change, Informers};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use testcluster::TestCluster;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": "v"}
    }))
    .unwrap()
}

#[tokio::test]
async fn in_process_and_https_clients_share_one_server() {
    let cluster = TestCluster::start().await.unwrap();
    let local: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    local
        .create(&PostParams::default(), &config_map("one"))
        .await
        .unwrap();
    let https: Api<ConfigMap> = Api::default_namespaced(cluster.https_client().await.unwrap());
    let seen = https.get("one").await.unwrap();
    assert_eq!(seen.data.unwrap()["k"], "v");
    // Errors come back as the upstream Status.
    let conflict = local
        .create(&PostParams::default(), &config_map("one"))
        .await
        .unwrap_err();
    match conflict {
        kube::Error::Api(status) => assert_eq!(
            (status.code, status.reason.as_str()),
            (409, "AlreadyExists")
        ),
        other => panic!("expected a 409 Status, got {other}"),
    }
}

#[tokio::test]
async fn informers_replay_the_store_then_deliver_changes() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    api.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();
    let informers = Informers::new(cluster.client());
    let config_maps = informers.informer::<ConfigMap>();
    informers.start();
    informers.wait_synced().await;
    assert!(
        config_maps
            .store()
            .state()
            .iter()
            .any(|cm| cm.metadata.name.as_deref() == Some("before"))
    );
    let mut changes = config_maps.subscribe();
    let first = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, Change::Applied { old: None, new } if new.metadata.name.as_deref() != Some("missing"))
    );
    api.create(&PostParams::default(), &config_map("after"))
        .await
        .unwrap();
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let mut saw_added = false;
    let mut saw_deleted = false;
    while !(saw_added && saw_deleted) {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .expect("a change within 5 s")
            .unwrap();
        match change {
            Change::Applied { old: None, new } if new.metadata.name.as_deref() == Some("after") => {
                saw_added = true
            }
            Change::Deleted(old) if old.metadata.name.as_deref() == Some("before") => {
                saw_deleted = true
            }
            _ => {}
        }
    }
    assert!(
        config_maps
            .store()
            .state()
            .iter()
            .all(|cm| cm.metadata.name.as_deref() != Some("before"))
    );
}

#[tokio::test]
async fn only_one_holder_leads_at_a_time() {
    use client::leader::{LeaseLock, try_acquire_or_renew};
    use k8s_openapi::api::coordination::v1::Lease;
    let cluster = TestCluster::start().await.unwrap();
    let leases: Api<Lease> = Api::namespaced(cluster.client(), "kube-system");
    let first = LeaseLock::new("krust-test", "first");
    let second = LeaseLock::new("krust-test", "second");
    assert!(try_acquire_or_renew(&leases, &first).await.unwrap());
    assert!(!try_acquire_or_renew(&leases, &second).await.unwrap());
    assert!(try_acquire_or_renew(&leases, &first).await.unwrap());
    let mut short = LeaseLock::new("krust-short", "first");
    short.lease_duration = Duration::from_secs(1);
    assert!(try_acquire_or_renew(&leases, &short).await.unwrap());
    let mut taker = short.clone();
    taker.identity = "second".into();
    assert!(!try_acquire_or_renew(&leases, &taker).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        try_acquire_or_renew(&leases, &taker).await.unwrap(),
        "an expired lease is taken over"
    );
    let lease = leases.get("krust-short").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("second"));
    assert_eq!(lease.lease_transitions, Some(1));
}
