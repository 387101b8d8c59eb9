//! End to end with kube-rs: `krust server` on loopback, driven by a typed `kube::Client` (CRUD, patches, errors, subresources) and kube-runtime's watcher and reflector.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bench::server::KrustServer;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

/// How long any single expected outcome (a response, a watch event, a store
/// converging) may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(15);

/// A `krust server` with a kube-rs client built from the admin kubeconfig it writes.
async fn start() -> (KrustServer, Client) {
    // The API server alone: these tests write Deployment status and watch
    // pods themselves, which the controllers and the scheduler (its
    // PodScheduled conditions, with no nodes) would change under them.
    let server = KrustServer::start(
        Path::new(env!("CARGO_BIN_EXE_krust")),
        tempfile::tempdir().unwrap(),
        &["--disable", "scheduler,controllers"],
    )
    .unwrap();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    (server, client)
}

/// Awaits `future`, failing the test after [`PATIENCE`] naming what was awaited.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The HTTP code and reason of a failed call, which must be an API error.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn config_map(name: &str, label_pairs: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(label_pairs)),
            ..Default::default()
        },
        data: Some(labels(data)),
        ..Default::default()
    }
}

fn pod(name: &str, label_pairs: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels(label_pairs)},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }))
    .unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "busybox:1.36"},
                ]},
            },
        },
    }))
    .unwrap()
}

fn names<'a>(objects: impl IntoIterator<Item = &'a ConfigMap>) -> Vec<String> {
    let mut names: Vec<String> = objects.into_iter().map(ResourceExt::name_any).collect();
    names.sort();
    names
}

#[tokio::test]
async fn config_maps_round_trip_through_the_typed_api() {
    let (_server, client) = start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let post = PostParams::default();

    let created = config_maps
        .create(
            &post,
            &config_map("settings", &[("tier", "web")], &[("mode", "fast")]),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some(), "the server assigns a uid");
    assert!(created.metadata.creation_timestamp.is_some());
    let fetched = config_maps.get("settings").await.unwrap();
    assert_eq!(fetched.data, Some(labels(&[("mode", "fast")])));
    assert_eq!(fetched.resource_version(), created.resource_version());

    for index in 0..5 {
        config_maps
            .create(
                &post,
                &config_map(&format!("paged-{index}"), &[("tier", "batch")], &[]),
            )
            .await
            .unwrap();
    }

    // A label selector picks out only the matching objects.
    let web = config_maps
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(names(&web.items), ["settings"]);

    // Pages of two, followed through continue tokens, cover the selection exactly once.
    let mut page_sizes = Vec::new();
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().labels("tier=batch").limit(2);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = config_maps.list(&params).await.unwrap();
        page_sizes.push(page.items.len());
        paged.extend(page.items);
        token = page.metadata.continue_.filter(|token| !token.is_empty());
        if token.is_none() {
            break;
        }
        assert!(page_sizes.len() < 10, "pagination does not terminate");
    }
    assert_eq!(page_sizes, [2, 2, 1]);
    assert_eq!(
        names(&paged),
        ["paged-0", "paged-1", "paged-2", "paged-3", "paged-4"]
    );

    // Replace, then replace again from the now stale copy: a 409 Conflict.
    let mut changed = fetched.clone();
    changed
        .data
        .get_or_insert_default()
        .insert("mode".into(), "slow".into());
    let replaced = config_maps
        .replace("settings", &post, &changed)
        .await
        .unwrap();
    assert_eq!(replaced.data, Some(labels(&[("mode", "slow")])));
    assert_ne!(replaced.resource_version(), fetched.resource_version());
    let stale = config_maps.replace("settings", &post, &fetched).await;
    assert_eq!(api_error(stale), (409, "Conflict".into()));

    // Merge patch: adds a key, and null removes one.
    let merged = config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "yes", "mode": null}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data, Some(labels(&[("extra", "yes")])));

    // JSON patch: a failed test operation leaves the object untouched.
    let json_patch = |operations: serde_json::Value| {
        Patch::Json::<()>(serde_json::from_value(operations).unwrap())
    };
    let patched = config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/data/extra", "value": "yes"},
                {"op": "replace", "path": "/data/extra", "value": "no"},
                {"op": "add", "path": "/metadata/labels/patched", "value": "json"},
            ])),
        )
        .await
        .unwrap();
    assert_eq!(patched.data, Some(labels(&[("extra", "no")])));
    assert_eq!(
        patched.labels().get("patched").map(String::as_str),
        Some("json")
    );
    let failed_test = config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/data/extra", "value": "yes"},
                {"op": "remove", "path": "/data/extra"},
            ])),
        )
        .await;
    let (code, _) = api_error(failed_test);
    assert!(
        code == 409 || code == 422,
        "a failed JSON patch test is refused (got {code})"
    );
    assert_eq!(
        config_maps.get("settings").await.unwrap().data,
        Some(labels(&[("extra", "no")]))
    );

    // Delete answers a Status for config maps; afterwards the object is gone.
    let deleted = config_maps
        .delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    let status = deleted
        .right()
        .expect("a config map delete answers a Status");
    assert_eq!(
        status.details.map(|details| details.name),
        Some("settings".into())
    );
    assert_eq!(
        api_error(config_maps.get("settings").await),
        (404, "NotFound".into())
    );
    assert!(config_maps.get_opt("settings").await.unwrap().is_none());
    assert_eq!(
        api_error(
            config_maps
                .delete("settings", &DeleteParams::default())
                .await
        ),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn pods_round_trip_through_the_typed_api() {
    let (_server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let post = PostParams::default();

    let created = pods
        .create(&post, &pod("web-0", &[("app", "web")]))
        .await
        .unwrap();
    pods.create(&post, &pod("db-0", &[("app", "db")]))
        .await
        .unwrap();
    // The server fills in what upstream's defaulting and strategy do.
    let status = created.status.as_ref().expect("a new pod has a status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(created.metadata.generation, Some(1));

    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let listed_names: Vec<String> = listed.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(listed_names, ["web-0"]);
    assert!(listed.metadata.resource_version.is_some());

    let mut relabelled = pods.get("web-0").await.unwrap();
    relabelled
        .labels_mut()
        .insert("track".into(), "stable".into());
    let replaced = pods.replace("web-0", &post, &relabelled).await.unwrap();
    assert_eq!(
        replaced.labels().get("track").map(String::as_str),
        Some("stable")
    );
    let stale = pods.replace("web-0", &post, &created).await;
    assert_eq!(api_error(stale), (409, "Conflict".into()));

    let patched = pods
        .patch(
            "web-0",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.28"},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );

    // Pods answer a delete with the deleted object, not a Status.
    let deleted = pods
        .delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    let gone = deleted.left().expect("a pod delete answers the pod");
    assert_eq!(gone.name_any(), "web-0");
    assert_eq!(api_error(pods.get("web-0").await), (404, "NotFound".into()));
    let remaining = pods.list(&ListParams::default()).await.unwrap();
    let remaining: Vec<String> = remaining.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(remaining, ["db-0"]);
}

#[tokio::test]
async fn deployments_patch_strategically_and_through_scale_and_status() {
    let (_server, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    let created = deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let fetched = deployments.get("web").await.unwrap();
    assert_eq!(fetched.spec.replicas, Some(2));

    // A strategic merge patch merges containers and env by name; a merge
    // patch would have replaced the whole container list. Without a
    // $setElementOrder directive, upstream puts the patch's new items
    // before the ones only the server had, so B precedes A.
    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.27", "env": [{"name": "B", "value": "2"}]},
            ]}}}})),
        )
        .await
        .unwrap();
    let containers = patched
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .clone();
    let summary: Vec<(String, Option<String>, Vec<String>)> = containers
        .iter()
        .map(|container| {
            (
                container.name.clone(),
                container.image.clone(),
                container
                    .env
                    .iter()
                    .flatten()
                    .map(|var| format!("{}={}", var.name, var.value.as_deref().unwrap_or("")))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "app".to_string(),
                Some("nginx:1.27".to_string()),
                vec!["B=2".to_string(), "A=1".to_string()]
            ),
            (
                "sidecar".to_string(),
                Some("busybox:1.36".to_string()),
                vec![]
            ),
        ]
    );
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );

    // A stale resourceVersion in a patch is a conflict, like in an update.
    let mut stale_pin = json!({"metadata": {"labels": {"x": "y"}}});
    stale_pin["metadata"]["resourceVersion"] = json!(created.resource_version());
    let stale = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(stale_pin))
        .await;
    assert_eq!(api_error(stale), (409, "Conflict".into()));

    // The scale subresource reads and writes spec.replicas.
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=web")
    );
    let scaled = deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(5));
    let after_scale = deployments.get("web").await.unwrap();
    assert_eq!(after_scale.spec.replicas, Some(5));
    assert_eq!(after_scale.metadata.generation, Some(3));

    // The status subresource writes status and nothing else ...
    let with_status = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"ignored": "true"}},
                "spec": {"replicas": 1},
                "status": {"observedGeneration": 3, "replicas": 5, "readyReplicas": 4},
            })),
        )
        .await
        .unwrap();
    let status = with_status.status.as_ref().unwrap();
    assert_eq!(
        (
            status.observed_generation,
            status.replicas,
            status.ready_replicas
        ),
        (Some(3), Some(5), Some(4))
    );
    assert_eq!(with_status.spec.replicas, Some(5));
    assert!(!with_status.labels().contains_key("ignored"));
    assert_eq!(with_status.metadata.generation, Some(3));
    // ... and the main resource leaves status alone.
    let main_patch = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(main_patch.status.unwrap().ready_replicas, Some(4));

    // Replace from the current copy succeeds; deleting leaves a 404 behind.
    let mut current = deployments.get("web").await.unwrap();
    current.spec.replicas = Some(0);
    let replaced = deployments
        .replace("web", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.spec.replicas, Some(0));
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(deployments.get_scale("web").await),
        (404, "NotFound".into())
    );
}

/// The next watcher event that is not part of (re)initialising the watch.
async fn next_change<S>(events: &mut S) -> Event<Pod>
where
    S: Stream<Item = Result<Event<Pod>, watcher::Error>> + Unpin,
{
    loop {
        let event = within("a pod watch event", events.next())
            .await
            .expect("the watch stream ended")
            .expect("the watch failed");
        match event {
            Event::Init | Event::InitApply(_) | Event::InitDone => continue,
            change => return change,
        }
    }
}

#[tokio::test]
async fn a_pod_watcher_sees_creation_modification_and_deletion() {
    let (_server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // Present before the watch starts: listed during initialisation.
    pods.create(&PostParams::default(), &pod("early", &[("app", "watched")]))
        .await
        .unwrap();
    let mut events = watcher(
        pods.clone(),
        watcher::Config::default().labels("app=watched"),
    )
    .boxed();

    let mut initial = Vec::new();
    loop {
        match within("the initial pod list", events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Init => {}
            Event::InitApply(pod) => initial.push(pod.name_any()),
            Event::InitDone => break,
            other => panic!("unexpected event during initialisation: {other:?}"),
        }
    }
    assert_eq!(initial, ["early"]);

    // Outside the label selector: were it delivered, it would arrive
    // before late's creation and fail the next match.
    pods.create(&PostParams::default(), &pod("other", &[("app", "other")]))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("late", &[("app", "watched")]))
        .await
        .unwrap();
    match next_change(&mut events).await {
        Event::Apply(pod) => assert_eq!(pod.name_any(), "late"),
        other => panic!("expected the creation of late, got {other:?}"),
    }

    pods.patch(
        "late",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"step": "modified"}}})),
    )
    .await
    .unwrap();
    match next_change(&mut events).await {
        Event::Apply(pod) => {
            assert_eq!(pod.name_any(), "late");
            assert_eq!(
                pod.annotations().get("step").map(String::as_str),
                Some("modified")
            );
        }
        other => panic!("expected the modification of late, got {other:?}"),
    }

    pods.delete("late", &DeleteParams::default()).await.unwrap();
    match next_change(&mut events).await {
        Event::Delete(pod) => assert_eq!(pod.name_any(), "late"),
        other => panic!("expected the deletion of late, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reflector_store_converges_to_the_config_maps_of_a_namespace() {
    let (_server, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some("reflected".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let reflected: Api<ConfigMap> = Api::namespaced(client.clone(), "reflected");
    let elsewhere: Api<ConfigMap> = Api::namespaced(client, "default");
    let post = PostParams::default();
    for name in ["before-a", "before-b"] {
        reflected
            .create(&post, &config_map(name, &[], &[("k", "v")]))
            .await
            .unwrap();
    }

    let (store, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(reflected.clone(), watcher::Config::default()),
    );
    let driver = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            event?;
        }
        Ok::<(), watcher::Error>(())
    });
    within("the reflector's first list", store.wait_until_ready())
        .await
        .unwrap();
    assert_eq!(
        names(store.state().iter().map(AsRef::as_ref)),
        ["before-a", "before-b"]
    );

    for name in ["after-c", "after-d"] {
        reflected
            .create(&post, &config_map(name, &[], &[("k", "v")]))
            .await
            .unwrap();
    }
    elsewhere
        .create(&post, &config_map("not-reflected", &[], &[]))
        .await
        .unwrap();
    reflected
        .delete("before-a", &DeleteParams::default())
        .await
        .unwrap();
    reflected
        .patch(
            "after-c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .unwrap();

    // Converged: the namespace's config maps as they are now, the patched
    // one with its new data.
    let expected = ["after-c", "after-d", "before-b"];
    let converged = within("the store to converge", async {
        loop {
            if driver.is_finished() {
                return None;
            }
            let state = store.state();
            let patched = state
                .iter()
                .find(|cm| cm.name_any() == "after-c")
                .and_then(|cm| cm.data.as_ref()?.get("k").cloned());
            if names(state.iter().map(AsRef::as_ref)) == expected
                && patched.as_deref() == Some("changed")
            {
                return Some(state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if converged.is_none() {
        panic!("the reflector stopped: {:?}", driver.await);
    }
    driver.abort();
}
