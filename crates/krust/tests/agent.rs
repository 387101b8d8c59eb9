//! One `krust server` that is also a node: its embedded agent runs a Deployment's pods as real containers through a private containerd (offline busybox image, bridge CNI), serves them on pod IPs, restarts a crashing container with backoff, reports a missing image, and removes the containers of deleted pods.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Cluster, wait_for};
use serde_json::Value;

const NODE: &str = "krust-e2e-node";

/// A node cluster whose runtime leftovers (containerd's shims and
/// containers, mounts, the bridge) are removed when dropped, even when the
/// test failed half way.
struct NodeCluster {
    cluster: Option<Cluster>,
    bridge: &'static str,
    args: Vec<String>,
}

impl NodeCluster {
    /// Each test its own bridge and pod range, so tests run side by side.
    fn start(bridge: &'static str, cluster_cidr: &'static str) -> NodeCluster {
        Self::start_with(bridge, cluster_cidr, &[])
    }

    fn start_with(bridge: &'static str, cluster_cidr: &'static str, extra: &[&str]) -> NodeCluster {
        let mut args: Vec<String> = [
            "--node-name",
            NODE,
            "--cni-bridge",
            bridge,
            "--cluster-cidr",
            cluster_cidr,
            // Tests run side by side: each kubelet API on a port of its own.
            "--kubelet-port",
            "0",
            // One node: no VXLAN device in the host's namespace.
            "--flannel-backend",
            "host-gw",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
        let cluster = Cluster::start_node(&borrowed);
        NodeCluster {
            cluster: Some(cluster),
            bridge,
            args,
        }
    }

    /// Kills the server (and with it the agent and its containerd, but not
    /// the containers) and starts it again on the same data.
    fn restart(&mut self) {
        let cluster = self.cluster.take().expect("running");
        let dir = cluster.server.stop();
        let borrowed: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.cluster = Some(Cluster::start_node_in(dir, &borrowed));
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("running until dropped")
    }

    fn agent_dir(&self) -> PathBuf {
        self.cluster().server.data_dir().join("agent")
    }

    fn socket(agent_dir: &std::path::Path) -> PathBuf {
        agent_dir.join("containerd-state/containerd.sock")
    }

    /// Waits for the embedded agent's Node to register and be Ready.
    fn wait_until_ready(&self) {
        wait_for(Duration::from_secs(60), "the node Ready", || {
            let ready = self.cluster().run(
                &[
                    "get",
                    "node",
                    NODE,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                &[],
                None,
            );
            let text = String::from_utf8_lossy(&ready.stdout).to_string();
            if text == "True" { Ok(()) } else { Err(text) }
        });
    }

    /// Waits until containerd runs no task (every pod's containers gone).
    fn wait_until_no_containers(&self) {
        wait_for(Duration::from_secs(20), "no containers left", || {
            let tasks = self.tasks();
            if tasks.is_empty() {
                Ok(())
            } else {
                Err(format!("{tasks:?}"))
            }
        });
    }

    /// The ids of the tasks (running containers) containerd holds.
    fn tasks(&self) -> Vec<String> {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(Self::socket(&self.agent_dir()))
            .args(["-n", "k8s.io", "tasks", "ls", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        let Some(cluster) = self.cluster.take() else {
            return;
        };
        let dir = cluster.server.stop();
        let agent_dir = dir.path().join("agent");
        containerd::testing::clean_up_after(&agent_dir, &Self::socket(&agent_dir));
        remove_pod_network(self.bridge);
        drop(dir);
    }
}

/// The bridge, and what `krust agent --cleanup-network` removes (the
/// egress rules' table).
fn remove_pod_network(bridge: &str) {
    let cleaned = Command::new(env!("CARGO_BIN_EXE_krust"))
        .args(["agent", "--cleanup-network", "--flannel-backend", "host-gw"])
        .args(["--cni-bridge", bridge])
        .status();
    // Runs in Drop: report, never panic during an unwinding test.
    if !cleaned.is_ok_and(|status| status.success()) {
        eprintln!("krust agent --cleanup-network failed for {bridge}");
    }
    let _ = Command::new("ip").args(["link", "del", bridge]).status();
}

fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

fn container_status(pod: &Value) -> Value {
    pod["status"]["containerStatuses"][0].clone()
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: IfNotPresent
        env: [{name: GREETING, value: hello}]
        command: [sh, -c, 'mkdir -p /www && echo \"$(GREETING) from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www']
";

#[test]
fn a_deployment_runs_as_real_containers_on_the_server_node() {
    let node = NodeCluster::start("kre2e0", "10.78.0.0/16");
    let cluster = node.cluster();
    node.wait_until_ready();
    let described = cluster.json(&["get", "node", NODE, "-o", "json"]);
    assert_eq!(
        described["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        "true"
    );
    assert!(
        described["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{}",
        described["status"]["nodeInfo"]
    );

    cluster.apply(WEB);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let pods = cluster.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    for pod in pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert_eq!(pod["spec"]["nodeName"], NODE);
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
        let ip = pod["status"]["podIP"].as_str().unwrap();
        assert!(ip.starts_with("10.78.0."), "{ip}");
        let status = container_status(pod);
        assert_eq!(status["ready"], true);
        assert!(
            status["containerID"]
                .as_str()
                .unwrap()
                .starts_with("containerd://")
        );
        // The container serves on its pod IP; $(GREETING) was expanded.
        let page = wait_for(Duration::from_secs(10), "httpd answering", || {
            http_get(&format!("{ip}:8080"), "/index.html").map_err(|e| e.to_string())
        });
        assert!(page.contains(&format!("hello from {name}")), "{page}");
    }
    let first = pods[0]["metadata"]["name"].as_str().unwrap();

    // The kubelet API, through the API server: logs, exec, port-forward.
    let logs = cluster.ok(&["logs", first, "--tail=5"]);
    assert!(logs.is_empty(), "httpd -f logs nothing: {logs:?}");
    let served = cluster.ok(&["exec", first, "--", "cat", "/www/index.html"]);
    assert_eq!(served, format!("hello from {first}\n"));
    // stdin through the websocket protocol kubectl 1.32 speaks...
    let echoed = cluster.ok_with_input(&["exec", "-i", first, "--", "cat"], "piped in\n");
    assert_eq!(echoed, "piped in\n");
    // ...and through SPDY, which kubectl 1.20 speaks.
    let kubectl_1_20 = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/kubectl-1.20/usr/bin/kubectl");
    if kubectl_1_20.is_file() {
        let mut old = Command::new(&kubectl_1_20)
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["exec", "-i", first, "--", "sh", "-c", "cat; echo done"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        old.stdin.take().unwrap().write_all(b"over spdy\n").unwrap();
        let output = old.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "over spdy\ndone\n",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    } else {
        eprintln!("kubectl 1.20 is absent (./x deps unpacks it): SPDY exec not checked");
    }
    let failing = cluster.kubectl(&["exec", first, "--", "sh", "-c", "exit 7"]);
    assert_eq!(
        failing.status.code(),
        Some(7),
        "exec's exit code reaches kubectl"
    );
    let mut forward = cluster
        .kubectl_command(&["port-forward", &format!("pod/{first}"), "18087:8080"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let page = wait_for(
        Duration::from_secs(20),
        "port-forward carrying bytes",
        || http_get("127.0.0.1:18087", "/index.html").map_err(|e| e.to_string()),
    );
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(page.contains(&format!("hello from {first}")), "{page}");
    let described = cluster.ok(&["describe", "pod", first]);
    for event in ["Scheduled", "Created", "Started"] {
        assert!(described.contains(event), "{described}");
    }

    // Resource figures through the node proxy: the Summary API and the
    // Prometheus text metrics-server reads; CPU rates need a second sample.
    let summary_path = format!("/api/v1/nodes/{NODE}/proxy/stats/summary");
    cluster.ok(&["get", "--raw", &summary_path]);
    std::thread::sleep(Duration::from_millis(1100));
    let summary: Value =
        serde_json::from_str(&cluster.ok(&["get", "--raw", &summary_path])).unwrap();
    assert_eq!(summary["node"]["nodeName"], NODE);
    assert!(
        summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{}",
        summary["node"]
    );
    assert!(
        summary["node"]["fs"]["capacityBytes"].as_u64() > Some(0),
        "{}",
        summary["node"]
    );
    assert!(
        summary["node"]["cpu"]["usageNanoCores"].is_u64(),
        "{}",
        summary["node"]
    );
    let web_pod = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pod| pod["podRef"]["name"] == first)
        .unwrap_or_else(|| panic!("{first} in {summary}"));
    let container = &web_pod["containers"][0];
    assert_eq!(container["name"], "httpd");
    assert!(
        container["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{container}"
    );
    assert!(
        container["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0),
        "{container}"
    );
    let resource = cluster.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/metrics/resource"),
    ]);
    assert!(
        resource.contains(&format!("container_memory_working_set_bytes{{container=\"httpd\",namespace=\"default\",pod=\"{first}\"}}")),
        "{resource}"
    );
    let metrics = cluster.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/metrics"),
    ]);
    assert!(metrics.contains("kubelet_running_pods 3\n"), "{metrics}");

    // Deleted pods' containers go; the ReplicaSet's replacements run.
    cluster.ok(&["delete", "pod", first, "--wait=true", "--timeout=60s"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cluster.ok(&["delete", "deployment", "web", "--timeout=60s"]);
    cluster.ok(&[
        "wait",
        "--for=delete",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);
    node.wait_until_no_containers();
}

#[test]
fn crashes_back_off_and_missing_images_are_reported() {
    let node = NodeCluster::start("kre2e1", "10.79.0.0/16");
    let cluster = node.cluster();
    node.wait_until_ready();
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo dying; exit 3']}]
---
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: '127.0.0.1:1/krust/absent:1'}]
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    # tail buffers a line that never ends: memory grows until the limit.
    command: [tail, /dev/zero]
    resources: {limits: {memory: 24Mi}}
",
    );
    // The memory hog is killed by the kernel at its limit: OOMKilled, 137.
    let hog = wait_for(Duration::from_secs(60), "the hog OOMKilled", || {
        let pod = cluster.json(&["get", "pod", "hog", "-o", "json"]);
        let status = container_status(&pod);
        if status["state"]["terminated"].is_object() && pod["status"]["phase"] == "Failed" {
            Ok(status)
        } else {
            Err(pod["status"].to_string())
        }
    });
    assert_eq!(hog["state"]["terminated"]["reason"], "OOMKilled", "{hog}");
    assert_eq!(hog["state"]["terminated"]["exitCode"], 137, "{hog}");
    assert_eq!(hog["restartCount"], 0, "{hog}");
    // Exit 3, restarted once at once, then held back 10 s: CrashLoopBackOff.
    let status = wait_for(Duration::from_secs(60), "CrashLoopBackOff", || {
        let pod = cluster.json(&["get", "pod", "crasher", "-o", "json"]);
        let status = container_status(&pod);
        if status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && status["restartCount"].as_i64() >= Some(1)
        {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    });
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    let previous = cluster.ok(&["logs", "crasher", "--previous"]);
    assert_eq!(previous, "dying\n");
    assert_eq!(
        status["lastState"]["terminated"]["reason"], "Error",
        "{status}"
    );
    assert!(
        status["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("restarting failed container=main pod=crasher_default"),
        "{status}"
    );

    let reasons = wait_for(Duration::from_secs(60), "ImagePullBackOff", || {
        let pod = cluster.json(&["get", "pod", "missing", "-o", "json"]);
        let reason = container_status(&pod)["state"]["waiting"]["reason"].clone();
        if reason == "ImagePullBackOff" {
            Ok(reason)
        } else {
            Err(pod["status"].to_string())
        }
    });
    assert_eq!(reasons, "ImagePullBackOff");
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=missing",
    ]);
    assert!(events.contains("Failed to pull image"), "{events}");
    assert!(events.contains("ErrImagePull"), "{events}");

    cluster.ok(&[
        "delete",
        "pod",
        "crasher",
        "missing",
        "hog",
        "--timeout=60s",
    ]);
    node.wait_until_no_containers();
}

#[test]
fn a_restarted_agent_adopts_running_containers() {
    let mut node = NodeCluster::start("kre2e2", "10.80.0.0/16");
    node.wait_until_ready();
    node.cluster().apply(
        "apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}]
",
    );
    node.cluster().ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/steady",
        "--timeout=60s",
    ]);
    let before = node.cluster().json(&["get", "pod", "steady", "-o", "json"]);
    let tasks_before = node.tasks();
    assert_eq!(
        tasks_before.len(),
        2,
        "sandbox and container: {tasks_before:?}"
    );

    // The kubelet port answers health checks to anyone, everything else
    // only to a client certificate of a cluster admin.
    let port = node.cluster().ok(&[
        "get",
        "node",
        NODE,
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    let curl = |path: &str| {
        let output = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(curl("/healthz"), "200");
    assert_eq!(curl("/pods"), "401");
    assert_eq!(curl("/containerLogs/default/steady/main"), "401");

    node.restart();
    node.wait_until_ready();
    // Several relists and syncs later, the same container still runs.
    std::thread::sleep(Duration::from_secs(4));
    let after = node.cluster().json(&["get", "pod", "steady", "-o", "json"]);
    let (before, after) = (container_status(&before), container_status(&after));
    assert_eq!(after["containerID"], before["containerID"], "{after}");
    assert_eq!(after["restartCount"], 0, "{after}");
    assert_eq!(
        after["state"]["running"]["startedAt"],
        before["state"]["running"]["startedAt"]
    );
    let mut tasks_after = node.tasks();
    tasks_after.sort();
    let mut tasks_before = tasks_before;
    tasks_before.sort();
    assert_eq!(tasks_after, tasks_before);

    node.cluster()
        .ok(&["delete", "pod", "steady", "--timeout=60s"]);
    node.wait_until_no_containers();
}

/// A `krust agent` child joined to a control-plane-only server; its
/// containers, mounts and bridge are removed on drop.
struct JoinedAgent {
    child: std::process::Child,
    dir: tempfile::TempDir,
    bridge: &'static str,
}

impl Drop for JoinedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let agent_dir = self.dir.path().join("agent");
        containerd::testing::clean_up_after(&agent_dir, &NodeCluster::socket(&agent_dir));
        remove_pod_network(self.bridge);
    }
}

#[test]
fn krust_agent_joins_with_the_token_and_runs_pods() {
    let cluster = Cluster::start_with(
        tempfile::tempdir().unwrap(),
        &["--cluster-cidr", "10.81.0.0/16"],
    );
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_krust"))
        .args(["agent", "--server", cluster.url(), "--token", common::TOKEN])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--node-name", "joined-node", "--cni-bridge", "kre2e3"])
        .args([
            "--cluster-cidr",
            "10.81.0.0/16",
            "--flannel-backend",
            "host-gw",
        ])
        .args(["--kubelet-port", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let agent = JoinedAgent {
        child,
        dir,
        bridge: "kre2e3",
    };
    wait_for(Duration::from_secs(60), "the joined node Ready", || {
        let output = cluster.run(
            &[
                "get",
                "node",
                "joined-node",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            &[],
            None,
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        if text == "True" { Ok(()) } else { Err(text) }
    });
    let node = cluster.json(&["get", "node", "joined-node", "-o", "json"]);
    assert!(
        node["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_none(),
        "an agent is no control plane"
    );
    // The agent's own credentials, as upstream keeps them.
    let node_kubeconfig = agent.dir.path().join("agent/kubelet.kubeconfig");
    assert!(node_kubeconfig.exists());

    // The kubelet API serves the cluster's admins (the API server's client
    // identity) and refuses other certificates of the cluster's CA, such as
    // the node's own, with 403; no certificate at all gets 401.
    let kubelet_port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap();
    let kubelet_pods = format!("https://127.0.0.1:{kubelet_port}/pods");
    let status_with = |kubeconfig: &std::path::Path| -> String {
        let credentials = tempfile::tempdir().unwrap();
        for (field, file) in [
            ("client-certificate-data", "client.crt"),
            ("client-key-data", "client.key"),
        ] {
            let encoded = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["config", "view", "--raw", "-o"])
                .arg(format!("jsonpath={{.users[0].user.{field}}}"))
                .output()
                .unwrap();
            let decoded = Command::new("base64")
                .arg("-d")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    child.stdin.take().unwrap().write_all(&encoded.stdout)?;
                    child.wait_with_output()
                })
                .unwrap();
            std::fs::write(credentials.path().join(file), decoded.stdout).unwrap();
        }
        let output = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--cert"])
            .arg(credentials.path().join("client.crt"))
            .arg("--key")
            .arg(credentials.path().join("client.key"))
            .arg(&kubelet_pods)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(status_with(&node_kubeconfig), "403");
    assert_eq!(status_with(&cluster.kubeconfig()), "200");
    let anonymous = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &kubelet_pods,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");

    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: pinned}
spec:
  nodeName: joined-node
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}]
",
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/pinned",
        "--timeout=60s",
    ]);
    let pod = cluster.json(&["get", "pod", "pinned", "-o", "json"]);
    assert!(
        pod["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("10.81."),
        "{}",
        pod["status"]
    );
    cluster.ok(&["delete", "pod", "pinned", "--timeout=60s"]);

    // A wrong token is refused with one line and a non-zero exit.
    let refused = Command::new(env!("CARGO_BIN_EXE_krust"))
        .args(["agent", "--server", cluster.url(), "--token", "wrong"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("rejected the token (401)"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn init_containers_share_an_empty_dir_and_unserved_volumes_are_refused() {
    let node = NodeCluster::start("kre2e4", "10.82.0.0/16");
    node.wait_until_ready();
    let cluster = node.cluster();
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo one > /work/log'], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo two >> /work/log'], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'cat /work/log > /work/seen; exec sleep 3600'], volumeMounts: [{name: work, mountPath: /work}]}
---
apiVersion: v1
kind: Pod
metadata: {name: configured}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: settings, configMap: {name: absent}}]
  containers:
  - {name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '3600'], volumeMounts: [{name: settings, mountPath: /etc/settings}]}
",
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shared",
        "--timeout=60s",
    ]);
    let pod = cluster.json(&["get", "pod", "shared", "-o", "json"]);
    let init = pod["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(init.len(), 2);
    for status in init {
        assert_eq!(
            status["state"]["terminated"]["reason"], "Completed",
            "{status}"
        );
    }
    // Init containers ran in order into the shared emptyDir.
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let seen = node
        .agent_dir()
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~empty-dir/work/seen");
    let text = wait_for(Duration::from_secs(10), "the main container's copy", || {
        std::fs::read_to_string(&seen).map_err(|e| e.to_string())
    });
    assert_eq!(text, "one\ntwo\n");

    // A volume kind the agent cannot serve keeps the pod waiting, with an
    // event saying why, instead of running it without its data.
    let events = wait_for(Duration::from_secs(30), "FailedMount", || {
        let events = cluster.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=configured,reason=FailedMount",
            "-o",
            "name",
        ]);
        if events.is_empty() {
            Err(events)
        } else {
            Ok(events)
        }
    });
    assert!(!events.is_empty());
    let pod = cluster.json(&["get", "pod", "configured", "-o", "json"]);
    assert_eq!(
        container_status(&pod)["state"]["waiting"]["reason"],
        "ContainerCreating",
        "{}",
        pod["status"]
    );

    cluster.ok(&["delete", "pod", "shared", "configured", "--timeout=60s"]);
    node.wait_until_no_containers();
    let pod_dir = node.agent_dir().join("pods").join(uid);
    wait_for(Duration::from_secs(10), "the pod's volumes removed", || {
        if pod_dir.exists() {
            Err(format!(
                "{:?}",
                std::fs::read_dir(&pod_dir).map(|d| d.count())
            ))
        } else {
            Ok(())
        }
    });
}

#[test]
fn probes_gate_readiness_and_restart_unhealthy_containers() {
    let node = NodeCluster::start("kre2e5", "10.83.0.0/16");
    node.wait_until_ready();
    let cluster = node.cluster();
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: gated}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    ports: [{name: web, containerPort: 8080}]
    livenessProbe: {httpGet: {path: /healthz, port: web}, periodSeconds: 1, failureThreshold: 2}
",
    );
    // Running but not Ready until the readiness probe passes.
    wait_for(Duration::from_secs(60), "gated running", || {
        let pod = cluster.json(&["get", "pod", "gated", "-o", "json"]);
        if pod["status"]["phase"] == "Running" {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let pod = cluster.json(&["get", "pod", "gated", "-o", "json"]);
    assert_eq!(container_status(&pod)["ready"], false, "{}", pod["status"]);
    cluster.ok(&["exec", "gated", "--", "touch", "/tmp/ready"]);
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/gated",
        "--timeout=30s",
    ]);

    // Nothing listens on 8080: two failed liveness probes restart it.
    let status = wait_for(Duration::from_secs(60), "a liveness restart", || {
        let pod = cluster.json(&["get", "pod", "unhealthy", "-o", "json"]);
        let status = container_status(&pod);
        if status["restartCount"].as_i64() >= Some(1) {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    });
    assert!(status["lastState"]["terminated"].is_object(), "{status}");
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=unhealthy,reason=Unhealthy",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");

    cluster.ok(&["delete", "pod", "gated", "unhealthy", "--timeout=60s"]);
    node.wait_until_no_containers();
}

#[test]
fn config_map_and_secret_volumes_carry_their_data_and_follow_updates() {
    let node = NodeCluster::start("kre2e6", "10.84.0.0/16");
    node.wait_until_ready();
    let cluster = node.cluster();
    cluster.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    cluster.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ]);
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: configured, labels: {tier: web}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: settings, configMap: {name: settings}}
  - {name: creds, secret: {secretName: creds, defaultMode: 0400}}
  - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    volumeMounts:
    - {name: settings, mountPath: /etc/settings}
    - {name: creds, mountPath: /etc/creds}
    - {name: info, mountPath: /etc/info}
",
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/configured",
        "--timeout=60s",
    ]);
    let read = |path: &str| cluster.ok(&["exec", "configured", "--", "cat", path]);
    assert_eq!(read("/etc/settings/mode"), "fast");
    assert_eq!(read("/etc/creds/password"), "hunter2");
    assert_eq!(read("/etc/info/labels"), "tier=\"web\"");
    let mode = cluster.ok(&[
        "exec",
        "configured",
        "--",
        "stat",
        "-L",
        "-c",
        "%a",
        "/etc/creds/password",
    ]);
    assert_eq!(mode.trim(), "400");
    let write = cluster.kubectl(&[
        "exec",
        "configured",
        "--",
        "sh",
        "-c",
        "echo x > /etc/settings/mode",
    ]);
    assert!(!write.status.success(), "configMap volumes are read-only");

    // An update reaches the running container in place.
    cluster.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    wait_for(Duration::from_secs(30), "the updated value", || {
        let value = read("/etc/settings/mode");
        if value == "slow" { Ok(()) } else { Err(value) }
    });

    cluster.ok(&["delete", "pod", "configured", "--timeout=60s"]);
    node.wait_until_no_containers();
}

#[test]
fn lifecycle_hooks_run_after_start_and_before_stop() {
    let node = NodeCluster::start("kre2e7", "10.85.0.0/16");
    node.wait_until_ready();
    let cluster = node.cluster();
    let out = tempfile::tempdir().unwrap();
    cluster.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 5
  volumes: [{{name: out, hostPath: {{path: {}, type: Directory}}}}]
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo started > /out/post-start']}}}}
      preStop: {{exec: {{command: [sh, -c, 'echo stopping > /out/pre-stop']}}}}
",
        out.path().display()
    ));
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/hooked",
        "--timeout=60s",
    ]);
    assert_eq!(
        std::fs::read_to_string(out.path().join("post-start")).unwrap(),
        "started\n"
    );
    assert!(!out.path().join("pre-stop").exists());
    cluster.ok(&["delete", "pod", "hooked", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(out.path().join("pre-stop")).unwrap(),
        "stopping\n"
    );
    node.wait_until_no_containers();
}

#[test]
fn images_come_from_a_docker_io_mirror_and_a_registry_behind_a_pull_secret() {
    let mirror = containerd::testing::LocalRegistry::start(None).unwrap();
    mirror.push_busybox("library/mirrored:v1").unwrap();
    let private = containerd::testing::LocalRegistry::start(Some(("alice", "s3cret"))).unwrap();
    private.push_busybox("team/private:v1").unwrap();
    let config = tempfile::tempdir().unwrap();
    let registries = config.path().join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://{}\"]\n",
            mirror.address
        ),
    )
    .unwrap();
    let node = NodeCluster::start_with(
        "kre2e8",
        "10.86.0.0/16",
        &["--private-registry", registries.to_str().unwrap()],
    );
    node.wait_until_ready();
    let cluster = node.cluster();
    let private_image = format!("{}/team/private:v1", private.address);
    cluster.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: mirrored}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{{name: main, image: 'mirrored:v1', imagePullPolicy: Always, command: [sleep, '3600']}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: denied}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{{name: main, image: '{private_image}', command: [sleep, '3600']}}]
"
    ));
    // docker.io/library/mirrored:v1 exists only in the mirror.
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/mirrored",
        "--timeout=60s",
    ]);
    let pod = cluster.json(&["get", "pod", "mirrored", "-o", "json"]);
    // The image ID names the repository it was pulled from (the content
    // is the local busybox's, so containerd may report either tag).
    let image_id = container_status(&pod)["imageID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image_id.starts_with("docker.io/library/mirrored@sha256:"),
        "{image_id}"
    );
    // Without credentials the private registry refuses the pull.
    wait_for(
        Duration::from_secs(60),
        "the denied pull backing off",
        || {
            let pod = cluster.json(&["get", "pod", "denied", "-o", "json"]);
            let reason = container_status(&pod)["state"]["waiting"]["reason"].clone();
            if reason == "ImagePullBackOff" || reason == "ErrImagePull" {
                Ok(())
            } else {
                Err(pod["status"].to_string())
            }
        },
    );
    // With a pull secret it succeeds.
    cluster.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", private.address),
        "--docker-username=alice",
        "--docker-password=s3cret",
    ]);
    cluster.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: allowed}}
spec:
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{{name: regcred}}]
  containers: [{{name: main, image: '{private_image}', imagePullPolicy: Always, command: [sleep, '3600']}}]
"
    ));
    wait_for(Duration::from_secs(60), "the allowed pod Ready", || {
        let pod = cluster.json(&["get", "pod", "allowed", "-o", "json"]);
        if container_status(&pod)["ready"] == true {
            Ok(())
        } else {
            Err(cluster.ok(&["describe", "pod", "allowed"]))
        }
    });

    cluster.ok(&[
        "delete",
        "pod",
        "mirrored",
        "denied",
        "allowed",
        "--timeout=60s",
    ]);
    node.wait_until_no_containers();
}

#[test]
fn static_pods_run_from_the_manifest_directory_as_mirror_pods() {
    let node = NodeCluster::start("kre2e9", "10.87.0.0/16");
    let cluster = node.cluster();
    node.wait_until_ready();
    let manifests = node.agent_dir().join("pod-manifests");
    let manifest = |message: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: kube-system}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'echo {message}; exec sleep 3600']}}]\n"
        )
    };
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("web.yaml"), manifest("first")).unwrap();
    let mirror_name = format!("web-{NODE}");
    let running = |not_uid: &str| -> Value {
        wait_for(Duration::from_secs(60), "the mirror pod running", || {
            let output = cluster.run(
                &[
                    "get",
                    "pod",
                    "-n",
                    "kube-system",
                    &mirror_name,
                    "-o",
                    "json",
                ],
                &[],
                None,
            );
            let pod: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
            if pod["status"]["phase"] == "Running" && pod["metadata"]["uid"] != not_uid {
                Ok(pod)
            } else {
                Err(format!("{pod}"))
            }
        })
    };
    let first = running("");
    let annotations = &first["metadata"]["annotations"];
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    let hash = annotations["kubernetes.io/config.mirror"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(annotations["kubernetes.io/config.hash"], hash.as_str());
    assert_eq!(first["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(first["metadata"]["ownerReferences"][0]["name"], NODE);
    let logs = cluster.ok(&["logs", "-n", "kube-system", &mirror_name]);
    assert_eq!(logs, "first\n");

    // Deleted through the API, the mirror pod comes back while its file is there.
    let first_uid = first["metadata"]["uid"].as_str().unwrap().to_string();
    cluster.ok(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        &mirror_name,
        "--timeout=60s",
    ]);
    let again = running(&first_uid);
    assert_eq!(
        again["metadata"]["annotations"]["kubernetes.io/config.mirror"],
        hash.as_str()
    );

    // An edited file replaces the pod.
    std::fs::write(manifests.join("web.yaml"), manifest("second")).unwrap();
    let edited = wait_for(Duration::from_secs(60), "the edited static pod", || {
        let pod = running("");
        let now = pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].clone();
        if now != hash.as_str() {
            Ok(pod)
        } else {
            Err(now.to_string())
        }
    });
    let edited_name = edited["metadata"]["name"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(30), "the edited pod's logs", || {
        let logs = cluster.run(&["logs", "-n", "kube-system", &edited_name], &[], None);
        let text = String::from_utf8_lossy(&logs.stdout).to_string();
        if text == "second\n" {
            Ok(())
        } else {
            Err(text)
        }
    });

    // A removed file removes the pod and its containers.
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    wait_for(Duration::from_secs(60), "the mirror pod gone", || {
        let output = cluster.run(
            &["get", "pods", "-n", "kube-system", "-o", "name"],
            &[],
            None,
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        if text.contains(&mirror_name) {
            Err(text)
        } else {
            Ok(())
        }
    });
    node.wait_until_no_containers();
}

#[test]
fn sidecars_security_contexts_cp_attach_and_a_containerd_restart() {
    let node = NodeCluster::start("kre2e10", "10.88.0.0/16");
    let cluster = node.cluster();
    node.wait_until_ready();
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: guarded}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 3000}
  volumes: [{name: shared, emptyDir: {}}]
  initContainers:
  - name: sidecar
    image: busybox
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    command: [sh, -c, 'read up idle < /proc/uptime; echo $up > /shared/sidecar-started; exec sleep 3600']
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'read up idle < /proc/uptime; echo $up > /shared/main-started; while true; do echo tick; sleep 1; done']
    securityContext: {readOnlyRootFilesystem: true}
    volumeMounts: [{name: shared, mountPath: /shared}]
---
apiVersion: v1
kind: Pod
metadata: {name: rootful}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsNonRoot: true}
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: caps}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: netadmin
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    securityContext: {capabilities: {add: [NET_ADMIN]}, seccompProfile: {type: RuntimeDefault}}
    volumeMounts: [{name: data, mountPath: /only-sub, subPath: sub}]
  - name: plain
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    volumeMounts: [{name: data, mountPath: /data}]
",
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/caps", "--timeout=60s"]);
    // An added capability, and its absence.
    cluster.ok(&[
        "exec", "caps", "-c", "netadmin", "--", "ip", "link", "add", "krtest0", "type", "bridge",
    ]);
    let denied = cluster.kubectl(&[
        "exec", "caps", "-c", "plain", "--", "ip", "link", "add", "krtest1", "type", "bridge",
    ]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    // subPath: one container sees only a subdirectory of the volume.
    cluster.ok(&[
        "exec",
        "caps",
        "-c",
        "netadmin",
        "--",
        "sh",
        "-c",
        "echo from-sub > /only-sub/file",
    ]);
    assert_eq!(
        cluster.ok(&["exec", "caps", "-c", "plain", "--", "cat", "/data/sub/file"]),
        "from-sub\n"
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/guarded",
        "--timeout=60s",
    ]);
    let pod = cluster.json(&["get", "pod", "guarded", "-o", "json"]);
    let sidecar = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(sidecar["name"], "sidecar");
    assert_eq!(sidecar["started"], true, "{sidecar}");
    assert!(sidecar["state"]["running"].is_object(), "{sidecar}");
    let started = |file: &str| -> f64 {
        cluster
            .ok(&["exec", "guarded", "-c", "main", "--", "cat", file])
            .trim()
            .parse()
            .unwrap()
    };
    assert!(started("/shared/sidecar-started") <= started("/shared/main-started"));
    assert_eq!(
        cluster.ok(&["exec", "guarded", "-c", "main", "--", "id", "-u"]),
        "1000\n"
    );
    assert_eq!(
        cluster.ok(&["exec", "guarded", "-c", "main", "--", "id", "-g"]),
        "3000\n"
    );
    let read_only = cluster.kubectl(&["exec", "guarded", "-c", "main", "--", "touch", "/x"]);
    assert!(!read_only.status.success());
    assert!(
        String::from_utf8_lossy(&read_only.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&read_only.stderr)
    );

    // runAsNonRoot with an image that runs as root: refused, as upstream.
    let refused = wait_for(
        Duration::from_secs(60),
        "CreateContainerConfigError",
        || {
            let pod = cluster.json(&["get", "pod", "rootful", "-o", "json"]);
            let waiting = container_status(&pod)["state"]["waiting"].clone();
            if waiting["reason"] == "CreateContainerConfigError" {
                Ok(waiting)
            } else {
                Err(pod["status"].to_string())
            }
        },
    );
    assert!(
        refused["message"].as_str().unwrap().starts_with(
            "container has runAsNonRoot and image will run as root (pod: \"rootful_default("
        ),
        "{refused}"
    );

    // kubectl cp both ways (tar in the container).
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("in.txt"), "copied in\n").unwrap();
    cluster.ok(&[
        "cp",
        local.path().join("in.txt").to_str().unwrap(),
        "guarded:/shared/in.txt",
        "-c",
        "main",
    ]);
    assert_eq!(
        cluster.ok(&[
            "exec",
            "guarded",
            "-c",
            "main",
            "--",
            "cat",
            "/shared/in.txt"
        ]),
        "copied in\n"
    );
    let out = local.path().join("out.txt");
    cluster.ok(&[
        "cp",
        "guarded:/shared/in.txt",
        out.to_str().unwrap(),
        "-c",
        "main",
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "copied in\n");

    // kubectl attach streams the running container's output.
    let mut attach = cluster
        .kubectl_command(&["attach", "guarded", "-c", "main"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = attach.stdout.take().unwrap();
    let mut seen = Vec::new();
    let started_reading = std::time::Instant::now();
    let mut buffer = [0u8; 64];
    while !String::from_utf8_lossy(&seen).contains("tick\ntick\n")
        && started_reading.elapsed() < Duration::from_secs(20)
    {
        match stdout.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => seen.extend_from_slice(&buffer[..read]),
        }
    }
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(
        String::from_utf8_lossy(&seen).contains("tick\ntick\n"),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );

    // containerd killed: the agent's supervisor restarts it, the running
    // containers carry on untouched, and new pods start.
    let before =
        container_status(&cluster.json(&["get", "pod", "guarded", "-o", "json"]))["containerID"]
            .clone();
    let socket = NodeCluster::socket(&node.agent_dir());
    let killed = Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("containerd --config {}", node.agent_dir().display()),
        ])
        .status()
        .unwrap();
    assert!(killed.success(), "no containerd of this agent found");
    wait_for(Duration::from_secs(30), "containerd back", || {
        std::os::unix::net::UnixStream::connect(&socket)
            .map(|_| ())
            .map_err(|error| error.to_string())
    });
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: after-restart}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}]
",
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/after-restart",
        "--timeout=60s",
    ]);
    let after = cluster.json(&["get", "pod", "guarded", "-o", "json"]);
    assert_eq!(container_status(&after)["containerID"], before);
    assert_eq!(container_status(&after)["restartCount"], 0);

    cluster.ok(&[
        "delete",
        "pod",
        "guarded",
        "rootful",
        "caps",
        "after-restart",
        "--timeout=60s",
    ]);
    node.wait_until_no_containers();
}
