//! Runs one Kubernetes container probe (exec, httpGet, tcpSocket, grpc) or lifecycle hook (exec, httpGet, sleep) and reports its outcome with upstream kubelet's verdicts and messages; when to probe and what results mean is `kubelet::probes`'.
//!
//! Exec goes through the caller's [`ExecRunner`] (the CRI client lives
//! elsewhere); the network probes run from the node, as upstream's do.

mod dial;
pub mod exec;
mod go_text;
pub mod grpc;
pub mod http;
pub mod lifecycle;
pub mod port;
mod tls;
mod url;

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use kubelet::probes::{ProbeOutcome, ProbeSettings};

pub use lifecycle::{HookOutcome, PodEvent, run_handler};

/// The Kubernetes version in the User-Agent of probes (`kube-probe/1.33`)
/// and hooks (`kube-lifecycle/1.33`); the one krust's API server reports.
pub const KUBERNETES_VERSION: &str = "1.33";

/// Upstream runs a probe up to this many times while it errors (rather
/// than fails).
pub const MAX_PROBE_ATTEMPTS: usize = 3;

/// What a command run in a container produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// Why a command could not be run to completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// The runtime gave up at the timeout (CRI's DeadlineExceeded).
    Timeout,
    /// Any other runtime failure, as the runtime words it.
    Runtime(String),
}

/// Runs a command in a container synchronously, as CRI's `ExecSync`.
#[async_trait]
pub trait ExecRunner: Send + Sync {
    /// `timeout` zero means no limit.
    async fn exec_sync(
        &self,
        container_id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError>;
}

/// The container a probe or hook acts on.
#[derive(Clone, Copy, Debug)]
pub struct ActionTarget<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// The runtime's container id, without the `containerd://` prefix.
    pub container_id: &'a str,
    /// The pod's (first) IP: where network actions go unless they name a
    /// host; grpc probes always go there.
    pub pod_ip: Option<&'a str>,
}

/// Runs `probe` once against the target within the probe's timeout, as
/// upstream's prober does, including its retries of runs that error.
pub async fn run_probe(
    probe: &Probe,
    target: &ActionTarget<'_>,
    runner: &dyn ExecRunner,
) -> ProbeOutcome {
    let timeout = ProbeSettings::from_probe(probe).timeout();
    let mut outcome = run_probe_once(probe, target, runner, timeout).await;
    for _ in 1..MAX_PROBE_ATTEMPTS {
        if !matches!(outcome, ProbeOutcome::Error(_)) {
            break;
        }
        outcome = run_probe_once(probe, target, runner, timeout).await;
    }
    outcome
}

async fn run_probe_once(
    probe: &Probe,
    target: &ActionTarget<'_>,
    runner: &dyn ExecRunner,
    timeout: Duration,
) -> ProbeOutcome {
    let pod_ip = target.pod_ip.unwrap_or("");
    if let Some(action) = &probe.exec {
        return exec::probe(
            action,
            target.container,
            target.container_id,
            timeout,
            runner,
        )
        .await;
    }
    if let Some(action) = &probe.http_get {
        return match http::GetRequest::for_action(action, target.container, pod_ip, "probe") {
            Ok(request) => http::probe(&request, timeout).await,
            Err(error) => ProbeOutcome::Error(error),
        };
    }
    if let Some(action) = &probe.tcp_socket {
        let port = match port::resolve_container_port(&action.port, target.container) {
            Ok(port) => port,
            Err(error) => return ProbeOutcome::Error(error),
        };
        let host = action
            .host
            .as_deref()
            .filter(|host| !host.is_empty())
            .unwrap_or(pod_ip);
        return probe_tcp(host, port, timeout).await;
    }
    if let Some(action) = &probe.grpc {
        let service = action.service.as_deref().unwrap_or("");
        return grpc::probe(pod_ip, action.port, service, timeout).await;
    }
    ProbeOutcome::Error(format!(
        "missing probe handler for {}:{}",
        kubelet::spec::pod_full_name(target.pod),
        target.container.name
    ))
}

/// A tcpSocket probe: connecting within the timeout passes; the dial error
/// is the failure's message.
async fn probe_tcp(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    let deadline = tokio::time::Instant::now() + timeout;
    match dial::dial(host, port, Some(deadline)).await {
        Ok(_connection) => ProbeOutcome::Success,
        Err(error) => ProbeOutcome::Failure(error),
    }
}
