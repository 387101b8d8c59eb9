//! The shape of the generated message table ([`super::schema`]): each Kubernetes message's fields by tag, with their JSON names and how their values decode.

use super::schema::{GROUP_VERSIONS, MESSAGES};

/// One protobuf message of the Kubernetes API, named by its OpenAPI definition
/// (`io.k8s.api.apps.v1.Deployment`), which is also its Go type's name.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    /// The JSON property; empty for [`Label::Inline`] fields.
    pub json_name: &'static str,
    pub field_type: FieldType,
    pub label: Label,
}

/// What a field's value (or a map's value, or one list element) is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    String,
    Bool,
    Int32,
    Int64,
    /// Raw bytes, written in JSON as base64.
    Bytes,
    /// Another message of the table, by name.
    Message(&'static str),
}

/// How often a field occurs and how it maps onto JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// One value; a zero value on the wire is kept, because the Go field is a
    /// pointer (or required) and zero means something (`replicas: 0`).
    Singular,
    /// One value whose zero (`""`, `false`, `0`) means unset: Go's field is a
    /// plain value tagged `omitempty`, so client-go always writes it but
    /// upstream's JSON leaves it out.
    OmitZero,
    /// A list: one wire entry per element (numbers may also come packed).
    Repeated,
    /// A `map<string, field_type>`: repeated entry messages {1 key, 2 value}.
    Map,
    /// A Go struct embedded without a JSON name: its fields are written into
    /// the enclosing JSON object (`Volume`'s `volumeSource`).
    Inline,
}

/// Builds one table row; keeps the generated table to one short line a field.
pub const fn field(
    tag: u32,
    json_name: &'static str,
    field_type: FieldType,
    label: Label,
) -> Field {
    Field {
        tag,
        json_name,
        field_type,
        label,
    }
}

impl Message {
    /// The field numbered `tag`, if the table knows it.
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .binary_search_by_key(&tag, |field| field.tag)
            .ok()
            .map(|index| &fields[index])
    }
}

/// The message named `name` (`io.k8s.api.core.v1.PodSpec`).
pub fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|message| message.name.cmp(name))
        .ok()
        .map(|index| &MESSAGES[index])
}

/// The message of a top-level object: `apps/v1` + `Deployment` →
/// `io.k8s.api.apps.v1.Deployment`.
pub fn root_message(api_version: &str, kind: &str) -> Option<&'static Message> {
    let (_, package) = GROUP_VERSIONS
        .iter()
        .find(|(version, _)| *version == api_version)?;
    message(&format!("{package}.{kind}"))
}
