//! Kubernetes protobuf objects (`application/vnd.kubernetes.protobuf`) decoded into the JSON form the rest of krust handles.
//!
//! client-go sends typed objects (`kubectl create deployment`, `expose`, ...)
//! as `k8s\0` followed by a `runtime.Unknown` envelope whose `raw` holds the
//! object's own message. [`decode_object`] walks that message with a table
//! of every served kind's messages ([`schema`], generated from k8s-pb's
//! prost types and k8s-openapi's JSON names by
//! `crates/api/tests/protobuf_schema.rs`) and writes what upstream's JSON
//! encoding of the same Go object would be:
//!
//! - field names are the JSON names (`podIP`, not the snake-cased `pod_ip`);
//! - times, durations, int-or-strings, quantities and raw extensions take
//!   their JSON forms ([`well_known`]), a zero time being `null` as in Go;
//!   `bytes` become base64;
//! - client-go writes every plain (non-pointer) Go field, zero or not. A
//!   zero that Go's JSON would omit (`""`, `nodePort: 0`, `paused: false`)
//!   is left out; a zero in a pointer or required field (`replicas: 0`,
//!   `storageClassName: ""`) is kept; an empty struct is `{}`.
//!
//! Nothing here panics on any input: malformed bytes are a [`ProtobufError`].

mod decode;
mod descriptor;
#[rustfmt::skip]
mod schema;
mod well_known;
mod wire;

/// What every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// Why a body is not a Kubernetes protobuf object krust can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf prefix \"k8s\\0\"")]
    MissingMagic,
    #[error("the object has no apiVersion or kind")]
    MissingTypeMeta,
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("unsupported content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The bytes are not a well-formed message; `path` is the JSON path of
    /// the field they failed in (`spec.template.spec.containers[0].ports`).
    #[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Malformed { path: String, reason: String },
}

impl ProtobufError {
    fn malformed(reason: impl Into<String>) -> Self {
        ProtobufError::Malformed {
            path: String::new(),
            reason: reason.into(),
        }
    }

    /// Prefixes a malformed field's path with the field (or `[index]`) that
    /// contains it.
    fn within(self, segment: &str) -> Self {
        match self {
            ProtobufError::Malformed { path, reason } => {
                let path = if path.is_empty() {
                    segment.to_string()
                } else if path.starts_with('[') {
                    format!("{segment}{path}")
                } else {
                    format!("{segment}.{path}")
                };
                ProtobufError::Malformed { path, reason }
            }
            other => other,
        }
    }
}

/// Decodes a `application/vnd.kubernetes.protobuf` body (`k8s\0` +
/// `runtime.Unknown`) into the object as JSON, with `apiVersion` and `kind`
/// from the envelope's type meta.
pub fn decode_object(body: &[u8]) -> Result<serde_json::Value, ProtobufError> {
    decode::object(body, 0)
}

#[cfg(test)]
mod tests;
