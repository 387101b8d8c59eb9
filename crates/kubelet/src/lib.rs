//! The kubelet's pure decision logic: given a Pod and what the container runtime holds for it, decide what to do next and which status to report. No IO; time is always an argument.
//!
//! The IO shell maps CRI data into [`runtime_state::PodRuntimeState`], runs the
//! probes through [`probes::ProbeWorker`], keeps a [`backoff::ContainerBackoff`]
//! and a table of last start failures, then asks [`actions::compute_pod_actions`]
//! what to change and [`status::pod_status`] what to report.

pub mod actions;
pub mod backoff;
pub mod expansion;
pub mod probes;
pub mod quantity;
pub mod resources;
pub mod runtime_state;
pub mod spec;
pub mod status;
