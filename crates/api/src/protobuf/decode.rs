//! Walks a Kubernetes protobuf object with the message table and builds the JSON object upstream's JSON encoding would write.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ProtobufError;
use super::descriptor::{self, Field, FieldType, Label, Message};
use super::well_known::{self, WellKnown};
use super::wire::{self, Records, WireValue};

/// How deep messages (and objects embedded in raw extensions) may nest.
/// Real objects stay under 20 (a CronJob's container probe); the bound
/// keeps a hostile body from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// `runtime.Unknown`'s field numbers.
const UNKNOWN_TYPE_META: u32 = 1;
const UNKNOWN_RAW: u32 = 2;
const UNKNOWN_CONTENT_ENCODING: u32 = 3;
/// `runtime.TypeMeta`'s.
const TYPE_META_API_VERSION: u32 = 1;
const TYPE_META_KIND: u32 = 2;

/// Decodes `k8s\0` + `runtime.Unknown` into the object's JSON form.
pub fn object(body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(super::MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let (mut api_version, mut kind) = (String::new(), String::new());
    let (mut raw, mut content_encoding): (&[u8], String) = (&[], String::new());
    for record in Records::new(envelope) {
        let (tag, value) = record.map_err(|error| ProtobufError::malformed(error.to_string()))?;
        match (tag, value) {
            (UNKNOWN_TYPE_META, WireValue::LengthDelimited(type_meta)) => {
                for record in Records::new(type_meta) {
                    let (tag, value) =
                        record.map_err(|error| ProtobufError::malformed(error.to_string()))?;
                    match (tag, value) {
                        (TYPE_META_API_VERSION, WireValue::LengthDelimited(text)) => {
                            api_version = String::from_utf8_lossy(text).into_owned();
                        }
                        (TYPE_META_KIND, WireValue::LengthDelimited(text)) => {
                            kind = String::from_utf8_lossy(text).into_owned();
                        }
                        _ => {}
                    }
                }
            }
            (UNKNOWN_RAW, WireValue::LengthDelimited(bytes)) => raw = bytes,
            (UNKNOWN_CONTENT_ENCODING, WireValue::LengthDelimited(text)) => {
                content_encoding = String::from_utf8_lossy(text).into_owned();
            }
            _ => {}
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(content_encoding));
    }
    let message = descriptor::root_message(&api_version, &kind).ok_or_else(|| {
        ProtobufError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        }
    })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    decode_message_into(message, raw, depth, &mut object)?;
    Ok(Value::Object(object))
}

/// Decodes one message's fields into `object`, in tag order (Go's JSON
/// writes struct fields in declaration order, which tags follow).
fn decode_message_into(
    message: &Message,
    bytes: &[u8],
    depth: usize,
    object: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::malformed(format!(
            "objects nest deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut occurrences: BTreeMap<u32, (&Field, Vec<WireValue<'_>>)> = BTreeMap::new();
    for record in Records::new(bytes) {
        let (tag, value) = record.map_err(|error| ProtobufError::malformed(error.to_string()))?;
        // Fields this table does not know (newer than it) are skipped, as
        // Go's unmarshaller skips them.
        if let Some(field) = message.field(tag) {
            occurrences
                .entry(tag)
                .or_insert((field, Vec::new()))
                .1
                .push(value);
        }
    }
    for (field, values) in occurrences.into_values() {
        let within = |error: ProtobufError| error.within(field.json_name);
        match field.label {
            Label::Singular | Label::OmitZero => {
                if let Some(value) = singular(field, &values, depth).map_err(within)? {
                    object.insert(field.json_name.into(), value);
                }
            }
            Label::Repeated => {
                let list = repeated(field.field_type, &values, depth).map_err(within)?;
                object.insert(field.json_name.into(), Value::Array(list));
            }
            Label::Map => {
                let map = map_entries(field.field_type, &values, depth).map_err(within)?;
                object.insert(field.json_name.into(), Value::Object(map));
            }
            Label::Inline => {
                let FieldType::Message(name) = field.field_type else {
                    return Err(ProtobufError::malformed("inline field is not a message"));
                };
                let bytes = merged_message_bytes(&values)?;
                decode_message_into(table_message(name)?, &bytes, depth + 1, object)?;
            }
        }
    }
    Ok(())
}

/// The JSON value of a one-value field, or None where upstream's JSON
/// leaves the field out.
fn singular(
    field: &Field,
    values: &[WireValue<'_>],
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    if let FieldType::Message(name) = field.field_type {
        // A message field written several times is one message merged from
        // all of them, which is what their concatenation decodes to.
        let bytes = merged_message_bytes(values)?;
        return message_value(name, &bytes, depth + 1).map(Some);
    }
    // A scalar written several times keeps its last value.
    let Some(last) = values.last() else {
        return Ok(None);
    };
    let value = scalar(field.field_type, *last)?;
    let zero = match &value {
        Value::String(text) => text.is_empty(),
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_i64() == Some(0),
        _ => false,
    };
    Ok((field.label != Label::OmitZero || !zero).then_some(value))
}

fn repeated(
    field_type: FieldType,
    values: &[WireValue<'_>],
    depth: usize,
) -> Result<Vec<Value>, ProtobufError> {
    let mut list = Vec::with_capacity(values.len());
    for value in values {
        match (field_type, value) {
            // Numbers and bools may come packed into one length-delimited
            // record (client-go writes them unpacked; other encoders pack).
            (
                FieldType::Bool | FieldType::Int32 | FieldType::Int64,
                WireValue::LengthDelimited(bytes),
            ) => {
                let varints = wire::packed_varints(bytes)
                    .map_err(|error| ProtobufError::malformed(error.to_string()))?;
                for varint in varints {
                    list.push(scalar(field_type, WireValue::Varint(varint))?);
                }
            }
            (FieldType::Message(name), WireValue::LengthDelimited(bytes)) => {
                let index = list.len();
                let element = message_value(name, bytes, depth + 1)
                    .map_err(|error| error.within(&format!("[{index}]")))?;
                list.push(element);
            }
            (field_type, value) => list.push(scalar(field_type, *value)?),
        }
    }
    Ok(list)
}

/// A `map<string, V>`: entry messages {1 key, 2 value}. A missing key or
/// value is the zero value, and a repeated key keeps its last entry, as Go
/// reads them.
fn map_entries(
    value_type: FieldType,
    entries: &[WireValue<'_>],
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut map = Map::new();
    for entry in entries {
        let WireValue::LengthDelimited(entry) = entry else {
            return Err(wrong_wire_type(entry, "a map entry"));
        };
        let (mut key, mut value) = (String::new(), None);
        for record in Records::new(entry) {
            let (tag, record) =
                record.map_err(|error| ProtobufError::malformed(error.to_string()))?;
            match tag {
                1 => key = string_of(record)?,
                2 => value = Some(record),
                _ => {}
            }
        }
        let value = match (value_type, value) {
            (FieldType::Message(name), value) => {
                let bytes = match value {
                    None => &[][..],
                    Some(WireValue::LengthDelimited(bytes)) => bytes,
                    Some(other) => return Err(wrong_wire_type(&other, "a message")),
                };
                message_value(name, bytes, depth + 1)
                    .map_err(|error| error.within(&format!("[{key}]")))?
            }
            (FieldType::String | FieldType::Bytes, None) => json!(""),
            (FieldType::Bool, None) => json!(false),
            (FieldType::Int32 | FieldType::Int64, None) => json!(0),
            (scalar_type, Some(value)) => scalar(scalar_type, value)?,
        };
        map.insert(key, value);
    }
    Ok(map)
}

/// A message's JSON value: its well-known form, or an object of its fields.
fn message_value(name: &str, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if let Some(well_known) = WellKnown::of(name) {
        return well_known.decode(bytes, depth);
    }
    let mut object = Map::new();
    decode_message_into(table_message(name)?, bytes, depth, &mut object)?;
    // Go writes a plain (non-pointer) struct field even when it is empty,
    // and upstream's JSON shows it as `{}` (`resources: {}`).
    Ok(Value::Object(object))
}

fn table_message(name: &str) -> Result<&'static Message, ProtobufError> {
    descriptor::message(name)
        .ok_or_else(|| ProtobufError::malformed(format!("message {name} is not in the table")))
}

/// The bytes of every occurrence of a message field, concatenated.
fn merged_message_bytes<'a>(values: &[WireValue<'a>]) -> Result<Cow<'a, [u8]>, ProtobufError> {
    let mut parts = Vec::with_capacity(values.len());
    for value in values {
        match value {
            WireValue::LengthDelimited(bytes) => parts.push(*bytes),
            other => return Err(wrong_wire_type(other, "a message")),
        }
    }
    Ok(match parts.as_slice() {
        [only] => Cow::Borrowed(*only),
        _ => Cow::Owned(parts.concat()),
    })
}

fn scalar(field_type: FieldType, value: WireValue<'_>) -> Result<Value, ProtobufError> {
    Ok(match (field_type, value) {
        (FieldType::String, value) => Value::String(string_of(value)?),
        (FieldType::Bytes, WireValue::LengthDelimited(bytes)) => {
            Value::String(well_known::base64(bytes))
        }
        (FieldType::Bool, WireValue::Varint(varint)) => Value::Bool(varint != 0),
        // Go converts the 64-bit varint to int32 by truncation.
        (FieldType::Int32, WireValue::Varint(varint)) => json!(varint as i64 as i32),
        (FieldType::Int64, WireValue::Varint(varint)) => json!(varint as i64),
        (FieldType::Bytes, other) => return Err(wrong_wire_type(&other, "bytes")),
        (FieldType::Bool | FieldType::Int32 | FieldType::Int64, other) => {
            return Err(wrong_wire_type(&other, "a varint"));
        }
        (FieldType::Message(_), other) => return Err(wrong_wire_type(&other, "a message")),
    })
}

/// Strings as Go reads them: bytes that are not UTF-8 are kept and become
/// U+FFFD when written as JSON.
fn string_of(value: WireValue<'_>) -> Result<String, ProtobufError> {
    match value {
        WireValue::LengthDelimited(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        other => Err(wrong_wire_type(&other, "a string")),
    }
}

fn wrong_wire_type(found: &WireValue<'_>, expected: &str) -> ProtobufError {
    ProtobufError::malformed(format!("found {}, expected {expected}", found.describe()))
}
