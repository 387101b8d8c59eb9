//! Per-kind validation beyond metadata, as kube-apiserver's `ValidateX` / `ValidateXUpdate` functions do it: pods and pod templates, workloads, Jobs, Services, ConfigMaps and Secrets, with upstream's field paths and messages.
//!
//! Runs on defaulted objects in the JSON wire form. Only the rules users
//! meet most are covered; kinds not listed here pass. Each update is also
//! validated as a create of the new object, as upstream's update functions
//! call the create ones.

use serde_json::{Map, Value};

use super::{
    DNS1123_SUBDOMAIN_MAX_LENGTH, FIELD_IMMUTABLE_ERROR_MSG, FieldError, IS_NEGATIVE_ERROR_MSG,
    is_dns1123_label, is_valid_port_name, is_valid_port_num, max_len_characters, regex_error,
};
use crate::selector::LabelSelector;

const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
const STATEFULSET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_ERR_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// The spec (and data) errors of a new object of `kind`.
pub fn validate_create(kind: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &object["spec"];
    match kind {
        "Pod" => validate_pod_spec(spec, "spec", &mut errors),
        "Deployment" => validate_replicated(spec, "deployment", true, &mut errors),
        "ReplicaSet" => validate_replicated(spec, "deployment", true, &mut errors),
        "StatefulSet" => validate_replicated(spec, "statefulset", true, &mut errors),
        "DaemonSet" => validate_replicated(spec, "daemonset", false, &mut errors),
        "Job" => validate_job_spec(spec, &mut errors),
        "Service" => validate_service_spec(spec, &mut errors),
        "ConfigMap" => {
            validate_config_keys(&object["data"], "data", &mut errors);
            validate_config_keys(&object["binaryData"], "binaryData", &mut errors);
        }
        "Secret" => validate_config_keys(&object["data"], "data", &mut errors),
        _ => {}
    }
    errors
}

/// The errors of replacing `old` by `new`: every create rule on `new`, then
/// what may not change.
pub fn validate_update(kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = validate_create(kind, new);
    let (old_spec, new_spec) = (&old["spec"], &new["spec"]);
    match kind {
        "Pod" => validate_pod_spec_update(old_spec, new_spec, &mut errors),
        "Deployment" | "ReplicaSet" | "DaemonSet" => {
            immutable(
                &old_spec["selector"],
                &new_spec["selector"],
                "spec.selector",
                &mut errors,
            );
        }
        "StatefulSet" => validate_stateful_set_update(old_spec, new_spec, &mut errors),
        "Job" => {
            immutable(
                &old_spec["selector"],
                &new_spec["selector"],
                "spec.selector",
                &mut errors,
            );
            immutable(
                &old_spec["template"],
                &new_spec["template"],
                "spec.template",
                &mut errors,
            );
        }
        "Service" => validate_cluster_ip_update(old_spec, new_spec, &mut errors),
        "ConfigMap" => validate_immutable_data(old, new, &["data", "binaryData"], &mut errors),
        "Secret" => {
            immutable(&old["type"], &new["type"], "type", &mut errors);
            validate_immutable_data(old, new, &["data"], &mut errors);
        }
        _ => {}
    }
    errors
}

/// Upstream's IsConfigMapKey: the keys of ConfigMap and Secret data.
pub fn is_config_map_key(key: &str) -> Vec<String> {
    let mut messages = Vec::new();
    if key.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        messages.push(max_len_characters(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if key.is_empty() || !key.bytes().all(allowed) {
        messages.push(regex_error(
            CONFIG_KEY_ERR_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match key {
        "." => messages.push("must not be '.'".to_string()),
        ".." => messages.push("must not be '..'".to_string()),
        _ if key.starts_with("..") => messages.push("must not start with '..'".to_string()),
        _ => {}
    }
    messages
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Upstream's ValidateImmutableField: the new value is the one reported.
fn immutable(old: &Value, new: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if old != new {
        errors.push(FieldError::invalid(
            path,
            new.clone(),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
}

fn non_negative(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(number) = value.as_i64()
        && number < 0
    {
        errors.push(FieldError::invalid(path, number, IS_NEGATIVE_ERROR_MSG));
    }
}

// ---------------------------------------------------------------------------
// Pods.

/// ValidatePodSpec's user-visible core: containers, their names, images and
/// ports, the restart policy and the active deadline.
fn validate_pod_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let mut names: Vec<&str> = Vec::new();
    validate_containers(
        &spec["initContainers"],
        &format!("{path}.initContainers"),
        &mut names,
        errors,
    );
    if items(&spec["containers"]).is_empty() {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
    } else {
        validate_containers(
            &spec["containers"],
            &format!("{path}.containers"),
            &mut names,
            errors,
        );
    }
    let restart_path = format!("{path}.restartPolicy");
    match text(&spec["restartPolicy"]) {
        "" => errors.push(FieldError::required(restart_path, "")),
        policy if !RESTART_POLICIES.contains(&policy) => {
            errors.push(FieldError::not_supported(
                restart_path,
                policy,
                RESTART_POLICIES,
            ));
        }
        _ => {}
    }
    if let Some(deadline) = spec["activeDeadlineSeconds"].as_i64()
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errors.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
}

/// Names are DNS labels unique across init and app containers (`names`
/// carries those seen so far); images are required.
fn validate_containers<'a>(
    containers: &'a Value,
    path: &str,
    names: &mut Vec<&'a str>,
    errors: &mut Vec<FieldError>,
) {
    for (index, container) in items(containers).iter().enumerate() {
        let item = format!("{path}[{index}]");
        let name = text(&container["name"]);
        if name.is_empty() {
            errors.push(FieldError::required(format!("{item}.name"), ""));
        } else {
            for message in is_dns1123_label(name) {
                errors.push(FieldError::invalid(format!("{item}.name"), name, message));
            }
            if names.contains(&name) {
                errors.push(FieldError::duplicate(format!("{item}.name"), name));
            } else {
                names.push(name);
            }
        }
        let image = text(&container["image"]);
        if image.is_empty() {
            errors.push(FieldError::required(format!("{item}.image"), ""));
        } else if image.trim() != image {
            errors.push(FieldError::invalid(
                format!("{item}.image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
        validate_container_ports(&container["ports"], &format!("{item}.ports"), errors);
    }
}

fn validate_container_ports(ports: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let mut names: Vec<&str> = Vec::new();
    for (index, port) in items(ports).iter().enumerate() {
        let item = format!("{path}[{index}]");
        let name = text(&port["name"]);
        if !name.is_empty() {
            for message in is_valid_port_name(name) {
                errors.push(FieldError::invalid(format!("{item}.name"), name, message));
            }
            if names.contains(&name) {
                errors.push(FieldError::duplicate(format!("{item}.name"), name));
            } else {
                names.push(name);
            }
        }
        match port["containerPort"].as_i64().unwrap_or(0) {
            0 => errors.push(FieldError::required(format!("{item}.containerPort"), "")),
            number => {
                for message in is_valid_port_num(number) {
                    errors.push(FieldError::invalid(
                        format!("{item}.containerPort"),
                        number,
                        message,
                    ));
                }
            }
        }
        let host_port = port["hostPort"].as_i64().unwrap_or(0);
        if host_port != 0 {
            for message in is_valid_port_num(host_port) {
                errors.push(FieldError::invalid(
                    format!("{item}.hostPort"),
                    host_port,
                    message,
                ));
            }
        }
        validate_protocol(&port["protocol"], &format!("{item}.protocol"), errors);
    }
}

fn validate_protocol(protocol: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match text(protocol) {
        "" => errors.push(FieldError::required(path, "")),
        name if !SUPPORTED_PORT_PROTOCOLS.contains(&name) => {
            errors.push(FieldError::not_supported(
                path,
                name,
                SUPPORTED_PORT_PROTOCOLS,
            ));
        }
        _ => {}
    }
}

/// A pod's spec is fixed once created, except images, a shorter active
/// deadline, added tolerations and a negative grace period turned into 1.
fn validate_pod_spec_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    let old_deadline = old["activeDeadlineSeconds"].as_i64();
    match (old_deadline, new["activeDeadlineSeconds"].as_i64()) {
        (Some(_), None) => errors.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(before), Some(after)) if after > before => errors.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            after,
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    let new_tolerations = items(&new["tolerations"]);
    let kept_all = items(&old["tolerations"]).iter().all(|old_toleration| {
        new_tolerations
            .iter()
            .any(|candidate| same_toleration_ignoring_seconds(old_toleration, candidate))
    });
    if !kept_all {
        errors.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // Overwrite what may change with the old values; anything still
    // different is a forbidden change.
    let mut munged = new.clone();
    for list in ["containers", "initContainers"] {
        let old_containers = items(&old[list]);
        // `get_mut`, not indexing: indexing would add the list as null.
        if let Some(containers) = munged.get_mut(list).and_then(Value::as_array_mut)
            && containers.len() == old_containers.len()
        {
            for (container, before) in containers.iter_mut().zip(old_containers) {
                set_or_remove(container, "image", before.get("image"));
            }
        }
    }
    set_or_remove(
        &mut munged,
        "activeDeadlineSeconds",
        old.get("activeDeadlineSeconds"),
    );
    set_or_remove(&mut munged, "tolerations", old.get("tolerations"));
    let old_grace = old["terminationGracePeriodSeconds"].as_i64();
    if old_grace.is_some_and(|grace| grace < 0) && new["terminationGracePeriodSeconds"] == 1 {
        set_or_remove(
            &mut munged,
            "terminationGracePeriodSeconds",
            old.get("terminationGracePeriodSeconds"),
        );
    }
    if &munged != old {
        errors.push(FieldError::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
}

fn same_toleration_ignoring_seconds(old: &Value, new: &Value) -> bool {
    let without_seconds = |toleration: &Value| {
        let mut toleration = toleration.clone();
        if let Some(fields) = toleration.as_object_mut() {
            fields.remove("tolerationSeconds");
        }
        toleration
    };
    without_seconds(old) == without_seconds(new)
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<&Value>) {
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    match value {
        Some(value) => fields.insert(field.to_string(), value.clone()),
        None => fields.remove(field),
    };
}

// ---------------------------------------------------------------------------
// Workloads.

/// Deployments, ReplicaSets, StatefulSets and DaemonSets: a non-empty
/// selector matching the template's labels, an always-restarting template.
/// `noun` is how upstream names the kind in the empty-selector message
/// (ReplicaSets say "deployment" there too).
fn validate_replicated(spec: &Value, noun: &str, has_replicas: bool, errors: &mut Vec<FieldError>) {
    if has_replicas {
        non_negative(&spec["replicas"], "spec.replicas", errors);
    }
    let template = &spec["template"];
    validate_selector_against_template(spec, Some(noun), errors);
    validate_pod_spec(&template["spec"], "spec.template.spec", errors);
    let policy = text(&template["spec"]["restartPolicy"]);
    if policy != "Always" {
        errors.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if !template["spec"]["activeDeadlineSeconds"].is_null() {
        errors.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// With `required_noun`, the selector must be present and non-empty;
/// without it (Jobs, whose selector the server may generate) only a given
/// selector is checked. A usable selector must match the template's labels.
fn validate_selector_against_template(
    spec: &Value,
    required_noun: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    let selector = &spec["selector"];
    if selector.is_null() {
        if required_noun.is_some() {
            errors.push(FieldError::required("spec.selector", ""));
        }
        return;
    }
    let terms = selector["matchLabels"].as_object().map_or(0, Map::len)
        + items(&selector["matchExpressions"]).len();
    if terms == 0 {
        if let Some(noun) = required_noun {
            errors.push(FieldError::invalid(
                "spec.selector",
                selector.clone(),
                format!("empty selector is invalid for {noun}"),
            ));
        }
        return;
    }
    match LabelSelector::from_label_selector_json(selector) {
        Err(_) => errors.push(FieldError::invalid(
            "spec.selector",
            selector.clone(),
            "invalid label selector",
        )),
        Ok(parsed) => {
            let labels = &spec["template"]["metadata"]["labels"];
            if !parsed.matches(labels.as_object()) {
                errors.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels.clone(),
                    SELECTOR_MISMATCH,
                ));
            }
        }
    }
}

/// Only replicas, ordinals, template, updateStrategy, revisionHistoryLimit,
/// persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
fn validate_stateful_set_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    const MUTABLE: &[&str] = &[
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let without_mutable = |spec: &Value| {
        let mut spec = spec.clone();
        if let Some(fields) = spec.as_object_mut() {
            fields.retain(|field, _| !MUTABLE.contains(&field.as_str()));
        }
        spec
    };
    if without_mutable(old) != without_mutable(new) {
        errors.push(FieldError::forbidden("spec", STATEFULSET_UPDATE_FORBIDDEN));
    }
}

/// Jobs run to completion, so their pods may not restart Always.
fn validate_job_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    for field in ["parallelism", "completions", "backoffLimit"] {
        non_negative(&spec[field], &format!("spec.{field}"), errors);
    }
    validate_selector_against_template(spec, None, errors);
    let template_spec = &spec["template"]["spec"];
    validate_pod_spec(template_spec, "spec.template.spec", errors);
    let policy = text(&template_spec["restartPolicy"]);
    if !matches!(policy, "OnFailure" | "Never") {
        errors.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["OnFailure", "Never"],
        ));
    }
}

// ---------------------------------------------------------------------------
// Services.

fn is_headless(spec: &Value) -> bool {
    text(&spec["clusterIP"]) == "None"
}

fn validate_service_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    let service_type = text(&spec["type"]);
    if !SERVICE_TYPES.contains(&service_type) {
        errors.push(FieldError::not_supported(
            "spec.type",
            service_type,
            SERVICE_TYPES,
        ));
    }
    let ports = items(&spec["ports"]);
    if ports.is_empty() && !is_headless(spec) && service_type != "ExternalName" {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let require_names = ports.len() > 1;
    let mut names: Vec<&str> = Vec::new();
    for (index, port) in ports.iter().enumerate() {
        let item = format!("spec.ports[{index}]");
        let name = text(&port["name"]);
        if require_names && name.is_empty() {
            errors.push(FieldError::required(format!("{item}.name"), ""));
        } else if !name.is_empty() {
            for message in is_dns1123_label(name) {
                errors.push(FieldError::invalid(format!("{item}.name"), name, message));
            }
            if names.contains(&name) {
                errors.push(FieldError::duplicate(format!("{item}.name"), name));
            } else {
                names.push(name);
            }
        }
        let number = port["port"].as_i64().unwrap_or(0);
        for message in is_valid_port_num(number) {
            errors.push(FieldError::invalid(format!("{item}.port"), number, message));
        }
        validate_protocol(&port["protocol"], &format!("{item}.protocol"), errors);
        let target_path = format!("{item}.targetPort");
        match &port["targetPort"] {
            Value::Number(target) => {
                let target = target.as_i64().unwrap_or(0);
                for message in is_valid_port_num(target) {
                    errors.push(FieldError::invalid(&target_path, target, message));
                }
            }
            Value::String(target) => {
                for message in is_valid_port_name(target) {
                    errors.push(FieldError::invalid(&target_path, target.as_str(), message));
                }
            }
            _ => {}
        }
        let node_port = port["nodePort"].as_i64().unwrap_or(0);
        if node_port != 0 {
            for message in is_valid_port_num(node_port) {
                errors.push(FieldError::invalid(
                    format!("{item}.nodePort"),
                    node_port,
                    message,
                ));
            }
        }
    }
}

/// The addresses a Service holds: `clusterIPs`, or its `clusterIP` alone.
fn cluster_ips(spec: &Value) -> Vec<Value> {
    let listed = items(&spec["clusterIPs"]);
    if !listed.is_empty() {
        return listed.to_vec();
    }
    match text(&spec["clusterIP"]) {
        "" => Vec::new(),
        ip => vec![Value::from(ip)],
    }
}

/// Assigned addresses stay, unless the Service turns into or out of
/// ExternalName. A new spec without addresses keeps the old ones (the
/// allocator copies them), so only a different address is an error.
fn validate_cluster_ip_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    if text(&old["type"]) == "ExternalName" || text(&new["type"]) == "ExternalName" {
        return;
    }
    if is_headless(old) && is_headless(new) {
        return;
    }
    let (before, after) = (cluster_ips(old), cluster_ips(new));
    if before.is_empty() || after.is_empty() {
        return;
    }
    let compared = if before.len() == after.len() {
        before.len()
    } else {
        1
    };
    for index in 0..compared {
        if before[index] != after[index] {
            errors.push(FieldError::invalid(
                format!("spec.clusterIPs[{index}]"),
                Value::Array(after.clone()),
                "may not change once set",
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// ConfigMaps and Secrets.

fn validate_config_keys(data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(entries) = data.as_object() else {
        return;
    };
    for key in entries.keys() {
        for message in is_config_map_key(key) {
            errors.push(FieldError::invalid(
                format!("{path}[{key}]"),
                key.as_str(),
                message,
            ));
        }
    }
}

/// Once `immutable: true` is stored, neither the flag nor the data may change.
fn validate_immutable_data(
    old: &Value,
    new: &Value,
    fields: &[&str],
    errors: &mut Vec<FieldError>,
) {
    if old["immutable"] != true {
        return;
    }
    if new["immutable"] != true {
        errors.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for field in fields {
        // An absent map and an empty one are the same Go map.
        let normalized = |value: &Value| match value {
            Value::Object(map) if map.is_empty() => Value::Null,
            other => other.clone(),
        };
        if normalized(&old[*field]) != normalized(&new[*field]) {
            errors.push(FieldError::forbidden(*field, IMMUTABLE_WHEN_SET));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    fn valid_pod_spec() -> Value {
        json!({
            "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
            "restartPolicy": "Always",
        })
    }

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 1,
                "selector": selector,
                "template": {"metadata": {"labels": labels}, "spec": valid_pod_spec()},
            },
        })
    }

    #[test]
    fn a_valid_pod_passes() {
        assert!(validate_create("Pod", &pod(valid_pod_spec())).is_empty());
    }

    #[test]
    fn a_pod_needs_containers() {
        let errors = validate_create("Pod", &pod(json!({"restartPolicy": "Always"})));
        assert_eq!(messages(&errors), ["spec.containers: Required value"]);
    }

    #[test]
    fn a_container_needs_an_image() {
        let errors = validate_create(
            "Pod",
            &pod(json!({"containers": [{"name": "web"}], "restartPolicy": "Always"})),
        );
        assert_eq!(
            messages(&errors),
            ["spec.containers[0].image: Required value"]
        );
    }

    #[test]
    fn container_names_are_unique_dns_labels() {
        let errors = validate_create(
            "Pod",
            &pod(json!({
                "initContainers": [{"name": "web", "image": "busybox"}],
                "containers": [{"name": "web", "image": "nginx"}, {"name": "Bad_Name", "image": "nginx"}],
                "restartPolicy": "Always",
            })),
        );
        let messages = messages(&errors);
        assert_eq!(
            messages[0],
            "spec.containers[0].name: Duplicate value: \"web\""
        );
        assert!(
            messages[1].starts_with(
                "spec.containers[1].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"
            ),
            "{messages:?}"
        );
    }

    #[test]
    fn container_ports_are_checked() {
        let errors = validate_create(
            "Pod",
            &pod(json!({
                "containers": [{"name": "web", "image": "nginx", "ports": [
                    {"containerPort": 70000, "protocol": "TCP"},
                    {"containerPort": 80, "protocol": "HTTP"},
                    {"protocol": "TCP"},
                ]}],
                "restartPolicy": "Always",
            })),
        );
        assert_eq!(
            messages(&errors),
            [
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[2].containerPort: Required value",
            ]
        );
    }

    #[test]
    fn restart_policy_is_one_of_three() {
        let mut spec = valid_pod_spec();
        spec["restartPolicy"] = json!("Sometimes");
        assert_eq!(
            messages(&validate_create("Pod", &pod(spec))),
            [
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ]
        );
    }

    #[test]
    fn pod_updates_may_change_images_only() {
        let old = pod(valid_pod_spec());
        let mut new_image = old.clone();
        new_image["spec"]["containers"][0]["image"] = json!("nginx:2");
        new_image["spec"]["activeDeadlineSeconds"] = json!(30);
        new_image["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        assert_eq!(
            messages(&validate_update("Pod", &old, &new_image)),
            Vec::<String>::new()
        );

        let mut new_port = old.clone();
        new_port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
        let errors = validate_update("Pod", &old, &new_port);
        assert_eq!(
            messages(&errors),
            [format!("spec: Forbidden: {POD_UPDATE_FORBIDDEN}")]
        );
    }

    #[test]
    fn pod_updates_keep_tolerations_and_shorten_deadlines() {
        let mut old = pod(valid_pod_spec());
        old["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists", "tolerationSeconds": 5}]);
        old["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut new = old.clone();
        new["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists", "tolerationSeconds": 9}]);
        new["spec"]["activeDeadlineSeconds"] = json!(5);
        assert!(validate_update("Pod", &old, &new).is_empty());
        new["spec"]["tolerations"] = json!([]);
        new["spec"]["activeDeadlineSeconds"] = json!(20);
        assert_eq!(
            messages(&validate_update("Pod", &old, &new)),
            [
                "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value",
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
            ]
        );
    }

    #[test]
    fn a_deployment_selector_must_match_its_template() {
        let object = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "b"}));
        assert_eq!(
            messages(&validate_create("Deployment", &object)),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"
            ]
        );
        let mut missing = deployment(json!(null), json!({"app": "a"}));
        missing["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            messages(&validate_create("Deployment", &missing)),
            ["spec.selector: Required value"]
        );
        let empty = deployment(json!({}), json!({"app": "a"}));
        assert_eq!(
            messages(&validate_create("Deployment", &empty)),
            ["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn deployment_replicas_are_not_negative_and_pods_restart_always() {
        let mut object = deployment(json!({"matchLabels": {"app": "a"}}), json!({"app": "a"}));
        object["spec"]["replicas"] = json!(-1);
        object["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            messages(&validate_create("Deployment", &object)),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn workload_selectors_are_immutable() {
        let old = deployment(
            json!({"matchLabels": {"app": "a"}}),
            json!({"app": "a", "v": "1"}),
        );
        let new = deployment(
            json!({"matchLabels": {"v": "1"}}),
            json!({"app": "a", "v": "1"}),
        );
        for kind in ["Deployment", "ReplicaSet", "DaemonSet"] {
            assert_eq!(
                messages(&validate_update(kind, &old, &new)),
                [
                    "spec.selector: Invalid value: {\"matchLabels\":{\"v\":\"1\"}}: field is immutable"
                ]
            );
        }
        assert_eq!(
            messages(&validate_update("StatefulSet", &old, &new)),
            [format!("spec: Forbidden: {STATEFULSET_UPDATE_FORBIDDEN}")]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(validate_update("StatefulSet", &old, &scaled).is_empty());
    }

    #[test]
    fn job_pods_may_not_restart_always_and_templates_are_fixed() {
        let mut job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"template": {"spec": valid_pod_spec()}},
        });
        assert_eq!(
            messages(&validate_create("Job", &job)),
            [
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert!(validate_create("Job", &job).is_empty());
        let mut changed = job.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let errors = validate_update("Job", &job, &changed);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.template");
        assert_eq!(errors[0].detail, FIELD_IMMUTABLE_ERROR_MSG);
    }

    #[test]
    fn services_need_ports_unless_headless_or_external() {
        let service =
            |spec: Value| json!({"kind": "Service", "metadata": {"name": "s"}, "spec": spec});
        assert_eq!(
            messages(&validate_create(
                "Service",
                &service(json!({"type": "ClusterIP"}))
            )),
            ["spec.ports: Required value"]
        );
        assert!(
            validate_create(
                "Service",
                &service(json!({"type": "ClusterIP", "clusterIP": "None"}))
            )
            .is_empty()
        );
        assert!(
            validate_create(
                "Service",
                &service(json!({"type": "ExternalName", "externalName": "x.example"}))
            )
            .is_empty()
        );
        assert_eq!(
            messages(&validate_create(
                "Service",
                &service(
                    json!({"type": "Other", "ports": [{"port": 0, "protocol": "TCP", "targetPort": 80}]})
                )
            )),
            [
                "spec.type: Unsupported value: \"Other\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
        assert_eq!(
            messages(&validate_create(
                "Service",
                &service(json!({"type": "ClusterIP", "ports": [
                    {"port": 80, "protocol": "TCP", "targetPort": 80},
                    {"port": 81, "protocol": "TCP", "targetPort": 81},
                ]}))
            )),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value"
            ]
        );
    }

    #[test]
    fn cluster_ips_stay_unless_external_name_is_involved() {
        let service = |kind: &str, ip: &str| {
            json!({"metadata": {"name": "s"}, "spec": {
                "type": kind, "clusterIP": ip, "clusterIPs": [ip],
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            }})
        };
        let old = service("ClusterIP", "10.0.0.5");
        assert_eq!(
            messages(&validate_update(
                "Service",
                &old,
                &service("ClusterIP", "10.0.0.6")
            )),
            ["spec.clusterIPs[0]: Invalid value: [\"10.0.0.6\"]: may not change once set"]
        );
        let mut unset = old.clone();
        unset["spec"]["clusterIP"] = json!("");
        unset["spec"]["clusterIPs"] = json!([]);
        assert!(validate_update("Service", &old, &unset).is_empty());
        let mut external = service("ExternalName", "");
        external["spec"]["externalName"] = json!("x.example");
        assert!(validate_update("Service", &old, &external).is_empty());
    }

    #[test]
    fn config_keys_are_checked() {
        let map = json!({"metadata": {"name": "c"}, "data": {"good.key": "1", "bad key": "2", "..x": "3"}});
        let messages = messages(&validate_create("ConfigMap", &map));
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(
            messages[0],
            "data[..x]: Invalid value: \"..x\": must not start with '..'"
        );
        assert_eq!(
            messages[1],
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
        let secret = json!({"metadata": {"name": "s"}, "data": {"a/b": "eA=="}});
        assert_eq!(validate_create("Secret", &secret).len(), 1);
    }

    #[test]
    fn immutable_data_stays() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        assert_eq!(
            messages(&validate_update("ConfigMap", &old, &new)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        new["immutable"] = json!(false);
        new["data"]["a"] = json!("1");
        assert_eq!(
            messages(&validate_update("Secret", &old, &new)),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let mut mutable_old = old.clone();
        mutable_old["immutable"] = json!(false);
        let mut changed = mutable_old.clone();
        changed["data"]["a"] = json!("2");
        assert!(validate_update("ConfigMap", &mutable_old, &changed).is_empty());
    }
}
