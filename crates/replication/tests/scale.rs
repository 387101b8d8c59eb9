//! Scale: a 10,000-replica Deployment becomes available within 10 s end to end. Its own test binary, so no other test shares the machine with it.

mod common;

use std::time::Duration;

use common::{Env, NAMESPACE, Run, active_pods, all_pods, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn ten_thousand_replicas_become_available_quickly() -> anyhow::Result<()> {
    let env = Env::start(&[Run::ReplicaSets, Run::Deployments], all_pods()).await?;
    let api = env.api::<Deployment>();
    let started = std::time::Instant::now();
    api.create(
        &PostParams::default(),
        &serde_json::from_value::<Deployment>(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "big", "namespace": NAMESPACE},
            "spec": {
                "replicas": 10_000,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "selector": {"matchLabels": {"app": "big"}},
                "template": {
                    "metadata": {"labels": {"app": "big"}},
                    "spec": {"containers": [{"name": "c", "image": "big:1"}]},
                },
            },
        }))?,
    )
    .await?;
    let result = wait_for("10,000 available", Duration::from_secs(60), || async {
        let d = api.get("big").await?;
        Ok((d.status.as_ref().and_then(|s| s.available_replicas) == Some(10_000)).then_some(()))
    })
    .await;
    let took = started.elapsed();
    result?;
    eprintln!("10,000 replicas available after {took:?}");
    assert_eq!(active_pods(&env.pods(), "big").await?.len(), 10_000);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    Ok(())
}
