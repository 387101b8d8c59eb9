//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`): what a create, update or patch does with fields its kind's schema does not declare.
//!
//! As kube-apiserver: unknown fields are never stored (a non-strict decode
//! into the Go type drops them). `Strict` fails the request with 400
//! BadRequest naming every such field, `Warn` (the default when the
//! parameter is absent) answers with one `Warning` header per field, and
//! `Ignore` drops them silently. Any other value is refused like upstream's
//! options validation, with 422 Invalid.
//!
//! Upstream never stores an unknown field, so on update and patch every
//! unknown field of the result came with the request. Objects krust stored
//! before it validated fields may hold some; those are dropped without
//! failing or warning, so such an object stays writable.

use std::collections::{HashMap, HashSet};

use api::resources::Resource;
use api::validation::{FieldError, go_quote, invalid_status};
use serde_json::Value;

use crate::status::ApiError;

/// The write an object arrived with; upstream words its errors per verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Create,
    Update,
    Patch,
}

impl Write {
    /// The options kind whose validation refuses a bad `fieldValidation`.
    fn options_kind(self) -> &'static str {
        match self {
            Write::Create => "CreateOptions",
            Write::Update => "UpdateOptions",
            Write::Patch => "PatchOptions",
        }
    }
}

/// `fieldValidation` values, as `metav1.FieldValidation*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Ignore,
    Warn,
    Strict,
}

/// Accepted values, sorted as upstream lists them (the empty one included).
const SUPPORTED_VALUES: &[&str] = &["", "Ignore", "Strict", "Warn"];

fn directive(write: Write, query: &HashMap<String, String>) -> Result<Directive, ApiError> {
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Ok(Directive::Warn),
        Some("Ignore") => Ok(Directive::Ignore),
        Some("Strict") => Ok(Directive::Strict),
        Some(other) => Err(ApiError::invalid(invalid_status(
            write.options_kind(),
            "meta.k8s.io",
            "",
            &[FieldError::not_supported(
                "fieldValidation",
                other,
                SUPPORTED_VALUES,
            )],
        ))),
    }
}

/// Drops the fields of `object` that `resource`'s schema does not declare
/// and applies the request's `fieldValidation` to them: the `Warning`
/// texts to answer with, or the error to fail with. Run on the object as
/// it will be stored, after the body is decoded or the patch applied;
/// `stored` is the object it replaces, if any.
pub fn check(
    resource: &Resource,
    write: Write,
    query: &HashMap<String, String>,
    object: &mut Value,
    stored: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    let directive = directive(write, query)?;
    let schemas = api::schema::builtin();
    let (group, version, kind) = (resource.group, resource.version, resource.kind);
    let Some(unknown) = schemas.drop_unknown_fields(group, version, kind, object) else {
        return Ok(Vec::new());
    };
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let already_stored: HashSet<String> = stored
        .and_then(|stored| schemas.drop_unknown_fields(group, version, kind, &mut stored.clone()))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let problems: Vec<String> = unknown
        .iter()
        .filter(|path| !already_stored.contains(*path))
        .map(|path| format!("unknown field {}", go_quote(path)))
        .collect();
    match directive {
        _ if problems.is_empty() => Ok(Vec::new()),
        Directive::Ignore => Ok(Vec::new()),
        Directive::Warn => Ok(problems),
        Directive::Strict => {
            let strict = format!("strict decoding error: {}", problems.join(", "));
            Err(ApiError::bad_request(match write {
                // A patch fails after it is applied, without naming the kind.
                Write::Patch => strict,
                Write::Create | Write::Update => format!(
                    "{kind} in version {version} cannot be handled as a {kind}: {strict}",
                    kind = resource.kind,
                    version = go_quote(resource.version),
                ),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> &'static Resource {
        api::resources::find("apps", "v1", "deployments").unwrap()
    }

    fn query(value: Option<&str>) -> HashMap<String, String> {
        value
            .map(|v| HashMap::from([("fieldValidation".to_string(), v.to_string())]))
            .unwrap_or_default()
    }

    fn with_unknown_fields() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "bogus": true,
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "foo": 1}]}},
            },
        })
    }

    fn cleaned() -> Value {
        let mut object = with_unknown_fields();
        object["spec"].as_object_mut().unwrap().remove("bogus");
        object["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("foo");
        object
    }

    #[test]
    fn strict_refuses_naming_every_unknown_field_like_upstream() {
        let mut object = with_unknown_fields();
        let error = check(
            deployments(),
            Write::Create,
            &query(Some("Strict")),
            &mut object,
            None,
        )
        .unwrap_err();
        assert_eq!((error.code, error.reason), (400, "BadRequest"));
        assert_eq!(
            error.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: \
             unknown field \"spec.bogus\", unknown field \"spec.template.spec.containers[0].foo\""
        );
        let mut object = with_unknown_fields();
        let error = check(
            deployments(),
            Write::Patch,
            &query(Some("Strict")),
            &mut object,
            None,
        )
        .unwrap_err();
        assert_eq!(
            error.message,
            "strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.template.spec.containers[0].foo\""
        );
    }

    #[test]
    fn warn_is_the_default_and_drops_the_fields_with_a_warning_each() {
        for value in [None, Some(""), Some("Warn")] {
            let mut object = with_unknown_fields();
            let warnings = check(
                deployments(),
                Write::Update,
                &query(value),
                &mut object,
                None,
            )
            .unwrap();
            assert_eq!(
                warnings,
                [
                    "unknown field \"spec.bogus\"",
                    "unknown field \"spec.template.spec.containers[0].foo\""
                ]
            );
            assert_eq!(object, cleaned());
        }
    }

    #[test]
    fn ignore_drops_the_fields_silently() {
        let mut object = with_unknown_fields();
        let warnings = check(
            deployments(),
            Write::Patch,
            &query(Some("Ignore")),
            &mut object,
            None,
        )
        .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(object, cleaned());
    }

    #[test]
    fn a_known_object_passes_every_directive_untouched() {
        for value in [None, Some("Strict"), Some("Warn"), Some("Ignore")] {
            let mut object = cleaned();
            let warnings = check(
                deployments(),
                Write::Create,
                &query(value),
                &mut object,
                None,
            )
            .unwrap();
            assert!(warnings.is_empty());
            assert_eq!(object, cleaned());
        }
    }

    #[test]
    fn fields_the_stored_object_already_had_are_dropped_without_complaint() {
        let mut stored = cleaned();
        stored["spec"]["legacy"] = json!("kept from before");
        let mut patched = stored.clone();
        patched["spec"]["typo"] = json!(1);
        let error = check(
            deployments(),
            Write::Patch,
            &query(Some("Strict")),
            &mut patched.clone(),
            Some(&stored),
        )
        .unwrap_err();
        assert_eq!(
            error.message,
            "strict decoding error: unknown field \"spec.typo\""
        );
        let warnings = check(
            deployments(),
            Write::Update,
            &query(None),
            &mut patched,
            Some(&stored),
        )
        .unwrap();
        assert_eq!(warnings, ["unknown field \"spec.typo\""]);
        assert_eq!(patched, cleaned());
        let mut unchanged = stored.clone();
        let warnings = check(
            deployments(),
            Write::Patch,
            &query(Some("Strict")),
            &mut unchanged,
            Some(&stored),
        )
        .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(unchanged, cleaned());
    }

    #[test]
    fn other_values_are_refused_as_invalid_options() {
        let mut object = cleaned();
        let error = check(
            deployments(),
            Write::Create,
            &query(Some("strict")),
            &mut object,
            None,
        )
        .unwrap_err();
        assert_eq!((error.code, error.reason), (422, "Invalid"));
        assert_eq!(
            error.message,
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
        let details = error.details.unwrap();
        assert_eq!(details["kind"], "CreateOptions");
        assert_eq!(details["causes"][0]["field"], "fieldValidation");
    }

    /// What server-side defaulting adds must be in the schema too, or a
    /// later strict patch of the stored object would fail.
    #[test]
    fn defaulted_workloads_and_services_hold_only_known_fields() {
        let pod_spec = json!({
            "containers": [{
                "name": "app", "image": "nginx",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [
                {"name": "c", "configMap": {"name": "c"}},
                {"name": "s", "secret": {"secretName": "s"}},
                {"name": "e", "emptyDir": {}},
            ],
        });
        let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": pod_spec});
        let selector = json!({"matchLabels": {"app": "a"}});
        let objects = [
            ("", "pods", json!({"spec": pod_spec})),
            (
                "apps",
                "deployments",
                json!({"spec": {"selector": selector, "template": template}}),
            ),
            (
                "apps",
                "statefulsets",
                json!({"spec": {"selector": selector, "template": template, "serviceName": "a"}}),
            ),
            (
                "apps",
                "daemonsets",
                json!({"spec": {"selector": selector, "template": template}}),
            ),
            (
                "apps",
                "replicasets",
                json!({"spec": {"selector": selector, "template": template}}),
            ),
            ("batch", "jobs", json!({"spec": {"template": template}})),
            (
                "batch",
                "cronjobs",
                json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
            ),
            (
                "",
                "services",
                json!({"spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}),
            ),
            (
                "",
                "services",
                json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
            ),
            (
                "",
                "replicationcontrollers",
                json!({"spec": {"selector": {"app": "a"}, "template": template}}),
            ),
        ];
        for (group, plural, mut object) in objects {
            let resource = api::resources::find(group, "v1", plural).unwrap();
            object["apiVersion"] = json!(resource.api_version());
            object["kind"] = json!(resource.kind);
            object["metadata"] = json!({"name": "a", "namespace": "default"});
            api::defaults::apply_defaults(
                resource.group,
                resource.version,
                resource.kind,
                &mut object,
            );
            let before = object.clone();
            let result = check(
                resource,
                Write::Create,
                &query(Some("Strict")),
                &mut object,
                None,
            );
            assert_eq!(result, Ok(Vec::new()), "{plural}: {before}");
        }
    }

    #[test]
    fn every_served_kind_accepts_its_own_defaulted_skeleton() {
        for resource in api::resources::RESOURCES {
            let mut object = json!({
                "apiVersion": resource.api_version(),
                "kind": resource.kind,
                "metadata": {
                    "name": "x", "namespace": "default", "uid": "u", "resourceVersion": "1",
                    "generation": 1, "creationTimestamp": "2024-01-02T03:04:05Z",
                    "labels": {"a": "b"}, "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                },
            });
            api::defaults::apply_defaults(
                resource.group,
                resource.version,
                resource.kind,
                &mut object,
            );
            let before = object.clone();
            let warnings = check(
                resource,
                Write::Create,
                &query(Some("Strict")),
                &mut object,
                None,
            )
            .unwrap();
            assert!(warnings.is_empty(), "{}", resource.kind);
            assert_eq!(object, before, "{}", resource.kind);
        }
    }
}
