//! Admission on create, as upstream's default plugins do it: Priority (a pod's priority from its PriorityClass) and DefaultTolerationSeconds.

use serde_json::{Value, json};

use crate::objects;
use crate::rest::Rest;
use crate::status::ApiError;

/// The classes every cluster has, as upstream's scheduling bootstrap makes them.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// How long pods stay bound to a not-ready or unreachable node by default
/// (upstream's `--default-not-ready-toleration-seconds` and unreachable twin).
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Mutates and checks `object` before it is created.
pub async fn admit_create(
    rest: &Rest,
    kind: &str,
    group: &str,
    object: &mut Value,
) -> Result<(), ApiError> {
    if group.is_empty() && kind == "Pod" {
        admit_pod_priority(rest, object).await?;
        add_default_toleration_seconds(object);
    }
    if group.is_empty() && kind == "Namespace" {
        add_namespace_finalizer(object);
    }
    if group == "batch" && kind == "Job" {
        generate_job_selector(object);
    }
    Ok(())
}

/// Upstream's Job strategy: unless `spec.manualSelector`, the selector is
/// the Job's own uid and the template carries the uid and job-name labels,
/// new and legacy names both.
pub fn generate_job_selector(job: &mut Value) {
    if job["spec"]["manualSelector"].as_bool() == Some(true) {
        return;
    }
    let (Some(uid), Some(name)) = (
        job["metadata"]["uid"].as_str().map(str::to_string),
        job["metadata"]["name"].as_str().map(str::to_string),
    ) else {
        return;
    };
    if !job["spec"].is_object() {
        return;
    }
    if job["spec"]["selector"].is_null() {
        job["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    }
    let template_metadata = &mut job["spec"]["template"]["metadata"];
    if !template_metadata.is_object() {
        *template_metadata = json!({});
    }
    let labels = &mut template_metadata["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[key] = json!(value);
    }
}

/// Upstream's namespace strategy: every new namespace carries the
/// `kubernetes` finalizer, which the namespace controller removes once the
/// namespace is empty.
fn add_namespace_finalizer(namespace: &mut Value) {
    let Some(object) = namespace.as_object_mut() else {
        return;
    };
    let spec = object.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let finalizers = spec.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(finalizers) = finalizers.as_array_mut()
        && !finalizers.iter().any(|f| f == "kubernetes")
    {
        finalizers.push(json!("kubernetes"));
    }
}

/// Whether a namespace still waits for finalizers in `spec.finalizers`.
pub fn namespace_spec_finalizers_left(namespace: &Value) -> bool {
    namespace["spec"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// DefaultTolerationSeconds: pods tolerate `not-ready` and `unreachable`
/// NoExecute taints for 300 s unless they already say otherwise.
pub fn add_default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(tolerations) = tolerations.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|toleration| {
            let field = |name: &str| toleration.get(name).and_then(Value::as_str).unwrap_or("");
            (field("key") == key || field("key").is_empty())
                && (field("effect") == "NoExecute" || field("effect").is_empty())
        });
        if !tolerated {
            tolerations.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// Priority: `spec.priority` and `spec.preemptionPolicy` come from the named
/// PriorityClass, or the global default one; a pod may not set other values.
async fn admit_pod_priority(rest: &Rest, pod: &mut Value) -> Result<(), ApiError> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let forbidden = |message: String| ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("pods \"{name}\" is forbidden: {message}"),
        details: Some(json!({"name": name, "kind": "pods"})),
    };
    let class_name = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let class = if class_name.is_empty() {
        global_default_class(rest).await?
    } else {
        match find_class(rest, &class_name).await? {
            Some(class) => Some(class),
            None => {
                return Err(forbidden(format!(
                    "no PriorityClass with name {class_name} was found"
                )));
            }
        }
    };
    let (class_name, priority, policy) = match &class {
        Some(class) => (
            class["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            class["value"].as_i64().unwrap_or(0),
            class["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_string(),
        ),
        None => (String::new(), 0, "PreemptLowerPriority".to_string()),
    };
    let spec = &mut pod["spec"];
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(forbidden(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
        )));
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && given != policy
    {
        return Err(forbidden(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        )));
    }
    if !class_name.is_empty() {
        spec["priorityClassName"] = json!(class_name);
    }
    spec["priority"] = json!(priority);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

fn priority_classes() -> &'static api::resources::Resource {
    api::resources::find("scheduling.k8s.io", "v1", "priorityclasses")
        .expect("priorityclasses are built in")
}

async fn find_class(rest: &Rest, name: &str) -> Result<Option<Value>, ApiError> {
    let resource = priority_classes();
    let found = rest
        .storage
        .get(&objects::key(resource, None, name), 0)
        .await
        .map_err(|e| crate::status::from_storage(e, resource.group, resource.plural, name))?;
    Ok(found.as_ref().and_then(objects::decode))
}

/// The class marked globalDefault (the lowest-valued one if several are,
/// as upstream picks).
async fn global_default_class(rest: &Rest) -> Result<Option<Value>, ApiError> {
    let resource = priority_classes();
    let prefix = objects::collection_prefix(resource, None);
    let Some(list) = rest.cache.list(resource, &prefix, None, 0).await else {
        return Ok(None);
    };
    Ok(list
        .items()
        .filter_map(|kv| objects::decode(&kv))
        .filter(|class| class["globalDefault"].as_bool() == Some(true))
        .min_by_key(|class| class["value"].as_i64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tolerations_are_added_unless_the_pod_already_tolerates() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
        ]}});
        add_default_toleration_seconds(&mut pod);
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 10);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(tolerations[1]["tolerationSeconds"], 300);

        let mut tolerates_everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_toleration_seconds(&mut tolerates_everything);
        assert_eq!(
            tolerates_everything["spec"]["tolerations"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
