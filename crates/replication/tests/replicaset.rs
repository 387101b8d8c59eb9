//! ReplicaSet and ReplicationController controllers against a real API server: scaling, adoption, release, replacement, status and events.

mod common;

use std::time::Duration;

use common::{Env, NAMESPACE, Run, active_pods, all_pods, wait_for};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn replica_set(name: &str, app: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}, "annotations": {"note": "from-template"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap()
}

async fn status_of(env: &Env, name: &str) -> anyhow::Result<(i32, i32, i32, i32, i64)> {
    let rs = env.api::<ReplicaSet>().get(name).await?;
    let status = rs.status.unwrap_or_default();
    Ok((
        status.replicas,
        status.fully_labeled_replicas.unwrap_or(0),
        status.ready_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.observed_generation.unwrap_or(0),
    ))
}

async fn wait_status(env: &Env, name: &str, want: (i32, i32, i32, i32, i64)) -> anyhow::Result<()> {
    let result = wait_for(
        &format!("status {want:?}"),
        Duration::from_secs(10),
        || async { Ok((status_of(env, name).await? == want).then_some(())) },
    )
    .await;
    if result.is_err() {
        anyhow::bail!(
            "status {want:?} never reached; last {:?}",
            status_of(env, name).await?
        );
    }
    Ok(())
}

async fn scale(env: &Env, name: &str, replicas: i32) -> anyhow::Result<()> {
    env.api::<ReplicaSet>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_replica_set_scales_up_and_down_with_status_and_events() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets], all_pods()).await?;
    let api = env.api::<ReplicaSet>();
    api.create(&PostParams::default(), &replica_set("web", "web", 3))
        .await?;
    wait_status(&env, "web", (3, 3, 3, 3, 1)).await?;

    let pods = active_pods(&env.pods(), "web").await?;
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap();
        assert!(name.starts_with("web-"), "{name}");
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()["note"],
            "from-template"
        );
        let owner = client::owners::controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", "web")
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
    }

    scale(&env, "web", 5).await?;
    wait_status(&env, "web", (5, 5, 5, 5, 2)).await?;
    scale(&env, "web", 1).await?;
    wait_status(&env, "web", (1, 1, 1, 1, 3)).await?;
    assert_eq!(active_pods(&env.pods(), "web").await?.len(), 1);

    let created = wait_for("creation events", Duration::from_secs(5), || async {
        let notes = env.events("web", "SuccessfulCreate").await?;
        Ok((notes.iter().map(|(_, count)| count).sum::<i32>() >= 5).then_some(notes))
    })
    .await?;
    assert!(
        created
            .iter()
            .all(|(note, _)| note.starts_with("Created pod: web-")),
        "{created:?}"
    );
    let deleted = wait_for("deletion events", Duration::from_secs(5), || async {
        let notes = env.events("web", "SuccessfulDelete").await?;
        Ok((notes.iter().map(|(_, count)| count).sum::<i32>() >= 4).then_some(notes))
    })
    .await?;
    assert!(
        deleted
            .iter()
            .all(|(note, _)| note.starts_with("Deleted pod: web-")),
        "{deleted:?}"
    );
    Ok(())
}

fn orphan(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_replica_set_adopts_an_orphan_releases_a_relabelled_pod_and_replaces_a_deleted_one()
-> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets], all_pods()).await?;
    let pods = env.pods();
    pods.create(&PostParams::default(), &orphan("stray", "api"))
        .await?;
    env.api::<ReplicaSet>()
        .create(&PostParams::default(), &replica_set("api", "api", 2))
        .await?;
    wait_status(&env, "api", (2, 2, 2, 2, 1)).await?;
    // The orphan counts: only one pod was created.
    let stray = pods.get("stray").await?;
    let owner = client::owners::controller_of(&stray.metadata).expect("adopted");
    assert_eq!(owner.name, "api");
    assert_eq!(active_pods(&pods, "api").await?.len(), 2);

    // Relabelled out of the selector: released, and replaced.
    pods.patch(
        "stray",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})),
    )
    .await?;
    wait_for("release", Duration::from_secs(10), || async {
        let stray = pods.get("stray").await?;
        Ok(client::owners::controller_of(&stray.metadata)
            .is_none()
            .then_some(()))
    })
    .await?;
    wait_for("replacement", Duration::from_secs(10), || async {
        Ok((active_pods(&pods, "api").await?.len() == 2).then_some(()))
    })
    .await?;

    // Deleted: recreated.
    let victim = active_pods(&pods, "api").await?[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.delete(&victim, &DeleteParams::default()).await?;
    wait_for("recreation", Duration::from_secs(10), || async {
        let now = active_pods(&pods, "api").await?;
        Ok((now.len() == 2
            && now
                .iter()
                .all(|p| p.metadata.name.as_deref() != Some(&victim)))
        .then_some(()))
    })
    .await?;
    wait_status(&env, "api", (2, 2, 2, 2, 1)).await?;
    // Nothing more was made than needed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(active_pods(&pods, "api").await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn available_replicas_wait_for_min_ready_seconds() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets], all_pods()).await?;
    let mut rs = replica_set("slow", "slow", 2);
    rs.spec.min_ready_seconds = Some(2);
    env.api::<ReplicaSet>()
        .create(&PostParams::default(), &rs)
        .await?;
    wait_status(&env, "slow", (2, 2, 2, 0, 1)).await?;
    let ready_at = std::time::Instant::now();
    wait_status(&env, "slow", (2, 2, 2, 2, 1)).await?;
    let waited = ready_at.elapsed();
    assert!(
        waited > Duration::from_millis(500),
        "available after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "available after {waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fully_labeled_counts_pods_with_all_template_labels() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets], all_pods()).await?;
    let mut rs = replica_set("lbl", "lbl", 2);
    rs.spec
        .template
        .as_mut()
        .unwrap()
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "front".into());
    env.api::<ReplicaSet>()
        .create(&PostParams::default(), &rs)
        .await?;
    wait_status(&env, "lbl", (2, 2, 2, 2, 1)).await?;
    let pod = active_pods(&env.pods(), "lbl").await?[0]
        .metadata
        .name
        .clone()
        .unwrap();
    // Still selected (app=lbl) but missing a template label.
    env.pods()
        .patch(
            &pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": null}}})),
        )
        .await?;
    wait_status(&env, "lbl", (2, 1, 2, 2, 1)).await?;
    Ok(())
}

#[tokio::test]
async fn a_replication_controller_keeps_its_pods() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicationControllers], all_pods()).await?;
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "legacy", "namespace": NAMESPACE},
        "spec": {
            "replicas": 3,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))?;
    let api = env.api::<ReplicationController>();
    api.create(&PostParams::default(), &rc).await?;
    wait_for("rc status", Duration::from_secs(10), || async {
        let status = api.get("legacy").await?.status.unwrap_or_default();
        Ok((status.replicas == 3
            && status.ready_replicas == Some(3)
            && status.available_replicas == Some(3)
            && status.fully_labeled_replicas == Some(3)
            && status.observed_generation == Some(1))
        .then_some(()))
    })
    .await?;
    let pods = active_pods(&env.pods(), "legacy").await?;
    assert_eq!(pods.len(), 3);
    let owner = client::owners::controller_of(&pods[0].metadata).unwrap();
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str()),
        ("v1", "ReplicationController")
    );
    api.patch(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    wait_for("rc scaled down", Duration::from_secs(10), || async {
        Ok((active_pods(&env.pods(), "legacy").await?.len() == 1).then_some(()))
    })
    .await?;
    Ok(())
}
