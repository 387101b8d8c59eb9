//! The end-to-end tests' shared harness: a `krust server` on loopback, driven by a kubectl binary and curl.

// Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use bench::server::KrustServer;
use serde_json::Value;

/// The bearer token every test server accepts (raw requests use it).
pub const TOKEN: &str = "e2e-test-token";
/// The `Authorization` header value for raw requests.
pub fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

/// The current kubectl, v1.32.
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// A `krust server` and the kubectl that drives it, with a kubectl cache of
/// its own so no discovery or OpenAPI document of another run is read.
pub struct Cluster {
    pub server: KrustServer,
    kubectl: PathBuf,
    kubectl_cache: tempfile::TempDir,
}

/// A raw HTTPS response.
pub struct RawResponse {
    pub code: u16,
    /// The header block as received.
    pub headers: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_in(tempfile::tempdir().unwrap())
    }

    /// The API server alone, without the scheduler and the controllers, for
    /// tests of API semantics that write objects those would also change.
    pub fn start_api_only() -> Cluster {
        Self::start_with(
            tempfile::tempdir().unwrap(),
            &["--disable", "scheduler,controllers"],
        )
    }

    /// Starts a server on an existing data dir (a restart when it holds one).
    pub fn start_in(dir: tempfile::TempDir) -> Cluster {
        Self::start_with(dir, &[])
    }

    /// Starts a server with more `krust server` flags.
    pub fn start_with(dir: tempfile::TempDir, extra_args: &[&str]) -> Cluster {
        let mut args = vec!["--token", TOKEN];
        args.extend_from_slice(extra_args);
        let server =
            KrustServer::start(Path::new(env!("CARGO_BIN_EXE_krust")), dir, &args).unwrap();
        Cluster {
            server,
            kubectl: PathBuf::from(KUBECTL),
            kubectl_cache: tempfile::tempdir().unwrap(),
        }
    }

    /// A server that is also a node (its embedded agent runs real
    /// containers through a private containerd), with `extra_args`.
    pub fn start_node(extra_args: &[&str]) -> Cluster {
        Self::start_node_in(tempfile::tempdir().unwrap(), extra_args)
    }

    /// [`Cluster::start_node`] on an existing data dir (a restart).
    pub fn start_node_in(dir: tempfile::TempDir, extra_args: &[&str]) -> Cluster {
        let mut args = vec!["--token", TOKEN];
        args.extend_from_slice(extra_args);
        let server =
            KrustServer::start_node(Path::new(env!("CARGO_BIN_EXE_krust")), dir, &args).unwrap();
        Cluster {
            server,
            kubectl: PathBuf::from(KUBECTL),
            kubectl_cache: tempfile::tempdir().unwrap(),
        }
    }

    /// Drives the server with another kubectl binary.
    pub fn using_kubectl(mut self, binary: &Path) -> Cluster {
        self.kubectl = binary.to_path_buf();
        self
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig()
    }

    /// A kubectl command for this cluster, to spawn as the test needs.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.kubectl_cache.path())
            .args(args);
        command
    }

    /// Runs kubectl with extra environment and optional stdin.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut command = self.kubectl_command(args);
        command
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.run(args, &[], None)
    }

    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> Output {
        self.run(args, &[], Some(stdin))
    }

    /// Runs kubectl and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.kubectl(args))
    }

    pub fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        succeeded(args, self.kubectl_with_input(args, stdin))
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            !output.status.success(),
            "kubectl {args:?} unexpectedly succeeded"
        );
        String::from_utf8(output.stderr).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// `kubectl apply -f -` of a manifest that must succeed.
    pub fn apply(&self, manifest: &str) -> String {
        self.ok_with_input(&["apply", "-f", "-"], manifest)
    }

    /// curl with these arguments; returns (status code, JSON body).
    pub fn curl(&self, args: &[&str]) -> (u16, Value) {
        let output = Command::new("curl")
            .args(["-sk", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// A request with the bearer token and a body of this content type.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> RawResponse {
        // Bodies go through a file: protobuf holds NUL bytes, which no
        // command-line argument can.
        let body_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(body_file.path(), body).unwrap();
        let headers = tempfile::NamedTempFile::new().unwrap();
        let output = Command::new("curl")
            .args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg("-D")
            .arg(headers.path())
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .args(["-H", &format!("Content-Type: {content_type}")])
            .arg("--data-binary")
            .arg(format!("@{}", body_file.path().display()))
            .arg(format!("{}{path}", self.url()))
            .output()
            .unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        RawResponse {
            code: code.parse().unwrap(),
            headers: std::fs::read_to_string(headers.path()).unwrap(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }
}

/// The `web` Deployment in `default` (2 replicas, one container `app` on
/// port 80) with this image and these env entries (YAML flow items).
pub fn deployment_manifest(image: &str, env: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: {image}
        ports: [{{containerPort: 80}}]
        env: [{env}]
"
    )
}

fn succeeded(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A `krust sim` child simulating nodes for a cluster; killed on drop.
pub struct Sim(Child);

impl Sim {
    /// `nodes` nodes named `sim-node-N`.
    pub fn start(cluster: &Cluster, nodes: usize) -> Sim {
        Self::start_named(cluster, nodes, "sim-node-")
    }

    /// `nodes` nodes named `PREFIX` followed by their number.
    pub fn start_named(cluster: &Cluster, nodes: usize, prefix: &str) -> Sim {
        let child = Command::new(env!("CARGO_BIN_EXE_krust"))
            .args([
                "sim",
                "--nodes",
                &nodes.to_string(),
                "--name-prefix",
                prefix,
            ])
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Sim(child)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 200 ms until it returns `Ok`, failing with the last
/// observation after `limit`.
pub fn wait_for<T>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let started = std::time::Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if started.elapsed() > limit => {
                panic!("{what}: not within {limit:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}
