//! CRI call failures: the gRPC status code and message a runtime answered
//! with, the call that failed, and the classifications a kubelet needs.

use std::fmt;

/// A gRPC status code other than OK, named as Go's `codes` package names it
/// (the kubelet's messages quote those names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl ErrorCode {
    /// The name Go's grpc gives the code, as in `rpc error: code = NotFound`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Canceled => "Canceled",
            ErrorCode::Unknown => "Unknown",
            ErrorCode::InvalidArgument => "InvalidArgument",
            ErrorCode::DeadlineExceeded => "DeadlineExceeded",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::AlreadyExists => "AlreadyExists",
            ErrorCode::PermissionDenied => "PermissionDenied",
            ErrorCode::ResourceExhausted => "ResourceExhausted",
            ErrorCode::FailedPrecondition => "FailedPrecondition",
            ErrorCode::Aborted => "Aborted",
            ErrorCode::OutOfRange => "OutOfRange",
            ErrorCode::Unimplemented => "Unimplemented",
            ErrorCode::Internal => "Internal",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::DataLoss => "DataLoss",
            ErrorCode::Unauthenticated => "Unauthenticated",
        }
    }

    pub(crate) fn from_grpc(code: tonic::Code) -> ErrorCode {
        match code {
            tonic::Code::Cancelled => ErrorCode::Canceled,
            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            tonic::Code::Aborted => ErrorCode::Aborted,
            tonic::Code::OutOfRange => ErrorCode::OutOfRange,
            tonic::Code::Unimplemented => ErrorCode::Unimplemented,
            tonic::Code::Internal => ErrorCode::Internal,
            tonic::Code::Unavailable => ErrorCode::Unavailable,
            tonic::Code::DataLoss => ErrorCode::DataLoss,
            tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
            // OK never reaches here: tonic only builds a Status for failures,
            // and a server sending OK with an error body is itself unknown.
            tonic::Code::Ok | tonic::Code::Unknown => ErrorCode::Unknown,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A failed CRI call.
///
/// Displays exactly as Go's grpc status errors do (`rpc error: code = NotFound
/// desc = …`), because Kubernetes shows that text in pod statuses and events
/// (for example after `ErrImagePull`), and users and tools match on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rpc error: code = {code} desc = {message}")]
pub struct CriError {
    method: &'static str,
    code: ErrorCode,
    message: String,
}

impl CriError {
    /// An error as a runtime (or a fake of one) would answer `method`, named
    /// like the CRI RPC (`"RunPodSandbox"`).
    pub fn new(method: &'static str, code: ErrorCode, message: impl Into<String>) -> CriError {
        CriError {
            method,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn from_status(method: &'static str, status: &tonic::Status) -> CriError {
        // A connection that breaks under a call (the runtime restarting)
        // comes back from tonic as Unknown "transport error"; Go's grpc, and
        // so the kubelet's retry logic, call that Unavailable. A runtime's own
        // Unknown errors carry no local source.
        let transport_failure = std::error::Error::source(status)
            .filter(|source| source.is::<tonic::transport::Error>());
        if let (tonic::Code::Unknown, Some(failure)) = (status.code(), transport_failure) {
            let mut message = status.message().to_string();
            let mut cause = failure.source();
            while let Some(error) = cause {
                message.push_str(": ");
                message.push_str(&error.to_string());
                cause = error.source();
            }
            return CriError::new(method, ErrorCode::Unavailable, message);
        }
        CriError::new(
            method,
            ErrorCode::from_grpc(status.code()),
            status.message(),
        )
    }

    /// The CRI RPC that failed (`"PullImage"`), or `"Connect"`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The runtime's own description, without the `rpc error` frame.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The sandbox, container or image the call named does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code == ErrorCode::NotFound
    }

    /// The runtime could not be reached (not started, restarting, socket gone).
    pub fn is_unavailable(&self) -> bool {
        self.code == ErrorCode::Unavailable
    }

    /// The call took longer than its deadline.
    pub fn is_deadline_exceeded(&self) -> bool {
        self.code == ErrorCode::DeadlineExceeded
    }

    /// The runtime does not implement the call (containerd 1.6 and
    /// `GetContainerEvents`, for instance).
    pub fn is_unimplemented(&self) -> bool {
        self.code == ErrorCode::Unimplemented
    }

    /// Why a `PullImage` failed, read from the code and containerd's wording.
    pub fn pull_failure(&self) -> PullFailure {
        PullFailure::classify(self)
    }
}

/// What went wrong with an image pull, coarse enough for a kubelet to pick a
/// message and a back-off, fine enough to tell a typo from a network outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry answered that the repository, tag or digest does not exist.
    NotFound,
    /// The registry refused the credentials (or wanted some).
    Unauthorized,
    /// The registry could not be reached: refused, unresolvable, timed out.
    RegistryUnavailable,
    /// The image name does not parse as a reference.
    InvalidReference,
    /// The pull took longer than its deadline.
    DeadlineExceeded,
    /// Anything else (disk full, unpack failure, a runtime bug).
    Other,
}

impl PullFailure {
    fn classify(error: &CriError) -> PullFailure {
        // containerd 1.6 wraps most registry failures in plain Go errors, which
        // reach us as Unknown: only the wording tells them apart.
        let message = error.message.to_ascii_lowercase();
        let mentions = |needles: &[&str]| needles.iter().any(|needle| message.contains(needle));
        match error.code {
            ErrorCode::NotFound => PullFailure::NotFound,
            ErrorCode::DeadlineExceeded => PullFailure::DeadlineExceeded,
            ErrorCode::Unauthenticated | ErrorCode::PermissionDenied => PullFailure::Unauthorized,
            ErrorCode::InvalidArgument => PullFailure::InvalidReference,
            _ if mentions(&[
                "401 unauthorized",
                "403 forbidden",
                "authorization failed",
                "pull access denied",
            ]) =>
            {
                PullFailure::Unauthorized
            }
            _ if mentions(&[
                "invalid reference format",
                "failed to parse image reference",
            ]) =>
            {
                PullFailure::InvalidReference
            }
            _ if mentions(&[
                "connection refused",
                "no such host",
                "i/o timeout",
                "network is unreachable",
                "no route to host",
                "connection reset",
                "tls handshake timeout",
                "server misbehaving",
            ]) =>
            {
                PullFailure::RegistryUnavailable
            }
            _ if mentions(&[": not found", "manifest unknown", "name unknown"]) => {
                PullFailure::NotFound
            }
            _ => PullFailure::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_go_grpc_errors() {
        let error = CriError::new("PullImage", ErrorCode::NotFound, "no such image");
        assert_eq!(
            error.to_string(),
            "rpc error: code = NotFound desc = no such image"
        );
        assert_eq!(error.method(), "PullImage");
        assert!(error.is_not_found());
        assert!(!error.is_unavailable());
    }

    #[test]
    fn maps_every_grpc_code() {
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::Cancelled),
            ErrorCode::Canceled
        );
        assert_eq!(
            ErrorCode::from_grpc(tonic::Code::Unavailable),
            ErrorCode::Unavailable
        );
        assert_eq!(ErrorCode::from_grpc(tonic::Code::Ok), ErrorCode::Unknown);
        let status = tonic::Status::deadline_exceeded("too slow");
        let error = CriError::from_status("StopContainer", &status);
        assert!(error.is_deadline_exceeded());
        assert_eq!(error.message(), "too slow");
    }

    #[test]
    fn classifies_containerd_pull_failures() {
        let unknown = |message: &str| CriError::new("PullImage", ErrorCode::Unknown, message);
        assert_eq!(
            unknown(
                "failed to pull and unpack image \"127.0.0.1:1/nope:latest\": failed to resolve reference \
                 \"127.0.0.1:1/nope:latest\": failed to do request: Head \"https://127.0.0.1:1/v2/nope/manifests/latest\": \
                 dial tcp 127.0.0.1:1: connect: connection refused"
            )
            .pull_failure(),
            PullFailure::RegistryUnavailable
        );
        assert_eq!(
            unknown("failed to resolve reference \"x\": pulling from host r: 401 Unauthorized")
                .pull_failure(),
            PullFailure::Unauthorized
        );
        assert_eq!(
            CriError::new(
                "PullImage",
                ErrorCode::NotFound,
                "docker.io/library/nope:latest: not found"
            )
            .pull_failure(),
            PullFailure::NotFound
        );
        assert_eq!(
            unknown("no space left on device").pull_failure(),
            PullFailure::Other
        );
        assert_eq!(
            CriError::new("PullImage", ErrorCode::DeadlineExceeded, "").pull_failure(),
            PullFailure::DeadlineExceeded
        );
    }
}
