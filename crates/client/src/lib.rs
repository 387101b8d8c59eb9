//! krust's API client runtime: the in-process transport to the API server, shared informers, work queues, leader election by Lease, and event recording.
//!
//! Every component (scheduler, controllers, simulated nodes) talks to the
//! cluster only through a `kube::Client`; inside `krust server` that client's
//! transport is the API server's router in the same process, elsewhere HTTPS.

pub mod events;
pub mod informers;
pub mod leader;
pub mod owners;
pub mod selector;
pub mod workqueue;

pub use events::EventRecorder;
pub use informers::{Change, Informer, Informers};
pub use workqueue::WorkQueue;

use std::path::Path;

/// A client over any tower service that answers HTTP requests, such as the
/// API server's in-process router.
pub fn over_service<S, B>(service: S) -> kube::Client
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    kube::Client::new(service, "default")
}

/// A client for the cluster a kubeconfig file names (its current context).
pub async fn from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}
