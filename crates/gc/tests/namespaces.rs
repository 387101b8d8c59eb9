//! The namespace controller against a real API server: a deleted namespace reports what remains in its conditions, is emptied, finalized and removed.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, NamespaceCondition, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn condition<'a>(namespace: &'a Namespace, condition_type: &str) -> Option<&'a NamespaceCondition> {
    namespace
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| condition.type_ == condition_type)
}

fn spec_finalizers(namespace: &Namespace) -> Vec<String> {
    namespace
        .spec
        .as_ref()
        .and_then(|spec| spec.finalizers.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deleted_namespace_is_emptied_then_finalized_then_gone() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // Upstream's API server adds `kubernetes` to spec.finalizers on create;
    // krust's does not yet, and it deletes a terminating namespace on any
    // update once metadata.finalizers is empty, whatever spec.finalizers
    // says. The test's own metadata finalizer keeps the namespace until the
    // controller is done, and it is removed last.
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "doomed", "finalizers": ["krust.test/hold"]},
                "spec": {"finalizers": ["kubernetes"]},
            }))?,
        )
        .await?;
    create_config_map(&client, "doomed", "one", vec![]).await?;
    create_config_map(&client, "doomed", "two", vec![]).await?;
    create_secret(&client, "doomed", "secret", vec![]).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "nginx"}],
            },
        }))?,
    )
    .await?;
    let _controller = start_namespace_controller(client.clone());

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await?;
    let terminating = eventually("the content conditions", WAIT, || {
        let namespaces = namespaces.clone();
        async move {
            let namespace = namespaces.get("doomed").await.ok()?;
            condition(&namespace, "NamespaceContentRemaining")?;
            Some(namespace)
        }
    })
    .await;
    assert_eq!(
        terminating.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let remaining = condition(&terminating, "NamespaceContentRemaining").unwrap();
    assert_eq!(remaining.status, "True");
    assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
    assert_eq!(
        remaining.message.as_deref(),
        Some("Some resources are remaining: pods. has 1 resource instances")
    );
    let finalizers = condition(&terminating, "NamespaceFinalizersRemaining").unwrap();
    assert_eq!(finalizers.status, "True");
    assert_eq!(
        finalizers.message.as_deref(),
        Some("Some finalizers are remaining: example.com/hold in 1 resource instances")
    );
    let content = condition(&terminating, "NamespaceDeletionContentFailure").unwrap();
    assert_eq!(
        (content.status.as_str(), content.reason.as_deref()),
        ("False", Some("ContentDeleted"))
    );
    let discovery = condition(&terminating, "NamespaceDeletionDiscoveryFailure").unwrap();
    assert_eq!(discovery.reason.as_deref(), Some("ResourcesDiscovered"));
    assert!(condition(&terminating, "NamespaceDeletionGroupVersionParsingFailure").is_some());
    assert_eq!(
        spec_finalizers(&terminating),
        vec!["kubernetes".to_string()]
    );

    // Everything without a finalizer is gone already; the pod waits.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "doomed");
    assert!(
        config_maps
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );
    assert!(secrets.list(&ListParams::default()).await?.items.is_empty());
    let held = pods.get("held").await?;
    assert!(held.metadata.deletion_timestamp.is_some());

    pods.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    // Any change to the namespace wakes the controller (the content's
    // estimate would otherwise have it look again after 8 s).
    namespaces
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"krust.test/poke": "1"}}})),
        )
        .await?;
    let finalized = eventually("the kubernetes finalizer to be removed", WAIT, || {
        let namespaces = namespaces.clone();
        async move {
            let namespace = namespaces.get("doomed").await.ok()?;
            spec_finalizers(&namespace).is_empty().then_some(namespace)
        }
    })
    .await;
    let remaining = condition(&finalized, "NamespaceContentRemaining").unwrap();
    assert_eq!(
        (remaining.status.as_str(), remaining.reason.as_deref()),
        ("False", Some("ContentRemoved"))
    );
    assert!(pods.get_opt("held").await?.is_none());

    namespaces
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    eventually("the namespace to go", WAIT, || gone(&namespaces, "doomed")).await;
    Ok(())
}

#[tokio::test]
async fn namespaces_not_being_deleted_are_left_alone() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "alive").await?;
    create_config_map(&client, "alive", "keep", vec![]).await?;
    let _controller = start_namespace_controller(client.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "alive");
    assert!(config_maps.get_opt("keep").await?.is_some());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let alive = namespaces.get("alive").await?;
    assert!(
        alive
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_none()
    );
    Ok(())
}
