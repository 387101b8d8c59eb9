//! Judging a node's health from its Ready heartbeat and its Lease, as upstream's tryUpdateNodeHealth does: pure, with the controller's own clock.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::{Duration, Instant};

/// The conditions set to Unknown when a node stops reporting
/// (NetworkUnavailable belongs to the network provider and is left alone).
const MONITORED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller remembers about a node between passes.
#[derive(Clone, Debug)]
pub struct NodeHealth {
    /// The Ready condition last seen.
    pub ready: Option<NodeCondition>,
    /// When the controller last saw the node report (heartbeat or lease).
    pub probe: Instant,
    pub ready_transition: Instant,
    /// The lease renew time last seen.
    pub lease_renewed: Option<Timestamp>,
}

/// One pass's verdict on a node.
#[derive(Debug)]
pub struct Assessment {
    pub health: NodeHealth,
    /// The Ready status before this pass.
    pub observed_ready: String,
    /// The Ready status after this pass (`None` when the node has none).
    pub current_ready: Option<String>,
    /// Conditions to write through the status subresource, if any changed.
    pub new_conditions: Option<Vec<NodeCondition>>,
}

pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn instant_of(time: Option<&Time>, now: Instant, wall_now: Timestamp) -> Instant {
    let Some(time) = time else { return now };
    let age = wall_now.duration_since(time.0).as_secs_f64().max(0.0);
    now.checked_sub(Duration::from_secs_f64(age)).unwrap_or(now)
}

/// Decides whether `node` still reports: a changed Ready heartbeat or a newer
/// Lease renewal counts as a probe; no probe for the grace period turns the
/// monitored conditions Unknown.
pub fn assess(
    previous: Option<&NodeHealth>,
    node: &Node,
    lease_renewed: Option<Timestamp>,
    now: Instant,
    wall_now: Timestamp,
    monitor_grace: Duration,
    startup_grace: Duration,
) -> Assessment {
    let current_ready = condition(node, "Ready").cloned();
    let created = node.metadata.creation_timestamp.clone();
    let mut health = previous.cloned();
    let (grace, observed_ready) = match &current_ready {
        None => {
            // Never posted: judged from the node's creation, with the
            // longer startup grace period.
            let since_creation = instant_of(created.as_ref(), now, wall_now);
            health = Some(match health {
                Some(mut known) => {
                    known.ready = None;
                    known
                }
                None => NodeHealth {
                    ready: None,
                    probe: since_creation,
                    ready_transition: since_creation,
                    lease_renewed: None,
                },
            });
            (startup_grace, "Unknown".to_string())
        }
        Some(ready) => (monitor_grace, ready.status.clone()),
    };
    let saved_ready = health.as_ref().and_then(|h| h.ready.clone());
    let saved_lease = health.as_ref().and_then(|h| h.lease_renewed);
    let fresh = |ready: Option<NodeCondition>| NodeHealth {
        ready,
        probe: now,
        ready_transition: now,
        lease_renewed: None,
    };
    let mut health = match (health, &saved_ready, &current_ready) {
        (None, _, _) => fresh(current_ready.clone()),
        (Some(_), None, Some(_)) | (Some(_), Some(_), None) => fresh(current_ready.clone()),
        (Some(known), Some(saved), Some(current))
            if saved.last_heartbeat_time != current.last_heartbeat_time =>
        {
            let transition = if saved.last_transition_time != current.last_transition_time {
                now
            } else {
                known.ready_transition
            };
            NodeHealth {
                ready: Some(current.clone()),
                probe: now,
                ready_transition: transition,
                lease_renewed: known.lease_renewed,
            }
        }
        (Some(known), _, _) => known,
    };
    if let Some(renewed) = lease_renewed
        && saved_lease.is_none_or(|saved| saved < renewed)
    {
        health.lease_renewed = Some(renewed);
        health.probe = now;
    }

    let mut assessment = Assessment {
        current_ready: current_ready.as_ref().map(|c| c.status.clone()),
        observed_ready,
        new_conditions: None,
        health,
    };
    if now <= assessment.health.probe + grace {
        return assessment;
    }
    let mut conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.clone())
        .unwrap_or_default();
    let stamp = Time(wall_now);
    for type_ in MONITORED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => conditions.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: created.clone(),
                last_transition_time: Some(stamp.clone()),
            }),
            Some(existing) if existing.status != "Unknown" => {
                existing.status = "Unknown".into();
                existing.reason = Some("NodeStatusUnknown".into());
                existing.message = Some("Kubelet stopped posting node status.".into());
                existing.last_transition_time = Some(stamp.clone());
            }
            Some(_) => {}
        }
    }
    let new_ready = conditions.iter().find(|c| c.type_ == "Ready").cloned();
    if new_ready != current_ready {
        assessment.current_ready = new_ready.as_ref().map(|c| c.status.clone());
        assessment.health.ready = new_ready;
        assessment.health.ready_transition = now;
        assessment.new_conditions = Some(conditions);
    }
    assessment
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeStatus;
    use kube::api::ObjectMeta;

    fn node(heartbeat: Timestamp) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: Some(Time(heartbeat)),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_heartbeat_time: Some(Time(heartbeat)),
                    last_transition_time: Some(Time(heartbeat)),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(40);
    const STARTUP: Duration = Duration::from_secs(60);

    #[test]
    fn a_silent_node_turns_unknown_after_the_grace_period() {
        let wall = Timestamp::now();
        let start = Instant::now();
        let node = node(wall);
        let first = assess(None, &node, None, start, wall, GRACE, STARTUP);
        assert!(first.new_conditions.is_none());
        let later = start + Duration::from_secs(30);
        let second = assess(
            Some(&first.health),
            &node,
            None,
            later,
            wall,
            GRACE,
            STARTUP,
        );
        assert!(second.new_conditions.is_none());
        let late = start + Duration::from_secs(41);
        let third = assess(
            Some(&second.health),
            &node,
            None,
            late,
            wall,
            GRACE,
            STARTUP,
        );
        let conditions = third.new_conditions.expect("status update");
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let never = conditions
            .iter()
            .find(|c| c.type_ == "PIDPressure")
            .unwrap();
        assert_eq!(never.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            (
                third.observed_ready.as_str(),
                third.current_ready.as_deref()
            ),
            ("True", Some("Unknown"))
        );
    }

    #[test]
    fn a_renewed_lease_keeps_the_node_healthy() {
        let wall = Timestamp::now();
        let start = Instant::now();
        let node = node(wall);
        let mut health = assess(None, &node, Some(wall), start, wall, GRACE, STARTUP).health;
        for step in 1..=5u64 {
            let renewed = wall + jiff::SignedDuration::from_secs(step as i64 * 20);
            let result = assess(
                Some(&health),
                &node,
                Some(renewed),
                start + Duration::from_secs(step * 20),
                wall,
                GRACE,
                STARTUP,
            );
            assert!(result.new_conditions.is_none(), "step {step}");
            health = result.health;
        }
    }
}
