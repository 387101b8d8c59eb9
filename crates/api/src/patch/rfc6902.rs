//! RFC 6902 JSON patch on top of the json-patch crate, with evanphx/json-patch's index handling and error texts.
//!
//! kube-apiserver decodes a JSON patch loosely (any array of objects) and
//! only complains about an operation when it reaches it, so operations are
//! interpreted one at a time here too; the crate does the mutation and this
//! module supplies upstream's tolerance for negative / `+`-signed indices and
//! its wording for failures.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::{Map, Value};

use super::{MAX_JSON_PATCH_OPERATIONS, PatchError, check_depth, go_format};

pub(crate) fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let operations = match patch {
        // encoding/json decodes `null` into an empty patch.
        Value::Null => return Ok(doc.clone()),
        Value::Array(operations) => operations,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                go_format::json_kind(other)
            )));
        }
    };
    if let Some(bad) = operations
        .iter()
        .find(|op| !op.is_object() && !op.is_null())
    {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            go_format::json_kind(bad)
        )));
    }
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            limit: MAX_JSON_PATCH_OPERATIONS,
            count: operations.len(),
        });
    }
    check_depth(patch)?;

    let mut patched = doc.clone();
    let no_fields = Map::new();
    for operation in operations {
        let fields = operation.as_object().unwrap_or(&no_fields);
        apply_operation(&mut patched, fields).map_err(PatchError::unprocessable)?;
    }
    Ok(patched)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            "move" => Op::Move,
            "copy" => Op::Copy,
            "test" => Op::Test,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
            Op::Move => "move",
            Op::Copy => "copy",
            Op::Test => "test",
        }
    }
}

/// Applies one operation, or returns the message upstream would give.
fn apply_operation(doc: &mut Value, fields: &Map<String, Value>) -> Result<(), String> {
    let name = fields
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let op = Op::parse(name).ok_or_else(|| format!("Unexpected kind: {name}"))?;

    let from = match op {
        Op::Move | Op::Copy => Some(
            string_field(fields, "from", "operation, missing from field").map_err(|cause| {
                format!("{} operation failed to decode from: {cause}", op.name())
            })?,
        ),
        _ => None,
    };
    let path = string_field(fields, "path", "operation missing path field").map_err(|cause| {
        // Some upstream operations wrap the decode error, others replace it.
        match op {
            Op::Add | Op::Remove | Op::Copy => {
                format!(
                    "{} operation failed to decode path: missing value",
                    op.name()
                )
            }
            _ => format!("{} operation failed to decode path: {cause}", op.name()),
        }
    })?;

    // evanphx only special-cases the document root for replace and test; for
    // everything else an empty or slash-less path names no container.
    let root_allowed = matches!(op, Op::Replace | Op::Test);
    if !addresses_container(&path, root_allowed) {
        return Err(missing_target(op, &path, from.as_deref()));
    }
    if let Some(from) = &from
        && !addresses_container(from, false)
    {
        return Err(format!(
            "{} operation does not apply: doc is missing from path: {from}: missing value",
            op.name()
        ));
    }

    let target = canonical_pointer(doc, &path, op == Op::Add);
    let source = from
        .as_deref()
        .map(|from| canonical_pointer(doc, from, false));
    let operation = build_operation(op, &target, source.as_deref(), fields)
        .ok_or_else(|| missing_target(op, &path, from.as_deref()))?;

    match json_patch::patch(doc, std::slice::from_ref(&operation)) {
        Ok(()) => Ok(()),
        Err(err) => Err(describe_failure(
            op,
            &path,
            from.as_deref().unwrap_or(""),
            &err.kind,
            slot(doc, &target),
        )),
    }
}

/// Reads a string member; the error is the cause text upstream wraps.
fn string_field(
    fields: &Map<String, Value>,
    member: &str,
    missing: &str,
) -> Result<String, String> {
    match fields.get(member) {
        None | Some(Value::Null) => Err(format!("{missing}: missing value")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into Go value of type string",
            go_format::json_kind(other)
        )),
    }
}

fn addresses_container(pointer: &str, root_allowed: bool) -> bool {
    if pointer.is_empty() {
        root_allowed
    } else {
        pointer.starts_with('/')
    }
}

fn missing_target(op: Op, path: &str, from: Option<&str>) -> String {
    match op {
        Op::Add | Op::Remove => format!(
            "{} operation does not apply: doc is missing path: \"{path}\": missing value",
            op.name()
        ),
        Op::Replace => {
            format!("replace operation does not apply: doc is missing path: {path}: missing value")
        }
        Op::Test => {
            format!("test operation does not apply: is missing path: {path}: missing value")
        }
        Op::Move | Op::Copy => match from {
            Some(from) if !is_valid_pointer(from) => format!(
                "{} operation does not apply: doc is missing from path: {from}: missing value",
                op.name()
            ),
            _ => format!(
                "{} operation does not apply: doc is missing destination path: {path}: missing value",
                op.name()
            ),
        },
    }
}

fn build_operation(
    op: Op,
    target: &str,
    source: Option<&str>,
    fields: &Map<String, Value>,
) -> Option<PatchOperation> {
    let mut operation = Map::new();
    operation.insert("op".into(), Value::String(op.name().into()));
    operation.insert("path".into(), Value::String(target.into()));
    if let Some(source) = source {
        operation.insert("from".into(), Value::String(source.into()));
    }
    if matches!(op, Op::Add | Op::Replace | Op::Test) {
        // Upstream treats a missing value as JSON null.
        let value = fields.get("value").cloned().unwrap_or(Value::Null);
        operation.insert("value".into(), value);
    }
    serde_json::from_value(Value::Object(operation)).ok()
}

fn is_valid_pointer(pointer: &str) -> bool {
    let probe = serde_json::json!({ "op": "remove", "path": pointer });
    serde_json::from_value::<PatchOperation>(probe).is_ok()
}

/// Rewrites array-index tokens the way evanphx reads them (`strconv.Atoi`,
/// negative indices counting from the end) into RFC 6901 indices.
fn canonical_pointer(doc: &Value, pointer: &str, inserting: bool) -> String {
    let Some(tokens) = pointer.strip_prefix('/') else {
        return pointer.to_string();
    };
    let tokens: Vec<&str> = tokens.split('/').collect();
    let last = tokens.len().saturating_sub(1);
    let mut node = Some(doc);
    let mut out = String::with_capacity(pointer.len());
    for (position, token) in tokens.iter().enumerate() {
        out.push('/');
        match node {
            Some(Value::Array(items)) if *token != "-" => match token.parse::<i64>() {
                Ok(index) => {
                    let extra = i64::from(inserting && position == last);
                    let len = i64::try_from(items.len()).unwrap_or(i64::MAX) + extra;
                    let resolved = if index < 0 && index >= -len {
                        index + len
                    } else {
                        index
                    };
                    out.push_str(&resolved.to_string());
                    node = usize::try_from(resolved).ok().and_then(|i| items.get(i));
                }
                Err(_) => {
                    out.push_str(token);
                    node = None;
                }
            },
            Some(Value::Object(map)) => {
                out.push_str(token);
                node = map.get(&unescape(token));
            }
            _ => {
                out.push_str(token);
                node = None;
            }
        }
    }
    out
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// What the last token of a pointer refers to, before the operation ran.
enum Slot {
    NoContainer,
    Key { key: String, present: bool },
    Index { token: String },
}

fn slot(doc: &Value, pointer: &str) -> Slot {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return Slot::NoContainer;
    };
    match doc.pointer(parent) {
        Some(Value::Object(map)) => {
            let key = unescape(last);
            let present = map.contains_key(&key);
            Slot::Key { key, present }
        }
        Some(Value::Array(_)) => Slot::Index {
            token: last.to_string(),
        },
        _ => Slot::NoContainer,
    }
}

fn index_problem(token: &str) -> String {
    match token.parse::<i64>() {
        Ok(index) => format!("Unable to access invalid index: {index}: invalid index referenced"),
        Err(_) => format!("strconv.Atoi: parsing \"{token}\": invalid syntax"),
    }
}

fn describe_failure(op: Op, path: &str, from: &str, kind: &PatchErrorKind, slot: Slot) -> String {
    match (op, kind, slot) {
        (Op::Test, PatchErrorKind::TestFailed, _) => {
            format!("testing value {path} failed: test failed")
        }
        (Op::Test, _, Slot::Key { .. }) => format!("testing value {path} failed: test failed"),
        (Op::Test, _, Slot::Index { token }) => {
            format!(
                "error in test for path: '{path}': {}",
                index_problem(&token)
            )
        }
        (Op::Add, _, Slot::Index { token }) if token.parse::<i64>().is_err() => format!(
            "error in add for path: '{path}': value was not a proper array index: '{token}': strconv.Atoi: parsing \"{token}\": invalid syntax"
        ),
        (Op::Add, _, Slot::Index { token }) => {
            format!("error in add for path: '{path}': {}", index_problem(&token))
        }
        (
            Op::Remove,
            _,
            Slot::Key {
                key,
                present: false,
            },
        ) => format!(
            "error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
        ),
        (Op::Remove, _, Slot::Index { token }) => {
            format!(
                "error in remove for path: '{path}': {}",
                index_problem(&token)
            )
        }
        (Op::Replace, _, Slot::Key { .. } | Slot::Index { .. }) => {
            format!("replace operation does not apply: doc is missing key: {path}: missing value")
        }
        (Op::Move | Op::Copy, PatchErrorKind::InvalidFromPointer, _) => format!(
            "{} operation does not apply: doc is missing from path: {from}: missing value",
            op.name()
        ),
        (Op::Move | Op::Copy, PatchErrorKind::InvalidPointer, _) => format!(
            "{} operation does not apply: doc is missing destination path: {path}: missing value",
            op.name()
        ),
        (Op::Move | Op::Copy, other, _) => {
            format!("error in {} for path: '{path}': {other}", op.name())
        }
        (_, _, Slot::NoContainer) => missing_target(op, path, None),
        (_, other, _) => format!("error in {} for path: '{path}': {other}", op.name()),
    }
}
