//! RFC 7386 JSON merge patch with the null pruning of evanphx/json-patch, which kube-apiserver uses.

use serde_json::{Map, Value};

use super::{PatchError, check_depth};

// evanphx/json-patch's sentinel for a patch that is not a JSON object.
const BAD_MERGE_PATCH: &str = "Invalid JSON Patch";

pub(crate) fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    check_depth(patch)?;
    let patch = match patch {
        Value::Object(patch) => patch.clone(),
        // Upstream's merge turns an array patch into the new document, which
        // then cannot decode into an object: the apiserver answers 422.
        Value::Array(_) => {
            return Err(PatchError::unprocessable(
                "a JSON merge patch must be an object, got an array",
            ));
        }
        _ => return Err(PatchError::BadRequest(BAD_MERGE_PATCH.to_string())),
    };
    match doc {
        Value::Object(doc) => {
            let mut merged = doc.clone();
            merge_objects(&mut merged, patch);
            Ok(Value::Object(merged))
        }
        // Not an object to merge into: the patch, minus its nulls, becomes
        // the document.
        _ => {
            let mut replacement = Value::Object(patch);
            prune_nulls(&mut replacement);
            Ok(replacement)
        }
    }
}

fn merge_objects(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, patch_value) in patch {
        if patch_value.is_null() {
            doc.remove(&key);
            continue;
        }
        match doc.get_mut(&key) {
            Some(current) if !current.is_null() => {
                let current_value = current.take();
                *current = merge_values(current_value, patch_value);
            }
            _ => {
                let mut added = patch_value;
                prune_nulls(&mut added);
                doc.insert(key, added);
            }
        }
    }
}

fn merge_values(current: Value, patch: Value) -> Value {
    match (current, patch) {
        (Value::Object(mut current), Value::Object(patch)) => {
            merge_objects(&mut current, patch);
            Value::Object(current)
        }
        // evanphx prunes only when the current value is not an object; an
        // object replaced by a non-object takes the patch verbatim.
        (Value::Object(_), patch) => patch,
        (_, mut patch) => {
            prune_nulls(&mut patch);
            patch
        }
    }
}

/// Drops null-valued keys from objects at any depth, including objects inside
/// arrays; null array elements stay, as upstream leaves them.
fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}
