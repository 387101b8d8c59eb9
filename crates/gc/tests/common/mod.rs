//! Helpers of the garbage collector's and namespace controller's integration tests: a cluster with the controllers running, objects with owner references, waiting.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Aborts the controller task when the test ends.
pub struct Running(pub tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn start_garbage_collector(client: kube::Client) -> Running {
    let informers = Arc::new(client::Informers::new(client.clone()));
    informers.start();
    let config = gc::GarbageCollectorConfig {
        discovery_period: Duration::from_secs(1),
        ..gc::GarbageCollectorConfig::default()
    };
    Running(tokio::spawn(async move {
        let _keep = informers.clone();
        if let Err(error) = gc::run_garbage_collector(client, informers, 4, config).await {
            panic!("garbage collector failed: {error:#}");
        }
    }))
}

pub fn start_namespace_controller(client: kube::Client) -> Running {
    let informers = Arc::new(client::Informers::new(client.clone()));
    informers.start();
    let config = gc::NamespaceConfig {
        deletion_grace_period: Duration::from_millis(100),
        ..gc::NamespaceConfig::default()
    };
    Running(tokio::spawn(async move {
        let _keep = informers.clone();
        if let Err(error) = gc::run_namespaces(client, informers, 2, config).await {
            panic!("namespace controller failed: {error:#}");
        }
    }))
}

/// Polls `check` until it yields a value, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<Namespace> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Ok(namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?)
}

pub fn owner_reference(
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
    block: bool,
) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

pub fn reference_to(object: &ConfigMap, block: bool) -> OwnerReference {
    owner_reference(
        "v1",
        "ConfigMap",
        object.metadata.name.as_deref().unwrap_or_default(),
        object.metadata.uid.as_deref().unwrap_or_default(),
        block,
    )
}

pub async fn create_config_map(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    owners: Vec<OwnerReference>,
) -> anyhow::Result<ConfigMap> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "ownerReferences": owners},
                "data": {"k": "v"},
            }))?,
        )
        .await?)
}

pub async fn create_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    owners: Vec<OwnerReference>,
) -> anyhow::Result<Secret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "ownerReferences": owners},
                "stringData": {"k": "v"},
            }))?,
        )
        .await?)
}

/// Whether the object is gone.
pub async fn gone<K>(api: &Api<K>, name: &str) -> Option<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(None) => Some(()),
        _ => None,
    }
}
