//! The one error type every storage backend returns.

use crate::{KeyValue, Revision};

/// Why a storage call failed. Messages are one line and name the cause.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StorageError {
    /// A put or delete precondition did not hold; `current` is the key's
    /// state at the time (None: absent), so callers can retry or report.
    #[error("precondition failed for key {key}")]
    PreconditionFailed {
        key: String,
        current: Option<Box<KeyValue>>,
    },
    /// A delete named a key that does not exist.
    #[error("key {key} not found")]
    NotFound { key: String },
    /// The requested revision is older than the compacted one.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision has not happened yet.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A value exceeds [`crate::MAX_VALUE_BYTES`].
    #[error("value for key {key} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
    /// `--datastore-endpoint` could not be understood.
    #[error("invalid datastore endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// The file exists but is not a krust database; it was left untouched.
    #[error("{path}: not a krust database ({reason})")]
    NotKrustDatabase { path: String, reason: String },
    /// The database or its directory cannot be written.
    #[error("{path}: read-only ({reason})")]
    ReadOnly { path: String, reason: String },
    /// The disk holding the database has no space left; nothing was written.
    #[error("{path}: disk full ({reason})")]
    DiskFull { path: String, reason: String },
    /// The backend cannot be reached (etcd down, network error, timeout).
    #[error("{endpoint}: unavailable ({reason})")]
    Unavailable { endpoint: String, reason: String },
    /// The store was closed while the call was in flight.
    #[error("storage is shut down")]
    Closed,
    /// Any other backend failure, with the backend's own message.
    #[error("{backend}: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

impl StorageError {
    pub(crate) fn precondition(key: &str, current: Option<KeyValue>) -> Self {
        StorageError::PreconditionFailed {
            key: key.to_string(),
            current: current.map(Box::new),
        }
    }
}
