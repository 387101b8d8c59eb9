//! The nodes' heartbeats: every node's Lease renewed each renew interval and its Ready condition refreshed each status interval, both spread evenly over the interval so thousands of nodes never write at once.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::SimConfig;
use crate::api::FailureLog;
use crate::clock::Clock;
use crate::lease;
use crate::node;
use crate::registration::RegisteredNode;

/// Heartbeat requests in flight at most. Leases go their own way, not
/// through the pods' budget, so a burst of pod writes never delays them.
const MAX_IN_FLIGHT: usize = 16;

/// Visits `count` items in turn, one every `interval / count`, so each item
/// comes round once per interval.
#[derive(Debug)]
pub struct Rotation {
    step: Duration,
    count: usize,
    next_item: usize,
    next_at: Instant,
}

impl Rotation {
    /// The first item is due one step after `start`.
    pub fn new(interval: Duration, count: usize, start: Instant) -> Rotation {
        let step = interval / u32::try_from(count.max(1)).unwrap_or(u32::MAX);
        Rotation {
            step,
            count,
            next_item: 0,
            next_at: start + step,
        }
    }

    pub fn next_at(&self) -> Option<Instant> {
        (self.count > 0).then_some(self.next_at)
    }

    /// The next item if it is due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Option<usize> {
        if self.count == 0 || self.next_at > now {
            return None;
        }
        let item = self.next_item;
        self.next_item = (self.next_item + 1) % self.count;
        // Fall behind rather than catch up in a burst after a stall.
        self.next_at = (self.next_at + self.step).max(now);
        Some(item)
    }
}

enum Beat {
    Lease,
    Status,
}

struct BeatResult {
    node: usize,
    beat: Beat,
    result: Result<Option<String>, kube::Error>,
}

/// Beats until `stop` changes. Pod CIDRs the nodes' status reports reveal go
/// to `pod_cidrs`.
pub async fn run(
    client: kube::Client,
    config: Arc<SimConfig>,
    nodes: Arc<[RegisteredNode]>,
    pod_cidrs: mpsc::UnboundedSender<(String, Option<String>)>,
    mut stop: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut leases = Rotation::new(config.lease_renew_interval, nodes.len(), start);
    let mut statuses = Rotation::new(config.node_status_interval, nodes.len(), start);
    let mut in_flight: FuturesUnordered<BoxFuture<'static, BeatResult>> = FuturesUnordered::new();
    let mut lease_failures = FailureLog::new("renewing a node lease");
    let mut status_failures = FailureLog::new("reporting node status");
    loop {
        let next = [leases.next_at(), statuses.next_at()]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let name = &nodes[done.node].identity.name;
                match (done.beat, done.result) {
                    (Beat::Status, Ok(pod_cidr)) => {
                        let _ = pod_cidrs.send((name.clone(), pod_cidr));
                    }
                    (Beat::Lease, Ok(_)) => {}
                    (Beat::Lease, Err(error)) => lease_failures.record(name, &error),
                    (Beat::Status, Err(error)) => status_failures.record(name, &error),
                }
            }
            _ = sleep_until(next), if next.is_some() && in_flight.len() < MAX_IN_FLIGHT => {
                let now = Instant::now();
                while in_flight.len() < MAX_IN_FLIGHT {
                    if let Some(index) = leases.take_due(now) {
                        in_flight.push(Box::pin(renew_lease(client.clone(), nodes.clone(), index)));
                    } else if let Some(index) = statuses.take_due(now) {
                        in_flight.push(Box::pin(report_status(client.clone(), nodes.clone(), index)));
                    } else {
                        break;
                    }
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

async fn renew_lease(
    client: kube::Client,
    nodes: Arc<[RegisteredNode]>,
    index: usize,
) -> BeatResult {
    let node = &nodes[index];
    let now = Clock::now().micro_time();
    let result = lease::renew(&client, &node.identity.name, &node.uid, &now, false).await;
    BeatResult {
        node: index,
        beat: Beat::Lease,
        result: result.map(|()| None),
    }
}

/// Refreshes the conditions' heartbeat times; answers the node's podCIDR.
async fn report_status(
    client: kube::Client,
    nodes: Arc<[RegisteredNode]>,
    index: usize,
) -> BeatResult {
    let node = &nodes[index];
    let now = Clock::now().time();
    let patch = json!({ "status": { "conditions": node::conditions(&node.ready_since, &now) } });
    let api: Api<Node> = Api::all(client);
    let result = api
        .patch_status(
            &node.identity.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|reported| reported.spec.and_then(|spec| spec.pod_cidr));
    BeatResult {
        node: index,
        beat: Beat::Status,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_spreads_items_over_the_interval() {
        let start = Instant::now();
        let mut rotation = Rotation::new(Duration::from_secs(10), 5, start);
        assert_eq!(rotation.take_due(start), None);
        let due: Vec<_> = (1..=6)
            .map(|i| rotation.take_due(start + Duration::from_secs(2 * i)))
            .collect();
        assert_eq!(due, [Some(0), Some(1), Some(2), Some(3), Some(4), Some(0)]);
    }

    #[test]
    fn a_rotation_falls_behind_instead_of_bursting() {
        let start = Instant::now();
        let mut rotation = Rotation::new(Duration::from_secs(10), 5, start);
        let late = start + Duration::from_secs(60);
        assert_eq!(rotation.take_due(late), Some(0));
        assert_eq!(rotation.take_due(late), Some(1));
        assert_eq!(
            rotation.take_due(late),
            None,
            "at most one step of catching up"
        );
    }

    #[test]
    fn an_empty_rotation_is_never_due() {
        let start = Instant::now();
        let mut rotation = Rotation::new(Duration::from_secs(10), 0, start);
        assert_eq!(rotation.next_at(), None);
        assert_eq!(rotation.take_due(start + Duration::from_secs(100)), None);
    }
}
