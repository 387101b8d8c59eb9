//! The DaemonSet controller, as kube-controller-manager v1.32's: one pod per eligible node (bound by the scheduler through a node-name affinity), ControllerRevisions, rolling updates with maxUnavailable and maxSurge, failed-pod replacement with backoff, and status.
//!
//! `eligibility` and `control` decide (pure); `controller` reads the
//! informers and acts through the API.

pub mod control;
mod controller;
pub mod eligibility;
pub mod revision;

use std::sync::Arc;

use client::{Informers, WorkQueue};
use tokio::task::JoinHandle;

/// Stops the event handlers and the workers when `run`'s future is dropped.
struct ShutdownGuard {
    queue: WorkQueue<controller::Key>,
    handlers: Vec<JoinHandle<()>>,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.queue.shut_down();
        for handler in &self.handlers {
            handler.abort();
        }
    }
}

/// Runs the DaemonSet controller with `workers` concurrent syncs until the
/// returned future is dropped.
pub async fn run(
    client: kube::Client,
    informers: Arc<Informers>,
    workers: usize,
) -> anyhow::Result<()> {
    let controller = Arc::new(controller::Controller::new(client, &informers));
    informers.start();
    let queue = controller.queue().clone();
    let _guard = ShutdownGuard {
        queue: queue.clone(),
        handlers: vec![
            tokio::spawn(controller.clone().watch_daemon_sets()),
            tokio::spawn(controller.clone().watch_nodes()),
            tokio::spawn(controller.clone().watch_pods()),
        ],
    };
    controller.wait_synced().await;
    client::workqueue::run_workers(queue, workers, move |key: controller::Key| {
        let controller = controller.clone();
        async move { controller.sync(&key).await }
    })
    .await;
    Ok(())
}
