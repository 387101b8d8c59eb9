//! Server-side defaulting: fills in exactly the fields kube-apiserver 1.33's registered defaulters (and `+default=` markers) set, plus pod QoS classification.
//!
//! The apiserver runs [`apply_defaults`] on every create and update body
//! before validation, so what is stored (and what `kubectl get -o yaml`
//! shows) carries the same defaults an upstream cluster would add.
//!
//! Only *defaulting* lives here. Upstream also mutates objects in places that
//! are not defaulting, and those are deliberately left to their own layers:
//!
//! - registry strategies (create/update aware): Namespace `spec.finalizers`
//!   gaining `kubernetes` and `status.phase` reset on create; Pod
//!   `status.phase: Pending` and `status.qosClass` (see [`pod_qos_class`]);
//!   Job selector and `controller-uid` / `job-name` template labels; status
//!   wiping and `metadata.generation` bumps for workloads;
//! - the Service REST layer and allocators: `clusterIP(s)`, `ipFamilies`,
//!   `ipFamilyPolicy`, `nodePort`s, `healthCheckNodePort`;
//! - admission plugins: ServiceAccount (`serviceAccountName`, token volume),
//!   DefaultTolerationSeconds, Priority (`priority`, `preemptionPolicy` on
//!   pods), DefaultStorageClass, LimitRanger;
//! - conversion: autoscaling/v1 `targetCPUUtilizationPercentage: 80` only
//!   appears through the v2 storage round trip;
//! - the Go encoder: zero-valued structs such as `resources: {}`,
//!   `status: {}` and template `creationTimestamp: null`, and canonical
//!   quantity formatting including the round-up to milli precision;
//! - alpha features that are off in 1.33: pod-level resource requests and
//!   limits aggregation, StatefulSet `maxUnavailable`, Lease `strategy`.
//!
//! Everything here is pure and total: wrongly typed fields are left exactly
//! as they are for validation to report, and nothing panics.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

type Object = Map<String, Value>;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const DEFAULT_FILE_MODE: i64 = 0o644;

/// Applies upstream's defaults for `group`/`version`/`kind` to `object` in
/// place. Kinds and versions without defaulters are left untouched.
pub fn apply_defaults(group: &str, version: &str, kind: &str, object: &mut Value) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    match (group, version, kind) {
        ("", "v1", "Pod") => default_pod(root),
        ("", "v1", "PodTemplate") => {
            if let Some(template) = struct_field(root, "template") {
                default_pod_template(template);
            }
        }
        ("", "v1", "ReplicationController") => default_replication_controller(root),
        ("", "v1", "Service") => default_service(root),
        ("", "v1", "Endpoints") => default_endpoints(root),
        ("", "v1", "Namespace") => default_namespace(root),
        ("", "v1", "Secret") => set_if_blank(root, "type", "Opaque"),
        ("", "v1", "Node") => default_node(root),
        ("", "v1", "PersistentVolume") => default_persistent_volume(root),
        ("", "v1", "PersistentVolumeClaim") => default_persistent_volume_claim(root),
        ("", "v1", "LimitRange") => default_limit_range(root),
        ("apps", "v1", "Deployment") => default_deployment(root),
        ("apps", "v1", "ReplicaSet") => default_replica_set(root),
        ("apps", "v1", "StatefulSet") => default_stateful_set(root),
        ("apps", "v1", "DaemonSet") => default_daemon_set(root),
        ("batch", "v1", "Job") => default_job(root),
        ("batch", "v1", "CronJob") => default_cron_job(root),
        ("networking.k8s.io", "v1", "NetworkPolicy") => default_network_policy(root),
        ("networking.k8s.io", "v1", "IngressClass") => default_ingress_class(root),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            if let Some(spec) = struct_field(root, "spec") {
                set_if_absent(spec, "minReplicas", json!(1));
            }
        }
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => default_hpa_v2(root),
        ("discovery.k8s.io", "v1", "EndpointSlice") => default_endpoint_slice(root),
        (RBAC_GROUP, "v1", "RoleBinding" | "ClusterRoleBinding") => default_role_binding(root),
        ("storage.k8s.io", "v1", "StorageClass") => {
            set_if_absent(root, "reclaimPolicy", json!("Delete"));
            set_if_absent(root, "volumeBindingMode", json!("Immediate"));
        }
        ("storage.k8s.io", "v1", "CSIDriver") => default_csi_driver(root),
        ("scheduling.k8s.io", "v1", "PriorityClass") => {
            set_if_absent(root, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        _ => {}
    }
}

/// The pod's QoS class — `"Guaranteed"`, `"Burstable"` or `"BestEffort"` —
/// computed from cpu and memory requests and limits as the kubelet and the
/// pod strategy do: pod-level `spec.resources` when it names cpu or memory,
/// otherwise the sum over containers and init containers (ephemeral
/// containers cannot carry resources). `status.qosClass` is not consulted:
/// it is this function's stored result.
pub fn pod_qos_class(pod: &Value) -> &'static str {
    let spec = pod.get("spec");
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let mut guaranteed = true;

    let pod_level = spec
        .and_then(|spec| spec.get("resources"))
        .filter(|resources| {
            names_qos_resource(resources.get("requests"))
                || names_qos_resource(resources.get("limits"))
        });

    if let Some(resources) = pod_level {
        add_positive_quantities(resources.get("requests"), &mut requests);
        let pod_limits = resources.get("limits");
        if pod_limits
            .and_then(Value::as_object)
            .is_some_and(|limits| !limits.is_empty())
        {
            let found = add_positive_quantities(pod_limits, &mut limits);
            guaranteed &= found.cpu && found.memory;
        }
    } else {
        let containers = ["containers", "initContainers"]
            .into_iter()
            .filter_map(|key| {
                spec.and_then(|spec| spec.get(key))
                    .and_then(Value::as_array)
            })
            .flatten();
        for container in containers {
            let resources = container.get("resources");
            add_positive_quantities(resources.and_then(|r| r.get("requests")), &mut requests);
            let found =
                add_positive_quantities(resources.and_then(|r| r.get("limits")), &mut limits);
            guaranteed &= found.cpu && found.memory;
        }
    }

    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let requests_match_limits = requests
        .iter()
        .all(|(name, request)| limits.get(name) == Some(request));
    if guaranteed && requests_match_limits && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ---------------------------------------------------------------------------
// JSON helpers. Go decodes `null` and an absent key to the same zero value,
// so every "unset" test below treats them alike.

fn is_absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        _ => false,
    }
}

fn is_zero(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Number(number)) => number.as_f64() == Some(0.0),
        _ => false,
    }
}

fn is_empty_collection(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(map)) => map.is_empty(),
        _ => false,
    }
}

fn set_if_absent(map: &mut Object, key: &str, value: Value) {
    if is_absent(map.get(key)) {
        map.insert(key.to_owned(), value);
    }
}

fn set_if_blank(map: &mut Object, key: &str, value: &str) {
    if is_blank(map.get(key)) {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

fn set_if_zero(map: &mut Object, key: &str, value: i64) {
    if is_zero(map.get(key)) {
        map.insert(key.to_owned(), json!(value));
    }
}

fn string_field<'a>(map: &'a Object, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// A field whose Go type is a non-pointer struct: upstream defaults inside
/// it even when the client omitted it, so it is created when missing.
fn struct_field<'a>(map: &'a mut Object, key: &str) -> Option<&'a mut Object> {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// A field whose Go type is a pointer: defaulted inside only when present.
fn optional_field<'a>(map: &'a mut Object, key: &str) -> Option<&'a mut Object> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

fn each_item<'a>(map: &'a mut Object, key: &str) -> impl Iterator<Item = &'a mut Object> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn non_empty_labels(metadata_owner: &Object) -> Option<Value> {
    metadata_owner
        .get("metadata")
        .and_then(|metadata| metadata.get("labels"))
        .filter(|labels| labels.as_object().is_some_and(|labels| !labels.is_empty()))
        .cloned()
}

// ---------------------------------------------------------------------------
// Pods and pod templates.

fn default_pod(pod: &mut Object) {
    let Some(spec) = struct_field(pod, "spec") else {
        return;
    };
    // Pod-only defaults: upstream keeps these out of templates so that adding
    // them never changed a workload's template hash and rolled every pod.
    for key in ["containers", "initContainers"] {
        for container in each_item(spec, key) {
            default_requests_from_limits(container);
        }
    }
    set_if_absent(spec, "enableServiceLinks", Value::Bool(true));
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for key in ["containers", "initContainers"] {
            for container in each_item(spec, key) {
                for port in each_item(container, "ports") {
                    if is_zero(port.get("hostPort"))
                        && let Some(container_port) = port
                            .get("containerPort")
                            .filter(|port| port.is_number())
                            .cloned()
                    {
                        port.insert("hostPort".to_owned(), container_port);
                    }
                }
            }
        }
    }
    default_pod_spec(spec);
}

fn default_requests_from_limits(container: &mut Object) {
    let Some(resources) = optional_field(container, "resources") else {
        return;
    };
    let Some(limits) = resources
        .get("limits")
        .and_then(Value::as_object)
        .filter(|limits| !limits.is_empty())
        .cloned()
    else {
        return;
    };
    if let Some(requests) = struct_field(resources, "requests") {
        for (name, quantity) in limits {
            requests.entry(name).or_insert(quantity);
        }
    }
}

fn default_pod_template(template: &mut Object) {
    if let Some(spec) = struct_field(template, "spec") {
        default_pod_spec(spec);
    }
}

fn default_pod_spec(spec: &mut Object) {
    set_if_blank(spec, "dnsPolicy", "ClusterFirst");
    set_if_blank(spec, "restartPolicy", "Always");
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_blank(spec, "schedulerName", "default-scheduler");
    for volume in each_item(spec, "volumes") {
        default_volume(volume);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for container in each_item(spec, key) {
            default_container(container);
        }
    }
}

fn default_container(container: &mut Object) {
    if is_blank(container.get("imagePullPolicy")) {
        let image = match container.get("image") {
            None | Some(Value::Null) => Some(""),
            Some(Value::String(image)) => Some(image.as_str()),
            Some(_) => None,
        };
        if let Some(image) = image {
            let policy = pull_policy_for_image(image);
            container.insert("imagePullPolicy".to_owned(), json!(policy));
        }
    }
    set_if_blank(container, "terminationMessagePath", "/dev/termination-log");
    set_if_blank(container, "terminationMessagePolicy", "File");
    for port in each_item(container, "ports") {
        set_if_blank(port, "protocol", "TCP");
    }
    for env in each_item(container, "env") {
        if let Some(field_ref) =
            optional_field(env, "valueFrom").and_then(|from| optional_field(from, "fieldRef"))
        {
            set_if_blank(field_ref, "apiVersion", "v1");
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = optional_field(container, key) {
            default_probe(probe);
        }
    }
    if let Some(lifecycle) = optional_field(container, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(http_get) = optional_field(lifecycle, hook)
                .and_then(|handler| optional_field(handler, "httpGet"))
            {
                default_http_get(http_get);
            }
        }
    }
}

fn default_probe(probe: &mut Object) {
    // Upstream compares these int32s with 0, so an explicit 0 is replaced too.
    set_if_zero(probe, "timeoutSeconds", 1);
    set_if_zero(probe, "periodSeconds", 10);
    set_if_zero(probe, "successThreshold", 1);
    set_if_zero(probe, "failureThreshold", 3);
    if let Some(http_get) = optional_field(probe, "httpGet") {
        default_http_get(http_get);
    }
    if let Some(grpc) = optional_field(probe, "grpc") {
        set_if_absent(grpc, "service", json!(""));
    }
}

fn default_http_get(http_get: &mut Object) {
    set_if_blank(http_get, "path", "/");
    set_if_blank(http_get, "scheme", "HTTP");
}

fn default_volume(volume: &mut Object) {
    let has_source = volume
        .iter()
        .any(|(key, value)| key != "name" && !value.is_null());
    if !has_source {
        volume.insert("emptyDir".to_owned(), json!({}));
        return;
    }
    default_volume_source_markers(volume);
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = optional_field(volume, key) {
            set_if_absent(source, "defaultMode", json!(DEFAULT_FILE_MODE));
        }
    }
    if let Some(downward_api) = optional_field(volume, "downwardAPI") {
        default_downward_api_items(downward_api);
    }
    if let Some(projected) = optional_field(volume, "projected") {
        for source in each_item(projected, "sources") {
            if let Some(downward_api) = optional_field(source, "downwardAPI") {
                default_downward_api_items(downward_api);
            }
            if let Some(token) = optional_field(source, "serviceAccountToken") {
                set_if_absent(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(claim_spec) = optional_field(volume, "ephemeral")
        .and_then(|ephemeral| optional_field(ephemeral, "volumeClaimTemplate"))
        .and_then(|template| struct_field(template, "spec"))
    {
        default_claim_spec(claim_spec);
    }
    if let Some(image) = optional_field(volume, "image")
        && is_blank(image.get("pullPolicy"))
    {
        let reference = string_field(image, "reference").unwrap_or("");
        let policy = pull_policy_for_image(reference);
        image.insert("pullPolicy".to_owned(), json!(policy));
    }
}

fn default_downward_api_items(downward_api: &mut Object) {
    for item in each_item(downward_api, "items") {
        if let Some(field_ref) = optional_field(item, "fieldRef") {
            set_if_blank(field_ref, "apiVersion", "v1");
        }
    }
}

/// `+default=` markers on volume sources that Pods and PersistentVolumes
/// share.
fn default_volume_source_markers(source: &mut Object) {
    if let Some(host_path) = optional_field(source, "hostPath") {
        set_if_absent(host_path, "type", json!(""));
    }
    if let Some(iscsi) = optional_field(source, "iscsi") {
        set_if_blank(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = optional_field(source, "rbd") {
        set_if_blank(rbd, "pool", "rbd");
        set_if_blank(rbd, "user", "admin");
        set_if_blank(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(azure_disk) = optional_field(source, "azureDisk") {
        set_if_absent(azure_disk, "cachingMode", json!("ReadWrite"));
        set_if_absent(azure_disk, "fsType", json!("ext4"));
        set_if_absent(azure_disk, "readOnly", json!(false));
        set_if_absent(azure_disk, "kind", json!("Shared"));
    }
    if let Some(scale_io) = optional_field(source, "scaleIO") {
        set_if_blank(scale_io, "storageMode", "ThinProvisioned");
        set_if_blank(scale_io, "fsType", "xfs");
    }
}

// ---------------------------------------------------------------------------
// Image references: upstream picks the pull policy from the tag that
// distribution/reference's ParseNormalizedNamed reports, defaulting the tag to
// "latest" only when the reference has neither tag nor digest. A reference
// that fails to parse has no tag at all and so gets IfNotPresent.

fn pull_policy_for_image(image: &str) -> &'static str {
    if effective_image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn effective_image_tag(image: &str) -> Option<String> {
    if image.len() == 64
        && image
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let (domain, remainder) = split_registry_domain(image);
    let repository = remainder.split(':').next().unwrap_or_default();
    if repository.to_lowercase() != repository {
        return None;
    }
    let reference = format!("{domain}/{remainder}");
    let (tag, has_digest) = parse_reference(&reference)?;
    match tag {
        Some(tag) => Some(tag.to_owned()),
        None if has_digest => Some(String::new()),
        None => Some("latest".to_owned()),
    }
}

fn split_registry_domain(name: &str) -> (&str, String) {
    const DOCKER_HUB: &str = "docker.io";
    let Some((first, rest)) = name.split_once('/') else {
        return (DOCKER_HUB, format!("library/{name}"));
    };
    let (domain, remote) = if first == "localhost" {
        (first, rest)
    } else if first == "index.docker.io" {
        (DOCKER_HUB, rest)
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        (first, rest)
    } else {
        (DOCKER_HUB, name)
    };
    if domain == DOCKER_HUB && !remote.contains('/') {
        (domain, format!("library/{remote}"))
    } else {
        (domain, remote.to_owned())
    }
}

/// Parses `name[:tag][@digest]`, returning the tag and whether a digest was
/// present, or `None` when the reference is malformed.
fn parse_reference(reference: &str) -> Option<(Option<&str>, bool)> {
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest
        && !is_valid_digest(digest)
    {
        return None;
    }
    let last_slash = name_and_tag.rfind('/').map_or(0, |index| index + 1);
    let (name, tag) = match name_and_tag[last_slash..].find(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag
        && !is_valid_tag(tag)
    {
        return None;
    }
    let mut segments = name.split('/');
    let first = segments.next().unwrap_or_default();
    let rest: Vec<&str> = segments.collect();
    if !rest.iter().all(|segment| is_path_component(segment)) {
        return None;
    }
    let path_len = if !rest.is_empty() && is_domain_and_port(first) {
        name.len() - first.len() - 1
    } else if is_path_component(first) {
        name.len()
    } else {
        return None;
    };
    if path_len > 255 {
        return None;
    }
    Some((tag, digest.is_some()))
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && is_word_byte(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&byte| is_word_byte(byte) || byte == b'.' || byte == b'-')
}

/// One repository path component: lowercase alphanumeric runs joined by `.`,
/// `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alnum(&bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !alnum(&bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let valid =
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|byte| byte == b'-');
        if !valid {
            return false;
        }
    }
    true
}

fn is_domain_and_port(domain: &str) -> bool {
    let (host, port) = if let Some(after_bracket) = domain.strip_prefix('[') {
        let Some(close) = after_bracket.find(']') else {
            return false;
        };
        let address = &after_bracket[..close];
        if address.is_empty()
            || !address
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b':')
        {
            return false;
        }
        let after = &after_bracket[close + 1..];
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return false;
    }
    host.is_none_or(|host| {
        host.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
    })
}

/// go-digest validation: a registered algorithm with its exact-length
/// lowercase hex encoding; anything else makes the reference unparseable.
fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    encoded.len() == expected_len
        && encoded
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

// ---------------------------------------------------------------------------
// Core v1 kinds other than Pod.

fn default_replication_controller(controller: &mut Object) {
    let Some(spec) = struct_field(controller, "spec") else {
        return;
    };
    set_if_absent(spec, "replicas", json!(1));
    let Some(template) = optional_field(spec, "template") else {
        return;
    };
    let template_labels = non_empty_labels(template);
    default_pod_template(template);
    let Some(labels) = template_labels else {
        return;
    };
    if is_empty_collection(spec.get("selector")) {
        spec.insert("selector".to_owned(), labels.clone());
    }
    copy_labels_if_empty(controller, labels);
}

fn copy_labels_if_empty(object: &mut Object, labels: Value) {
    if let Some(metadata) = struct_field(object, "metadata")
        && is_empty_collection(metadata.get("labels"))
    {
        metadata.insert("labels".to_owned(), labels);
    }
}

fn default_service(service: &mut Object) {
    let Some(spec) = struct_field(service, "spec") else {
        return;
    };
    set_if_blank(spec, "sessionAffinity", "None");
    match string_field(spec, "sessionAffinity") {
        // Upstream drops the config outright for None so a stale ClientIP
        // timeout never lingers; this is the one place a client value goes.
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") if client_ip_timeout_missing(spec.get("sessionAffinityConfig")) => {
            spec.insert(
                "sessionAffinityConfig".to_owned(),
                json!({"clientIP": {"timeoutSeconds": 10800}}),
            );
        }
        _ => {}
    }
    set_if_blank(spec, "type", "ClusterIP");
    for port in each_item(spec, "ports") {
        set_if_blank(port, "protocol", "TCP");
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(number)) => number.as_f64() == Some(0.0),
            Some(Value::String(name)) => name.is_empty(),
            Some(_) => false,
        };
        if target_unset
            && let Some(number) = port.get("port").filter(|port| port.is_number()).cloned()
        {
            port.insert("targetPort".to_owned(), number);
        }
    }
    let service_type = string_field(spec, "type").unwrap_or_default().to_owned();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = matches!(service_type.as_str(), "LoadBalancer" | "NodePort")
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set_if_blank(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        set_if_absent(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        set_if_absent(spec, "allocateLoadBalancerNodePorts", json!(true));
        let ingresses = optional_field(service, "status")
            .and_then(|status| optional_field(status, "loadBalancer"))
            .map(|load_balancer| each_item(load_balancer, "ingress"));
        for ingress in ingresses.into_iter().flatten() {
            if !is_blank(ingress.get("ip")) {
                set_if_absent(ingress, "ipMode", json!("VIP"));
            }
        }
    }
}

fn client_ip_timeout_missing(config: Option<&Value>) -> bool {
    match config {
        None | Some(Value::Null) => true,
        Some(Value::Object(config)) => match config.get("clientIP") {
            None | Some(Value::Null) => true,
            Some(Value::Object(client_ip)) => is_absent(client_ip.get("timeoutSeconds")),
            Some(_) => false,
        },
        Some(_) => false,
    }
}

fn default_endpoints(endpoints: &mut Object) {
    for subset in each_item(endpoints, "subsets") {
        for port in each_item(subset, "ports") {
            set_if_blank(port, "protocol", "TCP");
        }
    }
}

fn default_namespace(namespace: &mut Object) {
    // Upstream writes this label unconditionally (it is how namespace
    // selectors can match by name), so a client value is replaced.
    if let Some(metadata) = optional_field(namespace, "metadata")
        && let Some(name) = string_field(metadata, "name")
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
        && let Some(labels) = struct_field(metadata, "labels")
    {
        labels.insert(
            "kubernetes.io/metadata.name".to_owned(),
            Value::String(name),
        );
    }
    if let Some(status) = struct_field(namespace, "status") {
        set_if_blank(status, "phase", "Active");
    }
}

fn default_node(node: &mut Object) {
    let Some(status) = optional_field(node, "status") else {
        return;
    };
    if is_absent(status.get("allocatable"))
        && let Some(capacity) = status
            .get("capacity")
            .filter(|capacity| !is_empty_collection(Some(capacity)))
            .cloned()
        && capacity.is_object()
    {
        status.insert("allocatable".to_owned(), capacity);
    }
}

fn default_persistent_volume(volume: &mut Object) {
    if let Some(spec) = struct_field(volume, "spec") {
        set_if_blank(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_if_absent(spec, "volumeMode", json!("Filesystem"));
        default_volume_source_markers(spec);
    }
    if let Some(status) = struct_field(volume, "status") {
        set_if_blank(status, "phase", "Pending");
    }
}

fn default_persistent_volume_claim(claim: &mut Object) {
    if let Some(spec) = struct_field(claim, "spec") {
        default_claim_spec(spec);
    }
    if let Some(status) = struct_field(claim, "status") {
        set_if_blank(status, "phase", "Pending");
    }
}

fn default_claim_spec(spec: &mut Object) {
    set_if_absent(spec, "volumeMode", json!("Filesystem"));
}

fn default_limit_range(limit_range: &mut Object) {
    let Some(spec) = optional_field(limit_range, "spec") else {
        return;
    };
    for item in each_item(spec, "limits") {
        if string_field(item, "type") != Some("Container") {
            continue;
        }
        let resource_list = |key: &str| match item.get(key) {
            None | Some(Value::Null) => Some(Map::new()),
            Some(Value::Object(list)) => Some(list.clone()),
            Some(_) => None,
        };
        let (Some(max), Some(min), Some(mut default_limit), Some(mut default_request)) = (
            resource_list("max"),
            resource_list("min"),
            resource_list("default"),
            resource_list("defaultRequest"),
        ) else {
            continue;
        };
        for (name, quantity) in max {
            default_limit.entry(name).or_insert(quantity);
        }
        for (name, quantity) in &default_limit {
            default_request
                .entry(name.clone())
                .or_insert_with(|| quantity.clone());
        }
        for (name, quantity) in min {
            default_request.entry(name).or_insert(quantity);
        }
        for (key, list) in [
            ("default", default_limit),
            ("defaultRequest", default_request),
        ] {
            if !list.is_empty() {
                item.insert(key.to_owned(), Value::Object(list));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// apps/v1.

fn default_deployment(deployment: &mut Object) {
    let Some(spec) = struct_field(deployment, "spec") else {
        return;
    };
    set_if_absent(spec, "replicas", json!(1));
    if let Some(strategy) = struct_field(spec, "strategy") {
        set_if_blank(strategy, "type", "RollingUpdate");
        if string_field(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling_update) = struct_field(strategy, "rollingUpdate")
        {
            set_if_absent(rolling_update, "maxUnavailable", json!("25%"));
            set_if_absent(rolling_update, "maxSurge", json!("25%"));
        }
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    set_if_absent(spec, "progressDeadlineSeconds", json!(600));
    if let Some(template) = struct_field(spec, "template") {
        default_pod_template(template);
    }
}

fn default_replica_set(replica_set: &mut Object) {
    let Some(spec) = struct_field(replica_set, "spec") else {
        return;
    };
    set_if_absent(spec, "replicas", json!(1));
    if let Some(template) = struct_field(spec, "template") {
        default_pod_template(template);
    }
}

fn default_daemon_set(daemon_set: &mut Object) {
    let Some(spec) = struct_field(daemon_set, "spec") else {
        return;
    };
    if let Some(strategy) = struct_field(spec, "updateStrategy") {
        set_if_blank(strategy, "type", "RollingUpdate");
        if string_field(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling_update) = struct_field(strategy, "rollingUpdate")
        {
            set_if_absent(rolling_update, "maxUnavailable", json!(1));
            set_if_absent(rolling_update, "maxSurge", json!(0));
        }
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    if let Some(template) = struct_field(spec, "template") {
        default_pod_template(template);
    }
}

fn default_stateful_set(stateful_set: &mut Object) {
    let Some(spec) = struct_field(stateful_set, "spec") else {
        return;
    };
    set_if_blank(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = struct_field(spec, "updateStrategy") {
        // Only a defaulted type brings a rollingUpdate block with it; a
        // client that wrote `type: RollingUpdate` alone gets no partition.
        if is_blank(strategy.get("type")) {
            strategy.insert("type".to_owned(), json!("RollingUpdate"));
            set_if_absent(strategy, "rollingUpdate", json!({}));
        }
        if string_field(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling_update) = optional_field(strategy, "rollingUpdate")
        {
            set_if_absent(rolling_update, "partition", json!(0));
        }
    }
    if let Some(policy) = struct_field(spec, "persistentVolumeClaimRetentionPolicy") {
        set_if_blank(policy, "whenDeleted", "Retain");
        set_if_blank(policy, "whenScaled", "Retain");
    }
    set_if_absent(spec, "replicas", json!(1));
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    if let Some(template) = struct_field(spec, "template") {
        default_pod_template(template);
    }
    for claim in each_item(spec, "volumeClaimTemplates") {
        default_persistent_volume_claim(claim);
    }
}

// ---------------------------------------------------------------------------
// batch/v1.

fn default_job(job: &mut Object) {
    let Some(spec) = struct_field(job, "spec") else {
        return;
    };
    if is_absent(spec.get("completions")) && is_absent(spec.get("parallelism")) {
        spec.insert("completions".to_owned(), json!(1));
    }
    set_if_absent(spec, "parallelism", json!(1));
    if is_absent(spec.get("backoffLimit")) {
        // With per-index limits the global limit must not stop the job first.
        let limit = if is_absent(spec.get("backoffLimitPerIndex")) {
            6
        } else {
            i64::from(i32::MAX)
        };
        spec.insert("backoffLimit".to_owned(), json!(limit));
    }
    set_if_absent(spec, "completionMode", json!("NonIndexed"));
    set_if_absent(spec, "suspend", json!(false));
    if is_absent(spec.get("podReplacementPolicy")) {
        let policy = if is_absent(spec.get("podFailurePolicy")) {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        spec.insert("podReplacementPolicy".to_owned(), json!(policy));
    }
    set_if_absent(spec, "manualSelector", json!(false));
    let template_labels = spec
        .get("template")
        .and_then(Value::as_object)
        .and_then(non_empty_labels);
    default_job_spec_types(spec);
    if let Some(labels) = template_labels {
        copy_labels_if_empty(job, labels);
    }
}

/// Defaults that belong to types inside JobSpec, so they also reach a
/// CronJob's job template (SetDefaults_Job itself does not).
fn default_job_spec_types(spec: &mut Object) {
    if let Some(policy) = optional_field(spec, "podFailurePolicy") {
        for rule in each_item(policy, "rules") {
            for pattern in each_item(rule, "onPodConditions") {
                set_if_blank(pattern, "status", "True");
            }
        }
    }
    if let Some(template) = struct_field(spec, "template") {
        default_pod_template(template);
    }
}

fn default_cron_job(cron_job: &mut Object) {
    let Some(spec) = struct_field(cron_job, "spec") else {
        return;
    };
    set_if_blank(spec, "concurrencyPolicy", "Allow");
    set_if_absent(spec, "suspend", json!(false));
    set_if_absent(spec, "successfulJobsHistoryLimit", json!(3));
    set_if_absent(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) =
        struct_field(spec, "jobTemplate").and_then(|template| struct_field(template, "spec"))
    {
        default_job_spec_types(job_spec);
    }
}

// ---------------------------------------------------------------------------
// Other groups.

fn default_network_policy(policy: &mut Object) {
    let Some(spec) = struct_field(policy, "spec") else {
        return;
    };
    for direction in ["ingress", "egress"] {
        for rule in each_item(spec, direction) {
            for port in each_item(rule, "ports") {
                set_if_absent(port, "protocol", json!("TCP"));
            }
        }
    }
    if is_empty_collection(spec.get("policyTypes")) {
        let has_egress_rules = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|rules| !rules.is_empty());
        let types = if has_egress_rules {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".to_owned(), types);
    }
}

fn default_ingress_class(class: &mut Object) {
    if let Some(parameters) =
        optional_field(class, "spec").and_then(|spec| optional_field(spec, "parameters"))
    {
        set_if_absent(parameters, "scope", json!("Cluster"));
    }
}

fn default_hpa_v2(autoscaler: &mut Object) {
    let Some(spec) = struct_field(autoscaler, "spec") else {
        return;
    };
    set_if_absent(spec, "minReplicas", json!(1));
    if is_empty_collection(spec.get("metrics")) {
        let cpu_utilization = json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
        }]);
        spec.insert("metrics".to_owned(), cpu_utilization);
    }
    let Some(behavior) = optional_field(spec, "behavior") else {
        return;
    };
    let scale_up_policies = json!([
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]);
    // Scale-down stabilization stays unset: the controller's
    // --horizontal-pod-autoscaler-downscale-stabilization flag owns it.
    let scale_down_policies = json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]);
    for (direction, policies, stabilization) in [
        ("scaleUp", scale_up_policies, Some(0)),
        ("scaleDown", scale_down_policies, None),
    ] {
        if let Some(rules) = struct_field(behavior, direction) {
            set_if_absent(rules, "selectPolicy", json!("Max"));
            set_if_absent(rules, "policies", policies);
            if let Some(seconds) = stabilization {
                set_if_absent(rules, "stabilizationWindowSeconds", json!(seconds));
            }
        }
    }
}

fn default_endpoint_slice(slice: &mut Object) {
    for port in each_item(slice, "ports") {
        set_if_absent(port, "name", json!(""));
        set_if_absent(port, "protocol", json!("TCP"));
    }
}

fn default_role_binding(binding: &mut Object) {
    if let Some(role_ref) = struct_field(binding, "roleRef") {
        set_if_blank(role_ref, "apiGroup", RBAC_GROUP);
    }
    for subject in each_item(binding, "subjects") {
        // ServiceAccount subjects default to the core group, which is "" and
        // so needs no write.
        if matches!(string_field(subject, "kind"), Some("User" | "Group")) {
            set_if_blank(subject, "apiGroup", RBAC_GROUP);
        }
    }
}

fn default_csi_driver(driver: &mut Object) {
    let Some(spec) = struct_field(driver, "spec") else {
        return;
    };
    set_if_absent(spec, "attachRequired", json!(true));
    set_if_absent(spec, "podInfoOnMount", json!(false));
    set_if_absent(spec, "storageCapacity", json!(false));
    set_if_absent(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    if is_empty_collection(spec.get("volumeLifecycleModes")) {
        spec.insert("volumeLifecycleModes".to_owned(), json!(["Persistent"]));
    }
    set_if_absent(spec, "requiresRepublish", json!(false));
    set_if_absent(spec, "seLinuxMount", json!(false));
}

// ---------------------------------------------------------------------------
// Quantities for QoS. Values are held as signed nano-units in an i128, which
// is exact for everything resource.Quantity can hold: it rounds up to 1n and
// caps at 2^63-1 units.

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const MAX_QUANTITY_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;

#[derive(Default)]
struct QosResourcesFound {
    cpu: bool,
    memory: bool,
}

fn names_qos_resource(list: Option<&Value>) -> bool {
    list.and_then(Value::as_object)
        .is_some_and(|list| list.contains_key("cpu") || list.contains_key("memory"))
}

fn add_positive_quantities(
    list: Option<&Value>,
    totals: &mut BTreeMap<&'static str, i128>,
) -> QosResourcesFound {
    let mut found = QosResourcesFound::default();
    let Some(list) = list.and_then(Value::as_object) else {
        return found;
    };
    for name in ["cpu", "memory"] {
        let nanos = match list.get(name) {
            Some(Value::String(text)) => parse_quantity_nanos(text),
            Some(Value::Number(number)) => parse_quantity_nanos(&number.to_string()),
            _ => None,
        };
        let Some(nanos) = nanos.filter(|nanos| *nanos > 0) else {
            continue;
        };
        let total = totals.entry(name).or_insert(0);
        *total = total.saturating_add(nanos);
        if name == "cpu" {
            found.cpu = true;
        } else {
            found.memory = true;
        }
    }
    found
}

/// Parses a Kubernetes quantity (`250m`, `1.5Gi`, `2e3`, …) into nano-units,
/// rounding away from zero below 1n; `None` when it is not a quantity.
fn parse_quantity_nanos(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let (decimal_exponent, binary_exponent): (i64, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            (exponent.parse().ok()?, 0)
        }
    };

    let mut mantissa: Option<i128> = Some(0);
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(i128::from(digit - b'0')));
    }
    let scale = 9 + decimal_exponent - i64::try_from(fraction.len()).ok()?;
    let magnitude = match mantissa {
        Some(0) => 0,
        Some(mantissa) => scale_nanos(mantissa, binary_exponent, scale),
        None => MAX_QUANTITY_NANOS,
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn scale_nanos(mantissa: i128, binary_exponent: u32, decimal_scale: i64) -> i128 {
    let Some(value) = mantissa.checked_mul(1i128 << binary_exponent) else {
        return MAX_QUANTITY_NANOS;
    };
    let scaled = if decimal_scale >= 0 {
        u32::try_from(decimal_scale)
            .ok()
            .and_then(|power| 10i128.checked_pow(power))
            .and_then(|factor| value.checked_mul(factor))
            .unwrap_or(MAX_QUANTITY_NANOS)
    } else {
        match u32::try_from(-decimal_scale)
            .ok()
            .and_then(|power| 10i128.checked_pow(power))
        {
            Some(divisor) => (value + divisor - 1) / divisor,
            None => 1,
        }
    };
    scaled.min(MAX_QUANTITY_NANOS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, version: &str, kind: &str, object: Value) -> Value {
        let mut object = object;
        apply_defaults(group, version, kind, &mut object);
        object
    }

    fn pod_with_container(container: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}})
    }

    #[test]
    fn defaults_minimal_pod_exactly_like_kubectl_run() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "nginx", "labels": {"run": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
        });
        // Upstream's stored object additionally shows `resources: {}` and a
        // strategy-written status; both come from other layers (module docs).
        let expected = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "nginx", "labels": {"run": "nginx"}},
            "spec": {
                "containers": [{
                    "name": "nginx",
                    "image": "nginx",
                    "imagePullPolicy": "Always",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
            },
        });
        assert_eq!(defaulted("", "v1", "Pod", pod), expected);
    }

    #[test]
    fn image_pull_policy_follows_upstream_reference_parsing() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cases = [
            ("nginx".to_owned(), "Always"),
            ("nginx:latest".to_owned(), "Always"),
            ("nginx:1.25".to_owned(), "IfNotPresent"),
            ("registry:5000/nginx".to_owned(), "Always"),
            ("registry:5000/nginx:v2".to_owned(), "IfNotPresent"),
            ("localhost/app".to_owned(), "Always"),
            ("[::1]:5000/app".to_owned(), "Always"),
            ("ghcr.io/org/team/app".to_owned(), "Always"),
            (format!("nginx@{digest}"), "IfNotPresent"),
            // A tag next to a digest is still the tag upstream looks at.
            (format!("nginx:latest@{digest}"), "Always"),
            // Unparseable references have no tag, hence IfNotPresent.
            ("nginx@sha256:abc".to_owned(), "IfNotPresent"),
            ("Nginx".to_owned(), "IfNotPresent"),
            ("nginx:".to_owned(), "IfNotPresent"),
            ("nginx::1".to_owned(), "IfNotPresent"),
            ("my_registry:5000/app".to_owned(), "IfNotPresent"),
            ("a/b//c".to_owned(), "IfNotPresent"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
                "IfNotPresent",
            ),
            (String::new(), "IfNotPresent"),
        ];
        for (image, expected) in cases {
            let pod = defaulted(
                "",
                "v1",
                "Pod",
                pod_with_container(json!({"name": "c", "image": image})),
            );
            assert_eq!(
                pod["spec"]["containers"][0]["imagePullPolicy"], expected,
                "image {image:?}"
            );
        }
    }

    #[test]
    fn container_level_defaults_reach_ports_env_probes_and_hooks() {
        let container = json!({
            "name": "c", "image": "nginx:1.25", "imagePullPolicy": "Never",
            "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0, "timeoutSeconds": 5},
            "readinessProbe": {"grpc": {"port": 9000}},
            "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
        });
        let pod = defaulted("", "v1", "Pod", pod_with_container(container));
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Never");
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}])
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "periodSeconds": 10, "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            c["readinessProbe"]["grpc"],
            json!({"port": 9000, "service": ""})
        );
        assert_eq!(
            c["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/quit", "scheme": "HTTP"})
        );
    }

    #[test]
    fn pods_copy_limits_into_missing_requests_but_templates_do_not() {
        let container = json!({"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}});
        let pod = defaulted("", "v1", "Pod", pod_with_container(container.clone()));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );

        let template = json!({"template": {"spec": {"containers": [container]}}});
        let template = defaulted("", "v1", "PodTemplate", template);
        let spec = &template["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["resources"]["requests"],
            json!({"cpu": "500m"})
        );
        assert!(spec.get("enableServiceLinks").is_none());
        assert_eq!(spec["restartPolicy"], "Always");
    }

    #[test]
    fn host_network_pods_mirror_container_ports_to_host_ports() {
        let mut pod = pod_with_container(
            json!({"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}),
        );
        pod["spec"]["hostNetwork"] = json!(true);
        let pod = defaulted("", "v1", "Pod", pod);
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    #[test]
    fn volumes_get_modes_types_and_empty_dir() {
        let mut pod = pod_with_container(json!({"name": "c", "image": "x"}));
        pod["spec"]["volumes"] = json!([
            {"name": "scratch"},
            {"name": "s", "secret": {"secretName": "s"}},
            {"name": "cm", "configMap": {"name": "cm", "defaultMode": 256}},
            {"name": "h", "hostPath": {"path": "/tmp"}},
            {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}},
            {"name": "r", "rbd": {"monitors": ["m"], "image": "i"}},
        ]);
        let pod = defaulted("", "v1", "Pod", pod);
        let volumes = &pod["spec"]["volumes"];
        assert_eq!(volumes[0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(volumes[1]["secret"]["defaultMode"], 420);
        assert_eq!(volumes[2]["configMap"]["defaultMode"], 256);
        assert_eq!(volumes[3]["hostPath"]["type"], "");
        assert_eq!(volumes[4]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(
            volumes[4]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(volumes[5]["projected"]["defaultMode"], 420);
        assert_eq!(
            volumes[5]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
        assert_eq!(
            volumes[6]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(volumes[7]["rbd"]["pool"], "rbd");
        assert_eq!(volumes[7]["rbd"]["keyring"], "/etc/ceph/keyring");
    }

    #[test]
    fn minimal_deployment_gets_strategy_limits_and_template_defaults() {
        let deployment = json!({"spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}},
        }});
        let deployment = defaulted("apps", "v1", "Deployment", deployment);
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod_spec = &spec["template"]["spec"];
        assert_eq!(pod_spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod_spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod_spec["terminationGracePeriodSeconds"], 30);
        assert!(pod_spec.get("enableServiceLinks").is_none());
    }

    #[test]
    fn deployment_keeps_client_values_and_recreate_gets_no_rolling_update() {
        let deployment = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 2}});
        let spec = defaulted("apps", "v1", "Deployment", deployment)["spec"].clone();
        assert_eq!(spec["replicas"], 0);
        assert_eq!(spec["strategy"], json!({"type": "Recreate"}));
        assert_eq!(spec["revisionHistoryLimit"], 2);
    }

    #[test]
    fn stateful_set_and_daemon_set_defaults() {
        let set = defaulted(
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            }}),
        );
        let spec = &set["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            (
                spec["replicas"].clone(),
                spec["revisionHistoryLimit"].clone()
            ),
            (json!(1), json!(10))
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"],
            json!({"phase": "Pending"})
        );

        let explicit = defaulted(
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
        );
        assert_eq!(
            explicit["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate"})
        );

        let daemon_set = defaulted("apps", "v1", "DaemonSet", json!({"spec": {}}));
        assert_eq!(
            daemon_set["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(daemon_set["spec"]["revisionHistoryLimit"], 10);
    }

    #[test]
    fn job_completions_and_parallelism_combinations() {
        let cases = [
            (json!({}), json!(1), json!(1)),
            (json!({"completions": 5}), json!(5), json!(1)),
            (json!({"parallelism": 3}), Value::Null, json!(3)),
            (
                json!({"completions": 2, "parallelism": 4}),
                json!(2),
                json!(4),
            ),
            (
                json!({"completions": null, "parallelism": 0}),
                Value::Null,
                json!(0),
            ),
        ];
        for (spec, completions, parallelism) in cases {
            let job = defaulted("batch", "v1", "Job", json!({"spec": spec.clone()}));
            assert_eq!(job["spec"]["completions"], completions, "spec {spec}");
            assert_eq!(job["spec"]["parallelism"], parallelism, "spec {spec}");
        }
    }

    #[test]
    fn job_defaults_backoff_modes_and_labels() {
        let job = defaulted(
            "batch",
            "v1",
            "Job",
            json!({"spec": {
                "template": {"metadata": {"labels": {"app": "batch"}}, "spec": {"restartPolicy": "Never", "containers": []}},
            }}),
        );
        let spec = &job["spec"];
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(job["metadata"]["labels"], json!({"app": "batch"}));

        let per_index = defaulted(
            "batch",
            "v1",
            "Job",
            json!({"spec": {
                "backoffLimitPerIndex": 1,
                "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            }}),
        );
        assert_eq!(per_index["spec"]["backoffLimit"], 2_147_483_647);
        assert_eq!(per_index["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            per_index["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );
    }

    #[test]
    fn cron_job_defaults_without_job_level_defaults_in_the_template() {
        let cron_job = defaulted(
            "batch",
            "v1",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        );
        let spec = &cron_job["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        let job_spec = &spec["jobTemplate"]["spec"];
        assert!(job_spec.get("backoffLimit").is_none());
        assert_eq!(
            job_spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn replication_controller_takes_selector_and_labels_from_template() {
        let controller = defaulted(
            "",
            "v1",
            "ReplicationController",
            json!({"metadata": {"name": "rc"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}}),
        );
        assert_eq!(controller["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(controller["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(controller["spec"]["replicas"], 1);
        assert_eq!(
            controller["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
    }

    #[test]
    fn service_ports_affinity_and_traffic_policies() {
        let service = defaulted(
            "",
            "v1",
            "Service",
            json!({"spec": {"ports": [
            {"port": 80},
            {"port": 443, "targetPort": "https", "protocol": "UDP"},
            {"port": 8080, "targetPort": 0},
            {"port": 9090, "targetPort": ""},
        ], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}),
        );
        let spec = &service["spec"];
        assert_eq!(
            spec["ports"],
            json!([
                {"port": 80, "targetPort": 80, "protocol": "TCP"},
                {"port": 443, "targetPort": "https", "protocol": "UDP"},
                {"port": 8080, "targetPort": 8080, "protocol": "TCP"},
                {"port": 9090, "targetPort": 9090, "protocol": "TCP"},
            ])
        );
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert!(spec.get("sessionAffinityConfig").is_none());
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert!(spec.get("externalTrafficPolicy").is_none());
        assert!(spec.get("allocateLoadBalancerNodePorts").is_none());

        let sticky = defaulted(
            "",
            "v1",
            "Service",
            json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP"}}),
        );
        assert_eq!(
            sticky["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        assert_eq!(sticky["spec"]["externalTrafficPolicy"], "Cluster");

        let balanced = defaulted(
            "",
            "v1",
            "Service",
            json!({"spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "lb.example"}]}}}),
        );
        assert_eq!(balanced["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            balanced["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"hostname": "lb.example"}])
        );

        let external_ips = defaulted(
            "",
            "v1",
            "Service",
            json!({"spec": {"externalIPs": ["1.2.3.4"]}}),
        );
        assert_eq!(external_ips["spec"]["externalTrafficPolicy"], "Cluster");

        let external_name = defaulted(
            "",
            "v1",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "db.example"}}),
        );
        assert!(external_name["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn namespace_defaults_status_and_name_label_but_not_finalizers() {
        let namespace = defaulted("", "v1", "Namespace", json!({"metadata": {"name": "team"}}));
        assert_eq!(namespace["status"], json!({"phase": "Active"}));
        assert_eq!(
            namespace["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "team"})
        );
        // The "kubernetes" finalizer is a create-time strategy step: adding it
        // here would resurrect it on every update after the controller
        // finalized the namespace.
        assert!(namespace.get("spec").is_none());

        let finalized = defaulted(
            "",
            "v1",
            "Namespace",
            json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["example.com/keep"]}}),
        );
        assert_eq!(finalized["spec"]["finalizers"], json!(["example.com/keep"]));
    }

    #[test]
    fn storage_and_claim_defaults() {
        let volume = defaulted(
            "",
            "v1",
            "PersistentVolume",
            json!({"spec": {"hostPath": {"path": "/data"}}}),
        );
        assert_eq!(volume["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(volume["spec"]["volumeMode"], "Filesystem");
        assert_eq!(volume["spec"]["hostPath"]["type"], "");
        assert_eq!(volume["status"]["phase"], "Pending");

        let claim = defaulted(
            "",
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {"volumeMode": "Block"}}),
        );
        assert_eq!(claim["spec"]["volumeMode"], "Block");
        assert_eq!(claim["status"]["phase"], "Pending");

        let class = defaulted(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            json!({"provisioner": "p"}),
        );
        assert_eq!(
            (
                class["reclaimPolicy"].clone(),
                class["volumeBindingMode"].clone()
            ),
            (json!("Delete"), json!("Immediate"))
        );
    }

    #[test]
    fn secret_limit_range_and_network_policy_defaults() {
        assert_eq!(defaulted("", "v1", "Secret", json!({}))["type"], "Opaque");
        assert_eq!(
            defaulted("", "v1", "Secret", json!({"type": "kubernetes.io/tls"}))["type"],
            "kubernetes.io/tls"
        );

        let limits = defaulted(
            "",
            "v1",
            "LimitRange",
            json!({"spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                {"type": "Pod", "max": {"cpu": "4"}},
            ]}}),
        );
        let container = &limits["spec"]["limits"][0];
        assert_eq!(container["default"], json!({"cpu": "2"}));
        assert_eq!(
            container["defaultRequest"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
        assert!(limits["spec"]["limits"][1].get("default").is_none());

        let policy = defaulted(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {
                "ingress": [{"ports": [{"port": 80}]}], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}],
            }}),
        );
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(policy["spec"]["egress"][0]["ports"][0]["protocol"], "UDP");
        let ingress_only = defaulted(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}}}),
        );
        assert_eq!(ingress_only["spec"]["policyTypes"], json!(["Ingress"]));
    }

    #[test]
    fn autoscaler_rbac_slice_and_priority_defaults() {
        let hpa = defaulted(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 5,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
        );
        let spec = &hpa["spec"];
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(
            spec["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(
            spec["behavior"]["scaleUp"]["policies"][0],
            json!({"type": "Pods", "value": 4, "periodSeconds": 15})
        );
        assert_eq!(
            spec["behavior"]["scaleDown"],
            json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                   "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
        let v1 = defaulted(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 5}}),
        );
        assert_eq!(v1["spec"], json!({"maxReplicas": 5, "minReplicas": 1}));

        let binding = defaulted(
            RBAC_GROUP,
            "v1",
            "RoleBinding",
            json!({"roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "n"}]}),
        );
        assert_eq!(binding["roleRef"]["apiGroup"], RBAC_GROUP);
        assert_eq!(binding["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert!(binding["subjects"][1].get("apiGroup").is_none());

        let slice = defaulted(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            json!({"ports": [{"port": 80}]}),
        );
        assert_eq!(
            slice["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
        let endpoints = defaulted(
            "",
            "v1",
            "Endpoints",
            json!({"subsets": [{"ports": [{"port": 80}]}]}),
        );
        assert_eq!(endpoints["subsets"][0]["ports"][0]["protocol"], "TCP");

        let priority = defaulted(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            json!({"value": 10}),
        );
        assert_eq!(priority["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn malformed_objects_are_left_for_validation() {
        let shapes = [
            json!("not an object"),
            json!({"spec": "string"}),
            json!({"spec": {"containers": 5, "volumes": [1, "x", null]}}),
            json!({"spec": {"containers": [{"image": 7, "ports": [{"protocol": 6}], "livenessProbe": "x"}]}}),
        ];
        for shape in &shapes {
            for (group, kind) in [
                ("", "Pod"),
                ("apps", "Deployment"),
                ("", "Service"),
                ("batch", "Job"),
            ] {
                let mut object = shape.clone();
                apply_defaults(group, "v1", kind, &mut object);
                if shape.get("spec").is_some_and(|spec| !spec.is_object()) || !shape.is_object() {
                    assert_eq!(&object, shape, "{kind} {shape}");
                }
            }
        }
        let pod = defaulted("", "v1", "Pod", shapes[3].clone());
        let container = &pod["spec"]["containers"][0];
        assert!(container.get("imagePullPolicy").is_none());
        assert_eq!(container["ports"][0]["protocol"], 6);
        assert_eq!(container["livenessProbe"], "x");
        assert_eq!(container["terminationMessagePolicy"], "File");
    }

    #[test]
    fn unknown_versions_and_kinds_are_untouched() {
        let original = json!({"spec": {}});
        assert_eq!(
            defaulted("apps", "v1beta1", "Deployment", original.clone()),
            original
        );
        assert_eq!(
            defaulted("", "v1", "ConfigMap", json!({"data": {}})),
            json!({"data": {}})
        );
    }

    #[test]
    fn qos_classes() {
        let pod = |containers: Value| json!({"spec": {"containers": containers}});
        let cases = [
            (pod(json!([{"name": "a"}])), "BestEffort"),
            (
                pod(
                    json!([{"name": "a", "resources": {"requests": {"cpu": "0"}, "limits": {"nvidia.com/gpu": "1"}}}]),
                ),
                "BestEffort",
            ),
            (
                pod(json!([{"name": "a", "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1073741824"}}}])),
                "Guaranteed",
            ),
            (
                pod(
                    json!([{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]),
                ),
                "Burstable",
            ),
            (
                pod(json!([{"name": "a", "resources": {"requests": {"memory": "64Mi"}}}])),
                "Burstable",
            ),
            (
                pod(
                    json!([{"name": "a", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}]),
                ),
                "Burstable",
            ),
            (
                pod(json!([
                    {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                    {"name": "b"},
                ])),
                "Burstable",
            ),
            (
                json!({"spec": {
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}],
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "100m"}}}],
                }}),
                "Burstable",
            ),
            (
                json!({"spec": {"resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                    "containers": [{"name": "a"}]}}),
                "Guaranteed",
            ),
            (
                json!({"spec": {"resources": {"limits": {"cpu": "2"}}, "containers": [{"name": "a"}]}}),
                "Burstable",
            ),
        ];
        for (pod, expected) in cases {
            assert_eq!(pod_qos_class(&pod), expected, "{pod}");
        }
    }

    #[test]
    fn defaulted_limits_only_pod_is_guaranteed() {
        let container = json!({"name": "c", "image": "x", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}});
        let pod = defaulted("", "v1", "Pod", pod_with_container(container));
        assert_eq!(pod_qos_class(&pod), "Guaranteed");
    }

    #[test]
    fn quantities_parse_to_nanos() {
        let cases = [
            ("1", Some(1_000_000_000)),
            ("250m", Some(250_000_000)),
            ("0.5", Some(500_000_000)),
            (".5", Some(500_000_000)),
            ("1Ki", Some(1024 * 1_000_000_000)),
            ("1.5Gi", Some(1_610_612_736 * 1_000_000_000)),
            ("2e3", Some(2000 * 1_000_000_000)),
            ("1E-9", Some(1)),
            ("0.1n", Some(1)),
            ("-1m", Some(-1_000_000)),
            ("1K", None),
            ("", None),
            ("1.2.3", None),
            ("m", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_quantity_nanos(text), expected, "{text:?}");
        }
        assert_eq!(
            parse_quantity_nanos("99999999999999999999999999Ei"),
            Some(MAX_QUANTITY_NANOS)
        );
    }
}
