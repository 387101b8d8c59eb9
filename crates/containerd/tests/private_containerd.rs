//! The real containerd on this machine (run as root): startup, offline images,
//! supervision, airgap imports, registry mirrors, and complete cleanup.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use containerd::testing::PrivateContainerd;
use containerd::{
    BUSYBOX_IMAGE, K8S_NAMESPACE, ManagedContainerd, PAUSE_IMAGE, images, registries,
};

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "containerd=info".into()),
        )
        .try_init();
}

/// `ctr` against the private instance, in the k8s.io namespace.
fn ctr(private: &PrivateContainerd, arguments: &[&str]) -> Command {
    let mut command = Command::new("ctr");
    command
        .arg("--address")
        .arg(private.socket())
        .args(["-n", K8S_NAMESPACE])
        .args(arguments);
    command
}

fn succeeded(mut command: Command) -> Output {
    let output = command.output().expect("ctr runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `ctr run` options that keep runc state and IO FIFOs under the instance's
/// directory (CRI containers get this from the config), and that leave the
/// cgroup to runc (named after the container, removed with it) rather than
/// ctr's `/k8s.io/ID`, whose parent would outlive the test.
fn private_run_options(private: &PrivateContainerd) -> Vec<String> {
    let state = &private.settings().state;
    vec![
        "--cgroup".to_string(),
        String::new(),
        "--runc-root".to_string(),
        state.join("runc").display().to_string(),
        "--fifo-dir".to_string(),
        state.join("fifo").display().to_string(),
    ]
}

fn task_status(private: &PrivateContainerd, task: &str) -> Option<String> {
    let output = ctr(private, &["tasks", "ls"]).output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.split_whitespace().next() == Some(task))
        .and_then(|line| line.split_whitespace().nth(2))
        .map(str::to_string)
}

fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of the instance may outlive it: no process naming its directory,
/// no mount under it, not the directory itself.
fn assert_nothing_left(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        assert!(
            zombie || !cmdline.windows(needle.len()).any(|window| window == needle),
            "process {:?} still runs: {}",
            entry.file_name(),
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let dir_text = dir.display().to_string();
    assert!(
        !mounts.contains(&dir_text),
        "mounts left under {dir_text}:\n{mounts}"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_images_are_present_and_run() {
    init_logging();
    let started = Instant::now();
    let private = PrivateContainerd::start().await.unwrap();
    eprintln!(
        "private containerd with offline images ready after {:?}",
        started.elapsed()
    );
    let dir = private.dir().to_path_buf();
    assert!(private.endpoint().starts_with("unix:///"));

    let references = images::image_references(private.socket()).await.unwrap();
    assert!(references.contains(PAUSE_IMAGE), "{references:?}");
    assert!(references.contains(BUSYBOX_IMAGE), "{references:?}");

    let run_options = private_run_options(&private);
    let mut echo = ctr(&private, &["run", "--rm"]);
    echo.args(&run_options).args([
        BUSYBOX_IMAGE,
        "echo-test",
        "sh",
        "-c",
        "echo hi from $(whoami)",
    ]);
    let echoed = succeeded(echo);
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "hi from root\n");

    // The pause image must stop promptly on SIGTERM, with status 0.
    let mut pause = ctr(&private, &["run", "--rm"]);
    pause
        .args(&run_options)
        .args([PAUSE_IMAGE, "pause-test"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut pause = pause.spawn().unwrap();
    wait_for("the pause task to run", Duration::from_secs(10), || {
        task_status(&private, "pause-test").as_deref() == Some("RUNNING")
    });
    let signalled = Instant::now();
    succeeded(ctr(
        &private,
        &["tasks", "kill", "--signal", "SIGTERM", "pause-test"],
    ));
    let status = pause.wait().unwrap();
    let stop_time = signalled.elapsed();
    eprintln!("pause stopped {stop_time:?} after SIGTERM with {status}");
    assert!(status.success(), "pause exited with {status}");
    assert!(
        stop_time < Duration::from_secs(1),
        "pause took {stop_time:?}"
    );

    private.shutdown().await;
    assert_nothing_left(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_containerd_is_restarted() {
    init_logging();
    let private = PrivateContainerd::start().await.unwrap();
    let dir = private.dir().to_path_buf();
    let first_pid = private.containerd().pid().unwrap();

    let killed = Instant::now();
    // SAFETY: kill(2) with a PID we own; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(first_pid as libc::pid_t, libc::SIGKILL) },
        0
    );
    let new_pid = loop {
        match private.containerd().pid() {
            Some(pid) if pid != first_pid => break pid,
            _ => {
                assert!(killed.elapsed() < Duration::from_secs(10), "not restarted");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // pid() only changes once the new containerd answers CRI calls.
    let references = images::image_references(private.socket()).await.unwrap();
    eprintln!(
        "containerd {first_pid} killed; {new_pid} answered {:?} later",
        killed.elapsed()
    );
    assert!(references.contains(PAUSE_IMAGE), "{references:?}");
    assert!(killed.elapsed() < Duration::from_secs(5));

    drop(private);
    assert_nothing_left(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_in_the_images_dir_are_imported() {
    init_logging();
    let private = PrivateContainerd::start().await.unwrap();
    let dir = private.dir().to_path_buf();
    let images_dir = private.images_dir();

    let plain = images_dir.join("dropped.tar");
    images::write_busybox_image_as(
        &plain,
        Path::new("/usr/bin/busybox"),
        "docker.io/library/dropped:v1",
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let to_compress = scratch.path().join("dropped-gz.tar");
    images::write_busybox_image_as(
        &to_compress,
        Path::new("/usr/bin/busybox"),
        "example.com/team/dropped-gz:v2",
    )
    .unwrap();
    let mut gzip = flate2::write::GzEncoder::new(
        std::fs::File::create(images_dir.join("dropped-gz.tar.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    gzip.write_all(&std::fs::read(&to_compress).unwrap())
        .unwrap();
    gzip.finish().unwrap();
    std::fs::write(images_dir.join("README.txt"), "not an archive").unwrap();

    let started = Instant::now();
    let imported = images::import_archives(private.socket(), &images_dir)
        .await
        .unwrap();
    eprintln!("imported two archives in {:?}", started.elapsed());
    assert_eq!(
        imported,
        [
            "example.com/team/dropped-gz:v2",
            "docker.io/library/dropped:v1"
        ]
    );
    let references = images::image_references(private.socket()).await.unwrap();
    assert!(
        references.contains("docker.io/library/dropped:v1"),
        "{references:?}"
    );
    assert!(
        references.contains("example.com/team/dropped-gz:v2"),
        "{references:?}"
    );

    // ensure_offline_images imports the directory again and builds nothing.
    images::ensure_offline_images(private.socket(), &images_dir, &dir.join("unused"))
        .await
        .unwrap();
    assert!(!dir.join("unused").exists());

    let broken = images_dir.join("zz-broken.tar");
    std::fs::write(&broken, "not a tar").unwrap();
    let error = images::import_archives(private.socket(), &images_dir)
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("zz-broken.tar"), "{error:#}");

    // A second containerd on the same files would wait forever for the lock.
    let second = ManagedContainerd::start(private.settings().clone()).await;
    let message = format!("{:#}", second.err().expect("a second instance is refused"));
    assert!(message.contains("already runs"), "{message}");

    private.shutdown().await;
    assert_nothing_left(&dir);
}

/// A running container at drop time: Drop must still leave nothing behind.
#[tokio::test(flavor = "current_thread")]
async fn dropping_with_a_running_container_cleans_up() {
    init_logging();
    let private = PrivateContainerd::start().await.unwrap();
    let dir = private.dir().to_path_buf();
    let mut detached = ctr(&private, &["run", "--detach"]);
    detached.args(private_run_options(&private)).args([
        BUSYBOX_IMAGE,
        "left-running",
        "sleep",
        "600",
    ]);
    succeeded(detached);
    assert_eq!(
        task_status(&private, "left-running").as_deref(),
        Some("RUNNING")
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        mounts.contains(&dir.display().to_string()),
        "no rootfs mount"
    );

    drop(private);
    assert_nothing_left(&dir);
}

/// containerd dead (between a crash and its restart) with a container
/// running: cleanup cannot ask containerd and must find the shim itself.
#[tokio::test(flavor = "current_thread")]
async fn cleanup_without_containerd_still_removes_everything() {
    init_logging();
    let private = PrivateContainerd::start().await.unwrap();
    let dir = private.dir().to_path_buf();
    let mut detached = ctr(&private, &["run", "--detach"]);
    detached
        .args(private_run_options(&private))
        .args([BUSYBOX_IMAGE, "orphaned", "sleep", "600"]);
    succeeded(detached);
    let pid = private.containerd().pid().unwrap();
    // SAFETY: kill(2) with a PID we own; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    // On this single-threaded runtime the supervisor cannot restart it
    // before the drop below runs.
    wait_for("containerd to die", Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.contains(") Z"))
            .unwrap_or(true)
    });
    let started = Instant::now();
    drop(private);
    eprintln!("cleanup without containerd took {:?}", started.elapsed());
    assert_nothing_left(&dir);
    let cgroups_left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|hierarchy| hierarchy.path().join("orphaned"))
        .filter(|cgroup| cgroup.exists())
        .collect();
    assert!(cgroups_left.is_empty(), "cgroups left: {cgroups_left:?}");
}

/// A docker-registry on loopback, stopped on drop.
struct LocalRegistry {
    process: std::process::Child,
    address: String,
    _storage: tempfile::TempDir,
}

impl LocalRegistry {
    fn start() -> LocalRegistry {
        let storage = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let process = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = LocalRegistry {
            process,
            address,
            _storage: storage,
        };
        wait_for("docker-registry to answer", Duration::from_secs(10), || {
            registry.answers()
        });
        registry
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.address) else {
            return false;
        };
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.0 200")
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_hub_mirror_serves_docker_io_pulls() {
    init_logging();
    let registry = LocalRegistry::start();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("mirrored.tar");
    images::write_busybox_image_as(
        &archive,
        Path::new("/usr/bin/busybox"),
        "docker.io/library/mirrored:v1",
    )
    .unwrap();
    let pushed = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{}/library/mirrored:v1", registry.address))
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let private = PrivateContainerd::start().await.unwrap();
    let dir = private.dir().to_path_buf();
    let certs_d: PathBuf = private.settings().registry_config_dir.clone();
    let config = registries::parse(&format!(
        "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
        registry.address
    ))
    .unwrap();
    registries::write_hosts_dirs(&config, &certs_d).unwrap();

    // ctr reads certs.d exactly as the CRI plugin does with config_path.
    let mut pull = ctr(&private, &["images", "pull", "--hosts-dir"]);
    pull.arg(&certs_d).arg("docker.io/library/mirrored:v1");
    succeeded(pull);
    let references = images::image_references(private.socket()).await.unwrap();
    assert!(
        references.contains("docker.io/library/mirrored:v1"),
        "{references:?}"
    );

    // Without the mirror there is no way to docker.io from here.
    registries::write_hosts_dirs(&registries::Registries::default(), &certs_d).unwrap();
    assert!(!certs_d.join("docker.io").exists());
    succeeded(ctr(
        &private,
        &["images", "rm", "docker.io/library/mirrored:v1"],
    ));
    let mut offline_pull = ctr(&private, &["images", "pull", "--hosts-dir"]);
    offline_pull
        .arg(&certs_d)
        .arg("docker.io/library/mirrored:v1");
    assert!(!offline_pull.output().unwrap().status.success());

    private.shutdown().await;
    assert_nothing_left(&dir);
}

#[test]
fn a_machine_without_containerd_gets_one_line_with_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let error = containerd::find_containerd_in(Some(empty.path().as_os_str())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "containerd is not installed: apt-get install containerd runc containernetworking-plugins (or pass --container-runtime-endpoint)"
    );
    assert_eq!(
        containerd::find_containerd().unwrap(),
        Path::new("/usr/bin/containerd")
    );
}
