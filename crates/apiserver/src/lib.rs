//! The Kubernetes REST API over HTTPS: discovery, CRUD, patch, watch and authentication, over the `storage` crate.

pub mod admission;
pub mod allocator;
pub mod auth;
pub mod body;
pub mod cache;
pub mod discovery;
pub mod field_validation;
pub mod join;
pub mod kubeconfig;
pub mod objects;
pub mod openapi;
pub mod pki;
pub mod proxy;
pub mod request;
pub mod rest;
pub mod server;
pub mod status;
pub mod tls;
pub mod watch;
