//! Tables for the core ("") group besides pods: nodes, namespaces, services, endpoints, config and storage objects, events.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::{
    at, container_cells, count, format_labels, int, list, name, object, opt_int, opt_text,
    quantity, text, text_or,
};
use super::{AGE, Clock, Column, NAME, Printer, WIDE_CONTAINERS, WIDE_IMAGES, column, wide};

pub(super) const NODES: Printer = Printer::new(
    &[
        NAME,
        column("Status", "string", "The status of the node"),
        column("Roles", "string", "The roles of the node"),
        AGE,
        column("Version", "string", "Kubelet version reported by the node."),
        wide(
            "Internal-IP",
            "string",
            "The node's first InternalIP address.",
        ),
        wide(
            "External-IP",
            "string",
            "The node's first ExternalIP address.",
        ),
        wide("OS-Image", "string", "OS image reported by the node."),
        wide(
            "Kernel-Version",
            "string",
            "Kernel version reported by the node.",
        ),
        wide(
            "Container-Runtime",
            "string",
            "Container runtime version reported by the node.",
        ),
    ],
    node_cells,
);

const NODE_ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const LEGACY_NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_cells(node: &Value, clock: &Clock) -> Vec<Value> {
    let ready = list(node, &["status", "conditions"])
        .iter()
        .rfind(|condition| text(condition, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(condition) if text(condition, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if at(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }

    let mut roles = BTreeSet::new();
    for (key, value) in object(node, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = key.strip_prefix(NODE_ROLE_LABEL_PREFIX) {
            if !role.is_empty() {
                roles.insert(role);
            }
        } else if key == LEGACY_NODE_ROLE_LABEL
            && let Some(role) = value.as_str().filter(|role| !role.is_empty())
        {
            roles.insert(role);
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };

    let address = |address_type: &str| {
        list(node, &["status", "addresses"])
            .iter()
            .find(|address| text(address, &["type"]) == address_type)
            .map_or("<none>", |address| text(address, &["address"]))
            .to_string()
    };
    let node_info =
        |field: &str| text_or(node, &["status", "nodeInfo", field], "<unknown>").to_string();

    vec![
        name(node).into(),
        status.join(",").into(),
        roles.into(),
        clock.age(node).into(),
        text(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        node_info("osImage").into(),
        node_info("kernelVersion").into(),
        node_info("containerRuntimeVersion").into(),
    ]
}

pub(super) const NAMESPACES: Printer = Printer::new(
    &[
        NAME,
        column("Status", "string", "The status of the namespace"),
        AGE,
    ],
    |namespace, clock| {
        vec![
            name(namespace).into(),
            text_or(namespace, &["status", "phase"], "Active").into(),
            clock.age(namespace).into(),
        ]
    },
);

pub(super) const SERVICES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Type",
            "string",
            "How the service is exposed (ClusterIP, NodePort, LoadBalancer, ExternalName).",
        ),
        column(
            "Cluster-IP",
            "string",
            "The service's primary cluster IP address.",
        ),
        column(
            "External-IP",
            "string",
            "External IPs and load-balancer ingress addresses of the service.",
        ),
        column(
            "Port(s)",
            "string",
            "The ports the service exposes, with node ports.",
        ),
        AGE,
        wide(
            "Selector",
            "string",
            "Labels of the pods the service routes to.",
        ),
    ],
    service_cells,
);

fn service_cells(service: &Value, clock: &Clock) -> Vec<Value> {
    let service_type = text_or(service, &["spec", "type"], "ClusterIP");
    let cluster_ip = list(service, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_text(service, &["spec", "clusterIP"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");

    let ports: Vec<String> = list(service, &["spec", "ports"])
        .iter()
        .map(|port| {
            let protocol = text_or(port, &["protocol"], "TCP");
            match int(port, &["nodePort"]) {
                node_port if node_port > 0 => {
                    format!("{}:{node_port}/{protocol}", int(port, &["port"]))
                }
                _ => format!("{}/{protocol}", int(port, &["port"])),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };

    vec![
        name(service).into(),
        service_type.into(),
        cluster_ip.into(),
        service_external_ip(service, service_type).into(),
        ports.into(),
        clock.age(service).into(),
        format_labels(object(service, &["spec", "selector"])).into(),
    ]
}

/// Ingress points of a load-balancer status, deduplicated and sorted;
/// kube-apiserver prints them untruncated because it always renders wide.
pub(super) fn load_balancer_addresses(status: &Value) -> Vec<String> {
    let addresses: BTreeSet<String> = list(status, &["ingress"])
        .iter()
        .filter_map(|ingress| {
            [text(ingress, &["ip"]), text(ingress, &["hostname"])]
                .into_iter()
                .find(|address| !address.is_empty())
                .map(str::to_string)
        })
        .collect();
    addresses.into_iter().collect()
}

fn service_external_ip(service: &Value, service_type: &str) -> String {
    let external_ips: Vec<&str> = list(service, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let status = at(service, &["status", "loadBalancer"]).unwrap_or(&Value::Null);
            let mut addresses = load_balancer_addresses(status);
            addresses.extend(external_ips.iter().map(|ip| ip.to_string()));
            if addresses.is_empty() {
                "<pending>".to_string()
            } else {
                addresses.join(",")
            }
        }
        "ExternalName" => text(service, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

pub(super) const ENDPOINTS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Endpoints",
            "string",
            "The addresses and ports the service's endpoints expose.",
        ),
        AGE,
    ],
    |endpoints, clock| {
        vec![
            name(endpoints).into(),
            format_endpoints(endpoints).into(),
            clock.age(endpoints).into(),
        ]
    },
);

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn format_endpoints(endpoints: &Value) -> String {
    const MAX_SHOWN: usize = 3;
    let subsets = list(endpoints, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown = Vec::new();
    let mut total = 0;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may list bare addresses.
            total += addresses.len();
            shown.extend(
                addresses
                    .iter()
                    .map(|address| text(address, &["ip"]).to_string()),
            );
            continue;
        }
        for port in ports {
            total += addresses.len();
            shown.extend(
                addresses
                    .iter()
                    .map(|address| join_host_port(text(address, &["ip"]), int(port, &["port"]))),
            );
        }
    }
    shown.truncate(MAX_SHOWN);
    let joined = shown.join(",");
    if total > MAX_SHOWN {
        format!("{joined} + {} more...", total - MAX_SHOWN)
    } else {
        joined
    }
}

pub(super) const CONFIG_MAPS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Data",
            "string",
            "Number of entries in data and binaryData.",
        ),
        AGE,
    ],
    |config_map, clock| {
        vec![
            name(config_map).into(),
            (count(config_map, &["data"]) + count(config_map, &["binaryData"])).into(),
            clock.age(config_map).into(),
        ]
    },
);

pub(super) const SECRETS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Type",
            "string",
            "Type of the secret, used to handle its data programmatically.",
        ),
        column("Data", "string", "Number of entries in data."),
        AGE,
    ],
    |secret, clock| {
        vec![
            name(secret).into(),
            text_or(secret, &["type"], "Opaque").into(),
            count(secret, &["data"]).into(),
            clock.age(secret).into(),
        ]
    },
);

pub(super) const SERVICE_ACCOUNTS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Secrets",
            "string",
            "Number of secrets listed for the service account.",
        ),
        AGE,
    ],
    |account, clock| {
        vec![
            name(account).into(),
            count(account, &["secrets"]).into(),
            clock.age(account).into(),
        ]
    },
);

const EVENT_COLUMNS: &[Column] = &[
    column(
        "Last Seen",
        "string",
        "When the event was most recently observed.",
    ),
    column("Type", "string", "Type of the event (Normal, Warning)."),
    column(
        "Reason",
        "string",
        "Short machine-readable reason for the event.",
    ),
    column("Object", "string", "The object the event is about."),
    wide(
        "Subobject",
        "string",
        "The part of the object the event is about (fieldPath).",
    ),
    wide(
        "Source",
        "string",
        "The component, and host, that reported the event.",
    ),
    column(
        "Message",
        "string",
        "Human-readable description of the event.",
    ),
    wide("First Seen", "string", "When the event was first observed."),
    wide("Count", "string", "How many times the event has occurred."),
    Column {
        priority: 1,
        ..NAME
    },
];

/// Where an event version keeps each field the table shows.
struct EventFields {
    involved_object: &'static str,
    message: &'static str,
    first_timestamp: &'static str,
    last_timestamp: &'static str,
    count: &'static str,
    source: &'static str,
}

pub(super) const CORE_EVENTS: Printer = Printer::new(EVENT_COLUMNS, |event, clock| {
    event_cells(
        event,
        clock,
        &EventFields {
            involved_object: "involvedObject",
            message: "message",
            first_timestamp: "firstTimestamp",
            last_timestamp: "lastTimestamp",
            count: "count",
            source: "source",
        },
    )
});

/// events.k8s.io/v1 Events are the same objects as core Events, with renamed fields.
pub(super) const EVENTS_V1: Printer = Printer::new(EVENT_COLUMNS, |event, clock| {
    event_cells(
        event,
        clock,
        &EventFields {
            involved_object: "regarding",
            message: "note",
            first_timestamp: "deprecatedFirstTimestamp",
            last_timestamp: "deprecatedLastTimestamp",
            count: "deprecatedCount",
            source: "deprecatedSource",
        },
    )
});

fn first_non_empty<'a>(first: &'a str, second: &'a str) -> &'a str {
    if first.is_empty() { second } else { first }
}

fn event_cells(event: &Value, clock: &Clock, fields: &EventFields) -> Vec<Value> {
    let first_seen = if at(event, &[fields.first_timestamp]).is_some_and(is_set_time) {
        clock.since(at(event, &[fields.first_timestamp]))
    } else {
        clock.since(at(event, &["eventTime"]))
    };
    let mut last_seen = if at(event, &[fields.last_timestamp]).is_some_and(is_set_time) {
        clock.since(at(event, &[fields.last_timestamp]))
    } else {
        first_seen.clone()
    };
    let mut occurrences = int(event, &[fields.count]);
    if let Some(series) = at(event, &["series"]) {
        last_seen = clock.since(at(series, &["lastObservedTime"]));
        occurrences = int(series, &["count"]);
    } else if occurrences == 0 {
        // Singleton events of the newer API leave the count unset.
        occurrences = 1;
    }

    let involved = at(event, &[fields.involved_object]).unwrap_or(&Value::Null);
    let kind = text(involved, &["kind"]).to_lowercase();
    let target = match text(involved, &["name"]) {
        "" => kind,
        involved_name => format!("{kind}/{involved_name}"),
    };

    let component = first_non_empty(
        text(event, &[fields.source, "component"]),
        text(event, &["reportingController"]),
    );
    let host = first_non_empty(
        text(event, &[fields.source, "host"]),
        text(event, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };

    vec![
        last_seen.into(),
        text(event, &["type"]).into(),
        text(event, &["reason"]).into(),
        target.into(),
        text(involved, &["fieldPath"]).into(),
        source.into(),
        text(event, &[fields.message]).trim().into(),
        first_seen.into(),
        occurrences.into(),
        name(event).into(),
    ]
}

fn is_set_time(value: &Value) -> bool {
    super::time::Instant::from_value(Some(value)).is_some()
}

/// Access modes in upstream's fixed order and abbreviations.
fn access_modes(modes: &[Value]) -> String {
    let present = |mode: &str| {
        modes
            .iter()
            .any(|candidate| candidate.as_str() == Some(mode))
    };
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| present(mode))
    .map(|(_, abbreviation)| abbreviation)
    .collect::<Vec<_>>()
    .join(",")
}

/// The legacy beta annotation still overrides `storageClassName`.
fn storage_class(object: &Value) -> &str {
    opt_text(
        object,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    )
    .unwrap_or_else(|| text(object, &["spec", "storageClassName"]))
}

pub(super) const PERSISTENT_VOLUMES: Printer = Printer::new(
    &[
        NAME,
        column("Capacity", "string", "Storage capacity of the volume."),
        column("Access Modes", "string", "Ways the volume can be mounted."),
        column(
            "Reclaim Policy",
            "string",
            "What happens to the volume when its claim is released.",
        ),
        column("Status", "string", "Phase of the volume."),
        column(
            "Claim",
            "string",
            "The claim bound to the volume, as namespace/name.",
        ),
        column("StorageClass", "string", "StorageClass of the pv"),
        column(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        column(
            "Reason",
            "string",
            "Why the volume is in its phase, if failed.",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "Whether the volume is a filesystem or a raw block device.",
        ),
    ],
    persistent_volume_cells,
);

fn persistent_volume_cells(volume: &Value, clock: &Clock) -> Vec<Value> {
    let claim = match at(volume, &["spec", "claimRef"]) {
        Some(claim) => format!("{}/{}", text(claim, &["namespace"]), text(claim, &["name"])),
        None => String::new(),
    };
    let phase = if at(volume, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        text_or(volume, &["status", "phase"], "Pending")
    };
    vec![
        name(volume).into(),
        quantity(at(volume, &["spec", "capacity", "storage"])).into(),
        access_modes(list(volume, &["spec", "accessModes"])).into(),
        text_or(volume, &["spec", "persistentVolumeReclaimPolicy"], "Retain").into(),
        phase.into(),
        claim.into(),
        storage_class(volume).into(),
        opt_text(volume, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        text(volume, &["status", "reason"]).into(),
        clock.age(volume).into(),
        text_or(volume, &["spec", "volumeMode"], "Filesystem").into(),
    ]
}

pub(super) const PERSISTENT_VOLUME_CLAIMS: Printer = Printer::new(
    &[
        NAME,
        column("Status", "string", "Phase of the claim."),
        column("Volume", "string", "The volume bound to the claim."),
        column(
            "Capacity",
            "string",
            "Storage capacity of the bound volume.",
        ),
        column(
            "Access Modes",
            "string",
            "Ways the bound volume can be mounted.",
        ),
        column("StorageClass", "string", "StorageClass of the pvc"),
        column(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "Whether the claim wants a filesystem or a raw block device.",
        ),
    ],
    persistent_volume_claim_cells,
);

fn persistent_volume_claim_cells(claim: &Value, clock: &Clock) -> Vec<Value> {
    let phase = if at(claim, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        text_or(claim, &["status", "phase"], "Pending")
    };
    let volume_name = text(claim, &["spec", "volumeName"]);
    let (capacity, modes) = if volume_name.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(claim, &["status", "capacity", "storage"])),
            access_modes(list(claim, &["status", "accessModes"])),
        )
    };
    vec![
        name(claim).into(),
        phase.into(),
        volume_name.into(),
        capacity.into(),
        modes.into(),
        storage_class(claim).into(),
        opt_text(claim, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        clock.age(claim).into(),
        text_or(claim, &["spec", "volumeMode"], "Filesystem").into(),
    ]
}

pub(super) const REPLICATION_CONTROLLERS: Printer = Printer::new(
    &[
        NAME,
        column("Desired", "integer", "Number of replicas wanted."),
        column(
            "Current",
            "integer",
            "Number of replicas currently running.",
        ),
        column("Ready", "integer", "Number of ready replicas."),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
        wide(
            "Selector",
            "string",
            "Labels of the pods the controller manages.",
        ),
    ],
    |controller, clock| {
        let (containers, images) = container_cells(at(controller, &["spec", "template", "spec"]));
        vec![
            name(controller).into(),
            opt_int(controller, &["spec", "replicas"])
                .unwrap_or(1)
                .into(),
            int(controller, &["status", "replicas"]).into(),
            int(controller, &["status", "readyReplicas"]).into(),
            clock.age(controller).into(),
            containers.into(),
            images.into(),
            format_labels(object(controller, &["spec", "selector"])).into(),
        ]
    },
);

pub(super) const RESOURCE_QUOTAS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Request",
            "string",
            "Used and hard limits of the quota's non-limit resources.",
        ),
        column(
            "Limit",
            "string",
            "Used and hard limits of the quota's limits.* resources.",
        ),
        AGE,
    ],
    resource_quota_cells,
);

fn resource_quota_cells(quota: &Value, clock: &Clock) -> Vec<Value> {
    let mut resources: Vec<&String> = object(quota, &["status", "hard"])
        .map(|hard| hard.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for resource in resources {
        let usage = format!(
            "{resource}: {}/{}",
            quantity(at(quota, &["status", "used", resource])),
            quantity(at(quota, &["status", "hard", resource]))
        );
        if resource.starts_with("limits.") {
            limits.push(usage);
        } else {
            requests.push(usage);
        }
    }
    vec![
        name(quota).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        clock.age(quota).into(),
    ]
}

pub(super) const POD_TEMPLATES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        column(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
        column("Pod Labels", "string", "The labels for the pod template."),
    ],
    |template, _clock| {
        let (containers, images) = container_cells(at(template, &["template", "spec"]));
        vec![
            name(template).into(),
            containers.into(),
            images.into(),
            format_labels(object(template, &["template", "metadata", "labels"])).into(),
        ]
    },
);

pub(super) const COMPONENT_STATUSES: Printer = Printer::new(
    &[
        NAME,
        column("Status", "string", "Status of the component conditions"),
        column("Message", "string", "Message of the component conditions"),
        column("Error", "string", "Error of the component conditions"),
    ],
    |component, _clock| {
        let healthy = list(component, &["conditions"])
            .iter()
            .find(|condition| text(condition, &["type"]) == "Healthy");
        let (status, message, error) = match healthy {
            Some(condition) => (
                if text(condition, &["status"]) == "True" {
                    "Healthy"
                } else {
                    "Unhealthy"
                },
                text(condition, &["message"]),
                text(condition, &["error"]),
            ),
            None => ("Unknown", "", ""),
        };
        vec![
            name(component).into(),
            status.into(),
            message.into(),
            error.into(),
        ]
    },
);
