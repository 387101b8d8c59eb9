//! The scheduler through the API, table-driven: nodes and pods go in through a real API server, the scheduler runs against it, and the chosen node or the PodScheduled=False message comes out.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use testcluster::TestCluster;

/// A node with 4 CPUs, 8 GiB and 110 pods unless `extra` says otherwise.
fn node(name: &str, extra: Value) -> Value {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut node, extra);
    node
}

fn pod(name: &str, extra: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut pod, extra);
    pod
}

fn with_requests(cpu: &str, memory: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
}

/// JSON merge patch semantics, so cases only say what differs.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

enum Expect {
    /// Bound to one of these nodes.
    OnNode(&'static [&'static str]),
    /// PodScheduled=False with exactly this message.
    Unschedulable(&'static str),
}

struct Case {
    name: &'static str,
    nodes: Vec<Value>,
    /// Pods already on nodes (spec.nodeName set).
    existing: Vec<Value>,
    pod: Value,
    expect: Expect,
}

struct Running {
    cluster: TestCluster,
    scheduler: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.scheduler.abort();
    }
}

async fn start(nodes: &[Value], existing: &[Value]) -> Running {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let node_api: Api<Node> = Api::all(client.clone());
    for node in nodes {
        let node: Node = serde_json::from_value(node.clone()).unwrap();
        node_api
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for pod in existing {
        let pod: Pod = serde_json::from_value(pod.clone()).unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let informers = Arc::new(client::Informers::new(client.clone()));
    let scheduler = tokio::spawn(scheduler::run::run(
        client,
        informers,
        scheduler::run::SchedulerConfig::default(),
    ));
    Running { cluster, scheduler }
}

/// The node the pod got, or the PodScheduled=False message, within 10 s.
async fn outcome(pods: &Api<Pod>, name: &str) -> Result<String, String> {
    for _ in 0..200 {
        let pod = pods.get(name).await.unwrap();
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            return Ok(node);
        }
        let condition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            })
            .and_then(|c| c.message.clone());
        if let Some(message) = condition {
            return Err(message);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pod {name} neither bound nor reported unschedulable in 10 s");
}

async fn check(case: Case) {
    let running = start(&case.nodes, &case.existing).await;
    let pods: Api<Pod> = Api::namespaced(running.cluster.client(), "default");
    let incoming: Pod = serde_json::from_value(case.pod).unwrap();
    let name = incoming.metadata.name.clone().unwrap();
    pods.create(&PostParams::default(), &incoming)
        .await
        .unwrap();
    let got = outcome(&pods, &name).await;
    match (&case.expect, &got) {
        (Expect::OnNode(allowed), Ok(node)) if allowed.contains(&node.as_str()) => {}
        (Expect::Unschedulable(message), Err(got)) if got == message => {}
        (Expect::OnNode(allowed), _) => {
            panic!("{}: expected one of {allowed:?}, got {got:?}", case.name)
        }
        (Expect::Unschedulable(message), _) => {
            panic!(
                "{}: expected unschedulable {message:?}, got {got:?}",
                case.name
            )
        }
    }
}

fn on(node: &str, name: &str, extra: Value) -> Value {
    let mut existing = pod(name, extra);
    existing["spec"]["nodeName"] = json!(node);
    existing
}

#[tokio::test]
async fn filters() {
    let cases = vec![
        Case {
            name: "NodeResourcesFit: insufficient cpu everywhere",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![],
            pod: pod("big", with_requests("5", "1Gi")),
            expect: Expect::Unschedulable(
                "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
            ),
        },
        Case {
            name: "NodeResourcesFit: the node with room",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![on("a", "hog", with_requests("3500m", "1Gi"))],
            pod: pod("p", with_requests("1", "1Gi")),
            expect: Expect::OnNode(&["b"]),
        },
        Case {
            name: "NodeResourcesFit: extended resources and pod count",
            nodes: vec![
                node("a", json!({"status": {"allocatable": {"pods": "1"}}})),
                node(
                    "gpu",
                    json!({"status": {"allocatable": {"example.com/gpu": "2"}, "capacity": {"example.com/gpu": "2"}}}),
                ),
            ],
            existing: vec![on("a", "only", json!({}))],
            pod: pod(
                "p",
                json!({"spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"example.com/gpu": "3"}, "limits": {"example.com/gpu": "3"}}}]}}),
            ),
            expect: Expect::Unschedulable(
                "0/2 nodes are available: 1 Too many pods, 2 Insufficient example.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
            ),
        },
        Case {
            name: "NodeUnschedulable and TaintToleration",
            nodes: vec![
                node("cordoned", json!({"spec": {"unschedulable": true}})),
                node(
                    "tainted",
                    json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
                ),
            ],
            existing: vec![],
            pod: pod("p", json!({})),
            expect: Expect::Unschedulable(
                "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
            ),
        },
        Case {
            name: "TaintToleration: a tolerating pod goes to the tainted node",
            nodes: vec![
                node("cordoned", json!({"spec": {"unschedulable": true}})),
                node(
                    "tainted",
                    json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}}),
                ),
            ],
            existing: vec![],
            pod: pod(
                "p",
                json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]}}),
            ),
            expect: Expect::OnNode(&["tainted"]),
        },
        Case {
            name: "NodeAffinity: nodeSelector",
            nodes: vec![
                node("ssd", json!({"metadata": {"labels": {"disk": "ssd"}}})),
                node("hdd", json!({"metadata": {"labels": {"disk": "hdd"}}})),
            ],
            existing: vec![],
            pod: pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            expect: Expect::OnNode(&["ssd"]),
        },
        Case {
            name: "NodeAffinity: required terms with NotIn, Exists, Gt and matchFields",
            nodes: vec![
                node(
                    "small",
                    json!({"metadata": {"labels": {"cores": "2", "zone": "z1"}}}),
                ),
                node(
                    "large",
                    json!({"metadata": {"labels": {"cores": "64", "zone": "z1"}}}),
                ),
                node(
                    "large-z2",
                    json!({"metadata": {"labels": {"cores": "64", "zone": "z2"}}}),
                ),
                node("bare", json!({})),
            ],
            existing: vec![],
            pod: pod(
                "p",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "cores", "operator": "Gt", "values": ["8"]},
                        {"key": "zone", "operator": "NotIn", "values": ["z2"]},
                        {"key": "zone", "operator": "Exists"}
                    ]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["nowhere"]}]}
                ]}}}}}),
            ),
            expect: Expect::OnNode(&["large"]),
        },
        Case {
            name: "NodeAffinity: no node matches",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![],
            pod: pod(
                "p",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}, {"key": "kubernetes.io/hostname", "operator": "In", "values": ["c"]}]}
                ]}}}}}),
            ),
            expect: Expect::Unschedulable(
                "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
            ),
        },
        Case {
            name: "NodePorts: a hostPort already taken",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![on(
                "a",
                "web",
                json!({"spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
            )],
            pod: pod(
                "p",
                json!({"spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
            ),
            expect: Expect::OnNode(&["b"]),
        },
        Case {
            name: "PodTopologySpread: DoNotSchedule keeps zones within maxSkew",
            nodes: vec![
                node("z1-a", json!({"metadata": {"labels": {"zone": "z1"}}})),
                node("z1-b", json!({"metadata": {"labels": {"zone": "z1"}}})),
                node("z2-a", json!({"metadata": {"labels": {"zone": "z2"}}})),
            ],
            existing: vec![
                on(
                    "z1-a",
                    "e1",
                    json!({"metadata": {"labels": {"app": "web"}}}),
                ),
                on(
                    "z1-b",
                    "e2",
                    json!({"metadata": {"labels": {"app": "web"}}}),
                ),
                on(
                    "z2-a",
                    "e3",
                    json!({"metadata": {"labels": {"app": "web"}}}),
                ),
            ],
            pod: pod(
                "p",
                json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}
                ]}}),
            ),
            expect: Expect::OnNode(&["z2-a"]),
        },
        Case {
            name: "InterPodAffinity: required affinity to a pod's node",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![on(
                "b",
                "cache",
                json!({"metadata": {"labels": {"app": "cache"}}}),
            )],
            pod: pod(
                "p",
                json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}
                ]}}}}),
            ),
            expect: Expect::OnNode(&["b"]),
        },
        Case {
            name: "InterPodAffinity: required anti-affinity",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![on(
                "a",
                "web-1",
                json!({"metadata": {"labels": {"app": "web"}}}),
            )],
            pod: pod(
                "p",
                json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
                ]}}}}),
            ),
            expect: Expect::OnNode(&["b"]),
        },
        Case {
            name: "InterPodAffinity: existing pods' anti-affinity against the incoming pod",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![
                on(
                    "a",
                    "loner-a",
                    json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}),
                ),
                on(
                    "b",
                    "loner-b",
                    json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}),
                ),
            ],
            pod: pod("p", json!({"metadata": {"labels": {"app": "noisy"}}})),
            expect: Expect::Unschedulable(
                "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
            ),
        },
    ];
    for case in cases {
        check(case).await;
    }
}

#[tokio::test]
async fn scores() {
    let cases = vec![
        Case {
            name: "NodeResourcesFit LeastAllocated: the emptier node",
            nodes: vec![node("busy", json!({})), node("idle", json!({}))],
            existing: vec![on("busy", "load", with_requests("2", "4Gi"))],
            pod: pod("p", with_requests("500m", "512Mi")),
            expect: Expect::OnNode(&["idle"]),
        },
        Case {
            name: "NodeAffinity preferred",
            nodes: vec![
                node("a", json!({"metadata": {"labels": {"tier": "gold"}}})),
                node("b", json!({})),
            ],
            existing: vec![],
            pod: pod(
                "p",
                json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 50, "preference": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}}
                ]}}}}),
            ),
            expect: Expect::OnNode(&["a"]),
        },
        Case {
            name: "TaintToleration PreferNoSchedule is avoided",
            nodes: vec![
                node(
                    "soft",
                    json!({"spec": {"taints": [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]}}),
                ),
                node("plain", json!({})),
            ],
            existing: vec![],
            pod: pod("p", json!({})),
            expect: Expect::OnNode(&["plain"]),
        },
        Case {
            name: "ImageLocality: the node that has the image",
            nodes: vec![
                node("cold", json!({})),
                node(
                    "warm",
                    json!({"status": {"images": [{"names": ["docker.io/library/bigimage:1.0"], "sizeBytes": 900_000_000u64}]}}),
                ),
            ],
            existing: vec![],
            pod: pod(
                "p",
                json!({"spec": {"containers": [{"name": "c", "image": "docker.io/library/bigimage:1.0"}]}}),
            ),
            expect: Expect::OnNode(&["warm"]),
        },
        Case {
            name: "InterPodAffinity preferred",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![on(
                "a",
                "db",
                json!({"metadata": {"labels": {"app": "db"}}}),
            )],
            pod: pod(
                "p",
                json!({"spec": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}}
                ]}}}}),
            ),
            expect: Expect::OnNode(&["a"]),
        },
        Case {
            name: "PodTopologySpread ScheduleAnyway prefers the emptier domain",
            nodes: vec![node("a", json!({})), node("b", json!({}))],
            existing: vec![
                on("a", "w1", json!({"metadata": {"labels": {"app": "w"}}})),
                on("a", "w2", json!({"metadata": {"labels": {"app": "w"}}})),
            ],
            pod: pod(
                "p",
                json!({"metadata": {"labels": {"app": "w"}}, "spec": {"topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "w"}}}
                ]}}),
            ),
            expect: Expect::OnNode(&["b"]),
        },
    ];
    for case in cases {
        check(case).await;
    }
}

#[tokio::test]
async fn preemption() {
    // One node full of low-priority pods; a high-priority pod preempts one
    // and is nominated there.
    let running = start(
        &[node("a", json!({}))],
        &[
            on("a", "low-1", with_requests("2", "1Gi")),
            on("a", "low-2", with_requests("2", "1Gi")),
        ],
    )
    .await;
    let client = running.cluster.client();
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    let high = json!({"metadata": {"name": "high"}, "value": 1000});
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(high).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut preemptor = pod("vip", with_requests("2", "1Gi"));
    preemptor["spec"]["priorityClassName"] = json!("high");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(preemptor).unwrap(),
    )
    .await
    .unwrap();
    // A victim gets the DisruptionTarget condition and a deletion; play the
    // kubelet and finish it.
    let mut victim = None;
    for _ in 0..200 {
        for name in ["low-1", "low-2"] {
            let pod = pods.get(name).await.unwrap();
            if pod.metadata.deletion_timestamp.is_some() {
                let conditions = pod.status.and_then(|s| s.conditions).unwrap_or_default();
                assert!(conditions.iter().any(|c| c.type_ == "DisruptionTarget"
                    && c.reason.as_deref() == Some("PreemptionByScheduler")));
                victim = Some(name);
            }
        }
        if victim.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = victim.expect("a low-priority pod was preempted");
    let nominated = pods
        .get("vip")
        .await
        .unwrap()
        .status
        .and_then(|s| s.nominated_node_name);
    assert_eq!(nominated.as_deref(), Some("a"));
    pods.delete(
        victim,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(outcome(&pods, "vip").await, Ok("a".to_string()));
    let survivor = if victim == "low-1" { "low-2" } else { "low-1" };
    assert!(
        pods.get(survivor)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
}

#[tokio::test]
async fn preemption_never_and_pod_disruption_budgets() {
    let running = start(
        &[node("a", json!({})), node("b", json!({}))],
        &[
            on("a", "guarded", json!({"metadata": {"labels": {"app": "guarded"}}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "4"}}}]}})),
            on("b", "plain", with_requests("4", "1Gi")),
        ],
    )
    .await;
    let client = running.cluster.client();
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    for class in [
        json!({"metadata": {"name": "polite"}, "value": 1000, "preemptionPolicy": "Never"}),
        json!({"metadata": {"name": "high"}, "value": 1000}),
    ] {
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(class).unwrap(),
            )
            .await
            .unwrap();
    }
    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), "default");
    let budget = json!({"metadata": {"name": "guard"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
        "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}});
    budgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(budget).unwrap(),
        )
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut polite = pod("polite", with_requests("1", "1Gi"));
    polite["spec"]["priorityClassName"] = json!("polite");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(polite).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome(&pods, "polite").await,
        Err("0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.".to_string())
    );

    // The budget steers preemption to the unguarded node.
    let mut pushy = pod("pushy", with_requests("1", "1Gi"));
    pushy["spec"]["priorityClassName"] = json!("high");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pushy).unwrap(),
    )
    .await
    .unwrap();
    for _ in 0..200 {
        if pods
            .get("plain")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pods.get("plain")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert!(
        pods.get("guarded")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
}

#[tokio::test]
async fn pending_pods_are_retried_when_a_node_joins_and_other_profiles_are_left_alone() {
    let running = start(
        &[node(
            "small",
            json!({"status": {"allocatable": {"cpu": "1"}}}),
        )],
        &[],
    )
    .await;
    let client = running.cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod("waits", with_requests("2", "1Gi"))).unwrap(),
    )
    .await
    .unwrap();
    let mut foreign = pod("foreign", json!({}));
    foreign["spec"]["schedulerName"] = json!("other-scheduler");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(foreign).unwrap(),
    )
    .await
    .unwrap();
    assert!(outcome(&pods, "waits").await.is_err());
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node("big", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    // The node event moves it back; it binds within its backoff.
    let mut bound = None;
    for _ in 0..100 {
        bound = pods
            .get("waits")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.node_name);
        if bound.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bound.as_deref(), Some("big"));
    let foreign = pods.get("foreign").await.unwrap();
    assert!(foreign.spec.unwrap().node_name.is_none());
    assert!(
        foreign
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .all(|c| c.type_ != "PodScheduled" || c.status != "False")
    );
    // An event tells why it waited and where it went.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "default");
    let mut reasons = Vec::new();
    for _ in 0..50 {
        reasons = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("waits"))
            .filter_map(|e| e.reason)
            .collect();
        if reasons.iter().any(|r| r == "Scheduled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reasons.iter().any(|r| r == "FailedScheduling"),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "Scheduled"), "{reasons:?}");
}
