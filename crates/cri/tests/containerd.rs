//! The CRI client against a real, private containerd (run as root): a pod's
//! whole life, logs, exec, pull failures, latencies, and the edge-case
//! answers the fake copies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use containerd::testing::PrivateContainerd;
use cri::{CriClient, ErrorCode, ImageService, PullFailure, RuntimeService, api, image_spec};

const NAMESPACE: &str = "cri-test";

/// A cgroup parent of the test's own, so that sandbox stats have a cgroup to
/// read; runc removes the pods' cgroups, the guard removes the parent.
struct CgroupParent {
    name: String,
}

impl CgroupParent {
    fn new(test: &str) -> CgroupParent {
        CgroupParent {
            name: format!("/krust-cri-{test}-{}", std::process::id()),
        }
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for hierarchy in hierarchies.flatten() {
            remove_cgroup(&hierarchy.path().join(self.name.trim_start_matches('/')));
        }
    }
}

/// Removes an empty cgroup and the empty ones below it (a cgroup directory
/// holds only the kernel's files, which go with it).
fn remove_cgroup(directory: &Path) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroup(&entry.path());
        }
    }
    if let Err(error) = std::fs::remove_dir(directory) {
        eprintln!("cannot remove cgroup {}: {error}", directory.display());
    }
}

fn host_network_sandbox(
    name: &str,
    log_directory: &Path,
    cgroup: &CgroupParent,
) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: NAMESPACE.to_string(),
            attempt: 0,
        }),
        // hostNetwork pods keep the node's hostname: containerd wants it empty.
        hostname: String::new(),
        log_directory: log_directory.display().to_string(),
        labels: [("app".to_string(), name.to_string())].into(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup.name.clone(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                // The node's network needs no CNI configuration.
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    pid: api::NamespaceMode::Container as i32,
                    ipc: api::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn busybox_container(name: &str, command: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(image_spec(containerd::BUSYBOX_IMAGE)),
        command: command.iter().map(|part| part.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: [("container".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

async fn start_containerd() -> (PrivateContainerd, CriClient) {
    let private = PrivateContainerd::start()
        .await
        .expect("a private containerd starts");
    let client = cri::connect(&private.endpoint())
        .await
        .expect("its CRI socket answers");
    (private, client)
}

/// Stops and removes every sandbox, so that nothing outlives containerd.
async fn remove_all_sandboxes(client: &CriClient) {
    for sandbox in client.list_pod_sandbox(None).await.expect("sandboxes list") {
        client
            .stop_pod_sandbox(&sandbox.id)
            .await
            .expect("the sandbox stops");
        client
            .remove_pod_sandbox(&sandbox.id)
            .await
            .expect("the sandbox is removed");
    }
}

async fn container_status(client: &CriClient, id: &str) -> api::ContainerStatus {
    client
        .container_status(id, false)
        .await
        .expect("the container has a status")
        .status
        .expect("status is set")
}

/// Waits for `path` to hold a line satisfying `wanted`; returns it.
async fn wait_for_log_line(path: &Path, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| wanted(line)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no such line in {}: {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `2024-05-01T12:34:56.123456789Z` or with an offset, nanoseconds optional.
fn is_rfc3339_nano(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range
            .clone()
            .all(|index| bytes.get(index).is_some_and(u8::is_ascii_digit))
    };
    text.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_network_pod_runs_logs_execs_and_stops() {
    // Declared first, dropped last: after containerd's cleanup emptied it.
    let cgroup = CgroupParent::new("lifecycle");
    let (private, client) = start_containerd().await;

    let version = client.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");
    let conditions = client
        .status(false)
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions;
    assert!(
        conditions
            .iter()
            .any(|condition| condition.r#type == "RuntimeReady" && condition.status),
        "{conditions:?}"
    );

    let log_directory = private.dir().join("pods/cri-test_web_uid-web");
    let sandbox_config = host_network_sandbox("web", &log_directory, &cgroup);
    let started = Instant::now();
    let sandbox = client
        .run_pod_sandbox(sandbox_config.clone(), "")
        .await
        .unwrap();
    let run_sandbox_latency = started.elapsed();
    let sandbox_status = client.pod_sandbox_status(&sandbox, true).await.unwrap();
    let status = sandbox_status.status.unwrap();
    assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(
        status.network.unwrap().ip,
        "",
        "host-network sandboxes have no pod IP"
    );
    assert!(
        !sandbox_status.info.is_empty(),
        "verbose status carries containerd's info"
    );

    let started = Instant::now();
    let container = client
        .create_container(
            &sandbox,
            busybox_container("app", &["sh", "-c", "echo hello; sleep 1000"]),
            sandbox_config.clone(),
        )
        .await
        .unwrap();
    let create_latency = started.elapsed();
    let started = Instant::now();
    client.start_container(&container).await.unwrap();
    let start_latency = started.elapsed();
    eprintln!(
        "latency: RunPodSandbox {run_sandbox_latency:?}, CreateContainer {create_latency:?}, StartContainer {start_latency:?}"
    );

    let running = api::ContainerFilter {
        pod_sandbox_id: sandbox.clone(),
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    let listed = client.list_containers(Some(running)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, container);
    assert_eq!(listed[0].labels["container"], "app");
    let status = container_status(&client, &container).await;
    assert_eq!(status.state, api::ContainerState::ContainerRunning as i32);
    assert!(status.started_at >= status.created_at && status.created_at > 0);
    let log_path = log_directory.join("app/0.log");
    assert_eq!(PathBuf::from(&status.log_path), log_path);

    let line = wait_for_log_line(&log_path, |line| line.ends_with(" stdout F hello")).await;
    let timestamp = line.split(' ').next().unwrap();
    assert!(is_rfc3339_nano(timestamp), "{line:?}");

    let output = client
        .exec_sync(
            &container,
            vec!["echo".to_string(), "hi".to_string()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(output.stdout, b"hi\n");
    assert_eq!(output.exit_code, 0);
    let failing = client
        .exec_sync(
            &container,
            vec![
                "sh".to_string(),
                "-c".to_string(),
                "echo no >&2; exit 3".to_string(),
            ],
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(
        (failing.stderr.as_slice(), failing.exit_code),
        (&b"no\n"[..], 3)
    );
    let url = client
        .exec(api::ExecRequest {
            container_id: container.clone(),
            cmd: vec!["sh".to_string()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        url.starts_with("http://") && url.contains("/exec/"),
        "{url}"
    );
    let url = client.port_forward(&sandbox, vec![8080]).await.unwrap();
    assert!(url.contains("/portforward/"), "{url}");

    let stats = client.container_stats(&container).await.unwrap();
    assert!(stats.memory.unwrap().working_set_bytes.unwrap().value > 0);
    let pod_stats = client.pod_sandbox_stats(&sandbox).await.unwrap();
    assert_eq!(pod_stats.linux.unwrap().containers.len(), 1);
    assert_eq!(client.list_pod_sandbox_stats(None).await.unwrap().len(), 1);
    client.reopen_container_log(&container).await.unwrap();
    client
        .update_container_resources(
            &container,
            api::LinuxContainerResources {
                cpu_shares: 256,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let resources = container_status(&client, &container)
        .await
        .resources
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(
        (resources.cpu_shares, resources.memory_limit_in_bytes),
        (256, 64 << 20)
    );

    client
        .stop_container(&container, Duration::from_secs(1))
        .await
        .unwrap();
    let exited = container_status(&client, &container).await;
    assert_eq!(exited.state, api::ContainerState::ContainerExited as i32);
    assert!(
        matches!(exited.exit_code, 137 | 143),
        "exit code {}",
        exited.exit_code
    );
    assert_eq!(exited.reason, "Error");
    assert!(exited.finished_at >= exited.started_at);

    client.remove_container(&container).await.unwrap();
    assert!(
        client
            .container_status(&container, false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    client.stop_pod_sandbox(&sandbox).await.unwrap();
    client.remove_pod_sandbox(&sandbox).await.unwrap();
    assert!(client.list_pod_sandbox(None).await.unwrap().is_empty());
    drop(private);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_listed_and_pull_failures_are_classified() {
    let (private, client) = start_containerd().await;

    let status = client
        .image_status(image_spec("busybox"), false)
        .await
        .unwrap();
    let busybox = status.image.expect("the offline busybox is present");
    assert_eq!(busybox.repo_tags, [containerd::BUSYBOX_IMAGE]);
    assert!(busybox.id.starts_with("sha256:"));
    let tags: Vec<String> = client
        .list_images(None)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|image| image.repo_tags)
        .collect();
    assert!(
        tags.iter().any(|tag| tag == containerd::PAUSE_IMAGE),
        "{tags:?}"
    );
    assert!(
        client
            .image_status(image_spec("nope:1"), false)
            .await
            .unwrap()
            .image
            .is_none()
    );
    let filesystems = client.image_fs_info().await.unwrap().image_filesystems;
    assert!(!filesystems.is_empty());

    // Nothing listens on port 1: the registry is unreachable, at once.
    let started = Instant::now();
    let error = client
        .pull_image(image_spec("127.0.0.1:1/nonexistent:latest"), None, None)
        .await
        .unwrap_err();
    eprintln!(
        "pull from a closed port failed in {:?}: {error}",
        started.elapsed()
    );
    assert_eq!(error.method(), "PullImage");
    assert_eq!(
        error.pull_failure(),
        PullFailure::RegistryUnavailable,
        "{error}"
    );
    assert!(
        error.to_string().starts_with("rpc error: code = "),
        "{error}"
    );
    let error = client
        .pull_image(image_spec("UPPER/Case"), None, None)
        .await
        .unwrap_err();
    assert_eq!(
        error.pull_failure(),
        PullFailure::InvalidReference,
        "{error}"
    );

    client.remove_image(image_spec("nope:1")).await.unwrap();
    drop(private);
}

/// What the fake copies: measured here so that a containerd upgrade that
/// changes them shows up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_answers_edge_cases_as_the_fake_does() {
    let cgroup = CgroupParent::new("edges");
    let (private, client) = start_containerd().await;
    let logs = private.dir().join("pods");
    let config = host_network_sandbox("edges", &logs, &cgroup);
    let sandbox = client.run_pod_sandbox(config.clone(), "").await.unwrap();

    let duplicate = client
        .run_pod_sandbox(config.clone(), "")
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), ErrorCode::Unknown);
    assert!(
        duplicate
            .message()
            .starts_with("failed to reserve sandbox name \"edges_cri-test_uid-edges_0\""),
        "{duplicate}"
    );
    let mut missing_image = busybox_container("missing", &["true"]);
    missing_image.image = Some(image_spec("nope:1"));
    let error = client
        .create_container(&sandbox, missing_image, config.clone())
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotFound);
    // containerd names the image as it was asked for, unnormalized.
    assert_eq!(
        error.message(),
        "failed to resolve image \"nope:1\": not found"
    );
    let error = client
        .create_container("nope", busybox_container("x", &["true"]), config.clone())
        .await
        .unwrap_err();
    assert_eq!(
        error.message(),
        "failed to find sandbox id \"nope\": not found"
    );

    let container = client
        .create_container(
            &sandbox,
            busybox_container("app", &["sleep", "1000"]),
            config.clone(),
        )
        .await
        .unwrap();
    let duplicate = client
        .create_container(
            &sandbox,
            busybox_container("app", &["sleep", "1000"]),
            config.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        duplicate
            .message()
            .starts_with("failed to reserve container name \"app_edges_cri-test_uid-edges_0\""),
        "{duplicate}"
    );
    // Stopping a created container does nothing; exec needs it running.
    client
        .stop_container(&container, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        container_status(&client, &container).await.state,
        api::ContainerState::ContainerCreated as i32
    );
    let error = client
        .exec_sync(&container, vec!["true".to_string()], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            ErrorCode::Unknown,
            "failed to exec in container: container is in CONTAINER_CREATED state"
        )
    );
    client.start_container(&container).await.unwrap();
    let error = client.start_container(&container).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unknown);
    assert!(
        error
            .message()
            .ends_with("container is in CONTAINER_RUNNING state"),
        "{error}"
    );
    // Unique id prefixes work like ids.
    assert_eq!(
        container_status(&client, &container[..12]).await.id,
        container
    );

    let error = client
        .exec_sync(
            &container,
            vec!["sleep".to_string(), "10".to_string()],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(error.is_deadline_exceeded(), "{error}");

    // Removing a running container kills it.
    client.remove_container(&container).await.unwrap();
    assert!(
        client
            .container_status(&container, false)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Absent objects: lookups are NotFound, removals succeed.
    assert!(
        client
            .stop_container("nope", Duration::ZERO)
            .await
            .unwrap_err()
            .is_not_found()
    );
    client.remove_container("nope").await.unwrap();
    assert!(
        client
            .stop_pod_sandbox("nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
    client.remove_pod_sandbox("nope").await.unwrap();
    assert!(
        client
            .pod_sandbox_status("nope", false)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Stopping the sandbox kills what still runs in it; a stopped sandbox
    // takes no new containers.
    let survivor = client
        .create_container(
            &sandbox,
            busybox_container("survivor", &["sleep", "1000"]),
            config.clone(),
        )
        .await
        .unwrap();
    client.start_container(&survivor).await.unwrap();
    client.stop_pod_sandbox(&sandbox).await.unwrap();
    let killed = container_status(&client, &survivor).await;
    assert_eq!(
        (killed.state, killed.exit_code),
        (api::ContainerState::ContainerExited as i32, 137)
    );
    let error = client
        .create_container(
            &sandbox,
            busybox_container("late", &["true"]),
            config.clone(),
        )
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    client.remove_pod_sandbox(&sandbox).await.unwrap();

    // Removing a ready sandbox stops it and removes its containers.
    let second_config = host_network_sandbox("second", &logs, &cgroup);
    let second = client
        .run_pod_sandbox(second_config.clone(), "")
        .await
        .unwrap();
    let inside = client
        .create_container(
            &second,
            busybox_container("inside", &["sleep", "1000"]),
            second_config,
        )
        .await
        .unwrap();
    client.start_container(&inside).await.unwrap();
    client.remove_pod_sandbox(&second).await.unwrap();
    assert!(
        client
            .container_status(&inside, false)
            .await
            .unwrap_err()
            .is_not_found()
    );

    remove_all_sandboxes(&client).await;
    drop(private);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_startup_latencies() {
    const PODS: usize = 5;
    let cgroup = CgroupParent::new("latency");
    let (private, client) = start_containerd().await;
    let mut run_sandbox = Vec::new();
    let mut create = Vec::new();
    let mut start = Vec::new();
    for index in 0..PODS {
        let name = format!("latency-{index}");
        let config = host_network_sandbox(&name, &private.dir().join("pods").join(&name), &cgroup);
        let started = Instant::now();
        let sandbox = client.run_pod_sandbox(config.clone(), "").await.unwrap();
        run_sandbox.push(started.elapsed());
        let started = Instant::now();
        let container = client
            .create_container(
                &sandbox,
                busybox_container("app", &["sleep", "1000"]),
                config,
            )
            .await
            .unwrap();
        create.push(started.elapsed());
        let started = Instant::now();
        client.start_container(&container).await.unwrap();
        start.push(started.elapsed());
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    eprintln!(
        "median of {PODS} (host network, runc): RunPodSandbox {:?}, CreateContainer {:?}, StartContainer {:?}",
        median(&mut run_sandbox),
        median(&mut create),
        median(&mut start)
    );
    let started = Instant::now();
    remove_all_sandboxes(&client).await;
    eprintln!(
        "stopping and removing {PODS} pods took {:?}",
        started.elapsed()
    );
    assert!(client.list_containers(None).await.unwrap().is_empty());
    drop(private);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_containerd_restarts() {
    let (private, client) = start_containerd().await;
    client.version().await.unwrap();
    let first_pid = private.containerd().pid().expect("containerd runs");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut failures = Vec::new();
    loop {
        match client.version().await {
            Ok(version) if private.containerd().pid() != Some(first_pid) => {
                assert_eq!(version.runtime_name, "containerd");
                break;
            }
            Ok(_) => {}
            Err(error) => failures.push(error.code()),
        }
        assert!(
            Instant::now() < deadline,
            "no answer after the restart: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("while containerd restarted, calls failed with {failures:?}");
    // Refused connections and the one broken under a call alike.
    assert!(
        failures.iter().all(|code| *code == ErrorCode::Unavailable),
        "{failures:?}"
    );
    drop(private);
}
