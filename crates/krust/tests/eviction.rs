//! End to end: the pods/eviction subresource against `krust server`, with PodDisruptionBudgets whose status the test writes itself (there is no disruption controller), driven by /usr/bin/kubectl and raw HTTPS.

use std::process::Output;

use common::Cluster;
use serde_json::{Value, json};

mod common;

const NAMESPACE: &str = "default";

/// The cluster, with the steps these tests repeat.
struct Server {
    cluster: Cluster,
}

impl Server {
    fn start() -> Server {
        Server {
            cluster: Cluster::start(),
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.cluster.run(args, &[], stdin)
    }

    /// A raw JSON request: (status code, body).
    fn curl(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = self.cluster.request(
            method,
            path,
            "application/json",
            body.to_string().as_bytes(),
        );
        (response.code, response.body)
    }

    fn apply(&self, object: &Value) {
        let output = self.kubectl(&["apply", "-f", "-"], Some(&object.to_string()));
        assert!(
            output.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `kubectl get -o json`, or None when kubectl reports the object missing.
    fn get(&self, resource: &str, name: &str) -> Option<Value> {
        let output = self.kubectl(
            &["get", "-n", NAMESPACE, resource, name, "-o", "json"],
            None,
        );
        if output.status.success() {
            return Some(serde_json::from_slice(&output.stdout).unwrap());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("NotFound"), "kubectl get failed: {stderr}");
        None
    }

    fn create_pod(&self, name: &str, app: &str) {
        self.apply(&json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": app}},
            "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
        }));
    }

    /// Writes the status a kubelet would: Running and Ready. Only such pods
    /// are subject to disruption budgets (Pending ones are evicted freely).
    fn mark_running(&self, name: &str) {
        let mut pod = self.get("pods", name).unwrap();
        pod["status"]["phase"] = json!("Running");
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        let (code, body) = self.curl(
            "PUT",
            &format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}/status"),
            &pod,
        );
        assert_eq!(code, 200, "{body}");
    }

    fn create_budget(&self, name: &str, app: &str) {
        self.apply(&json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
        }));
    }

    /// Writes a budget's status as the disruption controller would.
    fn set_budget_status(&self, name: &str, disruptions_allowed: i64) {
        let mut budget = self.get("poddisruptionbudgets", name).unwrap();
        budget["status"] = json!({
            "observedGeneration": budget["metadata"]["generation"],
            "disruptionsAllowed": disruptions_allowed,
            "currentHealthy": 1 + disruptions_allowed,
            "desiredHealthy": 1,
            "expectedPods": 1 + disruptions_allowed,
        });
        let (code, body) = self.curl(
            "PUT",
            &format!("/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets/{name}/status"),
            &budget,
        );
        assert_eq!(code, 200, "{body}");
    }

    fn evict(&self, pod: &str, eviction: &Value) -> (u16, Value) {
        self.curl(
            "POST",
            &format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction"),
            eviction,
        )
    }
}

fn eviction_of(name: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": NAMESPACE},
    })
}

#[test]
fn evictions_respect_disruption_budgets() {
    let server = Server::start();

    // No budget: the running pod is simply deleted.
    server.create_pod("free", "free");
    server.mark_running("free");
    let (code, status) = server.evict("free", &eviction_of("free"));
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    assert!(server.get("pods", "free").is_none());

    // A budget that allows no disruption refuses with 429 and keeps the pod.
    server.create_pod("guarded", "guarded");
    server.mark_running("guarded");
    server.create_budget("guard", "guarded");
    server.set_budget_status("guard", 0);
    let (code, status) = server.evict("guarded", &eviction_of("guarded"));
    assert_eq!(code, 429, "{status}");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "The disruption budget guard needs 1 healthy pods and has 1 currently"
    );
    assert!(server.get("pods", "guarded").is_some());

    // A dry run that the budget allows changes neither pod nor budget.
    server.set_budget_status("guard", 1);
    let (code, status) = server.curl(
        "POST",
        &format!("/api/v1/namespaces/{NAMESPACE}/pods/guarded/eviction?dryRun=All"),
        &eviction_of("guarded"),
    );
    assert_eq!(code, 201, "{status}");
    assert!(server.get("pods", "guarded").is_some());
    let budget = server.get("poddisruptionbudgets", "guard").unwrap();
    assert_eq!(budget["status"]["disruptionsAllowed"], 1);

    // Allowed once: the pod goes and the budget records the disruption.
    let (code, status) = server.evict("guarded", &eviction_of("guarded"));
    assert_eq!(code, 201, "{status}");
    assert!(server.get("pods", "guarded").is_none());
    let budget = server.get("poddisruptionbudgets", "guard").unwrap();
    assert_eq!(budget["status"]["disruptionsAllowed"], 0);
    assert!(
        budget["status"]["disruptedPods"]["guarded"].is_string(),
        "{budget}"
    );

    // The budget is spent now: the next guarded pod stays.
    server.create_pod("guarded-2", "guarded");
    server.mark_running("guarded-2");
    let (code, status) = server.evict("guarded-2", &eviction_of("guarded-2"));
    assert_eq!(code, 429, "{status}");
    assert!(server.get("pods", "guarded-2").is_some());

    // A pod not yet running disrupts nothing: budgets are not consulted.
    server.create_pod("starting", "guarded");
    let (code, status) = server.evict("starting", &eviction_of("starting"));
    assert_eq!(code, 201, "{status}");
    assert!(server.get("pods", "starting").is_none());

    // Two budgets over one pod are not supported.
    server.create_budget("guard-again", "guarded");
    server.set_budget_status("guard-again", 1);
    let (code, status) = server.evict("guarded-2", &eviction_of("guarded-2"));
    assert_eq!(code, 500, "{status}");
    assert_eq!(
        status["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    assert!(server.get("pods", "guarded-2").is_some());
}

#[test]
fn malformed_evictions_and_missing_pods_are_refused() {
    let server = Server::start();
    server.create_pod("target", "target");

    let (code, status) = server.evict("target", &eviction_of("someone-else"));
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "name in URL does not match name in Eviction object"
    );

    let (code, status) = server.evict("absent", &eviction_of("absent"));
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["message"], "pods \"absent\" not found");

    // The deleteOptions' preconditions apply to the delete.
    let mut stale = eviction_of("target");
    stale["deleteOptions"] = json!({"preconditions": {"uid": "not-the-uid"}});
    let (code, status) = server.evict("target", &stale);
    assert_eq!(code, 409, "{status}");
    assert!(server.get("pods", "target").is_some());

    // policy/v1beta1 Evictions are accepted too.
    let mut beta = eviction_of("target");
    beta["apiVersion"] = json!("policy/v1beta1");
    let (code, status) = server.evict("target", &beta);
    assert_eq!(code, 201, "{status}");
    assert!(server.get("pods", "target").is_none());
}
