//! API errors as `metav1.Status` responses, with upstream's reasons, codes and message shapes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What a request failed with; rendered as a `metav1.Status`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The `details` of a Status about one object.
fn object_details(group: &str, kind_plural: &str, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": kind_plural });
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

/// `pods "web"` or `deployments.apps "web"`, as upstream names an object.
pub fn qualified(group: &str, plural: &str, name: &str) -> String {
    if group.is_empty() {
        format!("{plural} \"{name}\"")
    } else {
        format!("{plural}.{group} \"{name}\"")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: Some(object_details(group, plural, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} not found", qualified(group, plural, name)),
            )
        }
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: Some(object_details(group, plural, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} already exists", qualified(group, plural, name)),
            )
        }
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(object_details(group, plural, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}: {why}",
                    qualified(group, plural, name)
                ),
            )
        }
    }

    /// The optimistic-concurrency conflict every stale write gets.
    pub fn modified(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type:?}"
            ),
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// A 422 from validation, already rendered by `api::validation`.
    pub fn invalid(status: Value) -> Self {
        ApiError {
            code: 422,
            reason: "Invalid",
            message: status["message"].as_str().unwrap_or("invalid").to_string(),
            details: status.get("details").cloned(),
        }
    }

    pub fn status_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            // Upstream omits an unknown reason (StatusReasonUnknown is "").
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status_json()).unwrap_or_default();
        (code, [("content-type", "application/json")], body).into_response()
    }
}

/// Maps storage failures onto API errors for one object.
pub fn from_storage(
    error: storage::StorageError,
    group: &str,
    plural: &str,
    name: &str,
) -> ApiError {
    use storage::StorageError as E;
    match error {
        E::NotFound { .. } => ApiError::not_found(group, plural, name),
        E::PreconditionFailed { current: None, .. } => ApiError::not_found(group, plural, name),
        E::PreconditionFailed { .. } => ApiError::modified(group, plural, name),
        E::ValueTooLarge { .. } => ApiError::too_large("etcdserver: request is too large"),
        E::Compacted {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        E::FutureRevision { requested, current } => ApiError {
            code: 504,
            reason: "Timeout",
            message: format!("Too large resource version: {requested}, current: {current}"),
            details: Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            ),
        },
        other => ApiError::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_their_reason_and_omit_an_unknown_one() {
        let conflict = ApiError {
            code: 409,
            reason: "Conflict",
            message: "stale".into(),
            details: None,
        }
        .status_json();
        assert_eq!(
            (conflict["reason"].as_str(), conflict["code"].as_u64()),
            (Some("Conflict"), Some(409))
        );
        let unknown = ApiError {
            code: 500,
            reason: "",
            message: "error trying to reach service: connection refused".into(),
            details: None,
        }
        .status_json();
        assert!(unknown.get("reason").is_none(), "{unknown}");
        assert_eq!(unknown["status"], "Failure");
    }
}
