//! Registering this agent's Node (or taking over one of the same name), then keeping it alive: the Lease renewed every 10 s and the status reported every minute, as kubelet does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::host::HostFacts;
use crate::node::{self, NodeIdentity};

/// Upstream kubelet's `nodeLeaseRenewInterval` (a quarter of the 40 s lease).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often the full status is reported when nothing changed (upstream's
/// `nodeStatusReportFrequency` is 5 min; kept shorter so disk figures stay fresh).
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The Node as registered.
#[derive(Clone, Debug)]
pub struct RegisteredNode {
    pub name: String,
    pub uid: String,
    pub pod_cidr: Option<String>,
    /// When the node became Ready, kept across reports.
    pub ready_since: Time,
}

/// Creates the Node (or takes over an existing one of the name), reports
/// its status and creates its Lease; retries transient failures forever,
/// as kubelet keeps trying to register.
pub async fn register(
    client: &kube::Client,
    identity: &NodeIdentity,
    host: &HostFacts,
) -> anyhow::Result<RegisteredNode> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match try_register(client, identity, host).await {
            Ok(registered) => return Ok(registered),
            Err(error) if is_transient(&error) => {
                tracing::warn!(error = %format!("{error:#}"), "registering the node; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(7));
            }
            Err(error) => return Err(error),
        }
    }
}

fn is_transient(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => status.code == 429 || status.code >= 500,
        Some(_) => true,
        None => false,
    }
}

async fn try_register(
    client: &kube::Client,
    identity: &NodeIdentity,
    host: &HostFacts,
) -> anyhow::Result<RegisteredNode> {
    let nodes: Api<Node> = Api::all(client.clone());
    let desired = node::node_object(identity, host);
    let existing = match nodes.create(&PostParams::default(), &desired).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // A Node of this name exists (an earlier run's): our labels win.
            let patch = json!({ "metadata": { "labels": node::labels(identity, host) } });
            Some(
                nodes
                    .patch(
                        &identity.name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?,
            )
        }
        Err(error) => return Err(error.into()),
    };
    // Whole seconds, as the API stores Time, so a later read compares equal.
    let now = Time(Timestamp::from_second(Timestamp::now().as_second())?);
    let ready_since = existing
        .as_ref()
        .and_then(sim::node_ready_since)
        .unwrap_or_else(|| now.clone());
    let status = node::node_status(identity, host, &ready_since, &now);
    let reported = nodes
        .patch_status(
            &identity.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    let uid = reported
        .metadata
        .uid
        .clone()
        .context("the registered node has no uid")?;
    sim::renew_node_lease(
        client,
        &identity.name,
        &uid,
        &MicroTime(Timestamp::now()),
        true,
    )
    .await?;
    Ok(RegisteredNode {
        name: identity.name.clone(),
        uid,
        pod_cidr: reported.spec.and_then(|spec| spec.pod_cidr),
        ready_since,
    })
}

/// Renews the Lease every 10 s and reports the status every minute, until
/// the task is dropped. Failures are logged and retried on the next tick.
pub async fn keep_alive(
    client: kube::Client,
    identity: NodeIdentity,
    registered: RegisteredNode,
    data_dir: PathBuf,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut lease_tick = tokio::time::interval(LEASE_RENEW_INTERVAL);
    let mut status_tick = tokio::time::interval(STATUS_REPORT_INTERVAL);
    lease_tick.tick().await;
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                let now = MicroTime(Timestamp::now());
                if let Err(error) =
                    sim::renew_node_lease(&client, &registered.name, &registered.uid, &now, false).await
                {
                    tracing::warn!(%error, "renewing the node lease");
                }
            }
            _ = status_tick.tick() => {
                let host = HostFacts::read(&data_dir);
                let status = node::node_status(
                    &identity,
                    &host,
                    &registered.ready_since,
                    &Time(Timestamp::now()),
                );
                let patch = Patch::Merge(json!({ "status": status }));
                if let Err(error) = nodes.patch_status(&registered.name, &PatchParams::default(), &patch).await {
                    tracing::warn!(%error, "reporting the node status");
                }
            }
        }
    }
}
