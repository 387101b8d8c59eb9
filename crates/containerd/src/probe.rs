//! Readiness: one unary gRPC call to the CRI service over containerd's socket.
//!
//! The CRI plugin answers "server is not initialized yet" for a moment after
//! containerd starts serving, so a connectable socket is not yet a usable
//! runtime. The probe asks CRI `Version` with an empty request and only reads
//! the gRPC status: framing, no protobuf (that stays in the `cri` crate).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

const CRI_VERSION_METHOD: &str = "/runtime.v1.RuntimeService/Version";

/// A gRPC message frame holding an empty message: not compressed, length 0.
/// Empty is a valid `VersionRequest` (every field at its default).
const EMPTY_MESSAGE_FRAME: &[u8] = &[0, 0, 0, 0, 0];

/// Why the runtime did not answer (yet).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// Nothing listens on the socket (yet).
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/2 exchange failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] hyper::Error),
    /// The call did not complete in time.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The server answered with a non-OK gRPC status.
    #[error("gRPC status {code}: {message}")]
    Status { code: String, message: String },
    /// The answer was not gRPC at all.
    #[error("not a gRPC response: {0}")]
    NotGrpc(String),
}

/// Whether containerd's CRI service answers a `Version` call with OK.
pub(crate) async fn cri_answers(socket: &Path, timeout: Duration) -> Result<(), ProbeError> {
    tokio::time::timeout(timeout, call_with_empty_request(socket, CRI_VERSION_METHOD))
        .await
        .map_err(|_| ProbeError::TimedOut(timeout))?
}

async fn call_with_empty_request(socket: &Path, method: &str) -> Result<(), ProbeError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ProbeError::Connect {
            socket: socket.display().to_string(),
            source,
        })?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!("http://localhost{method}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(Bytes::from_static(EMPTY_MESSAGE_FRAME)))
        .expect("a static request is well-formed");
    let outcome = async {
        let response = sender.send_request(request).await?;
        if response.status() != http::StatusCode::OK {
            return Err(ProbeError::NotGrpc(format!(
                "HTTP status {}",
                response.status()
            )));
        }
        let (parts, body) = response.into_parts();
        let body = body.collect().await?;
        // A failing call may come back "trailers-only": status in the headers.
        let status_source = body.trailers().unwrap_or(&parts.headers);
        let code = header_text(status_source, "grpc-status")
            .ok_or_else(|| ProbeError::NotGrpc("no grpc-status".to_string()))?;
        if code == "0" {
            Ok(())
        } else {
            Err(ProbeError::Status {
                code,
                message: header_text(status_source, "grpc-message").unwrap_or_default(),
            })
        }
    }
    .await;
    connection.abort();
    outcome
}

fn header_text(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = cri_answers(&dir.path().join("absent.sock"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, ProbeError::Connect { .. }), "{error}");
    }
}
