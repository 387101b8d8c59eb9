//! End to end with the real kubectl: `krust server` on loopback, driven by /usr/bin/kubectl and raw HTTPS, checking what comes back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Cluster, bearer, deployment_manifest};
use serde_json::Value;

mod common;

#[test]
fn reapplying_a_deployment_merges_the_changed_image_and_added_env() {
    let server = Cluster::start();
    assert!(
        server
            .apply(&deployment_manifest(
                "nginx:1.14.2",
                "{name: A, value: \"1\"}"
            ))
            .contains("deployment.apps/web created")
    );
    let out = server.apply(&deployment_manifest(
        "nginx:1.15",
        "{name: A, value: \"1\"}, {name: B, value: \"2\"}",
    ));
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let deployment = server.json(&["get", "deployment", "web", "-o", "json"]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.15");
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(
        container["imagePullPolicy"], "IfNotPresent",
        "defaulted by the server"
    );
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    assert_eq!(deployment["metadata"]["generation"], 2);
    let unchanged = server.apply(&deployment_manifest(
        "nginx:1.15",
        "{name: A, value: \"1\"}, {name: B, value: \"2\"}",
    ));
    assert!(unchanged.contains("unchanged"), "{unchanged}");
}

#[test]
fn get_renders_tables_wide_yaml_jsonpath_and_filters() {
    let server = Cluster::start();
    server.apply(&deployment_manifest(
        "nginx:1.14.2",
        "{name: A, value: \"1\"}",
    ));
    let wide = server.ok(&["get", "deployments", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(wide.lines().nth(1).unwrap().contains("nginx:1.14.2"));
    let yaml = server.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(yaml.contains("kind: Deployment") && yaml.contains("resourceVersion:"));
    assert_eq!(
        server.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    assert_eq!(
        server.ok(&["get", "deploy", "-l", "app=web", "-o", "name"]),
        "deployment.apps/web\n"
    );
    assert_eq!(
        server.ok(&["get", "deploy", "-l", "app notin (web)", "-o", "name"]),
        ""
    );
    assert_eq!(
        server.ok(&[
            "get",
            "ns",
            "--field-selector",
            "metadata.name=kube-system",
            "-o",
            "name"
        ]),
        "namespace/kube-system\n"
    );
    let unsupported = server.fails(&["get", "deploy", "--field-selector", "spec.paused=true"]);
    assert!(
        unsupported.contains("field label not supported: spec.paused"),
        "{unsupported}"
    );
    let namespaces = server.ok(&["get", "namespaces"]);
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(namespace), "{namespaces}");
    }
    let services = server.ok(&["get", "svc", "kubernetes"]);
    assert!(
        services.contains("10.43.0.1") && services.contains("443/TCP"),
        "{services}"
    );
    let resources = server.ok(&["api-resources"]);
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["deployments", "deploy", "apps/v1", "true", "Deployment"]),
        "{resources}"
    );
    assert!(
        server
            .ok(&["api-versions"])
            .lines()
            .any(|l| l == "rbac.authorization.k8s.io/v1")
    );
    let describe = server.ok(&["describe", "deployment", "web"]);
    assert!(
        describe.contains("RollingUpdate") && describe.contains("nginx:1.14.2"),
        "{describe}"
    );
}

#[test]
fn patch_label_annotate_and_edit_change_the_stored_object() {
    let server = Cluster::start();
    server.apply(&deployment_manifest(
        "nginx:1.14.2",
        "{name: A, value: \"1\"}",
    ));
    server.ok(&["patch", "deploy", "web", "-p", "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.16\"}]}}}}"]);
    server.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        "{\"metadata\":{\"labels\":{\"tier\":\"front\"}}}",
    ]);
    server.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        "[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":4}]",
    ]);
    let failed_test = server.fails(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        "[{\"op\":\"test\",\"path\":\"/spec/replicas\",\"value\":9}]",
    ]);
    assert!(
        failed_test.contains("The request is invalid"),
        "{failed_test}"
    );
    server.ok(&["label", "deploy", "web", "env=prod"]);
    server.ok(&["annotate", "deploy", "web", "owner=team-a"]);
    let editor = "sed -i s/replicas:\\ 4/replicas:\\ 5/";
    let edited = server.run(&["edit", "deploy", "web"], &[("KUBE_EDITOR", editor)], None);
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let object = server.json(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(object["spec"]["replicas"], 5);
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.16"
    );
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"], "A",
        "strategic merge kept env"
    );
    assert_eq!(object["metadata"]["labels"]["tier"], "front");
    assert_eq!(object["metadata"]["labels"]["env"], "prod");
    assert_eq!(object["metadata"]["annotations"]["owner"], "team-a");
    let stale = server.fails(&[
        "label",
        "deploy",
        "web",
        "env=dev",
        "--overwrite",
        "--resource-version=1",
    ]);
    assert!(stale.contains("the object has been modified"), "{stale}");
}

#[test]
fn watch_sees_an_update_and_delete_waits_for_removal() {
    let server = Cluster::start();
    server.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: default}\ndata: {a: \"1\"}\n");
    let mut watch = Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "get",
            "configmaps",
            "-w",
            "-o",
            "jsonpath={.data.a}{\"\\n\"}",
            "--request-timeout=20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "1", "the initial state");
    server.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type=merge",
        "-p",
        "{\"data\":{\"a\":\"2\"}}",
    ]);
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "2",
        "the update arrives on the watch"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    server.ok(&["delete", "configmap", "cfg"]);
    server.ok(&["wait", "--for=delete", "configmap/cfg", "--timeout=10s"]);
    let missing = server.fails(&["get", "configmap", "cfg"]);
    assert!(
        missing.contains("configmaps \"cfg\" not found"),
        "{missing}"
    );
}

#[test]
fn bad_input_gets_the_upstream_status() {
    let server = Cluster::start();
    let invalid = server.run(
        &["apply", "-f", "-"],
        &[],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name, namespace: default}\n"),
    );
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        stderr.contains("is invalid") && stderr.contains("a lowercase RFC 1123 subdomain"),
        "{stderr}"
    );
    let missing_namespace = server.run(
        &["apply", "-f", "-"],
        &[],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nope}\n"),
    );
    assert!(
        String::from_utf8_lossy(&missing_namespace.stderr)
            .contains("namespaces \"nope\" not found")
    );

    let url = server.url();
    let (code, status) = server.curl(&[&format!("{url}/api/v1/namespaces")]);
    assert_eq!(
        (code, status["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    let (code, _) = server.curl(&[
        "-H",
        "Authorization: Bearer wrong",
        &format!("{url}/api/v1/namespaces"),
    ]);
    assert_eq!(code, 401);
    let bearer = bearer();
    let token = ["-H", bearer.as_str()];
    let (code, list) = server.curl(&[token[0], token[1], &format!("{url}/api/v1/namespaces")]);
    assert_eq!((code, list["kind"].as_str()), (200, Some("NamespaceList")));
    let (code, _) = server.curl(&[&format!("{url}/readyz")]);
    assert_eq!(code, 200, "health needs no credentials");

    let post = |body: &str, content_type: &str| {
        server.curl(&[
            token[0],
            token[1],
            "-X",
            "POST",
            "-H",
            &format!("Content-Type: {content_type}"),
            "--data-binary",
            body,
            &format!("{url}/api/v1/namespaces/default/configmaps"),
        ])
    };
    let (code, status) = post("{\"metadata\": {\"name\": ", "application/json");
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, status) = post(
        "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}",
        "application/json",
    );
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, status) = post("{}", "text/plain");
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let huge = format!(
        "{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"a\":\"{}\"}}}}",
        "x".repeat(4 * 1024 * 1024)
    );
    let huge_file = server.server.data_dir().join("huge.json");
    std::fs::write(&huge_file, huge).unwrap();
    let (code, status) = post(&format!("@{}", huge_file.display()), "application/json");
    assert_eq!(
        (code, status["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
    let (code, status) = post("{\"metadata\":{\"name\":\"dup\"}}", "application/json");
    assert_eq!(code, 201, "{status}");
    let (code, status) = post("{\"metadata\":{\"name\":\"dup\"}}", "application/json");
    assert_eq!(
        (code, status["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    assert_eq!(status["message"], "configmaps \"dup\" already exists");
    // Nothing from the refused requests was stored.
    let names = server.ok(&["get", "configmaps", "-o", "name"]);
    assert_eq!(names, "configmap/dup\n");
}

#[test]
fn the_server_reuses_its_certificates_and_data_after_a_restart() {
    let server = Cluster::start();
    server.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: default}\ndata: {a: \"1\"}\n");
    let ca_before = std::fs::read(server.server.data_dir().join("tls/ca.crt")).unwrap();
    let dir = server.server.stop();
    let restarted = Cluster::start_in(dir);
    assert_eq!(
        std::fs::read(restarted.server.data_dir().join("tls/ca.crt")).unwrap(),
        ca_before
    );
    assert_eq!(
        restarted.ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.a}"]),
        "1"
    );
}

#[test]
fn scale_and_service_addresses_behave_like_upstream() {
    let server = Cluster::start();
    server.apply(&deployment_manifest(
        "nginx:1.14.2",
        "{name: A, value: \"1\"}",
    ));
    assert!(
        server
            .ok(&["scale", "deploy", "web", "--replicas=7"])
            .contains("scaled")
    );
    assert_eq!(
        server.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );
    let scale = server.json(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]);
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(7))
    );
    assert_eq!(scale["status"]["selector"], "app=web");

    server.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n",
    );
    let service = server.json(&["get", "svc", "web", "-o", "json"]);
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(
        cluster_ip.starts_with("10.43.") && cluster_ip != "10.43.0.1",
        "{cluster_ip}"
    );
    let node_port = service["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port));
    assert_eq!(service["spec"]["ports"][0]["protocol"], "TCP");
    // Re-applying keeps what was allocated.
    server.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, labels: {x: z1}}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n",
    );
    let again = server.json(&["get", "svc", "web", "-o", "json"]);
    assert_eq!(again["spec"]["clusterIP"], cluster_ip.as_str());
    assert_eq!(again["spec"]["ports"][0]["nodePort"], node_port);
    let taken = server.run(
        &["apply", "-f", "-"],
        &[],
        Some(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: default}}\nspec:\n  clusterIP: {cluster_ip}\n  ports: [{{port: 80}}]\n"
        )),
    );
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(
        stderr.contains("provided IP is already allocated"),
        "{stderr}"
    );
    server.ok(&["delete", "svc", "web"]);
    // The released address can be claimed again.
    server.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: default}}\nspec:\n  clusterIP: {cluster_ip}\n  ports: [{{port: 80}}]\n"
    ));
    let listing = server.ok(&["get", "svc", "other"]);
    assert!(listing.contains(&cluster_ip), "{listing}");
}

#[test]
fn binding_assigns_a_pod_once_and_terminating_namespaces_refuse_new_objects() {
    let server = Cluster::start();
    server.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers: [{name: c, image: busybox}]\n");
    let pod = server.json(&["get", "pod", "p", "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"], "Always",
        "busybox has no tag"
    );
    let bind = |node: &str| {
        server.curl(&[
            "-H",
            &bearer(),
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            "--data-binary",
            &format!("{{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{{\"name\":\"p\"}},\"target\":{{\"kind\":\"Node\",\"name\":\"{node}\"}}}}"),
            &format!("{}/api/v1/namespaces/default/pods/p/binding", server.url()),
        ])
    };
    let (code, status) = bind("node-a");
    assert_eq!((code, status["status"].as_str()), (201, Some("Success")));
    assert_eq!(
        server.ok(&["get", "pod", "p", "-o", "jsonpath={.spec.nodeName}"]),
        "node-a"
    );
    let (code, status) = bind("node-b");
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("already assigned to node \"node-a\"")
    );

    server.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: going}\n");
    // A finalizer holds the namespace in Terminating until it is removed.
    server.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: going, finalizers: [example.com/hold]}\n");
    let deleting = server.kubectl(&["delete", "namespace", "going", "--wait=false"]);
    assert!(deleting.status.success());
    assert_eq!(
        server.ok(&["get", "ns", "going", "-o", "jsonpath={.status.phase}"]),
        "Terminating"
    );
    let refused = server.run(
        &["apply", "-f", "-"],
        &[],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: going}\n"),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("because it is being terminated"),
        "{stderr}"
    );
    // The namespace controller empties it, then it is gone.
    server.ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "going",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    server.ok(&["wait", "--for=delete", "namespace/going", "--timeout=60s"]);
    assert!(server.fails(&["get", "ns", "going"]).contains("NotFound"));
}

#[test]
fn watch_sends_initial_events_then_a_bookmark_and_ends_at_its_timeout() {
    let server = Cluster::start();
    server.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one, namespace: default}\n");
    let started = std::time::Instant::now();
    let output = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-H", &bearer()])
        .arg(format!(
            "{}/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=2",
            server.url()
        ))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "curl failed: the watch did not end by itself"
    );
    assert!(
        elapsed >= std::time::Duration::from_secs(2)
            && elapsed < std::time::Duration::from_secs(10),
        "{elapsed:?}"
    );
    let events: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "one");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, gone) = server.curl(&[
        "-H",
        &bearer(),
        &format!(
            "{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=not-a-number",
            server.url()
        ),
    ]);
    assert_eq!((code, gone["reason"].as_str()), (400, Some("BadRequest")));
}

#[test]
fn the_server_runs_on_a_real_etcd() {
    let etcd = storage::etcd_process::EtcdProcess::start(None).unwrap();
    let server = Cluster::start_with(
        tempfile::tempdir().unwrap(),
        &["--datastore-endpoint", &etcd.endpoint()],
    );
    server.apply(&deployment_manifest(
        "nginx:1.14.2",
        "{name: A, value: \"1\"}",
    ));
    server.apply(&deployment_manifest(
        "nginx:1.15",
        "{name: A, value: \"1\"}",
    ));
    assert_eq!(
        server.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}"
        ]),
        "nginx:1.15 2"
    );
    assert!(
        server
            .ok(&["get", "ns", "-o", "name"])
            .contains("namespace/kube-system")
    );
}

#[test]
fn diff_previews_changes_and_delete_honours_each_cascade() {
    let server = Cluster::start();
    server.apply(&deployment_manifest("nginx:1.14.2", ""));
    let same = server.kubectl_with_input(
        &["diff", "-f", "-"],
        &deployment_manifest("nginx:1.14.2", ""),
    );
    assert_eq!(
        (same.status.code(), same.stdout.is_empty()),
        (Some(0), true),
        "no changes: {}",
        String::from_utf8_lossy(&same.stderr)
    );
    let changed =
        server.kubectl_with_input(&["diff", "-f", "-"], &deployment_manifest("nginx:1.15", ""));
    let diff = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{diff}");
    assert!(diff.contains("-        image: nginx:1.14.2"), "{diff}");
    assert!(diff.contains("+        image: nginx:1.15"), "{diff}");
    assert_eq!(
        server.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.14.2",
        "diff is a dry run"
    );

    // The garbage collector finishes what the finalizers started: orphan
    // keeps the dependent without its reference, foreground deletes it
    // before the owner.
    for cascade in ["orphan", "foreground"] {
        let owner = format!("cascade-{cascade}");
        server.ok(&["create", "configmap", &owner, "--from-literal=a=b"]);
        let uid = server.ok(&["get", "configmap", &owner, "-o", "jsonpath={.metadata.uid}"]);
        server.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {owner}-child\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}, blockOwnerDeletion: true}}]\n"
        ));
        server.ok(&[
            "delete",
            "configmap",
            &owner,
            &format!("--cascade={cascade}"),
            "--timeout=60s",
        ]);
        assert!(
            server
                .fails(&["get", "configmap", &owner])
                .contains("NotFound")
        );
        let child = format!("configmap/{owner}-child");
        if cascade == "orphan" {
            let left = server.json(&["get", &child, "-o", "json"]);
            assert!(left["metadata"]["ownerReferences"].is_null(), "{left}");
        } else {
            server.ok(&["wait", "--for=delete", &child, "--timeout=60s"]);
        }
    }
    server.ok(&[
        "create",
        "configmap",
        "cascade-background",
        "--from-literal=a=b",
    ]);
    server.ok(&[
        "delete",
        "configmap",
        "cascade-background",
        "--cascade=background",
    ]);
    assert!(
        server
            .fails(&["get", "configmap", "cascade-background"])
            .contains("NotFound")
    );
}

#[test]
fn pods_on_a_node_are_deleted_gracefully_and_unscheduled_ones_at_once() {
    let server = Cluster::start();
    let pod = |name: &str, node: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  nodeName: \"{node}\"\n  terminationGracePeriodSeconds: 45\n  containers: [{{name: app, image: nginx:1.25}}]\n"
        )
    };
    server.apply(&pod("floating", ""));
    server.ok(&["delete", "pod", "floating", "--wait=false"]);
    assert!(
        server
            .fails(&["get", "pod", "floating"])
            .contains("NotFound")
    );

    server.apply(&pod("running", "node-1"));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    server.ok(&["delete", "pod", "running", "--wait=false"]);
    let marked = server.json(&["get", "pod", "running", "-o", "json"]);
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 45);
    let deadline = marked["metadata"]["deletionTimestamp"].as_str().unwrap();
    let table = server.ok(&["get", "pod", "running"]);
    assert!(table.contains("Terminating"), "{table}");
    // A shorter grace period moves the deadline forward; a longer one does not.
    let delete_within = |seconds: u32| {
        let grace = format!("--grace-period={seconds}");
        server.ok(&["delete", "pod", "running", "--wait=false", &grace]);
    };
    delete_within(5);
    let shortened = server.json(&["get", "pod", "running", "-o", "json"]);
    assert_eq!(shortened["metadata"]["deletionGracePeriodSeconds"], 5);
    assert!(shortened["metadata"]["deletionTimestamp"].as_str().unwrap() < deadline);
    delete_within(60);
    let kept = server.json(&["get", "pod", "running", "-o", "json"]);
    assert_eq!(kept["metadata"]["deletionGracePeriodSeconds"], 5);
    let stamp = kept["metadata"]["deletionTimestamp"].as_str().unwrap();
    let expected_after = before + 5;
    assert!(
        stamp >= api_time(expected_after).as_str(),
        "{stamp} should be about now + 5 s"
    );
    // What the kubelet sends once the containers are gone.
    server.ok(&["delete", "pod", "running", "--grace-period=0", "--force"]);
    assert!(
        server
            .fails(&["get", "pod", "running"])
            .contains("NotFound")
    );
}

/// RFC 3339 in UTC, as the API writes times.
fn api_time(unix_seconds: i64) -> String {
    let output = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{unix_seconds}"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}
