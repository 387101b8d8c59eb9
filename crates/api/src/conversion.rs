//! Conversion between API versions that share one stored form: events.k8s.io/v1 Events are stored as core/v1 Events, autoscaling/v1 HorizontalPodAutoscalers as autoscaling/v2.
//!
//! As upstream, one object is visible through every version of its
//! resource: an Event created through core/v1 is listed by
//! events.k8s.io/v1, and an HPA written as autoscaling/v1 reads back as
//! autoscaling/v2. What an older version cannot express (autoscaling/v1 has
//! only a CPU target) travels in upstream's `autoscaling.alpha.kubernetes.io/*`
//! annotations, so a round trip through v1 loses nothing.

use serde_json::{Map, Value, json};

/// Whether objects of this group, version and kind are stored in another
/// version's form.
pub fn is_converted(group: &str, version: &str, kind: &str) -> bool {
    matches!(
        (group, version, kind),
        ("events.k8s.io", "v1", "Event") | ("autoscaling", "v1", "HorizontalPodAutoscaler")
    )
}

/// An object of `api_version` in its stored form (unchanged for kinds
/// stored as themselves).
pub fn to_stored(api_version: &str, kind: &str, object: Value) -> Value {
    match (api_version, kind) {
        ("events.k8s.io/v1", "Event") => {
            rename_fields(object, EVENT_FIELDS, "v1", Direction::ToCore)
        }
        ("autoscaling/v1", "HorizontalPodAutoscaler") => hpa_v1_to_v2(object),
        _ => object,
    }
}

/// A stored object as `api_version` shows it (unchanged for kinds stored as
/// themselves).
pub fn from_stored(api_version: &str, kind: &str, object: Value) -> Value {
    match (api_version, kind) {
        ("events.k8s.io/v1", "Event") => {
            rename_fields(object, EVENT_FIELDS, api_version, Direction::FromCore)
        }
        ("autoscaling/v1", "HorizontalPodAutoscaler") => hpa_v2_to_v1(object),
        _ => object,
    }
}

/// events.k8s.io/v1 field ↔ core/v1 field; the rest share their names.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

enum Direction {
    ToCore,
    FromCore,
}

fn rename_fields(
    mut object: Value,
    fields: &[(&str, &str)],
    api_version: &str,
    direction: Direction,
) -> Value {
    let Some(map) = object.as_object_mut() else {
        return object;
    };
    for (events_name, core_name) in fields {
        let (from, to) = match direction {
            Direction::ToCore => (events_name, core_name),
            Direction::FromCore => (core_name, events_name),
        };
        if let Some(value) = map.remove(*from) {
            map.insert(to.to_string(), value);
        }
    }
    map.insert("apiVersion".into(), json!(api_version));
    object
}

const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn is_cpu_utilization(metric: &Value, field: &str) -> bool {
    metric["type"] == "Resource" && metric["resource"]["name"] == "cpu" && {
        let measure = &metric["resource"][field];
        measure["averageUtilization"].is_number()
            && (field == "current" || measure["type"] == "Utilization")
    }
}

/// Takes a JSON annotation out of `metadata.annotations`.
fn take_annotation(object: &mut Value, name: &str) -> Option<Value> {
    let annotations = object
        .get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()?;
    let text = annotations.remove(name)?;
    if annotations.is_empty() {
        object["metadata"]
            .as_object_mut()
            .map(|metadata| metadata.remove("annotations"));
    }
    serde_json::from_str(text.as_str()?).ok()
}

fn put_annotation(object: &mut Value, name: &str, value: &Value) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let metadata = object["metadata"].as_object_mut().expect("made an object");
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[name] = json!(value.to_string());
}

fn hpa_v1_to_v2(mut object: Value) -> Value {
    let mut metrics = match take_annotation(&mut object, METRICS_ANNOTATION) {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    let behavior = take_annotation(&mut object, BEHAVIOR_ANNOTATION);
    let mut current_metrics = match take_annotation(&mut object, CURRENT_METRICS_ANNOTATION) {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    let conditions = take_annotation(&mut object, CONDITIONS_ANNOTATION);
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target}}}),
            );
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(behavior) = behavior {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(current) = status.remove("currentCPUUtilizationPercentage") {
            current_metrics.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": current}}}),
            );
        }
        if !current_metrics.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current_metrics));
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), conditions);
        }
    }
    object["apiVersion"] = json!("autoscaling/v2");
    object
}

fn hpa_v2_to_v1(mut object: Value) -> Value {
    let mut annotations: Vec<(&str, Value)> = Vec::new();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = take_array(spec, "metrics");
        let (cpu, others): (Vec<Value>, Vec<Value>) = metrics
            .into_iter()
            .partition(|metric| is_cpu_utilization(metric, "target"));
        if let Some(cpu) = cpu.first() {
            spec.insert(
                "targetCPUUtilizationPercentage".into(),
                cpu["resource"]["target"]["averageUtilization"].clone(),
            );
        }
        if !others.is_empty() {
            annotations.push((METRICS_ANNOTATION, Value::Array(others)));
        }
        if let Some(behavior) = spec.remove("behavior") {
            annotations.push((BEHAVIOR_ANNOTATION, behavior));
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let metrics = take_array(status, "currentMetrics");
        let (cpu, others): (Vec<Value>, Vec<Value>) = metrics
            .into_iter()
            .partition(|metric| is_cpu_utilization(metric, "current"));
        if let Some(cpu) = cpu.first() {
            status.insert(
                "currentCPUUtilizationPercentage".into(),
                cpu["resource"]["current"]["averageUtilization"].clone(),
            );
        }
        if !others.is_empty() {
            annotations.push((CURRENT_METRICS_ANNOTATION, Value::Array(others)));
        }
        if let Some(conditions) = status.remove("conditions") {
            annotations.push((CONDITIONS_ANNOTATION, conditions));
        }
    }
    for (name, value) in annotations {
        put_annotation(&mut object, name, &value);
    }
    object["apiVersion"] = json!("autoscaling/v1");
    object
}

fn take_array(map: &mut Map<String, Value>, field: &str) -> Vec<Value> {
    match map.remove(field) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_v1_are_stored_as_core_events_and_read_back_unchanged() {
        let event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2026-11-22T06:00:00.000000Z",
            "reportingController": "krust/scheduler", "reportingInstance": "krust-1",
            "action": "Binding", "reason": "Scheduled", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "note": "assigned default/web to node-1",
            "deprecatedCount": 2,
        });
        let stored = to_stored("events.k8s.io/v1", "Event", event.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "assigned default/web to node-1");
        assert_eq!(stored["reportingComponent"], "krust/scheduler");
        assert_eq!(stored["count"], 2);
        assert!(stored.get("regarding").is_none() && stored.get("note").is_none());
        assert_eq!(from_stored("events.k8s.io/v1", "Event", stored), event);
    }

    #[test]
    fn core_events_read_through_events_v1() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node", "name": "n"}, "source": {"component": "kubelet"},
            "firstTimestamp": "2026-11-22T06:00:00Z", "lastTimestamp": "2026-11-22T06:01:00Z",
            "message": "Starting", "reason": "Starting", "type": "Normal"});
        let seen = from_stored("events.k8s.io/v1", "Event", core);
        assert_eq!(seen["apiVersion"], "events.k8s.io/v1");
        assert_eq!(seen["regarding"]["name"], "n");
        assert_eq!(seen["deprecatedSource"]["component"], "kubelet");
        assert_eq!(seen["deprecatedFirstTimestamp"], "2026-11-22T06:00:00Z");
        assert_eq!(seen["note"], "Starting");
    }

    #[test]
    fn hpa_v1_cpu_targets_become_v2_metrics_and_back() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60},
            "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 75}});
        let v2 = to_stored("autoscaling/v1", "HorizontalPodAutoscaler", v1.clone());
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60}}}])
        );
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            75
        );
        assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert_eq!(
            from_stored("autoscaling/v1", "HorizontalPodAutoscaler", v2),
            v1
        );
    }

    #[test]
    fn what_v1_cannot_express_survives_a_round_trip_in_annotations() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"team": "shop"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
                     "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
            "status": {"desiredReplicas": 1, "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let v1 = from_stored("autoscaling/v1", "HorizontalPodAutoscaler", v2.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(v1["spec"].get("metrics").is_none() && v1["spec"].get("behavior").is_none());
        let annotations = &v1["metadata"]["annotations"];
        assert_eq!(annotations["team"], "shop");
        assert!(
            annotations[METRICS_ANNOTATION]
                .as_str()
                .unwrap()
                .contains("memory")
        );
        assert!(
            annotations[CONDITIONS_ANNOTATION]
                .as_str()
                .unwrap()
                .contains("AbleToScale")
        );
        assert_eq!(
            to_stored("autoscaling/v1", "HorizontalPodAutoscaler", v1),
            v2,
            "v2 → v1 → v2 is lossless"
        );
    }

    #[test]
    fn other_kinds_pass_through() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(to_stored("v1", "Pod", pod.clone()), pod);
        assert_eq!(from_stored("v1", "Pod", pod.clone()), pod);
        assert!(!is_converted("", "v1", "Pod"));
        assert!(is_converted("autoscaling", "v1", "HorizontalPodAutoscaler"));
        assert!(!is_converted(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler"
        ));
    }
}
