//! Tables for networking, coordination, RBAC, storage, scheduling, admission and certificate resources.

use serde_json::Value;

use super::core_group::load_balancer_addresses;
use super::fields::{
    at, count, flag, format_label_selector, int, list, list_with_more, name, opt_int, opt_text,
    text, text_or,
};
use super::time::human_duration_nanos;
use super::{AGE, Column, NAME, Printer, column, wide};

const MAX_LISTED: usize = 3;

pub(super) const ENDPOINT_SLICES: Printer = Printer::new(
    &[
        NAME,
        column(
            "AddressType",
            "string",
            "The kind of addresses in the slice (IPv4, IPv6, FQDN).",
        ),
        column("Ports", "string", "The ports the slice's endpoints expose."),
        column("Endpoints", "string", "Addresses of the slice's endpoints."),
        AGE,
    ],
    |slice, clock| {
        let ports: Vec<String> = list(slice, &["ports"])
            .iter()
            .map(
                |port| match (opt_int(port, &["port"]), opt_text(port, &["name"])) {
                    (Some(number), _) => number.to_string(),
                    (None, Some(port_name)) => port_name.to_string(),
                    (None, None) => "*".to_string(),
                },
            )
            .collect();
        let addresses: Vec<String> = list(slice, &["endpoints"])
            .iter()
            .flat_map(|endpoint| list(endpoint, &["addresses"]))
            .map(|address| address.as_str().unwrap_or_default().to_string())
            .collect();
        vec![
            name(slice).into(),
            text(slice, &["addressType"]).into(),
            unset_if_empty(list_with_more(&ports, ports.len(), MAX_LISTED)).into(),
            unset_if_empty(list_with_more(&addresses, addresses.len(), MAX_LISTED)).into(),
            clock.age(slice).into(),
        ]
    },
);

fn unset_if_empty(text: String) -> String {
    if text.is_empty() {
        "<unset>".to_string()
    } else {
        text
    }
}

pub(super) const INGRESSES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Class",
            "string",
            "The IngressClass that handles this ingress.",
        ),
        column(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against.",
        ),
        column(
            "Address",
            "string",
            "Ingress points of the load balancer serving this ingress.",
        ),
        column("Ports", "string", "Ports the ingress listens on."),
        AGE,
    ],
    |ingress, clock| {
        let ports = if list(ingress, &["spec", "tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        let status = at(ingress, &["status", "loadBalancer"]).unwrap_or(&Value::Null);
        vec![
            name(ingress).into(),
            opt_text(ingress, &["spec", "ingressClassName"])
                .unwrap_or("<none>")
                .into(),
            ingress_hosts(list(ingress, &["spec", "rules"])).into(),
            load_balancer_addresses(status).join(",").into(),
            ports.into(),
            clock.age(ingress).into(),
        ]
    },
);

/// Up to three rule hosts, `*` when no rule names one. Once three hosts are
/// listed, every rule is counted as "more" from the total rule count, as
/// upstream counts it.
fn ingress_hosts(rules: &[Value]) -> String {
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX_LISTED {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX_LISTED)
    } else {
        joined
    }
}

pub(super) const INGRESS_CLASSES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        column(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    |class, clock| {
        let parameters = match at(class, &["spec", "parameters"]) {
            None => "<none>".to_string(),
            Some(parameters) => {
                let kind = text(parameters, &["kind"]);
                let qualified = match opt_text(parameters, &["apiGroup"]) {
                    Some(group) => format!("{kind}.{group}"),
                    None => kind.to_string(),
                };
                format!("{qualified}/{}", text(parameters, &["name"]))
            }
        };
        vec![
            name(class).into(),
            text(class, &["spec", "controller"]).into(),
            parameters.into(),
            clock.age(class).into(),
        ]
    },
);

pub(super) const NETWORK_POLICIES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Pod-Selector",
            "string",
            "Label query over the pods the policy applies to.",
        ),
        AGE,
    ],
    |policy, clock| {
        vec![
            name(policy).into(),
            format_label_selector(at(policy, &["spec", "podSelector"])).into(),
            clock.age(policy).into(),
        ]
    },
);

pub(super) const LEASES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Holder",
            "string",
            "Identity of the current holder of the lease.",
        ),
        AGE,
    ],
    |lease, clock| {
        vec![
            name(lease).into(),
            text(lease, &["spec", "holderIdentity"]).into(),
            clock.age(lease).into(),
        ]
    },
);

const fn binding_columns(
    users: &'static str,
    groups: &'static str,
    service_accounts: &'static str,
) -> [Column; 6] {
    [
        NAME,
        column(
            "Role",
            "string",
            "The role the binding grants, as Kind/name.",
        ),
        AGE,
        wide("Users", "string", users),
        wide("Groups", "string", groups),
        wide("ServiceAccounts", "string", service_accounts),
    ]
}

pub(super) const ROLE_BINDINGS: Printer = Printer::new(
    &binding_columns(
        "Users in the roleBinding",
        "Groups in the roleBinding",
        "ServiceAccounts in the roleBinding",
    ),
    binding_cells,
);

pub(super) const CLUSTER_ROLE_BINDINGS: Printer = Printer::new(
    &binding_columns(
        "Users in the clusterRoleBinding",
        "Groups in the clusterRoleBinding",
        "ServiceAccounts in the clusterRoleBinding",
    ),
    binding_cells,
);

fn binding_cells(binding: &Value, clock: &super::Clock) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in list(binding, &["subjects"]) {
        let subject_name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", text(subject, &["namespace"])));
            }
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(binding).into(),
        format!(
            "{}/{}",
            text(binding, &["roleRef", "kind"]),
            text(binding, &["roleRef", "name"])
        )
        .into(),
        clock.age(binding).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

pub(super) const STORAGE_CLASSES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Provisioner",
            "string",
            "The volume plugin that provisions volumes of this class.",
        ),
        column(
            "ReclaimPolicy",
            "string",
            "Reclaim policy of volumes provisioned for this class.",
        ),
        column(
            "VolumeBindingMode",
            "string",
            "When volumes are provisioned and bound.",
        ),
        column(
            "AllowVolumeExpansion",
            "string",
            "Whether volumes of this class may be expanded.",
        ),
        AGE,
    ],
    |class, clock| {
        let is_default = [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|annotation| text(class, &["metadata", "annotations", annotation]) == "true");
        let displayed_name = if is_default {
            format!("{} (default)", name(class))
        } else {
            name(class).to_string()
        };
        vec![
            displayed_name.into(),
            text(class, &["provisioner"]).into(),
            text_or(class, &["reclaimPolicy"], "Delete").into(),
            text_or(class, &["volumeBindingMode"], "Immediate").into(),
            (flag(class, &["allowVolumeExpansion"]) == Some(true)).into(),
            clock.age(class).into(),
        ]
    },
);

pub(super) const CSI_DRIVERS: Printer = Printer::new(
    &[
        NAME,
        column(
            "AttachRequired",
            "boolean",
            "Whether volumes need an attach operation.",
        ),
        column(
            "PodInfoOnMount",
            "boolean",
            "Whether pod information is passed on mount.",
        ),
        column(
            "StorageCapacity",
            "boolean",
            "Whether the scheduler considers storage capacity.",
        ),
        column(
            "TokenRequests",
            "string",
            "Audiences of service account tokens passed on mount.",
        ),
        column(
            "RequiresRepublish",
            "boolean",
            "Whether NodePublishVolume is called periodically.",
        ),
        column(
            "Modes",
            "string",
            "Volume lifecycle modes the driver supports.",
        ),
        AGE,
    ],
    |driver, clock| {
        let token_requests = match at(driver, &["spec", "tokenRequests"]) {
            None => "<unset>".to_string(),
            Some(requests) => requests
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|request| text(request, &["audience"]))
                .collect::<Vec<_>>()
                .join(","),
        };
        let modes: Vec<&str> = list(driver, &["spec", "volumeLifecycleModes"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        // The v1 decoder defaults an empty list to Persistent.
        let modes = if modes.is_empty() {
            "Persistent".to_string()
        } else {
            modes.join(",")
        };
        vec![
            name(driver).into(),
            flag(driver, &["spec", "attachRequired"])
                .unwrap_or(true)
                .into(),
            flag(driver, &["spec", "podInfoOnMount"])
                .unwrap_or(false)
                .into(),
            flag(driver, &["spec", "storageCapacity"])
                .unwrap_or(false)
                .into(),
            token_requests.into(),
            flag(driver, &["spec", "requiresRepublish"])
                .unwrap_or(false)
                .into(),
            modes.into(),
            clock.age(driver).into(),
        ]
    },
);

pub(super) const CSI_NODES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Drivers",
            "integer",
            "Number of CSI drivers registered on the node.",
        ),
        AGE,
    ],
    |node, clock| {
        vec![
            name(node).into(),
            count(node, &["spec", "drivers"]).into(),
            clock.age(node).into(),
        ]
    },
);

pub(super) const VOLUME_ATTACHMENTS: Printer = Printer::new(
    &[
        NAME,
        Column {
            format: "name",
            ..column(
                "Attacher",
                "string",
                "The volume driver that attaches the volume.",
            )
        },
        column("PV", "string", "The persistent volume being attached."),
        column("Node", "string", "The node the volume is attached to."),
        column(
            "Attached",
            "boolean",
            "Whether the attach operation succeeded.",
        ),
        AGE,
    ],
    |attachment, clock| {
        vec![
            name(attachment).into(),
            text(attachment, &["spec", "attacher"]).into(),
            text(attachment, &["spec", "source", "persistentVolumeName"]).into(),
            text(attachment, &["spec", "nodeName"]).into(),
            (flag(attachment, &["status", "attached"]) == Some(true)).into(),
            clock.age(attachment).into(),
        ]
    },
);

pub(super) const PRIORITY_CLASSES: Printer = Printer::new(
    &[
        NAME,
        column("Value", "integer", "Priority of pods using this class."),
        column(
            "Global-Default",
            "boolean",
            "Whether this class applies to pods without a priority class.",
        ),
        AGE,
        wide(
            "PreemptionPolicy",
            "string",
            "Whether pods of this class may preempt lower-priority pods.",
        ),
    ],
    |class, clock| {
        vec![
            name(class).into(),
            int(class, &["value"]).into(),
            (flag(class, &["globalDefault"]) == Some(true)).into(),
            clock.age(class).into(),
            text_or(class, &["preemptionPolicy"], "PreemptLowerPriority").into(),
        ]
    },
);

pub(super) const RUNTIME_CLASSES: Printer = Printer::new(
    &[
        NAME,
        column(
            "Handler",
            "string",
            "The CRI handler that runs pods of this class.",
        ),
        AGE,
    ],
    |class, clock| {
        vec![
            name(class).into(),
            text(class, &["handler"]).into(),
            clock.age(class).into(),
        ]
    },
);

pub(super) const WEBHOOK_CONFIGURATIONS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        AGE,
    ],
    |configuration, clock| {
        vec![
            name(configuration).into(),
            count(configuration, &["webhooks"]).into(),
            clock.age(configuration).into(),
        ]
    },
);

pub(super) const CERTIFICATE_SIGNING_REQUESTS: Printer = Printer::new(
    &[
        NAME,
        AGE,
        column(
            "SignerName",
            "string",
            "The signer asked to sign the certificate.",
        ),
        column("Requestor", "string", "The user who created the request."),
        column(
            "RequestedDuration",
            "string",
            "The validity duration asked for.",
        ),
        column(
            "Condition",
            "string",
            "Approval and issuance state of the request.",
        ),
    ],
    |request, clock| {
        let has = |condition_type: &str| {
            list(request, &["status", "conditions"])
                .iter()
                .any(|condition| text(condition, &["type"]) == condition_type)
        };
        let mut condition = if has("Denied") {
            "Denied"
        } else if has("Approved") {
            "Approved"
        } else {
            "Pending"
        }
        .to_string();
        if has("Failed") {
            condition.push_str(",Failed");
        }
        if !text(request, &["status", "certificate"]).is_empty() {
            condition.push_str(",Issued");
        }
        let requested_duration = opt_int(request, &["spec", "expirationSeconds"]).map_or_else(
            || "<none>".to_string(),
            |seconds| human_duration_nanos(i128::from(seconds) * 1_000_000_000),
        );
        vec![
            name(request).into(),
            clock.age(request).into(),
            text_or(request, &["spec", "signerName"], "<none>").into(),
            text(request, &["spec", "username"]).into(),
            requested_duration.into(),
            condition.into(),
        ]
    },
);
