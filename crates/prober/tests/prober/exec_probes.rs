//! exec probes through a scripted ExecRunner: exit codes, output, timeouts, runtime errors and command expansion.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use kubelet::probes::ProbeOutcome;
use prober::{ExecError, ExecOutput, run_probe};
use serde_json::json;

use crate::support::{self, ExecCall, FakeExec};

fn exec_probe(command: &[&str], timeout_seconds: Option<i32>) -> Probe {
    let mut probe = json!({"exec": {"command": command}});
    if let Some(timeout) = timeout_seconds {
        probe["timeoutSeconds"] = json!(timeout);
    }
    serde_json::from_value(probe).unwrap()
}

async fn run(probe: &Probe, exec: &FakeExec) -> ProbeOutcome {
    let pod = support::pod();
    let container = support::container(80, 81);
    run_probe(probe, &support::target(&pod, &container), exec).await
}

#[tokio::test]
async fn exit_zero_passes_with_the_expanded_command_and_the_timeout() {
    let exec = FakeExec::exiting(0, "fine", "");
    let probe = exec_probe(&["echo", "$(GREETING) world", "$(UNSET)"], Some(5));
    assert_eq!(run(&probe, &exec).await, ProbeOutcome::Success);
    assert_eq!(
        exec.calls(),
        [ExecCall {
            container_id: "c0ffee".into(),
            command: vec!["echo".into(), "hello world".into(), "$(UNSET)".into()],
            timeout: Duration::from_secs(5),
        }]
    );

    let defaulted = FakeExec::exiting(0, "", "");
    run(&exec_probe(&["true"], None), &defaulted).await;
    assert_eq!(defaulted.calls()[0].timeout, Duration::from_secs(1));
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_stdout_then_stderr() {
    let exec = FakeExec::exiting(3, "out;", "err");
    assert_eq!(
        run(&exec_probe(&["check"], None), &exec).await,
        ProbeOutcome::Failure("out;err".into())
    );
    assert_eq!(exec.calls().len(), 1, "failures are not retried");
}

#[tokio::test]
async fn the_failure_output_is_cut_at_10_kib() {
    let exec = FakeExec::answering(Ok(ExecOutput {
        stdout: vec![b'o'; 8 * 1024],
        stderr: vec![b'e'; 8 * 1024],
        exit_code: 1,
    }));
    let ProbeOutcome::Failure(output) = run(&exec_probe(&["check"], None), &exec).await else {
        panic!("a non-zero exit fails");
    };
    assert_eq!(output.len(), 10 * 1024);
    assert_eq!(
        output,
        format!("{}{}", "o".repeat(8 * 1024), "e".repeat(2 * 1024))
    );
}

#[tokio::test]
async fn a_timeout_is_a_failure() {
    let exec = FakeExec::answering(Err(ExecError::Timeout));
    assert_eq!(
        run(&exec_probe(&["sh", "-c", "sleep 5"], None), &exec).await,
        ProbeOutcome::Failure("command \"sh -c sleep 5\" timed out".into())
    );
}

#[tokio::test]
async fn a_runtime_error_is_retried_then_reported() {
    let exec = FakeExec::answering(Err(ExecError::Runtime(
        "rpc error: code = NotFound desc = container not found".into(),
    )));
    assert_eq!(
        run(&exec_probe(&["check"], None), &exec).await,
        ProbeOutcome::Error("rpc error: code = NotFound desc = container not found".into())
    );
    assert_eq!(exec.calls().len(), 3);
}
