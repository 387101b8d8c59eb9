//! The garbage collector against a real API server: background, foreground and orphan deletion, owners that never existed, owners deleted while it was stopped, and kinds it only knows from discovery.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn owner_uids(object: &ConfigMap) -> Vec<String> {
    object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|reference| reference.uid.clone())
        .collect()
}

#[tokio::test]
async fn background_deletion_collects_dependents_and_keeps_those_with_another_owner()
-> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "bg").await?;
    let owner = create_config_map(&client, "bg", "owner", vec![]).await?;
    let other_owner = create_config_map(&client, "bg", "other-owner", vec![]).await?;
    create_config_map(
        &client,
        "bg",
        "dependent",
        vec![reference_to(&owner, false)],
    )
    .await?;
    create_secret(
        &client,
        "bg",
        "dependent-secret",
        vec![reference_to(&owner, true)],
    )
    .await?;
    create_config_map(
        &client,
        "bg",
        "shared",
        vec![
            reference_to(&owner, false),
            reference_to(&other_owner, false),
        ],
    )
    .await?;
    let _gc = start_garbage_collector(client.clone());

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "bg");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "bg");
    // Owners that exist keep their dependents.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(config_maps.get_opt("dependent").await?.is_some());

    config_maps
        .delete("owner", &DeleteParams::default())
        .await?;
    eventually("the dependent config map to go", WAIT, || {
        gone(&config_maps, "dependent")
    })
    .await;
    eventually("the dependent secret to go", WAIT, || {
        gone(&secrets, "dependent-secret")
    })
    .await;
    let other_uid = other_owner.metadata.uid.clone().unwrap();
    eventually("the dangling reference to be removed", WAIT, || {
        let config_maps = config_maps.clone();
        let other_uid = other_uid.clone();
        async move {
            let shared = config_maps.get_opt("shared").await.ok()??;
            (owner_uids(&shared) == vec![other_uid]).then_some(())
        }
    })
    .await;
    assert!(config_maps.get_opt("other-owner").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn owners_that_never_existed_or_live_elsewhere_leave_their_dependents_collected()
-> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "here").await?;
    create_namespace(&client, "elsewhere").await?;
    let ghost = owner_reference(
        "v1",
        "ConfigMap",
        "ghost",
        "0b4c4cf5-5a2e-4e8e-9d54-000000000001",
        false,
    );
    create_config_map(&client, "here", "haunted", vec![ghost.clone()]).await?;
    // The owner exists, but a namespaced owner must be in its dependent's
    // namespace: from here it is absent.
    let foreign = create_config_map(&client, "elsewhere", "foreign-owner", vec![]).await?;
    create_config_map(
        &client,
        "here",
        "cross-namespace",
        vec![reference_to(&foreign, false)],
    )
    .await?;
    // A cluster-scoped dependent of a namespaced owner cannot be resolved:
    // it is left alone and reported.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {
                "name": "claimed",
                "ownerReferences": [reference_to(&foreign, false)],
            }}))?,
        )
        .await?;
    let _gc = start_garbage_collector(client.clone());

    let here: Api<ConfigMap> = Api::namespaced(client.clone(), "here");
    eventually("the ghost's dependent to go", WAIT, || {
        gone(&here, "haunted")
    })
    .await;
    eventually("the cross-namespace dependent to go", WAIT, || {
        gone(&here, "cross-namespace")
    })
    .await;
    let events: Api<Event> = Api::all(client.clone());
    eventually(
        "an OwnerRefInvalidNamespace event for the cluster-scoped dependent",
        WAIT,
        || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items
                    .iter()
                    .any(|event| {
                        event.reason.as_deref() == Some("OwnerRefInvalidNamespace")
                            && event.involved_object.name.as_deref() == Some("claimed")
                    })
                    .then_some(())
            }
        },
    )
    .await;
    assert!(namespaces.get_opt("claimed").await?.is_some());
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "elsewhere");
    assert!(elsewhere.get_opt("foreign-owner").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn dependents_of_owners_deleted_while_the_collector_was_stopped_are_collected_at_start()
-> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "restart").await?;
    let owner = create_config_map(&client, "restart", "owner", vec![]).await?;
    create_config_map(
        &client,
        "restart",
        "dependent",
        vec![reference_to(&owner, false)],
    )
    .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "restart");

    let first = start_garbage_collector(client.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);
    config_maps
        .delete("owner", &DeleteParams::default())
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        config_maps.get_opt("dependent").await?.is_some(),
        "nothing collects while stopped"
    );

    let _second = start_garbage_collector(client.clone());
    eventually("the dependent to go after the restart", WAIT, || {
        gone(&config_maps, "dependent")
    })
    .await;
    Ok(())
}

/// Records the names of config maps deleted in `namespace`, in order.
async fn record_deletions(
    client: &kube::Client,
    namespace: &str,
) -> (Arc<Mutex<Vec<String>>>, Running) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let (ready_sender, ready) = tokio::sync::oneshot::channel();
    let task = {
        let deleted = deleted.clone();
        tokio::spawn(async move {
            let mut ready_sender = Some(ready_sender);
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::InitDone => {
                        if let Some(sender) = ready_sender.take() {
                            let _ = sender.send(());
                        }
                    }
                    watcher::Event::Delete(object) => {
                        deleted
                            .lock()
                            .unwrap()
                            .push(object.metadata.name.unwrap_or_default());
                    }
                    _ => {}
                }
            }
        })
    };
    let _ = ready.await;
    (deleted, Running(task))
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_before_the_owner() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "fg").await?;
    let owner = create_config_map(&client, "fg", "owner", vec![]).await?;
    create_config_map(&client, "fg", "blocking", vec![reference_to(&owner, true)]).await?;
    create_config_map(
        &client,
        "fg",
        "not-blocking",
        vec![reference_to(&owner, false)],
    )
    .await?;
    // This dependent lingers on its own finalizer: the owner must wait.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "fg");
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {
                "name": "lingering",
                "finalizers": ["example.com/hold"],
                "ownerReferences": [reference_to(&owner, true)],
            }}))?,
        )
        .await?;
    let _gc = start_garbage_collector(client.clone());
    let (deleted, _recorder) = record_deletions(&client, "fg").await;

    config_maps
        .delete("owner", &DeleteParams::foreground())
        .await?;
    eventually("the blocking dependent to go", WAIT, || {
        gone(&config_maps, "blocking")
    })
    .await;
    eventually("the non-blocking dependent to go", WAIT, || {
        gone(&config_maps, "not-blocking")
    })
    .await;
    let lingering = eventually("the lingering dependent to be deleted", WAIT, || {
        let config_maps = config_maps.clone();
        async move {
            let lingering = config_maps.get_opt("lingering").await.ok()??;
            lingering
                .metadata
                .deletion_timestamp
                .is_some()
                .then_some(lingering)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = config_maps.get("owner").await?;
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );

    assert!(lingering.metadata.finalizers.is_some());
    config_maps
        .patch(
            "lingering",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    eventually("the owner to go", WAIT, || gone(&config_maps, "owner")).await;
    let order = eventually("the owner's deletion to be watched", WAIT, || {
        let deleted = deleted.clone();
        async move {
            let order = deleted.lock().unwrap().clone();
            order.contains(&"owner".to_string()).then_some(order)
        }
    })
    .await;
    assert_eq!(
        order.last().map(String::as_str),
        Some("owner"),
        "deletion order: {order:?}"
    );
    for dependent in ["blocking", "not-blocking", "lingering"] {
        assert!(
            order.contains(&dependent.to_string()),
            "deletion order: {order:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "orphans").await?;
    let owner = create_config_map(&client, "orphans", "owner", vec![]).await?;
    let other = create_config_map(&client, "orphans", "other", vec![]).await?;
    create_config_map(
        &client,
        "orphans",
        "child",
        vec![reference_to(&owner, true)],
    )
    .await?;
    create_config_map(
        &client,
        "orphans",
        "two-parents",
        vec![reference_to(&owner, false), reference_to(&other, false)],
    )
    .await?;
    let _gc = start_garbage_collector(client.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "orphans");
    config_maps
        .delete(
            "owner",
            &DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
                ..DeleteParams::default()
            },
        )
        .await?;
    eventually("the owner to go", WAIT, || gone(&config_maps, "owner")).await;
    let child = config_maps.get("child").await?;
    assert!(
        owner_uids(&child).is_empty(),
        "{:?}",
        child.metadata.owner_references
    );
    let two_parents = config_maps.get("two-parents").await?;
    assert_eq!(
        owner_uids(&two_parents),
        vec![other.metadata.uid.clone().unwrap()]
    );
    // And they stay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(config_maps.get_opt("child").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn kinds_known_only_from_discovery_are_collected_too() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "apps").await?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "apps");
    let replica_set = replica_sets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                    },
                },
            }))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    for name in ["web-1", "web-2"] {
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "labels": {"app": "web"},
                    "ownerReferences": [client::owners::controller_reference(&replica_set)],
                },
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            }))?,
        )
        .await?;
    }
    let _gc = start_garbage_collector(client.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pods.list(&ListParams::default()).await?.items.len(), 2);

    replica_sets
        .delete("web", &DeleteParams::foreground())
        .await?;
    eventually(
        "the replica set's pods and then the replica set to go",
        WAIT,
        || {
            let pods = pods.clone();
            let replica_sets = replica_sets.clone();
            async move {
                let left = pods.list(&ListParams::default()).await.ok()?.items.len();
                (left == 0).then_some(())?;
                gone(&replica_sets, "web").await
            }
        },
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn foreground_deletion_cascades_through_dependents_that_have_dependents() -> anyhow::Result<()>
{
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "chain").await?;
    let top = create_config_map(&client, "chain", "top", vec![]).await?;
    let middle =
        create_config_map(&client, "chain", "middle", vec![reference_to(&top, true)]).await?;
    create_config_map(
        &client,
        "chain",
        "bottom",
        vec![reference_to(&middle, true)],
    )
    .await?;
    let _gc = start_garbage_collector(client.clone());
    let (deleted, _recorder) = record_deletions(&client, "chain").await;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "chain");
    config_maps
        .delete("top", &DeleteParams::foreground())
        .await?;
    eventually("the top to go", WAIT, || gone(&config_maps, "top")).await;
    let order = eventually("all three deletions to be watched", WAIT, || {
        let deleted = deleted.clone();
        async move {
            let order = deleted.lock().unwrap().clone();
            (order.len() == 3).then_some(order)
        }
    })
    .await;
    assert_eq!(order, vec!["bottom", "middle", "top"]);
    Ok(())
}

#[tokio::test]
async fn foreground_deletion_spares_dependents_with_another_valid_owner() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "shared").await?;
    let doomed = create_config_map(&client, "shared", "doomed", vec![]).await?;
    let survivor = create_config_map(&client, "shared", "survivor", vec![]).await?;
    create_config_map(
        &client,
        "shared",
        "only-doomed",
        vec![reference_to(&doomed, true)],
    )
    .await?;
    create_config_map(
        &client,
        "shared",
        "both",
        vec![reference_to(&doomed, true), reference_to(&survivor, true)],
    )
    .await?;
    let _gc = start_garbage_collector(client.clone());

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "shared");
    config_maps
        .delete("doomed", &DeleteParams::foreground())
        .await?;
    eventually("the owner to go", WAIT, || gone(&config_maps, "doomed")).await;
    assert!(config_maps.get_opt("only-doomed").await?.is_none());
    let both = config_maps.get("both").await?;
    assert!(both.metadata.deletion_timestamp.is_none());
    assert_eq!(
        owner_uids(&both),
        vec![survivor.metadata.uid.clone().unwrap()]
    );
    Ok(())
}

#[tokio::test]
async fn a_dependency_cycle_does_not_block_foreground_deletion() -> anyhow::Result<()> {
    let cluster = testcluster::TestCluster::start().await?;
    let client = cluster.client();
    create_namespace(&client, "cycle").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "cycle");
    let mut created = Vec::new();
    for name in ["pod1", "pod2", "pod3"] {
        created.push(
            pods.create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                }))?,
            )
            .await?,
        );
    }
    // pod1 is owned by pod3, pod2 by pod1, pod3 by pod2.
    for (dependent, owner) in [(0, 2), (1, 0), (2, 1)] {
        let owner = &created[owner];
        let reference = owner_reference(
            "v1",
            "Pod",
            owner.metadata.name.as_deref().unwrap(),
            owner.metadata.uid.as_deref().unwrap(),
            true,
        );
        pods.patch(
            created[dependent].metadata.name.as_deref().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": [reference]}})),
        )
        .await?;
    }
    let _gc = start_garbage_collector(client.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    pods.delete("pod1", &DeleteParams::foreground()).await?;
    eventually("every pod of the cycle to go", WAIT, || {
        let pods = pods.clone();
        async move {
            let left = pods.list(&ListParams::default()).await.ok()?.items.len();
            (left == 0).then_some(())
        }
    })
    .await;
    Ok(())
}
