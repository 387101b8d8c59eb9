//! The StatefulSet controller against a real API server: ordered and parallel creation, scale down from the top, rolling updates with a partition, revisions, claims and recreation; the test plays the kubelet.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{Change, Informers};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use testcluster::TestCluster;

const WAIT: Duration = Duration::from_secs(15);

struct Harness {
    _cluster: TestCluster,
    client: Client,
    _controller: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self._controller.abort();
    }
}

async fn start() -> Harness {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let informers = Arc::new(Informers::new(client.clone()));
    let controller = tokio::spawn({
        let client = client.clone();
        async move {
            statefulset::run(client, informers, 2).await.unwrap();
        }
    });
    Harness {
        _cluster: cluster,
        client,
        _controller: controller,
    }
}

fn stateful_set(replicas: i32, policy: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "podManagementPolicy": policy,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .unwrap()
}

async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pod_names(pods: &Api<Pod>) -> BTreeSet<String> {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

/// What a kubelet reports once the pod's containers run and pass readiness.
async fn mark_running_and_ready(pods: &Api<Pod>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// A kubelet for every pod: marks whatever is pending Running and Ready.
fn auto_kubelet(pods: Api<Pod>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for pod in list.items {
                    let pending =
                        pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
                    if pending && pod.metadata.deletion_timestamp.is_none() {
                        let now = k8s_openapi::jiff::Timestamp::now().to_string();
                        let status = json!({"status": {"phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                        let _ = pods
                            .patch_status(
                                pod.metadata.name.as_deref().unwrap(),
                                &PatchParams::default(),
                                &Patch::Merge(status),
                            )
                            .await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Pod names in the order their deletion was observed.
fn record_deletions(client: Client) -> (Arc<Mutex<Vec<String>>>, Informers) {
    let informers = Informers::new(client);
    let pods = informers.informer::<Pod>();
    informers.start();
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let mut changes = pods.subscribe();
    let sink = deleted.clone();
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            if let Change::Deleted(pod) = change {
                sink.lock()
                    .unwrap()
                    .push(pod.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    (deleted, informers)
}

/// The message of the first event with `reason` about the StatefulSet.
async fn wait_for_event(client: &Client, reason: &str) -> String {
    let events: Api<Event> = Api::default_namespaced(client.clone());
    wait_for(reason, || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.involved_object.kind.as_deref() == Some("StatefulSet")
            })
            .and_then(|e| e.message)
    })
    .await
}

fn revision_label(pod: &Pod) -> String {
    pod.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone()
}

async fn status(sets: &Api<StatefulSet>) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
    sets.get("web").await.unwrap().status.unwrap_or_default()
}

#[tokio::test]
async fn ordered_ready_creates_in_order_recreates_and_scales_down_from_the_top() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(harness.client.clone());
    sets.create(&PostParams::default(), &stateful_set(3, "OrderedReady"))
        .await
        .unwrap();

    for ordinal in 0..3 {
        let name = format!("web-{ordinal}");
        let pod = wait_for(&name, || async { pods.get_opt(&name).await.unwrap() }).await;
        // The next ordinal waits for this one to be Running and Ready.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let expected: BTreeSet<String> = (0..=ordinal).map(|i| format!("web-{i}")).collect();
        assert_eq!(
            pod_names(&pods).await,
            expected,
            "only up to {name} before it is ready"
        );

        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], ordinal.to_string());
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let claim_name = format!("www-web-{ordinal}");
        let volume = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "www")
            .unwrap();
        assert_eq!(
            volume.persistent_volume_claim.unwrap().claim_name,
            claim_name
        );
        let claim = claims
            .get(&claim_name)
            .await
            .expect("the claim exists before the pod runs");
        assert_eq!(claim.metadata.labels.unwrap()["app"], "web");
        let owner = client::owners::controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("StatefulSet", "web")
        );

        mark_running_and_ready(&pods, &name).await;
    }

    let ready = wait_for("3 ready replicas", || async {
        let status = status(&sets).await;
        (status.ready_replicas == Some(3) && status.current_revision.is_some()).then_some(status)
    })
    .await;
    assert_eq!(ready.replicas, 3);
    assert_eq!(ready.current_replicas, Some(3));
    assert_eq!(ready.updated_replicas, Some(3));
    assert_eq!(ready.available_replicas, Some(3));
    assert_eq!(ready.current_revision, ready.update_revision);
    assert_eq!(ready.observed_generation, Some(1));
    assert_eq!(ready.collision_count, Some(0));
    let revision = ready.current_revision.clone().unwrap();
    assert!(revision.starts_with("web-"));
    let web0 = pods.get("web-0").await.unwrap();
    assert_eq!(revision_label(&web0), revision);

    // The client's recorder folds events of one reason into a series that
    // keeps the first note: the claim's creation, which precedes web-0's.
    let created = wait_for_event(&harness.client, "SuccessfulCreate").await;
    assert_eq!(
        created,
        "create Claim www-web-0 Pod web-0 in StatefulSet web success"
    );

    // A deleted pod comes back under the same name, with the same claim.
    let old_uid = pods.get("web-1").await.unwrap().metadata.uid;
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    let recreated = wait_for("web-1 recreated", || async {
        pods.get_opt("web-1")
            .await
            .unwrap()
            .filter(|p| p.metadata.uid != old_uid)
    })
    .await;
    let volume = recreated
        .spec
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "www")
        .unwrap();
    assert_eq!(
        volume.persistent_volume_claim.unwrap().claim_name,
        "www-web-1"
    );
    mark_running_and_ready(&pods, "web-1").await;

    // Scale down: the highest ordinal goes first.
    let (deleted, _watch) = record_deletions(harness.client.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_for("scale down to web-0", || async {
        (pod_names(&pods).await == BTreeSet::from(["web-0".to_string()])).then_some(())
    })
    .await;
    wait_for("both deletions observed", || async {
        (deleted.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        deleted.lock().unwrap()[..2],
        ["web-2".to_string(), "web-1".to_string()]
    );
    // Claims stay (whenScaled: Retain).
    assert!(claims.get_opt("www-web-2").await.unwrap().is_some());
    let deleted_event = wait_for_event(&harness.client, "SuccessfulDelete").await;
    assert_eq!(
        deleted_event,
        "delete Pod web-2 in StatefulSet web successful"
    );
    let scaled = wait_for("status of 1 replica", || async {
        let status = status(&sets).await;
        (status.replicas == 1).then_some(status)
    })
    .await;
    assert_eq!(scaled.ready_replicas, Some(1));
}

#[tokio::test]
async fn an_unready_pod_halts_ordered_creation() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let mut set = stateful_set(2, "OrderedReady");
    set.spec.volume_claim_templates = None;
    sets.create(&PostParams::default(), &set).await.unwrap();
    wait_for("web-0", || async { pods.get_opt("web-0").await.unwrap() }).await;
    let created = wait_for_event(&harness.client, "SuccessfulCreate").await;
    assert_eq!(created, "create Pod web-0 in StatefulSet web successful");
    // Running but not Ready: web-1 must not appear.
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}]}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        pod_names(&pods).await,
        BTreeSet::from(["web-0".to_string()])
    );
    mark_running_and_ready(&pods, "web-0").await;
    wait_for("web-1", || async { pods.get_opt("web-1").await.unwrap() }).await;
}

#[tokio::test]
async fn parallel_creates_every_pod_at_once() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(harness.client.clone());
    sets.create(&PostParams::default(), &stateful_set(3, "Parallel"))
        .await
        .unwrap();
    // No pod is ever ready, yet all three are created.
    wait_for("three pods", || async {
        (pod_names(&pods).await.len() == 3).then_some(())
    })
    .await;
    let claim_names: BTreeSet<String> = claims
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(
        claim_names,
        ["www-web-0", "www-web-1", "www-web-2"]
            .map(String::from)
            .into()
    );
    let status = wait_for("replicas 3", || async {
        let status = status(&sets).await;
        (status.replicas == 3).then_some(status)
    })
    .await;
    assert_eq!(status.ready_replicas, Some(0));
}

#[tokio::test]
async fn a_rolling_update_replaces_from_the_highest_ordinal_and_honours_the_partition() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let revisions: Api<ControllerRevision> = Api::default_namespaced(harness.client.clone());
    let kubelet = auto_kubelet(pods.clone());
    sets.create(&PostParams::default(), &stateful_set(3, "OrderedReady"))
        .await
        .unwrap();
    let first = wait_for("3 ready", || async {
        let status = status(&sets).await;
        (status.ready_replicas == Some(3)).then_some(status)
    })
    .await;
    let revision_one = first.current_revision.clone().unwrap();

    let (deleted, _watch) = record_deletions(harness.client.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}})),
    )
    .await
    .unwrap();
    let partial = wait_for("web-1 and web-2 updated", || async {
        let status = status(&sets).await;
        (status.updated_replicas == Some(2) && status.ready_replicas == Some(3)).then_some(status)
    })
    .await;
    let revision_two = partial.update_revision.clone().unwrap();
    assert_ne!(revision_one, revision_two);
    assert_eq!(
        partial.current_revision.as_deref(),
        Some(revision_one.as_str())
    );
    assert_eq!(
        deleted.lock().unwrap()[..],
        ["web-2".to_string(), "web-1".to_string()]
    );
    assert_eq!(
        revision_label(&pods.get("web-0").await.unwrap()),
        revision_one,
        "below the partition"
    );
    assert_eq!(
        revision_label(&pods.get("web-1").await.unwrap()),
        revision_two
    );
    let image = pods.get("web-2").await.unwrap().spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("nginx:1.26"));

    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .unwrap();
    let done = wait_for("rollout complete", || async {
        let status = status(&sets).await;
        (status.current_revision.as_deref() == Some(revision_two.as_str())
            && status.ready_replicas == Some(3)
            && status.updated_replicas == Some(3))
        .then_some(status)
    })
    .await;
    assert_eq!(done.current_replicas, Some(3));
    assert_eq!(
        deleted.lock().unwrap().last().map(String::as_str),
        Some("web-0")
    );

    let mut history: Vec<(String, i64)> = revisions
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| (r.metadata.name.unwrap(), r.revision.unwrap_or_default()))
        .collect();
    history.sort_by_key(|(_, number)| *number);
    assert_eq!(
        history,
        [(revision_one.clone(), 1), (revision_two.clone(), 2)]
    );

    // Going back to the first template is a rollback to revision one,
    // renumbered 3, not a new revision.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}})),
    )
    .await
    .unwrap();
    wait_for("rolled back", || async {
        let status = status(&sets).await;
        (status.current_revision.as_deref() == Some(revision_one.as_str())
            && status.updated_replicas == Some(3))
        .then_some(())
    })
    .await;
    let rolled_back = revisions.get(&revision_one).await.unwrap();
    assert_eq!(rolled_back.revision, Some(3));
    assert_eq!(
        revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    kubelet.abort();
}

#[tokio::test]
async fn start_ordinal_and_on_delete_strategy() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let kubelet = auto_kubelet(pods.clone());
    let mut set = stateful_set(2, "Parallel");
    set.spec.ordinals = Some(k8s_openapi::api::apps::v1::StatefulSetOrdinals { start: Some(5) });
    set.spec.update_strategy = Some(k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    sets.create(&PostParams::default(), &set).await.unwrap();
    let first = wait_for("2 ready", || async {
        let status = status(&sets).await;
        (status.ready_replicas == Some(2)).then_some(status)
    })
    .await;
    assert_eq!(
        pod_names(&pods).await,
        ["web-5", "web-6"].map(String::from).into()
    );
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}}),
        ),
    )
    .await
    .unwrap();
    let pending_update = wait_for("a new update revision", || async {
        let status = status(&sets).await;
        (status.update_revision != first.update_revision).then_some(status)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status(&sets).await.updated_replicas,
        Some(0),
        "OnDelete replaces nothing by itself"
    );
    let old_uid = pods.get("web-6").await.unwrap().metadata.uid;
    pods.delete("web-6", &DeleteParams::default())
        .await
        .unwrap();
    let replaced = wait_for("web-6 recreated", || async {
        pods.get_opt("web-6")
            .await
            .unwrap()
            .filter(|p| p.metadata.uid != old_uid)
    })
    .await;
    assert_eq!(
        Some(revision_label(&replaced)),
        pending_update.update_revision
    );
    assert_eq!(replaced.metadata.labels.unwrap()["v"], "2");
    kubelet.abort();
}

#[tokio::test]
async fn claims_follow_the_retention_policy() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(harness.client.clone());
    let kubelet = auto_kubelet(pods.clone());
    let mut set = stateful_set(2, "Parallel");
    set.spec.persistent_volume_claim_retention_policy = Some(
        k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some("Delete".into()),
            when_scaled: Some("Delete".into()),
        },
    );
    let created = sets.create(&PostParams::default(), &set).await.unwrap();
    let set_uid = created.metadata.uid.clone().unwrap();
    wait_for("2 ready", || async {
        (status(&sets).await.ready_replicas == Some(2)).then_some(())
    })
    .await;
    // Replicas in range: the claim belongs to the set (deleted with it).
    let owners = |claim: PersistentVolumeClaim| {
        claim
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.kind, o.name, o.uid, o.controller))
            .collect::<Vec<_>>()
    };
    let claim = claims.get("www-web-0").await.unwrap();
    assert_eq!(
        owners(claim),
        [(
            "StatefulSet".to_string(),
            "web".to_string(),
            set_uid.clone(),
            Some(true)
        )]
    );
    // Scaled down: the condemned pod's claim moves to the pod, so it goes
    // with the pod.
    let web1_uid = pods.get("web-1").await.unwrap().metadata.uid.unwrap();
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let moved = wait_for("www-web-1 owned by its pod", || async {
        let claim = claims.get("www-web-1").await.unwrap();
        let owners = owners(claim);
        owners
            .iter()
            .any(|(kind, _, _, _)| kind == "Pod")
            .then_some(owners)
    })
    .await;
    assert_eq!(
        moved,
        [("Pod".to_string(), "web-1".to_string(), web1_uid, Some(true))]
    );
    kubelet.abort();
}

#[tokio::test]
async fn orphans_are_adopted_and_mismatching_pods_released() {
    let harness = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(harness.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(harness.client.clone());
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
    }))
    .unwrap();
    let orphan_uid = pods
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap()
        .metadata
        .uid;
    let mut set = stateful_set(1, "OrderedReady");
    set.spec.volume_claim_templates = None;
    sets.create(&PostParams::default(), &set).await.unwrap();
    let adopted = wait_for("web-0 adopted", || async {
        let pod = pods.get("web-0").await.unwrap();
        client::owners::controller_of(&pod.metadata)
            .is_some()
            .then_some(pod)
    })
    .await;
    assert_eq!(adopted.metadata.uid, orphan_uid, "adopted, not replaced");
    assert_eq!(
        client::owners::controller_of(&adopted.metadata)
            .unwrap()
            .name,
        "web"
    );

    pods.patch(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    wait_for("web-0 released", || async {
        let pod = pods.get("web-0").await.unwrap();
        client::owners::controller_of(&pod.metadata)
            .is_none()
            .then_some(())
    })
    .await;
}
