//! The CRI client over a runtime's unix socket: one HTTP/2 channel shared by
//! every clone, a deadline on every call.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api;
use crate::error::{CriError, ErrorCode};
use crate::service::{ExecSyncOutput, ImageService, RuntimeService, whole_seconds};

/// The kubelet's `--runtime-request-timeout` default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The kubelet puts no deadline on pulls (large images on slow links take
/// long), but containerd 1.6 has no progress timeout of its own, so a stalled
/// registry would hold a pod's worker forever: bound it generously.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long establishing the connection to the socket may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The kubelet's limit: a node with thousands of containers answers
/// `ListContainers` with more than gRPC's 4 MiB default.
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The CRI version the kubelet announces in `VersionRequest`.
const KUBELET_CRI_VERSION: &str = "0.1.0";

/// Deadlines of the client's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CriClientOptions {
    /// Every call but pulls; `StopContainer` and `ExecSync` get their own
    /// timeout on top, as in the kubelet.
    pub request_timeout: Duration,
    pub pull_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for CriClientOptions {
    fn default() -> Self {
        CriClientOptions {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A connected CRI runtime. Cloning shares the connection.
#[derive(Clone, Debug)]
pub struct CriClient {
    channel: Channel,
    options: CriClientOptions,
}

/// Connects to `unix:///path/to/socket` (or a bare socket path) with the
/// default deadlines.
pub async fn connect(endpoint: &str) -> Result<CriClient, CriError> {
    connect_with_options(endpoint, CriClientOptions::default()).await
}

/// Connects with the given deadlines. The connection is made now, so that a
/// wrong or dead endpoint shows at once; later it is re-established on
/// demand if the runtime restarts.
pub async fn connect_with_options(
    endpoint: &str,
    options: CriClientOptions,
) -> Result<CriClient, CriError> {
    let socket = socket_path(endpoint)?;
    let connect_error = |message: String| CriError::new("Connect", ErrorCode::Unavailable, message);
    // The URI only satisfies tonic; the connector below ignores it.
    let channel = Endpoint::from_static("http://cri.invalid")
        .connect_timeout(options.connect_timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .map_err(|error| {
            connect_error(format!(
                "cannot connect to {endpoint}: {}",
                error_chain(&error)
            ))
        })?;
    Ok(CriClient { channel, options })
}

/// The socket path of `unix:///path` or of a bare path, like the kubelet's
/// `--container-runtime-endpoint`.
fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
    let invalid = |why: &str| {
        CriError::new(
            "Connect",
            ErrorCode::InvalidArgument,
            format!("invalid CRI endpoint {endpoint:?}: {why}"),
        )
    };
    let path = match endpoint.strip_prefix("unix://") {
        Some(path) => path,
        None if endpoint.contains("://") => {
            return Err(invalid("only unix:// endpoints are supported"));
        }
        None => endpoint,
    };
    if path.is_empty() {
        return Err(invalid("no socket path"));
    }
    Ok(PathBuf::from(path))
}

/// tonic's transport errors say little at the top ("transport error"); the
/// cause (no such file, connection refused) is in the source chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl CriClient {
    pub fn options(&self) -> CriClientOptions {
        self.options
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// The request deadline extended by `extra`, or none when `extra` is
    /// `None` (the caller asked to wait without limit).
    fn extended_deadline(&self, extra: Option<Duration>) -> Option<Duration> {
        extra.map(|extra| self.options.request_timeout.saturating_add(extra))
    }
}

fn request<T>(message: T, deadline: Option<Duration>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(deadline) = deadline {
        // Tells the runtime too, so that it gives up when we do.
        request.set_timeout(deadline);
    }
    request
}

/// Awaits one call under its deadline and turns gRPC failures into
/// [`CriError`]s.
async fn unary<T>(
    method: &'static str,
    deadline: Option<Duration>,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    let started = Instant::now();
    // The grpc-timeout header alone relies on the server honouring it; a local
    // timer also covers a runtime that has stopped reading the socket.
    let outcome = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, call).await {
            Ok(outcome) => outcome,
            Err(_) => return Err(deadline_exceeded(method, deadline)),
        },
        None => call.await,
    };
    match outcome {
        Ok(response) => {
            tracing::trace!(method, elapsed = ?started.elapsed(), "CRI call");
            Ok(response.into_inner())
        }
        Err(status) => {
            let error = match deadline {
                // tonic enforces the grpc-timeout header itself and reports
                // its expiry as Cancelled; Go clients (and the kubelet's
                // logic) call that DeadlineExceeded.
                Some(deadline)
                    if status.code() == tonic::Code::Cancelled && started.elapsed() >= deadline =>
                {
                    deadline_exceeded(method, deadline)
                }
                _ => CriError::from_status(method, &status),
            };
            tracing::debug!(method, elapsed = ?started.elapsed(), %error, "CRI call failed");
            Err(error)
        }
    }
}

fn deadline_exceeded(method: &'static str, deadline: Duration) -> CriError {
    CriError::new(
        method,
        ErrorCode::DeadlineExceeded,
        format!("no answer within {deadline:?}"),
    )
}

fn missing(method: &'static str, field: &str) -> CriError {
    CriError::new(
        method,
        ErrorCode::Internal,
        format!("the runtime's answer has no {field}"),
    )
}

#[async_trait]
impl RuntimeService for CriClient {
    async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let message = api::VersionRequest {
            version: KUBELET_CRI_VERSION.to_string(),
        };
        let deadline = Some(self.options.request_timeout);
        unary(
            "Version",
            deadline,
            self.runtime().version(request(message, deadline)),
        )
        .await
    }

    async fn status(&self, verbose: bool) -> Result<api::StatusResponse, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::StatusRequest { verbose };
        unary(
            "Status",
            deadline,
            self.runtime().status(request(message, deadline)),
        )
        .await
    }

    async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        let response = unary(
            "RunPodSandbox",
            deadline,
            self.runtime().run_pod_sandbox(request(message, deadline)),
        )
        .await?;
        if response.pod_sandbox_id.is_empty() {
            return Err(missing("RunPodSandbox", "pod sandbox id"));
        }
        Ok(response.pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        unary(
            "StopPodSandbox",
            deadline,
            self.runtime().stop_pod_sandbox(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        unary(
            "RemovePodSandbox",
            deadline,
            self.runtime()
                .remove_pod_sandbox(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            verbose,
        };
        let response = unary(
            "PodSandboxStatus",
            deadline,
            self.runtime()
                .pod_sandbox_status(request(message, deadline)),
        )
        .await?;
        if response.status.is_none() {
            return Err(missing("PodSandboxStatus", "status"));
        }
        Ok(response)
    }

    async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ListPodSandboxRequest { filter };
        let response = unary(
            "ListPodSandbox",
            deadline,
            self.runtime().list_pod_sandbox(request(message, deadline)),
        )
        .await?;
        Ok(response.items)
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let response = unary(
            "CreateContainer",
            deadline,
            self.runtime().create_container(request(message, deadline)),
        )
        .await?;
        if response.container_id.is_empty() {
            return Err(missing("CreateContainer", "container id"));
        }
        Ok(response.container_id)
    }

    async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::StartContainerRequest {
            container_id: container_id.to_string(),
        };
        unary(
            "StartContainer",
            deadline,
            self.runtime().start_container(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn stop_container(
        &self,
        container_id: &str,
        grace_period: Duration,
    ) -> Result<(), CriError> {
        // The runtime waits out the grace period before it answers.
        let deadline = self.extended_deadline(Some(grace_period));
        let message = api::StopContainerRequest {
            container_id: container_id.to_string(),
            timeout: whole_seconds(grace_period),
        };
        unary(
            "StopContainer",
            deadline,
            self.runtime().stop_container(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::RemoveContainerRequest {
            container_id: container_id.to_string(),
        };
        unary(
            "RemoveContainer",
            deadline,
            self.runtime().remove_container(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ListContainersRequest { filter };
        let response = unary(
            "ListContainers",
            deadline,
            self.runtime().list_containers(request(message, deadline)),
        )
        .await?;
        Ok(response.containers)
    }

    async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ContainerStatusRequest {
            container_id: container_id.to_string(),
            verbose,
        };
        let response = unary(
            "ContainerStatus",
            deadline,
            self.runtime().container_status(request(message, deadline)),
        )
        .await?;
        if response.status.is_none() {
            return Err(missing("ContainerStatus", "status"));
        }
        Ok(response)
    }

    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: api::LinuxContainerResources,
    ) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::UpdateContainerResourcesRequest {
            container_id: container_id.to_string(),
            linux: Some(resources),
            ..Default::default()
        };
        unary(
            "UpdateContainerResources",
            deadline,
            self.runtime()
                .update_container_resources(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ReopenContainerLogRequest {
            container_id: container_id.to_string(),
        };
        unary(
            "ReopenContainerLog",
            deadline,
            self.runtime()
                .reopen_container_log(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncOutput, CriError> {
        // As the kubelet: no deadline for an unbounded command, otherwise the
        // command's own timeout plus time for the runtime to clean up.
        let deadline = self.extended_deadline((!timeout.is_zero()).then_some(timeout));
        let message = api::ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd: command,
            timeout: whole_seconds(timeout),
        };
        let response = unary(
            "ExecSync",
            deadline,
            self.runtime().exec_sync(request(message, deadline)),
        )
        .await?;
        Ok(ExecSyncOutput {
            stdout: response.stdout,
            stderr: response.stderr,
            exit_code: response.exit_code,
        })
    }

    async fn exec(&self, message: api::ExecRequest) -> Result<String, CriError> {
        let deadline = Some(self.options.request_timeout);
        let response = unary(
            "Exec",
            deadline,
            self.runtime().exec(request(message, deadline)),
        )
        .await?;
        Ok(response.url)
    }

    async fn attach(&self, message: api::AttachRequest) -> Result<String, CriError> {
        let deadline = Some(self.options.request_timeout);
        let response = unary(
            "Attach",
            deadline,
            self.runtime().attach(request(message, deadline)),
        )
        .await?;
        Ok(response.url)
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        ports: Vec<i32>,
    ) -> Result<String, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::PortForwardRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            port: ports,
        };
        let response = unary(
            "PortForward",
            deadline,
            self.runtime().port_forward(request(message, deadline)),
        )
        .await?;
        Ok(response.url)
    }

    async fn container_stats(&self, container_id: &str) -> Result<api::ContainerStats, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ContainerStatsRequest {
            container_id: container_id.to_string(),
        };
        let response = unary(
            "ContainerStats",
            deadline,
            self.runtime().container_stats(request(message, deadline)),
        )
        .await?;
        response
            .stats
            .ok_or_else(|| missing("ContainerStats", "stats"))
    }

    async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ListContainerStatsRequest { filter };
        let response = unary(
            "ListContainerStats",
            deadline,
            self.runtime()
                .list_container_stats(request(message, deadline)),
        )
        .await?;
        Ok(response.stats)
    }

    async fn pod_sandbox_stats(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<api::PodSandboxStats, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::PodSandboxStatsRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        let response = unary(
            "PodSandboxStats",
            deadline,
            self.runtime().pod_sandbox_stats(request(message, deadline)),
        )
        .await?;
        response
            .stats
            .ok_or_else(|| missing("PodSandboxStats", "stats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ListPodSandboxStatsRequest { filter };
        let response = unary(
            "ListPodSandboxStats",
            deadline,
            self.runtime()
                .list_pod_sandbox_stats(request(message, deadline)),
        )
        .await?;
        Ok(response.stats)
    }
}

#[async_trait]
impl ImageService for CriClient {
    async fn list_images(
        &self,
        filter: Option<api::ImageFilter>,
    ) -> Result<Vec<api::Image>, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ListImagesRequest { filter };
        let response = unary(
            "ListImages",
            deadline,
            self.images().list_images(request(message, deadline)),
        )
        .await?;
        Ok(response.images)
    }

    async fn image_status(
        &self,
        image: api::ImageSpec,
        verbose: bool,
    ) -> Result<api::ImageStatusResponse, CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::ImageStatusRequest {
            image: Some(image),
            verbose,
        };
        unary(
            "ImageStatus",
            deadline,
            self.images().image_status(request(message, deadline)),
        )
        .await
    }

    async fn pull_image(
        &self,
        image: api::ImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let deadline = Some(self.options.pull_timeout);
        let message = api::PullImageRequest {
            image: Some(image),
            auth,
            sandbox_config,
        };
        let response = unary(
            "PullImage",
            deadline,
            self.images().pull_image(request(message, deadline)),
        )
        .await?;
        if response.image_ref.is_empty() {
            return Err(missing("PullImage", "image reference"));
        }
        Ok(response.image_ref)
    }

    async fn remove_image(&self, image: api::ImageSpec) -> Result<(), CriError> {
        let deadline = Some(self.options.request_timeout);
        let message = api::RemoveImageRequest { image: Some(image) };
        unary(
            "RemoveImage",
            deadline,
            self.images().remove_image(request(message, deadline)),
        )
        .await?;
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse, CriError> {
        let deadline = Some(self.options.request_timeout);
        unary(
            "ImageFsInfo",
            deadline,
            self.images()
                .image_fs_info(request(api::ImageFsInfoRequest {}, deadline)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_like_the_kubelet() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/tmp/c.sock").unwrap(),
            PathBuf::from("/tmp/c.sock")
        );
        assert_eq!(
            socket_path("tcp://127.0.0.1:1234").unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            socket_path("unix://").unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            socket_path("").unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }

    #[tokio::test]
    async fn connecting_to_a_missing_socket_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("unix://{}/nothing.sock", dir.path().display());
        let error = connect(&endpoint).await.unwrap_err();
        assert!(error.is_unavailable(), "{error:?}");
        assert_eq!(error.method(), "Connect");
        assert!(error.message().contains("No such file"), "{error:?}");
    }

    #[tokio::test]
    async fn a_silent_runtime_hits_the_deadline() {
        // A listener that accepts and never answers: HTTP/2 never completes,
        // so the call can only end by our own timer.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("silent.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let options = CriClientOptions {
            request_timeout: Duration::from_millis(200),
            ..CriClientOptions::default()
        };
        let client = connect_with_options(&format!("unix://{}", socket.display()), options)
            .await
            .unwrap();
        let error = client.version().await.unwrap_err();
        assert!(error.is_deadline_exceeded(), "{error:?}");
        assert_eq!(error.method(), "Version");
        held.abort();
    }
}
