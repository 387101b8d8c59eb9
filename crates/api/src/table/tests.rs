//! Tests for server-side tables: exact columns and cells per kind, pod status reasons, durations and malformed input.

use serde_json::{Value, json};

use super::time::Instant;
use super::{IncludeObject, human_duration, pod_status_reason, table};

/// 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fn ago(seconds: i64) -> String {
    Instant::from_unix_seconds(NOW - seconds).rfc3339_utc()
}

fn meta(name: &str, age_seconds: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age_seconds)})
}

fn rows(resource: &str, group: &str, objects: &[Value]) -> Vec<Vec<Value>> {
    let built = table(resource, group, objects, NOW, IncludeObject::None);
    built["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["cells"].as_array().unwrap().clone())
        .collect()
}

fn cells(resource: &str, group: &str, object: Value) -> Vec<Value> {
    rows(resource, group, &[object]).remove(0)
}

/// Column names, `*`-suffixed for `-o wide` columns.
fn columns(resource: &str, group: &str) -> Vec<String> {
    table(resource, group, &[], NOW, IncludeObject::None)["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|column| {
            let name = column["name"].as_str().unwrap();
            match column["priority"].as_i64().unwrap() {
                0 => name.to_string(),
                _ => format!("{name}*"),
            }
        })
        .collect()
}

#[test]
fn human_duration_matches_upstream_boundaries() {
    let cases = [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (10_799, "179m"),
        (10_800, "3h"),
        (12_000, "3h20m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (3 * 86_400 + 4 * 3600, "3d4h"),
        (8 * 86_400 - 1, "7d23h"),
        (8 * 86_400, "8d"),
        (730 * 86_400 - 1, "729d"),
        (730 * 86_400, "2y"),
        (760 * 86_400, "2y30d"),
        (8 * 365 * 86_400, "8y"),
        (3655 * 86_400, "10y"),
    ];
    for (seconds, expected) in cases {
        assert_eq!(human_duration(seconds), expected, "{seconds}s");
    }
}

#[test]
fn timestamps_parse_offsets_and_fractions() {
    let utc = Instant::parse("2023-11-14T22:13:20Z").unwrap();
    assert_eq!(utc, Instant::from_unix_seconds(NOW));
    assert_eq!(Instant::parse("2023-11-15T00:13:20+02:00"), Some(utc));
    let micro = Instant::parse("2023-11-14T22:13:20.500000Z").unwrap();
    assert_eq!(micro.0 - utc.0, 500_000_000);
    assert_eq!(utc.rfc3339_utc(), "2023-11-14T22:13:20Z");
    assert_eq!(
        Instant::parse("2024-02-29T00:00:00Z")
            .unwrap()
            .rfc3339_utc(),
        "2024-02-29T00:00:00Z"
    );
    for bad in [
        "",
        "yesterday",
        "2023-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2023-11-14T22:13:60Z",
        "2023-11-14 22:13:20",
        "2023-11-14T22:13:20",
    ] {
        assert_eq!(Instant::parse(bad), None, "{bad}");
    }
    assert_eq!(
        Instant::from_value(Some(&json!("0001-01-01T00:00:00Z"))),
        None,
        "Go's zero time means unset"
    );
}

#[test]
fn table_envelope_and_column_definitions() {
    let built = table("namespaces", "", &[], NOW, IncludeObject::Metadata);
    assert_eq!(built["kind"], "Table");
    assert_eq!(built["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(built["metadata"], json!({"resourceVersion": ""}));
    assert_eq!(built["rows"], json!([]));
    let name = &built["columnDefinitions"][0];
    assert_eq!(name["name"], "Name");
    assert_eq!(name["type"], "string");
    assert_eq!(name["format"], "name");
    assert_eq!(name["priority"], 0);
    assert!(!name["description"].as_str().unwrap().is_empty());
    assert_eq!(built["columnDefinitions"][2]["format"], "");
}

#[test]
fn include_object_controls_the_row_object() {
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("prod", 60), "status": {"phase": "Active"}});
    let objects = [namespace.clone()];

    let metadata = table("namespaces", "", &objects, NOW, IncludeObject::Metadata);
    assert_eq!(
        metadata["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": namespace["metadata"]})
    );
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);

    let full = table("namespaces", "", &objects, NOW, IncludeObject::Object);
    assert_eq!(full["rows"][0]["object"], namespace);

    let none = table("namespaces", "", &objects, NOW, IncludeObject::None);
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(none["rows"][0]["cells"], json!(["prod", "Active", "60s"]));
}

fn running(name: &str, ready: bool, restarts: i64) -> Value {
    json!({"name": name, "ready": ready, "restartCount": restarts, "started": true,
           "state": {"running": {"startedAt": ago(600)}}})
}

fn pod(spec: Value, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-0", 3 * 3600), "spec": spec, "status": status})
}

fn two_containers() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx"}, {"name": "log", "image": "busybox"}], "nodeName": "node-1"})
}

#[test]
fn pod_columns_match_upstream() {
    assert_eq!(
        columns("pods", ""),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP*",
            "Node*",
            "Nominated Node*",
            "Readiness Gates*"
        ]
    );
}

#[test]
fn running_pod_with_one_container_crash_looping() {
    let crash_looping = json!({
        "name": "log", "ready": false, "restartCount": 3, "started": false,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}},
    });
    let web = pod(
        two_containers(),
        json!({"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}],
               "conditions": [{"type": "Ready", "status": "False"}],
               "containerStatuses": [running("app", true, 0), crash_looping]}),
    );
    assert_eq!(
        cells("pods", "", web),
        json!([
            "web-0",
            "1/2",
            "CrashLoopBackOff",
            "3 (5m ago)",
            "3h",
            "10.0.0.7",
            "node-1",
            "<none>",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn healthy_pod_and_wide_cells() {
    let mut spec = two_containers();
    spec["readinessGates"] =
        json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]);
    let healthy = pod(
        spec,
        json!({"phase": "Running", "podIP": "10.0.0.8", "nominatedNodeName": "node-2",
               "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"},
                              {"type": "example.com/dns", "status": "False"}],
               "containerStatuses": [running("app", true, 0), running("log", true, 0)]}),
    );
    let row = cells("pods", "", healthy);
    assert_eq!(row[1..4], [json!("2/2"), json!("Running"), json!("0")]);
    assert_eq!(
        row[5..],
        [
            json!("10.0.0.8"),
            json!("node-1"),
            json!("node-2"),
            json!("1/2")
        ]
    );
}

#[test]
fn pod_status_reasons() {
    let init_spec = json!({"initContainers": [{"name": "migrate", "image": "m"}], "containers": [{"name": "app", "image": "a"}]});
    let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
    let cases = [
        (
            "init waiting to start",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "migrate", "state": waiting("PodInitializing"), "restartCount": 0}],
                "containerStatuses": [{"name": "app", "state": waiting("PodInitializing")}]}),
            ),
            "Init:0/1",
        ),
        (
            "init crash looping",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "migrate", "state": waiting("CrashLoopBackOff"), "restartCount": 4}]}),
            ),
            "Init:CrashLoopBackOff",
        ),
        (
            "init failed with reason",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "migrate", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
            ),
            "Init:Error",
        ),
        (
            "init killed by signal",
            pod(
                init_spec.clone(),
                json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "migrate", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            ),
            "Init:Signal:9",
        ),
        (
            "container exited without reason",
            pod(
                two_containers(),
                json!({"phase": "Running",
                "containerStatuses": [running("app", true, 0), {"name": "log", "state": {"terminated": {"exitCode": 3}}}]}),
            ),
            "ExitCode:3",
        ),
        (
            "terminating",
            {
                let mut terminating = pod(
                    two_containers(),
                    json!({"phase": "Running",
                    "containerStatuses": [running("app", true, 0), running("log", true, 0)]}),
                );
                terminating["metadata"]["deletionTimestamp"] = json!(ago(10));
                terminating
            },
            "Terminating",
        ),
        (
            "lost node",
            {
                let mut lost = pod(
                    two_containers(),
                    json!({"phase": "Running", "reason": "NodeLost"}),
                );
                lost["metadata"]["deletionTimestamp"] = json!(ago(10));
                lost
            },
            "Unknown",
        ),
        (
            "completed",
            pod(
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Succeeded",
                "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
            "Completed",
        ),
        (
            "one completed one still running, not ready",
            pod(
                two_containers(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                                      running("log", true, 0)]}),
            ),
            "NotReady",
        ),
        (
            "one completed one still running, ready",
            pod(
                two_containers(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                                      running("log", true, 0)]}),
            ),
            "Running",
        ),
        (
            "scheduling gated",
            pod(
                two_containers(),
                json!({"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            "SchedulingGated",
        ),
        (
            "evicted",
            pod(
                two_containers(),
                json!({"phase": "Failed", "reason": "Evicted"}),
            ),
            "Evicted",
        ),
    ];
    for (description, object, expected) in cases {
        assert_eq!(pod_status_reason(&object), expected, "{description}");
    }
}

#[test]
fn pod_in_init_shows_ready_and_restarts_of_init_containers() {
    let initializing = pod(
        json!({"initContainers": [{"name": "migrate"}], "containers": [{"name": "app"}]}),
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "migrate", "restartCount": 2,
            "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    let row = cells("pods", "", initializing);
    assert_eq!(row[1..4], [json!("0/1"), json!("Init:0/1"), json!("2")]);
}

#[test]
fn sidecar_init_containers_count_towards_ready() {
    let with_sidecar = pod(
        json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}),
        json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
               "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                   "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(7200)}}}],
               "containerStatuses": [running("app", true, 0)]}),
    );
    let row = cells("pods", "", with_sidecar);
    assert_eq!(
        row[1..4],
        [json!("2/2"), json!("Running"), json!("1 (120m ago)")]
    );
}

#[test]
fn finished_pods_carry_a_completed_row_condition() {
    let done = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Succeeded"}),
    );
    let built = table("pods", "", &[done], NOW, IncludeObject::None);
    assert_eq!(
        built["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
    let live = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Running"}),
    );
    let built = table("pods", "", &[live], NOW, IncludeObject::None);
    assert!(built["rows"][0].get("conditions").is_none());
}

#[test]
fn nodes() {
    assert_eq!(
        columns("nodes", ""),
        [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP*",
            "External-IP*",
            "OS-Image*",
            "Kernel-Version*",
            "Container-Runtime*"
        ]
    );
    let control_plane = json!({
        "metadata": {"name": "cp-1", "creationTimestamp": ago(10 * 86_400),
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "", "kubernetes.io/hostname": "cp-1"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Ubuntu 24.04", "kernelVersion": "6.8.0", "containerRuntimeVersion": "containerd://1.7.0"}
        }
    });
    assert_eq!(
        cells("nodes", "", control_plane),
        [
            json!("cp-1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,etcd"),
            json!("10d"),
            json!("v1.31.0"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Ubuntu 24.04"),
            json!("6.8.0"),
            json!("containerd://1.7.0")
        ]
    );
    let bare = json!({"metadata": {"name": "w", "labels": {"kubernetes.io/role": "worker"}},
                      "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let row = cells("nodes", "", bare);
    assert_eq!(
        row[1..5],
        [
            json!("NotReady"),
            json!("worker"),
            json!("<unknown>"),
            json!("")
        ]
    );
    assert_eq!(row[7], "<unknown>");
    let fresh = cells("nodes", "", json!({"metadata": {"name": "n"}}));
    assert_eq!(fresh[1..3], [json!("Unknown"), json!("<none>")]);
}

fn service(spec: Value, status: Value) -> Value {
    json!({"metadata": meta("web", 90), "spec": spec, "status": status})
}

#[test]
fn services() {
    assert_eq!(
        columns("services", ""),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector*"
        ]
    );
    let node_port = service(
        json!({"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web", "tier": "fe"},
               "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
        json!({}),
    );
    assert_eq!(
        cells("services", "", node_port),
        [
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("90s"),
            json!("app=web,tier=fe")
        ]
    );

    let pending = service(
        json!({"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": [{"port": 443, "nodePort": 31443}]}),
        json!({"loadBalancer": {}}),
    );
    let row = cells("services", "", pending);
    assert_eq!(row[3..5], [json!("<pending>"), json!("443:31443/TCP")]);
    assert_eq!(row[6], "<none>");

    let provisioned = service(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "externalIPs": ["1.2.3.4"], "ports": [{"port": 80}]}),
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a-very-long-name.elb.example.com"}, {"ip": "203.0.113.9"}]}}),
    );
    assert_eq!(
        cells("services", "", provisioned)[3],
        "203.0.113.9,a-very-long-name.elb.example.com,1.2.3.4"
    );

    let headless = service(json!({"clusterIP": "None"}), json!({}));
    assert_eq!(
        cells("services", "", headless)[1..5],
        [
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("<none>")
        ]
    );

    let external = service(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    assert_eq!(
        cells("services", "", external)[2..4],
        [json!("<none>"), json!("db.example.com")]
    );
}

#[test]
fn endpoints_and_endpoint_slices() {
    let endpoints = json!({"metadata": meta("web", 30), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 8080}, {"port": 9090}]}]});
    assert_eq!(
        cells("endpoints", "", endpoints)[1],
        "10.0.0.1:8080,[fd00::2]:8080,10.0.0.1:9090 + 1 more..."
    );
    assert_eq!(
        cells("endpoints", "", json!({"metadata": meta("empty", 30)}))[1],
        "<none>"
    );
    let headless =
        json!({"metadata": meta("db", 30), "subsets": [{"addresses": [{"ip": "10.0.0.5"}]}]});
    assert_eq!(cells("endpoints", "", headless)[1], "10.0.0.5");

    assert_eq!(
        columns("endpointslices", "discovery.k8s.io"),
        ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    );
    let slice = json!({"metadata": meta("web-abc", 30), "addressType": "IPv4",
        "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]}]});
    assert_eq!(
        cells("endpointslices", "discovery.k8s.io", slice)[1..4],
        [
            json!("IPv4"),
            json!("80,metrics,*"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...")
        ]
    );
    let empty = json!({"metadata": meta("none", 30), "addressType": "IPv6"});
    assert_eq!(
        cells("endpointslices", "discovery.k8s.io", empty)[2..4],
        [json!("<unset>"), json!("<unset>")]
    );
}

#[test]
fn config_secrets_accounts_namespaces() {
    let config_map = json!({"metadata": meta("settings", 86_400), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("configmaps", "", config_map),
        [json!("settings"), json!(3), json!("24h")]
    );
    let secret = json!({"metadata": meta("token", 100), "type": "kubernetes.io/service-account-token", "data": {"token": "eA=="}});
    assert_eq!(
        cells("secrets", "", secret),
        [
            json!("token"),
            json!("kubernetes.io/service-account-token"),
            json!(1),
            json!("100s")
        ]
    );
    assert_eq!(
        cells("secrets", "", json!({"metadata": meta("s", 5)}))[1..3],
        [json!("Opaque"), json!(0)]
    );
    let account = json!({"metadata": meta("default", 5), "secrets": [{"name": "a"}]});
    assert_eq!(
        cells("serviceaccounts", "", account),
        [json!("default"), json!(1), json!("5s")]
    );
    let terminating = json!({"metadata": meta("old", 5), "status": {"phase": "Terminating"}});
    assert_eq!(cells("namespaces", "", terminating)[1], "Terminating");
    assert_eq!(columns("namespaces", ""), ["Name", "Status", "Age"]);
}

#[test]
fn core_events() {
    assert_eq!(
        columns("events", ""),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject*",
            "Source*",
            "Message",
            "First Seen*",
            "Count*",
            "Name*"
        ]
    );
    let event = json!({
        "metadata": meta("web-0.17a", 3600),
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
        "firstTimestamp": ago(3600), "lastTimestamp": ago(65), "count": 12,
        "source": {"component": "kubelet", "host": "node-1"}
    });
    assert_eq!(
        cells("events", "", event),
        [
            json!("65s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-0"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Back-off restarting failed container"),
            json!("60m"),
            json!(12),
            json!("web-0.17a")
        ]
    );
    let new_style = json!({
        "metadata": meta("n", 10), "involvedObject": {"kind": "Node"}, "type": "Normal", "reason": "Starting",
        "eventTime": "2023-11-14T22:03:20.123456Z", "reportingController": "kubelet",
        "firstTimestamp": null, "lastTimestamp": null
    });
    let row = cells("events", "", new_style);
    // The micro-time's fraction keeps it just under ten minutes old.
    assert_eq!(row[0], "9m59s");
    assert_eq!(row[3], "node");
    assert_eq!(row[5], "kubelet");
    assert_eq!(row[7..9], [json!("9m59s"), json!(1)]);
}

#[test]
fn events_v1_read_their_renamed_fields() {
    let event = json!({
        "metadata": meta("web-0.17b", 600), "regarding": {"kind": "Deployment", "name": "web"},
        "note": "Scaled up replica set web-7d9 to 3", "type": "Normal", "reason": "ScalingReplicaSet",
        "eventTime": ago(600), "series": {"count": 4, "lastObservedTime": ago(30)},
        "reportingController": "deployment-controller", "reportingInstance": "cp-1"
    });
    assert_eq!(
        cells("events", "events.k8s.io", event),
        [
            json!("30s"),
            json!("Normal"),
            json!("ScalingReplicaSet"),
            json!("deployment/web"),
            json!(""),
            json!("deployment-controller, cp-1"),
            json!("Scaled up replica set web-7d9 to 3"),
            json!("10m"),
            json!(4),
            json!("web-0.17b")
        ]
    );
}

#[test]
fn persistent_volumes_and_claims() {
    let volume = json!({
        "metadata": {"name": "pv-1", "creationTimestamp": ago(7200), "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete",
                 "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "fast"},
        "status": {"phase": "Bound"}
    });
    assert_eq!(
        cells("persistentvolumes", "", volume),
        [
            json!("pv-1"),
            json!("10Gi"),
            json!("RWO,RWX"),
            json!("Delete"),
            json!("Bound"),
            json!("default/data"),
            json!("legacy"),
            json!("<unset>"),
            json!(""),
            json!("120m"),
            json!("Filesystem")
        ]
    );
    let pending = json!({"metadata": meta("data", 20), "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}},
                         "status": {"phase": "Pending"}});
    assert_eq!(
        cells("persistentvolumeclaims", "", pending),
        [
            json!("data"),
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!("fast"),
            json!("<unset>"),
            json!("20s"),
            json!("Filesystem")
        ]
    );
    let mut bound = json!({"metadata": meta("data", 20), "spec": {"volumeName": "pv-1", "volumeMode": "Block"},
                           "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOncePod"]}});
    bound["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(
        cells("persistentvolumeclaims", "", bound)[1..7],
        [
            json!("Terminating"),
            json!("pv-1"),
            json!("10Gi"),
            json!("RWOP"),
            json!(""),
            json!("<unset>")
        ]
    );
}

#[test]
fn replication_controllers_and_resource_quotas() {
    let controller = json!({"metadata": meta("rc", 60), "spec": {"replicas": 2, "selector": {"app": "x"},
        "template": {"spec": {"containers": [{"name": "a", "image": "img:1"}]}}}, "status": {"replicas": 2, "readyReplicas": 1}});
    assert_eq!(
        cells("replicationcontrollers", "", controller),
        [
            json!("rc"),
            json!(2),
            json!(2),
            json!(1),
            json!("60s"),
            json!("a"),
            json!("img:1"),
            json!("app=x")
        ]
    );
    let quota = json!({"metadata": meta("compute", 60), "status": {
        "hard": {"requests.cpu": "2", "pods": "10", "limits.memory": "4Gi", "limits.cpu": "4"},
        "used": {"requests.cpu": "500m", "limits.cpu": "1"}}});
    assert_eq!(
        cells("resourcequotas", "", quota)[1..3],
        [
            json!("pods: 0/10, requests.cpu: 500m/2"),
            json!("limits.cpu: 1/4, limits.memory: 0/4Gi")
        ]
    );
}

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

#[test]
fn deployment_mid_rollout() {
    assert_eq!(
        columns("deployments", "apps"),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let deployment = json!({
        "metadata": meta("web", 5 * 86_400 + 7200),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["fe", "edge"]}, {"key": "canary", "operator": "DoesNotExist"}]},
                 "template": template(json!([{"name": "nginx", "image": "nginx:1.27"}, {"name": "sidecar", "image": "envoy:1"}]))},
        "status": {"replicas": 4, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2}
    });
    assert_eq!(
        cells("deployments", "apps", deployment),
        [
            json!("web"),
            json!("2/3"),
            json!(1),
            json!(2),
            json!("5d2h"),
            json!("nginx,sidecar"),
            json!("nginx:1.27,envoy:1"),
            json!("app=web,!canary,tier in (edge,fe)")
        ]
    );
    let unspecified = json!({"metadata": meta("d", 1), "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}}});
    let row = cells("deployments", "apps", unspecified);
    assert_eq!(row[1], "0/1", "replicas default to 1");
    assert_eq!(row[7], "<invalid>");
}

#[test]
fn replica_stateful_and_daemon_sets() {
    let replica_set = json!({"metadata": meta("web-7d9", 60), "spec": {"replicas": 3, "selector": {},
        "template": template(json!([{"name": "nginx", "image": "nginx"}]))}, "status": {"replicas": 3, "readyReplicas": 3}});
    assert_eq!(
        cells("replicasets", "apps", replica_set),
        [
            json!("web-7d9"),
            json!(3),
            json!(3),
            json!(3),
            json!("60s"),
            json!("nginx"),
            json!("nginx"),
            json!("<none>")
        ]
    );
    let stateful_set = json!({"metadata": meta("db", 60), "spec": {"replicas": 3, "template": template(json!([{"name": "pg", "image": "postgres:16"}]))},
                              "status": {"readyReplicas": 1}});
    assert_eq!(
        cells("statefulsets", "apps", stateful_set),
        [
            json!("db"),
            json!("1/3"),
            json!("60s"),
            json!("pg"),
            json!("postgres:16")
        ]
    );
    assert_eq!(
        columns("statefulsets", "apps"),
        ["Name", "Ready", "Age", "Containers*", "Images*"]
    );
    let daemon_set = json!({"metadata": meta("proxy", 60), "spec": {"selector": {"matchLabels": {"k8s-app": "proxy"}},
        "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "p", "image": "kp"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 2}});
    assert_eq!(
        cells("daemonsets", "apps", daemon_set),
        [
            json!("proxy"),
            json!(3),
            json!(3),
            json!(2),
            json!(1),
            json!(2),
            json!("kubernetes.io/os=linux"),
            json!("60s"),
            json!("p"),
            json!("kp"),
            json!("k8s-app=proxy")
        ]
    );
}

#[test]
fn controller_revisions() {
    let revision = json!({"metadata": {"name": "db-5f7", "creationTimestamp": ago(60), "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": "not-controller"},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]}, "revision": 2});
    assert_eq!(
        cells("controllerrevisions", "apps", revision),
        [
            json!("db-5f7"),
            json!("statefulset.apps/db"),
            json!(2),
            json!("60s")
        ]
    );
    assert_eq!(
        cells(
            "controllerrevisions",
            "apps",
            json!({"metadata": meta("orphan", 1)})
        )[1],
        "<none>"
    );
}

#[test]
fn jobs() {
    assert_eq!(
        columns("jobs", "batch"),
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let completed = json!({
        "metadata": meta("backup", 600),
        "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                 "template": template(json!([{"name": "backup", "image": "restic"}]))},
        "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(555),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        cells("jobs", "batch", completed),
        [
            json!("backup"),
            json!("Complete"),
            json!("1/1"),
            json!("45s"),
            json!("10m"),
            json!("backup"),
            json!("restic"),
            json!("batch.kubernetes.io/controller-uid=abc")
        ]
    );
    let running = json!({"metadata": meta("work", 300), "spec": {"parallelism": 3}, "status": {"succeeded": 2, "startTime": ago(290)}});
    assert_eq!(
        cells("jobs", "batch", running)[1..4],
        [json!("Running"), json!("2/1 of 3"), json!("4m50s")]
    );
    let failed = json!({"metadata": meta("bad", 300), "spec": {"completions": 5},
                        "status": {"conditions": [{"type": "Complete", "status": "False"}, {"type": "Failed", "status": "True"}]}});
    assert_eq!(
        cells("jobs", "batch", failed)[1..4],
        [json!("Failed"), json!("0/5"), json!("")]
    );
    let suspended = json!({"metadata": meta("later", 300), "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(cells("jobs", "batch", suspended)[1], "Suspended");
}

#[test]
fn cron_jobs() {
    assert_eq!(
        columns("cronjobs", "batch"),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers*",
            "Images*",
            "Selector*"
        ]
    );
    let cron_job = json!({
        "metadata": meta("report", 2 * 86_400),
        "spec": {"schedule": "*/5 * * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": template(json!([{"name": "r", "image": "report:2"}]))}}},
        "status": {"active": [{"name": "report-1"}], "lastScheduleTime": ago(180)}
    });
    assert_eq!(
        cells("cronjobs", "batch", cron_job),
        [
            json!("report"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("3m"),
            json!("2d"),
            json!("r"),
            json!("report:2"),
            json!("<none>")
        ]
    );
    let paused = json!({"metadata": meta("p", 10), "spec": {"schedule": "@daily", "timeZone": "Europe/Paris", "suspend": true}});
    assert_eq!(
        cells("cronjobs", "batch", paused)[2..6],
        [
            json!("Europe/Paris"),
            json!("True"),
            json!(0),
            json!("<none>")
        ]
    );
}

#[test]
fn horizontal_pod_autoscalers() {
    let autoscaler = json!({
        "metadata": meta("web", 60),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "512Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}]},
        "status": {"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "90m"}}}]}
    });
    assert_eq!(
        cells("horizontalpodautoscalers", "autoscaling", autoscaler),
        [
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 45%/70%, memory: <unknown>/512Mi + 1 more..."),
            json!("2"),
            json!(10),
            json!(3),
            json!("60s")
        ]
    );
    let v1 = json!({"metadata": meta("v1", 60), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 4,
                    "targetCPUUtilizationPercentage": 50}, "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 12}});
    assert_eq!(
        cells("horizontalpodautoscalers", "autoscaling", v1)[2..4],
        [json!("cpu: 12%/50%"), json!("1")]
    );
    let defaulted = json!({"metadata": meta("d", 60), "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}, "maxReplicas": 2}});
    assert_eq!(
        cells("horizontalpodautoscalers", "autoscaling", defaulted)[2],
        "cpu: <unknown>/80%"
    );
}

#[test]
fn pod_disruption_budgets() {
    let budget = json!({"metadata": meta("web", 60), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("poddisruptionbudgets", "policy", budget),
        [
            json!("web"),
            json!("50%"),
            json!("N/A"),
            json!(1),
            json!("60s")
        ]
    );
    let by_count = json!({"metadata": meta("db", 60), "spec": {"maxUnavailable": 1}});
    assert_eq!(
        cells("poddisruptionbudgets", "policy", by_count)[1..4],
        [json!("N/A"), json!("1"), json!(0)]
    );
}

#[test]
fn ingresses_and_classes() {
    assert_eq!(
        columns("ingresses", "networking.k8s.io"),
        ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    );
    let ingress = json!({
        "metadata": meta("web", 60),
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                 "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}
    });
    assert_eq!(
        cells("ingresses", "networking.k8s.io", ingress),
        [
            json!("web"),
            json!("nginx"),
            json!("a.example.com,b.example.com,c.example.com + 2 more..."),
            json!("203.0.113.5"),
            json!("80, 443"),
            json!("60s")
        ]
    );
    let catch_all = json!({"metadata": meta("all", 60), "spec": {"defaultBackend": {}}});
    assert_eq!(
        cells("ingresses", "networking.k8s.io", catch_all)[1..5],
        [json!("<none>"), json!("*"), json!(""), json!("80")]
    );

    let class = json!({"metadata": meta("nginx", 60), "spec": {"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
    assert_eq!(
        cells("ingressclasses", "networking.k8s.io", class),
        [
            json!("nginx"),
            json!("k8s.io/ingress-nginx"),
            json!("IngressParameters.k8s.example.com/external-lb"),
            json!("60s")
        ]
    );
}

#[test]
fn network_policies_leases_and_bindings() {
    let policy = json!({"metadata": meta("deny", 60), "spec": {"podSelector": {}}});
    assert_eq!(
        cells("networkpolicies", "networking.k8s.io", policy)[1],
        "<none>"
    );
    let lease =
        json!({"metadata": meta("kube-scheduler", 60), "spec": {"holderIdentity": "cp-1_abc"}});
    assert_eq!(
        cells("leases", "coordination.k8s.io", lease),
        [json!("kube-scheduler"), json!("cp-1_abc"), json!("60s")]
    );

    assert_eq!(
        columns("rolebindings", "rbac.authorization.k8s.io"),
        [
            "Name",
            "Role",
            "Age",
            "Users*",
            "Groups*",
            "ServiceAccounts*"
        ]
    );
    let binding = json!({"metadata": meta("admins", 60), "roleRef": {"kind": "ClusterRole", "name": "admin"}, "subjects": [
        {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "ops"},
        {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}]});
    assert_eq!(
        cells("clusterrolebindings", "rbac.authorization.k8s.io", binding),
        [
            json!("admins"),
            json!("ClusterRole/admin"),
            json!("60s"),
            json!("alice, bob"),
            json!("ops"),
            json!("ci/deployer")
        ]
    );
}

#[test]
fn storage_and_priority_classes() {
    let class = json!({"metadata": {"name": "standard", "creationTimestamp": ago(60),
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(
        cells("storageclasses", "storage.k8s.io", class),
        [
            json!("standard (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(false),
            json!("60s")
        ]
    );
    let priority = json!({"metadata": meta("system-cluster-critical", 60), "value": 2_000_000_000, "globalDefault": false});
    assert_eq!(
        cells("priorityclasses", "scheduling.k8s.io", priority),
        [
            json!("system-cluster-critical"),
            json!(2_000_000_000),
            json!(false),
            json!("60s"),
            json!("PreemptLowerPriority")
        ]
    );
}

#[test]
fn resources_without_printer_get_name_and_created_at() {
    for (resource, group) in [
        ("roles", "rbac.authorization.k8s.io"),
        ("clusterroles", "rbac.authorization.k8s.io"),
        ("limitranges", ""),
        ("widgets", "example.com"),
        ("deployments", "example.com"),
    ] {
        let built = table(
            resource,
            group,
            &[json!({"metadata": meta("thing", 60)})],
            NOW,
            IncludeObject::None,
        );
        assert_eq!(
            built["columnDefinitions"][1]["name"], "Created At",
            "{resource}"
        );
        assert_eq!(built["columnDefinitions"][1]["type"], "date");
        assert_eq!(built["columnDefinitions"].as_array().unwrap().len(), 2);
        assert_eq!(
            built["rows"][0]["cells"],
            json!(["thing", "2023-11-14T22:12:20Z"]),
            "{resource}"
        );
    }
    assert_eq!(
        cells("roles", "rbac.authorization.k8s.io", json!({})),
        [json!(""), json!("0001-01-01T00:00:00Z")]
    );
}

#[test]
fn malformed_objects_never_panic_and_fill_every_column() {
    let kinds = [
        ("pods", ""),
        ("nodes", ""),
        ("namespaces", ""),
        ("services", ""),
        ("endpoints", ""),
        ("configmaps", ""),
        ("secrets", ""),
        ("serviceaccounts", ""),
        ("events", ""),
        ("events", "events.k8s.io"),
        ("persistentvolumes", ""),
        ("persistentvolumeclaims", ""),
        ("replicationcontrollers", ""),
        ("resourcequotas", ""),
        ("limitranges", ""),
        ("podtemplates", ""),
        ("componentstatuses", ""),
        ("deployments", "apps"),
        ("replicasets", "apps"),
        ("statefulsets", "apps"),
        ("daemonsets", "apps"),
        ("controllerrevisions", "apps"),
        ("jobs", "batch"),
        ("cronjobs", "batch"),
        ("endpointslices", "discovery.k8s.io"),
        ("ingresses", "networking.k8s.io"),
        ("ingressclasses", "networking.k8s.io"),
        ("networkpolicies", "networking.k8s.io"),
        ("leases", "coordination.k8s.io"),
        ("roles", "rbac.authorization.k8s.io"),
        ("rolebindings", "rbac.authorization.k8s.io"),
        ("clusterroles", "rbac.authorization.k8s.io"),
        ("clusterrolebindings", "rbac.authorization.k8s.io"),
        ("horizontalpodautoscalers", "autoscaling"),
        ("poddisruptionbudgets", "policy"),
        ("storageclasses", "storage.k8s.io"),
        ("csidrivers", "storage.k8s.io"),
        ("csinodes", "storage.k8s.io"),
        ("volumeattachments", "storage.k8s.io"),
        ("priorityclasses", "scheduling.k8s.io"),
        ("runtimeclasses", "node.k8s.io"),
        (
            "mutatingwebhookconfigurations",
            "admissionregistration.k8s.io",
        ),
        ("certificatesigningrequests", "certificates.k8s.io"),
    ];
    let malformed = [
        json!(null),
        json!({}),
        json!("pod"),
        json!({"metadata": 5, "spec": "x", "status": [], "subsets": {}, "data": 3}),
        json!({"metadata": {"name": 7, "creationTimestamp": "not a time", "labels": [], "ownerReferences": {}},
               "spec": {"containers": {}, "ports": [null, 1, {"port": "80"}], "metrics": [{"type": "Resource"}], "selector": "app=x",
                        "replicas": "three", "rules": [null], "type": "LoadBalancer"},
               "status": {"conditions": [null, 1], "containerStatuses": [{"state": null}], "initContainerStatuses": [{}],
                          "hard": {"cpu": null}, "loadBalancer": {"ingress": [{}]}}}),
    ];
    for (resource, group) in kinds {
        let column_count = columns(resource, group).len();
        let built = rows(resource, group, &malformed);
        assert_eq!(built.len(), malformed.len(), "{resource}.{group}");
        for row in built {
            assert_eq!(row.len(), column_count, "{resource}.{group}: {row:?}");
        }
    }
    assert_eq!(
        cells("pods", "", json!({}))[1..5],
        [json!("0/0"), json!(""), json!("0"), json!("<unknown>")]
    );
}
