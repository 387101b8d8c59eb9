//! A private containerd for the node agent: config, supervision, offline images, registries.
//!
//! The agent (kubelet) runs its own containerd the way k3s does, unless it is
//! given `--container-runtime-endpoint`:
//!
//! ```no_run
//! # async fn agent(agent_dir: &std::path::Path) -> anyhow::Result<()> {
//! use containerd::{ContainerdSettings, ManagedContainerd, images, registries};
//!
//! let settings = ContainerdSettings::under(agent_dir);
//! let registries = registries::parse(&std::fs::read_to_string("/etc/krust/registries.yaml")?)?;
//! registries::write_hosts_dirs(&registries, &settings.registry_config_dir)?;
//! let containerd = ManagedContainerd::start(settings).await?; // ready: CRI answers
//! images::ensure_offline_images(
//!     containerd.socket(),
//!     &agent_dir.join("images"),
//!     &agent_dir.join("containerd/offline-images"),
//! )
//! .await?;
//! // ... a CRI client connects to containerd.endpoint() ...
//! containerd.stop().await;
//! # Ok(()) }
//! ```
//!
//! Public API:
//! - [`ContainerdSettings`] (`under(agent_dir)`, `endpoint()`, `validate()`)
//!   and [`render_config`]: where containerd keeps its files and the
//!   `config.toml` with what this kind of machine needs (see that function).
//! - [`find_containerd`] / [`find_containerd_in`] → [`NotInstalled`], whose
//!   message is one line with the apt-get hint.
//! - [`ManagedContainerd`]: `start(settings)` returns once containerd's CRI
//!   service answers; it is restarted when it exits (1 s doubling to 30 s);
//!   `endpoint()`, `socket()`, `pid()`, `stop()`.
//! - [`images`]: build the busybox and pause images offline, import archive
//!   directories (k3s's `agent/images`), `ensure_offline_images`.
//! - [`registries`]: k3s `registries.yaml` → `certs.d/HOST/hosts.toml`, and
//!   the credentials to pass with a CRI `PullImage`.
//! - [`testing::PrivateContainerd`]: a throwaway instance for tests, cleaned
//!   up completely when dropped.
//!
//! Everything here needs only files, processes and containerd's own socket;
//! CRI messages belong to the `cri` crate (readiness here reads only the gRPC
//! status of an empty call).

mod config;
pub mod images;
mod install;
mod probe;
mod procs;
pub mod registries;
mod supervisor;
pub mod testing;

pub use config::{ContainerdSettings, SettingsError, render_config};
pub use install::{NotInstalled, find_containerd, find_containerd_in, find_ctr};
pub use supervisor::ManagedContainerd;

/// The sandbox image; [`images::ensure_offline_images`] provides it offline.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The busybox image that [`images::ensure_offline_images`] provides offline.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";

/// The containerd namespace the CRI plugin keeps Kubernetes' images and
/// containers in.
pub const K8S_NAMESPACE: &str = "k8s.io";
