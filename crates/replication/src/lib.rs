//! ReplicaSet, ReplicationController and Deployment controllers, as kube-controller-manager v1.32 runs them.
//!
//! Each `run_*` function runs one controller over the process's shared
//! informers until its future is dropped; the caller starts the informers.

pub mod claim;
pub mod deployment;
pub mod expectations;
pub mod pods;
pub mod ranking;
pub mod replicas;
pub mod selector;
pub mod workload;

use std::sync::Arc;

use client::Informers;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;

pub use deployment::DeploymentConfig;
pub use replicas::ReplicaConfig;

/// The ReplicaSet controller (`replicaset-controller`).
pub async fn run_replicasets(
    client: kube::Client,
    informers: Arc<Informers>,
    workers: usize,
) -> anyhow::Result<()> {
    replicas::run::<ReplicaSet>(client, informers, workers, ReplicaConfig::default()).await
}

/// The ReplicationController controller (`replication-controller`).
pub async fn run_replication_controllers(
    client: kube::Client,
    informers: Arc<Informers>,
    workers: usize,
) -> anyhow::Result<()> {
    replicas::run::<ReplicationController>(client, informers, workers, ReplicaConfig::default())
        .await
}

/// The Deployment controller (`deployment-controller`).
pub async fn run_deployments(
    client: kube::Client,
    informers: Arc<Informers>,
    workers: usize,
) -> anyhow::Result<()> {
    deployment::run(client, informers, workers, DeploymentConfig::default()).await
}
