//! Server-side printing: builds the meta.k8s.io/v1 `Table` that `kubectl get` renders, with upstream's columns and cells per kind.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! and prints whatever columns the server returns, hiding those with
//! `priority > 0` unless `-o wide`. Like kube-apiserver, every row therefore
//! carries all cells, wide ones included.
//!
//! Objects are read as the v1 wire format. Where the v1 decoder would have
//! filled in a default that upstream then prints (a Deployment's replicas, a
//! Service's type, a port's protocol, …), a missing field is shown with that
//! default. Fields that are simply unset print upstream's placeholders
//! (`<none>`, `<unknown>`, `<unset>`, 0). Quantities are printed as stored,
//! not re-canonicalised.

mod cluster;
mod core_group;
mod fields;
mod pods;
mod time;
mod workloads;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

pub use pods::pod_status_reason;
pub use time::rfc3339;

/// What each row's `object` holds, as the `includeObject` table option asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object: the `object` key is left out of the row.
    None,
    /// A `meta.k8s.io/v1` `PartialObjectMetadata` with the object's metadata;
    /// kubectl's default.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// Builds the `meta.k8s.io/v1` Table for `objects` of `resource` in API
/// `group` (`""` for core), aging timestamps against `now_unix_seconds`.
///
/// Kinds without a dedicated printer get the generic `Name`/`Created At`
/// table kube-apiserver falls back to. The returned `metadata` holds an
/// empty `resourceVersion`; the caller overwrites it, and adds `continue`
/// when paginating, from the list it served:
/// `table["metadata"]["resourceVersion"] = rv.into()`.
pub fn table(
    resource: &str,
    group: &str,
    objects: &[Value],
    now_unix_seconds: i64,
    include_object: IncludeObject,
) -> Value {
    let printer = printer_for(group, resource).unwrap_or(GENERIC);
    let clock = Clock {
        now: time::Instant::from_unix_seconds(now_unix_seconds),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = Map::new();
            row.insert(
                "cells".into(),
                Value::Array((printer.cells)(object, &clock)),
            );
            if let Some(conditions) = printer.conditions.and_then(|conditions| conditions(object)) {
                row.insert("conditions".into(), conditions);
            }
            if let Some(embedded) = embedded_object(object, include_object) {
                row.insert("object".into(), embedded);
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": ""},
        "columnDefinitions": printer.columns.iter().copied().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// Upstream's HumanDuration, used for AGE and similar columns: `"59s"`,
/// `"2m3s"`, `"15m"`, `"3h20m"`, `"30h"`, `"3d4h"`, `"45d"`, `"2y30d"`,
/// `"10y"`; `"0s"` for one second in the future (clock skew) and
/// `"<invalid>"` further ahead.
pub fn human_duration(seconds: i64) -> String {
    time::human_duration_nanos(i128::from(seconds) * 1_000_000_000)
}

fn embedded_object(object: &Value, include_object: IncludeObject) -> Option<Value> {
    match include_object {
        IncludeObject::None => None,
        IncludeObject::Object => Some(object.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": fields::at(object, &["metadata"]).cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

/// One entry of `columnDefinitions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u32,
}

impl Column {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn column(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

/// A column kubectl shows only with `-o wide`.
const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..column(name, kind, description)
    }
}

const NAME: Column = Column {
    format: "name",
    ..column(
        "Name",
        "string",
        "Name of the object, unique within its namespace (metadata.name).",
    )
};
const AGE: Column = column(
    "Age",
    "string",
    "Time since the object was created (metadata.creationTimestamp).",
);
const WIDE_CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const WIDE_IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// Reference time for relative columns.
struct Clock {
    now: time::Instant,
}

impl Clock {
    /// Time elapsed since a timestamp field, `<unknown>` when it is unset.
    fn since(&self, timestamp: Option<&Value>) -> String {
        match time::Instant::from_value(timestamp) {
            Some(then) => time::human_duration_nanos(self.now.0 - then.0),
            None => "<unknown>".to_string(),
        }
    }

    fn age(&self, object: &Value) -> String {
        self.since(fields::at(object, &["metadata", "creationTimestamp"]))
    }
}

type Cells = fn(&Value, &Clock) -> Vec<Value>;
type RowConditions = fn(&Value) -> Option<Value>;

/// How one resource is printed: its columns and the cells of a row.
#[derive(Clone, Copy)]
struct Printer {
    columns: &'static [Column],
    cells: Cells,
    conditions: Option<RowConditions>,
}

impl Printer {
    const fn new(columns: &'static [Column], cells: Cells) -> Printer {
        Printer {
            columns,
            cells,
            conditions: None,
        }
    }
}

fn printer_for(group: &str, resource: &str) -> Option<Printer> {
    let printer = match (group, resource) {
        ("", "pods") => pods::PODS,
        ("", "nodes") => core_group::NODES,
        ("", "namespaces") => core_group::NAMESPACES,
        ("", "services") => core_group::SERVICES,
        ("", "endpoints") => core_group::ENDPOINTS,
        ("", "configmaps") => core_group::CONFIG_MAPS,
        ("", "secrets") => core_group::SECRETS,
        ("", "serviceaccounts") => core_group::SERVICE_ACCOUNTS,
        ("", "events") => core_group::CORE_EVENTS,
        ("events.k8s.io", "events") => core_group::EVENTS_V1,
        ("", "persistentvolumes") => core_group::PERSISTENT_VOLUMES,
        ("", "persistentvolumeclaims") => core_group::PERSISTENT_VOLUME_CLAIMS,
        ("", "replicationcontrollers") => core_group::REPLICATION_CONTROLLERS,
        ("", "resourcequotas") => core_group::RESOURCE_QUOTAS,
        ("", "podtemplates") => core_group::POD_TEMPLATES,
        ("", "componentstatuses") => core_group::COMPONENT_STATUSES,
        ("apps", "deployments") => workloads::DEPLOYMENTS,
        ("apps", "replicasets") => workloads::REPLICA_SETS,
        ("apps", "statefulsets") => workloads::STATEFUL_SETS,
        ("apps", "daemonsets") => workloads::DAEMON_SETS,
        ("apps", "controllerrevisions") => workloads::CONTROLLER_REVISIONS,
        ("batch", "jobs") => workloads::JOBS,
        ("batch", "cronjobs") => workloads::CRON_JOBS,
        ("autoscaling", "horizontalpodautoscalers") => workloads::HORIZONTAL_POD_AUTOSCALERS,
        ("policy", "poddisruptionbudgets") => workloads::POD_DISRUPTION_BUDGETS,
        ("discovery.k8s.io", "endpointslices") => cluster::ENDPOINT_SLICES,
        ("networking.k8s.io", "ingresses") => cluster::INGRESSES,
        ("networking.k8s.io", "ingressclasses") => cluster::INGRESS_CLASSES,
        ("networking.k8s.io", "networkpolicies") => cluster::NETWORK_POLICIES,
        ("coordination.k8s.io", "leases") => cluster::LEASES,
        ("rbac.authorization.k8s.io", "rolebindings") => cluster::ROLE_BINDINGS,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => cluster::CLUSTER_ROLE_BINDINGS,
        ("storage.k8s.io", "storageclasses") => cluster::STORAGE_CLASSES,
        ("storage.k8s.io", "csidrivers") => cluster::CSI_DRIVERS,
        ("storage.k8s.io", "csinodes") => cluster::CSI_NODES,
        ("storage.k8s.io", "volumeattachments") => cluster::VOLUME_ATTACHMENTS,
        ("scheduling.k8s.io", "priorityclasses") => cluster::PRIORITY_CLASSES,
        ("node.k8s.io", "runtimeclasses") => cluster::RUNTIME_CLASSES,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
        | ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            cluster::WEBHOOK_CONFIGURATIONS
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            cluster::CERTIFICATE_SIGNING_REQUESTS
        }
        // Roles, ClusterRoles and LimitRanges have no upstream printer and use
        // the generic table like any other resource.
        _ => return None,
    };
    Some(printer)
}

/// kube-apiserver's default table for resources without a printer.
const GENERIC: Printer = Printer::new(
    &[
        NAME,
        column(
            "Created At",
            "date",
            "Time the object was created (metadata.creationTimestamp), in RFC 3339.",
        ),
    ],
    generic_cells,
);

fn generic_cells(object: &Value, _clock: &Clock) -> Vec<Value> {
    let created = time::Instant::from_value(fields::at(object, &["metadata", "creationTimestamp"]))
        .unwrap_or_else(time::zero_time);
    vec![fields::name(object).into(), created.rfc3339_utc().into()]
}
