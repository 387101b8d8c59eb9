//! Deployments end to end with the real kubectl: `krust server` schedules and controls, `krust sim` nodes run the pods, and `kubectl rollout status|history|undo|pause|resume|restart` behave as upstream.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Sim};

fn image_of(cluster: &Cluster) -> String {
    cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn replica_sets(cluster: &Cluster) -> usize {
    cluster
        .ok(&["get", "rs", "-l", "app=web", "-o", "name"])
        .lines()
        .count()
}

#[test]
fn kubectl_rollout_drives_a_deployment_on_simulated_nodes() {
    let cluster = Cluster::start();
    let _sim = Sim::start(&cluster, 3);
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/sim-node-2",
        "--timeout=60s",
    ]);
    cluster.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 4\n  selector: {matchLabels: {app: web}}\n  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx:1.25}]}\n",
    );
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let pods = cluster.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    for pod in pods {
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .unwrap()
                .starts_with("sim-node-"),
            "{pod}"
        );
        assert_eq!(pod["status"]["phase"], "Running");
        assert!(pod["status"]["podIP"].is_string());
    }

    // A new image rolls out; availability never drops below 4 - 1.
    cluster.ok(&["set", "image", "deployment/web", "web=nginx:1.26"]);
    let started = Instant::now();
    let mut lowest = usize::MAX;
    loop {
        let deployment = cluster.json(&["get", "deployment", "web", "-o", "json"]);
        let status = &deployment["status"];
        let available = status["availableReplicas"].as_u64().unwrap_or(0) as usize;
        lowest = lowest.min(available);
        let done = status["updatedReplicas"] == 4
            && status["availableReplicas"] == 4
            && status["replicas"] == 4
            && status["observedGeneration"] == deployment["metadata"]["generation"];
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "rollout stuck: {status}"
        );
    }
    assert!(lowest >= 3, "availability dropped to {lowest}");
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    assert_eq!(replica_sets(&cluster), 2);

    // Undo goes back to revision 1's ReplicaSet rather than a new one.
    cluster.ok(&["rollout", "undo", "deployment/web"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(image_of(&cluster), "nginx:1.25");
    assert_eq!(replica_sets(&cluster), 2);
    let revision = cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ]);
    assert_eq!(revision, "3");

    // Paused: a template change waits until resumed.
    cluster.ok(&["rollout", "pause", "deployment/web"]);
    cluster.ok(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(replica_sets(&cluster), 2, "no rollout while paused");
    cluster.ok(&["rollout", "resume", "deployment/web"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(replica_sets(&cluster), 3);

    // Restart: a new ReplicaSet from the restartedAt annotation.
    cluster.ok(&["rollout", "restart", "deployment/web"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let restarted = cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert!(!restarted.is_empty());
    assert_eq!(replica_sets(&cluster), 4);

    let described = cluster.ok(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");

    // A Service over the pods gets Endpoints and EndpointSlices.
    cluster.ok(&["expose", "deployment", "web", "--port=80"]);
    let mut addresses = 0;
    for _ in 0..100 {
        let endpoints = cluster.json(&["get", "endpoints", "web", "-o", "json"]);
        addresses = endpoints["subsets"][0]["addresses"]
            .as_array()
            .map_or(0, Vec::len);
        if addresses == 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(addresses, 4);
    let slices = cluster.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]);
    // Pods of the earlier ReplicaSets still in their grace period are
    // listed too, as terminating and not ready.
    let endpoints = slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    let ready = endpoints
        .iter()
        .filter(|e| e["conditions"]["ready"] == true)
        .count();
    assert_eq!(ready, 4, "{slices}");
    assert!(
        endpoints
            .iter()
            .filter(|e| e["conditions"]["ready"] != true)
            .all(|e| e["conditions"]["terminating"] == true)
    );

    // Foreground deletion takes the ReplicaSets and pods first.
    cluster.ok(&[
        "delete",
        "deployment",
        "web",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    assert_eq!(replica_sets(&cluster), 0);
    cluster.ok(&[
        "wait",
        "--for=delete",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);
}
