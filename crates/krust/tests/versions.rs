//! End to end: resources served at two versions over one stored form (core/v1 and events.k8s.io/v1 Events, autoscaling/v1 and v2 HPAs), each version seeing the other's writes.

use common::{Cluster, bearer};
use serde_json::json;

mod common;

#[test]
fn events_written_through_either_group_are_read_through_both() {
    let cluster = Cluster::start();
    cluster.apply(
        "apiVersion: v1
kind: Event
metadata: {name: web.1, namespace: default}
involvedObject: {kind: Pod, name: web, namespace: default}
reason: Scheduled
message: assigned default/web to node-1
type: Normal
source: {component: scheduler}
",
    );
    let seen = cluster.json(&["get", "events.v1.events.k8s.io", "web.1", "-o", "json"]);
    assert_eq!(seen["apiVersion"], "events.k8s.io/v1");
    assert_eq!(seen["regarding"]["name"], "web");
    assert_eq!(seen["note"], "assigned default/web to node-1");
    assert_eq!(seen["deprecatedSource"]["component"], "scheduler");
    assert!(seen.get("involvedObject").is_none(), "{seen}");

    let created = cluster.request(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        "application/json",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.2"},
            "eventTime": "2026-11-22T06:00:00.000000Z",
            "reportingController": "krust/kubelet", "reportingInstance": "node-1",
            "action": "Pulling", "reason": "Pulling", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "note": "pulling image nginx"})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["note"], "pulling image nginx");
    let core = cluster.json(&["get", "events.v1.", "web.2", "-o", "json"]);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["message"], "pulling image nginx");
    assert_eq!(core["reportingComponent"], "krust/kubelet");

    // Lists, field selectors and watches use the group's own field names.
    let listed = cluster.json(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "reason=Pulling",
        "-o",
        "json",
    ]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["regarding"]["kind"], "Pod");
    let (code, _) = cluster.curl(&[
        "-H",
        &bearer(),
        &format!(
            "{}/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb",
            cluster.url()
        ),
    ]);
    assert_eq!(code, 400, "core field names are not events.k8s.io's");
    let output = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "10", "-H", &bearer()])
        .arg(format!(
            "{}/apis/events.k8s.io/v1/namespaces/default/events?watch=1&timeoutSeconds=1",
            cluster.url()
        ))
        .output()
        .unwrap();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["object"]["apiVersion"] == "events.k8s.io/v1"
                && e["object"]["regarding"]["name"] == "web")
    );
}

#[test]
fn horizontal_pod_autoscalers_round_trip_between_v1_and_v2() {
    let cluster = Cluster::start();
    cluster.apply(
        "apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  targetCPUUtilizationPercentage: 60
",
    );
    let v2 = cluster.json(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "-o",
        "json",
    ]);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 60}}}])
    );
    // A memory target has no v1 field: v1 carries it in an annotation, and
    // v2 gets it back intact.
    cluster.ok(&[
        "patch",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op": "add", "path": "/spec/metrics/-", "value": {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}}}]"#,
    ]);
    let v1 = cluster.json(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "json",
    ]);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .unwrap()
            .contains("500Mi")
    );
    cluster.ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec": {"targetCPUUtilizationPercentage": 70}}"#,
    ]);
    let v2 = cluster.json(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "-o",
        "json",
    ]);
    let metrics = v2["spec"]["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{metrics:?}");
    assert_eq!(metrics[0]["resource"]["target"]["averageUtilization"], 70);
    assert_eq!(metrics[1]["resource"]["name"], "memory");
    let annotations = v2["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations
            .keys()
            .all(|name| !name.starts_with("autoscaling.alpha.kubernetes.io/")),
        "{v2}"
    );
    let table = cluster.ok(&["get", "hpa"]);
    assert!(table.contains("Deployment/web"), "{table}");
}
