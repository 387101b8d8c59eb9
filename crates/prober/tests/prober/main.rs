//! Integration tests: every probe kind and lifecycle hook run against real local servers (HTTP, HTTPS, TCP, gRPC) and a scripted exec runner.

mod exec_probes;
mod grpc_probes;
mod http_probes;
mod lifecycle_hooks;
mod support;
mod tcp_probes;

use k8s_openapi::api::core::v1::Probe;
use kubelet::probes::ProbeOutcome;
use serde_json::json;

#[tokio::test]
async fn a_probe_without_an_action_errors() {
    let pod = support::pod();
    let container = support::container(80, 81);
    let probe: Probe = serde_json::from_value(json!({"timeoutSeconds": 1})).unwrap();
    let exec = support::FakeExec::exiting(0, "", "");
    assert_eq!(
        prober::run_probe(&probe, &support::target(&pod, &container), &exec).await,
        ProbeOutcome::Error("missing probe handler for web-0_default(uid-1):web".into())
    );
}
