//! Specification tests for the three patch types, written as tables of (object, patch, expected result).

use serde_json::{Value, json};

use super::*;

struct Case {
    name: &'static str,
    doc: Value,
    patch: Value,
    want: Value,
}

struct ErrorCase {
    name: &'static str,
    doc: Value,
    patch: Value,
    status: u16,
    detail: &'static str,
}

fn check_cases(cases: Vec<Case>, apply: impl Fn(&Value, &Value) -> Result<Value, PatchError>) {
    for case in cases {
        match apply(&case.doc, &case.patch) {
            Ok(got) => assert_eq!(
                got, case.want,
                "{}: got {got:#}\nwant {:#}",
                case.name, case.want
            ),
            Err(err) => panic!("{}: unexpected error {err:?}", case.name),
        }
    }
}

fn check_errors(
    cases: Vec<ErrorCase>,
    apply: impl Fn(&Value, &Value) -> Result<Value, PatchError>,
) {
    for case in cases {
        match apply(&case.doc, &case.patch) {
            Ok(got) => panic!("{}: expected an error, got {got:#}", case.name),
            Err(err) => {
                assert_eq!(err.http_status(), case.status, "{}: {err:?}", case.name);
                assert_eq!(err.detail(), case.detail, "{}", case.name);
            }
        }
    }
}

// ---------------------------------------------------------------- JSON patch

fn deployment_for_json_patch() -> Value {
    json!({
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.14"},
                {"name": "sidecar", "image": "envoy"}
            ]}}
        }
    })
}

#[test]
fn json_patch_operations_apply_in_order() {
    let doc = deployment_for_json_patch();
    let cases = vec![
        Case {
            name: "replace a scalar",
            doc: doc.clone(),
            patch: json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]),
            want: {
                let mut want = doc.clone();
                want["spec"]["replicas"] = json!(5);
                want
            },
        },
        Case {
            name: "add a label, escaping / in the key",
            doc: doc.clone(),
            patch: json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"}]),
            want: {
                let mut want = doc.clone();
                want["metadata"]["labels"]["app.kubernetes.io/name"] = json!("web");
                want
            },
        },
        Case {
            name: "remove a label",
            doc: doc.clone(),
            patch: json!([{"op": "remove", "path": "/metadata/labels/tier"}]),
            want: {
                let mut want = doc.clone();
                want["metadata"]["labels"] = json!({"app": "web"});
                want
            },
        },
        Case {
            name: "append with - and insert by index",
            doc: json!({"list": ["a", "c"]}),
            patch: json!([
                {"op": "add", "path": "/list/-", "value": "d"},
                {"op": "add", "path": "/list/1", "value": "b"}
            ]),
            want: json!({"list": ["a", "b", "c", "d"]}),
        },
        Case {
            name: "negative indices count from the end, as in evanphx/json-patch",
            doc: json!({"list": ["a", "b", "c"]}),
            patch: json!([{"op": "replace", "path": "/list/-1", "value": "z"}]),
            want: json!({"list": ["a", "b", "z"]}),
        },
        Case {
            name: "a passing test guards a replace",
            doc: doc.clone(),
            patch: json!([
                {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.14"},
                {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.15"}
            ]),
            want: {
                let mut want = doc.clone();
                want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.15");
                want
            },
        },
        Case {
            name: "move and copy",
            doc: json!({"a": {"x": 1}, "b": {}}),
            patch: json!([
                {"op": "copy", "from": "/a/x", "path": "/b/y"},
                {"op": "move", "from": "/a", "path": "/c"}
            ]),
            want: json!({"b": {"y": 1}, "c": {"x": 1}}),
        },
        Case {
            name: "null patch is empty",
            doc: doc.clone(),
            patch: Value::Null,
            want: doc.clone(),
        },
    ];
    check_cases(cases, apply_json_patch);
}

#[test]
fn json_patch_failures_match_kube_apiserver() {
    let doc = deployment_for_json_patch();
    let cases = vec![
        ErrorCase {
            name: "failed test",
            doc: doc.clone(),
            patch: json!([
                {"op": "test", "path": "/spec/replicas", "value": 3},
                {"op": "replace", "path": "/spec/replicas", "value": 4}
            ]),
            status: 422,
            detail: "testing value /spec/replicas failed: test failed",
        },
        ErrorCase {
            name: "test against a missing key",
            doc: doc.clone(),
            patch: json!([{"op": "test", "path": "/spec/paused", "value": true}]),
            status: 422,
            detail: "testing value /spec/paused failed: test failed",
        },
        ErrorCase {
            name: "test under a missing parent",
            doc: doc.clone(),
            patch: json!([{"op": "test", "path": "/status/replicas", "value": 1}]),
            status: 422,
            detail: "test operation does not apply: is missing path: /status/replicas: missing value",
        },
        ErrorCase {
            name: "remove a missing key",
            doc: doc.clone(),
            patch: json!([{"op": "remove", "path": "/metadata/annotations"}]),
            status: 422,
            detail: "error in remove for path: '/metadata/annotations': Unable to remove nonexistent key: annotations: missing value",
        },
        ErrorCase {
            name: "replace a missing key",
            doc: doc.clone(),
            patch: json!([{"op": "replace", "path": "/spec/paused", "value": true}]),
            status: 422,
            detail: "replace operation does not apply: doc is missing key: /spec/paused: missing value",
        },
        ErrorCase {
            name: "add under a missing parent",
            doc: doc.clone(),
            patch: json!([{"op": "add", "path": "/metadata/annotations/a", "value": "b"}]),
            status: 422,
            detail: "add operation does not apply: doc is missing path: \"/metadata/annotations/a\": missing value",
        },
        ErrorCase {
            name: "index past the end",
            doc: doc.clone(),
            patch: json!([{"op": "add", "path": "/spec/template/spec/containers/5", "value": {}}]),
            status: 422,
            detail: "error in add for path: '/spec/template/spec/containers/5': Unable to access invalid index: 5: invalid index referenced",
        },
        ErrorCase {
            name: "unknown operation",
            doc: doc.clone(),
            patch: json!([{"op": "frob", "path": "/spec"}]),
            status: 422,
            detail: "Unexpected kind: frob",
        },
        ErrorCase {
            name: "missing path",
            doc: doc.clone(),
            patch: json!([{"op": "add", "value": 1}]),
            status: 422,
            detail: "add operation failed to decode path: missing value",
        },
        ErrorCase {
            name: "patch is not an array",
            doc: doc.clone(),
            patch: json!({"op": "add", "path": "/a", "value": 1}),
            status: 400,
            detail: "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
        },
        ErrorCase {
            name: "operation is not an object",
            doc: doc.clone(),
            patch: json!(["add"]),
            status: 400,
            detail: "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
        },
    ];
    check_errors(cases, apply_json_patch);
}

#[test]
fn json_patch_failure_shows_upstreams_fixed_message() {
    let err = apply_json_patch(
        &json!({"a": 1}),
        &json!([{"op": "test", "path": "/a", "value": 2}]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the server rejected our request due to an error in our request"
    );
    assert_eq!(err.reason(), "Invalid");
}

#[test]
fn json_patch_rejects_too_many_operations() {
    let operations =
        vec![json!({"op": "test", "path": "/a", "value": 1}); MAX_JSON_PATCH_OPERATIONS + 1];
    let err = apply_json_patch(&json!({"a": 1}), &Value::Array(operations)).unwrap_err();
    assert_eq!(err.http_status(), 413);
    assert_eq!(
        err.to_string(),
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
}

// --------------------------------------------------------------- merge patch

#[test]
fn merge_patch_follows_rfc_7386_examples() {
    // RFC 7386 appendix A, restricted to object documents and patches.
    let cases = vec![
        Case {
            name: "replace a member",
            doc: json!({"a": "b"}),
            patch: json!({"a": "c"}),
            want: json!({"a": "c"}),
        },
        Case {
            name: "add a member",
            doc: json!({"a": "b"}),
            patch: json!({"b": "c"}),
            want: json!({"a": "b", "b": "c"}),
        },
        Case {
            name: "null removes",
            doc: json!({"a": "b"}),
            patch: json!({"a": null}),
            want: json!({}),
        },
        Case {
            name: "null removes only that member",
            doc: json!({"a": "b", "b": "c"}),
            patch: json!({"a": null}),
            want: json!({"b": "c"}),
        },
        Case {
            name: "array replaced by a string",
            doc: json!({"a": ["b"]}),
            patch: json!({"a": "c"}),
            want: json!({"a": "c"}),
        },
        Case {
            name: "string replaced by an array",
            doc: json!({"a": "c"}),
            patch: json!({"a": ["b"]}),
            want: json!({"a": ["b"]}),
        },
        Case {
            name: "nested merge and nested delete",
            doc: json!({"a": {"b": "c"}}),
            patch: json!({"a": {"b": "d", "c": null}}),
            want: json!({"a": {"b": "d"}}),
        },
        Case {
            name: "arrays are replaced, never merged",
            doc: json!({"a": [{"b": "c"}]}),
            patch: json!({"a": [1]}),
            want: json!({"a": [1]}),
        },
        Case {
            name: "existing null members are kept",
            doc: json!({"e": null}),
            patch: json!({"a": 1}),
            want: json!({"e": null, "a": 1}),
        },
        Case {
            name: "nulls inside a new member are dropped",
            doc: json!({}),
            patch: json!({"a": {"bb": {"ccc": null}}}),
            want: json!({"a": {"bb": {}}}),
        },
        Case {
            name: "a non-object document becomes the pruned patch",
            doc: json!([1, 2]),
            patch: json!({"a": "b", "c": null}),
            want: json!({"a": "b"}),
        },
        Case {
            name: "null deletes a label, lists replace wholesale",
            doc: json!({
                "metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}
            }),
            patch: json!({
                "metadata": {"labels": {"tier": null}},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}
            }),
            want: json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}
            }),
        },
    ];
    check_cases(cases, apply_merge_patch);
}

#[test]
fn merge_patch_must_be_an_object() {
    let cases = vec![
        ErrorCase {
            name: "null",
            doc: json!({"a": 1}),
            patch: Value::Null,
            status: 400,
            detail: "Invalid JSON Patch",
        },
        ErrorCase {
            name: "string",
            doc: json!({"a": 1}),
            patch: json!("bar"),
            status: 400,
            detail: "Invalid JSON Patch",
        },
    ];
    check_errors(cases, apply_merge_patch);
}

// ---------------------------------------------------- strategic merge patch

fn deployment(spec_extra: Value) -> Value {
    let mut doc = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "nginx:1.14",
                        "env": [{"name": "A", "value": "1"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]
                    }],
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]
                }
            }
        }
    });
    if let (Some(spec), Value::Object(extra)) = (doc["spec"].as_object_mut(), spec_extra) {
        spec.extend(extra);
    }
    doc
}

/// `doc` with the value at `pointer` set, creating the last key if needed.
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key.to_string(), value);
        }
        Some(Value::Array(items)) => {
            let index: usize = key.parse().expect("array index");
            items[index] = value;
        }
        _ => panic!("no container at {parent}"),
    }
    doc
}

struct SmpCase {
    name: &'static str,
    group: &'static str,
    kind: &'static str,
    doc: Value,
    patch: Value,
    want: Value,
}

fn check_smp(cases: Vec<SmpCase>) {
    for case in cases {
        match apply_strategic_merge_patch(&case.doc, &case.patch, case.group, case.kind) {
            Ok(got) => assert_eq!(
                got, case.want,
                "{}: got {got:#}\nwant {:#}",
                case.name, case.want
            ),
            Err(err) => panic!("{}: unexpected error {err:?}", case.name),
        }
    }
}

const CONTAINER: &str = "/spec/template/spec/containers/0";

#[test]
fn strategic_merge_patch_as_kubectl_apply_sends_it() {
    let last_applied = "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}";
    let cases = vec![
        SmpCase {
            name: "image changed and env var added: env keeps A then B, ports kept",
            group: "apps",
            kind: "Deployment",
            doc: deployment(json!({})),
            patch: json!({
                "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
                "spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [{
                        "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                        "env": [{"name": "B", "value": "2"}],
                        "image": "nginx:1.15",
                        "name": "app"
                    }]
                }}}
            }),
            want: {
                let doc = with(
                    deployment(json!({})),
                    "/metadata/annotations",
                    json!({"kubectl.kubernetes.io/last-applied-configuration": last_applied}),
                );
                let doc = with(doc, &format!("{CONTAINER}/image"), json!("nginx:1.15"));
                with(
                    doc,
                    &format!("{CONTAINER}/env"),
                    json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
                )
            },
        },
        SmpCase {
            name: "env var removed from the manifest: $patch delete",
            group: "apps",
            kind: "Deployment",
            doc: with(
                deployment(json!({})),
                &format!("{CONTAINER}/env"),
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            ),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "B"}],
                    "env": [{"$patch": "delete", "name": "A"}],
                    "name": "app"
                }]
            }}}}),
            want: with(
                deployment(json!({})),
                &format!("{CONTAINER}/env"),
                json!([{"name": "B", "value": "2"}]),
            ),
        },
        SmpCase {
            name: "strategy switched to Recreate: $retainKeys clears rollingUpdate",
            group: "apps",
            kind: "Deployment",
            doc: deployment(json!({})),
            patch: json!({"spec": {"strategy": {
                "$retainKeys": ["type"],
                "rollingUpdate": null,
                "type": "Recreate"
            }}}),
            want: with(
                deployment(json!({})),
                "/spec/strategy",
                json!({"type": "Recreate"}),
            ),
        },
        SmpCase {
            name: "a volume switched from emptyDir to configMap: $retainKeys inside a merged item",
            group: "apps",
            kind: "Deployment",
            doc: with(
                deployment(json!({})),
                "/spec/template/spec/volumes",
                json!([{"name": "cfg", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]),
            ),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/volumes": [{"name": "cfg"}, {"name": "data"}],
                "volumes": [{
                    "$retainKeys": ["configMap", "name"],
                    "configMap": {"name": "web-config"},
                    "emptyDir": null,
                    "name": "cfg"
                }]
            }}}}),
            want: with(
                deployment(json!({})),
                "/spec/template/spec/volumes",
                json!([{"name": "cfg", "configMap": {"name": "web-config"}}, {"name": "data", "emptyDir": {}}]),
            ),
        },
        SmpCase {
            name: "tolerations have no merge strategy and are replaced",
            group: "apps",
            kind: "Deployment",
            doc: deployment(json!({})),
            patch: json!({"spec": {"template": {"spec": {
                "tolerations": [{"key": "gpu", "operator": "Exists"}]
            }}}}),
            want: with(
                deployment(json!({})),
                "/spec/template/spec/tolerations",
                json!([{"key": "gpu", "operator": "Exists"}]),
            ),
        },
    ];
    check_smp(cases);
}

#[test]
fn strategic_merge_patch_lists() {
    let pod = |containers: Value| json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
    let cases = vec![
        SmpCase {
            name: "kubectl patch adding a container puts it before the untouched ones",
            group: "",
            kind: "Pod",
            doc: pod(json!([{"name": "patch-demo-ctr", "image": "nginx"}])),
            patch: json!({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}),
            want: pod(json!([
                {"name": "patch-demo-ctr-2", "image": "redis"},
                {"name": "patch-demo-ctr", "image": "nginx"}
            ])),
        },
        SmpCase {
            name: "items merge by key and keep their place",
            group: "",
            kind: "Pod",
            doc: pod(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])),
            patch: json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}),
            want: pod(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}])),
        },
        SmpCase {
            name: "$patch: replace in a list replaces the whole list",
            group: "",
            kind: "Pod",
            doc: pod(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])),
            patch: json!({"spec": {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}}),
            want: pod(json!([{"name": "c", "image": "z"}])),
        },
        SmpCase {
            name: "$setElementOrder keeps server-only items next to their live neighbours",
            group: "",
            kind: "Pod",
            doc: pod(json!([
                {"name": "1", "other": "a"}, {"name": "2", "image": "2"}, {"name": "9"},
                {"name": "3", "image": "3"}, {"name": "4", "image": "4"}
            ])),
            patch: json!({"spec": {"$setElementOrder/containers": [
                {"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}
            ]}}),
            want: pod(json!([
                {"name": "2", "image": "2"}, {"name": "1", "other": "a"}, {"name": "9"},
                {"name": "4", "image": "4"}, {"name": "3", "image": "3"}
            ])),
        },
        SmpCase {
            name: "adding and deleting in one patch places server-only items as upstream does",
            group: "",
            kind: "Pod",
            doc: pod(
                json!([{"name": "1"}, {"name": "2", "other": "b"}, {"name": "4", "other": "c"}]),
            ),
            patch: json!({"spec": {
                "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
                "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}]
            }}),
            want: pod(
                json!([{"name": "2", "other": "b"}, {"name": "4", "other": "c"}, {"name": "3"}]),
            ),
        },
        SmpCase {
            name: "service ports merge by port",
            group: "",
            kind: "Service",
            doc: json!({"spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
            ]}}),
            patch: json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 8081, "name": "metrics"}]}}),
            want: json!({"spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"},
                {"port": 8081, "name": "metrics"}
            ]}}),
        },
        SmpCase {
            name: "node status conditions merge by type",
            group: "",
            kind: "Node",
            doc: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "MemoryPressure", "status": "False"}
            ]}}),
            patch: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            want: json!({"status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "MemoryPressure", "status": "False"}
            ]}}),
        },
        SmpCase {
            name: "ownerReferences merge by uid",
            group: "",
            kind: "ConfigMap",
            doc: json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a", "kind": "X"}]}}),
            patch: json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
            want: json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a", "kind": "X", "controller": true}]}}),
        },
        SmpCase {
            name: "cron job pod template containers merge by name",
            group: "batch",
            kind: "CronJob",
            doc: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "job", "image": "busybox", "args": ["a"]}
            ]}}}}}}),
            patch: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "job", "image": "busybox:1.36"}
            ]}}}}}}),
            want: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "job", "image": "busybox:1.36", "args": ["a"]}
            ]}}}}}}),
        },
        SmpCase {
            name: "node taints have no merge strategy and are replaced",
            group: "",
            kind: "Node",
            doc: json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]}}),
            patch: json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
            want: json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}], "podCIDRs": ["10.0.0.0/24"]}}),
        },
        SmpCase {
            name: "topology spread constraints merge by topologyKey",
            group: "",
            kind: "Pod",
            doc: json!({"spec": {"topologySpreadConstraints": [
                {"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
            ]}}),
            patch: json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}}),
            want: json!({"spec": {"topologySpreadConstraints": [
                {"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}
            ]}}),
        },
        SmpCase {
            name: "daemon set update strategy has no retainKeys: it merges",
            group: "apps",
            kind: "DaemonSet",
            doc: json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}}),
            patch: json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
            want: json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"maxUnavailable": 1}}}}),
        },
    ];
    check_smp(cases);
}

#[test]
fn strategic_merge_patch_primitive_lists() {
    let meta = |finalizers: Value| json!({"metadata": {"name": "x", "finalizers": finalizers}});
    let cases = vec![
        SmpCase {
            name: "finalizers are unioned without duplicates, new ones first",
            group: "",
            kind: "Namespace",
            doc: meta(json!(["a", "b"])),
            patch: json!({"metadata": {"finalizers": ["c", "a"]}}),
            want: meta(json!(["c", "a", "b"])),
        },
        SmpCase {
            name: "$deleteFromPrimitiveList removes finalizers",
            group: "",
            kind: "Namespace",
            doc: meta(json!(["a", "b", "c"])),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
            want: meta(json!(["a", "c"])),
        },
        SmpCase {
            name: "kubectl apply removing one finalizer and adding another",
            group: "",
            kind: "Namespace",
            doc: meta(json!(["1", "2", "3"])),
            patch: json!({"metadata": {
                "$setElementOrder/finalizers": ["1", "2", "4"],
                "$deleteFromPrimitiveList/finalizers": ["3"],
                "finalizers": ["4"]
            }}),
            want: meta(json!(["1", "2", "4"])),
        },
        SmpCase {
            name: "$deleteFromPrimitiveList on an absent list adds nothing",
            group: "",
            kind: "Namespace",
            doc: json!({"metadata": {"name": "x"}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            want: json!({"metadata": {"name": "x"}}),
        },
        SmpCase {
            name: "container args have no strategy and are replaced",
            group: "",
            kind: "Pod",
            doc: json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}),
            patch: json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
            want: json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
        },
    ];
    check_smp(cases);
}

#[test]
fn strategic_merge_patch_maps() {
    let cases = vec![
        SmpCase {
            name: "null deletes a label, other labels merge",
            group: "apps",
            kind: "Deployment",
            doc: deployment(json!({})),
            patch: json!({"metadata": {"labels": {"tier": null, "team": "blue"}}}),
            want: with(
                deployment(json!({})),
                "/metadata/labels",
                json!({"app": "web", "team": "blue"}),
            ),
        },
        SmpCase {
            name: "$patch: replace on a map drops the keys the patch does not name",
            group: "apps",
            kind: "Deployment",
            doc: deployment(json!({})),
            patch: json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "app": "web2"}}}}}),
            want: with(
                deployment(json!({})),
                "/spec/template/metadata/labels",
                json!({"app": "web2"}),
            ),
        },
        SmpCase {
            name: "$patch: delete on a map leaves it empty",
            group: "apps",
            kind: "Deployment",
            doc: deployment(json!({})),
            patch: json!({"metadata": {"labels": {"$patch": "delete"}}}),
            want: with(deployment(json!({})), "/metadata/labels", json!({})),
        },
        SmpCase {
            name: "a replace-strategy field (PodDisruptionBudget selector) is not merged",
            group: "policy",
            kind: "PodDisruptionBudget",
            doc: json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "minAvailable": 1}}),
            patch: json!({"spec": {"selector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}}),
            want: json!({"spec": {"selector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}, "minAvailable": 1}}),
        },
        SmpCase {
            name: "new subtrees drop nulls and directive entries",
            group: "",
            kind: "ConfigMap",
            doc: json!({"metadata": {"name": "c"}}),
            patch: json!({"data": {"a": "1", "b": null}, "binaryData": {"$patch": "delete"}}),
            want: json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
        },
        SmpCase {
            name: "null patch is empty",
            group: "",
            kind: "ConfigMap",
            doc: json!({"data": {"a": "1"}}),
            patch: Value::Null,
            want: json!({"data": {"a": "1"}}),
        },
    ];
    check_smp(cases);
}

#[test]
fn kinds_without_metadata_fall_back_to_merge_patch() {
    assert!(supports_strategic_merge("apps", "Deployment"));
    assert!(supports_strategic_merge("", "ConfigMap"));
    assert!(!supports_strategic_merge("example.com", "Widget"));
    assert!(!supports_strategic_merge("", "Deployment"));

    let doc = json!({"spec": {"items": [{"name": "a", "v": 1}], "keep": true}});
    let patch = json!({"spec": {"items": [{"name": "b"}]}});
    let got = apply_strategic_merge_patch(&doc, &patch, "example.com", "Widget").unwrap();
    assert_eq!(
        got,
        json!({"spec": {"items": [{"name": "b"}], "keep": true}})
    );
}

#[test]
fn strategic_merge_patch_failures_match_kube_apiserver() {
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
    let apply_to_pod =
        |doc: &Value, patch: &Value| apply_strategic_merge_patch(doc, patch, "", "Pod");
    let cases = vec![
        ErrorCase {
            name: "patch is not an object",
            doc: pod.clone(),
            patch: json!([1]),
            status: 400,
            detail: "json: cannot unmarshal array into Go value of type map[string]interface {}",
        },
        ErrorCase {
            name: "list item without its merge key",
            doc: pod.clone(),
            patch: json!({"spec": {"containers": [{"image": "y"}]}}),
            status: 500,
            detail: "map: map[image:y] does not contain declared merge key: name",
        },
        ErrorCase {
            name: "$retainKeys that is not a list",
            doc: pod.clone(),
            patch: json!({"spec": {"$retainKeys": "containers"}}),
            status: 400,
            detail: "invalid patch format of retainKeys",
        },
        ErrorCase {
            name: "patch sets a key missing from $retainKeys",
            doc: pod.clone(),
            patch: json!({"spec": {"$retainKeys": ["containers"], "hostname": "h"}}),
            status: 400,
            detail: "invalid patch format of retainKeys",
        },
        ErrorCase {
            name: "$setElementOrder without a field name",
            doc: pod.clone(),
            patch: json!({"spec": {"$setElementOrder": []}}),
            status: 400,
            detail: "invalid patch format of setElementOrder list",
        },
        ErrorCase {
            name: "$deleteFromPrimitiveList without a field name",
            doc: pod.clone(),
            patch: json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
            status: 400,
            detail: "invalid patch format of primitive list",
        },
        ErrorCase {
            name: "patch list out of $setElementOrder order",
            doc: pod.clone(),
            patch: json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}]
            }}),
            status: 500,
            detail: "The order in patch list:\n[map[name:b] map[name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n",
        },
        ErrorCase {
            name: "$patch: merge in a list",
            doc: pod.clone(),
            patch: json!({"spec": {"containers": [{"$patch": "merge"}]}}),
            status: 500,
            detail: "merging lists cannot yet be specified in the patch",
        },
        ErrorCase {
            name: "unknown $patch on a map",
            doc: pod.clone(),
            patch: json!({"spec": {"$patch": "frob"}}),
            status: 500,
            detail: "unknown patch type: frob in map: map[$patch:frob]",
        },
        ErrorCase {
            name: "list of lists in a merging list",
            doc: json!({"metadata": {"finalizers": [["a"]]}}),
            patch: json!({"metadata": {"finalizers": [["b"]]}}),
            status: 422,
            detail: "lists of lists are not supported",
        },
        ErrorCase {
            name: "mixed element types in a merging list",
            doc: json!({"metadata": {"finalizers": ["a"]}}),
            patch: json!({"metadata": {"finalizers": [1]}}),
            status: 500,
            detail: "list element types are not identical: [[a] [1]]",
        },
    ];
    check_errors(cases, apply_to_pod);
}

#[test]
fn deeply_nested_patches_are_refused_not_overflowed() {
    let mut patch = json!("leaf");
    for _ in 0..(MAX_PATCH_DEPTH + 10) {
        patch = json!({ "a": patch });
    }
    let doc = json!({"a": {}});
    for result in [
        apply_strategic_merge_patch(&doc, &patch, "", "ConfigMap"),
        apply_merge_patch(&doc, &patch),
        apply_json_patch(&doc, &json!([{"op": "add", "path": "/b", "value": patch}])),
    ] {
        assert_eq!(result.unwrap_err().http_status(), 400);
    }
}
