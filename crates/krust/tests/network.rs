//! Two hosts, each in a network namespace of its own joined by a LAN bridge like separate machines: `krust server` on one, `krust agent` on the other, real containers on both; pods reach pods and nodes reach pods across hosts over VXLAN and over host-gw routes, without NAT.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{TOKEN, wait_for};
use serde_json::Value;

/// A network namespace this test made; deleted (with every link, route and
/// netfilter rule inside) when dropped.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Netns {
        // A namespace left by an earlier, killed run of this process id.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let netns = Netns(name);
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// A command run inside the namespace. Only the network namespace
    /// changes: `ip netns exec` would also remount /sys, hiding the cgroup
    /// mount runc needs.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.0))
            .arg(program);
        command
    }

    fn ip(&self, args: &[&str]) {
        run_ok(self.command("ip").args(args));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A host: a namespace on the LAN with one address, and the krust process
/// (server or agent) running in it with its own data dir.
struct Host {
    netns: Netns,
    address: String,
    data_dir: tempfile::TempDir,
    process: Option<Child>,
}

impl Host {
    fn agent_dir(&self) -> PathBuf {
        self.data_dir.path().join("agent")
    }

    fn start(&mut self, args: &[&str]) {
        let log = std::fs::File::create(self.data_dir.path().join("krust.log")).unwrap();
        let child = self
            .netns
            .command(env!("CARGO_BIN_EXE_krust"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--node-ip", &self.address])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("krust.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let agent_dir = self.agent_dir();
        containerd::testing::clean_up_after(
            &agent_dir,
            &agent_dir.join("containerd-state/containerd.sock"),
        );
    }
}

/// The LAN and its hosts: `server` runs `krust server` (a node too),
/// `worker` runs `krust agent`, `outside` runs nothing of krust's.
struct TwoHosts {
    server: Host,
    worker: Host,
    outside: Netns,
    _lan: Netns,
}

const SERVER_NODE: &str = "node-server";
const WORKER_NODE: &str = "node-worker";

impl TwoHosts {
    fn start(tag: &str, backend: &str) -> TwoHosts {
        let prefix = format!("kn{}{tag}", std::process::id() % 100_000);
        let lan = Netns::create(format!("{prefix}-lan"));
        lan.ip(&["link", "add", "lan0", "type", "bridge"]);
        lan.ip(&["link", "set", "lan0", "up"]);
        let attach = |index: u8, name: &str| -> (Netns, String) {
            let netns = Netns::create(format!("{prefix}-{name}"));
            let outer = format!("{prefix}{index}");
            run_ok(Command::new("ip").args([
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &netns.0,
            ]));
            run_ok(Command::new("ip").args(["link", "set", &outer, "netns", &lan.0]));
            lan.ip(&["link", "set", &outer, "master", "lan0", "up"]);
            let address = format!("192.168.77.{index}");
            netns.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            netns.ip(&["link", "set", "eth0", "up"]);
            // The hosts' "internet": the default route has to exist for
            // egress, as on any machine.
            netns.ip(&["route", "add", "default", "via", "192.168.77.254"]);
            (netns, address)
        };
        let (server_ns, server_ip) = attach(1, "a");
        let (worker_ns, worker_ip) = attach(2, "b");
        let (outside, _) = attach(3, "c");
        let mut server = Host {
            netns: server_ns,
            address: server_ip.clone(),
            data_dir: tempfile::tempdir().unwrap(),
            process: None,
        };
        server.start(&[
            "server",
            "--token",
            TOKEN,
            "--node-name",
            SERVER_NODE,
            "--flannel-backend",
            backend,
        ]);
        let kubeconfig = server.data_dir.path().join("admin.kubeconfig");
        wait_for(Duration::from_secs(60), "the server serving", || {
            if kubeconfig.exists() {
                Ok(())
            } else {
                Err(server.log())
            }
        });
        let mut worker = Host {
            netns: worker_ns,
            address: worker_ip,
            data_dir: tempfile::tempdir().unwrap(),
            process: None,
        };
        let url = format!("https://{server_ip}:6443");
        worker.start(&[
            "agent",
            "--server",
            &url,
            "--token",
            TOKEN,
            "--node-name",
            WORKER_NODE,
            "--flannel-backend",
            backend,
        ]);
        let hosts = TwoHosts {
            server,
            worker,
            outside,
            _lan: lan,
        };
        for node in [SERVER_NODE, WORKER_NODE] {
            wait_for(Duration::from_secs(90), &format!("{node} Ready"), || {
                let output = hosts.kubectl(&[
                    "get",
                    "node",
                    node,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ]);
                let text = String::from_utf8_lossy(&output.stdout).to_string();
                if text == "True" {
                    Ok(())
                } else {
                    Err(format!(
                        "{text} {}\nserver log: {}\nworker log: {}",
                        String::from_utf8_lossy(&output.stderr),
                        tail(&hosts.server.log()),
                        tail(&hosts.worker.log())
                    ))
                }
            });
        }
        hosts
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.server
            .netns
            .command("kubectl")
            .arg("--kubeconfig")
            .arg(self.server.data_dir.path().join("admin.kubeconfig"))
            .args(args)
            .output()
            .unwrap()
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn apply(&self, manifest: &str) {
        let mut child = self
            .server
            .netns
            .command("kubectl")
            .arg("--kubeconfig")
            .arg(self.server.data_dir.path().join("admin.kubeconfig"))
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits for a pod to run; its IP.
    fn running_pod_ip(&self, name: &str) -> String {
        wait_for(
            Duration::from_secs(90),
            &format!("pod {name} running"),
            || {
                let output = self.kubectl(&["get", "pod", name, "-o", "json"]);
                let pod: Value =
                    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
                let ready = pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                match pod["status"]["podIP"].as_str() {
                    Some(ip) if ready => Ok(ip.to_string()),
                    _ => Err(format!(
                        "{}\nevents: {}\nserver log: {}\nworker log: {}",
                        pod["status"],
                        String::from_utf8_lossy(
                            &self
                                .kubectl(&[
                                    "get",
                                    "events",
                                    "--field-selector",
                                    &format!("involvedObject.name={name}")
                                ])
                                .stdout
                        ),
                        tail(&self.server.log()),
                        tail(&self.worker.log())
                    )),
                }
            },
        )
    }

    /// `wget -qO- URL` run in a pod.
    fn wget_from_pod(&self, pod: &str, url: &str) -> Result<String, String> {
        // busybox wget -T crashes in this image: bound it with timeout instead.
        let output = self.kubectl(&["exec", pod, "--", "timeout", "5", "wget", "-qO-", url]);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

/// busybox httpd reports IPv4 callers as IPv4-mapped IPv6 (`[::ffff:a.b.c.d]`).
fn plain_address(remote_addr: &str) -> String {
    remote_addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_start_matches("::ffff:")
        .to_string()
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `wget -qO- URL` from a host's namespace (busybox on the host).
fn wget_from(netns: &Netns, url: &str) -> Result<String, String> {
    let output = netns
        .command("timeout")
        .args(["5", "busybox", "wget", "-qO-", url])
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A pod on `node` serving its own name at `/` and the caller's address at
/// `/cgi-bin/ip` (busybox httpd sets REMOTE_ADDR for CGI scripts).
fn echo_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: echo}}}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    ports: [{{containerPort: 80, name: http}}]
    command: [sh, -c]
    args:
    - |
      mkdir -p /www/cgi-bin
      echo {name} > /www/index.html
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip
      chmod +x /www/cgi-bin/ip
      exec httpd -f -p 80 -h /www
    readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}
"#
    )
}

fn pods_reach_pods_across_hosts(tag: &str, backend: &str) {
    let hosts = TwoHosts::start(tag, backend);
    hosts.apply(&format!(
        "{}---\n{}",
        echo_pod("echo-server", SERVER_NODE),
        echo_pod("echo-worker", WORKER_NODE)
    ));
    let server_pod_ip = hosts.running_pod_ip("echo-server");
    let worker_pod_ip = hosts.running_pod_ip("echo-worker");
    assert_ne!(
        server_pod_ip.rsplit_once('.').map(|(net, _)| net),
        worker_pod_ip.rsplit_once('.').map(|(net, _)| net),
        "each node hands out its own podCIDR"
    );

    let wide = hosts.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.contains(&worker_pod_ip) && wide.contains(WORKER_NODE),
        "{wide}"
    );

    // Pod to pod, both ways, and the receiver sees the sender's pod IP.
    let greeting = wait_for(Duration::from_secs(30), "pod to pod across hosts", || {
        hosts.wget_from_pod("echo-server", &format!("http://{worker_pod_ip}/"))
    });
    assert_eq!(greeting, "echo-worker");
    assert_eq!(
        hosts
            .wget_from_pod("echo-worker", &format!("http://{server_pod_ip}/"))
            .unwrap(),
        "echo-server"
    );
    assert_eq!(
        plain_address(
            &hosts
                .wget_from_pod("echo-server", &format!("http://{worker_pod_ip}/cgi-bin/ip"))
                .unwrap()
        ),
        server_pod_ip,
        "pod-to-pod traffic is not NATed"
    );

    // Nodes reach pods on other nodes.
    assert_eq!(
        wget_from(&hosts.server.netns, &format!("http://{worker_pod_ip}/")).unwrap(),
        "echo-worker"
    );
    assert_eq!(
        wget_from(&hosts.worker.netns, &format!("http://{server_pod_ip}/")).unwrap(),
        "echo-server"
    );

    // Pods reach hosts outside the pod network, masqueraded to their node.
    let outside_listener = hosts
        .outside
        .command("busybox")
        .args(["httpd", "-f", "-p", "8080", "-h"])
        .arg(outside_www(&hosts))
        .spawn()
        .unwrap();
    let _outside_listener = KillOnDrop(outside_listener);
    let seen = wait_for(Duration::from_secs(10), "pod to an outside host", || {
        hosts.wget_from_pod("echo-worker", "http://192.168.77.3:8080/cgi-bin/ip")
    });
    assert_eq!(
        plain_address(&seen),
        hosts.worker.address,
        "egress is masqueraded to the node"
    );
}

/// A document root on the outside host answering with the caller's address.
fn outside_www(hosts: &TwoHosts) -> PathBuf {
    let root = hosts.server.data_dir.path().join("outside-www");
    let cgi = root.join("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = cgi.join("ip");
    std::fs::write(
        &script,
        "#!/bin/busybox sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pods_reach_pods_across_hosts_over_vxlan() {
    pods_reach_pods_across_hosts("v", "vxlan");
}

#[test]
fn pods_reach_pods_across_hosts_over_host_gw() {
    pods_reach_pods_across_hosts("h", "host-gw");
}
