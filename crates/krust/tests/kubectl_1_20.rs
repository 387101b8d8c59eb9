//! End to end with an old kubectl: `krust server` on loopback, driven by kubectl 1.20 (Debian bookworm's kubernetes-client, unpacked under target/ by `./x deps`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bench::server::KrustServer;
use serde_json::Value;

/// Where `./x deps` unpacks the package; it is not installed, because it
/// would replace the current /usr/bin/kubectl the other tests use.
const KUBECTL_1_20: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/kubectl-1.20/usr/bin/kubectl"
);

/// kubectl 1.20 validates manifests against the server's OpenAPI v2
/// document, fetched as protobuf from /openapi/v2 (falling back to
/// /swagger-2.0.0.pb-v1). krust does not serve it yet, so with validation
/// on, `apply` fails with "Error from server (NotFound)".
const NO_CLIENT_VALIDATION: &str = "--validate=false";

struct OldKubectl {
    server: KrustServer,
}

impl OldKubectl {
    /// A fresh server, or None (with a notice) when kubectl 1.20 is not unpacked.
    fn start() -> Option<OldKubectl> {
        if !Path::new(KUBECTL_1_20).is_file() {
            eprintln!("skipped: {KUBECTL_1_20} is absent; `./x deps` unpacks it");
            return None;
        }
        let server = KrustServer::start(
            Path::new(env!("CARGO_BIN_EXE_krust")),
            tempfile::tempdir().unwrap(),
            &[],
        )
        .unwrap();
        Some(OldKubectl { server })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(KUBECTL_1_20)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and returns stdout, failing the test on a non-zero exit.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stdin(args, None)
    }

    fn ok_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "kubectl 1.20 {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs kubectl expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args, None);
        assert!(
            !output.status.success(),
            "kubectl 1.20 {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn apply(&self, manifest: &str) -> String {
        self.ok_with_stdin(&["apply", NO_CLIENT_VALIDATION, "-f", "-"], Some(manifest))
    }
}

/// The cells of a printed table's rows, header first.
fn table(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn deployment_manifest(image: &str, env: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: {image}
        ports: [{{containerPort: 80}}]
        env: [{env}]
"
    )
}

#[test]
fn kubectl_1_20_reads_versions_resources_and_namespaces() {
    let Some(kubectl) = OldKubectl::start() else {
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
    let Some(kubectl) = OldKubectl::start() else {
        return;
    };
    let first = deployment_manifest("nginx:1.25", "{name: A, value: \"1\"}");
    assert_eq!(kubectl.apply(&first), "deployment.apps/web created\n");
    // Re-applied with a new image and an added variable: client-side apply
    // sends a strategic merge patch computed from last-applied-configuration.
    let changed = deployment_manifest(
        "nginx:1.27",
        "{name: A, value: \"1\"}, {name: B, value: \"2\"}",
    );
    assert_eq!(kubectl.apply(&changed), "deployment.apps/web configured\n");
    assert_eq!(kubectl.apply(&changed), "deployment.apps/web unchanged\n");
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
        kubectl.ok_with_stdin(&["delete", "-f", "-"], Some(&changed)),
        "deployment.apps \"web\" deleted\n"
    );
    let missing = kubectl.fails(&["get", "deploy", "web"]);
    assert!(
        missing.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{missing}"
    );
    let output = kubectl.run(&["get", "deploy"], None);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "No resources found in default namespace.\n"
    );
}
