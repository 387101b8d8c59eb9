//! The `pod-template-hash`: FNV-32a over the pod template (plus the collision count), rendered in upstream's `SafeEncodeString` alphabet.
//!
//! Upstream hashes a spew dump of the Go struct; krust hashes the template's
//! canonical JSON (keys sorted), so names are stable and collision-checked
//! the same way but not byte-identical to a Go cluster's.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels (no words), no
/// look-alikes (0/o, 1/l, 3/e).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv32a(hash: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(hash, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped into the alphabet.
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| ALPHANUMS[usize::from(byte) % ALPHANUMS.len()] as char)
        .collect()
}

/// Upstream's `controller.ComputeHash(template, collisionCount)`.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut text = String::new();
    canonical_json(&value, &mut text);
    let mut hash = fnv32a(FNV_OFFSET, text.as_bytes());
    if let Some(count) = collision_count {
        // Upstream writes an 8-byte buffer holding the little-endian u32.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv32a(hash, &bytes);
    }
    safe_encode(&hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(FNV_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv32a(FNV_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(FNV_OFFSET, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn digits_map_into_the_safe_alphabet() {
        // '0'..'9' are bytes 48..57: 48 % 27 = 21 -> '4', 54 % 27 = 0 -> 'b'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn the_hash_is_stable_and_changes_with_template_and_collisions() {
        let hash = pod_template_hash(&template("nginx:1"), None);
        assert_eq!(hash, pod_template_hash(&template("nginx:1"), None));
        assert!(hash.bytes().all(|b| ALPHANUMS.contains(&b)));
        assert_ne!(hash, pod_template_hash(&template("nginx:2"), None));
        assert_ne!(hash, pod_template_hash(&template("nginx:1"), Some(1)));
        assert_ne!(
            pod_template_hash(&template("nginx:1"), Some(0)),
            pod_template_hash(&template("nginx:1"), Some(1))
        );
    }
}
