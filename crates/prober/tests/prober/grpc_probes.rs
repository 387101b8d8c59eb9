//! grpc probes against a hand-written tonic health server: serving, not serving, unknown service, no health service, slow answers and nothing listening.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use kubelet::probes::ProbeOutcome;
use prober::run_probe;
use serde_json::json;

use crate::support::{self, FakeExec, GrpcServer, HealthMode};

fn grpc_probe(port: u16, service: Option<&str>) -> Probe {
    let mut grpc = json!({"port": port});
    if let Some(service) = service {
        grpc["service"] = json!(service);
    }
    serde_json::from_value(json!({"grpc": grpc, "timeoutSeconds": 1})).unwrap()
}

async fn run(probe: &Probe) -> ProbeOutcome {
    let pod = support::pod();
    let container = support::container(1, 2);
    run_probe(
        probe,
        &support::target(&pod, &container),
        &FakeExec::exiting(0, "", ""),
    )
    .await
}

fn statuses(entries: &[(&str, i32)]) -> HealthMode {
    HealthMode::Statuses(
        entries
            .iter()
            .map(|(name, status)| (name.to_string(), *status))
            .collect::<HashMap<_, _>>(),
    )
}

#[tokio::test]
async fn serving_passes_and_other_statuses_fail() {
    let server = GrpcServer::start(statuses(&[("", 1), ("db", 2), ("cache", 3), ("odd", 7)])).await;
    assert_eq!(
        run(&grpc_probe(server.port, None)).await,
        ProbeOutcome::Success
    );
    assert_eq!(
        run(&grpc_probe(server.port, Some("db"))).await,
        ProbeOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    assert_eq!(
        run(&grpc_probe(server.port, Some("cache"))).await,
        ProbeOutcome::Failure("service unhealthy (responded with \"SERVICE_UNKNOWN\")".into())
    );
    assert_eq!(
        run(&grpc_probe(server.port, Some("odd"))).await,
        ProbeOutcome::Failure("service unhealthy (responded with \"7\")".into())
    );
    assert_eq!(
        *server.seen_services.lock().unwrap(),
        ["", "db", "cache", "odd"]
    );
    let agents = server.seen_user_agents.lock().unwrap().clone();
    assert_eq!(agents.len(), 4);
    assert!(
        agents.iter().all(|agent| agent == "kube-probe/1.33"),
        "{agents:?}"
    );
}

#[tokio::test]
async fn rpc_errors_are_failures_with_grpc_gos_text() {
    let server = GrpcServer::start(statuses(&[("", 1)])).await;
    assert_eq!(
        run(&grpc_probe(server.port, Some("missing"))).await,
        ProbeOutcome::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                .into()
        )
    );
    let without_health = GrpcServer::start(HealthMode::Unimplemented).await;
    assert_eq!(
        run(&grpc_probe(without_health.port, None)).await,
        ProbeOutcome::Failure(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): "
                .into()
        )
    );
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let server = GrpcServer::start(HealthMode::Slow(Duration::from_secs(3))).await;
    let started = Instant::now();
    assert_eq!(
        run(&grpc_probe(server.port, None)).await,
        ProbeOutcome::Failure("timeout: health rpc did not complete within 1s".into())
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn nothing_listening_fails_at_the_deadline_like_a_blocking_dial() {
    let port = support::closed_port();
    let started = Instant::now();
    assert_eq!(
        run(&grpc_probe(port, None)).await,
        ProbeOutcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
        ))
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
}
