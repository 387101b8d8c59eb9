//! Strategic-merge-patch metadata of the built-in kinds: per field, the patch strategy and merge key.
//!
//! Upstream reads these from the `patchStrategy` / `patchMergeKey` Go struct
//! tags (`listType` / `listMapKey` only matter to server-side apply). Only
//! fields that carry a tag, and the structs leading to them, are listed:
//! an unlisted map is merged key by key and an unlisted list is replaced
//! wholesale, which is exactly what an untagged Go field gets. To extend,
//! add a `Field` to the struct's `Schema` (or a new `Schema` and a `KINDS`
//! row) mirroring the tag.

/// A `patchStrategy` tag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchStrategy {
    /// `merge`: list items merge by `patchMergeKey`, primitives are unioned.
    Merge,
    /// `replace`: the field is replaced wholesale, even when it is a map.
    Replace,
    /// `retainKeys`: clients send `$retainKeys`; the server merges as usual.
    RetainKeys,
    /// `merge,retainKeys`.
    MergeRetainKeys,
}

impl PatchStrategy {
    /// Whether lists under this strategy merge rather than replace.
    pub fn merges(self) -> bool {
        matches!(self, PatchStrategy::Merge | PatchStrategy::MergeRetainKeys)
    }
}

/// One tagged field (or a struct field leading to tagged fields).
#[derive(Debug)]
pub struct Field {
    /// JSON name of the field.
    pub name: &'static str,
    pub strategy: Option<PatchStrategy>,
    /// `patchMergeKey`; empty for primitive lists and non-list fields.
    pub merge_key: &'static str,
    /// Metadata of the field's value (the item type, for lists).
    pub schema: Option<&'static Schema>,
}

/// The tagged fields of one Go struct.
#[derive(Debug)]
pub struct Schema {
    pub fields: &'static [Field],
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

const fn nested(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: None,
        merge_key: "",
        schema: Some(schema),
    }
}

const fn merge_by(name: &'static str, merge_key: &'static str) -> Field {
    Field {
        name,
        strategy: Some(PatchStrategy::Merge),
        merge_key,
        schema: None,
    }
}

const fn merge_items(name: &'static str, merge_key: &'static str, item: &'static Schema) -> Field {
    Field {
        name,
        strategy: Some(PatchStrategy::Merge),
        merge_key,
        schema: Some(item),
    }
}

const fn merge_retaining_keys(name: &'static str, merge_key: &'static str) -> Field {
    Field {
        name,
        strategy: Some(PatchStrategy::MergeRetainKeys),
        merge_key,
        schema: None,
    }
}

const fn merge_primitives(name: &'static str) -> Field {
    Field {
        name,
        strategy: Some(PatchStrategy::Merge),
        merge_key: "",
        schema: None,
    }
}

const fn retain_keys(name: &'static str) -> Field {
    Field {
        name,
        strategy: Some(PatchStrategy::RetainKeys),
        merge_key: "",
        schema: None,
    }
}

const fn replace(name: &'static str) -> Field {
    Field {
        name,
        strategy: Some(PatchStrategy::Replace),
        merge_key: "",
        schema: None,
    }
}

// ---- k8s.io/apimachinery/pkg/apis/meta/v1/types.go ----

static OBJECT_META: Schema = Schema {
    fields: &[
        merge_by("ownerReferences", "uid"),
        merge_primitives("finalizers"),
    ],
};

const METADATA: Field = nested("metadata", &OBJECT_META);

static METADATA_ONLY: Schema = Schema {
    fields: &[METADATA],
};

/// A `status` whose only tagged field is `conditions` keyed by `type`.
static CONDITIONS_STATUS: Schema = Schema {
    fields: &[merge_by("conditions", "type")],
};

// ---- k8s.io/api/core/v1/types.go ----

// Container and EphemeralContainerCommon carry the same tags.
static CONTAINER: Schema = Schema {
    fields: &[
        merge_by("ports", "containerPort"),
        merge_by("env", "name"),
        merge_by("volumeMounts", "mountPath"),
        merge_by("volumeDevices", "devicePath"),
    ],
};

static POD_SPEC: Schema = Schema {
    fields: &[
        merge_retaining_keys("volumes", "name"),
        merge_items("initContainers", "name", &CONTAINER),
        merge_items("containers", "name", &CONTAINER),
        merge_items("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name"),
        merge_by("hostAliases", "ip"),
        merge_by("topologySpreadConstraints", "topologyKey"),
        merge_by("schedulingGates", "name"),
        merge_retaining_keys("resourceClaims", "name"),
        merge_by("evictionResponders", "name"),
    ],
};

static POD_TEMPLATE_SPEC: Schema = Schema {
    fields: &[METADATA, nested("spec", &POD_SPEC)],
};

static NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS: Schema = Schema {
    fields: &[merge_by("mapping", "name"), merge_by("overhead", "name")],
};

static POD_STATUS: Schema = Schema {
    fields: &[
        merge_by("conditions", "type"),
        merge_by("hostIPs", "ip"),
        merge_by("podIPs", "ip"),
        merge_retaining_keys("resourceClaimStatuses", "name"),
        merge_items(
            "nodeAllocatableResourceClaimStatuses",
            "resourceClaimName",
            &NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS,
        ),
    ],
};

static POD: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &POD_SPEC),
        nested("status", &POD_STATUS),
    ],
};

static POD_TEMPLATE: Schema = Schema {
    fields: &[METADATA, nested("template", &POD_TEMPLATE_SPEC)],
};

static SERVICE_SPEC: Schema = Schema {
    fields: &[merge_by("ports", "port")],
};

static SERVICE: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &SERVICE_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
};

static NODE_SPEC: Schema = Schema {
    fields: &[merge_primitives("podCIDRs")],
};

static NODE_STATUS: Schema = Schema {
    fields: &[
        merge_by("conditions", "type"),
        merge_by("addresses", "type"),
    ],
};

static NODE: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &NODE_SPEC),
        nested("status", &NODE_STATUS),
    ],
};

static WITH_CONDITIONS_STATUS: Schema = Schema {
    fields: &[METADATA, nested("status", &CONDITIONS_STATUS)],
};

static SERVICE_ACCOUNT: Schema = Schema {
    fields: &[METADATA, merge_by("secrets", "name")],
};

static VOLUME_HEALTH_STATUS: Schema = Schema {
    fields: &[merge_by("healthConditions", "status")],
};

static PERSISTENT_VOLUME_CLAIM_STATUS: Schema = Schema {
    fields: &[
        merge_by("conditions", "type"),
        nested("healthStatus", &VOLUME_HEALTH_STATUS),
    ],
};

static PERSISTENT_VOLUME_CLAIM: Schema = Schema {
    fields: &[METADATA, nested("status", &PERSISTENT_VOLUME_CLAIM_STATUS)],
};

static COMPONENT_STATUS: Schema = Schema {
    fields: &[METADATA, merge_by("conditions", "type")],
};

// ---- k8s.io/api/apps/v1/types.go (ReplicationController from core/v1 has the same shape) ----

static TEMPLATED_SPEC: Schema = Schema {
    fields: &[nested("template", &POD_TEMPLATE_SPEC)],
};

static TEMPLATED_WORKLOAD: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &TEMPLATED_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
};

static DEPLOYMENT_SPEC: Schema = Schema {
    fields: &[
        nested("template", &POD_TEMPLATE_SPEC),
        retain_keys("strategy"),
    ],
};

static DEPLOYMENT: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &DEPLOYMENT_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
};

// ---- k8s.io/api/batch/v1/types.go ----

static JOB_SCHEDULING_CONFIGURATION: Schema = Schema {
    fields: &[merge_by("resourceClaims", "name")],
};

static JOB_SPEC: Schema = Schema {
    fields: &[
        nested("template", &POD_TEMPLATE_SPEC),
        nested("scheduling", &JOB_SCHEDULING_CONFIGURATION),
    ],
};

static JOB: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &JOB_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
};

static JOB_TEMPLATE_SPEC: Schema = Schema {
    fields: &[METADATA, nested("spec", &JOB_SPEC)],
};

static CRON_JOB_SPEC: Schema = Schema {
    fields: &[nested("jobTemplate", &JOB_TEMPLATE_SPEC)],
};

static CRON_JOB: Schema = Schema {
    fields: &[METADATA, nested("spec", &CRON_JOB_SPEC)],
};

// ---- k8s.io/api/policy/v1/types.go ----

static POD_DISRUPTION_BUDGET_SPEC: Schema = Schema {
    fields: &[replace("selector")],
};

static POD_DISRUPTION_BUDGET: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &POD_DISRUPTION_BUDGET_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
};

// ---- k8s.io/api/storage/v1/types.go ----

static CSI_NODE_SPEC: Schema = Schema {
    fields: &[merge_by("drivers", "name")],
};

static CSI_NODE_STATUS: Schema = Schema {
    fields: &[merge_by("storageHealth", "name")],
};

static CSI_NODE: Schema = Schema {
    fields: &[
        METADATA,
        nested("spec", &CSI_NODE_SPEC),
        nested("status", &CSI_NODE_STATUS),
    ],
};

// ---- k8s.io/api/admissionregistration/v1/types.go ----

static WEBHOOK: Schema = Schema {
    fields: &[merge_by("matchConditions", "name")],
};

static WEBHOOK_CONFIGURATION: Schema = Schema {
    fields: &[METADATA, merge_items("webhooks", "name", &WEBHOOK)],
};

static VALIDATING_ADMISSION_POLICY_SPEC: Schema = Schema {
    fields: &[
        merge_by("matchConditions", "name"),
        merge_by("variables", "name"),
    ],
};

static VALIDATING_ADMISSION_POLICY: Schema = Schema {
    fields: &[METADATA, nested("spec", &VALIDATING_ADMISSION_POLICY_SPEC)],
};

// Unlike the validating policy, `variables` here is untagged.
static MUTATING_ADMISSION_POLICY_SPEC: Schema = Schema {
    fields: &[merge_by("matchConditions", "name")],
};

static MUTATING_ADMISSION_POLICY: Schema = Schema {
    fields: &[METADATA, nested("spec", &MUTATING_ADMISSION_POLICY_SPEC)],
};

/// (API group, kind) → root metadata, for every built-in kind krust serves
/// (upstream: the typed object registered for the kind).
static KINDS: &[(&str, &str, &Schema)] = &[
    ("", "Pod", &POD),
    ("", "PodTemplate", &POD_TEMPLATE),
    ("", "ReplicationController", &TEMPLATED_WORKLOAD),
    ("", "Service", &SERVICE),
    ("", "Endpoints", &METADATA_ONLY),
    ("", "Namespace", &WITH_CONDITIONS_STATUS),
    ("", "Node", &NODE),
    ("", "ConfigMap", &METADATA_ONLY),
    ("", "Secret", &METADATA_ONLY),
    ("", "ServiceAccount", &SERVICE_ACCOUNT),
    ("", "Event", &METADATA_ONLY),
    ("", "PersistentVolume", &METADATA_ONLY),
    ("", "PersistentVolumeClaim", &PERSISTENT_VOLUME_CLAIM),
    ("", "ResourceQuota", &METADATA_ONLY),
    ("", "LimitRange", &METADATA_ONLY),
    ("", "ComponentStatus", &COMPONENT_STATUS),
    ("apps", "Deployment", &DEPLOYMENT),
    ("apps", "ReplicaSet", &TEMPLATED_WORKLOAD),
    ("apps", "StatefulSet", &TEMPLATED_WORKLOAD),
    ("apps", "DaemonSet", &TEMPLATED_WORKLOAD),
    ("apps", "ControllerRevision", &METADATA_ONLY),
    ("batch", "Job", &JOB),
    ("batch", "CronJob", &CRON_JOB),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        &WITH_CONDITIONS_STATUS,
    ),
    ("autoscaling", "Scale", &METADATA_ONLY),
    ("policy", "PodDisruptionBudget", &POD_DISRUPTION_BUDGET),
    ("discovery.k8s.io", "EndpointSlice", &METADATA_ONLY),
    ("networking.k8s.io", "Ingress", &METADATA_ONLY),
    ("networking.k8s.io", "IngressClass", &METADATA_ONLY),
    ("networking.k8s.io", "NetworkPolicy", &METADATA_ONLY),
    ("networking.k8s.io", "IPAddress", &METADATA_ONLY),
    ("networking.k8s.io", "ServiceCIDR", &WITH_CONDITIONS_STATUS),
    ("coordination.k8s.io", "Lease", &METADATA_ONLY),
    ("rbac.authorization.k8s.io", "Role", &METADATA_ONLY),
    ("rbac.authorization.k8s.io", "RoleBinding", &METADATA_ONLY),
    ("rbac.authorization.k8s.io", "ClusterRole", &METADATA_ONLY),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        &METADATA_ONLY,
    ),
    ("storage.k8s.io", "StorageClass", &METADATA_ONLY),
    ("storage.k8s.io", "CSIDriver", &METADATA_ONLY),
    ("storage.k8s.io", "CSINode", &CSI_NODE),
    ("storage.k8s.io", "CSIStorageCapacity", &METADATA_ONLY),
    ("storage.k8s.io", "VolumeAttachment", &METADATA_ONLY),
    ("scheduling.k8s.io", "PriorityClass", &METADATA_ONLY),
    ("events.k8s.io", "Event", &METADATA_ONLY),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        &METADATA_ONLY,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        &WEBHOOK_CONFIGURATION,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        &WEBHOOK_CONFIGURATION,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        &VALIDATING_ADMISSION_POLICY,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        &METADATA_ONLY,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        &MUTATING_ADMISSION_POLICY,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
        &METADATA_ONLY,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        &WITH_CONDITIONS_STATUS,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        &WITH_CONDITIONS_STATUS,
    ),
];

/// The strategic-merge metadata of a kind, or `None` when the kind has none
/// (custom resources, aggregated APIs).
pub fn schema_for(group: &str, kind: &str) -> Option<&'static Schema> {
    KINDS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, schema)| *schema)
}

/// Whether kube-apiserver accepts `application/strategic-merge-patch+json`
/// for this kind; when false it answers 415 Unsupported Media Type.
pub fn supports_strategic_merge(group: &str, kind: &str) -> bool {
    schema_for(group, kind).is_some()
}
