//! End to end: per-kind validation (pod specs, workload selectors) as the real kubectl and raw HTTPS see it, with upstream's 422 messages and causes.

use common::Cluster;
use serde_json::{Value, json};

mod common;

/// A raw JSON request: (status code, body).
fn curl(cluster: &Cluster, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = cluster.request(
        method,
        path,
        "application/json",
        body.to_string().as_bytes(),
    );
    (response.code, response.body)
}

fn deployment(app: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    })
}

#[test]
fn a_deployment_selector_cannot_change() {
    let server = Cluster::start_api_only();
    let applied = server.kubectl_with_input(&["apply", "-f", "-"], &deployment("web").to_string());
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // Re-applying the same object (and a new image) is fine.
    let mut new_image = deployment("web");
    new_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let reapplied = server.kubectl_with_input(&["apply", "-f", "-"], &new_image.to_string());
    assert!(
        reapplied.status.success(),
        "{}",
        String::from_utf8_lossy(&reapplied.stderr)
    );

    let changed =
        server.kubectl_with_input(&["apply", "-f", "-"], &deployment("other").to_string());
    assert!(!changed.status.success());
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(stderr.contains("spec.selector"), "{stderr}");
    assert!(stderr.contains("field is immutable"), "{stderr}");

    // A selector that does not match the template's labels never gets in.
    let mut mismatched = deployment("web");
    mismatched["metadata"]["name"] = json!("mismatched");
    mismatched["spec"]["template"]["metadata"]["labels"] = json!({"app": "else"});
    let created = server.kubectl_with_input(&["create", "-f", "-"], &mismatched.to_string());
    assert!(!created.status.success());
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains("spec.template.metadata.labels: Invalid value: {\"app\":\"else\"}: `selector` does not match template `labels`"),
        "{stderr}"
    );
}

#[test]
fn a_pod_without_an_image_is_invalid() {
    let server = Cluster::start_api_only();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "no-image", "namespace": "default"},
        "spec": {"containers": [{"name": "main"}]},
    });
    let created = server.kubectl_with_input(&["create", "-f", "-"], &pod.to_string());
    assert!(!created.status.success());
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains("spec.containers[0].image: Required value"),
        "{stderr}"
    );

    let (code, status) = curl(&server, "POST", "/api/v1/namespaces/default/pods", &pod);
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "Pod \"no-image\" is invalid: spec.containers[0].image: Required value"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}])
    );

    // Once created, a pod's ports are fixed; its image is not.
    let mut valid = pod.clone();
    valid["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    valid["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let (code, status) = curl(&server, "POST", "/api/v1/namespaces/default/pods", &valid);
    assert_eq!(code, 201, "{status}");
    let mut new_image = status.clone();
    new_image["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let (code, replaced) = curl(
        &server,
        "PUT",
        "/api/v1/namespaces/default/pods/no-image",
        &new_image,
    );
    assert_eq!(code, 200, "{replaced}");
    let mut new_port = replaced.clone();
    new_port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
    let (code, status) = curl(
        &server,
        "PUT",
        "/api/v1/namespaces/default/pods/no-image",
        &new_port,
    );
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "spec");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec: Forbidden: pod updates may not change fields other than"),
        "{status}"
    );
}
