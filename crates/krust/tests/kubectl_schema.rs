//! End to end with the real kubectl: `kubectl explain` over the served OpenAPI schemas, and server-side field validation (`--validate=strict|warn|false`) on apply, patch and raw HTTP writes.

use std::process::{Command, Output};

use common::{Cluster, bearer};
use serde_json::Value;

mod common;

/// `kubectl apply -f -` of `manifest` with `--validate=<validate>`.
fn apply(cluster: &Cluster, manifest: &str, validate: &str) -> Output {
    let flag = format!("--validate={validate}");
    cluster.kubectl_with_input(&["apply", &flag, "-f", "-"], manifest)
}

/// A raw HTTPS request: (status code, response headers, JSON body).
fn curl(
    cluster: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, Value) {
    let response = cluster.request(method, path, content_type, body.as_bytes());
    (response.code, response.headers, response.body)
}

fn deployment(name: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
{container_extra}"
    )
}

const UNKNOWN_CONTAINER_FIELD: &str = "        foo: bar\n";

#[test]
fn explain_shows_descriptions_and_typed_fields_from_the_schemas() {
    let cluster = Cluster::start();
    let containers = cluster.ok(&["explain", "pod.spec.containers"]);
    assert!(containers.contains("KIND:       Pod"), "{containers}");
    assert!(
        containers.contains("FIELD: containers <[]Container>"),
        "{containers}"
    );
    assert!(
        containers.contains("List of containers belonging to the pod."),
        "{containers}"
    );
    assert!(
        containers.contains("A single application container"),
        "{containers}"
    );
    for field in [
        "image\t<string>",
        "ports\t<[]ContainerPort>",
        "name\t<string> -required-",
    ] {
        assert!(containers.contains(field), "{field} missing: {containers}");
    }

    let strategy = cluster.ok(&["explain", "deployment.spec.strategy"]);
    assert!(strategy.contains("GROUP:      apps"), "{strategy}");
    assert!(
        strategy.contains("The deployment strategy to use to replace existing pods with new ones."),
        "{strategy}"
    );
    assert!(
        strategy.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{strategy}"
    );
    assert!(strategy.contains("type\t<string>"), "{strategy}");

    let recursive = cluster.ok(&["explain", "deployment.spec", "--recursive"]);
    for field in [
        "template\t<PodTemplateSpec> -required-",
        "containers\t<[]Container> -required-",
        "maxSurge\t<IntOrString>",
    ] {
        assert!(recursive.contains(field), "{field} missing: {recursive}");
    }

    let service = cluster.ok(&["explain", "svc"]);
    assert!(service.contains("KIND:       Service"), "{service}");
    assert!(service.contains("VERSION:    v1"), "{service}");
    assert!(service.contains("spec\t<ServiceSpec>"), "{service}");
    assert!(!service.contains("-required-"), "{service}");
}

#[test]
fn strict_validation_refuses_unknown_fields_and_stores_nothing() {
    let cluster = Cluster::start();
    let refused = apply(
        &cluster,
        &deployment("strict", UNKNOWN_CONTAINER_FIELD),
        "strict",
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: \
             unknown field \"spec.template.spec.containers[0].foo\""
        ),
        "{stderr}"
    );
    let missing = cluster.kubectl(&["get", "deployment", "strict"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("NotFound"),
        "{missing:?}"
    );
    // kubectl's default is strict too.
    let by_default = cluster.kubectl_with_input(
        &["apply", "-f", "-"],
        &deployment("strict", UNKNOWN_CONTAINER_FIELD),
    );
    assert!(!by_default.status.success());
    assert!(String::from_utf8_lossy(&by_default.stderr).contains("strict decoding error"));
}

#[test]
fn warn_stores_the_object_without_the_field_and_prints_the_warning() {
    let cluster = Cluster::start();
    let applied = apply(
        &cluster,
        &deployment("warned", UNKNOWN_CONTAINER_FIELD),
        "warn",
    );
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: unknown field \"spec.template.spec.containers[0].foo\""),
        "{stderr}"
    );
    let stored: Value =
        serde_json::from_str(&cluster.ok(&["get", "deployment", "warned", "-o", "json"])).unwrap();
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert!(
        container.get("foo").is_none(),
        "unknown fields are not stored"
    );
}

#[test]
fn validate_false_stores_the_object_silently() {
    let cluster = Cluster::start();
    let applied = apply(
        &cluster,
        &deployment("quiet", UNKNOWN_CONTAINER_FIELD),
        "false",
    );
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success(), "{stderr}");
    assert!(!stderr.contains("unknown field"), "{stderr}");
    let stored: Value =
        serde_json::from_str(&cluster.ok(&["get", "deployment", "quiet", "-o", "json"])).unwrap();
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert!(
        container.get("foo").is_none(),
        "ignored fields are dropped, as upstream"
    );
}

#[test]
fn valid_manifests_apply_and_reapply_cleanly_under_strict_validation() {
    let cluster = Cluster::start();
    let manifests = [
        deployment(
            "web",
            "        ports: [{containerPort: 80}]\n        resources: {limits: {cpu: 100m}}\n",
        ),
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"
        .to_string(),
        "apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {mode: fast}
"
        .to_string(),
    ];
    for manifest in &manifests {
        let created = apply(&cluster, manifest, "strict");
        let stderr = String::from_utf8_lossy(&created.stderr);
        assert!(created.status.success() && stderr.is_empty(), "{stderr}");
    }
    // A second apply is a strategic merge patch of the stored object,
    // status, managed fields and server defaults included.
    let changed = [
        manifests[0].replace("replicas: 1", "replicas: 3"),
        manifests[1].replace("port: 80,", "port: 8080,"),
        manifests[2].replace("fast", "slow"),
    ];
    for manifest in &changed {
        let patched = apply(&cluster, manifest, "strict");
        let stdout = String::from_utf8_lossy(&patched.stdout);
        let stderr = String::from_utf8_lossy(&patched.stderr);
        assert!(patched.status.success() && stderr.is_empty(), "{stderr}");
        assert!(stdout.contains("configured"), "{stdout}");
    }
    assert_eq!(
        cluster.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let scaled = cluster.kubectl(&["scale", "deploy", "web", "--replicas=2"]);
    assert!(scaled.status.success(), "{scaled:?}");
    let labelled = cluster.kubectl(&["label", "svc", "web", "tier=front"]);
    assert!(
        labelled.status.success() && labelled.stderr.is_empty(),
        "{labelled:?}"
    );
}

#[test]
fn patches_are_checked_after_they_are_applied() {
    let cluster = Cluster::start();
    assert!(
        apply(&cluster, &deployment("patched", ""), "strict")
            .status
            .success()
    );
    // kubectl patch sends no fieldValidation: upstream's default is Warn.
    let warned = cluster.kubectl(&[
        "patch",
        "deploy",
        "patched",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true,"pausd":true}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: unknown field \"spec.pausd\""),
        "{stderr}"
    );
    let stored = cluster.ok(&["get", "deploy", "patched", "-o", "json"]);
    assert!(
        stored.contains("\"paused\": true") && !stored.contains("pausd"),
        "{stored}"
    );

    let path = "/apis/apps/v1/namespaces/default/deployments/patched?fieldValidation=Strict";
    let (code, _, status) = curl(
        &cluster,
        "PATCH",
        path,
        "application/strategic-merge-patch+json",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","imagePullPolicy":"Always","bogus":1}]}}}}"#,
    );
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "strict decoding error: unknown field \"spec.template.spec.containers[0].bogus\""
    );
}

#[test]
fn raw_writes_answer_with_upstream_statuses_and_warning_headers() {
    let cluster = Cluster::start();
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw","labelz":{}},"data":{"a":"b"},"extra":1}"#;
    let (code, _, status) = curl(
        &cluster,
        "POST",
        &format!("{configmaps}?fieldValidation=Strict"),
        "application/json",
        body,
    );
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: \
         unknown field \"extra\", unknown field \"metadata.labelz\""
    );

    let (code, _, status) = curl(
        &cluster,
        "POST",
        &format!("{configmaps}?fieldValidation=Sometimes"),
        "application/json",
        body,
    );
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Sometimes\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
    );

    let (code, headers, created) = curl(&cluster, "POST", configmaps, "application/json", body);
    assert_eq!(code, 201, "{created}");
    assert!(
        headers.contains("warning: 299 - \"unknown field \\\"extra\\\"\"")
            || headers.contains("Warning: 299 - \"unknown field \\\"extra\\\"\""),
        "{headers}"
    );
    assert!(
        headers
            .to_lowercase()
            .contains("299 - \"unknown field \\\"metadata.labelz\\\"\""),
        "{headers}"
    );
    assert!(created.get("extra").is_none() && created["metadata"].get("labelz").is_none());

    let (code, headers, replaced) = curl(
        &cluster,
        "PUT",
        &format!("{configmaps}/raw?fieldValidation=Ignore"),
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"},"data":{"a":"c"},"extra":1}"#,
    );
    assert_eq!(code, 200, "{replaced}");
    assert!(!headers.to_lowercase().contains("warning"), "{headers}");
    assert_eq!(replaced["data"]["a"], "c");
    assert!(replaced.get("extra").is_none());

    // OpenAPI v2 is served as JSON, and as protobuf to kubectl, which asks
    // for that form only.
    let output = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{content_type}",
        ])
        .args(["-H", &bearer()])
        .args([
            "-H",
            "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        ])
        .arg(format!("{}/openapi/v2", cluster.url()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "200 application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let (code, _, swagger) = curl(&cluster, "GET", "/openapi/v2", "application/json", "");
    assert_eq!(code, 200);
    assert_eq!(
        swagger["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Pod"
    );
}
