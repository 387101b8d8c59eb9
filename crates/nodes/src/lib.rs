//! Node lifecycle (heartbeats, not-ready/unreachable taints, eviction by toleration) and node IPAM controllers.

pub mod cidr;
pub mod eviction;
pub mod health;
pub mod ipam;
pub mod lifecycle;
pub mod taints;

pub use eviction::run_taint_eviction;
pub use ipam::{NodeIpamConfig, run_node_ipam};
pub use lifecycle::{NodeLifecycleConfig, run_node_lifecycle};
