//! Decoding tests: objects encoded with k8s-pb's prost types the way client-go writes them (every plain Go field present, zero or not), compared with upstream's JSON.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;

use super::{MAGIC, ProtobufError, decode_object};

/// `k8s\0` + `runtime.Unknown` around an encoded object, as client-go
/// frames a request body.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC, &unknown.encode_to_vec()].concat()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn quantity(text: &str) -> Quantity {
    Quantity { string: some(text) }
}

/// What client-go writes for a metadata with only a name: every plain
/// field, so empty strings, generation 0 and a zero creationTimestamp.
fn metadata(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: some(name),
        generate_name: some(""),
        namespace: some(""),
        uid: some(""),
        resource_version: some(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn int_or_int(value: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: some(""),
    }
}

fn int_or_string(value: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: some(value),
    }
}

fn nginx_container() -> core::Container {
    core::Container {
        name: some("nginx"),
        image: some("nginx:1.25"),
        working_dir: some(""),
        ports: vec![core::ContainerPort {
            name: some(""),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: some("TCP"),
            host_ip: some(""),
        }],
        env: vec![core::EnvVar {
            name: some("MODE"),
            value: some("fast"),
            value_from: None,
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("cpu".to_string(), quantity("500m"))].into(),
            requests: [("memory".to_string(), quantity("64Mi"))].into(),
            claims: vec![],
        }),
        termination_message_path: some(""),
        termination_message_policy: some(""),
        image_pull_policy: some(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn deployment() -> apps::Deployment {
    let labels = strings(&[("app", "web")]);
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: labels.clone(),
            ..metadata("web")
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    ..metadata("")
                }),
                spec: Some(core::PodSpec {
                    containers: vec![nginx_container()],
                    restart_policy: some(""),
                    termination_grace_period_seconds: Some(30),
                    automount_service_account_token: Some(false),
                    host_network: Some(false),
                    host_pid: Some(false),
                    host_ipc: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: some("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(int_or_int(1)),
                    max_surge: Some(int_or_string("25%")),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(0),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    }
}

#[test]
fn deployment_decodes_to_upstream_json() {
    let body = envelope("apps/v1", "Deployment", deployment().encode_to_vec());
    let expected = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": null},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "fast"}],
                        "resources": {
                            "limits": {"cpu": "500m"},
                            "requests": {"memory": "64Mi"}
                        }
                    }],
                    "terminationGracePeriodSeconds": 30,
                    "automountServiceAccountToken": false
                }
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}
            },
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    });
    assert_eq!(decode_object(&body), Ok(expected));
}

#[test]
fn secret_and_config_map_bytes_become_base64() {
    let secret = core::Secret {
        metadata: Some(metadata("db")),
        immutable: None,
        data: [
            ("password".to_string(), b"s3cr3t".to_vec()),
            ("empty".to_string(), vec![]),
        ]
        .into(),
        string_data: strings(&[("user", "admin")]),
        r#type: some("Opaque"),
    };
    let body = envelope("v1", "Secret", secret.encode_to_vec());
    assert_eq!(
        decode_object(&body),
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "creationTimestamp": null},
            "data": {"password": "czNjcjN0", "empty": ""},
            "stringData": {"user": "admin"},
            "type": "Opaque"
        }))
    );

    let config_map = core::ConfigMap {
        metadata: Some(metadata("settings")),
        immutable: Some(false),
        data: strings(&[("a", "b"), ("blank", "")]),
        binary_data: [("blob".to_string(), vec![0, 255, 1])].into(),
    };
    let body = envelope("v1", "ConfigMap", config_map.encode_to_vec());
    assert_eq!(
        decode_object(&body),
        Ok(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "creationTimestamp": null},
            "immutable": false,
            "data": {"a": "b", "blank": ""},
            "binaryData": {"blob": "AP8B"}
        }))
    );
}

#[test]
fn service_ports_drop_unset_node_ports_and_keep_numeric_target_ports() {
    let service = core::Service {
        metadata: Some(metadata("web")),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: some("80-8080"),
                protocol: some("TCP"),
                app_protocol: None,
                port: Some(80),
                target_port: Some(int_or_int(8080)),
                node_port: Some(0),
            }],
            selector: strings(&[("app", "web")]),
            cluster_ip: some(""),
            r#type: some("NodePort"),
            session_affinity: some(""),
            load_balancer_ip: some(""),
            external_name: some(""),
            external_traffic_policy: some(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            allocate_load_balancer_node_ports: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus::default()),
    };
    let body = envelope("v1", "Service", service.encode_to_vec());
    assert_eq!(
        decode_object(&body),
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "web"},
                "type": "NodePort",
                // A pointer in Go: the false it was given is kept.
                "allocateLoadBalancerNodePorts": false
            },
            "status": {}
        }))
    );
}

#[test]
fn pointer_strings_keep_empty_values() {
    let claim = core::PersistentVolumeClaim {
        metadata: Some(metadata("data")),
        spec: Some(core::PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            storage_class_name: some(""),
            volume_name: some(""),
            resources: Some(core::VolumeResourceRequirements {
                limits: BTreeMap::new(),
                requests: [("storage".to_string(), quantity("1Gi"))].into(),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("v1", "PersistentVolumeClaim", claim.encode_to_vec());
    assert_eq!(
        decode_object(&body).unwrap()["spec"],
        json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": ""
        })
    );
}

#[test]
fn times_and_micro_times_are_rfc3339() {
    let mut meta = metadata("lease");
    meta.creation_timestamp = Some(meta::Time {
        seconds: Some(1_700_000_000),
        nanos: Some(0),
    });
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(meta),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: some("node-a"),
            lease_duration_seconds: Some(15),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(5_000),
            }),
            ..Default::default()
        }),
    };
    let body = envelope("coordination.k8s.io/v1", "Lease", lease.encode_to_vec());
    assert_eq!(
        decode_object(&body),
        Ok(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "lease", "creationTimestamp": "2023-11-14T22:13:20Z"},
            "spec": {
                "holderIdentity": "node-a",
                "leaseDurationSeconds": 15,
                "renewTime": "2023-11-14T22:13:20.000005Z"
            }
        }))
    );
}

#[test]
fn inlined_go_structs_merge_into_their_parent() {
    let pod = core::Pod {
        metadata: Some(metadata("p")),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: some("settings"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: some("cm"),
                        }),
                        default_mode: Some(0o644),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![core::Container {
                name: some("c"),
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: some("/healthz"),
                            port: Some(int_or_string("http")),
                            host: some(""),
                            scheme: some("HTTP"),
                            http_headers: vec![],
                        }),
                        ..Default::default()
                    }),
                    initial_delay_seconds: Some(0),
                    period_seconds: Some(10),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("v1", "Pod", pod.encode_to_vec());
    let spec = decode_object(&body).unwrap()["spec"].clone();
    assert_eq!(
        spec,
        json!({
            "volumes": [{"name": "settings", "configMap": {"name": "cm", "defaultMode": 420}}],
            "containers": [{
                "name": "c",
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                    "periodSeconds": 10
                }
            }]
        })
    );
}

#[test]
fn raw_extensions_embed_json_and_protobuf_objects() {
    let revision = |raw: Vec<u8>| apps::ControllerRevision {
        metadata: Some(metadata("rev")),
        data: Some(RawExtension { raw: Some(raw) }),
        revision: Some(3),
    };
    let body = envelope(
        "apps/v1",
        "ControllerRevision",
        revision(br#"{"spec":{"x":[1,2]}}"#.to_vec()).encode_to_vec(),
    );
    assert_eq!(
        decode_object(&body),
        Ok(json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "rev", "creationTimestamp": null},
            "data": {"spec": {"x": [1, 2]}},
            "revision": 3
        }))
    );

    let namespace = core::Namespace {
        metadata: Some(metadata("inner")),
        ..Default::default()
    };
    let nested = envelope("v1", "Namespace", namespace.encode_to_vec());
    let body = envelope(
        "apps/v1",
        "ControllerRevision",
        revision(nested).encode_to_vec(),
    );
    assert_eq!(
        decode_object(&body).unwrap()["data"],
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "inner", "creationTimestamp": null}
        })
    );

    let body = envelope(
        "apps/v1",
        "ControllerRevision",
        revision(b"not json".to_vec()).encode_to_vec(),
    );
    assert!(matches!(
        decode_object(&body),
        Err(ProtobufError::Malformed { path, .. }) if path == "data"
    ));
}

/// A key (field number and wire type) as protobuf writes it.
fn key(field: u32, wire_type: u32) -> u8 {
    u8::try_from(field << 3 | wire_type).expect("a one-byte key")
}

#[test]
fn wire_details_client_go_may_vary() {
    let mut raw = core::Namespace {
        metadata: Some(metadata("ns")),
        ..Default::default()
    }
    .encode_to_vec();
    // A field number the table does not know is skipped.
    raw.extend([0xb8, 0x3e, 0x01]); // field 999, varint 1
    // A message field written twice is one merged message.
    let second_metadata = meta::ObjectMeta {
        labels: strings(&[("team", "a")]),
        ..Default::default()
    }
    .encode_to_vec();
    raw.push(key(1, 2));
    raw.push(u8::try_from(second_metadata.len()).unwrap());
    raw.extend(second_metadata);
    let body = envelope("v1", "Namespace", raw);
    assert_eq!(
        decode_object(&body),
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "ns", "labels": {"team": "a"}, "creationTimestamp": null}
        }))
    );

    // Repeated numbers packed into one record: PodSecurityContext
    // supplementalGroups (field 4 of PodSecurityContext, field 14 of PodSpec).
    let security_context = [key(4, 2), 3, 1, 2, 0x7f];
    let mut spec = vec![key(14, 2), u8::try_from(security_context.len()).unwrap()];
    spec.extend(security_context);
    let mut pod = vec![key(2, 2), u8::try_from(spec.len()).unwrap()];
    pod.extend(spec);
    let body = envelope("v1", "Pod", pod);
    assert_eq!(
        decode_object(&body).unwrap()["spec"],
        json!({"securityContext": {"supplementalGroups": [1, 2, 127]}})
    );
}

#[test]
fn envelopes_that_name_no_known_kind_are_errors() {
    let raw = core::Namespace::default().encode_to_vec();
    assert_eq!(
        decode_object(&envelope("v1", "Frobnicator", raw.clone())),
        Err(ProtobufError::UnknownKind {
            api_version: "v1".into(),
            kind: "Frobnicator".into()
        })
    );
    assert_eq!(
        decode_object(&envelope("example.com/v1", "Namespace", raw.clone())),
        Err(ProtobufError::UnknownKind {
            api_version: "example.com/v1".into(),
            kind: "Namespace".into()
        })
    );
    assert_eq!(
        decode_object(&envelope("", "", raw.clone())),
        Err(ProtobufError::MissingTypeMeta)
    );
    let gzipped = Unknown {
        type_meta: Some(TypeMeta {
            api_version: some("v1"),
            kind: some("Namespace"),
        }),
        raw: Some(raw),
        content_encoding: some("gzip"),
        content_type: None,
    };
    assert_eq!(
        decode_object(&[MAGIC, &gzipped.encode_to_vec()].concat()),
        Err(ProtobufError::UnsupportedContentEncoding("gzip".into()))
    );
}

#[test]
fn malformed_bodies_are_errors() {
    let body = envelope("apps/v1", "Deployment", deployment().encode_to_vec());
    assert_eq!(decode_object(b""), Err(ProtobufError::MissingMagic));
    assert_eq!(
        decode_object(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::MissingMagic)
    );
    assert_eq!(decode_object(&body[1..]), Err(ProtobufError::MissingMagic));

    // Cutting the body short leaves the envelope's raw field (or a length
    // inside it) running past the end.
    let raw = deployment().encode_to_vec();
    let raw_start = body
        .windows(raw.len())
        .position(|window| window == raw)
        .expect("the object inside the envelope");
    for cut in [raw_start - 1, raw_start + 1, raw_start + 40, body.len() - 1] {
        assert!(decode_object(&body[..cut]).is_err(), "cut at {cut}");
    }

    // A field with the wrong wire type names its path.
    let spec = vec![key(1, 2), 1, b'x']; // DeploymentSpec.replicas as bytes
    let mut raw = vec![key(2, 2), u8::try_from(spec.len()).unwrap()];
    raw.extend(spec);
    let error = decode_object(&envelope("apps/v1", "Deployment", raw)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.replicas: found length-delimited bytes, expected a varint"
    );

    // A bad element of a list names its index.
    let mut container = vec![key(1, 2), 1, b'c', key(6, 2), 2];
    container.extend([key(3, 0), 0x80]); // ports[0].containerPort: truncated varint
    let mut spec = vec![key(2, 2), u8::try_from(container.len()).unwrap()];
    spec.extend(container);
    let mut raw = vec![key(2, 2), u8::try_from(spec.len()).unwrap()];
    raw.extend(spec);
    let error = decode_object(&envelope("v1", "Pod", raw)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.containers[0].ports[0]: truncated varint"
    );
}

#[test]
fn no_input_panics() {
    let body = envelope("apps/v1", "Deployment", deployment().encode_to_vec());
    // Every prefix, and every single-byte corruption, of a real body.
    for cut in 0..=body.len() {
        let _ = decode_object(&body[..cut]);
    }
    for index in MAGIC.len()..body.len() {
        for byte in [0x00, 0x07, 0x80, 0xff] {
            let mut corrupted = body.clone();
            corrupted[index] = byte;
            let _ = decode_object(&corrupted);
        }
    }
    // Pseudo-random garbage behind the magic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for length in 0..2000 {
        let garbage: Vec<u8> = (0..length % 97)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let _ = decode_object(&[MAGIC, &garbage].concat());
    }
}

#[test]
fn nesting_is_bounded() {
    // Raw extensions holding raw extensions, far deeper than any object.
    let mut body = envelope(
        "v1",
        "Namespace",
        core::Namespace::default().encode_to_vec(),
    );
    for _ in 0..200 {
        let revision = apps::ControllerRevision {
            metadata: None,
            data: Some(RawExtension { raw: Some(body) }),
            revision: Some(1),
        };
        body = envelope("apps/v1", "ControllerRevision", revision.encode_to_vec());
    }
    let error = decode_object(&body).unwrap_err();
    assert!(error.to_string().contains("nest deeper"), "{error}");
}
