//! The simulated kubelets' pod work: one watch of every bound pod feeds the pod table, whose requests (status writes, deletions, re-reads) run with bounded concurrency through one client.

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::api::{self, FailureLog};
use crate::clock::Clock;
use crate::pods::{Action, Outcome, PodRef, PodTable, RequestKind};

/// Bound pods only: the simulator's nodes are a subset of those, filtered here.
const BOUND_PODS: &str = "spec.nodeName!=";

struct Completion {
    pod: PodRef,
    kind: RequestKind,
    outcome: Outcome,
    /// The pod as read, for a successful `Fetch`.
    fetched: Option<Pod>,
    error: Option<kube::Error>,
}

/// Runs until `stop` changes. `pod_cidrs` brings nodes' podCIDRs as they
/// become known.
pub async fn run(
    client: kube::Client,
    mut table: PodTable,
    max_in_flight: usize,
    mut pod_cidrs: mpsc::UnboundedReceiver<(String, Option<String>)>,
    mut stop: watch::Receiver<bool>,
) {
    let max_in_flight = max_in_flight.max(1);
    let pods: Api<Pod> = Api::all(client.clone());
    let events = watcher(pods, watcher::Config::default().fields(BOUND_PODS)).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut in_flight: FuturesUnordered<BoxFuture<'static, Completion>> = FuturesUnordered::new();
    let mut watch_failures = FailureLog::new("watching pods");
    let mut request_failures = FailureLog::new("updating a pod");
    loop {
        let next_timer = table.next_timer();
        let room = in_flight.len() < max_in_flight;
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let clock = Clock::now();
                table.finished(&done.pod.uid, done.kind, done.outcome, &clock);
                if let Some(pod) = done.fetched {
                    if pod.metadata.uid.as_deref() != Some(done.pod.uid.as_str()) {
                        // Deleted and created again under the same name.
                        table.forget(&done.pod.uid);
                    }
                    if let Some(action) = table.observe(&pod, &clock) {
                        in_flight.push(perform(client.clone(), action));
                    }
                }
                if let Some(error) = &done.error {
                    request_failures.record(
                        &format!("{:?} {}/{}", done.kind, done.pod.namespace, done.pod.name),
                        error,
                    );
                }
            }
            Some((node, pod_cidr)) = pod_cidrs.recv() => {
                table.set_pod_cidr(&node, pod_cidr.as_deref());
            }
            _ = sleep_until(next_timer), if next_timer.is_some() && room => {
                let clock = Clock::now();
                for action in table.due(&clock, max_in_flight - in_flight.len()) {
                    in_flight.push(perform(client.clone(), action));
                }
            }
            event = events.next(), if room => {
                let Some(event) = event else { return };
                let clock = Clock::now();
                let action = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        table.observe(&pod, &clock)
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            table.forget(uid);
                        }
                        None
                    }
                    Ok(watcher::Event::Init) => {
                        table.begin_relist();
                        None
                    }
                    Ok(watcher::Event::InitDone) => {
                        table.end_relist();
                        None
                    }
                    Err(error) => {
                        watch_failures.record("pods", &error);
                        None
                    }
                };
                if let Some(action) = action {
                    in_flight.push(perform(client.clone(), action));
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn perform(client: kube::Client, action: Action) -> BoxFuture<'static, Completion> {
    Box::pin(async move {
        match action {
            Action::WriteStatus { pod, target, patch } => {
                let result =
                    api::patch_status(&client, &api::pods_path(&pod.namespace), &pod.name, &patch)
                        .await;
                completion(pod, RequestKind::WriteStatus(target), result.map(|()| None))
            }
            Action::Delete { pod } => {
                let result = api::delete_now(
                    &client,
                    &api::pods_path(&pod.namespace),
                    &pod.name,
                    &pod.uid,
                )
                .await;
                completion(pod, RequestKind::Delete, result.map(|()| None))
            }
            Action::Fetch { pod } => {
                let pods: Api<Pod> = Api::namespaced(client, &pod.namespace);
                let result = pods.get(&pod.name).await.map(Some);
                completion(pod, RequestKind::Fetch, result)
            }
        }
    })
}

fn completion(
    pod: PodRef,
    kind: RequestKind,
    result: Result<Option<Pod>, kube::Error>,
) -> Completion {
    let (outcome, fetched, error) = match result {
        Ok(fetched) => (Outcome::Done, fetched, None),
        // 409 on delete: the uid precondition failed, a new pod has the name.
        Err(error) if api::is_status(&error, 404) || api::is_status(&error, 409) => {
            (Outcome::Gone, None, None)
        }
        Err(error) => (Outcome::Failed, None, Some(error)),
    };
    Completion {
        pod,
        kind,
        outcome,
        fetched,
        error,
    }
}
