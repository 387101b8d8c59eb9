//! What the scheduler needs to know about one pod, computed once: requests, host ports, priority and parsed affinity terms.

use std::ops::Deref;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::jiff::Timestamp;

use crate::labels::{LabelSelector, Labels, pod_labels, pod_namespace};
use crate::resources::{PodRequests, is_restartable_init_container, pod_requests};

/// A parsed `PodAffinityTerm`: which pods it selects (by namespace and
/// labels) and the topology it spans.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AffinityTerm {
    /// Namespaces named by the term, or the pod's own when the term names
    /// none and has no namespace selector.
    pub namespaces: Vec<String>,
    pub namespace_selector: LabelSelector,
    pub selector: LabelSelector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(owner_namespace: &str, term: &PodAffinityTerm) -> AffinityTerm {
        let named = term.namespaces.as_deref().unwrap_or_default();
        let namespaces = if named.is_empty() && term.namespace_selector.is_none() {
            vec![owner_namespace.to_string()]
        } else {
            named.to_vec()
        };
        AffinityTerm {
            namespaces,
            namespace_selector: LabelSelector::from_api(term.namespace_selector.as_ref()),
            selector: LabelSelector::from_api(term.label_selector.as_ref()),
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether the term selects `pod`, whose namespace carries
    /// `namespace_labels` (upstream's `AffinityTerm.Matches`).
    pub fn matches(&self, pod: &Pod, namespace_labels: Option<&Labels>) -> bool {
        let namespace = pod_namespace(pod);
        let in_namespace = self.namespaces.iter().any(|n| n == namespace)
            || self
                .namespace_selector
                .matches(namespace_labels.unwrap_or(&crate::labels::NO_LABELS));
        in_namespace && self.selector.matches(pod_labels(pod))
    }
}

#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i64,
}

/// A host port a pod binds, with upstream's defaults filled in (0.0.0.0, TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether binding `self` collides with `used`: same protocol and port,
    /// and the same address or either one the 0.0.0.0 wildcard.
    pub fn conflicts_with(&self, used: &HostPort) -> bool {
        self.port == used.port
            && self.protocol == used.protocol
            && (self.ip == used.ip || self.ip == WILDCARD_IP || used.ip == WILDCARD_IP)
    }
}

pub const WILDCARD_IP: &str = "0.0.0.0";

/// Everything derived from a pod that filters and scores read.
#[derive(Clone, Debug)]
pub struct PodFacts {
    /// `namespace/name`, unique among live pods.
    pub key: String,
    pub priority: i32,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    /// The pod has a podAffinity or podAntiAffinity stanza (upstream lists
    /// such pods separately so most cycles never look at the others).
    pub has_affinity: bool,
    /// Being deleted: spreading does not count it.
    pub terminating: bool,
}

impl PodFacts {
    /// Whether the pod has terms that score other pods' placement: required
    /// affinity (credited with the hard pod affinity weight) or preferred
    /// terms. Required anti-affinity only filters.
    pub fn has_scoring_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    pub fn new(pod: &Pod) -> PodFacts {
        let namespace = pod_namespace(pod);
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
        let pod_anti_affinity = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(namespace, t))
                .collect()
        };
        let preferred =
            |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<WeightedAffinityTerm> {
                terms
                    .into_iter()
                    .flatten()
                    .map(|t| WeightedAffinityTerm {
                        term: AffinityTerm::new(namespace, &t.pod_affinity_term),
                        weight: i64::from(t.weight),
                    })
                    .collect()
            };
        PodFacts {
            key: pod_key(pod),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests: pod_requests(pod),
            host_ports: host_ports(pod),
            required_affinity: required(pod_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(pod_anti_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pod_affinity.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(pod_anti_affinity.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            has_affinity: pod_affinity.is_some() || pod_anti_affinity.is_some(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// A pod the snapshot holds, with its facts.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub facts: PodFacts,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let facts = PodFacts::new(&pod);
        PodInfo { pod, facts }
    }
}

impl Deref for PodInfo {
    type Target = PodFacts;
    fn deref(&self) -> &PodFacts {
        &self.facts
    }
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod_namespace(pod),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A pod's priority as admission set it (0 when unset).
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// When the pod started; pods that have not started count as starting now,
/// i.e. later than any that have.
pub fn pod_start_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// Host ports of the regular containers and of sidecars (restartable init
/// containers), which run for the pod's whole life.
fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_restartable_init_container(c));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| HostPort {
            ip: p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| WILDCARD_IP.to_string()),
            protocol: p
                .protocol
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "TCP".to_string()),
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}
