//! Which fields of a JSON object its OpenAPI schema does not declare: the check behind strict decoding and `fieldValidation`.
//!
//! Paths are written as kube-apiserver's strict decoder writes them:
//! `spec.template.spec.containers[0].foo`, map keys joined with `.`.
//! Objects are walked through `properties`, arrays through `items`, maps
//! through `additionalProperties`. A schema of `type: object` that declares
//! neither properties nor additional properties (RawExtension, FieldsV1) or
//! that sets `x-kubernetes-preserve-unknown-fields` holds arbitrary fields,
//! as such Go fields decode anything. Values of the wrong JSON type are left
//! alone: they are a decoding error, not an unknown field.

use serde_json::{Map, Value};

use super::ref_name;

/// Refs followed in a row before a schema counts as unresolvable; real
/// chains are one or two long, so this only stops a cycle.
const MAX_REF_HOPS: usize = 16;
/// Nesting beyond which the walk stops looking; JSON from a request body
/// is nowhere near this deep in practice.
const MAX_DEPTH: usize = 128;

/// The paths of the fields in `object` that `schema` (resolved against
/// `definitions`) does not declare, in the order of the object's keys.
pub fn find_unknown_fields(
    definitions: &Map<String, Value>,
    schema: &Value,
    object: &Value,
) -> Vec<String> {
    drop_unknown_fields(definitions, schema, &mut object.clone())
}

/// Removes from `object` the fields `schema` does not declare, as a
/// non-strict decode into the Go type drops them, and returns their paths.
pub fn drop_unknown_fields(
    definitions: &Map<String, Value>,
    schema: &Value,
    object: &mut Value,
) -> Vec<String> {
    let mut walk = Walk {
        definitions,
        path: String::new(),
        unknown: Vec::new(),
    };
    walk.value(schema, object, 0);
    walk.unknown
}

struct Walk<'d> {
    definitions: &'d Map<String, Value>,
    /// The path of the value being walked; extended and cut back in place.
    path: String,
    unknown: Vec<String>,
}

impl<'d> Walk<'d> {
    /// Follows `$ref`s and the `allOf: [{$ref}]` wrappers OpenAPI v3 puts
    /// around described refs, to the schema that says what a value holds.
    /// `None` when a ref leads nowhere: nothing is known, so nothing is
    /// called unknown.
    fn resolve<'s>(&self, mut schema: &'s Value) -> Option<&'s Value>
    where
        'd: 's,
    {
        for _ in 0..MAX_REF_HOPS {
            if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
                schema = self.definitions.get(ref_name(reference))?;
                continue;
            }
            let declares_shape = ["properties", "additionalProperties", "items"]
                .iter()
                .any(|key| schema.get(key).is_some());
            match schema.get("allOf").and_then(Value::as_array) {
                Some(all_of) if all_of.len() == 1 && !declares_shape => schema = &all_of[0],
                _ => return Some(schema),
            }
        }
        None
    }

    fn value<'s>(&mut self, schema: &'s Value, value: &mut Value, depth: usize)
    where
        'd: 's,
    {
        if depth > MAX_DEPTH {
            return;
        }
        let Some(schema) = self.resolve(schema) else {
            return;
        };
        match value {
            Value::Object(fields) => self.object(schema, fields, depth),
            Value::Array(items) => {
                let Some(item_schema) = schema.get("items") else {
                    return;
                };
                for (index, item) in items.iter_mut().enumerate() {
                    let length = self.path.len();
                    self.path.push_str(&format!("[{index}]"));
                    self.value(item_schema, item, depth + 1);
                    self.path.truncate(length);
                }
            }
            _ => {}
        }
    }

    fn object<'s>(&mut self, schema: &'s Value, fields: &mut Map<String, Value>, depth: usize)
    where
        'd: 's,
    {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        if properties.is_none() && additional.is_none() {
            // Free-form: RawExtension, FieldsV1, or anything else declared
            // only as `type: object`.
            return;
        }
        let preserves_unknown = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let additional_schema = additional.filter(|a| a.is_object());
        let additional_allowed = additional == Some(&Value::Bool(true));
        let mut dropped = Vec::new();
        for (key, field) in fields.iter_mut() {
            let length = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(key);
            match properties.and_then(|p| p.get(key)).or(additional_schema) {
                Some(field_schema) => self.value(field_schema, field, depth + 1),
                None if preserves_unknown || additional_allowed => {}
                None => {
                    self.unknown.push(self.path.clone());
                    dropped.push(key.clone());
                }
            }
            self.path.truncate(length);
        }
        for key in dropped {
            fields.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::builtin;
    use serde_json::json;

    /// A small hand-written schema set covering each way a schema nests.
    fn definitions() -> Map<String, Value> {
        let definitions = json!({
            "Thing": {
                "type": "object",
                "properties": {
                    "spec": {"description": "the spec", "allOf": [{"$ref": "#/components/schemas/Spec"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ports": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Port"}},
                    "raw": {"$ref": "#/components/schemas/Raw"},
                    "loose": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"inner": {"$ref": "#/components/schemas/Port"}},
                    },
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true},
                    "anything": {"type": "object", "additionalProperties": true},
                    "dangling": {"$ref": "#/components/schemas/Missing"},
                },
            },
            "Spec": {
                "type": "object",
                "properties": {
                    "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"}},
                    "names": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Container": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "image": {"type": "string"}},
            },
            "Port": {"type": "object", "properties": {"number": {"type": "integer"}}},
            "Raw": {"type": "object"},
        });
        let Value::Object(definitions) = definitions else {
            unreachable!()
        };
        definitions
    }

    fn unknown_in(object: Value) -> Vec<String> {
        find_unknown_fields(
            &definitions(),
            &json!({"$ref": "#/components/schemas/Thing"}),
            &object,
        )
    }

    #[test]
    fn unknown_fields_are_found_at_every_depth_with_upstream_paths() {
        let object = json!({
            "spec": {
                "containers": [
                    {"name": "a", "image": "x"},
                    {"name": "b", "foo": 1, "bar": {"deep": true}},
                ],
                "names": ["x", "y"],
                "extra": null,
            },
            "ports": {"http": {"number": 80, "protocol": "TCP"}},
            "top": 1,
        });
        assert_eq!(
            unknown_in(object),
            [
                "ports.http.protocol",
                "spec.containers[1].bar",
                "spec.containers[1].foo",
                "spec.extra",
                "top",
            ]
        );
    }

    #[test]
    fn maps_preserved_and_free_form_fields_hold_anything() {
        let object = json!({
            "labels": {"any-key": "v", "other": "w"},
            "raw": {"kind": "Whatever", "nested": {"a": 1}},
            "free": {"x": {"y": [1, 2]}},
            "anything": {"k": {"deep": 1}},
            "port": "http",
            "dangling": {"who": "knows"},
            "loose": {"kept": 1, "inner": {"number": 1, "typo": 2}},
        });
        assert_eq!(unknown_in(object), ["loose.inner.typo"]);
    }

    #[test]
    fn wrong_types_are_not_unknown_fields() {
        let object = json!({"spec": "not an object", "labels": ["a"], "ports": {"p": 5}});
        assert!(unknown_in(object).is_empty());
    }

    #[test]
    fn dropping_removes_only_the_unknown_fields() {
        let mut object = json!({
            "spec": {"containers": [{"name": "a", "foo": 1}]},
            "labels": {"k": "v"},
            "top": true,
        });
        let dropped = drop_unknown_fields(
            &definitions(),
            &json!({"$ref": "#/components/schemas/Thing"}),
            &mut object,
        );
        assert_eq!(dropped, ["spec.containers[0].foo", "top"]);
        assert_eq!(
            object,
            json!({"spec": {"containers": [{"name": "a"}]}, "labels": {"k": "v"}})
        );
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "uid": "9a1f0c3e-6c1d-4a57-9a55-2b1c1b8f2f11",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "2"},
                "finalizers": ["example.com/keep"],
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                    "uid": "7f2f7a4c-1111-2222-3333-444455556666",
                    "controller": true, "blockOwnerDeletion": true,
                }],
                "managedFields": [{
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": "2024-01-02T03:04:05Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"k:{\"name\":\"web\"}": {".": {}}}}}},
                }],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.1}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent",
                        }],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "securityContext": {},
                        "schedulerName": "default-scheduler",
                    },
                },
            },
            "status": {
                "observedGeneration": 3,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [{
                    "type": "Available", "status": "True",
                    "lastUpdateTime": "2024-01-02T03:04:05Z",
                    "lastTransitionTime": "2024-01-02T03:04:05Z",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                }],
            },
        })
    }

    #[test]
    fn a_full_deployment_with_status_and_managed_fields_is_all_known() {
        let mut object = deployment();
        let unknown = builtin()
            .drop_unknown_fields("apps", "v1", "Deployment", &mut object)
            .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(object, deployment());
    }

    #[test]
    fn unknown_fields_in_a_deployment_name_their_full_path() {
        let mut object = deployment();
        object["spec"]["template"]["spec"]["containers"][0]["foo"] = json!("x");
        object["spec"]["bar"] = json!(1);
        object["metadata"]["labelz"] = json!({});
        let unknown = builtin()
            .drop_unknown_fields("apps", "v1", "Deployment", &mut object)
            .unwrap();
        assert_eq!(
            unknown,
            [
                "metadata.labelz",
                "spec.bar",
                "spec.template.spec.containers[0].foo",
            ]
        );
        assert_eq!(object, deployment());
        assert!(
            builtin()
                .drop_unknown_fields("apps", "v1", "Nonesuch", &mut object)
                .is_none()
        );
    }

    #[test]
    fn embedded_raw_objects_hold_any_fields() {
        let mut revision = json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "web-1"},
            "revision": 1,
            "data": {"spec": {"template": {"anything": {"goes": true}}}},
        });
        let unknown = builtin()
            .drop_unknown_fields("apps", "v1", "ControllerRevision", &mut revision)
            .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}
