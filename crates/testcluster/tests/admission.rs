//! Admission through the API: pods get their priority from PriorityClasses and the default NoExecute tolerations.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use testcluster::TestCluster;

fn pod(name: &str, spec_extra: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn pods_take_priority_from_their_class_or_the_global_default() {
    let cluster = TestCluster::start().await.unwrap();
    let classes: Api<PriorityClass> = Api::all(cluster.client());
    let pods: Api<Pod> = Api::default_namespaced(cluster.client());
    let create = PostParams::default();

    // Built in, as upstream bootstraps them.
    let critical = classes.get("system-cluster-critical").await.unwrap();
    assert_eq!(critical.value, Some(2_000_000_000));

    let plain = pods
        .create(&create, &pod("plain", json!({})))
        .await
        .unwrap();
    let spec = plain.spec.unwrap();
    assert_eq!(spec.priority, Some(0));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    let tolerations = spec.tolerations.unwrap();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let toleration = tolerations
            .iter()
            .find(|t| t.key.as_deref() == Some(key))
            .unwrap();
        assert_eq!(
            (toleration.effect.as_deref(), toleration.toleration_seconds),
            (Some("NoExecute"), Some(300))
        );
    }

    let high: PriorityClass = serde_json::from_value(json!({
        "metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"
    }))
    .unwrap();
    classes.create(&create, &high).await.unwrap();
    let admitted = pods
        .create(&create, &pod("high", json!({"priorityClassName": "high"})))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        (admitted.priority, admitted.preemption_policy.as_deref()),
        (Some(1000), Some("Never"))
    );

    let error = pods
        .create(
            &create,
            &pod("missing", json!({"priorityClassName": "nope"})),
        )
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                status.message,
                "pods \"missing\" is forbidden: no PriorityClass with name nope was found"
            );
        }
        other => panic!("expected 403, got {other}"),
    }
    let error = pods
        .create(
            &create,
            &pod(
                "forged",
                json!({"priorityClassName": "high", "priority": 5}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(status) if status.code == 403 && status.message.contains("must not be provided in pod spec"))
    );

    let default: PriorityClass = serde_json::from_value(json!({
        "metadata": {"name": "everyone"}, "value": 7, "globalDefault": true
    }))
    .unwrap();
    classes.create(&create, &default).await.unwrap();
    // The cache serves the class list; wait for it to see the new class.
    let mut defaulted = None;
    for attempt in 0..50 {
        let spec = pods
            .create(&create, &pod(&format!("defaulted-{attempt}"), json!({})))
            .await
            .unwrap()
            .spec
            .unwrap();
        if spec.priority == Some(7) {
            defaulted = Some(spec);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let defaulted = defaulted.expect("the global default class applies");
    assert_eq!(defaulted.priority_class_name.as_deref(), Some("everyone"));
}
