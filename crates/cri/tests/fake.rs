//! The in-memory FakeRuntime through the public traits: lifecycles, filters,
//! containerd's edge-case answers, and the knobs kubelet tests steer it with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cri::fake::{ContainerUsage, FakeRuntime, LogStream, Method};
use cri::{ErrorCode, ExecSyncOutput, ImageService, PullFailure, RuntimeService, api, image_spec};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

fn sandbox_config(name: &str, attempt: u32) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: "default".to_string(),
            attempt,
        }),
        log_directory: format!("/var/log/pods/default_{name}_uid-{name}"),
        labels: HashMap::from([("io.kubernetes.pod.name".to_string(), name.to_string())]),
        ..Default::default()
    }
}

fn container_config(name: &str, attempt: u32) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.to_string(),
            attempt,
        }),
        image: Some(image_spec("busybox")),
        command: vec!["sleep".to_string(), "1000".to_string()],
        log_path: format!("{name}/{attempt}.log"),
        labels: HashMap::from([("io.kubernetes.container.name".to_string(), name.to_string())]),
        ..Default::default()
    }
}

/// A fake with busybox and one running container in one sandbox.
async fn running_pod(fake: &FakeRuntime, pod: &str, container: &str) -> (String, String) {
    let sandbox = fake
        .run_pod_sandbox(sandbox_config(pod, 0), "")
        .await
        .unwrap();
    let id = fake
        .create_container(
            &sandbox,
            container_config(container, 0),
            sandbox_config(pod, 0),
        )
        .await
        .unwrap();
    fake.start_container(&id).await.unwrap();
    (sandbox, id)
}

async fn status_of(fake: &FakeRuntime, container_id: &str) -> api::ContainerStatus {
    fake.container_status(container_id, false)
        .await
        .unwrap()
        .status
        .unwrap()
}

#[tokio::test]
async fn a_pod_lives_and_dies_like_in_containerd() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap();
    assert_eq!(sandbox.len(), 64);
    let sandbox_status = fake
        .pod_sandbox_status(&sandbox, false)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        sandbox_status.state,
        api::PodSandboxState::SandboxReady as i32
    );
    assert!(
        !sandbox_status.network.unwrap().ip.is_empty(),
        "a pod-network sandbox gets an IP"
    );

    let container = fake
        .create_container(
            &sandbox,
            container_config("app", 0),
            sandbox_config("web", 0),
        )
        .await
        .unwrap();
    let created = status_of(&fake, &container).await;
    assert_eq!(created.state, api::ContainerState::ContainerCreated as i32);
    assert_eq!(created.started_at, 0);
    assert_eq!(created.image.unwrap().image, BUSYBOX);
    assert!(created.image_ref.starts_with("sha256:"));
    assert_eq!(
        created.log_path,
        "/var/log/pods/default_web_uid-web/app/0.log"
    );

    fake.start_container(&container).await.unwrap();
    let running = status_of(&fake, &container).await;
    assert_eq!(running.state, api::ContainerState::ContainerRunning as i32);
    assert!(running.started_at > running.created_at);

    fake.stop_container(&container, Duration::from_millis(1500))
        .await
        .unwrap();
    let exited = status_of(&fake, &container).await;
    assert_eq!(exited.state, api::ContainerState::ContainerExited as i32);
    assert_eq!(exited.exit_code, 143);
    assert_eq!(exited.reason, "Error");
    assert!(exited.finished_at > exited.started_at);

    fake.remove_container(&container).await.unwrap();
    fake.stop_pod_sandbox(&sandbox).await.unwrap();
    fake.remove_pod_sandbox(&sandbox).await.unwrap();
    assert!(fake.list_pod_sandbox(None).await.unwrap().is_empty());

    assert_eq!(
        fake.methods_called(),
        [
            Method::RunPodSandbox,
            Method::PodSandboxStatus,
            Method::CreateContainer,
            Method::ContainerStatus,
            Method::StartContainer,
            Method::ContainerStatus,
            Method::StopContainer,
            Method::ContainerStatus,
            Method::RemoveContainer,
            Method::StopPodSandbox,
            Method::RemovePodSandbox,
            Method::ListPodSandbox,
        ]
    );
    let stop = &fake.calls_of(Method::StopContainer)[0];
    assert_eq!(
        (stop.subject.as_str(), stop.detail.as_str()),
        (container.as_str(), "2")
    );
    assert_eq!(fake.calls()[0].subject, "web");
}

#[tokio::test]
async fn names_are_reserved_until_removal() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap();
    let duplicate = fake
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), ErrorCode::Unknown);
    assert!(
        duplicate
            .message()
            .starts_with("failed to reserve sandbox name \"web_default_uid-web_0\""),
        "{duplicate}"
    );
    // Another attempt is another name.
    let second_attempt = fake
        .run_pod_sandbox(sandbox_config("web", 1), "")
        .await
        .unwrap();

    let container = fake
        .create_container(
            &sandbox,
            container_config("app", 0),
            sandbox_config("web", 0),
        )
        .await
        .unwrap();
    let duplicate = fake
        .create_container(
            &sandbox,
            container_config("app", 0),
            sandbox_config("web", 0),
        )
        .await
        .unwrap_err();
    assert!(
        duplicate
            .message()
            .contains("failed to reserve container name \"app_web_default_uid-web_0\"")
    );
    fake.remove_container(&container).await.unwrap();
    fake.create_container(
        &sandbox,
        container_config("app", 0),
        sandbox_config("web", 0),
    )
    .await
    .unwrap();

    fake.remove_pod_sandbox(&second_attempt).await.unwrap();
    fake.run_pod_sandbox(sandbox_config("web", 1), "")
        .await
        .unwrap();
}

#[tokio::test]
async fn filters_select_like_cri() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let (web, web_app) = running_pod(&fake, "web", "app").await;
    let (db, db_app) = running_pod(&fake, "db", "app").await;
    let sidecar = fake
        .create_container(&db, container_config("sidecar", 0), sandbox_config("db", 0))
        .await
        .unwrap();
    fake.stop_pod_sandbox(&web).await.unwrap();

    let ids =
        |containers: Vec<api::Container>| containers.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(fake.list_containers(None).await.unwrap()),
        [web_app.as_str(), db_app.as_str(), sidecar.as_str()]
    );
    let by_sandbox = api::ContainerFilter {
        pod_sandbox_id: db.clone(),
        ..Default::default()
    };
    assert_eq!(
        ids(fake.list_containers(Some(by_sandbox)).await.unwrap()),
        [db_app.as_str(), sidecar.as_str()]
    );
    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        ids(fake.list_containers(Some(running)).await.unwrap()),
        [db_app.as_str()]
    );
    let by_prefix = api::ContainerFilter {
        id: sidecar[..12].to_string(),
        ..Default::default()
    };
    assert_eq!(
        ids(fake.list_containers(Some(by_prefix)).await.unwrap()),
        [sidecar.as_str()]
    );
    let by_label = api::ContainerFilter {
        label_selector: HashMap::from([(
            "io.kubernetes.container.name".to_string(),
            "app".to_string(),
        )]),
        ..Default::default()
    };
    assert_eq!(
        ids(fake.list_containers(Some(by_label)).await.unwrap()),
        [web_app.as_str(), db_app.as_str()]
    );
    let unknown_id = api::ContainerFilter {
        id: "0123".to_string(),
        ..Default::default()
    };
    assert!(
        fake.list_containers(Some(unknown_id))
            .await
            .unwrap()
            .is_empty()
    );

    let ready = api::PodSandboxFilter {
        state: Some(api::PodSandboxStateValue {
            state: api::PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    let sandbox_ids =
        |sandboxes: Vec<api::PodSandbox>| sandboxes.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        sandbox_ids(fake.list_pod_sandbox(Some(ready)).await.unwrap()),
        [db.as_str()]
    );
    let by_label = api::PodSandboxFilter {
        label_selector: HashMap::from([("io.kubernetes.pod.name".to_string(), "web".to_string())]),
        ..Default::default()
    };
    assert_eq!(
        sandbox_ids(fake.list_pod_sandbox(Some(by_label)).await.unwrap()),
        [web.as_str()]
    );
    assert_eq!(
        fake.container_status(&web_app[..10], false)
            .await
            .unwrap()
            .status
            .unwrap()
            .id,
        web_app,
        "unique prefixes name containers"
    );
}

#[tokio::test]
async fn injected_failures_hit_the_next_call_only() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap();
    let container = fake
        .create_container(
            &sandbox,
            container_config("app", 0),
            sandbox_config("web", 0),
        )
        .await
        .unwrap();
    fake.fail_next(
        Method::StartContainer,
        ErrorCode::Unavailable,
        "connection closed",
    );
    fake.fail_next(
        Method::StartContainer,
        ErrorCode::DeadlineExceeded,
        "too slow",
    );

    let first = fake.start_container(&container).await.unwrap_err();
    assert!(first.is_unavailable());
    assert_eq!(first.method(), "StartContainer");
    assert_eq!(
        first.to_string(),
        "rpc error: code = Unavailable desc = connection closed"
    );
    assert!(
        fake.start_container(&container)
            .await
            .unwrap_err()
            .is_deadline_exceeded()
    );
    assert_eq!(
        status_of(&fake, &container).await.state,
        api::ContainerState::ContainerCreated as i32,
        "a failed call changes nothing"
    );
    fake.start_container(&container).await.unwrap();
    assert_eq!(fake.calls_of(Method::StartContainer).len(), 3);
}

#[tokio::test]
async fn knobs_make_containers_exit() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    fake.exit_on_start("crasher", 1, None);
    fake.exit_on_start("hog", 137, Some("OOMKilled"));
    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap();
    let sandbox_config = sandbox_config("web", 0);
    let start = |name: &'static str, attempt: u32| {
        let fake = fake.clone();
        let sandbox = sandbox.clone();
        let sandbox_config = sandbox_config.clone();
        async move {
            let id = fake
                .create_container(&sandbox, container_config(name, attempt), sandbox_config)
                .await
                .unwrap();
            fake.start_container(&id).await.unwrap();
            id
        }
    };

    let crasher = status_of(&fake, &start("crasher", 0).await).await;
    assert_eq!(crasher.state, api::ContainerState::ContainerExited as i32);
    assert_eq!((crasher.exit_code, crasher.reason.as_str()), (1, "Error"));
    assert!(crasher.started_at > 0 && crasher.finished_at > crasher.started_at);

    let hog = status_of(&fake, &start("hog", 0).await).await;
    assert_eq!((hog.exit_code, hog.reason.as_str()), (137, "OOMKilled"));

    fake.run_on_start("crasher");
    let recovered = start("crasher", 1).await;
    assert_eq!(
        status_of(&fake, &recovered).await.state,
        api::ContainerState::ContainerRunning as i32
    );
    fake.exit_container(&recovered, 0, None);
    let completed = status_of(&fake, &recovered).await;
    assert_eq!(
        (completed.exit_code, completed.reason.as_str()),
        (0, "Completed")
    );

    let lost = start("lost", 0).await;
    fake.lose_container(&lost);
    assert_eq!(
        status_of(&fake, &lost).await.state,
        api::ContainerState::ContainerUnknown as i32
    );
    fake.set_stop_exit_code("lost", 0);
    fake.stop_container(&lost, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status_of(&fake, &lost).await.exit_code, 0);
}

#[tokio::test]
async fn absent_objects_are_answered_as_containerd_does() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    assert!(
        fake.container_status("nope", false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        fake.stop_container("nope", Duration::ZERO)
            .await
            .unwrap_err()
            .is_not_found()
    );
    fake.remove_container("nope").await.unwrap();
    assert!(
        fake.pod_sandbox_status("nope", false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        fake.stop_pod_sandbox("nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
    fake.remove_pod_sandbox("nope").await.unwrap();
    let error = fake
        .create_container("nope", container_config("app", 0), sandbox_config("web", 0))
        .await
        .unwrap_err();
    assert_eq!(
        error.message(),
        "failed to find sandbox id \"nope\": not found"
    );

    let sandbox = fake
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap();
    let mut missing_image = container_config("app", 0);
    missing_image.image = Some(image_spec("nope:1"));
    let error = fake
        .create_container(&sandbox, missing_image, sandbox_config("web", 0))
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(
        error.message(),
        "failed to resolve image \"nope:1\": not found"
    );

    fake.stop_pod_sandbox(&sandbox).await.unwrap();
    let error = fake
        .create_container(
            &sandbox,
            container_config("app", 0),
            sandbox_config("web", 0),
        )
        .await
        .unwrap_err();
    assert!(
        error.is_not_found(),
        "a stopped sandbox has no task: {error}"
    );
}

#[tokio::test]
async fn sandboxes_take_their_containers_with_them() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let (sandbox, container) = running_pod(&fake, "web", "app").await;
    fake.stop_pod_sandbox(&sandbox).await.unwrap();
    let killed = status_of(&fake, &container).await;
    assert_eq!(
        (killed.state, killed.exit_code),
        (api::ContainerState::ContainerExited as i32, 137)
    );
    assert_eq!(
        fake.pod_sandbox_status(&sandbox, false)
            .await
            .unwrap()
            .status
            .unwrap()
            .state,
        api::PodSandboxState::SandboxNotready as i32
    );

    // Removing a ready sandbox stops it first, running containers and all.
    let (ready, running) = running_pod(&fake, "db", "app").await;
    fake.remove_pod_sandbox(&ready).await.unwrap();
    assert!(
        fake.container_status(&running, false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Removing a running container kills it.
    let (_, doomed) = running_pod(&fake, "cache", "app").await;
    fake.remove_container(&doomed).await.unwrap();

    fake.remove_pod_sandbox(&sandbox).await.unwrap();
    let left: Vec<String> = fake
        .list_containers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|container| container.id)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn execs_answer_from_the_handler_in_running_containers_only() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let (sandbox, container) = running_pod(&fake, "web", "app").await;
    assert_eq!(
        fake.exec_sync(&container, vec!["true".to_string()], Duration::from_secs(1))
            .await
            .unwrap(),
        ExecSyncOutput::default()
    );
    fake.set_exec_handler(|container_name, command| ExecSyncOutput {
        stdout: format!("{container_name}: {}\n", command.join(" ")).into_bytes(),
        stderr: Vec::new(),
        exit_code: i32::from(command.first().is_some_and(|program| program == "false")),
    });
    let output = fake
        .exec_sync(
            &container,
            vec!["echo".to_string(), "hi".to_string()],
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(
        (output.stdout.as_slice(), output.exit_code),
        (&b"app: echo hi\n"[..], 0)
    );
    let failed = fake
        .exec_sync(&container, vec!["false".to_string()], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(failed.exit_code, 1);
    assert_eq!(fake.calls_of(Method::ExecSync)[1].detail, "echo hi");

    let url = fake
        .exec(api::ExecRequest {
            container_id: container.clone(),
            cmd: vec!["sh".to_string()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:10010/exec/"), "{url}");
    assert!(
        fake.port_forward(&sandbox, vec![80])
            .await
            .unwrap()
            .contains("/portforward/")
    );

    fake.stop_container(&container, Duration::ZERO)
        .await
        .unwrap();
    let error = fake
        .exec_sync(&container, vec!["true".to_string()], Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unknown);
    assert_eq!(
        error.message(),
        "failed to exec in container: container is in CONTAINER_EXITED state"
    );
    let error = fake
        .attach(api::AttachRequest {
            container_id: container,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(error.message().contains("CONTAINER_EXITED"));
}

#[tokio::test]
async fn pulls_add_images_or_fail_as_told() {
    let fake = FakeRuntime::new();
    assert!(
        fake.image_status(image_spec("busybox"), false)
            .await
            .unwrap()
            .image
            .is_none()
    );
    let id = fake
        .pull_image(image_spec("busybox"), None, None)
        .await
        .unwrap();
    assert!(id.starts_with("sha256:"));
    let status = fake
        .image_status(image_spec(BUSYBOX), false)
        .await
        .unwrap()
        .image
        .unwrap();
    assert_eq!(
        (status.id.as_str(), status.repo_tags.as_slice()),
        (id.as_str(), &[BUSYBOX.to_string()][..])
    );
    assert_eq!(
        fake.image_status(image_spec(&id), false)
            .await
            .unwrap()
            .image
            .unwrap()
            .id,
        id
    );
    assert_eq!(
        fake.pull_image(image_spec(BUSYBOX), None, None)
            .await
            .unwrap(),
        id
    );

    fake.fail_pull_not_found("nginx:1.99");
    let error = fake
        .pull_image(image_spec("nginx:1.99"), None, None)
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(error.pull_failure(), PullFailure::NotFound);
    assert!(
        error
            .message()
            .contains("docker.io/library/nginx:1.99: not found")
    );
    fake.fail_pull(
        "registry.example/app",
        ErrorCode::Unknown,
        "failed to resolve reference: dial tcp: lookup registry.example: no such host",
    );
    let unreachable = fake
        .pull_image(image_spec("registry.example/app:latest"), None, None)
        .await
        .unwrap_err();
    assert_eq!(unreachable.pull_failure(), PullFailure::RegistryUnavailable);
    fake.allow_pull("nginx:1.99");
    fake.pull_image(image_spec("nginx:1.99"), None, None)
        .await
        .unwrap();

    let invalid = fake
        .pull_image(image_spec("UPPER/Case"), None, None)
        .await
        .unwrap_err();
    assert_eq!(invalid.pull_failure(), PullFailure::InvalidReference);

    let listed: Vec<String> = fake
        .list_images(None)
        .await
        .unwrap()
        .into_iter()
        .map(|image| image.id)
        .collect();
    assert_eq!(listed.len(), 2);
    let filtered = fake
        .list_images(Some(api::ImageFilter {
            image: Some(image_spec("busybox")),
        }))
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    let fs = fake.image_fs_info().await.unwrap();
    assert!(fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0);

    fake.remove_image(image_spec("busybox")).await.unwrap();
    fake.remove_image(image_spec("busybox")).await.unwrap();
    assert!(
        fake.image_status(image_spec(&id), false)
            .await
            .unwrap()
            .image
            .is_none()
    );
    assert_eq!(
        fake.calls_of(Method::PullImage)
            .iter()
            .map(|call| call.subject.as_str())
            .collect::<Vec<_>>(),
        [
            "busybox",
            BUSYBOX,
            "nginx:1.99",
            "registry.example/app:latest",
            "nginx:1.99",
            "UPPER/Case"
        ]
    );
}

#[tokio::test]
async fn stats_sum_what_the_containers_use() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let (sandbox, app) = running_pod(&fake, "web", "app").await;
    let sidecar = fake
        .create_container(
            &sandbox,
            container_config("sidecar", 0),
            sandbox_config("web", 0),
        )
        .await
        .unwrap();
    fake.start_container(&sidecar).await.unwrap();
    fake.set_container_usage(
        &app,
        ContainerUsage {
            cpu_core_nanoseconds: 1_000,
            memory_working_set_bytes: 4096,
        },
    );
    fake.set_container_usage(
        &sidecar,
        ContainerUsage {
            cpu_core_nanoseconds: 500,
            memory_working_set_bytes: 1024,
        },
    );
    let app_stats = fake.container_stats(&app).await.unwrap();
    assert_eq!(
        app_stats.memory.unwrap().working_set_bytes.unwrap().value,
        4096
    );
    let pod = fake.pod_sandbox_stats(&sandbox).await.unwrap();
    let linux = pod.linux.unwrap();
    assert_eq!(
        linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value,
        1_500
    );
    assert_eq!(linux.memory.unwrap().working_set_bytes.unwrap().value, 5120);
    assert_eq!(linux.process.unwrap().process_count.unwrap().value, 3);
    assert_eq!(linux.containers.len(), 2);
    assert_eq!(fake.list_container_stats(None).await.unwrap().len(), 2);

    let (other, _) = running_pod(&fake, "db", "app").await;
    fake.stop_pod_sandbox(&other).await.unwrap();
    let listed = fake.list_pod_sandbox_stats(None).await.unwrap();
    assert_eq!(listed.len(), 1, "stopped sandboxes have no stats");
    assert!(
        fake.pod_sandbox_stats("nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn status_resources_and_logs() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let conditions = fake.status(false).await.unwrap().status.unwrap().conditions;
    assert!(conditions.iter().all(|condition| condition.status));
    fake.set_condition(
        "NetworkReady",
        false,
        "NetworkPluginNotReady",
        "cni plugin not initialized",
    );
    let conditions = fake.status(false).await.unwrap().status.unwrap().conditions;
    let network = conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert_eq!(
        (network.status, network.reason.as_str()),
        (false, "NetworkPluginNotReady")
    );
    assert_eq!(fake.version().await.unwrap().runtime_api_version, "v1");

    let logs = tempfile::tempdir().unwrap();
    let mut config = sandbox_config("web", 0);
    config.log_directory = logs.path().display().to_string();
    let sandbox = fake.run_pod_sandbox(config.clone(), "").await.unwrap();
    let container = fake
        .create_container(&sandbox, container_config("app", 0), config)
        .await
        .unwrap();
    fake.start_container(&container).await.unwrap();
    fake.write_log(&container, LogStream::Stdout, "hello")
        .unwrap();
    fake.write_log(&container, LogStream::Stderr, "oops")
        .unwrap();
    let text = std::fs::read_to_string(logs.path().join("app/0.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with(" stdout F hello") && lines[0].contains('T') && lines[0].contains("Z ")
    );
    assert!(lines[1].ends_with(" stderr F oops"));
    fake.reopen_container_log(&container).await.unwrap();

    fake.update_container_resources(
        &container,
        api::LinuxContainerResources {
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let resources = status_of(&fake, &container)
        .await
        .resources
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(
        (
            resources.cpu_shares,
            resources.memory_limit_in_bytes,
            resources.memory_swap_limit_in_bytes
        ),
        (512, 64 << 20, 64 << 20)
    );
}

#[tokio::test]
async fn clones_share_one_runtime_behind_trait_objects() {
    let fake = FakeRuntime::with_images(&["busybox"]);
    let runtime: Arc<dyn RuntimeService> = Arc::new(fake.clone());
    let images: Arc<dyn ImageService> = Arc::new(fake.clone());
    images
        .pull_image(image_spec("registry.k8s.io/pause:3.10"), None, None)
        .await
        .unwrap();
    runtime
        .run_pod_sandbox(sandbox_config("web", 0), "")
        .await
        .unwrap();
    assert_eq!(fake.list_pod_sandbox(None).await.unwrap().len(), 1);
    assert_eq!(fake.list_images(None).await.unwrap().len(), 2);
    assert_eq!(
        fake.methods_called()[..2],
        [Method::PullImage, Method::RunPodSandbox]
    );
    fake.clear_calls();
    assert!(fake.calls().is_empty());
}
