//! OpenAPI schemas of the built-in kinds and the unknown-field check that server-side field validation runs against them.
//!
//! [`builtin`] generates the schemas once from k8s-openapi's types; the
//! OpenAPI documents (`/openapi/v2`, `/openapi/v3`) publish them and
//! [`unknown_fields`] walks an object against them to find the fields a
//! strict decoder would refuse.

pub mod builtin;
pub mod unknown_fields;

pub use builtin::{BuiltinSchemas, KindSchema, builtin};
pub use unknown_fields::{drop_unknown_fields, find_unknown_fields};

/// Where schemas refer to each other, as OpenAPI v3 documents spell it.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";
/// The same place in a Swagger 2.0 (OpenAPI v2) document.
pub const V2_REF_PREFIX: &str = "#/definitions/";

/// The schema name a `$ref` points at: the text after its last `/`.
pub fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}
