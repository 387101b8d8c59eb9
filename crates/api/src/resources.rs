//! The built-in resources krust serves: group, version, kind, plural, short names, categories, scope, verbs and subresources, as upstream declares them.

/// The verbs of an ordinary resource, in the order discovery lists them.
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Subresources that read and write one part of an object.
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

pub use crate::validation::NameRule;

/// A subresource such as `status` or `scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind the subresource reads and writes (`Scale`, `Binding`, ...);
    /// for `status` it is the parent kind.
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub verbs: &'static [&'static str],
}

/// One served resource at one group version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// "" for the core (legacy) group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The plural resource name used in URLs.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    pub name_rule: NameRule,
    /// Field selectors this resource supports besides metadata.name and
    /// metadata.namespace.
    pub field_selectors: &'static [&'static str],
    /// Where objects live in storage: resources served at several versions
    /// or groups share one (e.g. autoscaling/v1 and v2 HPAs).
    pub storage_prefix: &'static str,
}

impl Resource {
    /// `apiVersion` as written in objects: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL prefix of this group version: `/api/v1` or `/apis/apps/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// Whether `status` is written only through the status subresource.
    pub fn has_status_subresource(&self) -> bool {
        self.has_subresource("status")
    }

    /// Every field this resource can be selected by.
    pub fn supported_field_selectors(&self) -> Vec<&'static str> {
        let mut fields = vec!["metadata.name"];
        if self.namespaced {
            fields.push("metadata.namespace");
        }
        fields.extend_from_slice(self.field_selectors);
        fields
    }
}

const fn status_of(kind: &'static str, group: &'static str, version: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        group,
        version,
        verbs: STATUS_VERBS,
    }
}

const fn scale(group: &'static str) -> Subresource {
    Subresource {
        name: "scale",
        kind: "Scale",
        group,
        version: "v1",
        verbs: STATUS_VERBS,
    }
}

/// A resource with the common defaults; fields are then overridden.
const fn resource(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        kind,
        plural,
        singular,
        short_names: &[],
        categories: &[],
        namespaced,
        verbs: ALL_VERBS,
        subresources: &[],
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
        storage_prefix: plural,
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
/// The same selectable fields under events.k8s.io/v1's names.
const EVENT_V1_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];
const POD_SUBRESOURCES: &[Subresource] = &[
    status_of("Pod", "", "v1"),
    Subresource {
        name: "binding",
        kind: "Binding",
        group: "",
        version: "v1",
        verbs: &["create"],
    },
    Subresource {
        name: "eviction",
        kind: "Eviction",
        group: "policy",
        version: "v1",
        verbs: &["create"],
    },
    Subresource {
        name: "log",
        kind: "Pod",
        group: "",
        version: "v1",
        verbs: &["get"],
    },
    Subresource {
        name: "exec",
        kind: "PodExecOptions",
        group: "",
        version: "v1",
        verbs: &["create", "get"],
    },
    Subresource {
        name: "attach",
        kind: "PodAttachOptions",
        group: "",
        version: "v1",
        verbs: &["create", "get"],
    },
    Subresource {
        name: "portforward",
        kind: "PodPortForwardOptions",
        group: "",
        version: "v1",
        verbs: &["create", "get"],
    },
    Subresource {
        name: "proxy",
        kind: "PodProxyOptions",
        group: "",
        version: "v1",
        verbs: &["create", "delete", "get", "patch", "update"],
    },
];

/// Every resource krust serves, core group first, then by group.
pub static RESOURCES: &[Resource] = &[
    Resource {
        short_names: &["cm"],
        ..resource("", "v1", "ConfigMap", "configmaps", "configmap", true)
    },
    Resource {
        short_names: &["ep"],
        ..resource("", "v1", "Endpoints", "endpoints", "endpoints", true)
    },
    Resource {
        short_names: &["ev"],
        field_selectors: EVENT_FIELDS,
        ..resource("", "v1", "Event", "events", "event", true)
    },
    Resource {
        short_names: &["limits"],
        ..resource("", "v1", "LimitRange", "limitranges", "limitrange", true)
    },
    Resource {
        short_names: &["ns"],
        verbs: NAMESPACE_VERBS,
        subresources: &[
            status_of("Namespace", "", "v1"),
            Subresource {
                name: "finalize",
                kind: "Namespace",
                group: "",
                version: "v1",
                verbs: &["update"],
            },
        ],
        name_rule: NameRule::DnsLabel,
        field_selectors: &["status.phase"],
        ..resource("", "v1", "Namespace", "namespaces", "namespace", false)
    },
    Resource {
        short_names: &["no"],
        subresources: &[
            status_of("Node", "", "v1"),
            Subresource {
                name: "proxy",
                kind: "NodeProxyOptions",
                group: "",
                version: "v1",
                verbs: &["create", "delete", "get", "patch", "update"],
            },
        ],
        field_selectors: &["spec.unschedulable"],
        ..resource("", "v1", "Node", "nodes", "node", false)
    },
    Resource {
        short_names: &["pvc"],
        subresources: &[status_of("PersistentVolumeClaim", "", "v1")],
        ..resource(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            true,
        )
    },
    Resource {
        short_names: &["pv"],
        subresources: &[status_of("PersistentVolume", "", "v1")],
        ..resource(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            "persistentvolume",
            false,
        )
    },
    Resource {
        short_names: &["po"],
        categories: &["all"],
        subresources: POD_SUBRESOURCES,
        field_selectors: POD_FIELDS,
        ..resource("", "v1", "Pod", "pods", "pod", true)
    },
    resource("", "v1", "PodTemplate", "podtemplates", "podtemplate", true),
    Resource {
        short_names: &["rc"],
        categories: &["all"],
        subresources: &[
            status_of("ReplicationController", "", "v1"),
            scale("autoscaling"),
        ],
        field_selectors: &["status.replicas"],
        ..resource(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            "replicationcontroller",
            true,
        )
    },
    Resource {
        short_names: &["quota"],
        subresources: &[status_of("ResourceQuota", "", "v1")],
        ..resource(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            "resourcequota",
            true,
        )
    },
    Resource {
        field_selectors: &["type"],
        ..resource("", "v1", "Secret", "secrets", "secret", true)
    },
    Resource {
        short_names: &["sa"],
        ..resource(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
            true,
        )
    },
    Resource {
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[
            status_of("Service", "", "v1"),
            Subresource {
                name: "proxy",
                kind: "ServiceProxyOptions",
                group: "",
                version: "v1",
                verbs: &["create", "delete", "get", "patch", "update"],
            },
        ],
        name_rule: NameRule::Dns1035Label,
        field_selectors: &["spec.clusterIP", "spec.type"],
        ..resource("", "v1", "Service", "services", "service", true)
    },
    Resource {
        storage_prefix: "apps/controllerrevisions",
        ..resource(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            "controllerrevision",
            true,
        )
    },
    Resource {
        short_names: &["ds"],
        categories: &["all"],
        subresources: &[status_of("DaemonSet", "apps", "v1")],
        storage_prefix: "apps/daemonsets",
        ..resource("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true)
    },
    Resource {
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[status_of("Deployment", "apps", "v1"), scale("autoscaling")],
        storage_prefix: "apps/deployments",
        ..resource(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "deployment",
            true,
        )
    },
    Resource {
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[status_of("ReplicaSet", "apps", "v1"), scale("autoscaling")],
        field_selectors: &["status.replicas"],
        storage_prefix: "apps/replicasets",
        ..resource(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            "replicaset",
            true,
        )
    },
    Resource {
        short_names: &["sts"],
        categories: &["all"],
        subresources: &[status_of("StatefulSet", "apps", "v1"), scale("autoscaling")],
        storage_prefix: "apps/statefulsets",
        ..resource(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            "statefulset",
            true,
        )
    },
    Resource {
        short_names: &["hpa"],
        categories: &["all"],
        subresources: &[status_of("HorizontalPodAutoscaler", "autoscaling", "v2")],
        storage_prefix: "autoscaling/horizontalpodautoscalers",
        ..resource(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            true,
        )
    },
    // Served as well for older clients; stored as autoscaling/v2.
    Resource {
        short_names: &["hpa"],
        categories: &["all"],
        subresources: &[status_of("HorizontalPodAutoscaler", "autoscaling", "v1")],
        storage_prefix: "autoscaling/horizontalpodautoscalers",
        ..resource(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            true,
        )
    },
    // Stored as core/v1 Events, so both groups see every event.
    Resource {
        short_names: &["ev"],
        field_selectors: EVENT_V1_FIELDS,
        storage_prefix: "events",
        ..resource("events.k8s.io", "v1", "Event", "events", "event", true)
    },
    Resource {
        short_names: &["cj"],
        categories: &["all"],
        subresources: &[status_of("CronJob", "batch", "v1")],
        storage_prefix: "batch/cronjobs",
        ..resource("batch", "v1", "CronJob", "cronjobs", "cronjob", true)
    },
    Resource {
        categories: &["all"],
        subresources: &[status_of("Job", "batch", "v1")],
        field_selectors: &["status.successful"],
        storage_prefix: "batch/jobs",
        ..resource("batch", "v1", "Job", "jobs", "job", true)
    },
    Resource {
        storage_prefix: "coordination.k8s.io/leases",
        ..resource(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            "lease",
            true,
        )
    },
    Resource {
        field_selectors: &["addressType"],
        storage_prefix: "discovery.k8s.io/endpointslices",
        ..resource(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            "endpointslice",
            true,
        )
    },
    Resource {
        short_names: &["ing"],
        subresources: &[status_of("Ingress", "networking.k8s.io", "v1")],
        storage_prefix: "networking.k8s.io/ingresses",
        ..resource(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            "ingress",
            true,
        )
    },
    Resource {
        storage_prefix: "networking.k8s.io/ingressclasses",
        ..resource(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            "ingressclass",
            false,
        )
    },
    Resource {
        short_names: &["netpol"],
        storage_prefix: "networking.k8s.io/networkpolicies",
        ..resource(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            "networkpolicy",
            true,
        )
    },
    Resource {
        short_names: &["pdb"],
        subresources: &[status_of("PodDisruptionBudget", "policy", "v1")],
        storage_prefix: "policy/poddisruptionbudgets",
        ..resource(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            true,
        )
    },
    Resource {
        name_rule: NameRule::PathSegment,
        storage_prefix: "rbac.authorization.k8s.io/clusterrolebindings",
        ..resource(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            "clusterrolebinding",
            false,
        )
    },
    Resource {
        name_rule: NameRule::PathSegment,
        storage_prefix: "rbac.authorization.k8s.io/clusterroles",
        ..resource(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            "clusterrole",
            false,
        )
    },
    Resource {
        name_rule: NameRule::PathSegment,
        storage_prefix: "rbac.authorization.k8s.io/rolebindings",
        ..resource(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            "rolebinding",
            true,
        )
    },
    Resource {
        name_rule: NameRule::PathSegment,
        storage_prefix: "rbac.authorization.k8s.io/roles",
        ..resource(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            "role",
            true,
        )
    },
    Resource {
        short_names: &["pc"],
        storage_prefix: "scheduling.k8s.io/priorityclasses",
        ..resource(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            "priorityclass",
            false,
        )
    },
    Resource {
        short_names: &["sc"],
        storage_prefix: "storage.k8s.io/storageclasses",
        ..resource(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            "storageclass",
            false,
        )
    },
];

/// The API groups in discovery order, each with its versions, preferred first.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for resource in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match groups
            .iter_mut()
            .find(|(group, _)| *group == resource.group)
        {
            Some((_, versions)) if !versions.contains(&resource.version) => {
                versions.push(resource.version)
            }
            Some(_) => {}
            None => groups.push((resource.group, vec![resource.version])),
        }
    }
    groups
}

/// The resources served at one group version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The resource at `group/version` named `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for `apiVersion` + `kind`, as found in an object.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_unique_and_well_formed() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} listed twice",
                    a.plural
                );
                // A short name may only stand for one resource, which may
                // be served in several groups or versions (ev, hpa).
                for short in a.short_names {
                    assert!(
                        !b.short_names.contains(short) || a.plural == b.plural,
                        "short name {short} reused"
                    );
                }
            }
            assert_eq!(a.plural.to_lowercase(), a.plural);
            assert_eq!(a.singular, a.kind.to_lowercase());
        }
    }

    #[test]
    fn lookups_find_resources_by_path_and_by_kind() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deployments.kind, "Deployment");
        assert_eq!(deployments.api_version(), "apps/v1");
        assert_eq!(deployments.group_version_path(), "/apis/apps/v1");
        assert!(deployments.has_subresource("scale"));
        assert_eq!(find_kind("v1", "Pod").unwrap().plural, "pods");
        assert_eq!(find("", "v1", "deployments"), None);
        assert!(
            find("", "v1", "pods")
                .unwrap()
                .supported_field_selectors()
                .contains(&"spec.nodeName")
        );
        assert_eq!(
            find("", "v1", "nodes").unwrap().supported_field_selectors()[0],
            "metadata.name"
        );
    }

    #[test]
    fn groups_list_each_group_once() {
        let groups = groups();
        let names: Vec<&str> = groups.iter().map(|(g, _)| *g).collect();
        assert!(names.contains(&"apps") && names.contains(&"rbac.authorization.k8s.io"));
        let mut deduplicated = names.clone();
        deduplicated.dedup();
        assert_eq!(names.len(), deduplicated.len());
    }
}
