//! The runtime and image services a kubelet calls, as traits over CRI v1's
//! message types: [`crate::CriClient`] implements them against a real
//! runtime, [`crate::fake::FakeRuntime`] in memory.

use std::time::Duration;

use async_trait::async_trait;

use crate::api;
use crate::error::CriError;

/// What `ExecSync` answered: the command's whole output and its exit code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSyncOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// CRI's `RuntimeService`: pod sandboxes, containers, exec, stats.
///
/// Durations are rounded up to whole seconds where CRI counts in seconds, so
/// that a grace period is never shortened.
#[async_trait]
pub trait RuntimeService: Send + Sync {
    /// The runtime's name and version (`containerd`, `v1.6.20`) and the CRI
    /// version it speaks.
    async fn version(&self) -> Result<api::VersionResponse, CriError>;

    /// The runtime's conditions (`RuntimeReady`, `NetworkReady`); `verbose`
    /// adds the runtime's configuration to `info`.
    async fn status(&self, verbose: bool) -> Result<api::StatusResponse, CriError>;

    /// Creates and starts a pod sandbox; returns its id. `runtime_handler` is
    /// the RuntimeClass handler, empty for the default.
    async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError>;

    /// Stops the sandbox and every container in it (the kubelet stops the
    /// containers first, with their grace periods).
    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError>;

    /// Removes a stopped sandbox and its containers; removing an absent one
    /// succeeds.
    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError>;

    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, CriError>;

    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError>;

    /// Creates a container in a sandbox; `sandbox_config` is the config the
    /// sandbox was run with. Returns the container's id.
    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError>;

    async fn start_container(&self, container_id: &str) -> Result<(), CriError>;

    /// Sends the stop signal, then SIGKILL once `grace_period` has passed.
    /// Stopping a container that is not running succeeds.
    async fn stop_container(
        &self,
        container_id: &str,
        grace_period: Duration,
    ) -> Result<(), CriError>;

    /// Removes a container that is not running; removing an absent one
    /// succeeds.
    async fn remove_container(&self, container_id: &str) -> Result<(), CriError>;

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError>;

    async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse, CriError>;

    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: api::LinuxContainerResources,
    ) -> Result<(), CriError>;

    /// Makes the runtime reopen the container's log file (after the kubelet
    /// rotated it).
    async fn reopen_container_log(&self, container_id: &str) -> Result<(), CriError>;

    /// Runs `command` in the container and waits for it; `timeout` of zero
    /// waits for as long as the command runs. A command that runs and fails is
    /// an `Ok` with its exit code, not an error.
    async fn exec_sync(
        &self,
        container_id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncOutput, CriError>;

    /// Prepares a streaming exec session; returns the URL the client
    /// connects to (websocket or SPDY).
    async fn exec(&self, request: api::ExecRequest) -> Result<String, CriError>;

    /// Prepares a streaming attach session; returns its URL.
    async fn attach(&self, request: api::AttachRequest) -> Result<String, CriError>;

    /// Prepares a port-forwarding session into the sandbox's network
    /// namespace; returns its URL.
    async fn port_forward(&self, pod_sandbox_id: &str, ports: Vec<i32>)
    -> Result<String, CriError>;

    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats, CriError>;

    async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>, CriError>;

    /// The sandbox's own cgroup and network usage with its containers' stats.
    async fn pod_sandbox_stats(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<api::PodSandboxStats, CriError>;

    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>, CriError>;
}

/// CRI's `ImageService`.
#[async_trait]
pub trait ImageService: Send + Sync {
    async fn list_images(
        &self,
        filter: Option<api::ImageFilter>,
    ) -> Result<Vec<api::Image>, CriError>;

    /// The image's status; `image` is `None` in the answer when the image is
    /// not present (that is not an error).
    async fn image_status(
        &self,
        image: api::ImageSpec,
        verbose: bool,
    ) -> Result<api::ImageStatusResponse, CriError>;

    /// Pulls an image with optional registry credentials; returns the image's
    /// reference as the runtime knows it (containerd: the `sha256:` image id).
    async fn pull_image(
        &self,
        image: api::ImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError>;

    /// Removes an image by tag, digest or id; removing an absent one succeeds.
    async fn remove_image(&self, image: api::ImageSpec) -> Result<(), CriError>;

    /// The filesystems images (and containers' writable layers) live on.
    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse, CriError>;
}

/// An image spec naming `image` (a tag, digest or id) with nothing else set.
pub fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// A duration as CRI's whole seconds, rounded up.
pub(crate) fn whole_seconds(duration: Duration) -> i64 {
    let seconds = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_durations_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_500)), 31);
        assert_eq!(whole_seconds(Duration::MAX), i64::MAX);
    }
}
