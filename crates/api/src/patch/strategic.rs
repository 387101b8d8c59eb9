//! Strategic merge patch as kube-apiserver applies it (k8s.io/apimachinery/pkg/util/strategicpatch, server side).
//!
//! The list ordering rules are subtle and clients depend on them (`kubectl
//! apply` sends `$setElementOrder` and expects the live order back), so the
//! algorithm follows upstream step by step, including one effect of Go slice
//! aliasing that upstream's own tests pin down (see [`ListMerge::live_view`]).
//! Go map iteration is random; where that could matter (a list and its
//! `$deleteFromPrimitiveList` in one map) additions are applied first.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::metadata::{PatchStrategy, Schema};
use super::{PatchError, check_depth, go_format};

type Object = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

// Upstream's sentinel errors (k8s.io/apimachinery/pkg/util/mergepatch), which
// the apiserver maps to 400 or 422; everything else reaches the client as 500.
const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";
const LIST_OF_LISTS: &str = "lists of lists are not supported";

pub(crate) fn apply(
    doc: &Value,
    patch: &Value,
    schema: &'static Schema,
) -> Result<Value, PatchError> {
    check_depth(patch)?;
    let patch = match patch {
        // Decoding `null` into a Go map yields an empty patch.
        Value::Null => return Ok(doc.clone()),
        Value::Object(patch) => patch,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_format::json_kind(other)
            )));
        }
    };
    let original = match doc {
        Value::Object(original) => original.clone(),
        _ => return Err(PatchError::BadRequest("invalid JSON document".to_string())),
    };
    merge_map(original, patch.clone(), Some(schema)).map(Value::Object)
}

/// Patch metadata of one field, as the merge needs it.
#[derive(Clone, Copy)]
struct FieldMeta {
    strategy: Option<PatchStrategy>,
    merge_key: &'static str,
    schema: Option<&'static Schema>,
}

impl FieldMeta {
    fn merges_lists(self) -> bool {
        self.strategy.is_some_and(PatchStrategy::merges)
    }

    fn replaces(self) -> bool {
        self.strategy == Some(PatchStrategy::Replace)
    }
}

fn lookup(schema: Option<&'static Schema>, name: &str) -> FieldMeta {
    match schema.and_then(|schema| schema.field(name)) {
        Some(field) => FieldMeta {
            strategy: field.strategy,
            merge_key: field.merge_key,
            schema: field.schema,
        },
        None => FieldMeta {
            strategy: None,
            merge_key: "",
            schema: None,
        },
    }
}

fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: Option<&'static Schema>,
) -> Result<Object, PatchError> {
    if patch.contains_key(DIRECTIVE) {
        return map_directive(patch);
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, schema)?;

    let mut entries: Vec<(String, Value)> = patch.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, patch_value) in entries {
        let (key, deleting) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(slot) = original.get_mut(&key) else {
            if !deleting && let Some(value) = value_from_patch(patch_value) {
                original.insert(key, value);
            }
            continue;
        };
        let field = lookup(schema, &key);
        match merge_value(slot.take(), patch_value, field, deleting)? {
            Some(merged) => *slot = merged,
            None => {
                original.remove(&key);
            }
        }
    }
    Ok(original)
}

/// `$patch` inside a map: `replace` keeps only the patch, `delete` empties it.
fn map_directive(mut patch: Object) -> Result<Object, PatchError> {
    match patch.get(DIRECTIVE).and_then(Value::as_str) {
        Some(REPLACE) => {
            patch.remove(DIRECTIVE);
            Ok(sanitize_object(patch))
        }
        Some(DELETE) => Ok(Object::new()),
        _ => {
            let directive = patch
                .get(DIRECTIVE)
                .map(go_format::value)
                .unwrap_or_default();
            Err(PatchError::Unclassified(format!(
                "unknown patch type: {directive} in map: {}",
                go_format::value(&Value::Object(patch))
            )))
        }
    }
}

/// Merges one present key; `None` removes it.
fn merge_value(
    current: Value,
    patch_value: Value,
    field: FieldMeta,
    deleting: bool,
) -> Result<Option<Value>, PatchError> {
    Ok(match (current, patch_value) {
        (Value::Object(current), Value::Object(patch)) => {
            Some(Value::Object(if field.replaces() {
                sanitize_object(patch)
            } else {
                merge_map(current, patch, field.schema)?
            }))
        }
        (Value::Array(current), Value::Array(patch)) => Some(Value::Array(
            merge_list_field(current, patch, field, deleting)?.items,
        )),
        (current, patch_value) if go_kind(&current) == go_kind(&patch_value) => Some(patch_value),
        // A deletion list never adds or replaces anything.
        (current, _) if deleting => Some(current),
        (_, patch_value) => value_from_patch(patch_value),
    })
}

/// Result of merging a list, plus what the caller's view of the original list
/// looks like afterwards.
struct ListMerge {
    items: Vec<Value>,
    /// Upstream deletes from and appends to the original Go slice in place,
    /// so the `$setElementOrder` step, which still holds the original slice,
    /// sees deleted entries shifted out and the first appended entries in
    /// their place. That view decides where server-only items land, so it is
    /// reproduced here.
    live_view: Vec<Value>,
}

fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: FieldMeta,
    deleting: bool,
) -> Result<ListMerge, PatchError> {
    if field.merges_lists() || deleting {
        merge_list(original, patch, field.merge_key, field.schema, deleting)
    } else {
        Ok(ListMerge {
            items: sanitize_list(patch),
            live_view: original,
        })
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    item_schema: Option<&'static Schema>,
    deleting: bool,
) -> Result<ListMerge, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(ListMerge {
            items: Vec::new(),
            live_view: original,
        });
    }
    let kind = element_kind(&original, &patch)?;

    if kind != GoKind::Map {
        if deleting {
            let items = delete_primitives(original.clone(), &patch);
            return Ok(ListMerge {
                items,
                live_view: original,
            });
        }
        let mut combined = original.clone();
        combined.extend(patch.iter().cloned());
        let merged = deduplicate(combined);
        let (patch_items, server_only) = partition_primitives(merged, &patch);
        let items = normalize_element_order(patch_items, server_only, &patch, &original, "", kind)?;
        return Ok(ListMerge {
            items,
            live_view: original,
        });
    }

    if merge_key.is_empty() {
        return Err(PatchError::Unclassified(
            "cannot merge lists without merge key for struct".to_string(),
        ));
    }
    let mut live = LiveList::new(original);
    let patch = apply_list_directives(&mut live, patch, merge_key)?;
    merge_list_items(&mut live, &patch, merge_key, item_schema)?;
    let (merged, server_order, live_view) = live.finish();
    let (patch_items, server_only) = partition_maps(merged, &patch, merge_key)?;
    let items = normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        merge_key,
        kind,
    )?;
    Ok(ListMerge { items, live_view })
}

/// A list being merged, tracking the Go backing array seen by whoever still
/// holds the original slice (see [`ListMerge::live_view`]).
struct LiveList {
    items: Vec<Value>,
    /// Length of `items` before any appends: the server order upstream
    /// compares against.
    settled_len: usize,
    backing: Vec<Value>,
    /// Set once a `$patch: replace` discards the original items.
    replaced: bool,
}

impl LiveList {
    fn new(original: Vec<Value>) -> Self {
        LiveList {
            settled_len: original.len(),
            backing: original.clone(),
            items: original,
            replaced: false,
        }
    }

    fn remove(&mut self, index: usize) {
        let len = self.items.len();
        self.items.remove(index);
        self.settled_len = self.items.len();
        // Go's append(s[:i], s[i+1:]...) shifts the tail left and leaves the
        // old last element in place past the new length.
        if let Some(last) = self.backing.get(len - 1).cloned() {
            self.backing.remove(index);
            self.backing.insert(len - 1, last);
        }
    }

    fn push(&mut self, item: Value) {
        let len = self.items.len();
        if !self.replaced
            && let Some(slot) = self.backing.get_mut(len)
        {
            *slot = item.clone();
        }
        self.items.push(item);
    }

    fn replace_with(&mut self, items: Vec<Value>) {
        self.settled_len = items.len();
        self.items = items;
        self.replaced = true;
    }

    /// (merged items, server order, live view of the original slice).
    fn finish(self) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
        let server_order = self.items[..self.settled_len.min(self.items.len())].to_vec();
        (self.items, server_order, self.backing)
    }
}

/// Handles `$patch` entries of a merging list and returns the other entries.
fn apply_list_directives(
    live: &mut LiveList,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.as_object().and_then(|map| map.get(DIRECTIVE)) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let Some(key) = item.get(merge_key) else {
                    return Err(no_merge_key(&item, merge_key));
                };
                while let Some(index) = live
                    .items
                    .iter()
                    .position(|existing| existing.get(merge_key) == Some(key))
                {
                    live.remove(index);
                }
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => {
                return Err(PatchError::Unclassified(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            _ => {
                return Err(PatchError::Unclassified(format!(
                    "unknown patch type: {} in map: {}",
                    go_format::value(directive),
                    go_format::value(&item)
                )));
            }
        }
    }
    if replace {
        live.replace_with(sanitize_list(plain));
        return Ok(Vec::new());
    }
    Ok(plain)
}

/// Merges each patch item into the item with the same merge key, appending
/// items that match none.
fn merge_list_items(
    live: &mut LiveList,
    patch: &[Value],
    merge_key: &str,
    item_schema: Option<&'static Schema>,
) -> Result<(), PatchError> {
    let mut positions = Positions::default();
    for (index, item) in live.items.iter().enumerate() {
        if let Some(key) = item.get(merge_key) {
            positions.insert_first(key, index);
        }
    }
    for item in patch {
        let Some(key) = item.get(merge_key) else {
            return Err(no_merge_key(item, merge_key));
        };
        let patch_item = item.as_object().cloned().unwrap_or_default();
        match positions.find(key) {
            Some(index) => {
                let current = match live.items[index].take() {
                    Value::Object(current) => current,
                    _ => Object::new(),
                };
                live.items[index] = Value::Object(merge_map(current, patch_item, item_schema)?);
            }
            None => {
                positions.insert_first(key, live.items.len());
                live.push(sanitize(item.clone()));
            }
        }
    }
    Ok(())
}

/// Processes every `$setElementOrder/<list>` of this map: merges that list now
/// and orders it as the directive says, keeping server-only items near their
/// live neighbours.
fn merge_ordered_lists(
    original: &mut Object,
    patch: &mut Object,
    schema: Option<&'static Schema>,
) -> Result<(), PatchError> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let Some(order) = patch.remove(&directive_key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let name = extract_key(&directive_key, SET_ELEMENT_ORDER)?;
        let original_list = match original.get(&name) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&name) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let field = lookup(schema, &name);
        validate_against_order(
            patch_list.as_deref().unwrap_or(&[]),
            &order,
            field.merge_key,
        )?;

        let (merged, server_order) = match (original_list, patch_list.clone()) {
            (Some(current), None) => (current.clone(), current),
            (None, Some(added)) => (
                remove_directives(Value::Array(added))
                    .map(sanitize)
                    .and_then(|list| match list {
                        Value::Array(items) => Some(items),
                        _ => None,
                    })
                    .unwrap_or_default(),
                Vec::new(),
            ),
            (Some(current), Some(changes)) => {
                let merge = merge_list_field(current, changes, field, false)?;
                (merge.items, merge.live_view)
            }
            (None, None) => continue,
        };

        let (ordered, server_only) = if field.merge_key.is_empty() {
            partition_primitives(merged, &order)
        } else {
            partition_maps(merged, &order, field.merge_key)?
        };
        let kind = element_kind(&server_order, patch_list.as_deref().unwrap_or(&[]))?;
        let items = normalize_element_order(
            ordered,
            server_only,
            &order,
            &server_order,
            field.merge_key,
            kind,
        )?;
        original.insert(name.clone(), Value::Array(items));
        patch.remove(&name);
    }
    Ok(())
}

/// The patch list (minus deletions and directives) must be a subsequence of
/// the `$setElementOrder` list.
fn validate_against_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut remaining = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_empty() {
            remaining.push(item);
            continue;
        }
        let Some(map) = item.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", item));
        };
        if map.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE) {
            remaining.push(item);
        }
    }
    let (mut in_patch, mut in_order) = (0, 0);
    while in_patch < remaining.len() && in_order < order.len() {
        let item = remaining[in_patch];
        if item
            .as_object()
            .is_some_and(|map| map.contains_key(DIRECTIVE))
        {
            in_patch += 1;
            continue;
        }
        if merge_key_values_equal(item, &order[in_order], merge_key)? {
            in_patch += 1;
        }
        in_order += 1;
    }
    if in_patch < remaining.len() && in_order >= order.len() {
        return Err(PatchError::Unclassified(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_format::value(&Value::Array(patch_list.to_vec())),
            go_format::value(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn merge_key_values_equal(
    left: &Value,
    right: &Value,
    merge_key: &str,
) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let left_map = left
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", left))?;
    let right_map = right
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", right))?;
    let left_key = left_map
        .get(merge_key)
        .ok_or_else(|| no_merge_key(left, merge_key))?;
    let right_key = right_map
        .get(merge_key)
        .ok_or_else(|| no_merge_key(right, merge_key))?;
    Ok(left_key == right_key)
}

/// `$retainKeys`: drop every key of the original not listed, after checking
/// the patch sets no unlisted key.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retained) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retained) = retained else {
        return Err(PatchError::BadRequest(BAD_RETAIN_KEYS.to_string()));
    };
    let keep: HashSet<&str> = retained.iter().filter_map(Value::as_str).collect();
    let sets_unlisted_key = patch.iter().any(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !key.starts_with(SET_ELEMENT_ORDER)
            && !keep.contains(key.as_str())
    });
    if sets_unlisted_key {
        return Err(PatchError::BadRequest(BAD_RETAIN_KEYS.to_string()));
    }
    original.retain(|key, _| keep.contains(key.as_str()));
    Ok(())
}

/// `"$prefix/field"` → `"field"`.
fn extract_key(directive_key: &str, prefix: &str) -> Result<String, PatchError> {
    match directive_key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_string()),
        _ => Err(PatchError::BadRequest(
            if prefix == DELETE_FROM_PRIMITIVE_LIST {
                BAD_PRIMITIVE_LIST
            } else {
                BAD_SET_ELEMENT_ORDER
            }
            .to_string(),
        )),
    }
}

/// Sorts patch items by `patch_order` and server-only items by
/// `server_order`, then interleaves them: a server-only item goes before a
/// patch item only when both appear in `server_order` and it came first there.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;
    let server_positions = Positions::of_list(server_order, merge_key, kind);
    let position = |item: &Value| server_positions.find(&lookup_key(item, merge_key, kind));

    let mut merged = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut server_only = server_only.into_iter().peekable();
    let mut patch_items = patch_items.into_iter().peekable();
    loop {
        let take_server_item = match (server_only.peek(), patch_items.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(server), Some(patched)) => {
                matches!((position(server), position(patched)), (Some(s), Some(p)) if s < p)
            }
        };
        let next = if take_server_item {
            server_only.next()
        } else {
            patch_items.next()
        };
        merged.extend(next);
    }
    Ok(merged)
}

/// Stable sort by position in `order`; items absent from it (which upstream's
/// callers never produce) go last. `$patch: delete` items trail, as upstream.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>, PatchError> {
    let mut deletions = Vec::new();
    let mut kept = Vec::with_capacity(items.len());
    if kind == GoKind::Map {
        require_merge_keys(&items, merge_key)?;
        require_merge_keys(order, merge_key)?;
        for item in items {
            if item.get(DIRECTIVE).and_then(Value::as_str) == Some(DELETE) {
                deletions.push(item);
            } else {
                kept.push(item);
            }
        }
    } else {
        kept = items;
    }
    let positions = Positions::of_list(order, merge_key, kind);
    let mut keyed: Vec<(usize, Value)> = kept
        .into_iter()
        .map(|item| {
            let position = positions
                .find(&lookup_key(&item, merge_key, kind))
                .unwrap_or(usize::MAX);
            (position, item)
        })
        .collect();
    keyed.sort_by_key(|(position, _)| *position);
    let mut sorted: Vec<Value> = keyed.into_iter().map(|(_, item)| item).collect();
    sorted.extend(deletions);
    Ok(sorted)
}

fn require_merge_keys(items: &[Value], merge_key: &str) -> Result<(), PatchError> {
    for item in items {
        let Some(map) = item.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", item));
        };
        if !map.contains_key(merge_key) {
            return Err(no_merge_key(item, merge_key));
        }
    }
    Ok(())
}

/// Splits `merged` into items whose merge key appears in `partition_by` and
/// the rest, preserving order.
fn partition_maps(
    merged: Vec<Value>,
    partition_by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut positions = Positions::default();
    for (index, item) in partition_by.iter().enumerate() {
        if let Some(key) = item.as_object().and_then(|map| map.get(merge_key)) {
            positions.insert_first(key, index);
        }
    }
    // Upstream scans `partition_by` in order and fails on the first non-map
    // it meets before a match.
    let first_non_map = partition_by.iter().position(|item| !item.is_object());
    let mut in_list = Vec::new();
    let mut not_in_list = Vec::new();
    for item in merged {
        let Some(map) = item.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", &item));
        };
        let Some(key) = map.get(merge_key) else {
            return Err(no_merge_key(&item, merge_key));
        };
        let found = positions.find(key);
        if let Some(bad) = first_non_map
            && found.is_none_or(|position| bad < position)
        {
            return Err(PatchError::Unclassified(format!(
                "value for key {bad} is not a map"
            )));
        }
        if found.is_some() {
            in_list.push(item);
        } else {
            not_in_list.push(item);
        }
    }
    Ok((in_list, not_in_list))
}

fn partition_primitives(merged: Vec<Value>, partition_by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let positions = Positions::of_values(partition_by);
    merged
        .into_iter()
        .partition(|item| positions.find(item).is_some())
}

fn deduplicate(items: Vec<Value>) -> Vec<Value> {
    let mut seen = Positions::default();
    let mut unique = Vec::with_capacity(items.len());
    for item in items {
        if seen.find(&item).is_none() {
            seen.insert_first(&item, unique.len());
            unique.push(item);
        }
    }
    unique
}

fn delete_primitives(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    let doomed = Positions::of_values(to_delete);
    current
        .into_iter()
        .filter(|item| doomed.find(item).is_none())
        .collect()
}

/// The Go dynamic type of a decoded JSON value (`None` for null), which
/// upstream compares to decide between merging and replacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoKind {
    Map,
    Slice,
    String,
    Bool,
    Int,
    Float,
}

fn go_kind(value: &Value) -> Option<GoKind> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => GoKind::Bool,
        Value::Number(n) if n.is_i64() => GoKind::Int,
        Value::Number(_) => GoKind::Float,
        Value::String(_) => GoKind::String,
        Value::Array(_) => GoKind::Slice,
        Value::Object(_) => GoKind::Map,
    })
}

/// The single element type of two lists; upstream refuses mixed lists and
/// lists of lists.
fn element_kind(original: &[Value], patch: &[Value]) -> Result<GoKind, PatchError> {
    let mut items = original.iter().chain(patch);
    let Some(first) = items.next() else {
        return Err(PatchError::Unclassified(
            "no elements in any of the given slices".to_string(),
        ));
    };
    let kind = match go_kind(first) {
        // Upstream dereferences the nil type of a leading null and panics.
        None => {
            return Err(PatchError::Unclassified(
                "runtime error: invalid memory address or nil pointer dereference".to_string(),
            ));
        }
        Some(GoKind::Slice) => return Err(PatchError::unprocessable(LIST_OF_LISTS)),
        Some(kind) => kind,
    };
    if items.any(|item| go_kind(item) != Some(kind)) {
        return Err(PatchError::Unclassified(format!(
            "list element types are not identical: {}",
            go_format::lists(&[original, patch])
        )));
    }
    Ok(kind)
}

/// What upstream compares list items by: the merge key's value for maps
/// (null when absent), the item itself otherwise.
fn lookup_key(item: &Value, merge_key: &str, kind: GoKind) -> Value {
    if kind == GoKind::Map {
        item.get(merge_key).cloned().unwrap_or(Value::Null)
    } else {
        item.clone()
    }
}

/// First position of each value in a list, hashed for scalars so long lists
/// stay linear.
#[derive(Default)]
struct Positions {
    scalars: HashMap<ScalarKey, usize>,
    composites: Vec<(Value, usize)>,
}

#[derive(PartialEq, Eq, Hash)]
enum ScalarKey {
    Null,
    Bool(bool),
    // serde_json's Number equality distinguishes 1 from 1.0, as does its text.
    Number(String),
    String(String),
}

fn scalar_key(value: &Value) -> Option<ScalarKey> {
    Some(match value {
        Value::Null => ScalarKey::Null,
        Value::Bool(b) => ScalarKey::Bool(*b),
        Value::Number(n) => ScalarKey::Number(n.to_string()),
        Value::String(s) => ScalarKey::String(s.clone()),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

impl Positions {
    fn of_list(list: &[Value], merge_key: &str, kind: GoKind) -> Self {
        let mut positions = Positions::default();
        for (index, item) in list.iter().enumerate() {
            positions.insert_first(&lookup_key(item, merge_key, kind), index);
        }
        positions
    }

    /// Positions of the items themselves (lists of primitives).
    fn of_values(list: &[Value]) -> Self {
        let mut positions = Positions::default();
        for (index, item) in list.iter().enumerate() {
            positions.insert_first(item, index);
        }
        positions
    }

    fn insert_first(&mut self, key: &Value, position: usize) {
        match scalar_key(key) {
            Some(scalar) => {
                self.scalars.entry(scalar).or_insert(position);
            }
            None => {
                if !self.composites.iter().any(|(existing, _)| existing == key) {
                    self.composites.push((key.clone(), position));
                }
            }
        }
    }

    fn find(&self, key: &Value) -> Option<usize> {
        match scalar_key(key) {
            Some(scalar) => self.scalars.get(&scalar).copied(),
            None => self
                .composites
                .iter()
                .find(|(existing, _)| existing == key)
                .map(|(_, position)| *position),
        }
    }
}

/// A patch value stored where the original had nothing (or something of a
/// different type): nulls are dropped and maps carrying `$patch` vanish, as
/// upstream does; `None` means the key is not set at all.
fn value_from_patch(value: Value) -> Option<Value> {
    remove_directives(value).map(sanitize)
}

fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                map.into_iter()
                    .filter_map(|(key, child)| remove_directives(child).map(|child| (key, child)))
                    .collect(),
            ))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Patch content that upstream stores verbatim is then decoded into the typed
/// object, which drops nulls and the unknown `$…` directive keys; since krust
/// keeps objects untyped, that cleanup happens here.
fn sanitize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(sanitize_object(map)),
        Value::Array(items) => Value::Array(sanitize_list(items)),
        other => other,
    }
}

fn sanitize_object(map: Object) -> Object {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive_key(key))
        .map(|(key, value)| (key, sanitize(value)))
        .collect()
}

fn sanitize_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().map(sanitize).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}

fn no_merge_key(item: &Value, merge_key: &str) -> PatchError {
    PatchError::Unclassified(format!(
        "map: {} does not contain declared merge key: {merge_key}",
        go_format::value(item)
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Unclassified(format!(
        "expected a {expected}, but received a {}",
        go_format::type_name(actual)
    ))
}
