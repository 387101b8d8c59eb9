//! Create and update bodies in the media types clients send (JSON, YAML, Kubernetes protobuf), turned into the JSON the handlers read.

use bytes::Bytes;
use serde_json::Value;

use crate::status::ApiError;

/// The JSON form of a POST or PUT body sent as `content_type`. JSON passes
/// through untouched; YAML and Kubernetes protobuf (client-go's typed
/// clients, e.g. `kubectl create deployment`) are converted. An empty body
/// stays empty whatever its type, for the handlers to judge.
pub fn to_json(content_type: &str, body: Bytes) -> Result<Bytes, ApiError> {
    if body.is_empty() {
        return Ok(body);
    }
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let object: Value = match media_type.as_str() {
        "application/json" => return Ok(body),
        "application/yaml" => serde_norway::from_slice(&body).map_err(|error| {
            ApiError::bad_request(format!(
                "error decoding request body: error converting YAML to JSON: {error}"
            ))
        })?,
        "application/vnd.kubernetes.protobuf" => {
            api::protobuf::decode_object(&body).map_err(|error| match error {
                api::protobuf::ProtobufError::Malformed { .. } => {
                    ApiError::bad_request(format!("error decoding request body: {error}"))
                }
                unrecognized => ApiError::bad_request(format!(
                    "the object provided is unrecognized: {unrecognized}"
                )),
            })?
        }
        _ => return Err(ApiError::unsupported_media_type(content_type)),
    };
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|error| ApiError::internal(format!("re-encoding the request body: {error}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn converted(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
        let json = to_json(content_type, Bytes::copy_from_slice(body))?;
        Ok(serde_json::from_slice(&json).expect("JSON"))
    }

    #[test]
    fn json_passes_through_byte_for_byte() {
        let body = Bytes::from_static(b"{\"kind\": \"Pod\" , \"x\":1}");
        for content_type in ["application/json", "application/json; charset=utf-8"] {
            assert_eq!(to_json(content_type, body.clone()), Ok(body.clone()));
        }
        // Malformed JSON is the handlers' to report, as before.
        let broken = Bytes::from_static(b"{");
        assert_eq!(to_json("application/json", broken.clone()), Ok(broken));
    }

    #[test]
    fn yaml_becomes_json() {
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {app: web}\ndata:\n  port: \"8080\"\n  count: '3'\nimmutable: true\n";
        assert_eq!(
            converted("application/yaml", yaml),
            Ok(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"app": "web"}},
                "data": {"port": "8080", "count": "3"},
                "immutable": true
            }))
        );
        assert_eq!(
            converted("application/yaml; charset=utf-8", b"a: [1, 2.5, null]"),
            Ok(json!({"a": [1, 2.5, null]}))
        );
    }

    #[test]
    fn undecodable_bodies_are_bad_requests() {
        for (content_type, body) in [
            ("application/yaml", &b"a: [1"[..]),
            ("application/yaml", b"a: 1\n---\nb: 2\n"),
            ("application/yaml", b"\xff\xfe"),
            ("application/vnd.kubernetes.protobuf", b"{\"kind\":\"Pod\"}"),
            ("application/vnd.kubernetes.protobuf", b"k8s\0\x0a\x03"),
        ] {
            let error = to_json(content_type, Bytes::copy_from_slice(body)).unwrap_err();
            assert_eq!((error.code, error.reason), (400, "BadRequest"), "{body:?}");
        }
        let error = to_json(
            "application/vnd.kubernetes.protobuf",
            Bytes::from_static(b"garbage"),
        )
        .unwrap_err();
        assert!(
            error
                .message
                .starts_with("the object provided is unrecognized"),
            "{}",
            error.message
        );
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let previous = level - 1;
            bomb.push_str(&format!(
                "a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"
            ));
        }
        let error = to_json("application/yaml", Bytes::from(bomb)).unwrap_err();
        assert_eq!(error.code, 400);
    }

    #[test]
    fn other_media_types_are_unsupported() {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json-patch+json",
            "application/merge-patch+json",
        ] {
            let error = to_json(content_type, Bytes::from_static(b"{}")).unwrap_err();
            assert_eq!((error.code, error.reason), (415, "UnsupportedMediaType"));
        }
        assert_eq!(to_json("text/plain", Bytes::new()), Ok(Bytes::new()));
    }

    #[test]
    fn protobuf_objects_become_json() {
        // `k8s\0` + Unknown{typeMeta{v1, Namespace}, raw: Namespace{metadata{name: "team-a"}}}.
        let name = b"team-a";
        let metadata = [&[0x0a, name.len() as u8][..], name].concat();
        let namespace = [&[0x0a, metadata.len() as u8][..], &metadata].concat();
        let type_meta = b"\x0a\x02v1\x12\x09Namespace";
        let unknown = [
            &[0x0a, type_meta.len() as u8][..],
            type_meta,
            &[0x12, namespace.len() as u8],
            &namespace,
        ]
        .concat();
        let body = [&b"k8s\0"[..], &unknown].concat();
        for content_type in [
            "application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf; charset=binary",
        ] {
            assert_eq!(
                converted(content_type, &body),
                Ok(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
                )
            );
        }
    }
}
