//! Registering simulated nodes: create each Node (or take over one of the same name), report its status, create its Lease; and removing them again.

use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SimConfig;
use crate::api;
use crate::clock::Clock;
use crate::lease;
use crate::node::{self, NodeIdentity};

/// Requests that fail for transient reasons are tried this often before
/// registration gives up.
const ATTEMPTS: u32 = 6;

/// A node as registered.
#[derive(Clone, Debug)]
pub struct RegisteredNode {
    pub identity: NodeIdentity,
    pub uid: String,
    pub pod_cidr: Option<String>,
    /// Since when the node has been Ready, kept across status reports.
    pub ready_since: Time,
}

/// Registers every node, `config.max_in_flight` at a time; in index order.
pub async fn register_all(
    client: &kube::Client,
    config: &SimConfig,
) -> anyhow::Result<Vec<RegisteredNode>> {
    stream::iter(0..config.nodes)
        .map(|index| register(client, config, NodeIdentity::new(config, index)))
        .buffered(config.max_in_flight.max(1))
        .try_collect()
        .await
}

async fn register(
    client: &kube::Client,
    config: &SimConfig,
    identity: NodeIdentity,
) -> anyhow::Result<RegisteredNode> {
    let name = identity.name.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let desired = node::node_object(config, &identity);
    let existing = retry(|| async {
        match nodes.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(None),
            Err(error) if api::is_status(&error, 409) => {
                take_over(&nodes, config, &identity).await.map(Some)
            }
            Err(error) => Err(error),
        }
    })
    .await
    .with_context(|| format!("registering node {name}"))?;

    let clock = Clock::now();
    let ready_since = existing
        .as_ref()
        .and_then(node::ready_since)
        .unwrap_or_else(|| clock.time());
    let status = node::node_status(config, &identity, &ready_since, &clock.time());
    let patch = Patch::Merge(json!({ "status": status }));
    let params = PatchParams::default();
    let reported = retry(|| nodes.patch_status(&name, &params, &patch))
        .await
        .with_context(|| format!("reporting the status of node {name}"))?;
    let uid = reported
        .metadata
        .uid
        .clone()
        .with_context(|| format!("node {name} has no uid"))?;
    let renew_time = clock.micro_time();
    retry(|| lease::renew(client, &name, &uid, &renew_time, true))
        .await
        .with_context(|| format!("creating the lease of node {name}"))?;
    Ok(RegisteredNode {
        pod_cidr: reported.spec.and_then(|spec| spec.pod_cidr),
        identity,
        uid,
        ready_since,
    })
}

/// A Node of this name exists (an earlier run's, or one made for the
/// simulator): set the configured labels over its own and its taints to
/// the configured ones, so it ends up as a fresh registration would.
async fn take_over(
    nodes: &Api<Node>,
    config: &SimConfig,
    identity: &NodeIdentity,
) -> Result<Node, kube::Error> {
    let patch = json!({
        "metadata": { "labels": node::labels(config, identity) },
        "spec": { "taints": (!config.taints.is_empty()).then_some(&config.taints) },
    });
    nodes
        .patch(
            &identity.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
}

/// Deletes the simulator's Nodes and their Leases (the garbage collector
/// would remove the Leases too, but may not be running).
pub async fn unregister_all(client: &kube::Client, config: &SimConfig, nodes: &[RegisteredNode]) {
    let nodes_api: Api<Node> = Api::all(client.clone());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), lease::LEASE_NAMESPACE);
    let mut failures = api::FailureLog::new("deleting a simulated node");
    let results: Vec<(String, Result<(), kube::Error>)> = stream::iter(nodes)
        .map(|node| {
            let (nodes_api, leases) = (&nodes_api, &leases);
            async move {
                let name = &node.identity.name;
                let mut result = nodes_api.delete(name, &Default::default()).await.map(drop);
                if result.is_ok() || result.as_ref().is_err_and(|e| api::is_status(e, 404)) {
                    result = leases.delete(name, &Default::default()).await.map(drop);
                }
                (name.clone(), result)
            }
        })
        .buffer_unordered(config.max_in_flight.max(1))
        .collect()
        .await;
    for (name, result) in results {
        if let Err(error) = result
            && !api::is_status(&error, 404)
        {
            failures.record(&name, &error);
        }
    }
}

/// Runs `request` until it succeeds, fails for good, or `ATTEMPTS` are spent.
async fn retry<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match request().await {
            Err(error) if attempt < ATTEMPTS && api::is_transient(&error) => {
                tracing::debug!(%error, attempt, "retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            other => return other,
        }
    }
}
