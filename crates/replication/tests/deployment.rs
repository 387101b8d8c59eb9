//! The Deployment controller against a real API server: rolling updates within surge and unavailability bounds, rollback, Recreate, progress deadlines, pausing, proportional scaling and history cleanup.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, NAMESPACE, ReadyFilter, Run, all_pods, wait_for};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use replication::deployment::util::{
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, annotation,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

fn deployment(name: &str, replicas: i32, strategy: Value, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }))
    .unwrap()
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

async fn set_image(env: &Env, name: &str, image: &str) -> anyhow::Result<()> {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    env.api::<Deployment>()
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))?;
    Some((
        c.status.clone().unwrap_or_default(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

/// Waits until the Deployment's latest rollout is complete and available.
async fn wait_complete(env: &Env, name: &str, replicas: i32) -> anyhow::Result<Deployment> {
    let api = env.api::<Deployment>();
    let result = wait_for("rollout complete", Duration::from_secs(20), || async {
        let d = api.get(name).await?;
        let status = d.status.clone().unwrap_or_default();
        let done = status.observed_generation == d.metadata.generation
            && status.updated_replicas.unwrap_or(0) == replicas
            && status.replicas.unwrap_or(0) == replicas
            && status.available_replicas.unwrap_or(0) == replicas
            && condition(&d, "Progressing").is_some_and(|c| c.1 == "NewReplicaSetAvailable")
            && condition(&d, "Available").is_some_and(|c| c.0 == "True");
        Ok(done.then_some(d))
    })
    .await;
    match result {
        Ok(d) => Ok(d),
        Err(error) => {
            let d = api.get(name).await?;
            anyhow::bail!("{error}: {:?}", d.status)
        }
    }
}

async fn replica_sets(env: &Env) -> anyhow::Result<Vec<ReplicaSet>> {
    Ok(env
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await?
        .items)
}

fn replicas_of(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

fn revision_of(rs: &ReplicaSet) -> Option<&str> {
    annotation(&rs.metadata.annotations, REVISION_ANNOTATION)
}

fn hash_of(pod: &Pod) -> String {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL).cloned())
        .unwrap_or_default()
}

/// Watches a Deployment's pods and records the extremes of what existed.
#[derive(Default)]
struct Samples {
    pods: HashMap<String, Pod>,
    max_total: usize,
    min_available: usize,
    /// A pod of a new template appeared while pods of another still ran.
    overlapping_templates: bool,
    events: usize,
}

struct Sampler {
    samples: Arc<Mutex<Samples>>,
    task: JoinHandle<()>,
}

impl Sampler {
    async fn start(env: &Env, app: &str) -> anyhow::Result<Sampler> {
        let api: Api<Pod> = env.pods();
        let samples = Arc::new(Mutex::new(Samples {
            min_available: usize::MAX,
            ..Samples::default()
        }));
        let config = watcher::Config::default().labels(&format!("app={app}"));
        let mut stream = watcher(api, config).boxed();
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let shared = samples.clone();
        let task = tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            while let Some(Ok(event)) = stream.next().await {
                let mut samples = shared.lock().unwrap();
                match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        let is_new = !samples
                            .pods
                            .contains_key(pod.metadata.uid.as_deref().unwrap_or_default());
                        let hash = hash_of(&pod);
                        if is_new
                            && synced.is_none()
                            && samples
                                .pods
                                .values()
                                .any(|p| hash_of(p) != hash && replication::pods::is_active(p))
                        {
                            samples.overlapping_templates = true;
                        }
                        samples
                            .pods
                            .insert(pod.metadata.uid.clone().unwrap_or_default(), pod);
                    }
                    watcher::Event::Delete(pod) => {
                        samples
                            .pods
                            .remove(pod.metadata.uid.as_deref().unwrap_or_default());
                    }
                    watcher::Event::InitDone => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Init => {}
                }
                let active: Vec<&Pod> = samples
                    .pods
                    .values()
                    .filter(|p| replication::pods::is_active(p))
                    .collect();
                let total = active.len();
                let available = active
                    .iter()
                    .filter(|p| replication::pods::is_ready(p))
                    .count();
                if synced.is_none() {
                    samples.max_total = samples.max_total.max(total);
                    samples.min_available = samples.min_available.min(available);
                    samples.events += 1;
                }
            }
        });
        synced_rx.await?;
        Ok(Sampler { samples, task })
    }

    fn finish(self) -> (usize, usize, bool, usize) {
        self.task.abort();
        let samples = self.samples.lock().unwrap();
        (
            samples.max_total,
            samples.min_available,
            samples.overlapping_templates,
            samples.events,
        )
    }
}

#[tokio::test]
async fn rolling_update_with_surge_one_stays_in_bounds_and_rolls_back_to_the_old_replica_set()
-> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], all_pods()).await?;
    let api = env.api::<Deployment>();
    api.create(
        &PostParams::default(),
        &deployment("web", 4, rolling(json!(1), json!(0)), "nginx:1"),
    )
    .await?;
    let d = wait_complete(&env, "web", 4).await?;
    assert_eq!(
        annotation(&d.metadata.annotations, REVISION_ANNOTATION),
        Some("1")
    );
    let first = replica_sets(&env).await?;
    assert_eq!(first.len(), 1);
    let first = first.into_iter().next().unwrap();
    let first_name = first.metadata.name.clone().unwrap();
    let first_hash = first.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL].clone();
    assert_eq!(first_name, format!("web-{first_hash}"));
    assert_eq!(
        first.spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL],
        first_hash
    );
    assert_eq!(revision_of(&first), Some("1"));
    assert_eq!(
        annotation(
            &first.metadata.annotations,
            "deployment.kubernetes.io/desired-replicas"
        ),
        Some("4")
    );
    assert_eq!(
        annotation(
            &first.metadata.annotations,
            "deployment.kubernetes.io/max-replicas"
        ),
        Some("5")
    );

    let sampler = Sampler::start(&env, "web").await?;
    set_image(&env, "web", "nginx:2").await?;
    let d = wait_complete(&env, "web", 4).await?;
    let (max_total, min_available, _, events) = sampler.finish();
    assert!(events > 0);
    assert!(
        max_total <= 5,
        "total reached {max_total}, above replicas + maxSurge"
    );
    assert!(
        min_available >= 4,
        "available fell to {min_available}, below replicas - maxUnavailable"
    );
    assert_eq!(
        annotation(&d.metadata.annotations, REVISION_ANNOTATION),
        Some("2")
    );
    let sets = replica_sets(&env).await?;
    assert_eq!(sets.len(), 2);
    let second = sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() != Some(&first_name))
        .unwrap();
    let second_name = second.metadata.name.clone().unwrap();
    assert_eq!((replicas_of(second), revision_of(second)), (4, Some("2")));
    let old = sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&first_name))
        .unwrap();
    assert_eq!(replicas_of(old), 0);
    // The client's recorder folds events of one reason into a series that
    // keeps the first note, so only the first text is visible.
    let scaling = env.events("web", "ScalingReplicaSet").await?;
    let notes: Vec<&str> = scaling.iter().map(|(note, _)| note.as_str()).collect();
    assert!(
        notes.contains(&format!("Scaled up replica set {first_name} from 0 to 4").as_str()),
        "{notes:?}"
    );
    let scalings: i32 = scaling.iter().map(|(_, count)| count).sum();
    // 0->4, then per step one up and one down: at least 8 more.
    assert!(scalings >= 9, "{scalings} scaling events");

    // kubectl rollout undo: the template of revision 1, hash label removed.
    let mut template = serde_json::to_value(first.spec.template.clone().unwrap())?;
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(POD_TEMPLATE_HASH_LABEL);
    let undo = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::<()>::Json(serde_json::from_value(undo)?),
    )
    .await?;
    let d = wait_complete(&env, "web", 4).await?;
    let sets = replica_sets(&env).await?;
    assert_eq!(
        sets.len(),
        2,
        "the old ReplicaSet is reused, not a new one made"
    );
    let back = sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&first_name))
        .unwrap();
    assert_eq!((replicas_of(back), revision_of(back)), (4, Some("3")));
    assert_eq!(
        annotation(&back.metadata.annotations, REVISION_HISTORY_ANNOTATION),
        Some("1")
    );
    let rolled_off = sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&second_name))
        .unwrap();
    assert_eq!(replicas_of(rolled_off), 0);
    assert_eq!(
        annotation(&d.metadata.annotations, REVISION_ANNOTATION),
        Some("3")
    );
    Ok(())
}

#[tokio::test]
async fn rolling_update_by_percentages_stays_in_bounds_and_cleans_up_history() -> anyhow::Result<()>
{
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], all_pods()).await?;
    let api = env.api::<Deployment>();
    let mut d = deployment("pct", 8, rolling(json!("25%"), json!("25%")), "app:1");
    d.spec.revision_history_limit = Some(1);
    api.create(&PostParams::default(), &d).await?;
    wait_complete(&env, "pct", 8).await?;
    let sampler = Sampler::start(&env, "pct").await?;
    set_image(&env, "pct", "app:2").await?;
    wait_complete(&env, "pct", 8).await?;
    set_image(&env, "pct", "app:3").await?;
    let d = wait_complete(&env, "pct", 8).await?;
    let (max_total, min_available, _, _) = sampler.finish();
    // 25% of 8: surge 2, unavailable 2.
    assert!(max_total <= 10, "total reached {max_total}");
    assert!(min_available >= 6, "available fell to {min_available}");
    assert_eq!(
        annotation(&d.metadata.annotations, REVISION_ANNOTATION),
        Some("3")
    );
    // revisionHistoryLimit 1: revision 1's ReplicaSet is deleted.
    let sets = wait_for("history cleanup", Duration::from_secs(10), || async {
        let sets = replica_sets(&env).await?;
        Ok((sets.len() == 2).then_some(sets))
    })
    .await?;
    let mut revisions: Vec<(Option<String>, i32)> = sets
        .iter()
        .map(|rs| (revision_of(rs).map(str::to_string), replicas_of(rs)))
        .collect();
    revisions.sort();
    assert_eq!(revisions, [(Some("2".into()), 0), (Some("3".into()), 8)]);
    Ok(())
}

#[tokio::test]
async fn recreate_removes_every_old_pod_before_creating_new_ones() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], all_pods()).await?;
    let api = env.api::<Deployment>();
    api.create(
        &PostParams::default(),
        &deployment("re", 3, json!({"type": "Recreate"}), "db:1"),
    )
    .await?;
    wait_complete(&env, "re", 3).await?;
    let sampler = Sampler::start(&env, "re").await?;
    set_image(&env, "re", "db:2").await?;
    let d = wait_complete(&env, "re", 3).await?;
    let (max_total, _, overlapping, events) = sampler.finish();
    assert!(events > 0);
    assert!(
        !overlapping,
        "a new pod was created while old pods still existed"
    );
    assert!(max_total <= 3, "total reached {max_total}");
    assert_eq!(
        annotation(&d.metadata.annotations, REVISION_ANNOTATION),
        Some("2")
    );
    Ok(())
}

#[tokio::test]
async fn a_rollout_without_ready_pods_exceeds_its_progress_deadline() -> anyhow::Result<()> {
    // No kubelet: pods never become ready.
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], None).await?;
    let api = env.api::<Deployment>();
    let mut d = deployment("stuck", 2, rolling(json!("25%"), json!("25%")), "never:1");
    d.spec.progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await?;
    let d = wait_for("progress deadline", Duration::from_secs(15), || async {
        let d = api.get("stuck").await?;
        Ok(condition(&d, "Progressing")
            .is_some_and(|c| c.0 == "False" && c.1 == "ProgressDeadlineExceeded")
            .then_some(d))
    })
    .await?;
    let rs_name = replica_sets(&env).await?[0].metadata.name.clone().unwrap();
    assert_eq!(
        condition(&d, "Progressing").unwrap().2,
        format!("ReplicaSet \"{rs_name}\" has timed out progressing.")
    );
    assert_eq!(
        condition(&d, "Available").map(|c| (c.0, c.1)),
        Some(("False".into(), "MinimumReplicasUnavailable".into()))
    );
    let status = d.status.unwrap();
    assert_eq!(
        (status.replicas, status.unavailable_replicas),
        (Some(2), Some(2))
    );
    Ok(())
}

#[tokio::test]
async fn a_paused_deployment_does_not_roll_out_until_resumed() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], all_pods()).await?;
    let api = env.api::<Deployment>();
    api.create(
        &PostParams::default(),
        &deployment("pause", 2, rolling(json!(1), json!(0)), "p:1"),
    )
    .await?;
    wait_complete(&env, "pause", 2).await?;
    api.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await?;
    wait_for("paused condition", Duration::from_secs(10), || async {
        let d = api.get("pause").await?;
        Ok(condition(&d, "Progressing")
            .is_some_and(|c| c.0 == "Unknown" && c.1 == "DeploymentPaused")
            .then_some(()))
    })
    .await?;
    set_image(&env, "pause", "p:2").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replica_sets(&env).await?.len(),
        1,
        "no rollout while paused"
    );
    api.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await?;
    wait_complete(&env, "pause", 2).await?;
    assert_eq!(replica_sets(&env).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn scaling_mid_rollout_is_spread_in_proportion() -> anyhow::Result<()> {
    // Only the first template's pods ever become ready, so the rollout
    // stalls with both ReplicaSets active.
    let first_only: ReadyFilter = Arc::new(|pod: &Pod| {
        pod.spec
            .as_ref()
            .is_some_and(|s| s.containers[0].image.as_deref() == Some("prop:1"))
    });
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], Some(first_only)).await?;
    let api = env.api::<Deployment>();
    api.create(
        &PostParams::default(),
        &deployment("prop", 10, rolling(json!(3), json!(2)), "prop:1"),
    )
    .await?;
    wait_complete(&env, "prop", 10).await?;
    set_image(&env, "prop", "prop:2").await?;
    // Surge 3, unavailable 2: old 10 -> 8, new 0 -> 5, then stuck.
    let sizes = || async {
        let mut sizes: Vec<(String, i32)> = replica_sets(&env)
            .await?
            .iter()
            .map(|rs| {
                (
                    rs.spec
                        .template
                        .as_ref()
                        .unwrap()
                        .spec
                        .as_ref()
                        .unwrap()
                        .containers[0]
                        .image
                        .clone()
                        .unwrap(),
                    replicas_of(rs),
                )
            })
            .collect();
        sizes.sort();
        anyhow::Ok(sizes)
    };
    wait_for("stalled rollout", Duration::from_secs(10), || async {
        Ok(
            (sizes().await? == [("prop:1".to_string(), 8), ("prop:2".to_string(), 5)])
                .then_some(()),
        )
    })
    .await?;
    api.patch(
        "prop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 20}})),
    )
    .await?;
    // 23 allowed (20 + surge 3), 10 more spread by size: round(8*23/13) = 14
    // and round(5*23/13) = 9.
    let result = wait_for("proportional scale", Duration::from_secs(10), || async {
        Ok(
            (sizes().await? == [("prop:1".to_string(), 14), ("prop:2".to_string(), 9)])
                .then_some(()),
        )
    })
    .await;
    if result.is_err() {
        anyhow::bail!("sizes now {:?}", sizes().await?);
    }
    Ok(())
}
