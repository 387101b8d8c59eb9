//! The pod sync's bridge to the `prober` crate: CRI's ExecSync as the prober's exec runner, and the probe or hook run against one container of a pod.

use std::time::Duration;

use async_trait::async_trait;
use cri::RuntimeService;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use kubelet::probes::ProbeOutcome;
use prober::{ActionTarget, ExecError, ExecOutput, ExecRunner, HookOutcome};

/// Runs probe and hook commands through the node's CRI runtime.
pub struct CriExec<'a>(pub &'a dyn RuntimeService);

#[async_trait]
impl ExecRunner for CriExec<'_> {
    async fn exec_sync(
        &self,
        container_id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        match self.0.exec_sync(container_id, command, timeout).await {
            Ok(output) => Ok(ExecOutput {
                stdout: output.stdout,
                stderr: output.stderr,
                exit_code: output.exit_code,
            }),
            Err(error) if error.is_deadline_exceeded() => Err(ExecError::Timeout),
            Err(error) => Err(ExecError::Runtime(error.message().to_string())),
        }
    }
}

/// Runs `probe` once against one running container of `pod`.
pub async fn run_probe(
    probe: &Probe,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: Option<&str>,
    runtime: &dyn RuntimeService,
) -> ProbeOutcome {
    let target = ActionTarget {
        pod,
        container,
        container_id,
        pod_ip,
    };
    prober::run_probe(probe, &target, &CriExec(runtime)).await
}

/// Runs a postStart or preStop handler; `limit` bounds it (the grace period
/// for preStop; postStart runs to completion, as upstream's does).
pub async fn run_handler(
    handler: &LifecycleHandler,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: Option<&str>,
    runtime: &dyn RuntimeService,
    limit: Option<Duration>,
) -> HookOutcome {
    let target = ActionTarget {
        pod,
        container,
        container_id,
        pod_ip,
    };
    prober::run_handler(handler, &target, &CriExec(runtime), limit).await
}
