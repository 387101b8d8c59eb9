//! OpenAPI v3 discovery: the per-group-version path index and operation documents, so clients can see which operations and query parameters each kind supports.
//!
//! The documents list every resource path and its operations with
//! `x-kubernetes-group-version-kind` and the query parameters the server
//! honours. kubectl reads them to decide that the server validates fields
//! itself. Type schemas (`components.schemas`, which `kubectl explain`
//! reads) are not generated yet.

use api::resources::{self, Resource};
use serde_json::{Map, Value, json};

/// The OpenAPI v3 path key of a group version: `api/v1` or `apis/apps/v1`.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every group version served, core first.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut versions = vec![("", "v1")];
    for (group, group_versions) in resources::groups() {
        for version in group_versions {
            versions.push((group, version));
        }
    }
    versions
}

/// `/openapi/v3`: where each group version's document lives.
pub fn index() -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let key = gv_key(group, version);
        let url = format!("/openapi/v3/{key}?hash={}", document_hash(group, version));
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// A stable hash of a document, so clients may cache it by URL.
fn document_hash(group: &str, version: &str) -> String {
    let text = document(group, version)
        .map(|d| d.to_string())
        .unwrap_or_default();
    // FNV-1a: deterministic across runs, unlike std's RandomState.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016X}")
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(resource: &Resource, action: &str, id: &str, parameters: Vec<Value>) -> Value {
    json!({
        "tags": [resource.group_version_path().trim_start_matches('/').replace('/', "_")],
        "operationId": id,
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
    })
}

fn write_parameters() -> Vec<Value> {
    vec![
        query_parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_parameter(
            "fieldManager",
            "A name associated with the actor or entity that is making these changes.",
        ),
        query_parameter(
            "fieldValidation",
            "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
        ),
    ]
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = resources::in_group_version(group, version).collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for resource in served {
        let base = resource.group_version_path();
        let collection = if resource.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{base}/{}", resource.plural)
        };
        let id = |verb: &str| format!("{verb}{}", resource.kind);
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(resource, "list", &id("list"), vec![query_parameter("labelSelector", "Selects objects by label."), query_parameter("fieldSelector", "Selects objects by field.")]),
                "post": operation(resource, "post", &id("create"), write_parameters()),
                "delete": operation(resource, "deletecollection", &id("deleteCollection"), vec![]),
            }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation(resource, "get", &id("read"), vec![]),
                "put": operation(resource, "put", &id("replace"), write_parameters()),
                "patch": operation(resource, "patch", &id("patch"), write_parameters()),
                "delete": operation(resource, "delete", &id("delete"), vec![query_parameter("dryRun", "When present, indicates that modifications should not be persisted.")]),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::discovery::KUBERNETES_MAJOR, crate::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_points_at_each_group_version_document() {
        let first = index();
        let url = first["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(first["paths"]["api/v1"].is_object());
        assert_eq!(
            url,
            index()["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
        );
    }

    #[test]
    fn patch_operations_name_their_kind_and_field_validation() {
        let apps = document("apps", "v1").unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(document("apps", "v9").is_none());
        assert!(document("", "v1").unwrap()["paths"]["/api/v1/nodes/{name}"].is_object());
    }
}
