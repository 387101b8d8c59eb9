//! A throwaway containerd for tests (needs root): everything under one
//! temporary directory, offline images imported, everything undone at the end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::config::ContainerdSettings;
use crate::supervisor::ManagedContainerd;
use crate::{images, install, procs};

/// containerd puts every shim's socket here, whatever its state directory.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
const CTR_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A private containerd: root, state and socket under a temporary directory,
/// [`crate::PAUSE_IMAGE`] and [`crate::BUSYBOX_IMAGE`] imported.
///
/// Dropping it (or [`PrivateContainerd::shutdown`]) removes everything it
/// made: the tasks' processes, containerd, leftover shims, mounts under the
/// directory, the directory itself.
pub struct PrivateContainerd {
    containerd: Option<ManagedContainerd>,
    settings: ContainerdSettings,
    dir: Option<tempfile::TempDir>,
}

impl PrivateContainerd {
    /// Starts containerd under a new temporary directory and imports the
    /// offline images (building them from the local busybox).
    pub async fn start() -> anyhow::Result<PrivateContainerd> {
        let dir = tempfile::Builder::new()
            .prefix("krust-containerd-")
            .tempdir()
            .context("creating a temporary directory")?;
        let settings = ContainerdSettings::under(dir.path());
        let mut private = PrivateContainerd {
            containerd: None,
            settings: settings.clone(),
            dir: Some(dir),
        };
        std::fs::create_dir_all(private.images_dir())?;
        private.containerd = Some(ManagedContainerd::start(settings).await?);
        images::ensure_offline_images(
            private.socket(),
            &private.images_dir(),
            &private.dir().join("image-build"),
        )
        .await?;
        Ok(private)
    }

    /// The CRI endpoint, `unix://…`.
    pub fn endpoint(&self) -> String {
        self.settings.endpoint()
    }

    /// The gRPC socket path.
    pub fn socket(&self) -> &Path {
        &self.settings.socket
    }

    /// Where everything of this containerd lives.
    pub fn settings(&self) -> &ContainerdSettings {
        &self.settings
    }

    /// The temporary directory everything is under (the agent directory).
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(tempfile::TempDir::path)
            .expect("the directory exists until the instance is cleaned up")
    }

    /// k3s's airgap directory for this instance, `DIR/images`; archives put
    /// here are imported by [`images::import_archives`].
    pub fn images_dir(&self) -> PathBuf {
        self.dir().join("images")
    }

    /// The supervised containerd.
    pub fn containerd(&self) -> &ManagedContainerd {
        self.containerd
            .as_ref()
            .expect("containerd runs until the instance is cleaned up")
    }

    /// Cleans up like `Drop`, but stops containerd through its supervisor.
    pub async fn shutdown(mut self) {
        if let Some(containerd) = &self.containerd {
            let socket = containerd.socket().to_path_buf();
            let _ = tokio::task::spawn_blocking(move || remove_all_tasks(&socket)).await;
        }
        if let Some(containerd) = self.containerd.take() {
            containerd.stop().await;
        }
        // containerd is stopped: what is left is quick and needs no await.
        self.clean_up();
    }

    fn clean_up(&mut self) {
        if let Some(containerd) = self.containerd.take() {
            remove_all_tasks(containerd.socket());
            containerd.stop_restarting();
            if let Some(pid) = containerd.pid() {
                procs::send_signal(pid, libc::SIGTERM);
                if !procs::wait_for_exit(&[pid], EXIT_TIMEOUT) {
                    procs::send_signal(pid, libc::SIGKILL);
                    procs::wait_for_exit(&[pid], EXIT_TIMEOUT);
                }
            }
        }
        let Some(dir) = self.dir.take() else {
            return;
        };
        kill_processes_naming(dir.path());
        for mount_point in procs::mount_points_under(dir.path()) {
            detach_mount(&mount_point);
        }
        if let Err(error) = std::fs::remove_dir_all(dir.path()) {
            tracing::warn!(dir = %dir.path().display(), %error, "cannot remove the private containerd's directory");
        }
    }
}

/// Removes what a containerd under `dir` (with its socket at `socket`) left
/// after the process that ran it was killed: its tasks, shims and
/// container processes, and the mounts under `dir`. For tests that ran an
/// agent (which starts its own containerd) in a directory of their own.
pub fn clean_up_after(dir: &Path, socket: &Path) {
    remove_all_tasks(socket);
    kill_processes_naming(dir);
    for mount_point in procs::mount_points_under(dir) {
        detach_mount(&mount_point);
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// Kills and deletes every task in every namespace, so that the shims exit
/// on their own and clean up after themselves (runc state, shim sockets).
fn remove_all_tasks(socket: &Path) {
    // With containerd down, ctr would only time out; cleanup then finds the
    // shims itself.
    if std::os::unix::net::UnixStream::connect(socket).is_err() {
        return;
    }
    let Ok(ctr) = install::find_ctr(install::find_containerd().ok().as_deref()) else {
        return;
    };
    let ctr_output = |arguments: &[&str]| -> Option<String> {
        let mut command = Command::new(&ctr);
        command
            .arg("--address")
            .arg(socket)
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        run_with_timeout(command)
    };
    let lines = |text: Option<String>| -> Vec<String> {
        text.unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    };
    for namespace in lines(ctr_output(&["namespaces", "ls", "-q"])) {
        for task in lines(ctr_output(&["-n", &namespace, "tasks", "ls", "-q"])) {
            ctr_output(&[
                "-n", &namespace, "tasks", "kill", "-a", "-s", "SIGKILL", &task,
            ]);
            ctr_output(&["-n", &namespace, "tasks", "delete", "-f", &task]);
        }
    }
}

fn run_with_timeout(mut command: Command) -> Option<String> {
    let mut child = command.spawn().ok()?;
    let deadline = std::time::Instant::now() + CTR_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// SIGKILLs every process whose command line names `dir` (containerd, its
/// shims) and everything below them (the containers), and removes the shim
/// sockets the killed shims leave in `/run/containerd/s`.
fn kill_processes_naming(dir: &Path) {
    let own_pid = std::process::id();
    // With the trailing slash, /tmp/x does not match /tmp/xy.
    let inside_dir = dir.join("");
    let processes = procs::all_processes();
    let named: Vec<&procs::ProcessInfo> = processes
        .iter()
        .filter(|process| process.pid != own_pid && process.mentions(&inside_dir))
        .collect();
    if named.is_empty() {
        return;
    }
    let named_pids: Vec<u32> = named.iter().map(|process| process.pid).collect();
    let mut doomed = procs::descendants(&named_pids, &processes);
    doomed.retain(|pid| *pid != own_pid);
    doomed.extend(&named_pids);
    // Without runc's delete nobody removes the containers' cgroups; note them
    // before their processes are gone. Never the cgroups this process is in.
    let own_cgroups = procs::cgroup_dirs_of(own_pid);
    let mut container_cgroups: Vec<PathBuf> = doomed
        .iter()
        .flat_map(|pid| procs::cgroup_dirs_of(*pid))
        .filter(|cgroup| !own_cgroups.iter().any(|own| own.starts_with(cgroup)))
        .collect();
    container_cgroups.sort();
    container_cgroups.dedup();
    doomed.extend(&named_pids);
    tracing::warn!(pids = ?doomed, dir = %dir.display(), "killing leftover containerd processes");
    for pid in &doomed {
        procs::send_signal(*pid, libc::SIGKILL);
    }
    procs::wait_for_exit(&doomed, EXIT_TIMEOUT);
    for shim in named {
        if let Some(socket) = shim_socket(shim) {
            let _ = std::fs::remove_file(socket);
        }
    }
    // Deepest first; a cgroup that still has members or children stays.
    for cgroup in container_cgroups.iter().rev() {
        let _ = std::fs::remove_dir(cgroup);
    }
}

/// The socket a containerd 1.6 runc shim listens on:
/// `/run/containerd/s/` + hex(sha256(ADDRESS/NAMESPACE/ID)), from its
/// `-namespace`, `-id` and `-address` arguments.
fn shim_socket(process: &procs::ProcessInfo) -> Option<PathBuf> {
    let value_of = |flag: &str| {
        process
            .arguments
            .iter()
            .position(|argument| argument == flag)
            .and_then(|index| process.arguments.get(index + 1))
            .and_then(|value| value.to_str())
    };
    let (namespace, id, address) = (
        value_of("-namespace")?,
        value_of("-id")?,
        value_of("-address")?,
    );
    let hash = Sha256::digest(format!("{address}/{namespace}/{id}").as_bytes());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    Some(Path::new(SHIM_SOCKET_DIR).join(hex))
}

fn detach_mount(mount_point: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(mount_point.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call;
    // MNT_DETACH only unhooks the mount, so nothing here can dangle.
    let result = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    if result != 0 {
        tracing::warn!(
            mount_point = %mount_point.display(),
            error = %std::io::Error::last_os_error(),
            "cannot unmount"
        );
    }
}

/// A Docker registry (Debian's docker-registry, distribution v2) on
/// loopback for pull tests, optionally behind htpasswd basic auth; stopped
/// on drop.
pub struct LocalRegistry {
    process: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    storage: tempfile::TempDir,
    credentials: Option<(String, String)>,
}

impl LocalRegistry {
    /// Starts the registry; with `credentials`, pulls and pushes need them.
    pub fn start(credentials: Option<(&str, &str)>) -> anyhow::Result<LocalRegistry> {
        let storage = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
            storage.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            // distribution reads bcrypt only; Python's crypt makes one.
            let hash = Command::new("python3")
                .args([
                    "-W",
                    "ignore",
                    "-c",
                    "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                    password,
                ])
                .output()?;
            anyhow::ensure!(hash.status.success(), "cannot make a bcrypt hash");
            let htpasswd = storage.path().join("htpasswd");
            std::fs::write(
                &htpasswd,
                format!("{user}:{}\n", String::from_utf8_lossy(&hash.stdout).trim()),
            )?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: krust\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_file = storage.path().join("config.yml");
        std::fs::write(&config_file, config)?;
        let process = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let registry = LocalRegistry {
            process,
            address,
            storage,
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !registry.answers() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "docker-registry did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(&self.address) else {
            return false;
        };
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && (response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.0 401"))
    }

    /// Pushes the offline busybox image as `REPOSITORY:TAG` (e.g.
    /// `library/mirrored:v1`) with skopeo.
    pub fn push_busybox(&self, repository_and_tag: &str) -> anyhow::Result<()> {
        let archive = self.storage.path().join("push.tar");
        crate::images::write_busybox_image_as(
            &archive,
            Path::new("/usr/bin/busybox"),
            &format!("docker.io/{repository_and_tag}"),
        )?;
        let mut command = Command::new("skopeo");
        command.args(["copy", "--dest-tls-verify=false"]);
        if let Some((user, password)) = &self.credentials {
            command
                .arg("--dest-creds")
                .arg(format!("{user}:{password}"));
        }
        let pushed = command
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repository_and_tag}", self.address))
            .output()?;
        anyhow::ensure!(
            pushed.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        Ok(())
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
