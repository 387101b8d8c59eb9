//! httpGet probes against a local hyper server: status codes, redirects, timeouts, headers, named ports and HTTPS.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use kubelet::probes::ProbeOutcome;
use prober::run_probe;
use serde_json::{Value, json};

use crate::support::{self, FakeExec, HttpServer};

fn http_probe(http_get: Value) -> Probe {
    serde_json::from_value(json!({"httpGet": http_get, "timeoutSeconds": 1})).unwrap()
}

async fn probe_path(server: &HttpServer, path: &str) -> ProbeOutcome {
    let probe = http_probe(json!({"path": path, "port": server.port}));
    run(&probe, server.port).await
}

async fn run(probe: &Probe, http_port: u16) -> ProbeOutcome {
    let pod = support::pod();
    let container = support::container(http_port, 1);
    let exec = FakeExec::exiting(0, "", "");
    run_probe(probe, &support::target(&pod, &container), &exec).await
}

#[tokio::test]
async fn status_codes_decide_the_outcome() {
    let server = HttpServer::plain().await;
    let cases = [
        ("/ok", ProbeOutcome::Success),
        ("/status/204", ProbeOutcome::Success),
        (
            "/status/399",
            ProbeOutcome::Warning("Probe terminated redirects, Response body: status 399".into()),
        ),
        (
            "/status/400",
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 400".into()),
        ),
        (
            "/status/500",
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into()),
        ),
        (
            "/unknown",
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 404".into()),
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(probe_path(&server, path).await, expected, "{path}");
    }
}

#[tokio::test]
async fn same_host_redirects_are_followed_with_headers_and_referer() {
    let server = HttpServer::plain().await;
    let probe = http_probe(json!({
        "path": "/redirect/2",
        "port": server.port,
        "httpHeaders": [{"name": "X-Custom", "value": "kept"}]
    }));
    assert_eq!(run(&probe, server.port).await, ProbeOutcome::Success);
    let seen = server.seen();
    let targets: Vec<&str> = seen.iter().map(|request| request.target.as_str()).collect();
    assert_eq!(targets, ["/redirect/2", "/redirect/1", "/redirect/0"]);
    assert!(
        seen.iter()
            .all(|request| request.header("x-custom") == Some("kept"))
    );
    assert_eq!(seen[0].header("referer"), None);
    assert_eq!(
        seen[1].header("referer"),
        Some(format!("http://127.0.0.1:{}/redirect/2", server.port).as_str())
    );
    assert_eq!(
        seen[2].header("referer"),
        Some(format!("http://127.0.0.1:{}/redirect/1", server.port).as_str())
    );
}

#[tokio::test]
async fn a_custom_host_survives_relative_redirects_only() {
    let server = HttpServer::plain().await;
    let with_host = |path: &str| {
        http_probe(json!({
            "path": path,
            "port": server.port,
            "httpHeaders": [{"name": "Host", "value": "example.test"}]
        }))
    };
    assert_eq!(
        run(&with_host("/redirect/1"), server.port).await,
        ProbeOutcome::Success
    );
    assert_eq!(
        run(&with_host("/absolute"), server.port).await,
        ProbeOutcome::Success
    );
    let hosts: Vec<String> = server
        .seen()
        .into_iter()
        .map(|request| request.host)
        .collect();
    assert_eq!(
        hosts,
        [
            "example.test".to_string(),
            "example.test".to_string(),
            "example.test".to_string(),
            format!("127.0.0.1:{}", server.port),
        ]
    );
}

#[tokio::test]
async fn the_tenth_redirect_fails_the_probe() {
    let server = HttpServer::plain().await;
    assert_eq!(
        probe_path(&server, "/redirect/9").await,
        ProbeOutcome::Success
    );
    assert_eq!(server.seen().len(), 10);

    let looping = HttpServer::plain().await;
    assert_eq!(
        probe_path(&looping, "/loop").await,
        ProbeOutcome::Failure("Get \"/loop\": stopped after 10 redirects".into())
    );
    assert_eq!(looping.seen().len(), 10);
}

#[tokio::test]
async fn redirects_off_the_host_or_without_location_warn() {
    let server = HttpServer::plain().await;
    assert_eq!(
        probe_path(&server, "/elsewhere").await,
        ProbeOutcome::Warning("Probe terminated redirects, Response body: moved away".into())
    );
    assert_eq!(server.seen().len(), 1, "the other host is not contacted");
    assert_eq!(
        probe_path(&server, "/no-location").await,
        ProbeOutcome::Warning("Probe terminated redirects, Response body: nowhere".into())
    );
    let ProbeOutcome::Warning(message) = probe_path(&server, "/big-elsewhere").await else {
        panic!("a redirect elsewhere warns");
    };
    let body = message
        .strip_prefix("Probe terminated redirects, Response body: ")
        .unwrap();
    assert_eq!(body, "x".repeat(10 * 1024), "the body is cut at 10 KiB");
}

#[tokio::test]
async fn slow_headers_time_out_as_a_failure() {
    let server = HttpServer::plain().await;
    let started = Instant::now();
    assert_eq!(
        probe_path(&server, "/slow").await,
        ProbeOutcome::Failure(format!(
            "Get \"http://127.0.0.1:{}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            server.port
        ))
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_errors_after_upstreams_retries() {
    let server = HttpServer::plain().await;
    assert_eq!(
        probe_path(&server, "/slow-body").await,
        ProbeOutcome::Error(
            "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                .into()
        )
    );
    assert_eq!(
        server.seen().len(),
        3,
        "an erroring probe is run three times"
    );
}

#[tokio::test]
async fn a_refused_connection_fails_with_the_dial_error() {
    let port = support::closed_port();
    let probe = http_probe(json!({"path": "/", "port": port}));
    assert_eq!(
        run(&probe, port).await,
        ProbeOutcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn headers_defaults_and_host_override_reach_the_server() {
    let server = HttpServer::plain().await;
    let probe = http_probe(json!({
        "path": "/ok",
        "port": server.port,
        "httpHeaders": [
            {"name": "x-custom", "value": "a"},
            {"name": "X-Custom", "value": "b"},
            {"name": "Host", "value": "example.test"}
        ]
    }));
    assert_eq!(run(&probe, server.port).await, ProbeOutcome::Success);
    let seen = &server.seen()[0];
    assert_eq!(seen.header("user-agent"), Some("kube-probe/1.33"));
    assert_eq!(seen.header("accept"), Some("*/*"));
    assert_eq!(seen.header_all("x-custom"), ["a", "b"]);
    assert_eq!(seen.host, "example.test");
    assert_eq!(
        seen.header("accept-encoding"),
        None,
        "probes disable compression"
    );
    assert_eq!(seen.version, http::Version::HTTP_11);

    let probe = http_probe(json!({
        "path": "/ok",
        "port": server.port,
        "httpHeaders": [{"name": "User-Agent", "value": "mine"}, {"name": "Accept", "value": ""}]
    }));
    assert_eq!(run(&probe, server.port).await, ProbeOutcome::Success);
    let seen = &server.seen()[1];
    assert_eq!(seen.header("user-agent"), Some("mine"));
    assert_eq!(seen.header("accept"), None, "an empty Accept removes it");
    assert_eq!(seen.host, format!("127.0.0.1:{}", server.port));
}

#[tokio::test]
async fn the_request_head_is_written_like_gos() {
    let (port, received) = support::raw_http_server().await;
    let probe = http_probe(json!({
        "path": "/healthz?verbose=1",
        "port": port,
        "httpHeaders": [{"name": "x-trace", "value": "t1"}]
    }));
    assert_eq!(run(&probe, port).await, ProbeOutcome::Success);
    assert_eq!(
        received.await.unwrap(),
        format!(
            "GET /healthz?verbose=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nX-Trace: t1\r\nConnection: close\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn ports_resolve_by_name_and_host_overrides_the_pod_ip() {
    let server = HttpServer::plain().await;
    let by_name = http_probe(json!({"path": "/ok", "port": "http"}));
    assert_eq!(run(&by_name, server.port).await, ProbeOutcome::Success);
    let unknown_name = http_probe(json!({"path": "/ok", "port": "nope"}));
    assert_eq!(
        run(&unknown_name, server.port).await,
        ProbeOutcome::Error("strconv.Atoi: parsing \"nope\": invalid syntax".into())
    );

    let pod = support::pod();
    let container = support::container(server.port, 1);
    let mut target = support::target(&pod, &container);
    // Nothing answers on TEST-NET-1; only the host field can make this pass.
    target.pod_ip = Some("192.0.2.1");
    let with_host = http_probe(json!({"path": "/ok", "port": server.port, "host": "127.0.0.1"}));
    let exec = FakeExec::exiting(0, "", "");
    assert_eq!(
        run_probe(&with_host, &target, &exec).await,
        ProbeOutcome::Success
    );
}

#[tokio::test]
async fn https_skips_verification_and_speaks_http2() {
    let server = HttpServer::tls().await;
    let probe = http_probe(json!({"path": "/ok", "port": server.port, "scheme": "HTTPS"}));
    assert_eq!(run(&probe, server.port).await, ProbeOutcome::Success);
    let seen = &server.seen()[0];
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.header("user-agent"), Some("kube-probe/1.33"));
    assert_eq!(seen.host, format!("127.0.0.1:{}", server.port));

    let failing =
        http_probe(json!({"path": "/status/503", "port": server.port, "scheme": "HTTPS"}));
    assert_eq!(
        run(&failing, server.port).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 503".into())
    );
}

#[tokio::test]
async fn https_against_a_plain_server_fails_like_go() {
    let server = HttpServer::plain().await;
    let probe = http_probe(json!({"path": "/ok", "port": server.port, "scheme": "HTTPS"}));
    assert_eq!(
        run(&probe, server.port).await,
        ProbeOutcome::Failure(format!(
            "Get \"https://127.0.0.1:{}/ok\": http: server gave HTTP response to HTTPS client",
            server.port
        ))
    );
}
