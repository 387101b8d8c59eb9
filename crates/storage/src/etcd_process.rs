//! A private etcd server on loopback, started from the `etcd` on PATH, for tests and `krust bench storage`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Server certificate and CA for a TLS-only etcd that requires client certificates.
#[derive(Clone, Debug)]
pub struct EtcdServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
}

/// A running etcd; stopped (SIGKILL) and its data removed on drop.
pub struct EtcdProcess {
    child: Child,
    data_dir: PathBuf,
    /// `127.0.0.1:PORT`, the client address.
    pub address: String,
}

static STARTED: AtomicU32 = AtomicU32::new(0);

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Starts etcd on two free loopback ports, its data under the system
    /// temporary directory, and waits until it is healthy.
    pub fn start(tls: Option<&EtcdServerTls>) -> Result<Self, String> {
        Self::start_in(&std::env::temp_dir(), tls)
    }

    /// Like [`EtcdProcess::start`], with the data directory under `parent`.
    pub fn start_in(parent: &Path, tls: Option<&EtcdServerTls>) -> Result<Self, String> {
        let data_dir = parent.join(format!(
            "krust-etcd-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let client_port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let peer_port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let address = format!("127.0.0.1:{client_port}");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://{address}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(data_dir.join("etcd.log"))
            .map_err(|e| format!("cannot create etcd log: {e}"))?;
        let mut command = Command::new("etcd");
        command
            .arg("--name=krust-test")
            .arg(format!("--data-dir={}", data_dir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=krust-test={peer_url}"))
            .arg("--heartbeat-interval=10")
            .arg("--election-timeout=100")
            // Room for krust's largest value (1.5 MiB) plus the request envelope.
            .arg("--max-request-bytes=2097152")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if let Some(tls) = tls {
            command
                .arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()))
                .arg(format!(
                    "--trusted-ca-file={}",
                    tls.client_ca_file.display()
                ))
                .arg("--client-cert-auth");
        }
        let child = command.spawn().map_err(|e| {
            format!("cannot start etcd ({e}); install it with: apt-get install etcd-server")
        })?;
        let mut process = EtcdProcess {
            child,
            data_dir,
            address,
        };
        process.wait_until_serving(tls.is_some(), Duration::from_secs(20))?;
        Ok(process)
    }

    /// The `--datastore-endpoint` for this server.
    pub fn endpoint(&self) -> String {
        format!("etcd://{}", self.address)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn wait_until_serving(&mut self, tls: bool, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("etcd exited ({status}): {}", self.log_tail()));
            }
            let ready = if tls {
                // A TLS listener accepting connections is as far as a plain
                // probe can see; the client's own status call proves the rest.
                TcpStream::connect(&self.address).is_ok()
            } else {
                self.health_says_true()
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd not healthy after {limit:?}: {}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn health_says_true(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.address) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let request = format!("GET /health HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.contains("\"health\":\"true\"")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data_dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Process id, for tests that need to signal the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
