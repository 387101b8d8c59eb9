//! Object bookkeeping shared by the handlers: storage keys, resourceVersion, uid, timestamps, generated names.

use std::time::{SystemTime, UNIX_EPOCH};

use api::resources::Resource;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};
use storage::KeyValue;

/// The storage key of one object.
pub fn key(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) if resource.namespaced => {
            format!("/registry/{}/{namespace}/{name}", resource.storage_prefix)
        }
        _ => format!("/registry/{}/{name}", resource.storage_prefix),
    }
}

/// The storage prefix of a collection: one namespace, or all of them.
pub fn collection_prefix(resource: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) if resource.namespaced => {
            format!("/registry/{}/{namespace}/", resource.storage_prefix)
        }
        _ => format!("/registry/{}/", resource.storage_prefix),
    }
}

/// A stored object as clients see it: `metadata.resourceVersion` is the
/// revision that last wrote it.
pub fn decode(kv: &KeyValue) -> Option<Value> {
    let mut object: Value = serde_json::from_slice(&kv.value).ok()?;
    set_resource_version(&mut object, kv.mod_revision);
    Some(object)
}

/// A stored object as `resource`'s version shows it: objects of resources
/// that share a stored form with another version (events.k8s.io/v1 Events,
/// autoscaling/v1 HPAs) are converted from it.
pub fn decode_as(resource: &Resource, kv: &KeyValue) -> Option<Value> {
    let object = decode(kv)?;
    Some(if is_converted(resource) {
        api::conversion::from_stored(&resource.api_version(), resource.kind, object)
    } else {
        object
    })
}

/// The bytes stored for an object of `resource`'s version, in its stored form.
pub fn encode_as(resource: &Resource, object: &Value) -> Bytes {
    if is_converted(resource) {
        let stored =
            api::conversion::to_stored(&resource.api_version(), resource.kind, object.clone());
        encode(&stored)
    } else {
        encode(object)
    }
}

/// Whether `resource`'s objects are stored in another version's form, so
/// stored bytes cannot be sent as they are.
pub fn is_converted(resource: &Resource) -> bool {
    api::conversion::is_converted(resource.group, resource.version, resource.kind)
}

/// The bytes stored for an object; the resourceVersion is the storage
/// revision, so it is never stored inside the value.
pub fn encode(object: &Value) -> Bytes {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    let mut bytes = serde_json::to_vec(&object).unwrap_or_default();
    // The watch cache keeps these bytes for the object's lifetime; the
    // serializer's doubling growth would otherwise leave up to half unused.
    bytes.shrink_to_fit();
    Bytes::from(bytes)
}

/// Writes a stored object as a list item: without `kind` and `apiVersion`
/// (upstream's list items carry neither) and with its resourceVersion, while
/// copying every other top-level field verbatim rather than parsing it.
pub fn write_list_item(kv: &KeyValue, out: &mut Vec<u8>) -> serde_json::Result<()> {
    if write_list_item_in_stored_order(kv, out) {
        return Ok(());
    }
    let fields: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(&kv.value)?;
    out.push(b'{');
    let mut first = true;
    for (name, value) in fields {
        if name == "kind" || name == "apiVersion" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, &name)?;
        out.push(b':');
        if name == "metadata" {
            let mut metadata: serde_json::Map<String, Value> = serde_json::from_str(value.get())?;
            metadata.insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
            serde_json::to_writer(&mut *out, &metadata)?;
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    Ok(())
}

/// A plain list answered from stored bytes, written in chunks as the client
/// reads it, so a 100,000-object list never exists whole in memory.
pub struct StoredList {
    head: Vec<u8>,
    items: Box<dyn Iterator<Item = KeyValue> + Send>,
}

/// How much of a list one chunk carries.
const LIST_CHUNK_BYTES: usize = 256 * 1024;

impl StoredList {
    pub fn new(
        list_kind: &str,
        api_version: &str,
        metadata: &Value,
        items: Box<dyn Iterator<Item = KeyValue> + Send>,
    ) -> Self {
        let head = format!(
            "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{metadata},\"items\":[",
            json!(list_kind),
            json!(api_version),
        );
        StoredList {
            head: head.into_bytes(),
            items,
        }
    }

    /// The JSON text in chunks of about [`LIST_CHUNK_BYTES`].
    pub fn into_chunks(
        self,
    ) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        let StoredList { head, items } = self;
        let mut items = items;
        let mut next_chunk = Some(head);
        let mut written = 0usize;
        futures::stream::iter(std::iter::from_fn(move || {
            let mut chunk = next_chunk.take()?;
            while chunk.len() < LIST_CHUNK_BYTES {
                let Some(kv) = items.next() else {
                    chunk.extend_from_slice(b"]}");
                    return Some(Ok(Bytes::from(chunk)));
                };
                let mark = chunk.len();
                if written > 0 {
                    chunk.push(b',');
                }
                match write_list_item(&kv, &mut chunk) {
                    Ok(()) => written += 1,
                    Err(error) => {
                        // Headers are gone; leave the item out rather than
                        // break the whole list.
                        tracing::error!(key = %kv.key, %error, "stored object is not JSON");
                        chunk.truncate(mark);
                    }
                }
            }
            next_chunk = Some(Vec::with_capacity(LIST_CHUNK_BYTES + 64 * 1024));
            Some(Ok(Bytes::from(chunk)))
        }))
    }
}

/// The common case without parsing: [`encode`] writes compact JSON with
/// sorted keys, so most stored objects start with `apiVersion`, `kind` and
/// `metadata`, in that order. Those two are skipped and the resourceVersion
/// becomes metadata's first field. False (nothing written) for any other shape.
fn write_list_item_in_stored_order(kv: &KeyValue, out: &mut Vec<u8>) -> bool {
    fn skip_plain_string<'a>(rest: &'a [u8], field: &[u8]) -> Option<&'a [u8]> {
        let rest = rest.strip_prefix(field)?;
        let end = rest.iter().position(|&b| b == b'"')?;
        if rest[..end].contains(&b'\\') {
            return None;
        }
        Some(&rest[end + 1..])
    }
    let Some(rest) = skip_plain_string(&kv.value, b"{\"apiVersion\":\"")
        .and_then(|rest| skip_plain_string(rest, b",\"kind\":\""))
        .and_then(|rest| rest.strip_prefix(b",\"metadata\":{"))
    else {
        return false;
    };
    out.extend_from_slice(b"{\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(kv.mod_revision.to_string().as_bytes());
    out.push(b'"');
    if !rest.starts_with(b"}") {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    true
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

pub fn metadata(object: &Value) -> Option<&serde_json::Map<String, Value>> {
    object.get("metadata")?.as_object()
}

pub fn metadata_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    metadata(object)?.get(field)?.as_str()
}

/// The current time as Kubernetes writes timestamps: RFC 3339, seconds, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix_seconds: i64) -> String {
    api::table::rfc3339(unix_seconds)
}

/// A random RFC 4122 version 4 UUID.
pub fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The five random characters upstream appends to `generateName`, drawn
/// from an alphabet without vowels or look-alike digits.
pub fn generated_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The value of a field selector's field in `object` (`spec.nodeName`,
/// `metadata.name`, ...); absent fields read as "".
pub fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for part in path.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        // Lists such as status.podIPs select on their first entry's ip.
        Value::Array(items) => items
            .first()
            .and_then(|item| item.get("ip").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string(),
        Value::Object(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_305_845), "2026-11-22T00:04:05Z");
    }

    #[test]
    fn list_items_drop_type_fields_and_gain_their_resource_version() {
        let stored = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "data": {"metadata": {"name": "inner"}}, "metadata": {"name": "r", "namespace": "d"}, "revision": 3});
        let kv = KeyValue {
            key: "/registry/apps/controllerrevisions/d/r".into(),
            value: encode(&stored),
            create_revision: 5,
            mod_revision: 9,
            version: 2,
        };
        let mut out = Vec::new();
        write_list_item(&kv, &mut out).unwrap();
        let item: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            item,
            json!({"data": {"metadata": {"name": "inner"}}, "metadata": {"name": "r", "namespace": "d", "resourceVersion": "9"}, "revision": 3})
        );
    }

    #[test]
    fn list_items_of_every_stored_shape_are_the_same_json() {
        let shapes = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}),
            json!({"action": "Scheduled", "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}}),
            json!({"apiVersion": "v1", "kind": "Weird\"Kind", "metadata": {"name": "q"}}),
        ];
        for stored in shapes {
            let kv = KeyValue {
                key: "/registry/x/y".into(),
                value: encode(&stored),
                create_revision: 1,
                mod_revision: 12,
                version: 1,
            };
            let mut out = Vec::new();
            write_list_item(&kv, &mut out).unwrap();
            let item: Value = serde_json::from_slice(&out).unwrap();
            let mut expected = stored.clone();
            expected.as_object_mut().unwrap().remove("kind");
            expected.as_object_mut().unwrap().remove("apiVersion");
            expected["metadata"]["resourceVersion"] = json!("12");
            assert_eq!(item, expected, "{stored}");
        }
    }

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
    }

    #[test]
    fn field_values_follow_dotted_paths() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"podIPs": [{"ip": "10.0.0.1"}]}});
        assert_eq!(field_value(&pod, "spec.nodeName"), "n1");
        assert_eq!(field_value(&pod, "spec.hostNetwork"), "true");
        assert_eq!(field_value(&pod, "status.podIPs"), "10.0.0.1");
        assert_eq!(field_value(&pod, "status.phase"), "");
    }
}
