//! The simulator against a real API server (testcluster): nodes registered as a kubelet registers them, leases renewed, bound pods run and are deleted when their grace period ends, and thousands of nodes register quickly.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use testcluster::TestCluster;

const WAIT: Duration = Duration::from_secs(10);

fn config(nodes: usize) -> sim::SimConfig {
    sim::SimConfig {
        nodes,
        zones: 2,
        labels: BTreeMap::from([("bench.krust.dev/pool".to_string(), "a".to_string())]),
        taints: vec![sim::parse_taint("dedicated=sim:NoSchedule").expect("valid taint")],
        lease_renew_interval: Duration::from_millis(300),
        ..sim::SimConfig::default()
    }
}

#[tokio::test]
async fn nodes_register_with_capacity_labels_taints_and_conditions() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let sim = sim::start(client.clone(), config(3)).await?;
    assert_eq!(
        sim.node_names().collect::<Vec<_>>(),
        ["sim-node-0", "sim-node-1", "sim-node-2"]
    );

    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes
        .list(&ListParams::default().labels("node.krust.dev/simulated=true"))
        .await?;
    assert_eq!(listed.items.len(), 3);

    let node = nodes.get("sim-node-1").await?;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    for (key, value) in [
        ("kubernetes.io/hostname", "sim-node-1"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.krust.dev/simulated", "true"),
        ("topology.kubernetes.io/zone", "zone-1"),
        ("bench.krust.dev/pool", "a"),
    ] {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "label {key}"
        );
    }
    let taints = node.spec.clone().and_then(|s| s.taints).unwrap_or_default();
    assert_eq!(taints.len(), 1);
    assert_eq!(
        (
            taints[0].key.as_str(),
            taints[0].value.as_deref(),
            taints[0].effect.as_str()
        ),
        ("dedicated", Some("sim"), "NoSchedule")
    );

    let status = node.status.clone().unwrap_or_default();
    let capacity = status.capacity.clone().unwrap_or_default();
    assert_eq!(capacity.get("cpu").map(|q| q.0.as_str()), Some("32"));
    assert_eq!(capacity.get("memory").map(|q| q.0.as_str()), Some("256Gi"));
    assert_eq!(capacity.get("pods").map(|q| q.0.as_str()), Some("110"));
    assert!(capacity.contains_key("ephemeral-storage"));
    assert_eq!(status.allocatable, status.capacity);
    let info = status.node_info.clone().unwrap_or_default();
    assert_eq!(info.kubelet_version, sim::KUBELET_VERSION);
    assert_eq!(info.container_runtime_version, "sim://0");
    assert_eq!(
        (info.operating_system.as_str(), info.architecture.as_str()),
        ("linux", "amd64")
    );
    let addresses: Vec<(String, String)> = status
        .addresses
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert_eq!(
        addresses,
        [
            ("InternalIP".to_string(), "172.16.0.2".to_string()),
            ("Hostname".to_string(), "sim-node-1".to_string())
        ]
    );
    let conditions: Vec<(String, String, String)> = status
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason.unwrap_or_default()))
        .collect();
    let expected = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ];
    assert_eq!(
        conditions,
        expected.map(|(t, s, r)| (t.to_string(), s.to_string(), r.to_string()))
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = leases.get("sim-node-1").await?;
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("sim-node-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = lease
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .pop()
        .expect("the lease has an owner");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "sim-node-1")
    );
    assert_eq!(Some(owner.uid), node.metadata.uid);

    let first_renewal = renew_time(&leases, "sim-node-1").await?;
    let renewed = wait_for(WAIT, || async {
        Ok(renew_time(&leases, "sim-node-1").await? > first_renewal)
    })
    .await?;
    assert!(renewed, "the lease was renewed within {WAIT:?}");

    sim.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_bound_pod_runs_with_an_ip_from_its_nodes_range() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let sim = sim::start(client.clone(), config(3)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_pod(&pods, "web", json!({})).await?;
    bind(&pods, "web", "sim-node-2").await?;

    let running = wait_for(WAIT, || async { Ok(is_ready(&pods.get("web").await?)) }).await?;
    assert!(running, "the pod became Running and Ready within {WAIT:?}");
    let pod = pods.get("web").await?;
    let status = pod.status.clone().unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.host_ip.as_deref(), Some("172.16.0.3"));
    let pod_ip = status.pod_ip.clone().unwrap_or_default();
    assert!(
        pod_ip.starts_with("10.244.2."),
        "pod IP {pod_ip} in sim-node-2's 10.244.2.0/24"
    );
    assert_eq!(
        status
            .pod_ips
            .clone()
            .unwrap_or_default()
            .first()
            .map(|p| p.ip.clone()),
        Some(pod_ip)
    );
    assert!(status.start_time.is_some());
    assert_eq!(
        status.qos_class.as_deref(),
        Some("BestEffort"),
        "qosClass kept"
    );
    for condition in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert!(
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == condition && c.status == "True"),
            "condition {condition} is True"
        );
    }
    let container = status
        .container_statuses
        .clone()
        .unwrap_or_default()
        .pop()
        .expect("a container status");
    assert_eq!(container.name, "app");
    assert_eq!(container.image, "docker.io/library/nginx:1.27");
    assert!(container.ready && container.started == Some(true));
    assert_eq!(container.restart_count, 0);
    assert!(
        container
            .container_id
            .is_some_and(|id| id.starts_with("sim://"))
    );
    assert!(container.state.and_then(|s| s.running).is_some());

    // A second pod on the same node gets a different address.
    create_pod(&pods, "web-2", json!({})).await?;
    bind(&pods, "web-2", "sim-node-2").await?;
    assert!(wait_for(WAIT, || async { Ok(is_ready(&pods.get("web-2").await?)) }).await?);
    let second = pods.get("web-2").await?.status.and_then(|s| s.pod_ip);
    assert_ne!(second, status.pod_ip);

    sim.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_deleted_pod_disappears_when_its_grace_period_ends() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let sim = sim::start(client.clone(), config(3)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_pod(&pods, "web", json!({})).await?;
    bind(&pods, "web", "sim-node-0").await?;
    assert!(wait_for(WAIT, || async { Ok(is_ready(&pods.get("web").await?)) }).await?);

    let deleted_at = Instant::now();
    pods.delete("web", &DeleteParams::default().grace_period(2))
        .await?;
    let marked = pods.get("web").await?;
    let deadline = marked
        .metadata
        .deletion_timestamp
        .clone()
        .expect("a graceful delete only marks the pod")
        .0;

    let mut last_seen = Instant::now();
    while pods.get_opt("web").await?.is_some() {
        last_seen = Instant::now();
        assert!(
            deleted_at.elapsed() < WAIT,
            "the pod is still there after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone_after = deleted_at.elapsed();
    let gone_at = Timestamp::now();
    println!("pod deleted with a 2 s grace period was gone after {gone_after:?}");
    // The API server's deletionTimestamp has whole seconds, so the grace
    // period as the server counts it ends 1–2 s after the delete.
    assert!(
        last_seen.duration_since(deleted_at) >= Duration::from_millis(900),
        "the pod stayed for most of its grace period"
    );
    assert!(
        gone_at >= deadline,
        "not removed before its deletionTimestamp {deadline}"
    );
    assert!(
        gone_after < Duration::from_secs(4),
        "removed soon after the grace period"
    );

    sim.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_pod_marked_to_complete_succeeds() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let sim = sim::start(client.clone(), config(1)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_pod(
        &pods,
        "job",
        json!({
            "metadata": {"annotations": {sim::COMPLETE_AFTER_ANNOTATION: "1s"}},
            "spec": {"restartPolicy": "Never"},
        }),
    )
    .await?;
    bind(&pods, "job", "sim-node-0").await?;
    let phase = || async {
        let pod = pods.get("job").await?;
        anyhow::Ok(pod.status.and_then(|s| s.phase).unwrap_or_default())
    };
    assert!(wait_for(WAIT, || async { Ok(phase().await? == "Running") }).await?);
    assert!(wait_for(WAIT, || async { Ok(phase().await? == "Succeeded") }).await?);
    let status = pods.get("job").await?.status.unwrap_or_default();
    let terminated = status
        .container_statuses
        .unwrap_or_default()
        .pop()
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .expect("the container terminated");
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );

    sim.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_restarted_simulator_takes_its_nodes_over_and_cleans_up() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");

    let first = sim::start(client.clone(), config(2)).await?;
    first.stop().await?;
    let uid = nodes.get("sim-node-0").await?.metadata.uid;

    let mut relabelled = config(2);
    relabelled.labels = BTreeMap::from([("bench.krust.dev/pool".to_string(), "b".to_string())]);
    relabelled.taints.clear();
    relabelled.cleanup = true;
    let second = sim::start(client.clone(), relabelled).await?;
    let node = nodes.get("sim-node-0").await?;
    assert_eq!(node.metadata.uid, uid, "the same Node, taken over");
    assert_eq!(
        node.metadata
            .labels
            .unwrap_or_default()
            .get("bench.krust.dev/pool")
            .map(String::as_str),
        Some("b")
    );
    assert_eq!(node.spec.and_then(|s| s.taints).unwrap_or_default(), []);

    second.stop().await?;
    assert!(
        nodes.get_opt("sim-node-0").await?.is_none(),
        "cleanup deleted the node"
    );
    assert!(
        leases.get_opt("sim-node-0").await?.is_none(),
        "and its lease"
    );
    Ok(())
}

/// Registration of many nodes over HTTPS, as `krust sim` does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_nodes_register_quickly() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.https_client().await?;
    let config = sim::SimConfig {
        nodes: 2_000,
        zones: 3,
        ..sim::SimConfig::default()
    };
    let sim = sim::start(client.clone(), config).await?;
    println!(
        "registered 2000 simulated nodes (node, status, lease) over HTTPS in {:?}",
        sim.registration_time()
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes.list_metadata(&ListParams::default()).await?;
    assert_eq!(listed.items.len(), 2_000);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    assert_eq!(
        leases
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len(),
        2_000
    );
    assert!(
        sim.registration_time() < Duration::from_secs(20),
        "took {:?}",
        sim.registration_time()
    );
    sim.stop().await?;
    Ok(())
}

/// Status-write throughput: pods already bound when the simulator starts
/// are all driven to Running by its one watch and bounded writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bound_pods_start_in_bulk() -> anyhow::Result<()> {
    const NODES: usize = 500;
    const PODS: usize = 5_000;
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..PODS)
        .map(|i| {
            let pods = &pods;
            async move {
                let node = format!("sim-node-{}", i % NODES);
                create_pod(
                    pods,
                    &format!("bulk-{i}"),
                    json!({"spec": {"nodeName": node}}),
                )
                .await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<()>>()?;

    let began = Instant::now();
    let sim = sim::start(
        client.clone(),
        sim::SimConfig {
            nodes: NODES,
            ..sim::SimConfig::default()
        },
    )
    .await?;
    let registered = began.elapsed();
    let not_running = ListParams::default()
        .fields("status.phase!=Running")
        .limit(1);
    let all_running = wait_for(Duration::from_secs(20), || async {
        Ok(pods.list_metadata(&not_running).await?.items.is_empty())
    })
    .await?;
    let elapsed = began.elapsed() - registered;
    println!(
        "{PODS} bound pods on {NODES} nodes Running {elapsed:?} after registration ({registered:?}): {:.0} pods/s",
        PODS as f64 / elapsed.as_secs_f64()
    );
    assert!(all_running, "every pod is Running");
    let ips: std::collections::HashSet<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|pod| pod.status?.pod_ip)
        .collect();
    assert_eq!(ips.len(), PODS, "every pod has its own IP");
    sim.stop().await?;
    Ok(())
}

async fn create_pod(pods: &Api<Pod>, name: &str, extra: serde_json::Value) -> anyhow::Result<()> {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    });
    merge(&mut pod, extra);
    pods.create(&PostParams::default(), &serde_json::from_value(pod)?)
        .await?;
    Ok(())
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(base), serde_json::Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

/// Binds as the scheduler does: POST pods/NAME/binding.
async fn bind(pods: &Api<Pod>, name: &str, node: &str) -> anyhow::Result<()> {
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let _: serde_json::Value = pods
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await?;
    Ok(())
}

fn is_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn renew_time(leases: &Api<Lease>, name: &str) -> anyhow::Result<Timestamp> {
    leases
        .get(name)
        .await?
        .spec
        .and_then(|s| s.renew_time)
        .map(|t| t.0)
        .ok_or_else(|| anyhow::anyhow!("lease {name} has no renewTime"))
}

/// Polls `check` until it holds or `timeout` passes; whether it held.
async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(true);
        }
        if start.elapsed() > timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
