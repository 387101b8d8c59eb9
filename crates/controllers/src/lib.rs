//! The controller manager: starts each enabled controller over one set of shared informers, under one leader Lease.

pub mod serviceaccount;

use std::collections::BTreeSet;
use std::sync::Arc;

use client::Informers;

/// Every controller, by the name `--disable` takes (upstream's
/// `--controllers` names).
pub const CONTROLLERS: &[&str] = &["garbagecollector", "namespace", "serviceaccount"];

/// What the controllers are told at start.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Controllers not to run (names from [`CONTROLLERS`]).
    pub disabled: BTreeSet<String>,
    /// Workers per controller.
    pub workers: usize,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            disabled: BTreeSet::new(),
            workers: 5,
        }
    }
}

/// Runs every enabled controller until one fails; they share `informers`.
pub async fn run(
    client: kube::Client,
    informers: Arc<Informers>,
    options: ControllerOptions,
) -> anyhow::Result<()> {
    let mut running = tokio::task::JoinSet::new();
    let enabled = |name: &str| !options.disabled.contains(name);
    if enabled("garbagecollector") {
        running.spawn(gc::run_garbage_collector(
            client.clone(),
            informers.clone(),
            options.workers * 4,
            gc::GarbageCollectorConfig::default(),
        ));
    }
    if enabled("namespace") {
        running.spawn(gc::run_namespaces(
            client.clone(),
            informers.clone(),
            options.workers,
            gc::NamespaceConfig::default(),
        ));
    }
    if enabled("serviceaccount") {
        running.spawn(serviceaccount::run(
            client.clone(),
            informers.clone(),
            options.workers,
        ));
    }
    informers.start();
    while let Some(finished) = running.join_next().await {
        finished??;
    }
    Ok(())
}
