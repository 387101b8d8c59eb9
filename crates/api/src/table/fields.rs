//! Forgiving readers for wire-format JSON fields and the shared cell formatters (labels, selectors, quantities).
//!
//! Every reader treats a missing, null or wrongly typed field as absent, so
//! a malformed object yields upstream's placeholder cell instead of a panic.

use serde_json::{Map, Value};

/// The value at `path`, treating JSON null like an absent field.
pub(super) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let found = path
        .iter()
        .try_fold(value, |current, key| current.get(key))?;
    (!found.is_null()).then_some(found)
}

pub(super) fn opt_text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// A string field, `""` when absent (Go's zero value).
pub(super) fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    opt_text(value, path).unwrap_or("")
}

/// A string field, or `default` when absent or empty (the v1 decoder's defaulting).
pub(super) fn text_or<'a>(value: &'a Value, path: &[&str], default: &'a str) -> &'a str {
    match text(value, path) {
        "" => default,
        found => found,
    }
}

pub(super) fn opt_int(value: &Value, path: &[&str]) -> Option<i64> {
    let found = at(value, path)?;
    found
        .as_i64()
        .or_else(|| found.as_f64().map(|float| float as i64))
}

/// An integer field, 0 when absent (Go's zero value).
pub(super) fn int(value: &Value, path: &[&str]) -> i64 {
    opt_int(value, path).unwrap_or(0)
}

pub(super) fn flag(value: &Value, path: &[&str]) -> Option<bool> {
    at(value, path).and_then(Value::as_bool)
}

pub(super) fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn object<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(value, path).and_then(Value::as_object)
}

pub(super) fn count(value: &Value, path: &[&str]) -> i64 {
    match at(value, path) {
        Some(Value::Array(items)) => items.len() as i64,
        Some(Value::Object(entries)) => entries.len() as i64,
        _ => 0,
    }
}

pub(super) fn name(object: &Value) -> &str {
    text(object, &["metadata", "name"])
}

/// A `key=value,…` rendering of a string map, keys sorted, `<none>` when empty.
pub(super) fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let Some(labels) = labels.filter(|labels| !labels.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A metav1.LabelSelector that cannot be turned into a selector.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct InvalidSelector;

/// The selector string upstream derives from a LabelSelector: requirements
/// sorted by key, `""` for both an absent and an empty selector.
pub(super) fn label_selector(selector: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(match_labels) = object(selector, &["matchLabels"]) {
        for (key, value) in match_labels {
            let value = value.as_str().ok_or(InvalidSelector)?;
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expression in list(selector, &["matchExpressions"]) {
        let key = text(expression, &["key"]);
        let mut values: Vec<&str> = list(expression, &["values"])
            .iter()
            .map(|value| value.as_str().ok_or(InvalidSelector))
            .collect::<Result<_, _>>()?;
        values.sort_unstable();
        let rendered = match (text(expression, &["operator"]), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return Err(InvalidSelector),
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|left, right| left.0.cmp(&right.0));
    Ok(requirements
        .into_iter()
        .map(|(_, rendered)| rendered)
        .collect::<Vec<_>>()
        .join(","))
}

/// metav1.FormatLabelSelector: `<none>` for a selector matching everything or nothing, `<error>` when invalid.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector(selector) {
        Ok(rendered) if rendered.is_empty() => "<none>".to_string(),
        Ok(rendered) => rendered,
        Err(InvalidSelector) => "<error>".to_string(),
    }
}

/// A resource.Quantity as text; quantities may arrive as JSON numbers, and
/// an absent one prints as the zero quantity.
pub(super) fn quantity(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => "0".to_string(),
    }
}

/// A quantity behind a Go pointer: `<nil>` when unset, as `(*Quantity).String` prints it.
pub(super) fn optional_quantity(value: Option<&Value>) -> String {
    match value {
        None => "<nil>".to_string(),
        present => quantity(present),
    }
}

/// An IntOrString as text.
pub(super) fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The comma-joined container names and images of a pod spec.
pub(super) fn container_cells(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map_or(&[][..], |spec| list(spec, &["containers"]));
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// Up to `max` items joined by `,`, with ` + N more...` for the rest.
pub(super) fn list_with_more(items: &[String], total: usize, max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if total > max {
        format!("{shown} + {} more...", total - max)
    } else {
        shown
    }
}
