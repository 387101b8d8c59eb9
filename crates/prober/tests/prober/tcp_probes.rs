//! tcpSocket probes against a local listener, a closed port and a listener whose accept queue is full.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use kubelet::probes::ProbeOutcome;
use prober::run_probe;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::support::{self, FakeExec};

fn tcp_probe(tcp_socket: Value) -> Probe {
    serde_json::from_value(json!({"tcpSocket": tcp_socket, "timeoutSeconds": 1})).unwrap()
}

async fn run(probe: &Probe, named_port: u16, pod_ip: &str) -> ProbeOutcome {
    let pod = support::pod();
    let container = support::container(named_port, 1);
    let mut target = support::target(&pod, &container);
    target.pod_ip = Some(pod_ip);
    run_probe(probe, &target, &FakeExec::exiting(0, "", "")).await
}

#[tokio::test]
async fn connecting_passes_by_number_and_by_name() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        run(&tcp_probe(json!({"port": port})), port, "127.0.0.1").await,
        ProbeOutcome::Success
    );
    assert_eq!(
        run(&tcp_probe(json!({"port": "http"})), port, "127.0.0.1").await,
        ProbeOutcome::Success
    );
    let accepted = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
    assert!(accepted.is_ok(), "the probe really connected");
}

#[tokio::test]
async fn the_host_field_overrides_the_pod_ip() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        run(
            &tcp_probe(json!({"port": port, "host": "127.0.0.1"})),
            port,
            "192.0.2.1"
        )
        .await,
        ProbeOutcome::Success
    );
}

#[tokio::test]
async fn a_closed_port_fails_with_the_dial_error() {
    let port = support::closed_port();
    assert_eq!(
        run(&tcp_probe(json!({"port": port})), port, "127.0.0.1").await,
        ProbeOutcome::Failure(format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn an_unanswered_connect_times_out() {
    // A listener that never accepts, with its queue filled: further SYNs
    // are dropped and connecting hangs.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(address)).await {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    let started = Instant::now();
    assert_eq!(
        run(
            &tcp_probe(json!({"port": address.port()})),
            address.port(),
            "127.0.0.1"
        )
        .await,
        ProbeOutcome::Failure(format!("dial tcp {address}: i/o timeout"))
    );
    assert!(started.elapsed() >= Duration::from_millis(950));
    drop(listener);
}

#[tokio::test]
async fn an_invalid_port_errors() {
    assert_eq!(
        run(&tcp_probe(json!({"port": 0})), 80, "127.0.0.1").await,
        ProbeOutcome::Error("invalid port number: 0".into())
    );
}
