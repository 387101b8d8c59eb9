//! Generates `src/protobuf/schema.rs`, the protobuf message table, and fails when the checked-in table is stale.
//!
//! Inputs, all found through `cargo metadata`:
//! - k8s-pb's prost types: message and field names, tags, wire types, which
//!   message a field holds, and each API group's `apiVersion`;
//! - k8s-openapi's generated types: the real JSON property names (prost
//!   snake-cases `podIP` into `pod_ip`, losing the acronym) and the Go type
//!   names (`CSIDriver`, not prost's `CsiDriver`);
//! - [`OMIT_ZERO`] and [`KEEP_EMPTY_STRING`] below: which Go fields are
//!   plain values tagged `omitempty` and which are pointers, the one fact
//!   neither crate carries.
//!
//! `UPDATE_PROTOBUF_SCHEMA=1 cargo test -p api --test protobuf_schema`
//! rewrites the table; without it the test compares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The k8s-pb modules whose messages the table holds: the groups krust
/// serves and the apimachinery types they use.
const MODULES: &[&str] = &[
    "api/apps/v1",
    "api/autoscaling/v1",
    "api/autoscaling/v2",
    "api/batch/v1",
    "api/coordination/v1",
    "api/core/v1",
    "api/discovery/v1",
    "api/events/v1",
    "api/networking/v1",
    "api/policy/v1",
    "api/rbac/v1",
    "api/scheduling/v1",
    "api/storage/v1",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/apis/meta/v1",
    "apimachinery/pkg/runtime",
    "apimachinery/pkg/util/intstr",
];

/// Number and bool fields that Go declares as plain values tagged
/// `omitempty` (k8s.io/api and k8s.io/apimachinery `types.go`): client-go's
/// protobuf encoder writes their zero value anyway, upstream's JSON omits
/// it, and zero means unset (`nodePort: 0` asks for an allocated port).
/// Every other number and bool field is a pointer or required, so its zero
/// is kept (`replicas: 0`, `automountServiceAccountToken: false`).
const OMIT_ZERO: &[&str] = &[
    "io.k8s.api.apps.v1.DaemonSetSpec.minReadySeconds",
    "io.k8s.api.apps.v1.DaemonSetStatus.numberAvailable",
    "io.k8s.api.apps.v1.DaemonSetStatus.numberUnavailable",
    "io.k8s.api.apps.v1.DaemonSetStatus.observedGeneration",
    "io.k8s.api.apps.v1.DaemonSetStatus.updatedNumberScheduled",
    "io.k8s.api.apps.v1.DeploymentSpec.minReadySeconds",
    "io.k8s.api.apps.v1.DeploymentSpec.paused",
    "io.k8s.api.apps.v1.DeploymentStatus.availableReplicas",
    "io.k8s.api.apps.v1.DeploymentStatus.observedGeneration",
    "io.k8s.api.apps.v1.DeploymentStatus.readyReplicas",
    "io.k8s.api.apps.v1.DeploymentStatus.replicas",
    "io.k8s.api.apps.v1.DeploymentStatus.unavailableReplicas",
    "io.k8s.api.apps.v1.DeploymentStatus.updatedReplicas",
    "io.k8s.api.apps.v1.ReplicaSetSpec.minReadySeconds",
    "io.k8s.api.apps.v1.ReplicaSetStatus.availableReplicas",
    "io.k8s.api.apps.v1.ReplicaSetStatus.fullyLabeledReplicas",
    "io.k8s.api.apps.v1.ReplicaSetStatus.observedGeneration",
    "io.k8s.api.apps.v1.ReplicaSetStatus.readyReplicas",
    "io.k8s.api.apps.v1.StatefulSetSpec.minReadySeconds",
    "io.k8s.api.apps.v1.StatefulSetStatus.currentReplicas",
    "io.k8s.api.apps.v1.StatefulSetStatus.observedGeneration",
    "io.k8s.api.apps.v1.StatefulSetStatus.readyReplicas",
    "io.k8s.api.apps.v1.StatefulSetStatus.updatedReplicas",
    "io.k8s.api.autoscaling.v1.ScaleSpec.replicas",
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus.currentReplicas",
    "io.k8s.api.batch.v1.JobStatus.active",
    "io.k8s.api.batch.v1.JobStatus.failed",
    "io.k8s.api.batch.v1.JobStatus.succeeded",
    "io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource.partition",
    "io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource.readOnly",
    "io.k8s.api.core.v1.AzureFilePersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.AzureFileVolumeSource.readOnly",
    "io.k8s.api.core.v1.CSIPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.CephFSPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.CephFSVolumeSource.readOnly",
    "io.k8s.api.core.v1.CinderPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.CinderVolumeSource.readOnly",
    "io.k8s.api.core.v1.Container.stdin",
    "io.k8s.api.core.v1.Container.stdinOnce",
    "io.k8s.api.core.v1.Container.tty",
    "io.k8s.api.core.v1.ContainerImage.sizeBytes",
    "io.k8s.api.core.v1.ContainerPort.hostPort",
    "io.k8s.api.core.v1.ContainerStateTerminated.signal",
    "io.k8s.api.core.v1.EphemeralContainerCommon.stdin",
    "io.k8s.api.core.v1.EphemeralContainerCommon.stdinOnce",
    "io.k8s.api.core.v1.EphemeralContainerCommon.tty",
    "io.k8s.api.core.v1.Event.count",
    "io.k8s.api.core.v1.EventSeries.count",
    "io.k8s.api.core.v1.FCVolumeSource.readOnly",
    "io.k8s.api.core.v1.FlexPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.FlexVolumeSource.readOnly",
    "io.k8s.api.core.v1.GCEPersistentDiskVolumeSource.partition",
    "io.k8s.api.core.v1.GCEPersistentDiskVolumeSource.readOnly",
    "io.k8s.api.core.v1.GlusterfsPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.GlusterfsVolumeSource.readOnly",
    "io.k8s.api.core.v1.ISCSIPersistentVolumeSource.chapAuthDiscovery",
    "io.k8s.api.core.v1.ISCSIPersistentVolumeSource.chapAuthSession",
    "io.k8s.api.core.v1.ISCSIPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.ISCSIVolumeSource.chapAuthDiscovery",
    "io.k8s.api.core.v1.ISCSIVolumeSource.chapAuthSession",
    "io.k8s.api.core.v1.ISCSIVolumeSource.readOnly",
    "io.k8s.api.core.v1.NFSVolumeSource.readOnly",
    "io.k8s.api.core.v1.NodeSpec.unschedulable",
    "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource.readOnly",
    "io.k8s.api.core.v1.PodAttachOptions.stderr",
    "io.k8s.api.core.v1.PodAttachOptions.stdin",
    "io.k8s.api.core.v1.PodAttachOptions.stdout",
    "io.k8s.api.core.v1.PodAttachOptions.tty",
    "io.k8s.api.core.v1.PodCondition.observedGeneration",
    "io.k8s.api.core.v1.PodExecOptions.stderr",
    "io.k8s.api.core.v1.PodExecOptions.stdin",
    "io.k8s.api.core.v1.PodExecOptions.stdout",
    "io.k8s.api.core.v1.PodExecOptions.tty",
    "io.k8s.api.core.v1.PodLogOptions.follow",
    "io.k8s.api.core.v1.PodLogOptions.insecureSkipTLSVerifyBackend",
    "io.k8s.api.core.v1.PodLogOptions.previous",
    "io.k8s.api.core.v1.PodLogOptions.timestamps",
    "io.k8s.api.core.v1.PodSpec.hostIPC",
    "io.k8s.api.core.v1.PodSpec.hostNetwork",
    "io.k8s.api.core.v1.PodSpec.hostPID",
    "io.k8s.api.core.v1.PodStatus.observedGeneration",
    "io.k8s.api.core.v1.PortworxVolumeSource.readOnly",
    "io.k8s.api.core.v1.Probe.failureThreshold",
    "io.k8s.api.core.v1.Probe.initialDelaySeconds",
    "io.k8s.api.core.v1.Probe.periodSeconds",
    "io.k8s.api.core.v1.Probe.successThreshold",
    "io.k8s.api.core.v1.Probe.timeoutSeconds",
    "io.k8s.api.core.v1.QuobyteVolumeSource.readOnly",
    "io.k8s.api.core.v1.RBDPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.RBDVolumeSource.readOnly",
    "io.k8s.api.core.v1.ReplicationControllerSpec.minReadySeconds",
    "io.k8s.api.core.v1.ReplicationControllerStatus.availableReplicas",
    "io.k8s.api.core.v1.ReplicationControllerStatus.fullyLabeledReplicas",
    "io.k8s.api.core.v1.ReplicationControllerStatus.observedGeneration",
    "io.k8s.api.core.v1.ReplicationControllerStatus.readyReplicas",
    "io.k8s.api.core.v1.ScaleIOPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.ScaleIOPersistentVolumeSource.sslEnabled",
    "io.k8s.api.core.v1.ScaleIOVolumeSource.readOnly",
    "io.k8s.api.core.v1.ScaleIOVolumeSource.sslEnabled",
    "io.k8s.api.core.v1.ServicePort.nodePort",
    "io.k8s.api.core.v1.ServiceSpec.healthCheckNodePort",
    "io.k8s.api.core.v1.ServiceSpec.publishNotReadyAddresses",
    "io.k8s.api.core.v1.StorageOSPersistentVolumeSource.readOnly",
    "io.k8s.api.core.v1.StorageOSVolumeSource.readOnly",
    "io.k8s.api.core.v1.VolumeMount.readOnly",
    "io.k8s.api.core.v1.VolumeMountStatus.readOnly",
    "io.k8s.api.events.v1.Event.deprecatedCount",
    "io.k8s.api.networking.v1.ServiceBackendPort.number",
    "io.k8s.api.policy.v1.PodDisruptionBudgetStatus.observedGeneration",
    "io.k8s.api.scheduling.v1.PriorityClass.globalDefault",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Condition.observedGeneration",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListOptions.allowWatchBookmarks",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListOptions.limit",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListOptions.watch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta.generation",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status.code",
    "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails.retryAfterSeconds",
];

/// String fields that Go declares as pointers, where `""` on the wire is a
/// value (`storageClassName: ""` asks for no class) rather than unset. Every
/// other string field drops `""`, as upstream's JSON does.
const KEEP_EMPTY_STRING: &[&str] = &[
    "io.k8s.api.autoscaling.v2.HPAScalingRules.selectPolicy",
    "io.k8s.api.batch.v1.CronJobSpec.timeZone",
    "io.k8s.api.batch.v1.JobSpec.completionMode",
    "io.k8s.api.batch.v1.JobSpec.managedBy",
    "io.k8s.api.batch.v1.JobSpec.podReplacementPolicy",
    "io.k8s.api.batch.v1.JobStatus.failedIndexes",
    "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement.containerName",
    "io.k8s.api.batch.v1.SuccessPolicyRule.succeededIndexes",
    "io.k8s.api.coordination.v1.LeaseSpec.holderIdentity",
    "io.k8s.api.coordination.v1.LeaseSpec.preferredHolder",
    "io.k8s.api.coordination.v1.LeaseSpec.strategy",
    "io.k8s.api.core.v1.AppArmorProfile.localhostProfile",
    "io.k8s.api.core.v1.AzureDiskVolumeSource.cachingMode",
    "io.k8s.api.core.v1.AzureDiskVolumeSource.fsType",
    "io.k8s.api.core.v1.AzureDiskVolumeSource.kind",
    "io.k8s.api.core.v1.AzureFilePersistentVolumeSource.secretNamespace",
    "io.k8s.api.core.v1.CSIVolumeSource.fsType",
    "io.k8s.api.core.v1.ClusterTrustBundleProjection.name",
    "io.k8s.api.core.v1.ClusterTrustBundleProjection.signerName",
    "io.k8s.api.core.v1.Container.restartPolicy",
    "io.k8s.api.core.v1.ContainerStatus.stopSignal",
    "io.k8s.api.core.v1.EndpointAddress.nodeName",
    "io.k8s.api.core.v1.EndpointPort.appProtocol",
    "io.k8s.api.core.v1.EphemeralContainerCommon.restartPolicy",
    "io.k8s.api.core.v1.GRPCAction.service",
    "io.k8s.api.core.v1.GlusterfsPersistentVolumeSource.endpointsNamespace",
    "io.k8s.api.core.v1.HostPathVolumeSource.type",
    "io.k8s.api.core.v1.ISCSIPersistentVolumeSource.initiatorName",
    "io.k8s.api.core.v1.ISCSIVolumeSource.initiatorName",
    "io.k8s.api.core.v1.Lifecycle.stopSignal",
    "io.k8s.api.core.v1.LoadBalancerIngress.ipMode",
    "io.k8s.api.core.v1.LocalVolumeSource.fsType",
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec.storageClassName",
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec.volumeAttributesClassName",
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec.volumeMode",
    "io.k8s.api.core.v1.PersistentVolumeClaimStatus.currentVolumeAttributesClassName",
    "io.k8s.api.core.v1.PersistentVolumeSpec.volumeAttributesClassName",
    "io.k8s.api.core.v1.PersistentVolumeSpec.volumeMode",
    "io.k8s.api.core.v1.PodDNSConfigOption.value",
    "io.k8s.api.core.v1.PodLogOptions.stream",
    "io.k8s.api.core.v1.PodResourceClaim.resourceClaimName",
    "io.k8s.api.core.v1.PodResourceClaim.resourceClaimTemplateName",
    "io.k8s.api.core.v1.PodResourceClaimStatus.resourceClaimName",
    "io.k8s.api.core.v1.PodSecurityContext.fsGroupChangePolicy",
    "io.k8s.api.core.v1.PodSecurityContext.seLinuxChangePolicy",
    "io.k8s.api.core.v1.PodSecurityContext.supplementalGroupsPolicy",
    "io.k8s.api.core.v1.PodSpec.hostnameOverride",
    "io.k8s.api.core.v1.PodSpec.preemptionPolicy",
    "io.k8s.api.core.v1.PodSpec.runtimeClassName",
    "io.k8s.api.core.v1.PortStatus.error",
    "io.k8s.api.core.v1.Preconditions.uid",
    "io.k8s.api.core.v1.SeccompProfile.localhostProfile",
    "io.k8s.api.core.v1.SecurityContext.procMount",
    "io.k8s.api.core.v1.ServicePort.appProtocol",
    "io.k8s.api.core.v1.ServiceSpec.internalTrafficPolicy",
    "io.k8s.api.core.v1.ServiceSpec.ipFamilyPolicy",
    "io.k8s.api.core.v1.ServiceSpec.loadBalancerClass",
    "io.k8s.api.core.v1.ServiceSpec.trafficDistribution",
    "io.k8s.api.core.v1.TopologySpreadConstraint.nodeAffinityPolicy",
    "io.k8s.api.core.v1.TopologySpreadConstraint.nodeTaintsPolicy",
    "io.k8s.api.core.v1.TypedLocalObjectReference.apiGroup",
    "io.k8s.api.core.v1.TypedObjectReference.apiGroup",
    "io.k8s.api.core.v1.TypedObjectReference.namespace",
    "io.k8s.api.core.v1.VolumeMount.mountPropagation",
    "io.k8s.api.core.v1.VolumeMount.recursiveReadOnly",
    "io.k8s.api.core.v1.VolumeMountStatus.recursiveReadOnly",
    "io.k8s.api.core.v1.WindowsSecurityContextOptions.gmsaCredentialSpec",
    "io.k8s.api.core.v1.WindowsSecurityContextOptions.gmsaCredentialSpecName",
    "io.k8s.api.core.v1.WindowsSecurityContextOptions.runAsUserName",
    "io.k8s.api.discovery.v1.Endpoint.hostname",
    "io.k8s.api.discovery.v1.Endpoint.nodeName",
    "io.k8s.api.discovery.v1.Endpoint.zone",
    "io.k8s.api.discovery.v1.EndpointPort.appProtocol",
    "io.k8s.api.discovery.v1.EndpointPort.name",
    "io.k8s.api.discovery.v1.EndpointPort.protocol",
    "io.k8s.api.networking.v1.HTTPIngressPath.pathType",
    "io.k8s.api.networking.v1.IngressClassParametersReference.apiGroup",
    "io.k8s.api.networking.v1.IngressClassParametersReference.namespace",
    "io.k8s.api.networking.v1.IngressClassParametersReference.scope",
    "io.k8s.api.networking.v1.IngressPortStatus.error",
    "io.k8s.api.networking.v1.IngressSpec.ingressClassName",
    "io.k8s.api.networking.v1.NetworkPolicyPort.protocol",
    "io.k8s.api.policy.v1.PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy",
    "io.k8s.api.scheduling.v1.PriorityClass.preemptionPolicy",
    "io.k8s.api.storage.v1.CSIDriverSpec.fsGroupPolicy",
    "io.k8s.api.storage.v1.StorageClass.reclaimPolicy",
    "io.k8s.api.storage.v1.StorageClass.volumeBindingMode",
    "io.k8s.api.storage.v1.VolumeAttachmentSource.persistentVolumeName",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions.propagationPolicy",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions.resourceVersion",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions.uid",
];

/// JSON names of fields whose message has no k8s-openapi definition and
/// whose snake-cased name hides an acronym, from Go's `json` tags.
const JSON_NAME_OVERRIDES: &[(&str, &str)] = &[(
    "io.k8s.api.core.v1.PodLogOptions.insecure_skip_tls_verify_backend",
    "insecureSkipTLSVerifyBackend",
)];

/// Where the table lives, relative to this crate.
const TABLE_PATH: &str = "src/protobuf/schema.rs";

/// A crate's source directory and version, as `cargo metadata` reports them.
struct CrateSource {
    version: String,
    src: PathBuf,
}

/// Finds k8s-pb's and k8s-openapi's sources (downloading them if cargo has
/// not yet) through `cargo metadata`.
fn crate_sources() -> (CrateSource, CrateSource) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let find = |name: &str| {
        let package = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|package| package["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in this workspace's dependency graph"));
        let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
        CrateSource {
            version: package["version"].as_str().expect("version").to_string(),
            src: manifest.parent().expect("crate directory").join("src"),
        }
    };
    (find("k8s-pb"), find("k8s-openapi"))
}

// ---------------------------------------------------------------------------
// k8s-pb: prost structs

/// What a prost attribute says a field holds.
#[derive(Clone, Debug, PartialEq)]
enum ProstType {
    String,
    Bool,
    Int32,
    Int64,
    Bytes,
    /// A message, as a path from the crate root (`api/core/v1/PodSpec`).
    Message(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ProstLabel {
    Singular,
    Repeated,
    Map,
}

#[derive(Debug)]
struct ProstField {
    tag: u32,
    /// The Rust field name without `r#`: `pod_ip`.
    rust_name: String,
    field_type: ProstType,
    label: ProstLabel,
}

#[derive(Debug)]
struct ProstMessage {
    module: String,
    rust_name: String,
    fields: Vec<ProstField>,
}

/// The text of `source` without comments, which hold braces and quotes.
fn strip_comments(source: &str) -> String {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text between the `{` at `open` and its matching `}`.
fn braced(text: &str, open: usize) -> &str {
    let mut depth = 0;
    for (index, character) in text[open..].char_indices() {
        match character {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + index];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces after byte {open}");
}

/// Splits `text` at top-level commas, ignoring commas inside quotes and
/// `<...>`/`(...)`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (index, character) in text.char_indices() {
        match character {
            '"' => quoted = !quoted,
            '<' | '(' if !quoted => depth += 1,
            '>' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(text[start..index].trim());
                start = index + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

/// Resolves a Rust type path used in `module` (`super::super::...::ObjectMeta`
/// or `HostIp`) to `module/Name` from the crate root.
fn resolve_path(module: &str, path: &str) -> String {
    let mut segments: Vec<&str> = module.split('/').collect();
    let mut rest = path.trim();
    while let Some(after) = rest.strip_prefix("super::") {
        segments.pop();
        rest = after;
    }
    segments.extend(rest.split("::"));
    segments.join("/")
}

/// The message a field's Rust type holds: the innermost type argument, or a
/// map's value type.
fn inner_type(rust_type: &str) -> String {
    let compact: String = rust_type.split_whitespace().collect();
    let inner = compact.trim_end_matches(['>', ',']);
    let after_bracket = inner.rsplit('<').next().unwrap_or(inner);
    after_bracket
        .rsplit(',')
        .next()
        .unwrap_or(after_bracket)
        .to_string()
}

fn scalar_type(name: &str, module: &str, rust_type: &str) -> ProstType {
    match name {
        "string" => ProstType::String,
        "bool" => ProstType::Bool,
        "int32" => ProstType::Int32,
        "int64" => ProstType::Int64,
        "bytes" | "bytes = \"vec\"" => ProstType::Bytes,
        "message" => ProstType::Message(resolve_path(module, &inner_type(rust_type))),
        other => panic!("{module}: unexpected prost type {other:?} ({rust_type})"),
    }
}

/// One prost field from its attribute's arguments and its declaration.
fn prost_field(module: &str, attribute: &str, declaration: &str) -> ProstField {
    let arguments = split_top_level(attribute);
    let tag = arguments
        .iter()
        .find_map(|argument| argument.strip_prefix("tag = "))
        .and_then(|tag| tag.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("{module}: no tag in {attribute}"));
    let (name, rust_type) = declaration
        .trim()
        .strip_prefix("pub ")
        .and_then(|rest| rest.split_once(':'))
        .unwrap_or_else(|| panic!("{module}: unexpected field {declaration}"));
    let rust_name = name.trim().trim_start_matches("r#").to_string();
    let (field_type, label) = if let Some(map) = arguments[0].strip_prefix("btree_map = ") {
        let (key, value) = map
            .trim_matches('"')
            .split_once(", ")
            .unwrap_or_else(|| panic!("{module}: unexpected map {map}"));
        assert_eq!(
            key, "string",
            "{module}.{rust_name}: maps are keyed by strings"
        );
        (scalar_type(value, module, rust_type), ProstLabel::Map)
    } else {
        let label = match arguments.get(1).copied() {
            Some("optional" | "required") => ProstLabel::Singular,
            Some("repeated") => ProstLabel::Repeated,
            other => panic!("{module}.{rust_name}: unexpected label {other:?}"),
        };
        (scalar_type(arguments[0], module, rust_type), label)
    };
    ProstField {
        tag,
        rust_name,
        field_type,
        label,
    }
}

/// The messages of one k8s-pb module and the `apiVersion` its resources
/// declare (none for apimachinery).
fn parse_prost_module(src: &Path, module: &str) -> (Vec<ProstMessage>, Option<String>) {
    let path = src.join(module).join("mod.rs");
    let text = strip_comments(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    );
    let mut messages = Vec::new();
    let mut api_versions = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = [
        rest.find("pub struct "),
        rest.find("impl crate::Resource for "),
    ]
    .into_iter()
    .flatten()
    .min()
    {
        let open = start + rest[start..].find('{').expect("a body");
        let header = rest[start..open].trim();
        let body = braced(rest, open);
        if let Some(name) = header.strip_prefix("pub struct ") {
            let mut fields = Vec::new();
            let mut items = body;
            while let Some(attribute_start) = items.find("#[prost(") {
                let after = &items[attribute_start + "#[prost(".len()..];
                let attribute_end = after.find(")]").expect("attribute end");
                let attribute = &after[..attribute_end];
                let declaration_text = &after[attribute_end + 2..];
                let declaration_end = declaration_end(declaration_text);
                fields.push(prost_field(
                    module,
                    attribute,
                    &declaration_text[..declaration_end],
                ));
                items = &declaration_text[declaration_end..];
            }
            fields.sort_by_key(|field| field.tag);
            messages.push(ProstMessage {
                module: module.to_string(),
                rust_name: name.trim().to_string(),
                fields,
            });
        } else if let Some(api_version) = body
            .split("const API_VERSION: &'static str = \"")
            .nth(1)
            .and_then(|after| after.split('"').next())
        {
            api_versions.insert(api_version.to_string());
        }
        rest = &rest[open + body.len() + 2..];
    }
    assert!(
        api_versions.len() <= 1,
        "{module} declares several apiVersions: {api_versions:?}"
    );
    (messages, api_versions.into_iter().next())
}

/// Where a field declaration ends: its top-level comma.
fn declaration_end(text: &str) -> usize {
    let mut depth = 0i32;
    for (index, character) in text.char_indices() {
        match character {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => return index,
            _ => {}
        }
    }
    text.len()
}

// ---------------------------------------------------------------------------
// k8s-openapi: JSON names

/// One k8s-openapi type: its definition's short name and JSON properties.
#[derive(Clone, Debug)]
struct Definition {
    name: String,
    properties: Vec<String>,
}

/// The definitions of one module in one Kubernetes version, keyed by the
/// lowercased type name (prost's `CsiDriver` finds `CSIDriver`).
fn parse_openapi_module(version_dir: &Path, module: &str) -> HashMap<String, Definition> {
    let mut definitions = HashMap::new();
    let Ok(entries) = std::fs::read_dir(version_dir.join(module)) else {
        return definitions;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|extension| extension != "rs") || path.ends_with("mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("k8s-openapi source");
        let Some(name) = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("// Generated from definition "))
            .and_then(|definition| definition.rsplit('.').next())
        else {
            continue;
        };
        let properties = text
            .lines()
            .filter_map(|line| {
                let (json_name, key) = line.trim().split_once(" => Field::Key_")?;
                (!key.is_empty()).then(|| json_name.trim_matches('"').to_string())
            })
            .collect();
        definitions.insert(
            name.to_lowercase(),
            Definition {
                name: name.to_string(),
                properties,
            },
        );
    }
    definitions
}

/// `pod_ip` and `podIP` both become `podip`.
fn normalized(name: &str) -> String {
    name.chars()
        .filter(|character| *character != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// `pod_ip` → `podIp`: only for names no definition spells.
fn lower_camel(rust_name: &str) -> String {
    let mut camel = String::new();
    let mut upper = false;
    for character in rust_name.chars() {
        if character == '_' {
            upper = true;
        } else if upper {
            camel.extend(character.to_uppercase());
            upper = false;
        } else {
            camel.push(character);
        }
    }
    camel
}

/// k8s-openapi's version directories, newest first.
fn openapi_versions(src: &Path) -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(src)
        .expect("k8s-openapi src")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let minor = path
                .file_name()?
                .to_str()?
                .strip_prefix("v1_")?
                .parse()
                .ok()?;
            Some((minor, path))
        })
        .collect();
    versions.sort_by_key(|(minor, _)| std::cmp::Reverse(*minor));
    versions.into_iter().map(|(_, path)| path).collect()
}

/// Every JSON property spelling in the newest version, by normalized name:
/// names for messages that have no definition of their own
/// (`EphemeralContainerCommon`, `PodLogOptions`).
fn all_properties(version_dir: &Path) -> HashMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, into: &mut HashMap<String, BTreeSet<String>>) {
        for entry in std::fs::read_dir(dir).expect("k8s-openapi directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, into);
            }
        }
        let module = dir.to_path_buf();
        for definition in parse_openapi_module(&module, "").into_values() {
            for property in definition.properties {
                into.entry(normalized(&property))
                    .or_default()
                    .insert(property);
            }
        }
    }
    let mut properties = HashMap::new();
    walk(version_dir, &mut properties);
    properties
}

// ---------------------------------------------------------------------------
// The table

struct Table {
    /// apiVersion → package.
    group_versions: BTreeMap<String, String>,
    /// Message name → rendered field rows.
    messages: BTreeMap<String, Vec<String>>,
}

fn package(module: &str) -> String {
    format!("io.k8s.{}", module.replace('/', "."))
}

fn build_table(k8s_pb: &Path, k8s_openapi: &Path) -> Table {
    let versions = openapi_versions(k8s_openapi);
    let newest = versions
        .first()
        .expect("a Kubernetes version in k8s-openapi");
    let global = all_properties(newest);

    let mut prost_messages = Vec::new();
    let mut group_versions = BTreeMap::new();
    for module in MODULES {
        let (messages, api_version) = parse_prost_module(k8s_pb, module);
        if let Some(api_version) = api_version {
            group_versions.insert(api_version, package(module));
        }
        prost_messages.extend(messages);
    }

    // Each module's definitions in every version, newest first.
    let definitions: HashMap<&str, Vec<HashMap<String, Definition>>> = MODULES
        .iter()
        .map(|module| {
            let per_version = versions
                .iter()
                .map(|version| parse_openapi_module(version, module))
                .collect();
            (*module, per_version)
        })
        .collect();
    let definition_of = |message: &ProstMessage| -> Vec<Definition> {
        definitions[message.module.as_str()]
            .iter()
            .filter_map(|per_version| per_version.get(&message.rust_name.to_lowercase()).cloned())
            .collect()
    };

    // `module/RustName` → table name with Go's spelling.
    let names: HashMap<String, String> = prost_messages
        .iter()
        .map(|message| {
            let go_name = definition_of(message).first().map_or_else(
                || message.rust_name.clone(),
                |definition| definition.name.clone(),
            );
            (
                format!("{}/{}", message.module, message.rust_name),
                format!("{}.{go_name}", package(&message.module)),
            )
        })
        .collect();
    let by_path: HashMap<String, &ProstMessage> = prost_messages
        .iter()
        .map(|message| (format!("{}/{}", message.module, message.rust_name), message))
        .collect();

    let omit_zero: BTreeSet<&str> = OMIT_ZERO.iter().copied().collect();
    let keep_empty: BTreeSet<&str> = KEEP_EMPTY_STRING.iter().copied().collect();
    let mut used_facts = BTreeSet::new();
    let mut unresolved = Vec::new();
    let mut messages = BTreeMap::new();
    for message in &prost_messages {
        let name = &names[&format!("{}/{}", message.module, message.rust_name)];
        let own = definition_of(message);
        let mut rows = Vec::new();
        for field in &message.fields {
            let wanted = normalized(&field.rust_name);
            let spelled = own.iter().find_map(|definition| {
                definition
                    .properties
                    .iter()
                    .find(|property| normalized(property) == wanted)
                    .cloned()
            });
            let field_type = match &field.field_type {
                ProstType::String => "String".to_string(),
                ProstType::Bool => "Bool".to_string(),
                ProstType::Int32 => "Int32".to_string(),
                ProstType::Int64 => "Int64".to_string(),
                ProstType::Bytes => "Bytes".to_string(),
                ProstType::Message(path) => {
                    let target = names.get(path).unwrap_or_else(|| {
                        panic!("{name}.{}: {path} is outside MODULES", field.rust_name)
                    });
                    format!("Message(\"{target}\")")
                }
            };
            // A Go struct embedded without a JSON name: the definition has
            // the embedded message's properties instead of a property of
            // its own.
            let inlined = spelled.is_none()
                && field.label == ProstLabel::Singular
                && matches!(&field.field_type, ProstType::Message(path) if by_path[path]
                    .fields
                    .iter()
                    .all(|inner| own.iter().any(|definition| definition
                        .properties
                        .iter()
                        .any(|property| normalized(property) == normalized(&inner.rust_name)))));
            let overridden = JSON_NAME_OVERRIDES
                .iter()
                .find(|(field_path, _)| *field_path == format!("{name}.{}", field.rust_name));
            let json_name = if let Some((_, json_name)) = overridden {
                json_name.to_string()
            } else if inlined {
                String::new()
            } else if let Some(spelled) = spelled {
                spelled
            } else if let Some(spellings) = global.get(&wanted) {
                let camel = lower_camel(&field.rust_name);
                if spellings.len() == 1 {
                    spellings.iter().next().cloned().expect("one spelling")
                } else if spellings.contains(&camel) {
                    camel
                } else {
                    unresolved.push(format!("{name}.{}: one of {spellings:?}", field.rust_name));
                    continue;
                }
            } else {
                let camel = lower_camel(&field.rust_name);
                if camel
                    .chars()
                    .all(|character| character.is_ascii_lowercase())
                    || own
                        .iter()
                        .all(|definition| definition.properties.is_empty())
                {
                    // A single word (`seconds`, `raw`) cannot hide an
                    // acronym. Messages no definition describes (query
                    // options such as `PodLogOptions`, apimachinery
                    // internals) take the camel-cased prost name, which is
                    // Go's unless an acronym hides in it: those few are in
                    // JSON_NAME_OVERRIDES.
                    camel
                } else {
                    unresolved.push(format!("{name}.{}: no JSON spelling", field.rust_name));
                    continue;
                }
            };
            let fact = format!("{name}.{json_name}");
            let label = match field.label {
                _ if inlined => "Inline",
                ProstLabel::Repeated => "Repeated",
                ProstLabel::Map => "Map",
                ProstLabel::Singular => {
                    let omits = match field.field_type {
                        ProstType::String => !keep_empty.contains(fact.as_str()),
                        ProstType::Bool | ProstType::Int32 | ProstType::Int64 => {
                            omit_zero.contains(fact.as_str())
                        }
                        ProstType::Bytes | ProstType::Message(_) => false,
                    };
                    if keep_empty.contains(fact.as_str()) || omit_zero.contains(fact.as_str()) {
                        used_facts.insert(fact.clone());
                    }
                    if omits { "OmitZero" } else { "Singular" }
                }
            };
            rows.push(format!(
                "field({}, \"{json_name}\", {field_type}, {label}),",
                field.tag
            ));
        }
        messages.insert(name.clone(), rows);
    }
    assert!(
        unresolved.is_empty(),
        "fields without a JSON name:\n{}",
        unresolved.join("\n")
    );
    let unused: Vec<&&str> = OMIT_ZERO
        .iter()
        .chain(KEEP_EMPTY_STRING)
        .filter(|fact| !used_facts.contains(**fact))
        .collect();
    assert!(
        unused.is_empty(),
        "OMIT_ZERO/KEEP_EMPTY_STRING name fields the table lacks: {unused:?}"
    );
    Table {
        group_versions,
        messages,
    }
}

fn render(table: &Table, k8s_pb: &CrateSource, k8s_openapi: &CrateSource) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! The protobuf message table, generated by `crates/api/tests/protobuf_schema.rs` from k8s-pb {} and k8s-openapi {}: do not edit; `UPDATE_PROTOBUF_SCHEMA=1 cargo test -p api --test protobuf_schema` rewrites it.",
        k8s_pb.version, k8s_openapi.version
    );
    out.push('\n');
    out.push_str(
        "use super::descriptor::FieldType::{Bool, Bytes, Int32, Int64, Message, String};\n",
    );
    out.push_str("use super::descriptor::Label::{Inline, Map, OmitZero, Repeated, Singular};\n");
    out.push_str("use super::descriptor::{self, field};\n\n");
    out.push_str("/// Each served `apiVersion` and the protobuf package of its kinds.\n");
    out.push_str("pub static GROUP_VERSIONS: &[(&str, &str)] = &[\n");
    for (api_version, package) in &table.group_versions {
        let _ = writeln!(out, "    (\"{api_version}\", \"{package}\"),");
    }
    out.push_str("];\n\n");
    out.push_str("/// Every message, sorted by name; fields sorted by tag.\n");
    out.push_str("pub static MESSAGES: &[descriptor::Message] = &[\n");
    for (name, rows) in &table.messages {
        let _ = writeln!(
            out,
            "    descriptor::Message {{ name: \"{name}\", fields: &["
        );
        for row in rows {
            let _ = writeln!(out, "        {row}");
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n");
    out
}

#[test]
fn protobuf_schema_table_is_current() {
    let (k8s_pb, k8s_openapi) = crate_sources();
    let table = build_table(&k8s_pb.src, &k8s_openapi.src);
    let generated = render(&table, &k8s_pb, &k8s_openapi);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(TABLE_PATH);
    if std::env::var_os("UPDATE_PROTOBUF_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write the table");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{TABLE_PATH} is stale: run `UPDATE_PROTOBUF_SCHEMA=1 cargo test -p api --test protobuf_schema`"
    );
}
