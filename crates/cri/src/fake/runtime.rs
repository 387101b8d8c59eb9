//! The fake's `RuntimeService`: sandboxes and containers in memory, with
//! containerd 1.6.20's answers (measured against it) for the edge cases.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    Container, ContainerUsage, Exit, FakeRuntime, IMAGE_FILESYSTEM, KILLED_EXIT_CODE, Method,
    STOPPED_EXIT_CODE, STREAMING_ADDRESS, Sandbox, State, labels_match, resolve_id,
};
use crate::api;
use crate::error::{CriError, ErrorCode};
use crate::service::{ExecSyncOutput, RuntimeService, whole_seconds};

fn error(method: Method, code: ErrorCode, message: impl Into<String>) -> CriError {
    CriError::new(method.name(), code, message)
}

fn container_state_name(state: api::ContainerState) -> &'static str {
    state.as_str_name()
}

/// containerd's name-index keys: one pod sandbox per metadata (and attempt),
/// one container per name and attempt within it.
fn sandbox_name_key(metadata: &api::PodSandboxMetadata) -> String {
    format!(
        "{}_{}_{}_{}",
        metadata.name, metadata.namespace, metadata.uid, metadata.attempt
    )
}

fn container_name_key(
    container: &api::ContainerMetadata,
    sandbox: &api::PodSandboxMetadata,
) -> String {
    format!(
        "{}_{}_{}_{}_{}",
        container.name, sandbox.name, sandbox.namespace, sandbox.uid, container.attempt
    )
}

fn uses_host_network(config: &api::PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|linux| linux.security_context.as_ref())
        .and_then(|context| context.namespace_options.as_ref())
        .is_some_and(|options| options.network == api::NamespaceMode::Node as i32)
}

impl State {
    fn sandbox_id(&self, wanted: &str) -> Option<String> {
        let id = resolve_id(self.sandboxes.keys(), wanted);
        self.sandboxes.contains_key(&id).then_some(id)
    }

    fn container_id(&self, wanted: &str) -> Option<String> {
        let id = resolve_id(self.containers.keys(), wanted);
        self.containers.contains_key(&id).then_some(id)
    }

    fn running_container(
        &self,
        method: Method,
        wanted: &str,
        prefix: &str,
    ) -> Result<&Container, CriError> {
        let container = self
            .container_id(wanted)
            .and_then(|id| self.containers.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!("{prefix}failed to find container \"{wanted}\" in store: not found"),
                )
            })?;
        if container.state != api::ContainerState::ContainerRunning {
            return Err(error(
                method,
                ErrorCode::Unknown,
                format!(
                    "{prefix}container is in {} state",
                    container_state_name(container.state)
                ),
            ));
        }
        Ok(container)
    }

    /// Kills a container that is running (or whose state is unknown), as a
    /// forced removal does.
    fn kill(&mut self, container_id: &str) {
        let now = self.now();
        if let Some(container) = self.containers.get_mut(container_id)
            && matches!(
                container.state,
                api::ContainerState::ContainerRunning | api::ContainerState::ContainerUnknown
            )
        {
            container.exit(now, &Exit::new(KILLED_EXIT_CODE, None));
        }
    }

    fn remove_container_now(&mut self, container_id: &str) {
        self.kill(container_id);
        if let Some(container) = self.containers.remove(container_id) {
            self.reserved_names.remove(&container.name_key);
        }
    }

    fn containers_of(&self, sandbox_id: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|container| container.sandbox_id == sandbox_id)
            .map(|container| container.id.clone())
            .collect()
    }

    fn sorted_containers(&self) -> Vec<&Container> {
        let mut containers: Vec<&Container> = self.containers.values().collect();
        containers.sort_by_key(|container| container.serial);
        containers
    }

    fn container_stats(&self, container: &Container) -> api::ContainerStats {
        let timestamp = self.last_timestamp;
        let value = |value: u64| Some(api::UInt64Value { value });
        api::ContainerStats {
            attributes: Some(api::ContainerAttributes {
                id: container.id.clone(),
                metadata: container.config.metadata.clone(),
                labels: container.config.labels.clone(),
                annotations: container.config.annotations.clone(),
            }),
            cpu: Some(api::CpuUsage {
                timestamp,
                usage_core_nano_seconds: value(container.usage.cpu_core_nanoseconds),
                usage_nano_cores: value(0),
            }),
            memory: Some(api::MemoryUsage {
                timestamp,
                working_set_bytes: value(container.usage.memory_working_set_bytes),
                usage_bytes: value(container.usage.memory_working_set_bytes),
                available_bytes: value(0),
                rss_bytes: value(0),
                page_faults: value(0),
                major_page_faults: value(0),
            }),
            writable_layer: Some(api::FilesystemUsage {
                timestamp,
                fs_id: Some(api::FilesystemIdentifier {
                    mountpoint: IMAGE_FILESYSTEM.to_string(),
                }),
                used_bytes: value(0),
                inodes_used: value(0),
            }),
            swap: None,
        }
    }

    fn pod_sandbox_stats(&self, sandbox: &Sandbox) -> api::PodSandboxStats {
        let containers: Vec<api::ContainerStats> = self
            .sorted_containers()
            .into_iter()
            .filter(|container| container.sandbox_id == sandbox.id)
            .map(|container| self.container_stats(container))
            .collect();
        let running = self
            .containers
            .values()
            .filter(|container| {
                container.sandbox_id == sandbox.id
                    && container.state == api::ContainerState::ContainerRunning
            })
            .count() as u64;
        let total = self
            .containers
            .values()
            .filter(|container| container.sandbox_id == sandbox.id)
            .fold(ContainerUsage::default(), |sum, container| ContainerUsage {
                cpu_core_nanoseconds: sum.cpu_core_nanoseconds
                    + container.usage.cpu_core_nanoseconds,
                memory_working_set_bytes: sum.memory_working_set_bytes
                    + container.usage.memory_working_set_bytes,
            });
        let timestamp = self.last_timestamp;
        let value = |value: u64| Some(api::UInt64Value { value });
        api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes {
                id: sandbox.id.clone(),
                metadata: sandbox.config.metadata.clone(),
                labels: sandbox.config.labels.clone(),
                annotations: sandbox.config.annotations.clone(),
            }),
            linux: Some(api::LinuxPodSandboxStats {
                cpu: Some(api::CpuUsage {
                    timestamp,
                    usage_core_nano_seconds: value(total.cpu_core_nanoseconds),
                    usage_nano_cores: value(0),
                }),
                memory: Some(api::MemoryUsage {
                    timestamp,
                    working_set_bytes: value(total.memory_working_set_bytes),
                    usage_bytes: value(total.memory_working_set_bytes),
                    ..Default::default()
                }),
                network: None,
                // The sandbox's pause process, plus one per running container.
                process: Some(api::ProcessUsage {
                    timestamp,
                    process_count: value(1 + running),
                }),
                containers,
            }),
            windows: None,
        }
    }
}

impl Sandbox {
    fn summary(&self) -> api::PodSandbox {
        api::PodSandbox {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state as i32,
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    fn status(&self) -> api::PodSandboxStatus {
        let namespace_options = self
            .config
            .linux
            .as_ref()
            .and_then(|linux| linux.security_context.as_ref())
            .and_then(|context| context.namespace_options.clone())
            .unwrap_or_default();
        api::PodSandboxStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state as i32,
            created_at: self.created_at,
            network: Some(api::PodSandboxNetworkStatus {
                ip: self.ip.clone(),
                additional_ips: Vec::new(),
            }),
            linux: Some(api::LinuxPodSandboxStatus {
                namespaces: Some(api::Namespace {
                    options: Some(namespace_options),
                }),
            }),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }
}

impl Container {
    fn summary(&self) -> api::Container {
        api::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.sandbox_id.clone(),
            metadata: self.config.metadata.clone(),
            image: Some(self.image.clone()),
            image_ref: self.image_ref.clone(),
            state: self.state as i32,
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            image_id: String::new(),
        }
    }

    fn status(&self) -> api::ContainerStatus {
        api::ContainerStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state as i32,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            image: Some(self.image.clone()),
            image_ref: self.image_ref.clone(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            mounts: self.config.mounts.clone(),
            log_path: self.log_path.clone(),
            resources: Some(api::ContainerResources {
                linux: Some(self.resources.clone()),
                windows: None,
            }),
            image_id: String::new(),
            user: None,
        }
    }
}

/// containerd reports a swap limit equal to the memory limit when none is
/// given (no swap beyond memory).
fn effective_resources(
    mut resources: api::LinuxContainerResources,
) -> api::LinuxContainerResources {
    if resources.memory_swap_limit_in_bytes == 0 {
        resources.memory_swap_limit_in_bytes = resources.memory_limit_in_bytes;
    }
    resources
}

fn random_token(state: &mut State) -> String {
    state.new_id()[..8].to_string()
}

#[async_trait]
impl RuntimeService for FakeRuntime {
    async fn version(&self) -> Result<api::VersionResponse, CriError> {
        self.lock().begin(Method::Version, "", String::new())?;
        Ok(api::VersionResponse {
            version: "0.1.0".to_string(),
            runtime_name: "fake".to_string(),
            runtime_version: "1.6.20-fake".to_string(),
            runtime_api_version: "v1".to_string(),
        })
    }

    async fn status(&self, verbose: bool) -> Result<api::StatusResponse, CriError> {
        let mut state = self.lock();
        state.begin(Method::Status, "", String::new())?;
        state.ensure_default_conditions();
        let info = if verbose {
            HashMap::from([("config".to_string(), "{\"runtime\":\"fake\"}".to_string())])
        } else {
            HashMap::new()
        };
        Ok(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: state.conditions.clone(),
            }),
            info,
            ..Default::default()
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let method = Method::RunPodSandbox;
        let mut state = self.lock();
        let name = config
            .metadata
            .as_ref()
            .map(|metadata| metadata.name.clone())
            .unwrap_or_default();
        state.begin(method, &name, String::new())?;
        let metadata = config.metadata.clone().ok_or_else(|| {
            error(
                method,
                ErrorCode::Unknown,
                "sandbox config must include metadata",
            )
        })?;
        let name_key = sandbox_name_key(&metadata);
        if let Some(holder) = state.reserved_names.get(&name_key) {
            return Err(error(
                method,
                ErrorCode::Unknown,
                format!(
                    "failed to reserve sandbox name \"{name_key}\": name \"{name_key}\" is reserved for \"{holder}\""
                ),
            ));
        }
        let id = state.new_id();
        let serial = state.next_serial();
        // containerd's default bridge range; only ever data, never dialled.
        let ip = if uses_host_network(&config) {
            String::new()
        } else {
            format!("10.88.{}.{}", serial / 250 % 250, serial % 250 + 2)
        };
        let created_at = state.now();
        state.reserved_names.insert(name_key.clone(), id.clone());
        state.sandboxes.insert(
            id.clone(),
            Sandbox {
                id: id.clone(),
                serial,
                config,
                runtime_handler: runtime_handler.to_string(),
                state: api::PodSandboxState::SandboxReady,
                created_at,
                ip,
                name_key,
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let method = Method::StopPodSandbox;
        let mut state = self.lock();
        state.begin(method, pod_sandbox_id, String::new())?;
        let id = state.sandbox_id(pod_sandbox_id).ok_or_else(|| {
            error(
                method,
                ErrorCode::NotFound,
                format!(
                    "an error occurred when try to find sandbox \"{pod_sandbox_id}\": not found"
                ),
            )
        })?;
        for container_id in state.containers_of(&id) {
            state.kill(&container_id);
        }
        if let Some(sandbox) = state.sandboxes.get_mut(&id) {
            sandbox.state = api::PodSandboxState::SandboxNotready;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let mut state = self.lock();
        state.begin(Method::RemovePodSandbox, pod_sandbox_id, String::new())?;
        // containerd stops a ready sandbox and removes its containers rather
        // than refusing; an absent sandbox is already removed.
        let Some(id) = state.sandbox_id(pod_sandbox_id) else {
            return Ok(());
        };
        for container_id in state.containers_of(&id) {
            state.remove_container_now(&container_id);
        }
        if let Some(sandbox) = state.sandboxes.remove(&id) {
            state.reserved_names.remove(&sandbox.name_key);
        }
        Ok(())
    }

    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, CriError> {
        let method = Method::PodSandboxStatus;
        let mut state = self.lock();
        state.begin(method, pod_sandbox_id, String::new())?;
        let sandbox = state
            .sandbox_id(pod_sandbox_id)
            .and_then(|id| state.sandboxes.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    "an error occurred when try to find sandbox: not found",
                )
            })?;
        let info = if verbose {
            HashMap::from([("info".to_string(), format!("{{\"id\":\"{}\"}}", sandbox.id))])
        } else {
            HashMap::new()
        };
        Ok(api::PodSandboxStatusResponse {
            status: Some(sandbox.status()),
            info,
            containers_statuses: Vec::new(),
            timestamp: 0,
        })
    }

    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let mut state = self.lock();
        state.begin(Method::ListPodSandbox, "", String::new())?;
        let filter = filter.unwrap_or_default();
        let wanted_id = resolve_id(state.sandboxes.keys(), &filter.id);
        let mut sandboxes: Vec<&Sandbox> = state
            .sandboxes
            .values()
            .filter(|sandbox| wanted_id.is_empty() || sandbox.id == wanted_id)
            .filter(|sandbox| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|wanted| sandbox.state as i32 == wanted.state)
            })
            .filter(|sandbox| labels_match(&filter.label_selector, &sandbox.config.labels))
            .collect();
        sandboxes.sort_by_key(|sandbox| sandbox.serial);
        Ok(sandboxes.into_iter().map(Sandbox::summary).collect())
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let method = Method::CreateContainer;
        let mut state = self.lock();
        let name = config
            .metadata
            .as_ref()
            .map(|metadata| metadata.name.clone())
            .unwrap_or_default();
        state.begin(method, &name, String::new())?;
        let sandbox = state
            .sandbox_id(pod_sandbox_id)
            .and_then(|id| state.sandboxes.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!("failed to find sandbox id \"{pod_sandbox_id}\": not found"),
                )
            })?;
        if sandbox.state != api::PodSandboxState::SandboxReady {
            return Err(error(
                method,
                ErrorCode::NotFound,
                format!(
                    "failed to get sandbox container task: no running task found: task {} not found: not found",
                    sandbox.id
                ),
            ));
        }
        let metadata = config.metadata.clone().ok_or_else(|| {
            error(
                method,
                ErrorCode::Unknown,
                "container config must include metadata",
            )
        })?;
        let requested_image = config
            .image
            .as_ref()
            .map(|image| image.image.clone())
            .unwrap_or_default();
        let (image_name, image_id) =
            state.resolve_local_image(&requested_image).ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!("failed to resolve image \"{requested_image}\": not found"),
                )
            })?;
        let sandbox_metadata = sandbox.config.metadata.clone().unwrap_or_default();
        let sandbox_id = sandbox.id.clone();
        let log_directory = if sandbox_config.log_directory.is_empty() {
            sandbox.config.log_directory.clone()
        } else {
            sandbox_config.log_directory.clone()
        };
        let name_key = container_name_key(&metadata, &sandbox_metadata);
        if let Some(holder) = state.reserved_names.get(&name_key) {
            return Err(error(
                method,
                ErrorCode::Unknown,
                format!(
                    "failed to reserve container name \"{name_key}\": name \"{name_key}\" is reserved for \"{holder}\""
                ),
            ));
        }
        let log_path = if config.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&log_directory)
                .join(&config.log_path)
                .display()
                .to_string()
        };
        let resources = effective_resources(
            config
                .linux
                .as_ref()
                .and_then(|linux| linux.resources.clone())
                .unwrap_or_default(),
        );
        let id = state.new_id();
        let serial = state.next_serial();
        let created_at = state.now();
        state.reserved_names.insert(name_key.clone(), id.clone());
        let image = api::ImageSpec {
            image: image_name,
            ..config.image.clone().unwrap_or_default()
        };
        state.containers.insert(
            id.clone(),
            Container {
                id: id.clone(),
                serial,
                sandbox_id,
                config,
                image,
                image_ref: image_id,
                log_path,
                state: api::ContainerState::ContainerCreated,
                created_at,
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                message: String::new(),
                resources,
                usage: ContainerUsage::default(),
                name_key,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let method = Method::StartContainer;
        let mut state = self.lock();
        state.begin(method, container_id, String::new())?;
        let id = state.container_id(container_id).ok_or_else(|| {
            error(
                method,
                ErrorCode::NotFound,
                format!(
                    "an error occurred when try to find container \"{container_id}\": not found"
                ),
            )
        })?;
        let container = &state.containers[&id];
        if container.state != api::ContainerState::ContainerCreated {
            return Err(error(
                method,
                ErrorCode::Unknown,
                format!(
                    "failed to set starting state for container \"{id}\": container is in {} state",
                    container_state_name(container.state)
                ),
            ));
        }
        let sandbox_ready = state
            .sandboxes
            .get(&container.sandbox_id)
            .is_some_and(|sandbox| sandbox.state == api::PodSandboxState::SandboxReady);
        if !sandbox_ready {
            return Err(error(
                method,
                ErrorCode::Unknown,
                format!(
                    "sandbox container \"{}\" is not running",
                    container.sandbox_id
                ),
            ));
        }
        let name = container
            .config
            .metadata
            .as_ref()
            .map(|metadata| metadata.name.clone())
            .unwrap_or_default();
        let exit = state.exits_on_start.get(&name).cloned();
        let started_at = state.now();
        let finished_at = exit.as_ref().map(|_| state.now());
        let container = state.containers.get_mut(&id).expect("looked up above");
        container.state = api::ContainerState::ContainerRunning;
        container.started_at = started_at;
        if let (Some(exit), Some(finished_at)) = (exit, finished_at) {
            container.exit(finished_at, &exit);
        }
        Ok(())
    }

    async fn stop_container(
        &self,
        container_id: &str,
        grace_period: Duration,
    ) -> Result<(), CriError> {
        let method = Method::StopContainer;
        let mut state = self.lock();
        state.begin(
            method,
            container_id,
            whole_seconds(grace_period).to_string(),
        )?;
        let id = state.container_id(container_id).ok_or_else(|| {
            error(
                method,
                ErrorCode::NotFound,
                format!(
                    "an error occurred when try to find container \"{container_id}\": not found"
                ),
            )
        })?;
        let name = state.containers[&id]
            .config
            .metadata
            .as_ref()
            .map(|metadata| metadata.name.clone())
            .unwrap_or_default();
        let exit_code = state
            .stop_exit_codes
            .get(&name)
            .copied()
            .unwrap_or(STOPPED_EXIT_CODE);
        let now = state.now();
        let container = state.containers.get_mut(&id).expect("looked up above");
        // Stopping a created or exited container is a no-op in containerd.
        if matches!(
            container.state,
            api::ContainerState::ContainerRunning | api::ContainerState::ContainerUnknown
        ) {
            container.exit(now, &Exit::new(exit_code, None));
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let mut state = self.lock();
        state.begin(Method::RemoveContainer, container_id, String::new())?;
        // containerd kills a running container rather than refusing, and
        // treats an absent one as removed.
        if let Some(id) = state.container_id(container_id) {
            state.remove_container_now(&id);
        }
        Ok(())
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let mut state = self.lock();
        state.begin(Method::ListContainers, "", String::new())?;
        let filter = filter.unwrap_or_default();
        let wanted_id = resolve_id(state.containers.keys(), &filter.id);
        let wanted_sandbox = resolve_id(state.sandboxes.keys(), &filter.pod_sandbox_id);
        Ok(state
            .sorted_containers()
            .into_iter()
            .filter(|container| wanted_id.is_empty() || container.id == wanted_id)
            .filter(|container| wanted_sandbox.is_empty() || container.sandbox_id == wanted_sandbox)
            .filter(|container| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|wanted| container.state as i32 == wanted.state)
            })
            .filter(|container| labels_match(&filter.label_selector, &container.config.labels))
            .map(Container::summary)
            .collect())
    }

    async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse, CriError> {
        let method = Method::ContainerStatus;
        let mut state = self.lock();
        state.begin(method, container_id, String::new())?;
        let container = state
            .container_id(container_id)
            .and_then(|id| state.containers.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!(
                        "an error occurred when try to find container \"{container_id}\": not found"
                    ),
                )
            })?;
        let info = if verbose {
            HashMap::from([(
                "info".to_string(),
                format!("{{\"sandboxID\":\"{}\"}}", container.sandbox_id),
            )])
        } else {
            HashMap::new()
        };
        Ok(api::ContainerStatusResponse {
            status: Some(container.status()),
            info,
        })
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: api::LinuxContainerResources,
    ) -> Result<(), CriError> {
        let method = Method::UpdateContainerResources;
        let mut state = self.lock();
        state.begin(method, container_id, String::new())?;
        let id = state.container_id(container_id).ok_or_else(|| {
            error(
                method,
                ErrorCode::NotFound,
                "failed to find container: not found",
            )
        })?;
        let container = state.containers.get_mut(&id).expect("looked up above");
        container.resources = effective_resources(resources);
        Ok(())
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<(), CriError> {
        let method = Method::ReopenContainerLog;
        let mut state = self.lock();
        state.begin(method, container_id, String::new())?;
        let container = state
            .container_id(container_id)
            .and_then(|id| state.containers.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!(
                        "an error occurred when try to find container \"{container_id}\": not found"
                    ),
                )
            })?;
        if container.state != api::ContainerState::ContainerRunning {
            return Err(error(
                method,
                ErrorCode::Unknown,
                "container is not running",
            ));
        }
        Ok(())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        command: Vec<String>,
        _timeout: Duration,
    ) -> Result<ExecSyncOutput, CriError> {
        let method = Method::ExecSync;
        let (name, handler) = {
            let mut state = self.lock();
            state.begin(method, container_id, command.join(" "))?;
            let container =
                state.running_container(method, container_id, "failed to exec in container: ")?;
            let name = container
                .config
                .metadata
                .as_ref()
                .map(|metadata| metadata.name.clone())
                .unwrap_or_default();
            (name, state.exec_handler.clone())
        };
        // The handler runs unlocked: it may well call back into the fake.
        Ok(match handler {
            Some(handler) => handler(&name, &command),
            None => ExecSyncOutput::default(),
        })
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String, CriError> {
        let method = Method::Exec;
        let mut state = self.lock();
        state.begin(method, &request.container_id, request.cmd.join(" "))?;
        state.running_container(method, &request.container_id, "")?;
        Ok(format!(
            "{STREAMING_ADDRESS}/exec/{}",
            random_token(&mut state)
        ))
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String, CriError> {
        let method = Method::Attach;
        let mut state = self.lock();
        state.begin(method, &request.container_id, String::new())?;
        state.running_container(method, &request.container_id, "")?;
        Ok(format!(
            "{STREAMING_ADDRESS}/attach/{}",
            random_token(&mut state)
        ))
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        ports: Vec<i32>,
    ) -> Result<String, CriError> {
        let method = Method::PortForward;
        let mut state = self.lock();
        let detail = ports
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        state.begin(method, pod_sandbox_id, detail)?;
        let sandbox = state
            .sandbox_id(pod_sandbox_id)
            .and_then(|id| state.sandboxes.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!("failed to find sandbox \"{pod_sandbox_id}\" in store: not found"),
                )
            })?;
        if sandbox.state != api::PodSandboxState::SandboxReady {
            return Err(error(
                method,
                ErrorCode::Unknown,
                format!("sandbox container \"{}\" is not running", sandbox.id),
            ));
        }
        Ok(format!(
            "{STREAMING_ADDRESS}/portforward/{}",
            random_token(&mut state)
        ))
    }

    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats, CriError> {
        let method = Method::ContainerStats;
        let mut state = self.lock();
        state.begin(method, container_id, String::new())?;
        state.now();
        let container = state
            .container_id(container_id)
            .and_then(|id| state.containers.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    "failed to find container: not found",
                )
            })?;
        Ok(state.container_stats(container))
    }

    async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>, CriError> {
        let mut state = self.lock();
        state.begin(Method::ListContainerStats, "", String::new())?;
        state.now();
        let filter = filter.unwrap_or_default();
        let wanted_id = resolve_id(state.containers.keys(), &filter.id);
        let wanted_sandbox = resolve_id(state.sandboxes.keys(), &filter.pod_sandbox_id);
        Ok(state
            .sorted_containers()
            .into_iter()
            .filter(|container| wanted_id.is_empty() || container.id == wanted_id)
            .filter(|container| wanted_sandbox.is_empty() || container.sandbox_id == wanted_sandbox)
            .filter(|container| labels_match(&filter.label_selector, &container.config.labels))
            .map(|container| state.container_stats(container))
            .collect())
    }

    async fn pod_sandbox_stats(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<api::PodSandboxStats, CriError> {
        let method = Method::PodSandboxStats;
        let mut state = self.lock();
        state.begin(method, pod_sandbox_id, String::new())?;
        state.now();
        let sandbox = state
            .sandbox_id(pod_sandbox_id)
            .and_then(|id| state.sandboxes.get(&id))
            .ok_or_else(|| {
                error(
                    method,
                    ErrorCode::NotFound,
                    format!("an error occurred when trying to find sandbox \"{pod_sandbox_id}\": not found"),
                )
            })?;
        Ok(state.pod_sandbox_stats(sandbox))
    }

    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>, CriError> {
        let mut state = self.lock();
        state.begin(Method::ListPodSandboxStats, "", String::new())?;
        state.now();
        let filter = filter.unwrap_or_default();
        let wanted_id = resolve_id(state.sandboxes.keys(), &filter.id);
        let mut sandboxes: Vec<&Sandbox> = state
            .sandboxes
            .values()
            // A stopped sandbox has no cgroup left to measure.
            .filter(|sandbox| sandbox.state == api::PodSandboxState::SandboxReady)
            .filter(|sandbox| wanted_id.is_empty() || sandbox.id == wanted_id)
            .filter(|sandbox| labels_match(&filter.label_selector, &sandbox.config.labels))
            .collect();
        sandboxes.sort_by_key(|sandbox| sandbox.serial);
        Ok(sandboxes
            .into_iter()
            .map(|sandbox| state.pod_sandbox_stats(sandbox))
            .collect())
    }
}
