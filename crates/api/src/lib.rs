//! Kubernetes API semantics with no IO: which resources exist, selectors, patches, defaulting, validation and table columns.
//!
//! Objects are `serde_json::Value`s shaped exactly as the Kubernetes JSON
//! wire format; every function here is pure so the apiserver's handlers stay
//! thin and the rules are testable in isolation.

pub mod conversion;
pub mod defaults;
pub mod join;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod table;
pub mod validation;
