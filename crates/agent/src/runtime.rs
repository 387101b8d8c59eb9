//! The node's container runtime: a CRI endpoint given on the command line, or a private containerd the agent starts and supervises, with the offline images and registry mirrors in place.

use anyhow::Context;

use crate::AgentConfig;

/// The runtime the agent talks CRI to.
pub struct NodeRuntime {
    /// `unix:///…/containerd.sock`.
    pub endpoint: String,
    /// `containerd://1.6.20`, as Nodes report it.
    pub version: String,
    pub client: cri::CriClient,
    /// registries.yaml as read at start (credentials for pulls).
    pub registries: containerd::registries::Registries,
    /// Where containerd's CRI plugin reads the CNI config.
    pub cni_conf_dir: std::path::PathBuf,
    managed: Option<containerd::ManagedContainerd>,
}

impl NodeRuntime {
    /// Connects to `--container-runtime-endpoint`, or starts a private
    /// containerd under the agent's data dir (registry mirrors from
    /// registries.yaml, images from `agent/images` or built offline).
    pub async fn start(config: &AgentConfig) -> anyhow::Result<NodeRuntime> {
        let registries = read_registries(config)?;
        let managed = match &config.container_runtime_endpoint {
            Some(_) => None,
            None => {
                containerd::find_containerd()?;
                let settings = containerd::ContainerdSettings::under(&config.data_dir);
                containerd::registries::write_hosts_dirs(
                    &registries,
                    &settings.registry_config_dir,
                )?;
                let managed = containerd::ManagedContainerd::start(settings).await?;
                containerd::images::ensure_offline_images(
                    managed.socket(),
                    &config.data_dir.join("images"),
                    &config.data_dir.join("images-built"),
                )
                .await
                .context("making the offline images available")?;
                Some(managed)
            }
        };
        let endpoint = match (&config.container_runtime_endpoint, &managed) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(managed)) => managed.endpoint(),
            (None, None) => unreachable!("a runtime was started when none was given"),
        };
        let client = cri::connect(&endpoint)
            .await
            .with_context(|| format!("connecting to the container runtime at {endpoint}"))?;
        let version = cri::RuntimeService::version(&client)
            .await
            .with_context(|| format!("asking {endpoint} for its version"))?;
        Ok(NodeRuntime {
            registries,
            cni_conf_dir: containerd::ContainerdSettings::under(&config.data_dir).cni_conf_dir,
            endpoint,
            version: format!("{}://{}", version.runtime_name, version.runtime_version),
            client,
            managed,
        })
    }

    /// Stops the private containerd, if the agent started one. Containers
    /// keep running (their shims outlive containerd), as with a kubelet
    /// restart.
    pub async fn stop(self) {
        if let Some(managed) = self.managed {
            managed.stop().await;
        }
    }
}

/// registries.yaml, when present (an absent file means no mirrors).
fn read_registries(config: &AgentConfig) -> anyhow::Result<containerd::registries::Registries> {
    let text = match std::fs::read_to_string(&config.private_registry) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(containerd::registries::Registries::default());
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("reading {}", config.private_registry.display()));
        }
    };
    containerd::registries::parse(&text)
        .map_err(|error| anyhow::anyhow!("{}: {error}", config.private_registry.display()))
}
