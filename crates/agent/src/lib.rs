//! The node agent: registers this machine as a Node, keeps its Lease and status fresh, and runs the pods bound to it through containerd's CRI.

pub mod cni;
pub mod host;
pub mod join;
pub mod node;
pub mod registration;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    /// `DATA_DIR/agent`: containerd's state, CNI state, pod logs and volumes.
    pub data_dir: PathBuf,
    pub node_ip: IpAddr,
    /// Whether a control plane runs beside this agent (`krust server`).
    pub control_plane: bool,
    pub labels: BTreeMap<String, String>,
    /// `--container-runtime-endpoint`; none starts a private containerd.
    pub container_runtime_endpoint: Option<String>,
    /// `--private-registry` (k3s's registries.yaml).
    pub private_registry: PathBuf,
    /// The Linux bridge pods join.
    pub cni_bridge: String,
    pub kubelet_version: String,
}
