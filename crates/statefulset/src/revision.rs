//! StatefulSet ControllerRevisions as upstream's `controller/history` makes them: the template patch they hold, their hash and name, and restoring a set from one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

/// The label carrying a revision's hash (on revisions) or a pod's revision
/// name (on StatefulSet pods).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Maps every character of `text` onto the safe alphabet.
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| SAFE_ALPHABET[usize::from(byte) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// FNV-1 (32 bit), the hash `HashControllerRevision` uses.
fn fnv1_32(chunks: &[&[u8]]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for byte in *chunk {
            hash = hash.wrapping_mul(0x0100_0193);
            hash ^= u32::from(*byte);
        }
    }
    hash
}

/// The hash of a revision's data, salted by the collision count so that a
/// name taken by different data can be retried under a new name.
pub fn revision_hash(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let probe = collision_count.map(|count| count.to_string());
    let mut chunks: Vec<&[u8]> = vec![&bytes];
    if let Some(probe) = &probe {
        chunks.push(probe.as_bytes());
    }
    safe_encode(&fnv1_32(&chunks).to_string())
}

/// `<parent>-<hash>`, the parent's part cut to 223 bytes like upstream.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let mut end = parent.len().min(223);
    while !parent.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &parent[..end])
}

/// The strategic merge patch that restores `set`'s pod template:
/// `{"spec":{"template":{..., "$patch":"replace"}}}`.
pub fn template_patch(set: &StatefulSet) -> Value {
    let spec = set.spec.clone();
    let mut template = serde_json::to_value(&spec.template).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut template {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// A new revision of `set` holding its current template as revision number
/// `revision` (its name still to be fixed on creation when it collides).
pub fn new_revision(
    set: &StatefulSet,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    revision: i64,
    collision_count: i32,
) -> ControllerRevision {
    let data = template_patch(set);
    let hash = revision_hash(&data, Some(collision_count));
    let spec = set.spec.clone();
    let mut labels: BTreeMap<String, String> = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash.clone());
    let annotations: BTreeMap<String, String> =
        set.metadata.annotations.clone().unwrap_or_default();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(
                set.metadata.name.as_deref().unwrap_or_default(),
                &hash,
            )),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: RawExtension(data),
        revision: Some(revision),
    }
}

/// Whether two revisions restore the same state (their hash labels, when
/// both carry one, and their data agree).
pub fn equal_revisions(left: &ControllerRevision, right: &ControllerRevision) -> bool {
    let hash = |revision: &ControllerRevision| {
        revision
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(REVISION_LABEL).cloned())
    };
    if let (Some(l), Some(r)) = (hash(left), hash(right))
        && l.parse::<i64>().is_ok()
        && r.parse::<i64>().is_ok()
        && l != r
    {
        return false;
    }
    left.data.0 == right.data.0
}

/// Sorts by revision number, then name, as `SortControllerRevisions`.
pub fn sort_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        (a.revision.unwrap_or(0), a.metadata.name.as_deref())
            .cmp(&(b.revision.unwrap_or(0), b.metadata.name.as_deref()))
    });
}

/// The revision number after the highest in sorted `revisions`.
pub fn next_revision(revisions: &[ControllerRevision]) -> i64 {
    revisions
        .last()
        .map_or(1, |last| last.revision.unwrap_or(0) + 1)
}

/// `set` with the pod template `revision` holds (the `$patch: replace`
/// directive replaces the template whole).
pub fn apply_revision(set: &StatefulSet, revision: &ControllerRevision) -> StatefulSet {
    let mut restored = set.clone();
    let mut template = revision.data.0["spec"]["template"].clone();
    if let Value::Object(map) = &mut template {
        map.remove("$patch");
    }
    if let Ok(template) = serde_json::from_value::<PodTemplateSpec>(template) {
        restored.spec.template = template;
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_with_image(image: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": image}]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn safe_encoding_maps_digits_onto_the_consonant_alphabet() {
        // '0' is byte 48: 48 % 27 = 21 -> '4'; '9' is 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("09"), "4f");
    }

    #[test]
    fn fnv1_matches_the_reference_vectors() {
        assert_eq!(fnv1_32(&[b""]), 0x811c_9dc5);
        assert_eq!(fnv1_32(&[b"a"]), 0x050c_5d7e);
        assert_eq!(fnv1_32(&[b"foobar"]), 0x31f0_b262);
    }

    #[test]
    fn the_hash_follows_the_template_and_the_collision_count() {
        let one = template_patch(&set_with_image("nginx:1"));
        let two = template_patch(&set_with_image("nginx:2"));
        assert_eq!(revision_hash(&one, Some(0)), revision_hash(&one, Some(0)));
        assert_ne!(revision_hash(&one, Some(0)), revision_hash(&two, Some(0)));
        assert_ne!(revision_hash(&one, Some(0)), revision_hash(&one, Some(1)));
        assert!(
            revision_hash(&one, Some(0))
                .bytes()
                .all(|b| SAFE_ALPHABET.contains(&b))
        );
    }

    #[test]
    fn a_revision_holds_a_replacing_template_patch_and_restores_it() {
        let set = set_with_image("nginx:1");
        let owner = client::owners::controller_reference(&set);
        let revision = new_revision(&set, owner, 1, 0);
        assert_eq!(revision.data.0["spec"]["template"]["$patch"], "replace");
        let hash = revision.metadata.labels.as_ref().unwrap()[REVISION_LABEL].clone();
        assert_eq!(
            revision.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(revision.metadata.labels.as_ref().unwrap()["app"], "web");
        let restored = apply_revision(&set_with_image("nginx:2"), &revision);
        let image = restored.spec.template.spec.unwrap().containers[0]
            .image
            .clone();
        assert_eq!(image.as_deref(), Some("nginx:1"));
    }
}
