//! Running container probes for the pod sync: exec through CRI's ExecSync, tcpSocket by connecting, httpGet over plain HTTP/1.1, each bounded by the probe's timeout; the timing and thresholds are `kubelet::probes::ProbeWorker`'s.

use std::net::SocketAddr;
use std::time::Duration;

use cri::RuntimeService;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet::probes::ProbeOutcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The User-Agent upstream's prober sends (`kube-probe/MAJOR.MINOR`).
const USER_AGENT: &str = "kube-probe/1.33";
/// Upstream reads at most this much of a failing HTTP probe's body.
const MAX_BODY: usize = 10 * 1024;

/// A port by number, or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(number) => {
            u16::try_from(*number).map_err(|_| format!("invalid port number: {number}"))
        }
        IntOrString::String(name) => {
            if let Ok(number) = name.parse::<u16>() {
                return Ok(number);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|port| port.name.as_deref() == Some(name.as_str()))
                .and_then(|port| u16::try_from(port.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))
        }
    }
}

/// Runs `probe` once against the container.
pub async fn run_probe(
    probe: &Probe,
    container: &Container,
    container_id: &str,
    pod_ip: Option<&str>,
    runtime: &dyn RuntimeService,
) -> ProbeOutcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match runtime.exec_sync(container_id, command, timeout).await {
            Ok(output) if output.exit_code == 0 => ProbeOutcome::Success,
            Ok(output) => {
                let mut text = String::from_utf8_lossy(&output.stdout).to_string();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                ProbeOutcome::Failure(text)
            }
            Err(error) if error.is_deadline_exceeded() => {
                ProbeOutcome::Failure(format!("command timed out after {}s", timeout.as_secs()))
            }
            Err(error) => ProbeOutcome::Error(error.to_string()),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match resolve_port(&tcp.port, container) {
            Ok(port) => port,
            Err(message) => return ProbeOutcome::Error(message),
        };
        let host = tcp.host.as_deref().or(pod_ip).unwrap_or("127.0.0.1");
        let address = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => ProbeOutcome::Success,
            Ok(Err(error)) => {
                ProbeOutcome::Failure(format!("dial tcp {address}: connect: {error}"))
            }
            Err(_) => ProbeOutcome::Failure(format!("dial tcp {address}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let port = match resolve_port(&http.port, container) {
            Ok(port) => port,
            Err(message) => return ProbeOutcome::Error(message),
        };
        if http.scheme.as_deref() == Some("HTTPS") {
            return ProbeOutcome::Error("HTTPS probes are not supported by this agent yet".into());
        }
        let host = http.host.as_deref().or(pod_ip).unwrap_or("127.0.0.1");
        let path = http.path.as_deref().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|header| (header.name.clone(), header.value.clone()))
            .collect();
        let url = format!("http://{host}:{port}{path}");
        return match tokio::time::timeout(timeout, http_get(host, port, &path, &headers)).await {
            Ok(Ok((code, _))) if (200..400).contains(&code) => ProbeOutcome::Success,
            Ok(Ok((code, body))) => ProbeOutcome::Failure(format!(
                "HTTP probe failed with statuscode: {code}{}",
                if body.is_empty() {
                    String::new()
                } else {
                    format!(", body: {body}")
                }
            )),
            Ok(Err(error)) => ProbeOutcome::Failure(format!("Get \"{url}\": {error}")),
            Err(_) => ProbeOutcome::Failure(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        };
    }
    ProbeOutcome::Error("this probe's kind (grpc) is not supported by this agent yet".into())
}

/// Runs a postStart or preStop handler (exec, httpGet or sleep) within
/// `timeout`; the error text goes into the FailedPostStartHook or
/// FailedPreStopHook event.
pub async fn run_handler(
    handler: &LifecycleHandler,
    container: &Container,
    container_id: &str,
    pod_ip: Option<&str>,
    runtime: &dyn RuntimeService,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match runtime
            .exec_sync(container_id, command.clone(), timeout)
            .await
        {
            Ok(output) if output.exit_code == 0 => Ok(()),
            Ok(output) => Err(format!(
                "Exec lifecycle hook ({}) for Container \"{}\" failed - error: command '{}' exited with {}: {}",
                command.join(" "),
                container.name,
                command.join(" "),
                output.exit_code,
                String::from_utf8_lossy(&output.stderr)
            )),
            Err(error) => Err(format!(
                "Exec lifecycle hook ({}) for Container \"{}\" failed - error: {error}",
                command.join(" "),
                container.name
            )),
        };
    }
    if let Some(http) = &handler.http_get {
        let port = resolve_port(&http.port, container)?;
        let host = http.host.as_deref().or(pod_ip).unwrap_or("127.0.0.1");
        let path = http.path.as_deref().unwrap_or("/");
        let url = format!("http://{host}:{port}{path}");
        return match tokio::time::timeout(timeout, http_get(host, port, path, &[])).await {
            Ok(Ok((code, _))) if (200..400).contains(&code) => Ok(()),
            Ok(Ok((code, _))) => Err(format!(
                "HTTP lifecycle hook ({path}) for Container \"{}\" failed - error: HTTP {code} from {url}",
                container.name
            )),
            Ok(Err(error)) => Err(format!(
                "HTTP lifecycle hook ({path}) for Container \"{}\" failed - error: Get \"{url}\": {error}",
                container.name
            )),
            Err(_) => Err(format!(
                "HTTP lifecycle hook ({path}) for Container \"{}\" failed - error: timed out",
                container.name
            )),
        };
    }
    if let Some(sleep) = &handler.sleep {
        let seconds = Duration::from_secs(sleep.seconds.max(0) as u64);
        tokio::time::sleep(seconds.min(timeout)).await;
        return Ok(());
    }
    Err(format!(
        "Container \"{}\": lifecycle handler kind not supported",
        container.name
    ))
}

/// One HTTP/1.1 GET; the status code and up to 10 KiB of the body.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<(u16, String)> {
    let address: SocketAddr = match format!("{host}:{port}").parse() {
        Ok(address) => address,
        Err(_) => tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("no address for {host}")))?,
    };
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let host_header = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| format!("{host}:{port}"));
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("host") {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while response.len() < MAX_BODY + 4096 {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..read]);
    }
    let text = String::from_utf8_lossy(&response);
    let code = text
        .lines()
        .next()
        .and_then(|status| status.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.chars().take(MAX_BODY).collect())
        .unwrap_or_default();
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Container {
        serde_json::from_value(
            json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap()
    }

    #[test]
    fn ports_resolve_by_number_or_name() {
        assert_eq!(resolve_port(&IntOrString::Int(80), &container()), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &container()),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &container()),
            Ok(9090)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("grpc".into()), &container()),
            Err("couldn't find port: grpc in web".to_string())
        );
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 1024];
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                let reply = if request.starts_with("GET /healthy ")
                    && request.contains("User-Agent: kube-probe/")
                {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                } else {
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nsick"
                };
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        let probe = |path: &str| -> Probe {
            serde_json::from_value(json!({"httpGet": {"path": path, "port": port}})).unwrap()
        };
        let runtime = cri::fake::FakeRuntime::default();
        let healthy = run_probe(
            &probe("/healthy"),
            &container(),
            "c",
            Some("127.0.0.1"),
            &runtime,
        )
        .await;
        assert_eq!(healthy, ProbeOutcome::Success);
        let sick = run_probe(
            &probe("/sick"),
            &container(),
            "c",
            Some("127.0.0.1"),
            &runtime,
        )
        .await;
        assert_eq!(
            sick,
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 500, body: sick".into())
        );
        let tcp: Probe = serde_json::from_value(json!({"tcpSocket": {"port": port}})).unwrap();
        assert_eq!(
            run_probe(&tcp, &container(), "c", Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Success
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused: Probe =
            serde_json::from_value(json!({"tcpSocket": {"port": closed}})).unwrap();
        assert!(matches!(
            run_probe(&refused, &container(), "c", Some("127.0.0.1"), &runtime).await,
            ProbeOutcome::Failure(message) if message.starts_with(&format!("dial tcp 127.0.0.1:{closed}: connect:"))
        ));
    }
}
