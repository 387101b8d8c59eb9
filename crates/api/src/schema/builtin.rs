//! The schema of every built-in kind krust serves, generated once from k8s-openapi's types, with the list kinds and `x-kubernetes-group-version-kind` added as upstream publishes them.

use std::sync::OnceLock;

use k8s_openapi::ListableResource;
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::V3_REF_PREFIX;

/// Where one served kind's schema (and its list kind's) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindSchema {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The schema's name, e.g. `io.k8s.api.core.v1.Pod`.
    pub name: String,
    /// The list schema's name, e.g. `io.k8s.api.core.v1.PodList`.
    pub list_name: String,
}

/// Every built-in kind's schema, in OpenAPI v3 form: refs are
/// `#/components/schemas/<name>` and a `$ref` with a description beside it
/// is wrapped in `allOf`, as kube-apiserver's v3 documents write it.
#[derive(Debug)]
pub struct BuiltinSchemas {
    /// Schema name → schema, for the served kinds and everything they use.
    pub definitions: Map<String, Value>,
    /// The served kinds, in registration order.
    pub kinds: Vec<KindSchema>,
}

/// The schemas, generated on first use and kept for the life of the process.
pub fn builtin() -> &'static BuiltinSchemas {
    static SCHEMAS: OnceLock<BuiltinSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(generate)
}

impl BuiltinSchemas {
    /// The schema of the kind at `group/version`, if krust knows it.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&KindSchema> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// Removes the fields of `object` (a `group/version` `kind`) that its
    /// schema does not declare and returns their paths; `None` when the kind
    /// has no schema, so nothing can be said about its fields.
    pub fn drop_unknown_fields(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        object: &mut Value,
    ) -> Option<Vec<String>> {
        let schema = self.kind(group, version, kind)?;
        let root = json!({ "$ref": format!("{V3_REF_PREFIX}{}", schema.name) });
        Some(super::drop_unknown_fields(&self.definitions, &root, object))
    }
}

/// Collects the served kinds' schemas into one generator.
struct Registry {
    generator: SchemaGenerator,
    kinds: Vec<(KindSchema, &'static str)>,
}

impl Registry {
    /// Adds `T`'s schema and everything it refers to; `T`'s group, version
    /// and kind come from k8s-openapi, so they cannot drift from the type.
    fn kind<T: ListableResource + JsonSchema>(&mut self) {
        self.generator.subschema_for::<T>();
        let name = T::schema_name().into_owned();
        let list_name = match name.strip_suffix(T::KIND) {
            Some(prefix) => format!("{prefix}{}", T::LIST_KIND),
            None => format!("{name}List"),
        };
        self.kinds.push((
            KindSchema {
                group: T::GROUP,
                version: T::VERSION,
                kind: T::KIND,
                list_kind: T::LIST_KIND,
                name,
                list_name,
            },
            T::URL_PATH_SEGMENT,
        ));
    }
}

/// Every kind in `resources::RESOURCES`, by its k8s-openapi type.
fn register_served_kinds(registry: &mut Registry) {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling, storage::v1 as storage,
    };

    registry.kind::<core::ConfigMap>();
    registry.kind::<core::Endpoints>();
    registry.kind::<core::Event>();
    registry.kind::<core::LimitRange>();
    registry.kind::<core::Namespace>();
    registry.kind::<core::Node>();
    registry.kind::<core::PersistentVolumeClaim>();
    registry.kind::<core::PersistentVolume>();
    registry.kind::<core::Pod>();
    registry.kind::<core::PodTemplate>();
    registry.kind::<core::ReplicationController>();
    registry.kind::<core::ResourceQuota>();
    registry.kind::<core::Secret>();
    registry.kind::<core::ServiceAccount>();
    registry.kind::<core::Service>();
    registry.kind::<apps::ControllerRevision>();
    registry.kind::<apps::DaemonSet>();
    registry.kind::<apps::Deployment>();
    registry.kind::<apps::ReplicaSet>();
    registry.kind::<apps::StatefulSet>();
    registry.kind::<autoscaling::HorizontalPodAutoscaler>();
    registry.kind::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>();
    registry.kind::<k8s_openapi::api::events::v1::Event>();
    registry.kind::<batch::CronJob>();
    registry.kind::<batch::Job>();
    registry.kind::<coordination::Lease>();
    registry.kind::<discovery::EndpointSlice>();
    registry.kind::<networking::Ingress>();
    registry.kind::<networking::IngressClass>();
    registry.kind::<networking::NetworkPolicy>();
    registry.kind::<policy::PodDisruptionBudget>();
    registry.kind::<rbac::ClusterRoleBinding>();
    registry.kind::<rbac::ClusterRole>();
    registry.kind::<rbac::RoleBinding>();
    registry.kind::<rbac::Role>();
    registry.kind::<scheduling::PriorityClass>();
    registry.kind::<storage::StorageClass>();
}

fn generate() -> BuiltinSchemas {
    // The OpenAPI 3.0 dialect: refs under /components/schemas and no `$ref`
    // with siblings (a described ref becomes `allOf: [{$ref}]`).
    let settings = SchemaSettings::openapi3().with(|settings| settings.meta_schema = None);
    let mut registry = Registry {
        generator: SchemaGenerator::new(settings),
        kinds: Vec::new(),
    };
    register_served_kinds(&mut registry);
    let list_meta = registry
        .generator
        .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
    let mut definitions = registry.generator.take_definitions(true);

    let mut kinds = Vec::with_capacity(registry.kinds.len());
    for (kind, plural) in registry.kinds {
        let item = definitions.get(&kind.name).cloned().unwrap_or_default();
        let list = list_schema(&kind, plural, &item, list_meta.as_value());
        definitions.insert(kind.list_name.clone(), list);
        relax_required_object_fields(&mut definitions, &kind.name);
        add_group_version_kind(&mut definitions, &kind.name, &kind, kind.kind);
        add_group_version_kind(&mut definitions, &kind.list_name, &kind, kind.list_kind);
        kinds.push(kind);
    }
    BuiltinSchemas { definitions, kinds }
}

/// The `<Kind>List` schema upstream publishes beside each kind; k8s-openapi
/// has one generic `List<T>` with no schema of its own.
fn list_schema(kind: &KindSchema, plural: &str, item: &Value, list_meta: &Value) -> Value {
    let item_property = |name: &str| item["properties"][name].clone();
    json!({
        "description": format!("{} is a list of {} objects.", kind.list_kind, kind.kind),
        "type": "object",
        "properties": {
            "apiVersion": item_property("apiVersion"),
            "kind": item_property("kind"),
            "items": {
                "description": format!("List of {plural}."),
                "type": "array",
                "items": { "$ref": format!("{V3_REF_PREFIX}{}", kind.name) },
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [list_meta],
            },
        },
        "required": ["items"],
    })
}

/// k8s-openapi lists `metadata` (and, for some kinds, `spec`) as required
/// because its Rust fields are not optional; kube-apiserver's schemas do
/// not, and `kubectl explain` would mark them `-required-`.
fn relax_required_object_fields(definitions: &mut Map<String, Value>, name: &str) {
    let Some(Value::Object(schema)) = definitions.get_mut(name) else {
        return;
    };
    let Some(Value::Array(required)) = schema.get_mut("required") else {
        return;
    };
    required.retain(|field| field != "metadata" && field != "spec");
    if required.is_empty() {
        schema.remove("required");
    }
}

/// Tags a schema with the kind it is the root of, which is how clients
/// (`kubectl explain`) find a kind's schema in a document.
fn add_group_version_kind(
    definitions: &mut Map<String, Value>,
    name: &str,
    served: &KindSchema,
    kind: &str,
) {
    let Some(Value::Object(schema)) = definitions.get_mut(name) else {
        return;
    };
    let entry = json!({ "group": served.group, "kind": kind, "version": served.version });
    let tags = schema
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(tags) = tags
        && !tags.contains(&entry)
    {
        tags.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;
    use crate::schema::ref_name;

    fn refs_in<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference);
                }
                map.values().for_each(|v| refs_in(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs_in(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_served_kind_has_a_schema_and_a_list_schema() {
        let schemas = builtin();
        for resource in RESOURCES {
            let kind = schemas
                .kind(resource.group, resource.version, resource.kind)
                .unwrap_or_else(|| {
                    panic!(
                        "no schema for {}/{} {}",
                        resource.group, resource.version, resource.kind
                    )
                });
            for (name, kind_name) in [(&kind.name, kind.kind), (&kind.list_name, kind.list_kind)] {
                let schema = &schemas.definitions[name.as_str()];
                assert_eq!(
                    schema["x-kubernetes-group-version-kind"],
                    json!([{"group": resource.group, "kind": kind_name, "version": resource.version}]),
                    "{name}"
                );
                assert!(
                    schema["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty())
                );
            }
        }
        assert_eq!(schemas.kinds.len(), RESOURCES.len(), "a kind is not served");
        assert!(schemas.kind("apps", "v1", "Nonesuch").is_none());
    }

    #[test]
    fn schemas_use_upstream_names_and_v3_refs_that_all_resolve() {
        let schemas = builtin();
        let pod = &schemas.definitions["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        assert!(pod["properties"]["spec"]["description"].is_string());
        assert!(pod.get("required").is_none());
        assert_eq!(
            schemas.definitions["io.k8s.api.storage.v1.StorageClass"]["required"],
            json!(["provisioner"])
        );
        let list = &schemas.definitions["io.k8s.api.apps.v1.DeploymentList"];
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.Deployment"
        );
        let mut refs = Vec::new();
        for schema in schemas.definitions.values() {
            refs_in(schema, &mut refs);
        }
        assert!(refs.len() > 100);
        for reference in refs {
            assert!(reference.starts_with(V3_REF_PREFIX), "{reference}");
            assert!(
                schemas.definitions.contains_key(ref_name(reference)),
                "{reference} is dangling"
            );
        }
    }
}
