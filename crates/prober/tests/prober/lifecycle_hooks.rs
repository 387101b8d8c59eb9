//! postStart/preStop hooks: httpGet against local servers, exec through a scripted runner, sleep, and their upstream failure messages.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::LifecycleHandler;
use prober::lifecycle::{HTTP_FALLBACK_REASON, PodEvent};
use prober::{ExecError, HookOutcome, run_handler};
use serde_json::{Value, json};

use crate::support::{self, FakeExec, HttpServer};

const IN_POD: &str = "for Container \"web\" in Pod \"web-0_default(uid-1)\"";

fn handler(value: Value) -> LifecycleHandler {
    serde_json::from_value(value).unwrap()
}

async fn run_with(
    handler: &LifecycleHandler,
    exec: &FakeExec,
    pod_ip: Option<&str>,
    limit: Option<Duration>,
) -> HookOutcome {
    let pod = support::pod();
    let container = support::container(80, 81);
    let mut target = support::target(&pod, &container);
    target.pod_ip = pod_ip;
    run_handler(handler, &target, exec, limit).await
}

async fn run(handler: &LifecycleHandler) -> HookOutcome {
    run_with(
        handler,
        &FakeExec::exiting(0, "", ""),
        Some("127.0.0.1"),
        None,
    )
    .await
}

fn succeeded() -> HookOutcome {
    HookOutcome {
        result: Ok(()),
        pod_events: Vec::new(),
    }
}

fn failed(message: String) -> HookOutcome {
    HookOutcome {
        result: Err(message),
        pod_events: Vec::new(),
    }
}

#[tokio::test]
async fn http_hooks_send_upstreams_lifecycle_request() {
    let server = HttpServer::plain().await;
    let hook = handler(json!({"httpGet": {"path": "/hook", "port": server.port}}));
    assert_eq!(run(&hook).await, succeeded());
    let seen = &server.seen()[0];
    assert_eq!(seen.target, "/hook");
    assert_eq!(seen.header("user-agent"), Some("kube-lifecycle/1.33"));
    assert_eq!(seen.header("accept"), Some("*/*"));
    assert_eq!(seen.header("accept-encoding"), Some("gzip"));
    assert_eq!(seen.header("connection"), None);
}

#[tokio::test]
async fn any_http_answer_satisfies_a_hook() {
    let server = HttpServer::plain().await;
    let hook = handler(json!({"httpGet": {"path": "/status/500", "port": server.port}}));
    assert_eq!(run(&hook).await, succeeded());
    let elsewhere = handler(json!({"httpGet": {"path": "/elsewhere", "port": server.port}}));
    assert_eq!(run(&elsewhere).await, succeeded());
    assert_eq!(
        server.seen().len(),
        2,
        "a redirect to another host is not followed"
    );
}

#[tokio::test]
async fn an_unreachable_http_hook_fails_with_upstreams_message() {
    let port = support::closed_port();
    let hook = handler(json!({"httpGet": {"path": "/hook", "port": port}}));
    assert_eq!(
        run(&hook).await,
        failed(format!(
            "HTTP lifecycle hook (/hook) {IN_POD} failed - error: Get \"http://127.0.0.1:{port}/hook\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
    assert_eq!(
        run_with(&hook, &FakeExec::exiting(0, "", ""), None, None).await,
        failed(format!(
            "HTTP lifecycle hook (/hook) {IN_POD} failed - error: failed to find networking container: the pod has no IP"
        ))
    );
}

#[tokio::test]
async fn a_slow_http_hook_is_cut_by_the_limit() {
    let server = HttpServer::plain().await;
    let hook = handler(json!({"httpGet": {"path": "/slow", "port": server.port}}));
    let outcome = run_with(
        &hook,
        &FakeExec::exiting(0, "", ""),
        Some("127.0.0.1"),
        Some(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(
        outcome,
        failed(format!(
            "HTTP lifecycle hook (/slow) {IN_POD} failed - error: Get \"http://127.0.0.1:{}/slow\": context deadline exceeded",
            server.port
        ))
    );
}

#[tokio::test]
async fn https_hooks_skip_verification_over_http1() {
    let server = HttpServer::tls().await;
    let hook =
        handler(json!({"httpGet": {"path": "/hook", "port": server.port, "scheme": "HTTPS"}}));
    assert_eq!(run(&hook).await, succeeded());
    assert_eq!(server.seen()[0].version, http::Version::HTTP_11);
}

#[tokio::test]
async fn an_https_hook_answered_in_plain_http_falls_back() {
    let server = HttpServer::plain().await;
    let hook = handler(json!({
        "httpGet": {
            "path": "/hook",
            "port": server.port,
            "scheme": "HTTPS",
            "httpHeaders": [{"name": "Authorization", "value": "Bearer secret"}]
        }
    }));
    assert_eq!(
        run(&hook).await,
        HookOutcome {
            result: Ok(()),
            pod_events: vec![PodEvent {
                reason: HTTP_FALLBACK_REASON,
                message: format!(
                    "request to HTTPS lifecycle hook 127.0.0.1:{} got HTTP response, retry with HTTP succeeded",
                    server.port
                ),
            }],
        }
    );
    let retried = server
        .seen()
        .into_iter()
        .find(|request| request.target == "/hook")
        .expect("the plain HTTP retry reached the server");
    assert_eq!(
        retried.header("authorization"),
        None,
        "credentials are dropped"
    );
}

#[tokio::test]
async fn exec_hooks_run_without_timeout_or_expansion() {
    let exec = FakeExec::exiting(0, "", "");
    let hook = handler(json!({"exec": {"command": ["notify", "$(GREETING)"]}}));
    assert_eq!(run_with(&hook, &exec, None, None).await, succeeded());
    let call = &exec.calls()[0];
    assert_eq!(call.command, ["notify", "$(GREETING)"]);
    assert_eq!(call.timeout, Duration::ZERO);
    assert_eq!(call.container_id, "c0ffee");
}

#[tokio::test]
async fn exec_hook_failures_read_like_upstream() {
    let hook = handler(json!({"exec": {"command": ["sh", "-c", "exit 3"]}}));
    let exec = FakeExec::exiting(3, "some output\n", "bad \"thing\"");
    assert_eq!(
        run_with(&hook, &exec, None, None).await,
        failed(format!(
            "Exec lifecycle hook ([sh -c exit 3]) {IN_POD} failed - error: command 'sh -c exit 3' exited with 3: bad \"thing\", message: \"some output\\nbad \\\"thing\\\"\""
        ))
    );
    let broken = FakeExec::answering(Err(ExecError::Runtime("container is not running".into())));
    assert_eq!(
        run_with(&hook, &broken, None, None).await,
        failed(format!(
            "Exec lifecycle hook ([sh -c exit 3]) {IN_POD} failed - error: container is not running, message: \"\""
        ))
    );
    let mut slow = FakeExec::exiting(0, "", "");
    slow.delay = Duration::from_secs(5);
    let started = Instant::now();
    assert_eq!(
        run_with(&hook, &slow, None, Some(Duration::from_millis(200))).await,
        failed(format!(
            "Exec lifecycle hook ([sh -c exit 3]) {IN_POD} failed - error: command \"sh -c exit 3\" timed out, message: \"\""
        ))
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn sleep_hooks_sleep_unless_cut_short() {
    let hook = handler(json!({"sleep": {"seconds": 1}}));
    let started = Instant::now();
    assert_eq!(run(&hook).await, succeeded());
    assert!(started.elapsed() >= Duration::from_secs(1));

    let long = handler(json!({"sleep": {"seconds": 5}}));
    let started = Instant::now();
    assert_eq!(
        run_with(
            &long,
            &FakeExec::exiting(0, "", ""),
            None,
            Some(Duration::from_millis(200))
        )
        .await,
        failed(format!(
            "Sleep lifecycle hook (5) {IN_POD} failed - error: container terminated before sleep hook finished"
        ))
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_handler_without_an_action_cannot_run() {
    assert_eq!(
        run(&handler(json!({}))).await,
        failed(
            "Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:nil,Sleep:nil,}"
                .into()
        )
    );
}
