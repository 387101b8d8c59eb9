//! DaemonSet revisions: the template hash (upstream's `ComputeHash`), the ControllerRevision snapshot holding the template patch, and matching a revision to the current template.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

/// The pod and revision label carrying the template hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Upstream's `rand.SafeEncodeString`.
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| SAFE_ALPHABET[usize::from(byte) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// FNV-1a (32 bit), the hash `ComputeHash` uses.
fn fnv1a_32(chunks: &[&[u8]]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for byte in *chunk {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// The hash of the DaemonSet's pod template, salted with the collision
/// count (as little-endian bytes, like upstream) when there is one.
pub fn template_hash(daemon_set: &DaemonSet, collision_count: Option<i32>) -> String {
    let template = serde_json::to_vec(&daemon_set.spec.template).unwrap_or_default();
    let count = collision_count.map(|count| (count as u32).to_le_bytes());
    let mut chunks: Vec<&[u8]> = vec![&template];
    if let Some(count) = &count {
        chunks.push(count);
    }
    safe_encode(&fnv1a_32(&chunks).to_string())
}

/// `{"spec":{"template":{..., "$patch":"replace"}}}`: what a revision stores.
pub fn template_patch(daemon_set: &DaemonSet) -> Value {
    let mut template =
        serde_json::to_value(&daemon_set.spec.template).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut template {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// Whether `revision` holds the DaemonSet's current template.
pub fn matches(daemon_set: &DaemonSet, revision: &ControllerRevision) -> bool {
    revision.data.0 == template_patch(daemon_set)
}

/// The revision snapshot of the current template, named `<ds>-<hash>`.
pub fn snapshot(daemon_set: &DaemonSet, revision: i64) -> ControllerRevision {
    let collision_count = daemon_set.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(daemon_set, collision_count);
    let mut labels: BTreeMap<String, String> = daemon_set
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                daemon_set.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: daemon_set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: daemon_set.metadata.annotations.clone(),
            owner_references: Some(vec![client::owners::controller_reference(daemon_set)]),
            ..ObjectMeta::default()
        },
        data: RawExtension(template_patch(daemon_set)),
        revision: Some(revision),
    }
}

pub fn revision_hash(revision: &ControllerRevision) -> Option<&str> {
    revision
        .metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_set(image: &str) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a_32(&[b""]), 0x811c_9dc5);
        assert_eq!(fnv1a_32(&[b"a"]), 0xe40c_292c);
        assert_eq!(fnv1a_32(&[b"foo", b"bar"]), 0xbf9c_f968);
    }

    #[test]
    fn the_template_hash_is_stable_and_follows_template_and_collisions() {
        let one = daemon_set("agent:1");
        assert_eq!(
            template_hash(&one, None),
            template_hash(&daemon_set("agent:1"), None)
        );
        assert_ne!(
            template_hash(&one, None),
            template_hash(&daemon_set("agent:2"), None)
        );
        assert_ne!(template_hash(&one, Some(0)), template_hash(&one, Some(1)));
        assert!(
            template_hash(&one, None)
                .bytes()
                .all(|b| SAFE_ALPHABET.contains(&b))
        );
    }

    #[test]
    fn a_snapshot_is_named_after_the_hash_and_matches_its_template() {
        let one = daemon_set("agent:1");
        let revision = snapshot(&one, 1);
        let hash = template_hash(&one, None);
        assert_eq!(revision.metadata.name, Some(format!("agent-{hash}")));
        assert_eq!(revision_hash(&revision), Some(hash.as_str()));
        assert_eq!(revision.metadata.labels.as_ref().unwrap()["app"], "agent");
        assert!(matches(&one, &revision));
        assert!(!matches(&daemon_set("agent:2"), &revision));
    }
}
