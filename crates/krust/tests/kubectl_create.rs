//! End to end: kubectl's typed generators (`create deployment`, `expose`, ...), which send protobuf bodies, and YAML bodies over raw HTTPS, against `krust server`.

use common::Cluster;
use serde_json::{Value, json};

mod common;

/// An object as stored, read back with `get -o json`.
fn get(cluster: &Cluster, namespace: &str, resource: &str, name: &str) -> Value {
    cluster.json(&["get", "-n", namespace, resource, name, "-o", "json"])
}

/// A raw request with the bearer token: (status code, JSON body).
fn curl(
    cluster: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let response = cluster.request(method, path, content_type, body);
    (response.code, response.body)
}

#[test]
fn typed_generators_send_protobuf_and_their_objects_are_stored() {
    let server = Cluster::start_api_only();

    // The generators' bodies are protobuf: the request log shows it.
    let created = server.kubectl(&["create", "namespace", "shop", "-v=8"]);
    assert!(created.status.success());
    let log = String::from_utf8_lossy(&created.stderr);
    assert!(
        log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl sent no protobuf body:\n{log}"
    );
    let namespace = get(&server, "", "namespace", "shop");
    assert_eq!(namespace["status"]["phase"], "Active");
    assert_eq!(namespace["metadata"]["name"], "shop");

    server.ok(&[
        "create",
        "-n",
        "shop",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    let config_map = get(&server, "shop", "configmap", "settings");
    assert_eq!(config_map["data"], json!({"mode": "fast"}));

    server.ok(&[
        "create",
        "-n",
        "shop",
        "secret",
        "generic",
        "db",
        "--from-literal=password=s3cr3t",
    ]);
    let secret = get(&server, "shop", "secret", "db");
    assert_eq!(
        secret["data"],
        json!({"password": "czNjcjN0"}),
        "base64 of s3cr3t"
    );
    assert_eq!(secret["type"], "Opaque");

    server.ok(&[
        "create",
        "-n",
        "shop",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
    ]);
    let deployment = get(&server, "shop", "deployment", "web");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["selector"], json!({"matchLabels": {"app": "web"}}));
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert!(spec.get("paused").is_none() && spec.get("minReadySeconds").is_none());
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx:1.25");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["resources"], json!({}));
    assert!(container.get("stdin").is_none() && container.get("tty").is_none());
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(deployment["metadata"]["generation"], 1);

    server.ok(&[
        "expose",
        "-n",
        "shop",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    let service = get(&server, "shop", "service", "web");
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap();
    assert!(
        cluster_ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "{cluster_ip}"
    );
    assert_eq!(service["spec"]["clusterIPs"], json!([cluster_ip]));
    assert_eq!(
        service["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    assert_eq!(service["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(service["spec"]["type"], "ClusterIP");

    server.ok(&[
        "create",
        "-n",
        "shop",
        "service",
        "nodeport",
        "edge",
        "--tcp=5678:8080",
    ]);
    let node_port_service = get(&server, "shop", "service", "edge");
    let port = &node_port_service["spec"]["ports"][0];
    let node_port = port["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    assert_eq!(
        (port["port"].clone(), port["targetPort"].clone()),
        (json!(5678), json!(8080))
    );
    assert!(
        node_port_service["spec"]
            .get("healthCheckNodePort")
            .is_none()
    );

    server.ok(&[
        "create",
        "-n",
        "shop",
        "job",
        "migrate",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    let job = get(&server, "shop", "job", "migrate");
    assert_eq!(job["spec"]["backoffLimit"], 6);
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job_container["command"], json!(["echo", "hi"]));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    server.ok(&[
        "create",
        "-n",
        "shop",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=0 3 * * *",
        "--",
        "date",
    ]);
    let cron_job = get(&server, "shop", "cronjob", "nightly");
    assert_eq!(cron_job["spec"]["schedule"], "0 3 * * *");
    assert_eq!(
        cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["date"])
    );
    assert_eq!(cron_job["spec"]["concurrencyPolicy"], "Allow");

    server.ok(&[
        "create",
        "-n",
        "shop",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    let role = get(&server, "shop", "role", "reader");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    );
    server.ok(&[
        "create",
        "-n",
        "shop",
        "rolebinding",
        "alice-reads",
        "--role=reader",
        "--user=alice",
    ]);
    let binding = get(&server, "shop", "rolebinding", "alice-reads");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}])
    );

    server.ok(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--description=important",
    ]);
    let priority_class = get(&server, "", "priorityclass", "high");
    assert_eq!(priority_class["value"], 1000);
    assert_eq!(priority_class["description"], "important");
    assert!(priority_class.get("globalDefault").is_none());

    server.ok(&[
        "create",
        "-n",
        "shop",
        "quota",
        "small",
        "--hard=cpu=1,memory=1G,pods=2",
    ]);
    let quota = get(&server, "shop", "resourcequota", "small");
    assert_eq!(
        quota["spec"]["hard"],
        json!({"cpu": "1", "memory": "1G", "pods": "2"})
    );

    server.ok(&[
        "create",
        "-n",
        "shop",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=1",
    ]);
    let budget = get(&server, "shop", "pdb", "web");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert_eq!(
        budget["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );

    server.ok(&[
        "create",
        "-n",
        "shop",
        "ingress",
        "front",
        "--rule=shop.example/api=web:80",
    ]);
    let ingress = get(&server, "shop", "ingress", "front");
    assert_eq!(
        ingress["spec"]["rules"][0],
        json!({"host": "shop.example", "http": {"paths": [{
            "path": "/api",
            "pathType": "Exact",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}
        }]}})
    );
}

/// What is left to compare of two stored copies of one object: everything
/// but identity, timestamps and what allocators pick.
fn comparable(mut object: Value) -> Value {
    // A Job's generated selector and labels carry its own uid.
    if let Some(uid) = object["metadata"]["uid"].as_str().filter(|u| !u.is_empty()) {
        let text = object.to_string().replace(uid, "<uid>");
        object = serde_json::from_str(&text).unwrap_or(object);
    }
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for key in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            metadata.remove(key);
        }
    }
    if let Some(spec) = object["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
    object
}

#[test]
fn protobuf_bodies_store_what_the_same_objects_as_json_store() {
    let server = Cluster::start_api_only();
    server.ok(&["create", "namespace", "via-protobuf"]);
    server.ok(&["create", "namespace", "via-json"]);
    // (resource, generator arguments); cluster-scoped ones get a `-json`
    // suffix for the JSON copy.
    let generators: &[(&str, &[&str])] = &[
        (
            "configmap",
            &[
                "configmap",
                "cm",
                "--from-literal=a=b",
                "--from-literal=empty=",
            ],
        ),
        (
            "secret",
            &["secret", "generic", "s", "--from-literal=password=s3cr3t"],
        ),
        (
            "secret",
            &[
                "secret",
                "docker-registry",
                "registry",
                "--docker-username=u",
                "--docker-password=p",
            ],
        ),
        (
            "deployment",
            &[
                "deployment",
                "web",
                "--image=nginx:1.25",
                "--replicas=0",
                "--port=8080",
            ],
        ),
        (
            "job",
            &["job", "once", "--image=busybox", "--", "echo", "hi"],
        ),
        (
            "cronjob",
            &[
                "cronjob",
                "cron",
                "--image=busybox",
                "--schedule=*/5 * * * *",
            ],
        ),
        (
            "service",
            &["service", "nodeport", "edge", "--tcp=5678:8080"],
        ),
        (
            "service",
            &["service", "clusterip", "headless", "--clusterip=None"],
        ),
        (
            "service",
            &["service", "loadbalancer", "balanced", "--tcp=80:http"],
        ),
        (
            "service",
            &[
                "service",
                "externalname",
                "outside",
                "--external-name=example.com",
            ],
        ),
        (
            "role",
            &[
                "role",
                "reader",
                "--verb=get",
                "--resource=pods,deployments.apps",
            ],
        ),
        (
            "rolebinding",
            &[
                "rolebinding",
                "rb",
                "--role=reader",
                "--serviceaccount=via-json:default",
            ],
        ),
        (
            "resourcequota",
            &["quota", "q", "--hard=cpu=1,pods=2", "--scopes=BestEffort"],
        ),
        (
            "pdb",
            &[
                "pdb",
                "budget",
                "--selector=app=web",
                "--max-unavailable=50%",
            ],
        ),
        (
            "ingress",
            &[
                "ingress",
                "front",
                "--rule=a.example/*=web:http,tls=cert",
                "--class=nginx",
            ],
        ),
        ("serviceaccount", &["serviceaccount", "robot"]),
        (
            "priorityclass",
            &[
                "priorityclass",
                "low",
                "--value=10",
                "--preemption-policy=Never",
            ],
        ),
        (
            "clusterrole",
            &[
                "clusterrole",
                "viewer",
                "--verb=get",
                "--non-resource-url=/logs/*",
            ],
        ),
        (
            "clusterrolebinding",
            &[
                "clusterrolebinding",
                "crb",
                "--clusterrole=viewer",
                "--group=devs",
            ],
        ),
    ];
    let cluster_scoped = ["priorityclass", "clusterrole", "clusterrolebinding"];
    for (resource, arguments) in generators {
        let name_index = match arguments[0] {
            "secret" | "service" => 2,
            _ => 1,
        };
        let name = arguments[name_index];
        let namespaced = !cluster_scoped.contains(resource);
        server.ok(&[&["create", "-n", "via-protobuf"][..], arguments].concat());
        // The same generator's object as JSON (`-o json` prints it; `create
        // -f` sends it as JSON).
        let printed = server.ok(&[
            &["create", "-n", "via-json", "--dry-run=client", "-o", "json"][..],
            arguments,
        ]
        .concat());
        let mut object: Value = serde_json::from_str(&printed).unwrap();
        let json_name = if namespaced {
            name.to_string()
        } else {
            format!("{name}-json")
        };
        object["metadata"]["name"] = json!(json_name);
        server.ok_with_input(
            &["create", "-n", "via-json", "-f", "-"],
            &object.to_string(),
        );
        let (protobuf_namespace, json_namespace) = if namespaced {
            ("via-protobuf", "via-json")
        } else {
            ("", "")
        };
        let from_protobuf = get(&server, protobuf_namespace, resource, name);
        let from_json = get(&server, json_namespace, resource, &json_name);
        assert_eq!(
            comparable(from_protobuf),
            comparable(from_json),
            "kubectl create {arguments:?}"
        );
    }
}

#[test]
fn yaml_bodies_are_read_and_undecodable_bodies_refused() {
    let server = Cluster::start_api_only();
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {app: web}\ndata:\n  port: \"8080\"\n";
    let (code, created) = curl(
        &server,
        "POST",
        configmaps,
        "application/yaml",
        yaml.as_bytes(),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["data"], json!({"port": "8080"}));
    let stored = get(&server, "default", "configmap", "settings");
    assert_eq!(stored["metadata"]["labels"], json!({"app": "web"}));

    let resource_version = stored["metadata"]["resourceVersion"].as_str().unwrap();
    let replacement = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  resourceVersion: \"{resource_version}\"\ndata:\n  port: \"9090\"\n"
    );
    let (code, replaced) = curl(
        &server,
        "PUT",
        &format!("{configmaps}/settings"),
        "application/yaml; charset=utf-8",
        replacement.as_bytes(),
    );
    assert_eq!(code, 200, "{replaced}");
    assert_eq!(
        get(&server, "default", "configmap", "settings")["data"],
        json!({"port": "9090"})
    );

    let refused: [(&str, &[u8], u16, &str); 5] = [
        (
            "application/yaml",
            b"metadata: {name: broken\n",
            400,
            "BadRequest",
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"{\"metadata\":{}}",
            400,
            "BadRequest",
        ),
        // The envelope's type meta claims 127 bytes that are not there.
        (
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\x0a\x7f",
            400,
            "BadRequest",
        ),
        // A ConfigMap whose data map entry is cut short.
        (
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x04\x12\x02\x0a\x05",
            400,
            "BadRequest",
        ),
        (
            "text/plain",
            b"{\"metadata\":{\"name\":\"plain\"}}",
            415,
            "UnsupportedMediaType",
        ),
    ];
    for (content_type, body, expected_code, reason) in refused {
        let (code, status) = curl(&server, "POST", configmaps, content_type, body);
        assert_eq!(
            (code, status["reason"].as_str()),
            (expected_code, Some(reason)),
            "{content_type} {}: {status}",
            String::from_utf8_lossy(body)
        );
    }
    // Nothing from the refused requests was stored.
    let names = server.ok(&["get", "configmaps", "-o", "name"]);
    assert_eq!(names, "configmap/settings\n");
}
