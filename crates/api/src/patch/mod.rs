//! PATCH semantics for the three kube-apiserver patch content types, applied to objects in the JSON wire format.
//!
//! * `application/json-patch+json` → [`apply_json_patch`] (RFC 6902),
//! * `application/merge-patch+json` → [`apply_merge_patch`] (RFC 7386, as
//!   kube-apiserver's evanphx/json-patch implements it),
//! * `application/strategic-merge-patch+json` →
//!   [`apply_strategic_merge_patch`], driven by the per-kind table in
//!   [`metadata`].
//!
//! Everything here is pure: the handler decodes the body, calls one of these
//! with the stored object, and maps a [`PatchError`] to a `Status` using
//! [`PatchError::http_status`] and [`PatchError::reason`].

mod go_format;
mod merge;
pub mod metadata;
mod rfc6902;
mod strategic;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use metadata::supports_strategic_merge;

/// Deepest nesting accepted in a patch document. Kubernetes objects are a few
/// dozen levels deep at most; the bound keeps every recursive walk here far
/// from the stack limit whatever a client sends.
pub const MAX_PATCH_DEPTH: usize = 256;

/// kube-apiserver refuses JSON patches with more operations than this.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied, classified the way kube-apiserver
/// classifies it so the handler answers with the same status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (not the right JSON shape, a
    /// directive with a bad format). HTTP 400, reason `BadRequest`; the
    /// message is the text upstream puts in `Status.message`.
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but does not apply to this object: a failed
    /// JSON patch `test`, a path that does not exist, a list of lists in a
    /// strategic merge patch. HTTP 422, reason `Invalid`. Upstream builds
    /// this with `NewGenericServerResponse`, which discards the detail and
    /// shows a fixed message, so `Display` gives that fixed message and
    /// `detail` keeps the real cause for logs.
    #[error("the server rejected our request due to an error in our request")]
    Unprocessable { detail: String },
    /// A JSON patch with more than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    /// HTTP 413, reason `RequestEntityTooLarge`.
    #[error("The allowed maximum operations in a JSON patch is {limit}, got {count}")]
    TooManyOperations { limit: usize, count: usize },
    /// A strategic-merge or merge-patch failure that upstream does not map to
    /// an API status (missing merge key, mismatched `$setElementOrder`, an
    /// unknown `$patch` value, …). kube-apiserver passes the raw error on, so
    /// the client sees HTTP 500 with an empty reason and this message.
    #[error("{0}")]
    Unclassified(String),
}

impl PatchError {
    /// HTTP status kube-apiserver answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable { .. } => 422,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::Unclassified(_) => 500,
        }
    }

    /// `Status.reason` kube-apiserver sets for this error (empty means
    /// `StatusReasonUnknown`).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable { .. } => "Invalid",
            PatchError::TooManyOperations { .. } => "RequestEntityTooLarge",
            PatchError::Unclassified(_) => "",
        }
    }

    /// The underlying cause, including the detail upstream hides behind the
    /// fixed 422 message.
    pub fn detail(&self) -> String {
        match self {
            PatchError::Unprocessable { detail } => detail.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn unprocessable(detail: impl Into<String>) -> Self {
        PatchError::Unprocessable {
            detail: detail.into(),
        }
    }
}

/// Applies an RFC 6902 JSON patch (`application/json-patch+json`).
///
/// `patch` is the decoded request body; `null` is an empty patch, as in
/// upstream. Failures of individual operations carry the messages
/// evanphx/json-patch produces (e.g. `testing value /spec/replicas failed:
/// test failed`) in [`PatchError::Unprocessable`].
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    rfc6902::apply(doc, patch)
}

/// Applies an RFC 7386 JSON merge patch (`application/merge-patch+json`):
/// `null` deletes a key, objects merge recursively, anything else replaces.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    merge::apply(doc, patch)
}

/// Applies a strategic merge patch (`application/strategic-merge-patch+json`)
/// to an object of the given API group (`""` for core) and kind.
///
/// Kinds without strategic-merge metadata fall back to JSON merge patch
/// semantics; kube-apiserver instead refuses such patches for custom
/// resources with 415, so callers should check [`supports_strategic_merge`]
/// first when they need upstream's answer.
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    match metadata::schema_for(group, kind) {
        Some(schema) => strategic::apply(doc, patch, schema),
        None => merge::apply(doc, patch),
    }
}

/// Fails when `value` nests deeper than [`MAX_PATCH_DEPTH`]; walks with an
/// explicit stack so the check itself cannot overflow.
pub(crate) fn check_depth(value: &Value) -> Result<(), PatchError> {
    let mut pending = vec![(value, 1usize)];
    while let Some((node, depth)) = pending.pop() {
        if depth > MAX_PATCH_DEPTH {
            return Err(PatchError::BadRequest(format!(
                "patch is nested deeper than the maximum of {MAX_PATCH_DEPTH} levels"
            )));
        }
        match node {
            Value::Object(map) => pending.extend(map.values().map(|child| (child, depth + 1))),
            Value::Array(items) => pending.extend(items.iter().map(|child| (child, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}
