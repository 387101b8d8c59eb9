//! What the container runtime holds for the agent's pods: sandboxes and containers found by their pod-UID labels, with each container's full status, and a cheap per-pod fingerprint for the relist.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use cri::{RuntimeService, api};
use jiff::Timestamp;
use kubelet::runtime_state::{
    ContainerRecord, ContainerRunState, NamespaceMode, PodRuntimeState, SandboxRecord, SandboxState,
};

use crate::cri_config::{
    CONTAINER_HASH_ANNOTATION, CONTAINER_NAME_LABEL, MANAGED_LABEL, POD_UID_LABEL,
    RESTART_COUNT_ANNOTATION,
};

fn timestamp(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A CRI time that may be unset (0).
fn optional_timestamp(nanos: i64) -> Option<Timestamp> {
    (nanos > 0).then(|| timestamp(nanos))
}

fn run_state(state: i32) -> ContainerRunState {
    match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => ContainerRunState::Created,
        Ok(api::ContainerState::ContainerRunning) => ContainerRunState::Running,
        Ok(api::ContainerState::ContainerExited) => ContainerRunState::Exited,
        _ => ContainerRunState::Unknown,
    }
}

fn uid_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(POD_UID_LABEL.to_string(), uid.to_string())])
}

/// The runtime's view of pod `uid`.
pub async fn observe_pod(
    runtime: &dyn RuntimeService,
    uid: &str,
) -> Result<PodRuntimeState, cri::CriError> {
    let sandboxes = runtime
        .list_pod_sandbox(Some(api::PodSandboxFilter {
            label_selector: uid_selector(uid),
            ..Default::default()
        }))
        .await?;
    let mut observed = PodRuntimeState::default();
    for sandbox in sandboxes {
        let status = match runtime.pod_sandbox_status(&sandbox.id, false).await {
            Ok(response) => response.status.unwrap_or_default(),
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(error),
        };
        let ready = status.state == api::PodSandboxState::SandboxReady as i32;
        let ips = status
            .network
            .map(|network| {
                std::iter::once(network.ip)
                    .chain(network.additional_ips.into_iter().map(|ip| ip.ip))
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let host_network = status
            .linux
            .and_then(|linux| linux.namespaces)
            .and_then(|namespaces| namespaces.options)
            .is_some_and(|options| options.network == api::NamespaceMode::Node as i32);
        observed.sandboxes.push(SandboxRecord {
            attempt: sandbox.metadata.as_ref().map_or(0, |m| m.attempt),
            id: sandbox.id,
            state: if ready {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: timestamp(sandbox.created_at),
            ips,
            network_namespace: if host_network {
                NamespaceMode::Node
            } else {
                NamespaceMode::Pod
            },
        });
    }

    let containers = runtime
        .list_containers(Some(api::ContainerFilter {
            label_selector: uid_selector(uid),
            ..Default::default()
        }))
        .await?;
    for container in containers {
        let status = match runtime.container_status(&container.id, false).await {
            Ok(response) => response.status,
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(error),
        };
        let Some(status) = status else { continue };
        let annotations = &status.annotations;
        observed.containers.push(ContainerRecord {
            id: container.id.clone(),
            sandbox_id: container.pod_sandbox_id.clone(),
            name: status
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .or_else(|| status.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default(),
            attempt: status.metadata.as_ref().map_or(0, |m| m.attempt),
            state: run_state(status.state),
            created_at: timestamp(status.created_at),
            started_at: optional_timestamp(status.started_at),
            finished_at: optional_timestamp(status.finished_at),
            exit_code: status.exit_code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            image: status
                .image
                .as_ref()
                .map(|image| {
                    if image.user_specified_image.is_empty() {
                        image.image.clone()
                    } else {
                        image.user_specified_image.clone()
                    }
                })
                .unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            spec_hash: annotations
                .get(CONTAINER_HASH_ANNOTATION)
                .and_then(|hash| u64::from_str_radix(hash, 16).ok())
                .unwrap_or(0),
            restart_count: annotations
                .get(RESTART_COUNT_ANNOTATION)
                .and_then(|count| count.parse().ok())
                .unwrap_or(0),
            user: None,
        });
    }
    Ok(observed)
}

/// Per pod UID, a hash of its sandboxes' and containers' ids and states:
/// two list calls for the whole node.
pub async fn fingerprints(
    runtime: &dyn RuntimeService,
) -> Result<HashMap<String, u64>, cri::CriError> {
    let managed = HashMap::from([(MANAGED_LABEL.to_string(), "true".to_string())]);
    let sandboxes = runtime
        .list_pod_sandbox(Some(api::PodSandboxFilter {
            label_selector: managed.clone(),
            ..Default::default()
        }))
        .await?;
    let containers = runtime
        .list_containers(Some(api::ContainerFilter {
            label_selector: managed,
            ..Default::default()
        }))
        .await?;
    let mut states: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for sandbox in sandboxes {
        if let Some(uid) = sandbox.labels.get(POD_UID_LABEL) {
            states
                .entry(uid.clone())
                .or_default()
                .push((sandbox.id, sandbox.state));
        }
    }
    for container in containers {
        if let Some(uid) = container.labels.get(POD_UID_LABEL) {
            states
                .entry(uid.clone())
                .or_default()
                .push((container.id, container.state));
        }
    }
    Ok(states
        .into_iter()
        .map(|(uid, mut items)| {
            items.sort();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            items.hash(&mut hasher);
            (uid, hasher.finish())
        })
        .collect())
}
