//! A `krust server` child process on a free loopback port, for benchmarks and end-to-end tests; killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// What `krust server` prints on stderr once it serves.
const SERVING: &str = "serving the Kubernetes API on ";

pub struct KrustServer {
    child: Child,
    data_dir: Option<tempfile::TempDir>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
}

impl KrustServer {
    /// Starts `krust server` with `data_dir` (which may hold an earlier
    /// run's state) and `extra_args`, and waits until it serves.
    pub fn start(
        krust: &Path,
        data_dir: tempfile::TempDir,
        extra_args: &[&str],
    ) -> anyhow::Result<KrustServer> {
        let mut args = vec!["--disable-agent"];
        args.extend_from_slice(extra_args);
        Self::start_node(krust, data_dir, &args)
    }

    /// Like [`KrustServer::start`], but the server also runs its embedded
    /// agent (this machine as a node) unless `extra_args` say otherwise.
    pub fn start_node(
        krust: &Path,
        data_dir: tempfile::TempDir,
        extra_args: &[&str],
    ) -> anyhow::Result<KrustServer> {
        let mut child = Command::new(krust)
            .args([
                "server",
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
                "0",
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", krust.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        // Owned by the guard from here on, so an early return still kills it.
        let mut server = KrustServer {
            child,
            data_dir: Some(data_dir),
            url: String::new(),
        };
        let mut lines = BufReader::new(stderr).lines();
        server.url = loop {
            let Some(line) = lines.next() else {
                bail!("krust server exited before serving")
            };
            let line = line?;
            if let Some(rest) = line.split(SERVING).nth(1) {
                break rest.split(';').next().unwrap_or_default().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(server)
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("https://")
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir
            .as_ref()
            .expect("the data dir lives as long as the server")
            .path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    /// The server process's resident memory (VmRSS).
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.child.id())
    }

    /// Kills the server and hands back its data dir, e.g. to start it again.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.kill();
        self.data_dir
            .take()
            .expect("the data dir is taken only once")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KrustServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A process's resident memory (VmRSS), 0 when it cannot be read.
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
