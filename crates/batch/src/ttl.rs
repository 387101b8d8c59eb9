//! The TTL-after-finished controller: deletes finished Jobs once `ttlSecondsAfterFinished` has passed, with Foreground propagation.

use std::sync::Arc;
use std::time::Duration;

use client::{Change, Informers, WorkQueue};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::clock::{Clock, ShutDownOnDrop, Timers, duration_until};
use crate::job::is_finished;

/// Runs the TTL-after-finished controller until the future is dropped.
pub async fn run(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let informer = informers.informer::<Job>();
    let queue: WorkQueue<String> = WorkQueue::new();
    let _stop = ShutDownOnDrop(vec![queue.clone()]);
    informer.wait_synced().await;
    let mut changes = informer.subscribe();
    let store = informer.store().clone();
    let events = {
        let queue = queue.clone();
        async move {
            while let Some(change) = changes.recv().await {
                if let Change::Applied { new, .. } = change
                    && new.metadata.deletion_timestamp.is_none()
                    && needs_cleanup(&new)
                {
                    queue.add(format!(
                        "{}/{}",
                        new.metadata.namespace.as_deref().unwrap_or_default(),
                        new.metadata.name.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
    };
    let timers = Timers::new(clock.clone(), queue.clone());
    let workers = client::workqueue::run_workers(queue.clone(), workers, move |key: String| {
        let (client, store, clock, timers) =
            (client.clone(), store.clone(), clock.clone(), timers.clone());
        async move {
            process_job(&client, &store, &clock, &timers, &key)
                .await
                .map(|()| None)
        }
    });
    futures::join!(events, workers);
    Ok(())
}

/// A finished Job with a TTL.
pub fn needs_cleanup(job: &Job) -> bool {
    job.spec
        .as_ref()
        .is_some_and(|s| s.ttl_seconds_after_finished.is_some())
        && is_finished(job)
}

/// When the Job finished: the transition time of its Complete or Failed
/// condition.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// The time left before the Job expires, zero once it has.
pub fn time_left(job: &Job, now: Timestamp) -> anyhow::Result<Duration> {
    let finished = finish_time(job).ok_or_else(|| {
        anyhow::anyhow!(
            "unable to find the time when the Job {}/{} finished",
            job.metadata.namespace.as_deref().unwrap_or_default(),
            job.metadata.name.as_deref().unwrap_or_default()
        )
    })?;
    if finished > now {
        tracing::info!(
            job = job.metadata.name.as_deref().unwrap_or_default(),
            "found Job finished in the future; this is likely due to time skew in the cluster; Job cleanup will be deferred"
        );
    }
    let ttl = job
        .spec
        .as_ref()
        .and_then(|s| s.ttl_seconds_after_finished)
        .unwrap_or(0);
    let expire_at = finished
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
        .unwrap_or(Timestamp::MAX);
    Ok(duration_until(now, expire_at))
}

async fn process_job(
    client: &Client,
    store: &Store<Job>,
    clock: &Arc<dyn Clock>,
    timers: &Timers,
    key: &str,
) -> anyhow::Result<()> {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let Some(job) = store.get(&ObjectRef::new(name).within(namespace)) else {
        return Ok(());
    };
    if job.metadata.deletion_timestamp.is_some() || !needs_cleanup(&job) {
        return Ok(());
    }
    let left = time_left(&job, clock.now())?;
    if !left.is_zero() {
        timers.requeue_after(key.to_string(), left);
        return Ok(());
    }
    // The cached Job may be stale (its TTL changed): check the live one.
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let fresh = match api.get(name).await {
        Ok(fresh) => fresh,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if fresh.metadata.deletion_timestamp.is_some() || !needs_cleanup(&fresh) {
        return Ok(());
    }
    let left = time_left(&fresh, clock.now())?;
    if !left.is_zero() {
        timers.requeue_after(key.to_string(), left);
        return Ok(());
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_expires_ttl_seconds_after_its_terminal_condition() {
        let job: Job = serde_json::from_value(json!({
            "spec": {"ttlSecondsAfterFinished": 100, "template": {}},
            "status": {"conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:00:10Z"}
            ]}
        }))
        .unwrap();
        assert!(needs_cleanup(&job));
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(time_left(&job, now).unwrap(), Duration::from_secs(50));
        let later: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(time_left(&job, later).unwrap(), Duration::ZERO);
    }
}
