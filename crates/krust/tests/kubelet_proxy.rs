//! End to end for the proxied subresources: `krust server` with a fake kubelet (HTTPS, client certificates required) and a plain HTTP backend, driven by /usr/bin/kubectl logs, exec and get --raw.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

mod common;

/// A fake kubelet and a service backend in one Python process (Python's standard library has TLS with
/// required client certificates, SHA-1 for the WebSocket handshake, and a threaded HTTP server).
///
/// The kubelet serves with the API server's own serving certificate (issued by the cluster CA and naming
/// 127.0.0.1), requires a client certificate from the cluster CA, and answers only the identity
/// kube-apiserver uses towards kubelets. It serves `/healthz`, `/containerLogs` (three lines; `follow`
/// spaces them out; `tailLines` and `timestamps` honoured) and `/exec` over WebSocket `v5.channel.k8s.io`
/// (writes the command line to stdout, then a Success status). The backend answers any GET with the path it
/// saw. The first stdout line is `KUBELET_PORT BACKEND_PORT`.
const FAKE_KUBELET: &str = r#"
import base64, hashlib, http.server, ssl, sys, threading, time, urllib.parse

TLS_DIR = sys.argv[1]
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

class Kubelet(http.server.BaseHTTPRequestHandler):
    # As the real kubelet (Go's net/http): HTTP/1.1, logs in chunks as they are written.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        subject = self.connection.getpeercert().get("subject", ())
        names = [value for rdn in subject for (key, value) in rdn if key == "commonName"]
        groups = [value for rdn in subject for (key, value) in rdn if key == "organizationName"]
        if names != ["kube-apiserver-kubelet-client"] or "system:masters" not in groups:
            return self.reply(403, "forbidden: %r %r" % (names, groups))
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if url.path == "/healthz":
            return self.reply(200, "kubelet ok")
        if parts[0] == "containerLogs" and len(parts) == 4:
            return self.logs(parts[3], query)
        if parts[0] == "exec" and len(parts) == 4:
            return self.exec(query)
        return self.reply(404, "404 page not found")

    do_POST = do_GET

    def logs(self, container, query):
        lines = ["%s line %d" % (container, n) for n in (1, 2, 3)]
        if "tailLines" in query:
            lines = lines[len(lines) - int(query["tailLines"][0]):]
        follow = query.get("follow") == ["true"]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            if query.get("timestamps") == ["true"]:
                line = "2024-01-01T00:00:00Z " + line
            chunk = (line + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            if follow:
                time.sleep(0.7)
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def frame(self, payload, opcode=2):
        head = bytes([0x80 | opcode])
        if len(payload) < 126:
            head += bytes([len(payload)])
        else:
            head += bytes([126]) + len(payload).to_bytes(2, "big")
        self.wfile.write(head + payload)

    def exec(self, query):
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if self.headers.get("Upgrade", "").lower() != "websocket" or "v5.channel.k8s.io" not in offered:
            return self.reply(400, "only WebSocket v5.channel.k8s.io is served")
        if query.get("output") != ["1"]:
            return self.reply(400, "stdout was not requested")
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n" % accept).encode())
        stdout = (" ".join(query.get("command", [])) + "\n").encode()
        self.frame(bytes([1]) + stdout)
        self.frame(bytes([3]) + b'{"metadata":{},"status":"Success"}')
        self.frame((1000).to_bytes(2, "big"), opcode=8)
        self.connection.settimeout(5)
        try:
            while self.connection.recv(4096):
                pass
        except OSError:
            pass

class Backend(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = ("backend saw " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(TLS_DIR + "/serving.crt", TLS_DIR + "/serving.key")
context.load_verify_locations(TLS_DIR + "/ca.crt")
context.verify_mode = ssl.CERT_REQUIRED
kubelet = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Kubelet)
kubelet.socket = context.wrap_socket(kubelet.socket, server_side=True)
backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
for server in (kubelet, backend):
    threading.Thread(target=server.serve_forever, daemon=True).start()
print(kubelet.server_address[1], backend.server_address[1], flush=True)
sys.stdin.read()
"#;

/// A child process killed on drop, so a failing test leaves nothing running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fake kubelet and backend, with their ports.
struct FakeNode {
    _process: KillOnDrop,
    kubelet_port: u16,
    backend_port: u16,
}

fn start_fake_node(tls_dir: &Path) -> FakeNode {
    let mut child = Command::new("python3")
        .args(["-c", FAKE_KUBELET])
        .arg(tls_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the fake kubelet");
    let stdout = child.stdout.take().unwrap();
    let process = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|port| port.parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 2, "the fake kubelet printed {line:?}");
    FakeNode {
        _process: process,
        kubelet_port: ports[0],
        backend_port: ports[1],
    }
}

fn create(cluster: &Cluster, manifest: &str) {
    cluster.ok_with_input(&["create", "-f", "-"], manifest);
}

fn patch_status(cluster: &Cluster, kind: &str, name: &str, status: &str) {
    cluster.ok(&[
        "patch",
        kind,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
}

/// A Node whose kubelet is the fake one, pods on it (one container; two containers) and one unscheduled.
fn create_node_and_pods(cluster: &Cluster, kubelet_port: u16) {
    create(
        cluster,
        r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}}"#,
    );
    patch_status(
        cluster,
        "node",
        "worker-1",
        &format!(
            r#"{{"status": {{"addresses": [{{"type": "InternalIP", "address": "127.0.0.1"}}],
                "daemonEndpoints": {{"kubeletEndpoint": {{"Port": {kubelet_port}}}}}}}}}"#
        ),
    );
    let pod = |name: &str, node: &str, containers: &[&str]| {
        let containers: Vec<String> = containers
            .iter()
            .map(|c| format!(r#"{{"name": "{c}", "image": "busybox"}}"#))
            .collect();
        let node = if node.is_empty() {
            String::new()
        } else {
            format!(r#""nodeName": "{node}","#)
        };
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
                "spec": {{{node} "containers": [{}]}}}}"#,
            containers.join(",")
        )
    };
    create(cluster, &pod("web", "worker-1", &["app"]));
    create(cluster, &pod("pair", "worker-1", &["a", "b"]));
    create(cluster, &pod("pending", "", &["app"]));
    patch_status(
        cluster,
        "pod",
        "web",
        r#"{"status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}"#,
    );
}

#[test]
fn kubectl_reaches_kubelets_and_services_through_the_api_server() {
    let cluster = Cluster::start();
    let node = start_fake_node(&cluster.server.data_dir().join("tls"));
    create_node_and_pods(&cluster, node.kubelet_port);

    // pods/log: the whole log, a tail, timestamps, and upstream's container errors.
    assert_eq!(
        cluster.ok(&["logs", "web"]),
        "app line 1\napp line 2\napp line 3\n"
    );
    assert_eq!(cluster.ok(&["logs", "web", "--tail=1"]), "app line 3\n");
    assert_eq!(
        cluster.ok(&["logs", "web", "--tail=1", "--timestamps"]),
        "2024-01-01T00:00:00Z app line 3\n"
    );
    assert_eq!(
        cluster.ok(&["logs", "pair", "-c", "b", "--tail=1"]),
        "b line 3\n"
    );
    assert!(
        cluster
            .fails(&["logs", "web", "-c", "wrong"])
            .contains("container wrong is not valid for pod web"),
    );
    assert!(
        cluster
            .fails(&["get", "--raw", "/api/v1/namespaces/default/pods/pair/log"])
            .contains("a container name must be specified for pod pair, choose one of: [a b]"),
    );
    assert!(
        cluster
            .fails(&[
                "get",
                "--raw",
                "/api/v1/namespaces/default/pods/web/log?tailLines=-1"
            ])
            .contains("tailLines: Invalid value: -1: must be greater than or equal to 0"),
    );
    assert!(
        cluster
            .fails(&["logs", "ghost"])
            .contains("pods \"ghost\" not found")
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/pending/log"
        ]),
        "",
        "an unscheduled pod's log is empty, as upstream"
    );

    // pods/log?follow=true streams: lines arrive as the kubelet writes them, not all at the end.
    let mut follow = KillOnDrop(
        cluster
            .kubectl_command(&["logs", "-f", "web"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut arrivals = Vec::new();
    for line in BufReader::new(follow.0.stdout.take().unwrap()).lines() {
        arrivals.push((line.unwrap(), Instant::now()));
    }
    let lines: Vec<&str> = arrivals.iter().map(|(line, _)| line.as_str()).collect();
    assert_eq!(lines, ["app line 1", "app line 2", "app line 3"]);
    let spread = arrivals[2].1 - arrivals[0].1;
    assert!(
        spread >= Duration::from_millis(1000),
        "followed lines arrived together ({spread:?} apart): the log was buffered, not streamed"
    );
    assert!(follow.0.wait().unwrap().success());

    // pods/exec: kubectl's WebSocket upgrade is spliced through to the kubelet.
    assert_eq!(
        cluster.ok(&["exec", "web", "--", "echo", "hello", "world"]),
        "echo hello world\n"
    );
    assert!(
        cluster
            .fails(&["exec", "pending", "--", "true"])
            .contains("pod pending does not have a host assigned"),
    );

    // nodes/proxy reaches the kubelet with the API server's kubelet client identity.
    assert_eq!(
        cluster.ok(&["get", "--raw", "/api/v1/nodes/worker-1/proxy/healthz"]),
        "kubelet ok"
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/worker-1:{}/proxy/healthz", node.kubelet_port)
        ]),
        "kubelet ok"
    );

    // services/proxy goes to a ready endpoint whose pod holds the address; 503 without endpoints.
    create(
        &cluster,
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}"#,
    );
    create(
        &cluster,
        &format!(
            r#"{{"apiVersion": "v1", "kind": "Endpoints", "metadata": {{"name": "backend"}},
            "subsets": [{{"addresses": [{{"ip": "127.0.0.1", "targetRef": {{"kind": "Pod", "namespace": "default", "name": "web"}}}}],
                          "ports": [{{"name": "http", "port": {}}}]}}]}}"#,
            node.backend_port
        ),
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/backend:http/proxy/hello?x=1"
        ]),
        "backend saw /hello?x=1"
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/backend:80/proxy/by-number"
        ]),
        "backend saw /by-number"
    );
    create(
        &cluster,
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
            "spec": {"ports": [{"port": 80}]}}"#,
    );
    create(
        &cluster,
        r#"{"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "empty"}}"#,
    );
    let unavailable = cluster.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/empty/proxy/",
    ]);
    assert!(
        unavailable.contains("ServiceUnavailable")
            && unavailable.contains("no endpoints available for service \"empty\""),
        "{unavailable}"
    );
}
