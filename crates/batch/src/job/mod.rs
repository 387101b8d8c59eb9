//! The Job controller: runs a Job's pods to completion with parallelism, completions, Indexed mode, backoff, deadlines, suspension and the pod failure policy, tracking finished pods through the `batch.kubernetes.io/job-tracking` finalizer like kube-controller-manager v1.32.

pub mod pods;
pub mod policy;
mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use client::owners::{controller_of, controller_reference};
use client::{Change, EventRecorder, Informers, WorkQueue};
use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::json;

use crate::clock::{Clock, ShutDownOnDrop, SystemClock, Timers};
use crate::intervals::Intervals;
use pods::*;
use policy::{
    BackoffRecord, index_backoff_remaining, is_index_failed, match_pod_failure_policy,
    match_success_policy, new_index_failure_counts,
};
use status::*;
pub use status::{finished_condition_type, is_finished};

/// At most this many pod UIDs wait in `status.uncountedTerminatedPods`.
const MAX_UNCOUNTED_PODS: usize = 500;
/// At most this many pods are created or deleted in one sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// Expectations older than this are considered met (a lost watch event).
const EXPECTATIONS_TTL: Duration = Duration::from_secs(300);
const CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// The Job controller's options.
#[derive(Clone)]
pub struct JobConfig {
    /// Reads the time for start times, deadlines, backoff and conditions,
    /// and measures the delays before syncing again.
    pub clock: Arc<dyn Clock>,
    /// The delay before replacing a pod after the first failure; doubles
    /// with each further consecutive failure (upstream: 10 s).
    pub pod_failure_backoff: Duration,
    /// The longest such delay (upstream: 10 min).
    pub max_pod_failure_backoff: Duration,
    /// How long pod events are batched before the Job syncs (upstream: 1 s).
    pub sync_batch_period: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            clock: Arc::new(SystemClock),
            pod_failure_backoff: Duration::from_secs(10),
            max_pod_failure_backoff: Duration::from_secs(600),
            sync_batch_period: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Copy)]
struct Expectation {
    adds: i64,
    deletes: i64,
    set_at: Instant,
}

struct Controller {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    orphan_queue: WorkQueue<String>,
    recorder: EventRecorder,
    config: JobConfig,
    expectations: Mutex<HashMap<String, Expectation>>,
    /// Pods whose finalizer removal was sent but not yet seen, per job.
    finalizer_expectations: Mutex<HashMap<String, HashSet<String>>>,
    backoff: Mutex<HashMap<String, BackoffRecord>>,
    timers: Timers,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn key_of(namespace: Option<&str>, name: Option<&str>) -> String {
    format!(
        "{}/{}",
        namespace.unwrap_or_default(),
        name.unwrap_or_default()
    )
}

fn job_key(job: &Job) -> String {
    key_of(
        job.metadata.namespace.as_deref(),
        job.metadata.name.as_deref(),
    )
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Runs the Job controller until the returned future is dropped.
pub async fn run(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    config: JobConfig,
) -> anyhow::Result<()> {
    let job_informer = informers.informer::<Job>();
    let pod_informer = informers.informer::<Pod>();
    let queue = WorkQueue::new();
    let controller = Arc::new(Controller {
        recorder: EventRecorder::new(client.clone(), "job-controller"),
        client,
        jobs: job_informer.store().clone(),
        pods: pod_informer.store().clone(),
        timers: Timers::new(config.clock.clone(), queue.clone()),
        queue,
        orphan_queue: WorkQueue::new(),
        config,
        expectations: Mutex::new(HashMap::new()),
        finalizer_expectations: Mutex::new(HashMap::new()),
        backoff: Mutex::new(HashMap::new()),
    });
    let _stop = ShutDownOnDrop(vec![
        controller.queue.clone(),
        controller.orphan_queue.clone(),
    ]);
    job_informer.wait_synced().await;
    pod_informer.wait_synced().await;
    let mut job_changes = job_informer.subscribe();
    let mut pod_changes = pod_informer.subscribe();
    let job_events = {
        let controller = controller.clone();
        async move {
            while let Some(change) = job_changes.recv().await {
                controller.on_job_change(change);
            }
        }
    };
    let pod_events = {
        let controller = controller.clone();
        async move {
            while let Some(change) = pod_changes.recv().await {
                controller.on_pod_change(change);
            }
        }
    };
    let sync_workers = {
        let controller = controller.clone();
        client::workqueue::run_workers(controller.queue.clone(), workers, move |key: String| {
            let controller = controller.clone();
            async move { controller.sync(&key).await.map(|()| None) }
        })
    };
    let orphan_worker = {
        let controller = controller.clone();
        client::workqueue::run_workers(controller.orphan_queue.clone(), 1, move |key: String| {
            let controller = controller.clone();
            async move { controller.sync_orphan_pod(&key).await.map(|()| None) }
        })
    };
    futures::join!(job_events, pod_events, sync_workers, orphan_worker);
    Ok(())
}

impl Controller {
    // ----- event handlers --------------------------------------------------

    fn enqueue_batched(&self, key: String) {
        self.queue.add_after(key, self.config.sync_batch_period);
    }

    fn resolve_controller(&self, pod: &Pod) -> Option<Arc<Job>> {
        let owner = controller_of(&pod.metadata)?;
        if owner.kind != "Job" {
            return None;
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let job = self
            .jobs
            .get(&ObjectRef::new(&owner.name).within(namespace))?;
        (job.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(job)
    }

    /// Jobs in the pod's namespace whose selector matches it (adoption).
    fn jobs_selecting(&self, pod: &Pod) -> Vec<Arc<Job>> {
        self.jobs
            .state()
            .into_iter()
            .filter(|job| job.metadata.namespace == pod.metadata.namespace)
            .filter(|job| selector_matches(&job_selector(job), pod.metadata.labels.as_ref()))
            .collect()
    }

    fn on_pod_change(&self, change: Change<Pod>) {
        match change {
            Change::Applied { old: None, new } => {
                if new.metadata.deletion_timestamp.is_some() {
                    // Already being deleted on a restart: not a creation.
                    return self.on_pod_deleted(&new, false);
                }
                if let Some(job) = self.resolve_controller(&new) {
                    let key = job_key(&job);
                    self.creation_observed(&key);
                    return self.enqueue_batched(key);
                }
                if controller_of(&new.metadata).is_none() {
                    if has_tracking_finalizer(&new) {
                        self.orphan_queue.add(pod_key(&new));
                    }
                    for job in self.jobs_selecting(&new) {
                        self.enqueue_batched(job_key(&job));
                    }
                }
            }
            Change::Applied {
                old: Some(old),
                new,
            } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if new.metadata.deletion_timestamp.is_some() {
                    return self.on_pod_deleted(&new, false);
                }
                let finalizer_removed = !has_tracking_finalizer(&new);
                let uid = new.metadata.uid.clone().unwrap_or_default();
                let old_ref = controller_of(&old.metadata);
                let new_ref = controller_of(&new.metadata);
                let ref_changed = old_ref != new_ref;
                if ref_changed
                    && old_ref.is_some()
                    && let Some(job) = self.resolve_controller(&old)
                {
                    let key = job_key(&job);
                    if finalizer_removed {
                        self.finalizer_removal_observed(&key, &uid);
                    }
                    self.enqueue_batched(key);
                }
                if new_ref.is_some() {
                    if let Some(job) = self.resolve_controller(&new) {
                        let key = job_key(&job);
                        if finalizer_removed {
                            self.finalizer_removal_observed(&key, &uid);
                        }
                        self.enqueue_batched(key);
                    }
                    return;
                }
                if has_tracking_finalizer(&new) {
                    self.orphan_queue.add(pod_key(&new));
                }
                if ref_changed || old.metadata.labels != new.metadata.labels {
                    for job in self.jobs_selecting(&new) {
                        self.enqueue_batched(job_key(&job));
                    }
                }
            }
            Change::Deleted(pod) => self.on_pod_deleted(&pod, true),
        }
    }

    fn on_pod_deleted(&self, pod: &Pod, finally: bool) {
        let has_finalizer = has_tracking_finalizer(pod);
        if controller_of(&pod.metadata).is_none() {
            if has_finalizer {
                self.orphan_queue.add(pod_key(pod));
            }
            return;
        }
        let job = match self.resolve_controller(pod) {
            Some(job) if !is_finished(&job) => job,
            _ => {
                if has_finalizer {
                    self.orphan_queue.add(pod_key(pod));
                }
                return;
            }
        };
        let key = job_key(&job);
        self.deletion_observed(&key);
        if finally || !has_finalizer {
            self.finalizer_removal_observed(&key, pod.metadata.uid.as_deref().unwrap_or_default());
        }
        self.enqueue_batched(key);
    }

    fn on_job_change(&self, change: Change<Job>) {
        match change {
            Change::Applied { old: None, new } => self.queue.add(job_key(&new)),
            Change::Applied {
                old: Some(old),
                new,
            } => {
                let key = job_key(&new);
                if old.metadata.generation == new.metadata.generation {
                    self.enqueue_batched(key.clone());
                } else {
                    self.queue.add(key.clone());
                }
                if is_finished(&new) {
                    self.cleanup_pod_finalizers(&new);
                }
                let spec = new.spec.as_ref();
                if let (Some(start), Some(deadline)) = (
                    new.status.as_ref().and_then(|s| s.start_time.as_ref()),
                    spec.and_then(|s| s.active_deadline_seconds),
                ) {
                    let old_deadline = old.spec.as_ref().and_then(|s| s.active_deadline_seconds);
                    if old_deadline != Some(deadline) {
                        let delay = deadline_remaining(self.config.clock.now(), start.0, deadline);
                        self.timers.requeue_after(key, delay);
                    }
                }
            }
            Change::Deleted(job) => {
                self.queue.add(job_key(&job));
                self.cleanup_pod_finalizers(&job);
            }
        }
    }

    /// Queues the job's pods that still carry the tracking finalizer for
    /// its removal by the orphan worker.
    fn cleanup_pod_finalizers(&self, job: &Job) {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        for pod in self.pods.state() {
            if pod.metadata.namespace == job.metadata.namespace
                && client::owners::is_controlled_by(&pod.metadata, &uid)
                && has_tracking_finalizer(&pod)
            {
                self.orphan_queue.add(pod_key(&pod));
            }
        }
    }

    // ----- expectations ----------------------------------------------------

    fn expect(&self, key: &str, adds: i64, deletes: i64) {
        lock(&self.expectations).insert(
            key.to_string(),
            Expectation {
                adds,
                deletes,
                set_at: Instant::now(),
            },
        );
    }

    fn creation_observed(&self, key: &str) {
        if let Some(e) = lock(&self.expectations).get_mut(key) {
            e.adds -= 1;
        }
    }

    fn deletion_observed(&self, key: &str) {
        if let Some(e) = lock(&self.expectations).get_mut(key) {
            e.deletes -= 1;
        }
    }

    fn satisfied_expectations(&self, key: &str) -> bool {
        match lock(&self.expectations).get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes <= 0) || e.set_at.elapsed() > EXPECTATIONS_TTL,
        }
    }

    fn finalizer_removal_observed(&self, key: &str, uid: &str) {
        if let Some(uids) = lock(&self.finalizer_expectations).get_mut(key) {
            uids.remove(uid);
        }
    }

    fn expected_finalizer_removals(&self, key: &str) -> HashSet<String> {
        lock(&self.finalizer_expectations)
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    // ----- API actions -----------------------------------------------------

    fn pod_api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn remove_tracking_finalizer(&self, pod: &Pod) -> Result<(), kube::Error> {
        if !has_tracking_finalizer(pod) {
            return Ok(());
        }
        let patch =
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
        self.pod_api(pod.metadata.namespace.as_deref().unwrap_or_default())
            .patch(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map(|_| ())
    }

    /// Deletes a pod as upstream's PodControl does, with its event.
    async fn delete_pod(&self, job: &Job, pod: &Pod) -> Result<(), kube::Error> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match self
            .pod_api(pod.metadata.namespace.as_deref().unwrap_or_default())
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                self.recorder
                    .normal(job, "SuccessfulDelete", format!("Deleted pod: {name}"));
                Ok(())
            }
            Err(error) => {
                if !is_not_found(&error) {
                    self.recorder
                        .warning(job, "FailedDelete", format!("Error deleting: {error}"));
                }
                Err(error)
            }
        }
    }

    async fn update_status(&self, job: &Job) -> anyhow::Result<Job> {
        let api: Api<Job> = Api::namespaced(
            self.client.clone(),
            job.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = job.metadata.name.as_deref().unwrap_or_default();
        Ok(api
            .replace_status(name, &PostParams::default(), job)
            .await?)
    }

    // ----- orphans -----------------------------------------------------------

    /// Removes the tracking finalizer from a pod no unfinished Job owns.
    async fn sync_orphan_pod(&self, key: &str) -> anyhow::Result<()> {
        let (namespace, name) = split_key(key);
        let Some(pod) = self.pods.get(&ObjectRef::new(name).within(namespace)) else {
            return Ok(());
        };
        if let Some(owner) = controller_of(&pod.metadata) {
            if owner.kind != "Job" || owner.api_version != "batch/v1" {
                return Ok(());
            }
            if let Some(job) = self.resolve_controller(&pod)
                && (managed_externally(&job) || !is_finished(&job))
            {
                return Ok(());
            }
        }
        match self.remove_tracking_finalizer(&pod).await {
            Err(error) if !is_not_found(&error) => Err(error.into()),
            _ => Ok(()),
        }
    }

    // ----- sync --------------------------------------------------------------

    /// The pods this Job manages: its controlled pods that still match the
    /// selector, plus orphans it adopts (with the tracking finalizer);
    /// controlled pods that no longer match are released.
    async fn claim_pods(&self, job: &Job) -> anyhow::Result<Vec<Pod>> {
        let selector = job_selector(job);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let mut claimed = Vec::new();
        let mut adoption_checked = false;
        for pod in self.pods.state() {
            if pod.metadata.namespace != job.metadata.namespace {
                continue;
            }
            let matches = selector_matches(&selector, pod.metadata.labels.as_ref());
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let api = self.pod_api(pod.metadata.namespace.as_deref().unwrap_or_default());
            match controller_of(&pod.metadata) {
                Some(owner) if owner.uid != uid => {}
                Some(_) if matches => claimed.push((*pod).clone()),
                Some(_) => {
                    if job.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": uid}],
                        "uid": pod_uid,
                    }});
                    if let Err(error) = api
                        .patch(&pod_name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                        && !is_not_found(&error)
                    {
                        return Err(error.into());
                    }
                }
                None => {
                    if !matches
                        || job.metadata.deletion_timestamp.is_some()
                        || pod.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    if !adoption_checked {
                        // A quorum read: never adopt for a Job being deleted.
                        let fresh = Api::<Job>::namespaced(
                            self.client.clone(),
                            job.metadata.namespace.as_deref().unwrap_or_default(),
                        )
                        .get(job.metadata.name.as_deref().unwrap_or_default())
                        .await?;
                        if fresh.metadata.uid != job.metadata.uid {
                            anyhow::bail!("original Job {} is gone", job_key(job));
                        }
                        if fresh.metadata.deletion_timestamp.is_some() {
                            anyhow::bail!("Job {} is being deleted", job_key(job));
                        }
                        adoption_checked = true;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [controller_reference(job)],
                        "uid": pod_uid,
                        "finalizers": [TRACKING_FINALIZER],
                    }});
                    match api
                        .patch(&pod_name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                    {
                        Ok(_) => {
                            let mut adopted = (*pod).clone();
                            if !has_tracking_finalizer(&adopted) {
                                adopted
                                    .metadata
                                    .finalizers
                                    .get_or_insert_with(Vec::new)
                                    .push(TRACKING_FINALIZER.into());
                            }
                            claimed.push(adopted);
                        }
                        Err(error) if is_not_found(&error) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
        Ok(claimed)
    }

    async fn sync(self: &Arc<Self>, key: &str) -> anyhow::Result<()> {
        let (namespace, name) = split_key(key);
        let Some(shared) = self.jobs.get(&ObjectRef::new(name).within(namespace)) else {
            lock(&self.expectations).remove(key);
            lock(&self.finalizer_expectations).remove(key);
            lock(&self.backoff).remove(key);
            return Ok(());
        };
        if managed_externally(&shared) {
            return Ok(());
        }
        let mut job = (*shared).clone();
        if is_finished(&job) {
            lock(&self.backoff).remove(key);
            return Ok(());
        }
        let mode = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref());
        if mode.is_some_and(|m| m != "NonIndexed" && m != "Indexed") {
            self.recorder.warning(
                &job,
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown".into(),
            );
            return Ok(());
        }
        let now = self.config.clock.now();
        let status = job.status.get_or_insert_with(Default::default);
        status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);

        // Checked before the pods are read, so a pod created meanwhile
        // defers the sync instead of being missed.
        let satisfied = self.satisfied_expectations(key);
        let pods = self.claim_pods(&job).await?;
        let expected_removals = self.expected_finalizer_removals(key);
        let uncounted = Uncounted::of(&job);
        let active_pods: Vec<&Pod> = pods.iter().filter(|p| is_active(p)).collect();
        let mut ready = active_pods.iter().filter(|p| is_ready(p)).count() as i32;
        let mut terminating = pods.iter().filter(|p| is_terminating(p)).count() as i32;
        let mut active = active_pods.len() as i32;

        let new_succeeded =
            new_finished_pods(&job, &pods, &uncounted.succeeded, &expected_removals, |p| {
                is_succeeded(p)
            });
        let new_failed =
            new_finished_pods(&job, &pods, &uncounted.failed, &expected_removals, |p| {
                is_failed(p, &job)
            });
        let spec = job.spec.clone().unwrap_or_default();
        let failure_policy = spec.pod_failure_policy.as_ref();
        let counted_new_failures = new_failed
            .iter()
            .filter(|p| match_pod_failure_policy(failure_policy, p).counts)
            .count() as i32;
        let status = job.status.as_ref().cloned().unwrap_or_default();
        let mut succeeded = status.succeeded.unwrap_or(0)
            + new_succeeded.len() as i32
            + uncounted.succeeded.len() as i32;
        let failed =
            status.failed.unwrap_or(0) + counted_new_failures + uncounted.failed.len() as i32;
        let suspended = spec.suspend == Some(true);
        if status.start_time.is_none() && !suspended {
            job.status.get_or_insert_with(Default::default).start_time = Some(Time(now));
        }
        let new_backoff = lock(&self.backoff)
            .get(key)
            .cloned()
            .unwrap_or_default()
            .after(&new_succeeded, &new_failed);

        let mut finished = find_condition(&job, SUCCESS_CRITERIA_MET)
            .filter(|c| c.status == "True")
            .cloned();
        if finished.is_none() {
            if let Some(target) =
                find_condition(&job, FAILURE_TARGET).filter(|c| c.status == "True")
            {
                finished = Some(condition(
                    FAILED,
                    target.reason.as_deref().unwrap_or_default(),
                    target.message.as_deref().unwrap_or_default(),
                    now,
                ));
            } else if let Some(message) = pods
                .iter()
                .filter(|p| is_failed(p, &job))
                .find_map(|p| match_pod_failure_policy(failure_policy, p).fail_job)
            {
                finished = Some(condition(FAILURE_TARGET, "PodFailurePolicy", &message, now));
            }
        }
        if finished.is_none() {
            let backoff_limit = spec.backoff_limit.unwrap_or(6);
            let start_time = job
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            if failed > backoff_limit || past_backoff_limit_on_failure(&job, &pods) {
                finished = Some(condition(
                    FAILURE_TARGET,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    now,
                ));
            } else if let (Some(deadline), Some(start), false) =
                (spec.active_deadline_seconds, start_time, suspended)
            {
                let remaining = deadline_remaining(now, start, deadline);
                if remaining.is_zero() {
                    finished = Some(condition(
                        FAILURE_TARGET,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                        now,
                    ));
                } else {
                    self.timers.requeue_after(key.to_string(), remaining);
                }
            }
        }

        let indexed = is_indexed(&job);
        let completions = spec.completions;
        let mut prev_succeeded_indexes = Intervals::default();
        let mut succeeded_indexes = Intervals::default();
        let mut failed_indexes: Option<Intervals> = None;
        let mut delayed: HashMap<u32, &Pod> = HashMap::new();
        if indexed {
            let total = completions.unwrap_or(0).max(0) as u32;
            prev_succeeded_indexes = Intervals::parse(
                status.completed_indexes.as_deref().unwrap_or_default(),
                total,
            );
            succeeded_indexes = prev_succeeded_indexes.clone();
            for pod in &pods {
                if is_succeeded(pod)
                    && has_tracking_finalizer(pod)
                    && let Some(index) = valid_index(pod, &job)
                {
                    succeeded_indexes.insert(index);
                }
            }
            succeeded = succeeded_indexes.total() as i32;
            if has_backoff_limit_per_index(&job) {
                let mut failed =
                    Intervals::parse(status.failed_indexes.as_deref().unwrap_or_default(), total);
                for pod in &pods {
                    if has_tracking_finalizer(pod)
                        && let Some(index) = valid_index(pod, &job)
                        && is_index_failed(&job, pod)
                    {
                        failed.insert(index);
                    }
                }
                if finished.is_none() {
                    let failed_count = failed.total() as i32;
                    if spec
                        .max_failed_indexes
                        .is_some_and(|max| failed_count > max)
                    {
                        finished = Some(condition(
                            FAILURE_TARGET,
                            "MaxFailedIndexesExceeded",
                            "Job has exceeded the specified maximal number of failed indexes",
                            now,
                        ));
                    } else if failed_count > 0
                        && failed_count + succeeded_indexes.total() as i32 >= total as i32
                    {
                        finished = Some(condition(
                            FAILURE_TARGET,
                            "FailedIndexes",
                            "Job has failed indexes",
                            now,
                        ));
                    }
                }
                delayed = pods_with_delayed_deletion(
                    &job,
                    &pods,
                    &active_pods,
                    &succeeded_indexes,
                    &failed,
                    &expected_removals,
                );
                failed_indexes = Some(failed);
            }
            if finished.is_none()
                && let Some(message) =
                    match_success_policy(spec.success_policy.as_ref(), total, &succeeded_indexes)
            {
                finished = Some(condition(
                    SUCCESS_CRITERIA_MET,
                    "SuccessPolicy",
                    &message,
                    now,
                ));
            }
        }

        let mut suspend_changed = false;
        let mut manage_error: Option<anyhow::Error> = None;
        if finished.is_some() {
            let (deleted_ready, deleted, error) = self.delete_active_pods(&job, &active_pods).await;
            if deleted != active || !satisfied {
                // Pods or finalizers remain, or pods not yet in the cache.
                finished = None;
            }
            active -= deleted;
            terminating += deleted;
            ready -= deleted_ready;
            manage_error = error;
        } else {
            let mut managed = false;
            if satisfied && job.metadata.deletion_timestamp.is_none() {
                let plan = ManageInput {
                    key,
                    active_pods: &active_pods,
                    pods: &pods,
                    succeeded,
                    succeeded_indexes: &succeeded_indexes,
                    failed_indexes: failed_indexes.as_ref(),
                    delayed: &delayed,
                    terminating,
                    backoff: &new_backoff,
                };
                let outcome = self.manage_job(&job, plan).await;
                active = outcome.active;
                terminating += outcome.deleted;
                ready -= outcome.deleted_ready;
                manage_error = outcome.error;
                managed = true;
            }
            let complete = match completions {
                None => succeeded > 0 && active == 0,
                Some(completions) => succeeded >= completions && active == 0,
            };
            if complete {
                finished = Some(condition(
                    SUCCESS_CRITERIA_MET,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                ));
            } else if managed {
                let conditions = &mut job.status.get_or_insert_with(Default::default).conditions;
                if suspended {
                    if ensure_condition(
                        conditions,
                        "Suspended",
                        "True",
                        "JobSuspended",
                        "Job suspended",
                        now,
                    ) {
                        suspend_changed = true;
                        self.recorder
                            .normal(&job, "Suspended", "Job suspended".into());
                    }
                } else if ensure_condition(
                    conditions,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                ) {
                    suspend_changed = true;
                    self.recorder.normal(&job, "Resumed", "Job resumed".into());
                    // The deadline counts from the resume.
                    job.status.get_or_insert_with(Default::default).start_time = Some(Time(now));
                }
            }
        }

        let status = job.status.get_or_insert_with(Default::default);
        let needs_update = suspend_changed
            || active != status.active.unwrap_or(0)
            || Some(ready) != status.ready
            || Some(terminating) != status.terminating;
        status.active = (active != 0).then_some(active);
        status.ready = Some(ready);
        status.terminating = Some(terminating);
        let tracking = Tracking {
            key,
            pods: &pods,
            expected_removals: &expected_removals,
            uncounted: &uncounted,
            prev_succeeded_indexes: &prev_succeeded_indexes,
            succeeded_indexes,
            delayed_uids: delayed
                .values()
                .filter_map(|p| p.metadata.uid.clone())
                .collect(),
            failed_indexes,
            finished,
            terminating,
            new_backoff,
            now,
        };
        self.track_status_and_remove_finalizers(job, tracking, needs_update)
            .await
            .context("tracking status")?;
        match manage_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Deletes the active pods of a finishing Job, keeping their finalizers
    /// so they are counted before they go.
    async fn delete_active_pods(
        &self,
        job: &Job,
        active: &[&Pod],
    ) -> (i32, i32, Option<anyhow::Error>) {
        let results = join_all(active.iter().map(|pod| self.delete_pod(job, pod))).await;
        let mut deleted = 0;
        let mut deleted_ready = 0;
        let mut first_error = None;
        for (pod, result) in active.iter().zip(results) {
            match result {
                Err(error) if !is_not_found(&error) => {
                    first_error.get_or_insert(anyhow::Error::from(error));
                }
                _ => deleted += 1,
            }
            if is_ready(pod) {
                deleted_ready += 1;
            }
        }
        (deleted_ready, deleted, first_error)
    }

    /// Deletes pods the Job no longer wants: the finalizer first, so they
    /// are not counted as failures.
    async fn delete_job_pods(
        &self,
        job: &Job,
        key: &str,
        pods: &[&Pod],
    ) -> (i32, i32, Option<anyhow::Error>) {
        let results = join_all(pods.iter().map(|pod| async move {
            self.remove_tracking_finalizer(pod).await?;
            self.delete_pod(job, pod).await
        }))
        .await;
        let mut deleted = 0;
        let mut deleted_ready = 0;
        let mut first_error = None;
        for (pod, result) in pods.iter().zip(results) {
            match result {
                Ok(()) => deleted += 1,
                Err(error) => {
                    // The informer will not see this deletion.
                    self.deletion_observed(key);
                    if is_not_found(&error) {
                        deleted += 1;
                    } else {
                        first_error.get_or_insert(anyhow::Error::from(error));
                        continue;
                    }
                }
            }
            if is_ready(pod) {
                deleted_ready += 1;
            }
        }
        (deleted_ready, deleted, first_error)
    }

    /// Creates or deletes pods so the active count is what the Job wants,
    /// respecting suspension and the failure backoff.
    async fn manage_job(&self, job: &Job, input: ManageInput<'_>) -> ManageOutcome {
        let active = input.active_pods.len() as i32;
        let spec = job.spec.clone().unwrap_or_default();
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let key = input.key;
        if spec.suspend == Some(true) {
            let remove = active_pods_for_removal(job, input.active_pods, input.active_pods.len());
            self.expect(key, 0, remove.len() as i64);
            let (deleted_ready, deleted, error) = self.delete_job_pods(job, key, &remove).await;
            return ManageOutcome {
                active: active - deleted,
                deleted,
                deleted_ready,
                error,
            };
        }
        let want_active = match spec.completions {
            None if input.succeeded > 0 => active,
            None => parallelism,
            Some(completions) => (completions - input.succeeded).clamp(0, parallelism),
        };
        let remove_at_least = (active - want_active).max(0) as usize;
        let mut remove = active_pods_for_removal(job, input.active_pods, remove_at_least);
        remove.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !remove.is_empty() {
            self.expect(key, 0, remove.len() as i64);
            let (deleted_ready, deleted, error) = self.delete_job_pods(job, key, &remove).await;
            return ManageOutcome {
                active: active - deleted,
                deleted,
                deleted_ready,
                error,
            };
        }
        let terminating = if only_replace_failed_pods(job) {
            input.terminating
        } else {
            0
        };
        let mut diff = want_active - terminating - active;
        if diff <= 0 {
            return ManageOutcome::unchanged(active);
        }
        let per_index = has_backoff_limit_per_index(job);
        let (now, base, max) = (
            self.config.clock.now(),
            self.config.pod_failure_backoff,
            self.config.max_pod_failure_backoff,
        );
        // With per-index limits each index backs off on its own.
        let remaining = if per_index {
            Duration::ZERO
        } else {
            input.backoff.remaining(now, base, max)
        };
        if !remaining.is_zero() {
            let delay = remaining.max(self.config.sync_batch_period);
            self.timers.requeue_after(key.to_string(), delay);
            return ManageOutcome::unchanged(active);
        }
        diff = diff.min(MAX_POD_CREATE_DELETE_PER_SYNC as i32);
        let mut indexes: Vec<Option<u32>> = vec![None; diff as usize];
        if is_indexed(job) {
            let mut taken = input.succeeded_indexes.clone();
            for pod in input.active_pods {
                if let Some(index) = valid_index(pod, job) {
                    taken.insert(index);
                }
            }
            if only_replace_failed_pods(job) {
                for pod in input.pods.iter().filter(|p| is_terminating(p)) {
                    if let Some(index) = valid_index(pod, job) {
                        taken.insert(index);
                    }
                }
            }
            for index in input.failed_indexes.iter().flat_map(|f| f.iter()) {
                taken.insert(index);
            }
            let completions = spec.completions.unwrap_or(0).max(0) as u32;
            let mut pending = first_pending_indexes(&taken, diff as usize, completions);
            if per_index {
                let waits: Vec<Duration> = pending
                    .iter()
                    .map(|i| index_backoff_remaining(input.delayed.get(i).copied(), now, base, max))
                    .collect();
                let ready: Vec<u32> = pending
                    .iter()
                    .zip(&waits)
                    .filter(|(_, wait)| wait.is_zero())
                    .map(|(index, _)| *index)
                    .collect();
                if ready.is_empty()
                    && let Some(shortest) = waits.iter().min()
                {
                    let delay = (*shortest).max(self.config.sync_batch_period);
                    self.timers.requeue_after(key.to_string(), delay);
                    return ManageOutcome::unchanged(active);
                }
                pending = ready;
            }
            indexes = pending.into_iter().map(Some).collect();
            diff = indexes.len() as i32;
        }
        self.expect(key, i64::from(diff), 0);
        let owner = controller_reference(job);
        let mut created_active = active + diff;
        let mut first_error = None;
        // Slow start: batches of 1, 2, 4, ... stop at the first failure, so a
        // quota or admission error costs one request, not hundreds.
        let mut pending = indexes.into_iter();
        let mut batch_size = 1usize;
        let mut left = diff as usize;
        while left > 0 {
            let batch: Vec<Option<u32>> = pending.by_ref().take(batch_size.min(left)).collect();
            let size = batch.len();
            let results = join_all(batch.into_iter().map(|index| {
                let failures = index
                    .filter(|_| per_index)
                    .map(|index| new_index_failure_counts(job, input.delayed.get(&index).copied()));
                self.create_pod(job, &owner, index, failures)
            }))
            .await;
            let mut failed_in_batch = false;
            for result in results {
                if let Err(error) = result {
                    if is_namespace_terminating(&error) {
                        continue;
                    }
                    self.creation_observed(key);
                    created_active -= 1;
                    failed_in_batch = true;
                    first_error.get_or_insert(anyhow::Error::from(error));
                }
            }
            left -= size;
            if failed_in_batch && left > 0 {
                for _ in 0..left {
                    self.creation_observed(key);
                }
                created_active -= left as i32;
                break;
            }
            batch_size = (batch_size * 2).min(left.max(1));
        }
        ManageOutcome {
            active: created_active,
            deleted: 0,
            deleted_ready: 0,
            error: first_error,
        }
    }

    async fn create_pod(
        &self,
        job: &Job,
        owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
        index: Option<u32>,
        index_failures: Option<(u32, u32)>,
    ) -> Result<(), kube::Error> {
        let pod = new_pod(job, owner.clone(), index, index_failures);
        match self
            .pod_api(job.metadata.namespace.as_deref().unwrap_or_default())
            .create(&PostParams::default(), &pod)
            .await
        {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                self.recorder
                    .normal(job, "SuccessfulCreate", format!("Created pod: {name}"));
                Ok(())
            }
            Err(error) => {
                if !is_namespace_terminating(&error) {
                    self.recorder
                        .warning(job, "FailedCreate", format!("Error creating: {error}"));
                }
                Err(error)
            }
        }
    }

    /// Counts finished pods through `status.uncountedTerminatedPods`:
    /// records them there, removes their finalizers, then moves them to the
    /// counters; finally adds the terminal condition once nothing is left
    /// uncounted or terminating.
    async fn track_status_and_remove_finalizers(
        &self,
        mut job: Job,
        mut t: Tracking<'_>,
        mut needs_flush: bool,
    ) -> anyhow::Result<()> {
        let indexed = is_indexed(&job);
        let mut pods: Vec<&Pod> = t.pods.iter().collect();
        if indexed {
            pods.sort_by_key(|p| completion_index(p).map_or(i64::MAX, i64::from));
        }
        let mut with_finalizer: HashSet<String> = pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter_map(|p| p.metadata.uid.clone())
            .filter(|uid| !t.expected_removals.contains(uid))
            .collect();
        let job_for_rules = job.clone();
        let status = job.status.get_or_insert_with(Default::default);
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        let failure_policy = job.spec.as_ref().and_then(|s| s.pod_failure_policy.clone());
        let completions = job
            .spec
            .as_ref()
            .and_then(|s| s.completions)
            .unwrap_or(0)
            .max(0) as u32;
        let job_deleting = job.metadata.deletion_timestamp.is_some();
        let mut to_remove: Vec<&Pod> = Vec::new();
        let mut new_succeeded_indexes = Vec::new();
        let mut reached_max = false;
        for pod in pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if !has_tracking_finalizer(pod) || t.expected_removals.contains(&uid) {
                continue;
            }
            let considered_failed = is_failed(pod, &job_for_rules);
            let removable = job_deleting
                || t.finished.is_some()
                || is_succeeded(pod)
                || (considered_failed && !t.delayed_uids.contains(&uid));
            if !removable {
                continue;
            }
            to_remove.push(pod);
            let uncounted = status
                .uncounted_terminated_pods
                .get_or_insert_with(Default::default);
            if is_succeeded(pod) && !t.uncounted.failed.contains(&uid) {
                if indexed {
                    if let Some(index) = completion_index(pod)
                        && index < completions
                        && !t.prev_succeeded_indexes.contains(index)
                    {
                        new_succeeded_indexes.push(index);
                        needs_flush = true;
                    }
                } else if !t.uncounted.succeeded.contains(&uid) {
                    needs_flush = true;
                    uncounted
                        .succeeded
                        .get_or_insert_with(Vec::new)
                        .push(uid.clone());
                }
            } else if considered_failed
                || t.finished
                    .as_ref()
                    .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET)
            {
                let index_ok = !indexed || completion_index(pod).is_some_and(|i| i < completions);
                if !t.uncounted.failed.contains(&uid)
                    && index_ok
                    && match_pod_failure_policy(failure_policy.as_ref(), pod).counts
                {
                    needs_flush = true;
                    uncounted
                        .failed
                        .get_or_insert_with(Vec::new)
                        .push(uid.clone());
                }
            }
            let pending = new_succeeded_indexes.len()
                + uncounted.succeeded.as_ref().map_or(0, Vec::len)
                + uncounted.failed.as_ref().map_or(0, Vec::len);
            if pending >= MAX_UNCOUNTED_PODS {
                // The rest waits for the next sync, keeping the status small.
                reached_max = true;
                break;
            }
        }
        if indexed {
            for index in new_succeeded_indexes {
                t.succeeded_indexes.insert(index);
            }
            let text = t.succeeded_indexes.to_string();
            if text != status.completed_indexes.clone().unwrap_or_default() {
                needs_flush = true;
            }
            status.succeeded = non_zero(t.succeeded_indexes.total() as i32);
            status.completed_indexes = (!text.is_empty()).then_some(text);
            let failed_text = t.failed_indexes.as_ref().map(Intervals::to_string);
            if status.failed_indexes != failed_text {
                status.failed_indexes = failed_text;
                needs_flush = true;
            }
        }
        if let Some(target) = t.finished.clone().filter(|c| c.type_ == FAILURE_TARGET) {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(target.clone());
            needs_flush = true;
            t.finished = Some(condition(
                FAILED,
                target.reason.as_deref().unwrap_or_default(),
                target.message.as_deref().unwrap_or_default(),
                t.now,
            ));
        }
        if let Some(met) = t
            .finished
            .clone()
            .filter(|c| c.type_ == SUCCESS_CRITERIA_MET)
        {
            let conditions = status.conditions.get_or_insert_with(Vec::new);
            if !conditions
                .iter()
                .any(|c| c.type_ == SUCCESS_CRITERIA_MET && c.status == "True")
            {
                conditions.push(met.clone());
                needs_flush = true;
            }
            t.finished = Some(condition(
                COMPLETE,
                met.reason.as_deref().unwrap_or_default(),
                met.message.as_deref().unwrap_or_default(),
                t.now,
            ));
        }

        // Flush what is about to be counted before any finalizer goes.
        if needs_flush {
            job = self
                .update_status(&job)
                .await
                .context("adding uncounted pods to status")?;
            lock(&self.backoff).insert(t.key.to_string(), t.new_backoff.clone());
            needs_flush = false;
        }
        let mut removal_error = None;
        if !to_remove.is_empty() {
            let uids: Vec<String> = to_remove
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            lock(&self.finalizer_expectations)
                .entry(t.key.to_string())
                .or_default()
                .extend(uids);
            let results =
                join_all(to_remove.iter().map(|p| self.remove_tracking_finalizer(p))).await;
            for (pod, result) in to_remove.iter().zip(results) {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                match result {
                    Ok(()) => {
                        with_finalizer.remove(&uid);
                    }
                    Err(error) => {
                        self.finalizer_removal_observed(t.key, &uid);
                        if is_not_found(&error) {
                            with_finalizer.remove(&uid);
                        } else {
                            removal_error.get_or_insert(anyhow::Error::from(error));
                        }
                    }
                }
            }
        }
        let status = job.status.get_or_insert_with(Default::default);
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        if let Some(error) = removal_error {
            if needs_flush {
                self.update_status(&job)
                    .await
                    .context("removing uncounted pods from status")?;
            }
            return Err(error.context("removing tracking finalizers"));
        }
        let finished_now =
            !reached_max && enact_finished(&mut job, t.finished.as_ref(), t.terminating, t.now);
        if finished_now || needs_flush {
            let updated = self
                .update_status(&job)
                .await
                .context("removing uncounted pods from status")?;
            if finished_now && let Some(finished) = &t.finished {
                self.record_finished(&updated, finished);
            }
        }
        Ok(())
    }

    fn record_finished(&self, job: &Job, finished: &JobCondition) {
        if finished.type_ == COMPLETE {
            let completions = job.spec.as_ref().and_then(|s| s.completions);
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if completions.is_some_and(|c| succeeded > c) {
                self.recorder.warning(
                    job,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached".into(),
                );
            }
            self.recorder
                .normal(job, "Completed", "Job completed".into());
        } else {
            self.recorder.warning(
                job,
                finished.reason.as_deref().unwrap_or_default(),
                finished.message.clone().unwrap_or_default(),
            );
        }
    }
}

struct ManageInput<'a> {
    key: &'a str,
    active_pods: &'a [&'a Pod],
    pods: &'a [Pod],
    succeeded: i32,
    succeeded_indexes: &'a Intervals,
    failed_indexes: Option<&'a Intervals>,
    /// Per index, the failed pod kept until its replacement exists.
    delayed: &'a HashMap<u32, &'a Pod>,
    terminating: i32,
    backoff: &'a BackoffRecord,
}

struct ManageOutcome {
    active: i32,
    deleted: i32,
    deleted_ready: i32,
    error: Option<anyhow::Error>,
}

impl ManageOutcome {
    fn unchanged(active: i32) -> ManageOutcome {
        ManageOutcome {
            active,
            deleted: 0,
            deleted_ready: 0,
            error: None,
        }
    }
}

struct Tracking<'a> {
    key: &'a str,
    pods: &'a [Pod],
    expected_removals: &'a HashSet<String>,
    uncounted: &'a Uncounted,
    prev_succeeded_indexes: &'a Intervals,
    succeeded_indexes: Intervals,
    failed_indexes: Option<Intervals>,
    /// Failed pods whose finalizer stays until their index is recreated.
    delayed_uids: HashSet<String>,
    finished: Option<JobCondition>,
    terminating: i32,
    new_backoff: BackoffRecord,
    now: jiff::Timestamp,
}

fn pod_key(pod: &Pod) -> String {
    key_of(
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
    )
}

fn managed_externally(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != CONTROLLER_NAME)
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status)
        if status.code == 403 && status.message.contains("because it is being terminated"))
}
