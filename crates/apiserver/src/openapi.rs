//! OpenAPI documents: the v3 index and per-group-version documents, and the v2 (Swagger 2.0) document, with paths, operations and the built-in kinds' type schemas.
//!
//! Operations carry `x-kubernetes-group-version-kind` and the query
//! parameters the server honours (kubectl reads `fieldValidation` there to
//! leave field validation to the server). The type schemas come from
//! `api::schema::builtin()` (k8s-openapi's types); `kubectl explain` finds a
//! kind's schema in `components.schemas` by its
//! `x-kubernetes-group-version-kind`. Every document is rendered once, on
//! first request, and served from the cached bytes afterwards.
//!
//! The v2 document is also served as protobuf (`v2_protobuf.rs`), the only
//! form kubectl reads it in: kubectl 1.20 validates manifests against it,
//! and every kubectl computes `apply`'s strategic merge patch from it when
//! the v3 document offers no patch schema. Its definitions therefore carry
//! the `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`
//! extensions of `api::patch::metadata`, as kube-apiserver's do.
//!
//! Patch operations deliberately declare no `requestBody`: kubectl would
//! otherwise compute strategic merge patches from these schemas, which lack
//! the `x-kubernetes-patch-*` extensions, instead of from its built-in types.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Instant;

use api::patch::metadata::{self as patch_metadata, PatchStrategy};
use api::resources::{self, Resource};
use api::schema::{BuiltinSchemas, V2_REF_PREFIX, V3_REF_PREFIX, ref_name};
use bytes::Bytes;
use serde_json::{Map, Value, json};

mod v2_protobuf;

/// The media type of the protobuf `/openapi/v2`, as kube-apiserver labels
/// it whichever of the two names the client asked for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The name kubectl asks for the protobuf `/openapi/v2` by. It cannot label
/// the response: `@` is not allowed in a media type, and Go's
/// `mime.ParseMediaType`, which client-go runs on every response's
/// Content-Type, fails on it ("unexpected content after media subtype").
const V2_PROTOBUF_REQUESTED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

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

/// Every document, rendered to JSON bytes.
struct Documents {
    /// `/openapi/v3`.
    index: Bytes,
    /// `/openapi/v3/<gv key>`, by gv key.
    v3: BTreeMap<String, Bytes>,
    /// `/openapi/v2` as JSON.
    v2: Bytes,
    /// `/openapi/v2` as gnostic's `openapi.v2.Document` protobuf message.
    v2_protobuf: Bytes,
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let started = Instant::now();
        let documents = render_documents();
        tracing::debug!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            v2_bytes = documents.v2.len(),
            v2_protobuf_bytes = documents.v2_protobuf.len(),
            v3_bytes = documents.v3.values().map(Bytes::len).sum::<usize>(),
            "rendered the OpenAPI documents"
        );
        documents
    })
}

fn render_documents() -> Documents {
    let schemas = api::schema::builtin();
    let mut v3 = BTreeMap::new();
    let mut index = Map::new();
    for (group, version) in group_versions() {
        let Some(document) = document(schemas, group, version) else {
            continue;
        };
        let bytes = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        let key = gv_key(group, version);
        let url = format!("/openapi/v3/{key}?hash={}", content_hash(&bytes));
        index.insert(key.clone(), json!({ "serverRelativeURL": url }));
        v3.insert(key, bytes);
    }
    let index = Bytes::from(serde_json::to_vec(&json!({ "paths": index })).unwrap_or_default());
    let swagger = swagger(schemas);
    let v2 = Bytes::from(serde_json::to_vec(&swagger).unwrap_or_default());
    let v2_protobuf = Bytes::from(v2_protobuf::encode(&swagger));
    Documents {
        index,
        v3,
        v2,
        v2_protobuf,
    }
}

/// `/openapi/v3`: where each group version's document lives, each URL
/// carrying a hash of its document so clients may cache by URL.
pub fn index_json() -> Bytes {
    documents().index.clone()
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`.
pub fn document_json(group: &str, version: &str) -> Option<Bytes> {
    documents().v3.get(&gv_key(group, version)).cloned()
}

/// `/openapi/v2` as JSON.
pub fn swagger_json() -> Bytes {
    documents().v2.clone()
}

/// `/openapi/v2` (and `/swagger-2.0.0.pb-v1`) as protobuf.
pub fn swagger_protobuf() -> Bytes {
    documents().v2_protobuf.clone()
}

/// The forms `/openapi/v2` is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V2Encoding {
    Json,
    /// Protobuf, labelled [`V2_PROTOBUF`].
    Protobuf,
}

/// The form of `/openapi/v2` an `Accept` header asks for: the first media
/// type in it that is served, JSON for none at all, `None` (406) when
/// nothing listed is served. kubectl asks for protobuf only.
pub fn negotiate_v2(accept: &str) -> Option<V2Encoding> {
    if accept.trim().is_empty() {
        return Some(V2Encoding::Json);
    }
    accept
        .split(',')
        .find_map(|media| match media.split(';').next().unwrap_or("").trim() {
            "application/json" | "application/*" | "*/*" => Some(V2Encoding::Json),
            V2_PROTOBUF | V2_PROTOBUF_REQUESTED => Some(V2Encoding::Protobuf),
            _ => None,
        })
}

/// FNV-1a of a document: deterministic across runs, unlike std's RandomState.
fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016X}")
}

/// The two OpenAPI versions differ in how parameters, responses and refs
/// are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V2,
    V3,
}

impl Dialect {
    fn schema_ref(self, name: &str) -> Value {
        let prefix = match self {
            Dialect::V2 => V2_REF_PREFIX,
            Dialect::V3 => V3_REF_PREFIX,
        };
        json!({ "$ref": format!("{prefix}{name}") })
    }

    fn query_parameter(self, name: &str, description: &str) -> Value {
        match self {
            Dialect::V2 => {
                json!({"name": name, "in": "query", "description": description, "type": "string", "uniqueItems": true})
            }
            Dialect::V3 => {
                json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
            }
        }
    }

    /// A response carrying an object of the schema `name`.
    fn response(self, code: &str, name: Option<&str>) -> Value {
        let description = if code == "201" { "Created" } else { "OK" };
        let mut responses = json!({
            code: {"description": description},
            "401": {"description": "Unauthorized"},
        });
        if let Some(name) = name {
            responses[code] = match self {
                Dialect::V2 => json!({"description": description, "schema": self.schema_ref(name)}),
                Dialect::V3 => json!({
                    "description": description,
                    "content": {"application/json": {"schema": self.schema_ref(name)}},
                }),
            };
        }
        responses
    }
}

/// One operation on a resource path.
struct Operation<'a> {
    resource: &'a Resource,
    action: &'static str,
    verb: &'static str,
    parameters: Vec<Value>,
    /// The schema the success response holds, and its code.
    response: (&'static str, Option<&'a str>),
}

impl Operation<'_> {
    fn render(self, dialect: Dialect) -> Value {
        let resource = self.resource;
        let mut operation = json!({
            "tags": [resource.group_version_path().trim_start_matches('/').replace('/', "_")],
            "operationId": format!("{}{}", self.verb, resource.kind),
            "parameters": self.parameters,
            "responses": dialect.response(self.response.0, self.response.1),
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        });
        if dialect == Dialect::V2 {
            operation["produces"] = json!(["application/json"]);
            if self.action == "patch" {
                let mut consumes = vec![
                    "application/json-patch+json",
                    "application/merge-patch+json",
                ];
                if api::patch::supports_strategic_merge(resource.group, resource.kind) {
                    consumes.push("application/strategic-merge-patch+json");
                }
                operation["consumes"] = json!(consumes);
            }
        }
        operation
    }
}

fn write_parameters(dialect: Dialect) -> Vec<Value> {
    vec![
        dialect.query_parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        dialect.query_parameter(
            "fieldManager",
            "A name associated with the actor or entity that is making these changes.",
        ),
        dialect.query_parameter(
            "fieldValidation",
            "How the server treats unknown fields in the object: Ignore drops them, Warn (the default) drops them with a warning per field, Strict fails the request.",
        ),
    ]
}

/// The collection and item paths of `resources` with their operations.
fn paths<'a>(
    schemas: &BuiltinSchemas,
    resources: impl Iterator<Item = &'a Resource>,
    dialect: Dialect,
) -> Map<String, Value> {
    let mut paths = Map::new();
    for resource in resources {
        let kind = schemas.kind(resource.group, resource.version, resource.kind);
        let object = kind.map(|k| k.name.as_str());
        let list = kind.map(|k| k.list_name.as_str());
        let base = resource.group_version_path();
        let collection = if resource.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{base}/{}", resource.plural)
        };
        let operation = |action, verb, parameters, response| {
            Operation {
                resource,
                action,
                verb,
                parameters,
                response,
            }
            .render(dialect)
        };
        let selectors = vec![
            dialect.query_parameter("labelSelector", "Selects objects by label."),
            dialect.query_parameter("fieldSelector", "Selects objects by field."),
        ];
        paths.insert(
            collection.clone(),
            json!({
                "get": operation("list", "list", selectors, ("200", list)),
                "post": operation("post", "create", write_parameters(dialect), ("201", object)),
                "delete": operation("deletecollection", "deleteCollection", vec![], ("200", None)),
            }),
        );
        let dry_run = vec![dialect.query_parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        )];
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation("get", "read", vec![], ("200", object)),
                "put": operation("put", "replace", write_parameters(dialect), ("200", object)),
                "patch": operation("patch", "patch", write_parameters(dialect), ("200", object)),
                "delete": operation("delete", "delete", dry_run, ("200", None)),
            }),
        );
    }
    paths
}

fn info() -> Value {
    json!({
        "title": "Kubernetes",
        "version": format!("v{}.{}.0", crate::discovery::KUBERNETES_MAJOR, crate::discovery::KUBERNETES_MINOR),
    })
}

/// The names of `roots` and of every schema they refer to, directly or not.
fn referenced_schemas(schemas: &BuiltinSchemas, roots: Vec<String>) -> BTreeSet<String> {
    fn refs_in(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(ref_name(reference).to_string());
                }
                map.values().for_each(|v| refs_in(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs_in(v, found)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut pending = roots;
    while let Some(name) = pending.pop() {
        if let Some(schema) = schemas.definitions.get(&name)
            && seen.insert(name)
        {
            refs_in(schema, &mut pending);
        }
    }
    seen
}

/// The v3 document of one group version: its paths and the schemas of its
/// kinds, their lists and everything those use.
fn document(schemas: &BuiltinSchemas, group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = resources::in_group_version(group, version).collect();
    if served.is_empty() {
        return None;
    }
    let roots = served
        .iter()
        .filter_map(|r| schemas.kind(r.group, r.version, r.kind))
        .flat_map(|k| [k.name.clone(), k.list_name.clone()])
        .collect();
    let components: Map<String, Value> = referenced_schemas(schemas, roots)
        .into_iter()
        .filter_map(|name| {
            let schema = schemas.definitions.get(&name)?.clone();
            Some((name, schema))
        })
        .collect();
    Some(json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths(schemas, served.into_iter(), Dialect::V3),
        "components": {"schemas": components},
    }))
}

/// A copy of `schema` with its v3 refs pointing into `#/definitions/`.
fn to_v2_refs(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => {
                            json!(format!("{V2_REF_PREFIX}{}", ref_name(reference)))
                        }
                        _ => to_v2_refs(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(to_v2_refs).collect()),
        other => other.clone(),
    }
}

/// The `x-kubernetes-patch-strategy` text of a strategy, as Go tags write it.
fn patch_strategy_text(strategy: PatchStrategy) -> &'static str {
    match strategy {
        PatchStrategy::Merge => "merge",
        PatchStrategy::Replace => "replace",
        PatchStrategy::RetainKeys => "retainKeys",
        PatchStrategy::MergeRetainKeys => "merge,retainKeys",
    }
}

/// The definition a property's schema is, or holds the items or values of.
fn referenced_definition(property: &Value) -> Option<&str> {
    [
        &property["$ref"],
        &property["allOf"][0]["$ref"],
        &property["items"]["$ref"],
        &property["additionalProperties"]["$ref"],
    ]
    .into_iter()
    .find_map(Value::as_str)
    .map(ref_name)
}

/// Marks the properties of definition `name` that `patch` tags with their
/// patch strategy and merge key, following `patch` into nested definitions.
fn add_patch_extensions(
    definitions: &mut Map<String, Value>,
    name: &str,
    patch: &'static patch_metadata::Schema,
) {
    for field in patch.fields {
        let Some(property) = definitions
            .get_mut(name)
            .and_then(|definition| definition.get_mut("properties"))
            .and_then(|properties| properties.get_mut(field.name))
        else {
            continue;
        };
        if let (Some(strategy), Value::Object(property)) = (field.strategy, &mut *property) {
            property.insert(
                "x-kubernetes-patch-strategy".into(),
                json!(patch_strategy_text(strategy)),
            );
            if !field.merge_key.is_empty() {
                property.insert(
                    "x-kubernetes-patch-merge-key".into(),
                    json!(field.merge_key),
                );
            }
        }
        let nested = referenced_definition(property).map(str::to_string);
        if let (Some(nested_patch), Some(nested)) = (field.schema, nested) {
            add_patch_extensions(definitions, &nested, nested_patch);
        }
    }
}

/// The Swagger 2.0 document: every path and every schema.
fn swagger(schemas: &BuiltinSchemas) -> Value {
    let mut definitions: Map<String, Value> = schemas
        .definitions
        .iter()
        .map(|(name, schema)| (name.clone(), to_v2_refs(schema)))
        .collect();
    for kind in &schemas.kinds {
        if let Some(patch) = patch_metadata::schema_for(kind.group, kind.kind) {
            add_patch_extensions(&mut definitions, &kind.name, patch);
        }
    }
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths(schemas, resources::RESOURCES.iter(), Dialect::V2),
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: Bytes) -> Value {
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_index_points_at_each_group_version_document() {
        let first = parse(index_json());
        let url = first["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(first["paths"]["api/v1"].is_object());
        let hash = url.rsplit_once('=').unwrap().1;
        assert_eq!(
            hash,
            content_hash(&document_json("apps", "v1").unwrap()),
            "the hash is the document's"
        );
        assert_eq!(first.as_object().unwrap().len(), 1);
    }

    #[test]
    fn patch_operations_name_their_kind_and_field_validation() {
        let apps = parse(document_json("apps", "v1").unwrap());
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
        assert!(patch.get("requestBody").is_none());
        assert!(document_json("apps", "v9").is_none());
        let core = parse(document_json("", "v1").unwrap());
        assert!(core["paths"]["/api/v1/nodes/{name}"].is_object());
    }

    #[test]
    fn each_v3_document_holds_its_kinds_schemas_and_everything_they_use() {
        for (group, version) in group_versions() {
            let document = parse(document_json(group, version).unwrap());
            let components = document["components"]["schemas"].as_object().unwrap();
            for resource in resources::in_group_version(group, version) {
                let tagged = components.values().any(|schema| {
                    schema["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|tags| {
                            tags.contains(&json!({"group": resource.group, "kind": resource.kind, "version": resource.version}))
                        })
                });
                assert!(
                    tagged,
                    "{} has no schema in {group}/{version}",
                    resource.kind
                );
            }
            let text = serde_json::to_string(&document).unwrap();
            for reference in text.split("\"$ref\":\"").skip(1) {
                let target = reference.split('"').next().unwrap();
                assert!(target.starts_with(V3_REF_PREFIX), "{target}");
                assert!(
                    components.contains_key(ref_name(target)),
                    "{target} missing"
                );
            }
        }
        let apps = parse(document_json("apps", "v1").unwrap());
        let schemas = &apps["components"]["schemas"];
        assert!(schemas["io.k8s.api.core.v1.Container"]["properties"]["image"].is_object());
        assert!(schemas.get("io.k8s.api.rbac.v1.Role").is_none());
    }

    #[test]
    fn the_v2_document_has_definitions_with_v2_refs() {
        let swagger = parse(swagger_json());
        assert_eq!(swagger["swagger"], "2.0");
        let deployment = &swagger["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["properties"]["spec"]["allOf"][0]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let text = serde_json::to_string(&swagger).unwrap();
        assert!(!text.contains(V3_REF_PREFIX));
        let patch = &swagger["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["parameters"][2]["type"], "string");
        assert!(
            patch["consumes"]
                .as_array()
                .unwrap()
                .contains(&json!("application/strategic-merge-patch+json"))
        );
    }

    #[test]
    fn the_v2_document_is_served_in_the_form_asked_for() {
        for json in [
            "",
            "application/json",
            "application/json;q=0.9, */*;q=0.1",
            "*/*",
        ] {
            assert_eq!(negotiate_v2(json), Some(V2Encoding::Json), "{json:?}");
        }
        assert_eq!(
            negotiate_v2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
            Some(V2Encoding::Protobuf)
        );
        assert_eq!(
            negotiate_v2(
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json"
            ),
            Some(V2Encoding::Protobuf)
        );
        assert_eq!(negotiate_v2("application/yaml"), None);
    }

    #[test]
    fn v2_definitions_carry_upstreams_patch_extensions() {
        let swagger = parse(swagger_json());
        let definitions = &swagger["definitions"];
        let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let env = &definitions["io.k8s.api.core.v1.Container"]["properties"]["env"];
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
        let owners = &definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
            ["ownerReferences"];
        assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
        let strategy = &definitions["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    }
}
