//! The grpc probe: one `grpc.health.v1.Health/Check` call over cleartext HTTP/2 to the pod IP, with upstream's verdicts and messages (which follow grpc-go's blocking dial: a server that cannot be reached fails at the deadline, not at once).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kubelet::probes::ProbeOutcome;
use prost::Message;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::go_text::{duration, quote};
use crate::url::join_host;
use crate::{KUBERNETES_VERSION, dial};

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`; `status` holds a
/// [`ServingStatus`] value.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    ServiceUnknown = 3,
}

/// The method's HTTP/2 path.
pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// The protobuf name of a serving status, or its number when it has none
/// (as Go's generated `String()`).
fn status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => other.to_string(),
    }
}

/// gRPC status codes by number, as grpc-go prints them.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |name| name.to_string())
}

const DEADLINE_EXCEEDED: u32 = 4;
const UNIMPLEMENTED: u32 = 12;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;
const UNKNOWN: u32 = 2;

/// A failed call: its gRPC status.
#[derive(Debug, PartialEq, Eq)]
struct RpcError {
    code: u32,
    message: String,
}

impl RpcError {
    fn new(code: u32, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

/// Runs a grpc probe against `host:port` for `service` ("" asks about the
/// server as a whole).
pub async fn probe(host: &str, port: i32, service: &str, timeout: Duration) -> ProbeOutcome {
    let address = format!("{}:{port}", join_host(host));
    let deadline = Instant::now() + timeout;
    let Some(connection) = connect_until(host, port, deadline).await else {
        return ProbeOutcome::Failure(format!(
            "timeout: failed to connect service {} within {}: context deadline exceeded",
            quote(&address),
            duration(timeout)
        ));
    };
    let rpc_timeout = || {
        ProbeOutcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            duration(timeout)
        ))
    };
    match timeout_at(deadline, check(connection, &address, service, deadline)).await {
        Err(_) => rpc_timeout(),
        Ok(Ok(status)) if status == ServingStatus::Serving as i32 => ProbeOutcome::Success,
        Ok(Ok(status)) => ProbeOutcome::Failure(format!(
            "service unhealthy (responded with {})",
            quote(status_name(status))
        )),
        Ok(Err(error)) if error.code == DEADLINE_EXCEEDED => rpc_timeout(),
        Ok(Err(error)) if error.code == UNIMPLEMENTED => ProbeOutcome::Failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            error.message
        )),
        Ok(Err(error)) => ProbeOutcome::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {}",
            code_name(error.code),
            error.message
        )),
    }
}

struct Connection {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects as grpc-go's blocking dial does: failed attempts are retried
/// with its backoff (1s, growing 1.6 times) until the deadline.
async fn connect_until(host: &str, port: i32, deadline: Instant) -> Option<Connection> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let attempt_started = Instant::now();
        if let Ok(connection) = timeout_at(deadline, connect(host, port, deadline)).await {
            if let Some(connection) = connection {
                return Some(connection);
            }
        } else {
            return None;
        }
        let retry_at = attempt_started + backoff;
        if retry_at >= deadline {
            sleep_until(deadline).await;
            return None;
        }
        sleep_until(retry_at).await;
        backoff = backoff.mul_f64(1.6).min(Duration::from_secs(120));
    }
}

async fn connect(host: &str, port: i32, deadline: Instant) -> Option<Connection> {
    let port = u16::try_from(port).ok()?;
    let tcp = dial::dial(host, port, Some(deadline)).await.ok()?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
        .await
        .ok()?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(Connection { sender, task })
}

/// The unary call; the serving status it answered.
async fn check(
    mut connection: Connection,
    address: &str,
    service: &str,
    deadline: Instant,
) -> Result<i32, RpcError> {
    let message = HealthCheckRequest {
        service: service.to_string(),
    }
    .encode_to_vec();
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(&message);
    let request = http::Request::post(format!("http://{address}{HEALTH_CHECK_PATH}"))
        .version(http::Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(
            http::header::USER_AGENT,
            format!("kube-probe/{KUBERNETES_VERSION}"),
        )
        .header(
            "grpc-timeout",
            encode_timeout(deadline.saturating_duration_since(Instant::now())),
        )
        .body(Full::new(framed.freeze()))
        .map_err(|error| RpcError::new(INTERNAL, error.to_string()))?;
    let response = connection
        .sender
        .send_request(request)
        .await
        .map_err(|error| {
            RpcError::new(UNAVAILABLE, format!("error reading from server: {error}"))
        })?;
    let (head, mut body) = response.into_parts();
    if let Some(error) = header_error(head.status, &head.headers) {
        return Err(error);
    }
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            RpcError::new(UNAVAILABLE, format!("error reading from server: {error}"))
        })?;
        match frame.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Ok(received) = frame.into_trailers() {
                    trailers = Some(received);
                }
            }
        }
    }
    // A trailers-only answer carries its status in the headers.
    let status_headers = trailers.as_ref().unwrap_or(&head.headers);
    let Some(code) = grpc_status(status_headers) else {
        return Err(RpcError::new(
            INTERNAL,
            "server closed the stream without sending trailers",
        ));
    };
    if code != 0 {
        return Err(RpcError::new(code, grpc_message(status_headers)));
    }
    decode_response(&data).map(|response| response.status)
}

/// A response that is not gRPC, as grpc-go turns it into a status.
fn header_error(status: http::StatusCode, headers: &HeaderMap) -> Option<RpcError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let is_grpc = content_type.as_deref().is_some_and(|content_type| {
        content_type == "application/grpc"
            || content_type.starts_with("application/grpc+")
            || content_type.starts_with("application/grpc;")
    });
    if status == http::StatusCode::OK && is_grpc {
        return None;
    }
    let mut problems = Vec::new();
    if status != http::StatusCode::OK {
        problems.push(format!(
            "unexpected HTTP status code received from server: {} ({})",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
    }
    match content_type {
        None => problems.push("malformed header: missing HTTP content-type".to_string()),
        Some(content_type) if !is_grpc => problems.push(format!(
            "transport: received unexpected content-type {}",
            quote(content_type)
        )),
        Some(_) => {}
    }
    let code = match status.as_u16() {
        400 => INTERNAL,
        401 => 16,
        403 => 7,
        404 => UNIMPLEMENTED,
        429 | 502 | 503 | 504 => UNAVAILABLE,
        _ => UNKNOWN,
    };
    Some(RpcError::new(code, problems.join("; ")))
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The `grpc-message` trailer, percent-decoded as the spec has it.
fn grpc_message(headers: &HeaderMap) -> String {
    let Some(raw) = headers.get("grpc-message") else {
        return String::new();
    };
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The one length-prefixed message of a unary response.
fn decode_response(data: &[u8]) -> Result<HealthCheckResponse, RpcError> {
    let Some((header, rest)) = data.split_first_chunk::<5>() else {
        return Err(RpcError::new(
            INTERNAL,
            "cardinality violation: received no response message from non-streaming RPC",
        ));
    };
    if header[0] != 0 {
        return Err(RpcError::new(
            INTERNAL,
            "grpc: compressed flag set with identity or empty encoding",
        ));
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = rest.get(..length).ok_or_else(|| {
        RpcError::new(
            INTERNAL,
            "grpc: failed to receive the whole message: unexpected EOF",
        )
    })?;
    HealthCheckResponse::decode(message).map_err(|error| {
        RpcError::new(
            INTERNAL,
            format!("grpc: failed to unmarshal the received message: {error}"),
        )
    })
}

/// The `grpc-timeout` header, as grpc-go writes it: the smallest unit
/// whose value (rounded up) fits in eight digits.
fn encode_timeout(timeout: Duration) -> String {
    const MAX_VALUE: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    if nanos == 0 {
        return "0n".to_string();
    }
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (size, unit) in units {
        let value = nanos.div_ceil(size);
        if value <= MAX_VALUE {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX_VALUE}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_encode_like_grpc_go() {
        assert_eq!(encode_timeout(Duration::from_nanos(5)), "5n");
        assert_eq!(encode_timeout(Duration::from_secs(1)), "1000000u");
        assert_eq!(encode_timeout(Duration::from_secs(1000)), "1000000m");
        assert_eq!(encode_timeout(Duration::ZERO), "0n");
    }

    #[test]
    fn status_and_code_names() {
        assert_eq!(status_name(2), "NOT_SERVING");
        assert_eq!(status_name(9), "9");
        assert_eq!(code_name(5), "NotFound");
        assert_eq!(code_name(40), "Code(40)");
    }

    #[test]
    fn non_grpc_answers_map_like_grpc_go() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            header_error(http::StatusCode::NOT_FOUND, &headers),
            Some(RpcError::new(
                UNIMPLEMENTED,
                "unexpected HTTP status code received from server: 404 (Not Found); transport: received unexpected content-type \"text/plain\""
            ))
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/grpc+proto".parse().unwrap(),
        );
        assert_eq!(header_error(http::StatusCode::OK, &headers), None);
        assert_eq!(
            header_error(http::StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new()).map(|e| e.code),
            Some(UNAVAILABLE)
        );
    }

    #[test]
    fn messages_decode() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-message", "unknown%20service%3A x".parse().unwrap());
        assert_eq!(grpc_message(&headers), "unknown service: x");
        let body = HealthCheckResponse { status: 1 }.encode_to_vec();
        let mut framed = vec![0, 0, 0, 0, body.len() as u8];
        framed.extend_from_slice(&body);
        assert_eq!(
            decode_response(&framed),
            Ok(HealthCheckResponse { status: 1 })
        );
        assert_eq!(decode_response(&[]).unwrap_err().code, INTERNAL);
        assert_eq!(
            decode_response(&[1, 0, 0, 0, 0]).unwrap_err().code,
            INTERNAL
        );
    }
}
