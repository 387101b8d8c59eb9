//! The OpenAPI v2 document as gnostic's `openapi.v2.Document` protobuf message, the form kubectl fetches from `/openapi/v2` to validate manifests and explain fields.
//!
//! The messages mirror gnostic-models' `openapiv2/OpenAPIv2.proto` (same
//! field numbers), limited to the messages and fields a Kubernetes document
//! uses: no security definitions, XML, external docs or file schemas.
//! Vendor extensions and free-form values (`default`, `enum`, `example`)
//! travel as `Any{yaml}`, which clients parse as YAML.
//!
//! The JSON form is the source: [`encode`] converts the rendered Swagger 2.0
//! JSON, so both forms always say the same. One deliberate difference: a
//! described reference, which the JSON (from OpenAPI 3 schemas) writes as
//! `allOf: [{$ref}]`, becomes a `$ref` with a description beside it, as
//! kube-apiserver's v2 documents write it; kubectl 1.20's schema parser
//! does not follow `allOf` and would treat such a field as free-form.

use prost::Message;
use serde_json::{Map, Value};

#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, tag = "3")]
    pub host: String,
    #[prost(string, tag = "4")]
    pub base_path: String,
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A free-form value. Field 1 (`google.protobuf.Any`) is never used by
/// Kubernetes documents; the value is its YAML text.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(string, tag = "1")]
    pub reference: String,
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    pub oneof: Option<ParametersItemOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParametersItemOneof {
    #[prost(message, boxed, tag = "1")]
    Parameter(Box<Parameter>),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    pub oneof: Option<ParameterOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterOneof {
    #[prost(message, tag = "1")]
    BodyParameter(BodyParameter),
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

#[derive(Clone, PartialEq, Message)]
pub struct JsonReference {
    #[prost(string, tag = "1")]
    pub reference: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyParameterOneof", tags = "1, 2, 3, 4")]
    pub oneof: Option<NonBodyParameterOneof>,
}

/// The four kinds of non-body parameter. gnostic numbers the fields of the
/// header and path sub-schemas alike, and those of the form-data and query
/// sub-schemas alike, so one message serves each pair.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyParameterOneof {
    #[prost(message, tag = "1")]
    Header(PathOrHeaderParameter),
    #[prost(message, tag = "2")]
    FormData(QueryOrFormDataParameter),
    #[prost(message, tag = "3")]
    Query(QueryOrFormDataParameter),
    #[prost(message, tag = "4")]
    Path(PathOrHeaderParameter),
}

/// gnostic's `QueryParameterSubSchema` and `FormDataParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryOrFormDataParameter {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(bool, tag = "5")]
    pub allow_empty_value: bool,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(string, tag = "7")]
    pub format: String,
    #[prost(message, optional, tag = "8")]
    pub items: Option<PrimitivesItems>,
    #[prost(string, tag = "9")]
    pub collection_format: String,
    #[prost(message, optional, tag = "10")]
    pub default: Option<Any>,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
    #[prost(message, repeated, tag = "21")]
    pub r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "23")]
    pub vendor_extension: Vec<NamedAny>,
}

/// gnostic's `PathParameterSubSchema` and `HeaderParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct PathOrHeaderParameter {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub r#type: String,
    #[prost(string, tag = "6")]
    pub format: String,
    #[prost(message, optional, tag = "7")]
    pub items: Option<PrimitivesItems>,
    #[prost(string, tag = "8")]
    pub collection_format: String,
    #[prost(message, optional, tag = "9")]
    pub default: Option<Any>,
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "22")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The item type of an array parameter.
#[derive(Clone, PartialEq, Message)]
pub struct PrimitivesItems {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(message, optional, boxed, tag = "3")]
    pub items: Option<Box<PrimitivesItems>>,
    #[prost(string, tag = "4")]
    pub collection_format: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(bool, tag = "15")]
    pub unique_items: bool,
    #[prost(message, repeated, tag = "16")]
    pub r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "18")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResponseValue {
    #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
    pub oneof: Option<ResponseValueOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseValueOneof {
    #[prost(message, boxed, tag = "1")]
    Response(Box<Response>),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A response's schema; gnostic's alternative, `FileSchema` (tag 2), is
/// for file downloads, which Kubernetes does not describe.
#[derive(Clone, PartialEq, Message)]
pub struct SchemaItem {
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    pub oneof: Option<SchemaItemOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaItemOneof {
    #[prost(message, tag = "1")]
    Schema(Schema),
}

#[derive(Clone, PartialEq, Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    /// `$ref` (gnostic's `_ref`).
    #[prost(string, tag = "1")]
    pub reference: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(string, tag = "26")]
    pub discriminator: String,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
    pub oneof: Option<AdditionalPropertiesOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalPropertiesOneof {
    #[prost(message, boxed, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// The protobuf encoding of a Swagger 2.0 JSON document.
pub fn encode(swagger: &Value) -> Vec<u8> {
    document(swagger).encode_to_vec()
}

/// The `openapi.v2.Document` of a Swagger 2.0 JSON document.
pub fn document(swagger: &Value) -> Document {
    let empty = Map::new();
    let map = swagger.as_object().unwrap_or(&empty);
    Document {
        swagger: text(map, "swagger"),
        info: map.get("info").and_then(Value::as_object).map(|info| Info {
            title: text(info, "title"),
            version: text(info, "version"),
            description: text(info, "description"),
            vendor_extension: vendor_extensions(info),
        }),
        host: text(map, "host"),
        base_path: text(map, "basePath"),
        schemes: texts(map, "schemes"),
        consumes: texts(map, "consumes"),
        produces: texts(map, "produces"),
        paths: map
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| Paths {
                vendor_extension: vendor_extensions(paths),
                path: paths
                    .iter()
                    .filter(|(name, _)| !name.starts_with("x-"))
                    .map(|(name, item)| NamedPathItem {
                        name: name.clone(),
                        value: item.as_object().map(path_item),
                    })
                    .collect(),
            }),
        definitions: map
            .get("definitions")
            .and_then(Value::as_object)
            .map(|definitions| Definitions {
                additional_properties: named_schemas(definitions),
            }),
        vendor_extension: vendor_extensions(map),
    }
}

fn path_item(map: &Map<String, Value>) -> PathItem {
    let operation = |method: &str| map.get(method).and_then(Value::as_object).map(operation);
    PathItem {
        reference: text(map, "$ref"),
        get: operation("get"),
        put: operation("put"),
        post: operation("post"),
        delete: operation("delete"),
        options: operation("options"),
        head: operation("head"),
        patch: operation("patch"),
        parameters: parameters(map),
        vendor_extension: vendor_extensions(map),
    }
}

fn operation(map: &Map<String, Value>) -> Operation {
    Operation {
        tags: texts(map, "tags"),
        summary: text(map, "summary"),
        description: text(map, "description"),
        operation_id: text(map, "operationId"),
        produces: texts(map, "produces"),
        consumes: texts(map, "consumes"),
        parameters: parameters(map),
        responses: map
            .get("responses")
            .and_then(Value::as_object)
            .map(responses),
        schemes: texts(map, "schemes"),
        deprecated: flag(map, "deprecated"),
        vendor_extension: vendor_extensions(map),
    }
}

fn parameters(map: &Map<String, Value>) -> Vec<ParametersItem> {
    let Some(Value::Array(parameters)) = map.get("parameters") else {
        return Vec::new();
    };
    parameters
        .iter()
        .filter_map(Value::as_object)
        .map(|parameter| ParametersItem {
            oneof: Some(parameter_item(parameter)),
        })
        .collect()
}

fn parameter_item(map: &Map<String, Value>) -> ParametersItemOneof {
    if map.contains_key("$ref") {
        return ParametersItemOneof::JsonReference(json_reference(map));
    }
    let location = text(map, "in");
    let non_body = match location.as_str() {
        "body" => {
            return ParametersItemOneof::Parameter(Box::new(Parameter {
                oneof: Some(ParameterOneof::BodyParameter(BodyParameter {
                    description: text(map, "description"),
                    name: text(map, "name"),
                    r#in: location,
                    required: flag(map, "required"),
                    schema: map.get("schema").map(schema),
                    vendor_extension: vendor_extensions(map),
                })),
            }));
        }
        "query" => NonBodyParameterOneof::Query(query_or_form_data_parameter(map)),
        "formData" => NonBodyParameterOneof::FormData(query_or_form_data_parameter(map)),
        "header" => NonBodyParameterOneof::Header(path_or_header_parameter(map)),
        _ => NonBodyParameterOneof::Path(path_or_header_parameter(map)),
    };
    ParametersItemOneof::Parameter(Box::new(Parameter {
        oneof: Some(ParameterOneof::NonBodyParameter(NonBodyParameter {
            oneof: Some(non_body),
        })),
    }))
}

fn query_or_form_data_parameter(map: &Map<String, Value>) -> QueryOrFormDataParameter {
    QueryOrFormDataParameter {
        required: flag(map, "required"),
        r#in: text(map, "in"),
        description: text(map, "description"),
        name: text(map, "name"),
        allow_empty_value: flag(map, "allowEmptyValue"),
        r#type: text(map, "type"),
        format: text(map, "format"),
        items: primitives_items(map),
        collection_format: text(map, "collectionFormat"),
        default: map.get("default").map(any),
        unique_items: flag(map, "uniqueItems"),
        r#enum: anys(map, "enum"),
        vendor_extension: vendor_extensions(map),
    }
}

fn path_or_header_parameter(map: &Map<String, Value>) -> PathOrHeaderParameter {
    PathOrHeaderParameter {
        required: flag(map, "required"),
        r#in: text(map, "in"),
        description: text(map, "description"),
        name: text(map, "name"),
        r#type: text(map, "type"),
        format: text(map, "format"),
        items: primitives_items(map),
        collection_format: text(map, "collectionFormat"),
        default: map.get("default").map(any),
        unique_items: flag(map, "uniqueItems"),
        r#enum: anys(map, "enum"),
        vendor_extension: vendor_extensions(map),
    }
}

/// The `items` of an array parameter (or of such an item).
fn primitives_items(map: &Map<String, Value>) -> Option<PrimitivesItems> {
    let items = map.get("items")?.as_object()?;
    Some(PrimitivesItems {
        r#type: text(items, "type"),
        format: text(items, "format"),
        items: primitives_items(items).map(Box::new),
        collection_format: text(items, "collectionFormat"),
        default: items.get("default").map(any),
        unique_items: flag(items, "uniqueItems"),
        r#enum: anys(items, "enum"),
        vendor_extension: vendor_extensions(items),
    })
}

fn responses(map: &Map<String, Value>) -> Responses {
    Responses {
        response_code: map
            .iter()
            .filter(|(code, _)| !code.starts_with("x-"))
            .filter_map(|(code, response)| {
                let response = response.as_object()?;
                let value = if response.contains_key("$ref") {
                    ResponseValueOneof::JsonReference(json_reference(response))
                } else {
                    ResponseValueOneof::Response(Box::new(Response {
                        description: text(response, "description"),
                        schema: response.get("schema").map(|described| SchemaItem {
                            oneof: Some(SchemaItemOneof::Schema(schema(described))),
                        }),
                        vendor_extension: vendor_extensions(response),
                    }))
                };
                Some(NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue { oneof: Some(value) }),
                })
            })
            .collect(),
        vendor_extension: vendor_extensions(map),
    }
}

fn json_reference(map: &Map<String, Value>) -> JsonReference {
    JsonReference {
        reference: text(map, "$ref"),
        description: text(map, "description"),
    }
}

fn named_schemas(map: &Map<String, Value>) -> Vec<NamedSchema> {
    map.iter()
        .map(|(name, value)| NamedSchema {
            name: name.clone(),
            value: Some(schema(value)),
        })
        .collect()
}

/// One schema. Keys Swagger 2.0 has no place for (OpenAPI 3's `nullable`,
/// `anyOf`, `oneOf`) are left out, as kube-apiserver's v2 documents do.
fn schema(value: &Value) -> Schema {
    let Some(map) = value.as_object() else {
        return Schema::default();
    };
    let (reference, all_of) = match (map.get("$ref"), map.get("allOf")) {
        (Some(Value::String(reference)), _) => (reference.clone(), Vec::new()),
        (None, Some(Value::Array(all_of))) => match single_reference(all_of) {
            Some(reference) if !map.contains_key("type") && !map.contains_key("properties") => {
                (reference.to_string(), Vec::new())
            }
            _ => (String::new(), all_of.iter().map(schema).collect()),
        },
        _ => (String::new(), Vec::new()),
    };
    Schema {
        reference,
        format: text(map, "format"),
        title: text(map, "title"),
        description: text(map, "description"),
        default: map.get("default").map(any),
        multiple_of: number(map, "multipleOf"),
        maximum: number(map, "maximum"),
        exclusive_maximum: flag(map, "exclusiveMaximum"),
        minimum: number(map, "minimum"),
        exclusive_minimum: flag(map, "exclusiveMinimum"),
        max_length: integer(map, "maxLength"),
        min_length: integer(map, "minLength"),
        pattern: text(map, "pattern"),
        max_items: integer(map, "maxItems"),
        min_items: integer(map, "minItems"),
        unique_items: flag(map, "uniqueItems"),
        max_properties: integer(map, "maxProperties"),
        min_properties: integer(map, "minProperties"),
        required: texts(map, "required"),
        r#enum: anys(map, "enum"),
        additional_properties: map.get("additionalProperties").and_then(|additional| {
            let oneof = match additional {
                Value::Bool(allowed) => AdditionalPropertiesOneof::Boolean(*allowed),
                Value::Object(_) => AdditionalPropertiesOneof::Schema(Box::new(schema(additional))),
                _ => return None,
            };
            Some(Box::new(AdditionalPropertiesItem { oneof: Some(oneof) }))
        }),
        r#type: match map.get("type") {
            Some(Value::String(name)) => Some(TypeItem {
                value: vec![name.clone()],
            }),
            Some(Value::Array(_)) => Some(TypeItem {
                value: texts(map, "type"),
            }),
            _ => None,
        },
        items: match map.get("items") {
            Some(Value::Array(items)) => Some(ItemsItem {
                schema: items.iter().map(schema).collect(),
            }),
            Some(item @ Value::Object(_)) => Some(ItemsItem {
                schema: vec![schema(item)],
            }),
            _ => None,
        },
        all_of,
        properties: map
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| Properties {
                additional_properties: named_schemas(properties),
            }),
        discriminator: text(map, "discriminator"),
        read_only: flag(map, "readOnly"),
        example: map.get("example").map(any),
        vendor_extension: vendor_extensions(map),
    }
}

/// The target of `allOf: [{"$ref": target}]`, the OpenAPI 3 way of giving
/// a reference a description.
fn single_reference(all_of: &[Value]) -> Option<&str> {
    match all_of {
        [Value::Object(only)] if only.len() == 1 => only.get("$ref")?.as_str(),
        _ => None,
    }
}

fn text(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn texts(map: &Map<String, Value>, key: &str) -> Vec<String> {
    let Some(Value::Array(values)) = map.get(key) else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn flag(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn number(map: &Map<String, Value>, key: &str) -> f64 {
    map.get(key).and_then(Value::as_f64).unwrap_or_default()
}

fn integer(map: &Map<String, Value>, key: &str) -> i64 {
    map.get(key).and_then(Value::as_i64).unwrap_or_default()
}

/// A free-form value as the YAML text clients parse it from.
fn any(value: &Value) -> Any {
    Any {
        yaml: serde_norway::to_string(value).unwrap_or_default(),
    }
}

fn anys(map: &Map<String, Value>, key: &str) -> Vec<Any> {
    let Some(Value::Array(values)) = map.get(key) else {
        return Vec::new();
    };
    values.iter().map(any).collect()
}

/// The `x-` keys of an object, in key order.
fn vendor_extensions(map: &Map<String, Value>) -> Vec<NamedAny> {
    map.iter()
        .filter(|(name, _)| name.starts_with("x-"))
        .map(|(name, value)| NamedAny {
            name: name.clone(),
            value: Some(any(value)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn decoded() -> Document {
        Document::decode(crate::openapi::swagger_protobuf()).unwrap()
    }

    fn definitions(document: &Document) -> BTreeMap<&str, &Schema> {
        let definitions = document.definitions.as_ref().unwrap();
        definitions
            .additional_properties
            .iter()
            .map(|named| (named.name.as_str(), named.value.as_ref().unwrap()))
            .collect()
    }

    fn property<'s>(schema: &'s Schema, name: &str) -> &'s Schema {
        let properties = schema.properties.as_ref().unwrap();
        let named = properties.additional_properties.iter();
        named
            .clone()
            .find(|named| named.name == name)
            .and_then(|named| named.value.as_ref())
            .unwrap_or_else(|| panic!("no property {name}"))
    }

    fn extension<'s>(schema: &'s Schema, name: &str) -> Option<&'s str> {
        let named = schema.vendor_extension.iter();
        named
            .clone()
            .find(|named| named.name == name)
            .map(|named| named.value.as_ref().unwrap().yaml.as_str())
    }

    fn types(schema: &Schema) -> &[String] {
        schema.r#type.as_ref().map_or(&[], |t| t.value.as_slice())
    }

    /// The rules of kubectl 1.20's schema parser (kube-openapi's
    /// `pkg/util/proto`, `Definitions.ParseSchema`): any schema breaking
    /// one makes it drop the whole document, and validation with it.
    fn check_parses(definitions: &BTreeMap<&str, &Schema>, schema: &Schema, path: &str) {
        if !schema.reference.is_empty() {
            let properties = schema.properties.as_ref();
            assert!(
                properties.is_none_or(|p| p.additional_properties.is_empty()),
                "{path}: a reference with properties"
            );
            assert!(types(schema).is_empty(), "{path}: a reference with a type");
            let target = schema.reference.strip_prefix("#/definitions/");
            assert!(
                target.is_some_and(|target| definitions.contains_key(target)),
                "{path}: dangling reference {}",
                schema.reference
            );
            return;
        }
        let kind_or_map = |schema: &Schema| {
            for named in schema
                .properties
                .iter()
                .flat_map(|p| &p.additional_properties)
            {
                let field = named.value.as_ref().unwrap();
                check_parses(definitions, field, &format!("{path}.{}", named.name));
            }
            if let Some(AdditionalPropertiesOneof::Schema(values)) = schema
                .additional_properties
                .as_ref()
                .and_then(|a| a.oneof.as_ref())
            {
                check_parses(definitions, values, &format!("{path}[*]"));
            }
        };
        match types(schema) {
            [] => kind_or_map(schema),
            [object] if object == "object" => kind_or_map(schema),
            [array] if array == "array" => {
                let items = schema.items.as_ref().map_or(&[][..], |i| &i.schema[..]);
                assert_eq!(items.len(), 1, "{path}: an array needs one item schema");
                check_parses(definitions, &items[0], &format!("{path}[]"));
            }
            [primitive] => assert!(
                ["string", "number", "integer", "boolean"].contains(&primitive.as_str()),
                "{path}: unknown primitive type {primitive}"
            ),
            several => panic!("{path}: several types {several:?}"),
        }
    }

    #[test]
    fn every_definition_parses_as_kubectl_1_20_parses_it() {
        let document = decoded();
        let definitions = definitions(&document);
        assert!(definitions.len() > 100, "{} definitions", definitions.len());
        for (name, schema) in &definitions {
            check_parses(&definitions, schema, name);
        }
    }

    #[test]
    fn definitions_round_trip_with_their_kinds_refs_and_descriptions() {
        let document = decoded();
        assert_eq!(document.swagger, "2.0");
        assert_eq!(document.info.as_ref().unwrap().title, "Kubernetes");
        let definitions = definitions(&document);

        let deployment = definitions["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(types(deployment), ["object"]);
        let gvk: Value = serde_norway::from_str(
            extension(deployment, "x-kubernetes-group-version-kind").unwrap(),
        )
        .unwrap();
        assert_eq!(
            gvk,
            serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        // A described reference is a `$ref` with its description beside it.
        let spec = property(deployment, "spec");
        assert_eq!(
            spec.reference,
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert!(spec.all_of.is_empty() && !spec.description.is_empty());

        let deployment_spec = definitions["io.k8s.api.apps.v1.DeploymentSpec"];
        assert!(deployment_spec.required.contains(&"selector".to_string()));
        let replicas = property(deployment_spec, "replicas");
        assert_eq!(
            (types(replicas), replicas.format.as_str()),
            (&["integer".to_string()][..], "int32")
        );
        assert!(replicas.description.starts_with("Number of desired pods."));

        let pod_spec = definitions["io.k8s.api.core.v1.PodSpec"];
        let containers = property(pod_spec, "containers");
        assert_eq!(types(containers), ["array"]);
        assert_eq!(
            containers.items.as_ref().unwrap().schema[0].reference,
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        assert_eq!(
            extension(containers, "x-kubernetes-patch-merge-key"),
            Some("name\n")
        );
        assert_eq!(
            extension(containers, "x-kubernetes-patch-strategy"),
            Some("merge\n")
        );
        let node_selector = property(pod_spec, "nodeSelector");
        let Some(AdditionalPropertiesOneof::Schema(values)) = node_selector
            .additional_properties
            .as_ref()
            .and_then(|a| a.oneof.as_ref())
        else {
            panic!("nodeSelector has no value schema");
        };
        assert_eq!(types(values), ["string"]);

        // The JSON says the same, definition for definition.
        let json: Value = serde_json::from_slice(&crate::openapi::swagger_json()).unwrap();
        assert_eq!(
            definitions.len(),
            json["definitions"].as_object().unwrap().len()
        );
    }

    #[test]
    fn operations_keep_their_parameters_responses_and_kinds() {
        let document = decoded();
        let paths = &document.paths.as_ref().unwrap().path;
        let item = paths
            .iter()
            .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .and_then(|p| p.value.as_ref())
            .unwrap();
        let patch = item.patch.as_ref().unwrap();
        assert_eq!(patch.operation_id, "patchDeployment");
        assert!(
            patch
                .consumes
                .contains(&"application/strategic-merge-patch+json".to_string())
        );
        let field_validation = patch.parameters.iter().find_map(|p| {
            let Some(ParametersItemOneof::Parameter(parameter)) = &p.oneof else {
                return None;
            };
            match &parameter.oneof {
                Some(ParameterOneof::NonBodyParameter(NonBodyParameter {
                    oneof: Some(NonBodyParameterOneof::Query(query)),
                })) if query.name == "fieldValidation" => Some(query),
                _ => None,
            }
        });
        assert_eq!(field_validation.unwrap().r#type, "string");
        let gvk: Value = serde_norway::from_str(
            extension_of(&patch.vendor_extension, "x-kubernetes-group-version-kind").unwrap(),
        )
        .unwrap();
        assert_eq!(gvk["kind"], "Deployment");
        let responses = &patch.responses.as_ref().unwrap().response_code;
        let ok = responses.iter().find(|r| r.name == "200").unwrap();
        let Some(ResponseValueOneof::Response(response)) =
            ok.value.as_ref().and_then(|v| v.oneof.as_ref())
        else {
            panic!("the 200 response is a reference");
        };
        let Some(SchemaItem {
            oneof: Some(SchemaItemOneof::Schema(schema)),
        }) = &response.schema
        else {
            panic!("the 200 response has no schema");
        };
        assert_eq!(
            schema.reference,
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
    }

    fn extension_of<'e>(extensions: &'e [NamedAny], name: &str) -> Option<&'e str> {
        extensions
            .iter()
            .find(|named| named.name == name)
            .map(|named| named.value.as_ref().unwrap().yaml.as_str())
    }

    #[test]
    fn free_form_values_travel_as_yaml() {
        let converted = schema(&serde_json::json!({
            "type": "string",
            "enum": ["Always", "Never"],
            "default": "Always",
            "nullable": true,
            "x-kubernetes-int-or-string": true,
        }));
        let yaml: Vec<&str> = converted.r#enum.iter().map(|a| a.yaml.as_str()).collect();
        assert_eq!(yaml, ["Always\n", "Never\n"]);
        assert_eq!(converted.default.as_ref().unwrap().yaml, "Always\n");
        assert_eq!(
            extension(&converted, "x-kubernetes-int-or-string"),
            Some("true\n")
        );
    }

    #[test]
    fn encoding_the_document_takes_little_time_and_space() {
        let json: Value = serde_json::from_slice(&crate::openapi::swagger_json()).unwrap();
        let started = std::time::Instant::now();
        let bytes = encode(&json);
        let elapsed = started.elapsed();
        eprintln!(
            "openapi v2: json {} bytes, protobuf {} bytes, encoded in {:.1} ms",
            crate::openapi::swagger_json().len(),
            bytes.len(),
            elapsed.as_secs_f64() * 1000.0
        );
        assert_eq!(bytes, crate::openapi::swagger_protobuf());
    }
}
