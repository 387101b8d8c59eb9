//! Self-healing end to end: `krust server` killed and restarted mid-rollout finishes the rollout, a lost `krust sim` node's pods are evicted and recreated on the surviving nodes, and a Job runs to completion on simulated nodes.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, Sim, wait_for};
use serde_json::Value;

/// Pods of `selector` that are not being deleted.
fn live_pods(cluster: &Cluster, selector: &str) -> Vec<Value> {
    let pods = cluster.json(&["get", "pods", "-l", selector, "-o", "json"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

const ROLLING_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  minReadySeconds: 2
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.25}]}
";

#[test]
fn a_server_killed_mid_rollout_finishes_the_rollout_after_restart() {
    let cluster = Cluster::start();
    let sim = Sim::start_named(&cluster, 3, "restart-node-");
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/restart-node-2",
        "--timeout=60s",
    ]);
    cluster.apply(ROLLING_DEPLOYMENT);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    // minReadySeconds makes each step of the rollout take 2 s: stop the
    // server once the new ReplicaSet has some, but not all, of its pods.
    cluster.ok(&["set", "image", "deployment/web", "web=nginx:1.26"]);
    wait_for(Duration::from_secs(60), "rollout under way", || {
        let status = cluster.json(&["get", "deployment", "web", "-o", "json"])["status"].clone();
        let updated = status["updatedReplicas"].as_u64().unwrap_or(0);
        if (1..6).contains(&updated) {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    drop(sim);
    let data_dir = cluster.server.stop();

    // Same data, a new process (and port); the sim's nodes come back under
    // the same names, with the pods bound to them.
    let cluster = Cluster::start_in(data_dir);
    let _sim = Sim::start_named(&cluster, 3, "restart-node-");
    // The old process's leases must expire before the new one leads (15 s).
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);

    let deployment = cluster.json(&["get", "deployment", "web", "-o", "json"]);
    let status = &deployment["status"];
    assert_eq!(status["replicas"], 6, "{status}");
    assert_eq!(status["updatedReplicas"], 6, "{status}");
    assert_eq!(status["availableReplicas"], 6, "{status}");
    assert_eq!(
        status["observedGeneration"], deployment["metadata"]["generation"],
        "{status}"
    );
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    // Exactly the old and the new ReplicaSet: the restarted controller
    // adopted what the first process made rather than making another.
    let sets = cluster.json(&["get", "rs", "-l", "app=web", "-o", "json"]);
    let mut replicas_by_image = BTreeMap::new();
    for set in sets["items"].as_array().unwrap() {
        replicas_by_image.insert(
            set["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string(),
            set["spec"]["replicas"].as_u64().unwrap(),
        );
    }
    assert_eq!(
        replicas_by_image,
        BTreeMap::from([("nginx:1.25".to_string(), 0), ("nginx:1.26".to_string(), 6)])
    );
    let pods = live_pods(&cluster, "app=web");
    assert_eq!(pods.len(), 6);
    for pod in &pods {
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.26");
        assert_eq!(pod["status"]["phase"], "Running");
        assert!(node_of(pod).starts_with("restart-node-"), "{pod}");
    }
}

/// Eight pods spread evenly over the nodes that are not tainted, tolerating
/// an unreachable node for only 5 s (the admission default is 300 s).
const TOLERANT_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 8
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      containers: [{name: app, image: nginx:1.25}]
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector: {matchLabels: {app: spread}}
";

#[test]
fn pods_of_a_lost_node_are_recreated_on_the_surviving_nodes() {
    let cluster = Cluster::start_with(
        tempfile::tempdir().unwrap(),
        &["--node-monitor-grace-period", "10s"],
    );
    let _kept = Sim::start_named(&cluster, 2, "kept-node-");
    let lost = Sim::start_named(&cluster, 2, "lost-node-");
    for node in ["kept-node-0", "kept-node-1", "lost-node-0", "lost-node-1"] {
        cluster.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("node/{node}"),
            "--timeout=60s",
        ]);
    }
    cluster.apply(TOLERANT_DEPLOYMENT);
    cluster.ok(&["rollout", "status", "deployment/spread", "--timeout=90s"]);
    let pods = live_pods(&cluster, "app=spread");
    let on_lost = pods
        .iter()
        .filter(|pod| node_of(pod).starts_with("lost-node-"))
        .count();
    assert_eq!(on_lost, 4, "two pods per node");

    // The lost nodes stop heartbeating: after the 10 s grace they turn
    // Unknown and get the unreachable taints, 5 s later their pods are
    // evicted, and the ReplicaSet makes new ones on the kept nodes.
    drop(lost);
    let lost_at = Instant::now();
    wait_for(
        Duration::from_secs(90),
        "pods recreated on the kept nodes",
        || {
            let pods = live_pods(&cluster, "app=spread");
            let placed = pods
                .iter()
                .filter(|pod| {
                    node_of(pod).starts_with("kept-node-") && pod["status"]["phase"] == "Running"
                })
                .count();
            if pods.len() == 8 && placed == 8 {
                Ok(())
            } else {
                Err(format!(
                    "{placed} of {} live pods running on kept nodes",
                    pods.len()
                ))
            }
        },
    );
    let took = lost_at.elapsed();
    // Not before grace (10 s) + toleration (5 s).
    assert!(took >= Duration::from_secs(15), "recreated after {took:?}");

    let node = cluster.json(&["get", "node", "lost-node-0", "-o", "json"]);
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|condition| condition["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "Unknown", "{ready}");
    assert_eq!(ready["reason"], "NodeStatusUnknown", "{ready}");
    let taints = node["spec"]["taints"].as_array().unwrap();
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(
            taints
                .iter()
                .any(|taint| taint["key"] == "node.kubernetes.io/unreachable"
                    && taint["effect"] == effect),
            "{taints:?}"
        );
    }
    // The evicted pods stay Terminating: no kubelet confirms their end.
    let all = cluster.json(&["get", "pods", "-l", "app=spread", "-o", "json"]);
    let terminating = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| node_of(pod).starts_with("lost-node-"))
        .inspect(|pod| assert!(!pod["metadata"]["deletionTimestamp"].is_null(), "{pod}"))
        .count();
    assert_eq!(terminating, 4);
    let deployment = cluster.json(&["get", "deployment", "spread", "-o", "json"]);
    assert_eq!(deployment["status"]["availableReplicas"], 8);
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
        "-o",
        "name",
    ]);
    assert!(events.lines().count() >= 4, "{events}");
}

#[test]
fn a_job_runs_to_completion_on_simulated_nodes() {
    let cluster = Cluster::start();
    let _sim = Sim::start_named(&cluster, 2, "job-node-");
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/job-node-1",
        "--timeout=60s",
    ]);
    // The sim ends a pod with this annotation successfully after 1 s.
    cluster.apply(
        "apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 4
  parallelism: 2
  completionMode: Indexed
  template:
    metadata:
      annotations: {sim.krust.dev/complete-after: 1s}
    spec:
      restartPolicy: Never
      containers: [{name: work, image: busybox}]
",
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Complete",
        "job/batch",
        "--timeout=90s",
    ]);
    let job = cluster.json(&["get", "job", "batch", "-o", "json"]);
    assert_eq!(job["status"]["succeeded"], 4, "{}", job["status"]);
    assert_eq!(
        job["status"]["completedIndexes"], "0-3",
        "{}",
        job["status"]
    );
    assert!(job["status"]["completionTime"].is_string());
    let pods = cluster.json(&["get", "pods", "-l", "job-name=batch", "-o", "json"]);
    let phases = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pod| pod["status"]["phase"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(phases, vec!["Succeeded"; 4]);
}
