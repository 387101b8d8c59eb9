//! Endpoints and EndpointSlice controllers: the addresses of each Service's selected Pods, as upstream's kube-controller-manager publishes them.

pub mod endpoints;
pub mod pods;
pub mod slice_controller;
pub mod slices;

pub use endpoints::{EndpointsConfig, run_endpoints};
pub use slice_controller::{EndpointSliceConfig, run_endpoint_slices};
