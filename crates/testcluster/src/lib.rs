//! An API server on memory storage inside the test process, with a client for it: components' integration tests drive it through the real API.

use std::path::{Path, PathBuf};

use apiserver::server::{RunningServer, ServerConfig};

/// A running API server (HTTPS on a free loopback port, memory storage),
/// stopped when dropped. No scheduler, controllers or nodes run unless the
/// test starts them.
pub struct TestCluster {
    server: RunningServer,
    client: kube::Client,
    data_dir: tempfile::TempDir,
}

impl TestCluster {
    /// The server token the cluster accepts (agents join with it).
    pub const TOKEN: &str = "testcluster-token";

    pub async fn start() -> anyhow::Result<TestCluster> {
        let data_dir = tempfile::tempdir()?;
        let storage = storage::open("memory://", &storage::OpenOptions::default()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let config = ServerConfig {
            data_dir: data_dir.path().to_path_buf(),
            write_kubeconfig: None,
            tokens: vec![Self::TOKEN.to_string()],
            service_cidr: apiserver::allocator::ServiceCidr::parse("10.43.0.0/16")
                .map_err(anyhow::Error::msg)?,
            node_ips: Vec::new(),
        };
        let server = apiserver::server::start(config, storage, listener).await?;
        let client = client::over_service(server.local_service("admin", &["system:masters"]));
        Ok(TestCluster {
            server,
            client,
            data_dir,
        })
    }

    /// A client through the in-process transport, as a cluster admin.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A client over HTTPS, as a kubeconfig user would connect.
    pub async fn https_client(&self) -> anyhow::Result<kube::Client> {
        client::from_kubeconfig(&self.server.kubeconfig).await
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.server.address)
    }

    /// The admin kubeconfig (HTTPS on loopback).
    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig.clone()
    }

    pub fn server(&self) -> &RunningServer {
        &self.server
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }
}
