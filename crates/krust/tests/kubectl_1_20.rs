//! End to end with an old kubectl: `krust server` on loopback, driven by kubectl 1.20 (Debian bookworm's kubernetes-client, unpacked under target/ by `./x deps`).

use std::path::Path;

use common::{Cluster, deployment_manifest};

mod common;

/// Where `./x deps` unpacks the package; it is not installed, because it
/// would replace the current /usr/bin/kubectl the other tests use.
const KUBECTL_1_20: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/kubectl-1.20/usr/bin/kubectl"
);

/// A fresh server driven by kubectl 1.20, or None (with a notice) when that
/// kubectl is not unpacked.
fn start() -> Option<Cluster> {
    if !Path::new(KUBECTL_1_20).is_file() {
        eprintln!("skipped: {KUBECTL_1_20} is absent; `./x deps` unpacks it");
        return None;
    }
    Some(Cluster::start().using_kubectl(Path::new(KUBECTL_1_20)))
}

/// `kubectl apply -f -`, validated client-side against the server's OpenAPI
/// v2 document, which kubectl 1.20 fetches as protobuf from /openapi/v2.
fn apply(kubectl: &Cluster, manifest: &str) -> String {
    kubectl.apply(manifest)
}

/// The cells of a printed table's rows, header first.
fn table(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn kubectl_1_20_reads_versions_resources_and_namespaces() {
    let Some(kubectl) = start() else {
        return;
    };
    let version = kubectl.json(&["version", "-o", "json"]);
    assert_eq!(version["clientVersion"]["minor"], "20");
    assert_eq!(version["serverVersion"]["major"], "1");
    assert!(
        version["serverVersion"]["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "server version: {version}"
    );

    // Discovery as 1.20 reads it: the legacy /api and /apis documents.
    let resources = table(&kubectl.ok(&["api-resources"]));
    assert_eq!(
        resources[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for expected in [
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        ["namespaces", "ns", "v1", "false", "Namespace"],
        ["configmaps", "cm", "v1", "true", "ConfigMap"],
    ] {
        assert!(
            resources.iter().any(|row| row == &expected),
            "api-resources lacks {expected:?}"
        );
    }
    let apps = kubectl.ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    assert!(
        apps.lines().any(|line| line == "deployments.apps"),
        "{apps}"
    );

    // Server-side tables, as kubectl 1.20 asks for them.
    let namespaces = table(&kubectl.ok(&["get", "ns"]));
    assert_eq!(namespaces[0], ["NAME", "STATUS", "AGE"]);
    let names: Vec<(&str, &str)> = namespaces[1..]
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("default", "Active"),
            ("kube-node-lease", "Active"),
            ("kube-public", "Active"),
            ("kube-system", "Active"),
        ]
    );
}

#[test]
fn kubectl_1_20_applies_labels_scales_and_deletes_a_deployment() {
    let Some(kubectl) = start() else {
        return;
    };
    let first = deployment_manifest("nginx:1.25", "{name: A, value: \"1\"}");
    assert_eq!(apply(&kubectl, &first), "deployment.apps/web created\n");
    // Re-applied with a new image and an added variable: client-side apply
    // sends a strategic merge patch computed from last-applied-configuration.
    let changed = deployment_manifest(
        "nginx:1.27",
        "{name: A, value: \"1\"}, {name: B, value: \"2\"}",
    );
    assert_eq!(
        apply(&kubectl, &changed),
        "deployment.apps/web configured\n"
    );
    assert_eq!(apply(&kubectl, &changed), "deployment.apps/web unchanged\n");
    let applied = kubectl.json(&["get", "deploy", "web", "-o", "json"]);
    let container = &applied["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| var["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["A", "B"]);
    assert_eq!(applied["metadata"]["generation"], 2);
    assert!(
        applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|last| last.contains("nginx:1.27")),
        "apply records the manifest it applied"
    );

    let wide = table(&kubectl.ok(&["get", "deploy", "-o", "wide"]));
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(wide.len(), 2, "one deployment: {wide:?}");
    let row = &wide[1];
    assert_eq!(
        (row[0].as_str(), row[1].as_str(), &row[5..]),
        (
            "web",
            "0/2",
            &["app".to_string(), "nginx:1.27".into(), "app=web".into()][..]
        )
    );

    let yaml = kubectl.ok(&["get", "deploy", "web", "-o", "yaml"]);
    for line in [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "  name: web",
        "  generation: 2",
        "        image: nginx:1.27",
    ] {
        assert!(
            yaml.lines().any(|l| l == line),
            "-o yaml lacks {line:?}:\n{yaml}"
        );
    }

    assert_eq!(
        kubectl.ok(&["label", "deploy", "web", "tier=frontend"]),
        "deployment.apps/web labeled\n"
    );
    let refused = kubectl.fails(&["label", "deploy", "web", "tier=backend"]);
    assert!(
        refused.contains("'tier' already has a value (frontend), and --overwrite is false"),
        "{refused}"
    );
    kubectl.ok(&["label", "deploy", "web", "tier=backend", "--overwrite"]);
    let labelled = kubectl.json(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(labelled["metadata"]["labels"]["tier"], "backend");
    kubectl.ok(&["label", "deploy", "web", "tier-"]);
    let unlabelled = kubectl.json(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(
        unlabelled["metadata"]["labels"],
        serde_json::json!({"app": "web"})
    );

    // kubectl 1.20 scales through the scale subresource (a PATCH).
    assert_eq!(
        kubectl.ok(&["scale", "deploy", "web", "--replicas=4"]),
        "deployment.apps/web scaled\n"
    );
    let precondition = kubectl.fails(&[
        "scale",
        "deploy",
        "web",
        "--replicas=3",
        "--current-replicas=2",
    ]);
    assert!(
        precondition.contains("Expected replicas to be 2, was 4"),
        "{precondition}"
    );
    let scaled = kubectl.json(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(scaled["spec"]["replicas"], 4);

    assert_eq!(
        kubectl.ok_with_input(&["delete", "-f", "-"], &changed),
        "deployment.apps \"web\" deleted\n"
    );
    let missing = kubectl.fails(&["get", "deploy", "web"]);
    assert!(
        missing.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{missing}"
    );
    let output = kubectl.kubectl(&["get", "deploy"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "No resources found in default namespace.\n"
    );
}

#[test]
fn kubectl_1_20_validates_explains_and_diffs_against_the_openapi_document() {
    let Some(kubectl) = start() else {
        return;
    };
    let first = deployment_manifest("nginx:1.25", "{name: A, value: \"1\"}");

    // An unknown field is refused by kubectl itself, before any request.
    let misspelled = first.replace("  replicas: 2", "  replicaz: 2");
    let refused = kubectl.kubectl_with_input(&["apply", "-f", "-"], &misspelled);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "error validating data: ValidationError(Deployment.spec): unknown field \"replicaz\" in io.k8s.api.apps.v1.DeploymentSpec"
        ),
        "{stderr}"
    );
    kubectl.fails(&["get", "deploy", "web"]);
    // So is a missing required field and a value of the wrong type.
    let unnamed = first.replace("      - name: app\n        image", "      - image");
    let refused = kubectl.kubectl_with_input(&["apply", "-f", "-"], &unnamed);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ValidationError(Deployment.spec.template.spec.containers[0]): missing required field \"name\""),
        "{stderr}"
    );
    let mistyped = first.replace("  replicas: 2", "  replicas: two");
    let refused = kubectl.kubectl_with_input(&["apply", "-f", "-"], &mistyped);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ValidationError(Deployment.spec.replicas): invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: got \"string\", expected \"integer\""),
        "{stderr}"
    );

    let explained = kubectl.ok(&["explain", "deployment.spec.replicas"]);
    for line in [
        "KIND:     Deployment",
        "VERSION:  apps/v1",
        "FIELD:    replicas <integer>",
    ] {
        assert!(explained.lines().any(|l| l == line), "{explained}");
    }
    assert!(explained.contains("Number of desired pods."), "{explained}");
    let explained = kubectl.ok(&["explain", "deployment.spec"]);
    assert!(
        explained.contains("template\t<Object> -required-"),
        "{explained}"
    );

    assert_eq!(apply(&kubectl, &first), "deployment.apps/web created\n");
    // `diff` dry-runs the apply on the server and compares; exit 1 means
    // the live and the applied objects differ.
    let unchanged = kubectl.run(&["diff", "-f", "-"], &[], Some(&first));
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&unchanged.stderr)
    );
    assert!(unchanged.stdout.is_empty());
    let changed = deployment_manifest("nginx:1.27", "{name: A, value: \"1\"}");
    let differs = kubectl.run(&["diff", "-f", "-"], &[], Some(&changed));
    let stdout = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(
        differs.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&differs.stderr)
    );
    let changed_lines: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            (line.starts_with('-') || line.starts_with('+'))
                && !line.starts_with("---")
                && !line.starts_with("+++")
        })
        .map(str::trim_end)
        .collect();
    assert!(
        changed_lines.contains(&"-        image: nginx:1.25")
            && changed_lines.contains(&"+        image: nginx:1.27"),
        "{stdout}"
    );
    let live = kubectl.json(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25",
        "diff changes nothing"
    );
}
