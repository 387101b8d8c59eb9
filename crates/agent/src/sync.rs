//! One pod's sync against containerd, as upstream kubelet's SyncPod: observe the runtime, ask the kubelet crate what to change, carry it out through CRI (sandbox, image pulls, containers, kills), report the status when it changed, and finish a deleted pod.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri::{ImageService, RuntimeService, api};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kubelet::actions::{self, ActionsContext, ContainerStart, PodActions};
use kubelet::backoff::ContainerBackoff;
use kubelet::expansion::{self, EnvContext, StaticObjects};
use kubelet::probes::{
    self, ProbeKind, ProbeResults, ProbeStep, ProbeTarget, ProbeWorker, TargetState,
};
use kubelet::resources::{self, ResourceSettings};
use kubelet::runtime_state::PodRuntimeState;
use kubelet::spec::{self, ContainerKind};
use kubelet::status::{self, StatusContext, WaitingReason};
use serde_json::json;
use tokio::time::Instant;

use crate::cri_config::{self, ContainerLaunch, DnsSettings};
use crate::observe;
use crate::pod_workers::{PodSyncer, SyncOutcome};
use crate::probing;
use crate::pull_auth;
use crate::volumes;

/// Both CRI services, as containerd serves them on one socket.
pub trait Runtime: RuntimeService + ImageService {}
impl<T: RuntimeService + ImageService> Runtime for T {}

/// Upstream's image pull backoff: 10 s doubling to 5 min.
const IMAGE_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const IMAGE_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What every container of one sync is started with.
#[derive(Clone, Copy)]
struct LaunchInputs<'a> {
    pod_ips: &'a [String],
    env_objects: &'a StaticObjects,
    volume_objects: &'a volumes::VolumeObjects,
}

/// How often configMap, secret and downwardAPI volumes are rewritten.
const VOLUME_REFRESH_PERIOD: Duration = Duration::from_secs(5);

/// Everything a pod's sync needs, shared by all pod workers.
pub struct NodeSyncer {
    pub client: kube::Client,
    pub runtime: Arc<dyn Runtime>,
    pub node_name: String,
    pub node_ip: String,
    pub logs_root: PathBuf,
    /// Per pod UID, its volumes (`PODS/UID/volumes/...`), as kubelet's
    /// `/var/lib/kubelet/pods`.
    pub pods_root: PathBuf,
    pub dns: DnsSettings,
    pub resource_settings: ResourceSettings,
    pub node_allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    pub recorder: client::EventRecorder,
    /// registries.yaml's credentials, for pulls no pull secret covers.
    pub registries: containerd::registries::Registries,
    state: Mutex<SyncState>,
}

/// What the kubelet remembers between syncs.
struct SyncState {
    backoff: ContainerBackoff,
    probe_results: ProbeResults,
    /// Per pod UID, why containers could not start (ErrImagePull, …).
    waiting: HashMap<String, BTreeMap<String, WaitingReason>>,
    /// Per pod UID and image (upstream's key), when pulling it may be tried
    /// again, and the last delay.
    image_backoff: HashMap<(String, String), (Instant, Duration)>,
    /// Per pod UID, the status last written.
    written: HashMap<String, PodStatus>,
    /// Per pod UID, container name and kind, the probe's state machine.
    probe_workers: HashMap<(String, String, ProbeKind), ProbeWorker>,
}

impl NodeSyncer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        runtime: Arc<dyn Runtime>,
        node_name: String,
        node_ip: String,
        logs_root: PathBuf,
        pods_root: PathBuf,
        dns: DnsSettings,
        resource_settings: ResourceSettings,
        node_allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    ) -> NodeSyncer {
        let recorder = client::EventRecorder::new(client.clone(), "kubelet");
        NodeSyncer {
            client,
            runtime,
            node_name,
            node_ip,
            logs_root,
            pods_root,
            dns,
            resource_settings,
            node_allocatable,
            recorder,
            registries: containerd::registries::Registries::default(),
            state: Mutex::new(SyncState {
                backoff: ContainerBackoff::new(Duration::from_secs(10), Duration::from_secs(300)),
                probe_results: ProbeResults::default(),
                waiting: HashMap::new(),
                image_backoff: HashMap::new(),
                written: HashMap::new(),
                probe_workers: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops and removes everything the runtime holds for `uid`.
    async fn tear_down(&self, uid: &str, grace: Duration) -> Result<(), cri::CriError> {
        let state = observe::observe_pod(self.runtime.as_ref(), uid).await?;
        for container in &state.containers {
            if container.state != kubelet::runtime_state::ContainerRunState::Exited {
                self.runtime
                    .stop_container(&container.id, grace)
                    .await
                    .or_else(not_found_ok)?;
            }
        }
        for sandbox in &state.sandboxes {
            self.runtime
                .stop_pod_sandbox(&sandbox.id)
                .await
                .or_else(not_found_ok)?;
            self.runtime
                .remove_pod_sandbox(&sandbox.id)
                .await
                .or_else(not_found_ok)?;
        }
        for container in &state.containers {
            self.runtime
                .remove_container(&container.id)
                .await
                .or_else(not_found_ok)?;
        }
        Ok(())
    }

    /// Keeps the newest instance of each container and one dead one before
    /// it (for `kubectl logs --previous` and lastState); older dead
    /// instances are removed, as upstream's container GC does with
    /// MaxPerPodContainer 1.
    async fn collect_dead_containers(&self, state: &PodRuntimeState) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for container in state.containers_newest_first() {
            let count = seen.entry(container.name.as_str()).or_default();
            *count += 1;
            if *count > 2
                && container.state == kubelet::runtime_state::ContainerRunState::Exited
                && let Err(error) = self.runtime.remove_container(&container.id).await
            {
                tracing::debug!(container = %container.id, %error, "removing a dead container");
            }
        }
    }

    /// The container's volume mounts as CRI bind mounts, each volume
    /// prepared (or refreshed) first; a volume that cannot be served keeps
    /// the container from starting with the message a FailedMount event
    /// carries, rather than running it without its data.
    fn container_mounts(
        &self,
        pod: &Pod,
        container: &Container,
        objects: &volumes::VolumeObjects,
    ) -> Result<Vec<api::Mount>, String> {
        let pod_volumes = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.volumes.as_ref())
            .cloned()
            .unwrap_or_default();
        let pod_dir = self.pods_root.join(spec::pod_uid(pod));
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let Some(volume) = pod_volumes.iter().find(|volume| volume.name == mount.name) else {
                return Err(format!(
                    "Unable to attach or mount volumes: unmounted volumes=[{}]: volume not found in the pod spec",
                    mount.name
                ));
            };
            let host_path = volumes::prepare(pod, volume, &pod_dir, objects)?;
            let sub_path = mount.sub_path.as_deref().unwrap_or("");
            if sub_path.starts_with('/') || sub_path.split('/').any(|part| part == "..") {
                return Err(format!(
                    "Error: subPath {sub_path:?} must be a relative path without '..'"
                ));
            }
            let host_path = if sub_path.is_empty() {
                host_path
            } else {
                let path = host_path.join(sub_path);
                if !path.exists() {
                    let _ = std::fs::create_dir_all(&path);
                }
                path
            };
            mounts.push(api::Mount {
                container_path: mount.mount_path.clone(),
                host_path: host_path.display().to_string(),
                // Content written from API objects is never the container's to change.
                readonly: mount.read_only.unwrap_or(false)
                    || volume.config_map.is_some()
                    || volume.secret.is_some()
                    || volume.downward_api.is_some()
                    || volume.projected.is_some(),
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    /// Steps every probe of the pod's containers, running those that are
    /// due. Returns when the next one is due and whether a published result
    /// changed (the status, or a liveness restart, depends on it).
    async fn run_probes(&self, pod: &Pod, state: &PodRuntimeState) -> (Option<Instant>, bool) {
        let uid = spec::pod_uid(pod).to_string();
        let deleting = spec::is_being_deleted(pod);
        let never = spec::restart_policy(pod) == spec::RestartPolicy::Never;
        let pod_ip = state
            .newest_sandbox()
            .and_then(|sandbox| sandbox.ips.first().cloned());
        let mut next: Option<Instant> = None;
        let mut changed = false;
        for container in spec::containers(pod) {
            for kind in [
                ProbeKind::Startup,
                ProbeKind::Liveness,
                ProbeKind::Readiness,
            ] {
                let Some(probe) = probes::probe_of(container, kind) else {
                    continue;
                };
                let record = state.latest_container(&container.name);
                let running = record
                    .is_some_and(|r| r.state == kubelet::runtime_state::ContainerRunState::Running);
                let target_state = match record {
                    None => TargetState::Absent,
                    Some(r) => match r.state {
                        kubelet::runtime_state::ContainerRunState::Running => {
                            TargetState::Running {
                                started_at: r.started_at.unwrap_or(r.created_at),
                            }
                        }
                        kubelet::runtime_state::ContainerRunState::Exited => {
                            TargetState::Terminated
                        }
                        _ => TargetState::Waiting,
                    },
                };
                let container_id = record.map(|r| r.id.clone());
                let key = (uid.clone(), container.name.clone(), kind);
                let now = Timestamp::now();
                let step = {
                    let mut guard = self.state();
                    let started = probes::container_started(
                        container,
                        running,
                        container_id.as_deref(),
                        &guard.probe_results,
                    );
                    let target = ProbeTarget {
                        container_id: container_id.as_deref(),
                        state: target_state,
                        started,
                        pod_deleting: deleting,
                        pod_terminal: false,
                        restart_policy_never: never,
                    };
                    let worker = guard
                        .probe_workers
                        .entry(key.clone())
                        .or_insert_with(|| ProbeWorker::new(kind, probe));
                    let step = worker.step(&target, now);
                    let worker = worker.clone();
                    guard.probe_results.apply(&worker);
                    (step, target_state, started)
                };
                let (mut step, target_state, started) = step;
                if step == ProbeStep::ProbeNow
                    && let Some(id) = container_id.as_deref()
                {
                    let outcome = probing::run_probe(
                        probe,
                        pod,
                        container,
                        id,
                        pod_ip.as_deref(),
                        self.runtime.as_ref(),
                    )
                    .await;
                    let now = Timestamp::now();
                    let mut guard = self.state();
                    let Some(worker) = guard.probe_workers.get_mut(&key) else {
                        continue;
                    };
                    let recorded = worker.record(outcome, now);
                    let target = ProbeTarget {
                        container_id: Some(id),
                        state: target_state,
                        started,
                        pod_deleting: deleting,
                        pod_terminal: false,
                        restart_policy_never: never,
                    };
                    step = worker.step(&target, now);
                    let worker = worker.clone();
                    guard.probe_results.apply(&worker);
                    drop(guard);
                    if recorded.published.is_some() || recorded.restart_requested {
                        changed = true;
                    }
                    if let Some(event) = recorded.event {
                        if event.warning {
                            self.recorder.warning(pod, event.reason, event.message);
                        } else {
                            self.recorder.normal(pod, event.reason, event.message);
                        }
                    }
                }
                if let ProbeStep::WaitUntil(at) = step {
                    let delay = at.duration_since(Timestamp::now());
                    let delay = Duration::try_from(delay).unwrap_or(Duration::ZERO);
                    let at = Instant::now() + delay;
                    next = Some(next.map_or(at, |current| current.min(at)));
                } else if step == ProbeStep::ProbeNow {
                    next = Some(Instant::now());
                }
            }
        }
        (next, changed)
    }

    /// Removes a gone pod's log directory (`NAMESPACE_NAME_UID`) and volumes.
    fn remove_pod_files(&self, uid: &str) {
        let pod_dir = self.pods_root.join(uid);
        volumes::unmount_all_under(&pod_dir);
        let _ = std::fs::remove_dir_all(pod_dir);
        let suffix = format!("_{uid}");
        let Ok(entries) = std::fs::read_dir(&self.logs_root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(&suffix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The credentials for pulling `image`: a matching imagePullSecret, else
    /// registries.yaml's for its registry.
    async fn pull_auth(&self, pod: &Pod, image: &str) -> Option<api::AuthConfig> {
        let registry = pull_auth::registry_of(image);
        let names: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|spec| spec.image_pull_secrets.iter().flatten())
            .map(|reference| reference.name.clone())
            .collect();
        let secret_api: Api<Secret> =
            Api::namespaced(self.client.clone(), spec::pod_namespace(pod));
        let mut secrets = Vec::new();
        for name in names {
            if let Ok(Some(secret)) = secret_api.get_opt(&name).await {
                secrets.push(secret);
            }
        }
        pull_auth::from_pull_secrets(&secrets, registry)
            .or_else(|| pull_auth::from_registries(&self.registries, registry))
    }

    /// Reads the ConfigMaps and Secrets the pod's volumes refer to.
    async fn volume_objects(&self, pod: &Pod) -> volumes::VolumeObjects {
        let namespace = spec::pod_namespace(pod);
        let (config_maps, secrets) = volumes::referenced_objects(pod);
        let mut objects = volumes::VolumeObjects::default();
        let config_map_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        for name in config_maps {
            if let Ok(Some(config_map)) = config_map_api.get_opt(&name).await {
                objects.config_maps.insert(name, config_map);
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        for name in secrets {
            if let Ok(Some(secret)) = secret_api.get_opt(&name).await {
                objects.secrets.insert(name, secret);
            }
        }
        objects
    }

    /// Rewrites the pod's configMap, secret, downwardAPI and projected
    /// volumes from the current objects, so running containers see updates.
    async fn refresh_volumes(&self, pod: &Pod) {
        let objects = self.volume_objects(pod).await;
        let pod_dir = self.pods_root.join(spec::pod_uid(pod));
        for volume in pod
            .spec
            .iter()
            .flat_map(|spec| spec.volumes.iter().flatten())
        {
            let projected = volume.config_map.is_some()
                || volume.secret.is_some()
                || volume.downward_api.is_some()
                || volume.projected.is_some();
            if projected && let Err(message) = volumes::prepare(pod, volume, &pod_dir, &objects) {
                tracing::debug!(pod = %spec::pod_name(pod), %message, "refreshing a volume");
            }
        }
    }

    /// Reads the ConfigMaps and Secrets the pod's env refers to.
    async fn env_objects(&self, pod: &Pod) -> StaticObjects {
        let namespace = spec::pod_namespace(pod).to_string();
        let mut objects = StaticObjects::default();
        let containers = spec::init_containers(pod)
            .iter()
            .chain(spec::containers(pod));
        let mut config_maps = Vec::new();
        let mut secrets = Vec::new();
        for container in containers {
            for env in container.env.iter().flatten() {
                if let Some(source) = &env.value_from {
                    if let Some(key) = &source.config_map_key_ref {
                        config_maps.push(key.name.clone());
                    }
                    if let Some(key) = &source.secret_key_ref {
                        secrets.push(key.name.clone());
                    }
                }
            }
            for from in container.env_from.iter().flatten() {
                if let Some(source) = &from.config_map_ref {
                    config_maps.push(source.name.clone());
                }
                if let Some(source) = &from.secret_ref {
                    secrets.push(source.name.clone());
                }
            }
        }
        config_maps.sort();
        config_maps.dedup();
        secrets.sort();
        secrets.dedup();
        let config_map_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
        for name in config_maps {
            if let Ok(Some(config_map)) = config_map_api.get_opt(&name).await {
                objects.config_maps.insert(
                    (namespace.clone(), name),
                    config_map.data.unwrap_or_default(),
                );
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        for name in secrets {
            if let Ok(Some(secret)) = secret_api.get_opt(&name).await {
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| (key, value.0))
                    .collect();
                objects.secrets.insert((namespace.clone(), name), data);
            }
        }
        objects
    }

    /// Makes the container's image present per its pull policy; returns the
    /// image reference to create from, or the waiting reason.
    async fn ensure_image(
        &self,
        pod: &Pod,
        container: &Container,
    ) -> Result<String, WaitingReason> {
        let image = container.image.clone().unwrap_or_default();
        let policy = container.image_pull_policy.clone().unwrap_or_else(|| {
            if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':') {
                "Always".to_string()
            } else {
                "IfNotPresent".to_string()
            }
        });
        let present = match self
            .runtime
            .image_status(cri::image_spec(&image), false)
            .await
        {
            Ok(status) => status.image.map(|image| image.id),
            Err(error) => {
                return Err(WaitingReason {
                    reason: "ErrImageInspect".into(),
                    message: format!("Failed to inspect image \"{image}\": {}", error.message()),
                });
            }
        };
        match (&present, policy.as_str()) {
            (Some(id), "IfNotPresent") | (Some(id), "Never") => {
                return Ok(id.clone());
            }
            (None, "Never") => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.recorder
                    .warning(pod, "ErrImageNeverPull", message.clone());
                return Err(WaitingReason {
                    reason: "ErrImageNeverPull".into(),
                    message,
                });
            }
            _ => {}
        }
        let backoff_key = (spec::pod_uid(pod).to_string(), image.clone());
        // Always pulls, but a locally built image (offline) that is present
        // and cannot be pulled is still used, as k3s's airgap images are.
        if let Some((until, _)) = self.state().image_backoff.get(&backoff_key).copied()
            && Instant::now() < until
        {
            if let Some(id) = present {
                return Ok(id);
            }
            let message = format!("Back-off pulling image \"{image}\"");
            self.recorder.normal(pod, "BackOff", message.clone());
            return Err(WaitingReason {
                reason: "ImagePullBackOff".into(),
                message,
            });
        }
        self.recorder
            .normal(pod, "Pulling", format!("Pulling image \"{image}\""));
        let started = std::time::Instant::now();
        let auth = self.pull_auth(pod, &image).await;
        match self
            .runtime
            .pull_image(cri::image_spec(&image), auth, None)
            .await
        {
            Ok(reference) => {
                self.state().image_backoff.remove(&backoff_key);
                self.recorder.normal(
                    pod,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
                Ok(reference)
            }
            Err(_) if present.is_some() => Ok(present.unwrap_or_default()),
            Err(error) => {
                let delay = {
                    let mut state = self.state();
                    let delay = state
                        .image_backoff
                        .get(&backoff_key)
                        .map_or(IMAGE_BACKOFF_INITIAL, |(_, last)| {
                            (*last * 2).min(IMAGE_BACKOFF_MAX)
                        });
                    state
                        .image_backoff
                        .insert(backoff_key.clone(), (Instant::now() + delay, delay));
                    delay
                };
                let _ = delay;
                let message = format!("Failed to pull image \"{image}\": {}", error.message());
                self.recorder.warning(pod, "Failed", message.clone());
                self.recorder
                    .warning(pod, "Failed", "Error: ErrImagePull".to_string());
                Err(WaitingReason {
                    reason: "ErrImagePull".into(),
                    message,
                })
            }
        }
    }

    /// Creates and starts one container in `sandbox_id`.
    fn record_hook_events(&self, pod: &Pod, events: &[prober::PodEvent]) {
        for event in events {
            self.recorder
                .warning(pod, event.reason, event.message.clone());
        }
    }

    async fn start_container(
        &self,
        pod: &Pod,
        start: &ContainerStart,
        sandbox_id: &str,
        sandbox_config: &api::PodSandboxConfig,
        inputs: &LaunchInputs<'_>,
    ) -> Result<(), WaitingReason> {
        let LaunchInputs {
            pod_ips,
            env_objects: objects,
            volume_objects,
        } = *inputs;
        let Some((_, container)) = spec::find_container(pod, &start.name) else {
            return Ok(());
        };
        let mounts = self
            .container_mounts(pod, container, volume_objects)
            .map_err(|message| {
                self.recorder.warning(pod, "FailedMount", message.clone());
                WaitingReason {
                    reason: "ContainerCreating".into(),
                    message,
                }
            })?;
        let image_ref = self.ensure_image(pod, container).await?;
        let image_user = self
            .runtime
            .image_status(cri::image_spec(&image_ref), false)
            .await
            .ok()
            .and_then(|status| status.image)
            .map(|image| (image.uid.map(|uid| uid.value), image.username))
            .unwrap_or((None, String::new()));
        if let Err(message) =
            cri_config::verify_run_as_non_root(pod, container, image_user.0, &image_user.1)
        {
            self.recorder
                .warning(pod, "Failed", format!("Error: {message}"));
            return Err(WaitingReason {
                reason: "CreateContainerConfigError".into(),
                message,
            });
        }
        let resolved = {
            let host_ips = vec![self.node_ip.clone()];
            let env_context = EnvContext {
                pod_ips,
                host_ips: &host_ips,
                node_allocatable: &self.node_allocatable,
                objects,
            };
            expansion::resolve_env(pod, container, &env_context)
        };
        let resolved = resolved.map_err(|error| {
            let message = error.to_string();
            self.recorder
                .warning(pod, "Failed", format!("Error: {message}"));
            WaitingReason {
                reason: "CreateContainerConfigError".into(),
                message,
            }
        })?;
        for skipped in &resolved.skipped {
            self.recorder.warning(
                pod,
                "InvalidEnvironmentVariableNames",
                skipped.event_message(spec::pod_namespace(pod)),
            );
        }
        let (command, args) = expansion::expand_command_and_args(container, &resolved.vars);
        let computed =
            resources::linux_container_resources(pod, container, &self.resource_settings);
        let launch = ContainerLaunch {
            container,
            attempt: start.restart_count.max(0) as u32,
            image_ref,
            command,
            args,
            env: resolved
                .vars
                .iter()
                .map(|var| (var.name.clone(), var.value.clone()))
                .collect(),
            mounts,
            resources: api::LinuxContainerResources {
                cpu_period: computed.cpu_period,
                cpu_quota: computed.cpu_quota,
                cpu_shares: computed.cpu_shares,
                memory_limit_in_bytes: computed.memory_limit_in_bytes,
                oom_score_adj: computed.oom_score_adj,
                unified: computed.unified.into_iter().collect(),
                ..Default::default()
            },
            spec_hash: format!("{:x}", spec::container_spec_hash(container)),
            restart_count: start.restart_count,
        };
        let config = cri_config::container_config(pod, &launch);
        let id = self
            .runtime
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
            .map_err(|error| {
                let message = error.message().to_string();
                self.recorder
                    .warning(pod, "Failed", format!("Error: {message}"));
                WaitingReason {
                    reason: "CreateContainerError".into(),
                    message,
                }
            })?;
        self.recorder.normal(
            pod,
            "Created",
            format!("Created container {}", container.name),
        );
        self.runtime.start_container(&id).await.map_err(|error| {
            let message = error.message().to_string();
            self.recorder.warning(
                pod,
                "Failed",
                format!(
                    "Error: failed to start container \"{}\": {message}",
                    container.name
                ),
            );
            WaitingReason {
                reason: "RunContainerError".into(),
                message,
            }
        })?;
        self.recorder.normal(
            pod,
            "Started",
            format!("Started container {}", container.name),
        );
        if let Some(handler) = container
            .lifecycle
            .as_ref()
            .and_then(|lifecycle| lifecycle.post_start.as_ref())
        {
            let outcome = probing::run_handler(
                handler,
                pod,
                container,
                &id,
                pod_ips.first().map(String::as_str),
                self.runtime.as_ref(),
                None,
            )
            .await;
            self.record_hook_events(pod, &outcome.pod_events);
            if let Err(message) = outcome.result {
                // As upstream: the container is killed and restarted per
                // policy; the event leaves the details out so secrets in
                // the hook's output stay off the server.
                self.recorder.warning(
                    pod,
                    "FailedPostStartHook",
                    prober::lifecycle::FAILED_POST_START_HOOK_MESSAGE.into(),
                );
                let _ = self
                    .runtime
                    .stop_container(&id, Duration::from_secs(2))
                    .await;
                return Err(WaitingReason {
                    reason: "PostStartHookError".into(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// Carries out `plan`; returns the start failures by container name.
    async fn apply(
        &self,
        pod: &Pod,
        plan: &PodActions,
        observed: &PodRuntimeState,
    ) -> HashMap<String, WaitingReason> {
        let mut failures = HashMap::new();
        let pod_ip = observed
            .newest_sandbox()
            .and_then(|sandbox| sandbox.ips.first().cloned());
        for kill in &plan.containers_to_kill {
            if !kill.message.is_empty() {
                self.recorder.normal(pod, "Killing", kill.message.clone());
            }
            let budget = Duration::from_secs(kill.grace_period_seconds.max(0) as u64);
            let started = Instant::now();
            // preStop runs within the grace period; the runtime gets what is
            // left, but never less than the minimum.
            let pre_stop = spec::find_container(pod, &kill.name).and_then(|(_, container)| {
                container
                    .lifecycle
                    .as_ref()
                    .and_then(|lifecycle| lifecycle.pre_stop.as_ref())
                    .map(|handler| (container, handler))
            });
            let running = observed.containers.iter().any(|record| {
                record.id == kill.container_id
                    && record.state == kubelet::runtime_state::ContainerRunState::Running
            });
            if let Some((container, handler)) = pre_stop
                && running
            {
                let outcome = probing::run_handler(
                    handler,
                    pod,
                    container,
                    &kill.container_id,
                    pod_ip.as_deref(),
                    self.runtime.as_ref(),
                    Some(budget),
                )
                .await;
                self.record_hook_events(pod, &outcome.pod_events);
                if let Err(message) = outcome.result {
                    tracing::info!(pod = %spec::pod_full_name(pod), container = %kill.name, %message, "preStop hook failed");
                    self.recorder.warning(
                        pod,
                        "FailedPreStopHook",
                        prober::lifecycle::FAILED_PRE_STOP_HOOK_MESSAGE.into(),
                    );
                }
            }
            let left = budget.saturating_sub(started.elapsed());
            let grace = left.max(Duration::from_secs(
                actions::MINIMUM_GRACE_PERIOD_SECONDS as u64,
            ));
            if let Err(error) = self.runtime.stop_container(&kill.container_id, grace).await
                && !error.is_not_found()
            {
                tracing::warn!(container = %kill.name, %error, "stopping a container");
            }
        }
        if plan.kill_pod {
            for sandbox in &plan.sandboxes_to_stop {
                if let Err(error) = self.runtime.stop_pod_sandbox(sandbox).await
                    && !error.is_not_found()
                {
                    tracing::warn!(%sandbox, %error, "stopping a sandbox");
                }
            }
        }
        for id in &plan.containers_to_remove {
            let _ = self.runtime.remove_container(id).await;
        }
        if plan.init_containers_to_start.is_empty()
            && plan.containers_to_start.is_empty()
            && !plan.create_sandbox
        {
            return failures;
        }

        if plan.create_sandbox
            && let Some(message) = cri_config::missing_cluster_dns(pod, &self.dns)
        {
            self.recorder.warning(pod, "MissingClusterDNS", message);
        }
        let cgroup_parent = resources::pod_cgroup_name(pod).to_cgroupfs();
        let sandbox_config = cri_config::sandbox_config(
            pod,
            plan.sandbox_attempt,
            &self.logs_root,
            &self.dns,
            &cgroup_parent,
        );
        let sandbox_id = if plan.create_sandbox {
            if let Err(error) = std::fs::create_dir_all(&sandbox_config.log_directory) {
                tracing::warn!(%error, "creating the pod's log directory");
            }
            match self
                .runtime
                .run_pod_sandbox(sandbox_config.clone(), "")
                .await
            {
                Ok(id) => id,
                Err(error) => {
                    self.recorder.warning(
                        pod,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {}", error.message()),
                    );
                    return failures;
                }
            }
        } else {
            match &plan.existing_sandbox_id {
                Some(id) => id.clone(),
                None => return failures,
            }
        };
        let pod_ips = match observe::observe_pod(self.runtime.as_ref(), spec::pod_uid(pod)).await {
            Ok(state) => state
                .sandboxes
                .iter()
                .find(|sandbox| sandbox.id == sandbox_id)
                .map(|sandbox| sandbox.ips.clone())
                .unwrap_or_default(),
            Err(_) => observed
                .newest_sandbox()
                .map(|sandbox| sandbox.ips.clone())
                .unwrap_or_default(),
        };
        let objects = self.env_objects(pod).await;
        let volume_objects = self.volume_objects(pod).await;
        // Init containers one at a time (the plan holds at most the next
        // one, or sidecars in order), then the regular containers.
        for start in plan
            .init_containers_to_start
            .iter()
            .chain(plan.containers_to_start.iter())
        {
            if let Err(reason) = self
                .start_container(
                    pod,
                    start,
                    &sandbox_id,
                    &sandbox_config,
                    &LaunchInputs {
                        pod_ips: &pod_ips,
                        env_objects: &objects,
                        volume_objects: &volume_objects,
                    },
                )
                .await
            {
                failures.insert(start.name.clone(), reason);
                if start.kind == ContainerKind::Init {
                    break;
                }
            }
        }
        failures
    }

    /// Writes the pod's status when it differs from what was last written.
    async fn report(&self, pod: &Pod, observed: &PodRuntimeState, terminal: bool) {
        let uid = spec::pod_uid(pod).to_string();
        let new_status = {
            let state = self.state();
            let empty = BTreeMap::new();
            let node_ips = [self.node_ip.clone()];
            let context = StatusContext {
                now: Timestamp::now(),
                runtime_name: "containerd",
                node_ips: &node_ips,
                probe_results: &state.probe_results,
                waiting_reasons: state.waiting.get(&uid).unwrap_or(&empty),
                pod_is_terminal: terminal,
            };
            status::pod_status(pod, observed, &context)
        };
        let old_status = self
            .state()
            .written
            .get(&uid)
            .cloned()
            .or_else(|| pod.status.clone())
            .unwrap_or_default();
        if !status::status_needs_write(&old_status, &new_status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), spec::pod_namespace(pod));
        let patch = json!({ "metadata": { "uid": uid }, "status": new_status });
        match pods
            .patch_status(
                spec::pod_name(pod),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                self.state().written.insert(uid, new_status);
            }
            Err(error) => {
                tracing::debug!(pod = %spec::pod_name(pod), %error, "writing the pod status");
            }
        }
    }

    /// A deleted pod whose containers are all stopped: remove it from the
    /// runtime and let the API server delete it for good.
    async fn finish_deletion(&self, pod: &Pod) -> bool {
        let uid = spec::pod_uid(pod).to_string();
        if self.tear_down(&uid, Duration::from_secs(0)).await.is_err() {
            return false;
        }
        self.remove_pod_files(&uid);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), spec::pod_namespace(pod));
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(spec::pod_name(pod), &params).await {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => true,
            Err(error) => {
                tracing::warn!(pod = %spec::pod_name(pod), %error, "deleting the pod");
                false
            }
        }
    }
}

fn not_found_ok(error: cri::CriError) -> Result<(), cri::CriError> {
    if error.is_not_found() {
        Ok(())
    } else {
        Err(error)
    }
}

fn all_stopped(state: &PodRuntimeState) -> bool {
    state
        .containers
        .iter()
        .all(|container| container.state == kubelet::runtime_state::ContainerRunState::Exited)
        && state
            .sandboxes
            .iter()
            .all(|sandbox| sandbox.state != kubelet::runtime_state::SandboxState::Ready)
}

#[async_trait::async_trait]
impl PodSyncer for NodeSyncer {
    async fn sync(&self, uid: &str, pod: Option<Arc<Pod>>) -> SyncOutcome {
        let Some(pod) = pod else {
            // Gone from the API: nothing may keep running.
            {
                let mut state = self.state();
                state.backoff.forget_pod(uid);
                state.waiting.remove(uid);
                state.written.remove(uid);
                state
                    .probe_workers
                    .retain(|(pod_uid, _, _), _| pod_uid != uid);
            }
            return match self.tear_down(uid, Duration::from_secs(2)).await {
                Ok(()) => {
                    self.remove_pod_files(uid);
                    SyncOutcome::Finished
                }
                Err(error) => {
                    tracing::warn!(%uid, %error, "removing a deleted pod's containers");
                    SyncOutcome::WakeAt(Instant::now() + Duration::from_secs(2))
                }
            };
        };
        let observed = match observe::observe_pod(self.runtime.as_ref(), uid).await {
            Ok(observed) => observed,
            Err(error) => {
                tracing::warn!(%uid, %error, "observing the runtime");
                return SyncOutcome::WakeAt(Instant::now() + Duration::from_secs(1));
            }
        };
        if spec::is_being_deleted(&pod) && all_stopped(&observed) {
            return if self.finish_deletion(&pod).await {
                SyncOutcome::Idle
            } else {
                SyncOutcome::WakeAt(Instant::now() + Duration::from_secs(1))
            };
        }
        let now = Timestamp::now();
        let plan = {
            let state = self.state();
            actions::compute_pod_actions(
                &pod,
                &observed,
                &ActionsContext {
                    now,
                    probe_results: &state.probe_results,
                    backoff: &state.backoff,
                },
            )
        };
        for wait in &plan.backing_off {
            self.recorder
                .warning(pod.as_ref(), "BackOff", wait.event_message.clone());
        }
        let failures = self.apply(&pod, &plan, &observed).await;
        {
            let mut state = self.state();
            state.backoff.record_starts(&plan, now);
            let waiting = state.waiting.entry(uid.to_string()).or_default();
            waiting.clear();
            waiting.extend(plan.waiting_reasons());
            waiting.extend(failures.clone());
        }
        let after = match observe::observe_pod(self.runtime.as_ref(), uid).await {
            Ok(after) => after,
            Err(_) => observed,
        };
        self.collect_dead_containers(&after).await;
        let (probe_wake, probes_changed) = self.run_probes(&pod, &after).await;
        // Volumes that follow API objects are refreshed on a period, as
        // upstream's sync loop does (it uses one minute).
        let refresh = (volumes::has_projected_content(&pod)
            && !spec::is_being_deleted(&pod)
            && !after.containers.is_empty())
        .then(|| Instant::now() + VOLUME_REFRESH_PERIOD);
        if refresh.is_some() {
            self.refresh_volumes(&pod).await;
        }
        let terminal = all_stopped(&after)
            && !after.containers.is_empty()
            && plan.init_containers_to_start.is_empty()
            && plan.containers_to_start.is_empty()
            && plan.backing_off.is_empty()
            && (spec::is_being_deleted(&pod)
                || spec::restart_policy(&pod) != spec::RestartPolicy::Always);
        self.report(&pod, &after, terminal).await;
        let next = plan
            .backing_off
            .iter()
            .map(|wait| Instant::now() + wait.delay)
            .chain((!failures.is_empty()).then(|| Instant::now() + IMAGE_BACKOFF_INITIAL))
            .chain(probe_wake)
            .chain(refresh)
            // A liveness failure restarts the container on the next sync.
            .chain(probes_changed.then(Instant::now))
            .min();
        match next {
            Some(at) => SyncOutcome::WakeAt(at),
            None => SyncOutcome::Idle,
        }
    }

    async fn runtime_fingerprints(&self) -> anyhow::Result<HashMap<String, u64>> {
        Ok(observe::fingerprints(self.runtime.as_ref()).await?)
    }
}
