//! The CronJob controller (upstream's v2): creates a Job at each schedule time in the CronJob's time zone, honouring the concurrency policy, the starting deadline, suspension and the history limits, and requeues itself for the next schedule time on an injectable clock.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use client::owners::{controller_of, controller_reference, is_controlled_by};
use client::{Change, EventRecorder, Informers, WorkQueue};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::clock::{Clock, ShutDownOnDrop, Timers, duration_until};
use crate::cron::{self, Schedule};
use crate::job::{finished_condition_type, is_finished};

pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Padding after a schedule time, against clock skew between hosts.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
const TOO_MANY_MISSED: i64 = 100;

struct Controller {
    client: Client,
    cron_jobs: Store<CronJob>,
    jobs: Store<Job>,
    queue: WorkQueue<String>,
    recorder: EventRecorder,
    clock: Arc<dyn Clock>,
    timers: Timers,
}

fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Runs the CronJob controller until the future is dropped.
pub async fn run(
    client: Client,
    informers: Arc<Informers>,
    workers: usize,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let cron_informer = informers.informer::<CronJob>();
    let job_informer = informers.informer::<Job>();
    let queue = WorkQueue::new();
    let controller = Arc::new(Controller {
        recorder: EventRecorder::new(client.clone(), "cronjob-controller"),
        client,
        cron_jobs: cron_informer.store().clone(),
        jobs: job_informer.store().clone(),
        timers: Timers::new(clock.clone(), queue.clone()),
        queue,
        clock,
    });
    let _stop = ShutDownOnDrop(vec![controller.queue.clone()]);
    cron_informer.wait_synced().await;
    job_informer.wait_synced().await;
    let mut cron_changes = cron_informer.subscribe();
    let mut job_changes = job_informer.subscribe();
    let cron_events = {
        let controller = controller.clone();
        async move {
            while let Some(change) = cron_changes.recv().await {
                controller.on_cron_job_change(change);
            }
        }
    };
    let job_events = {
        let controller = controller.clone();
        async move {
            while let Some(change) = job_changes.recv().await {
                controller.on_job_change(change);
            }
        }
    };
    let workers = {
        let controller = controller.clone();
        client::workqueue::run_workers(controller.queue.clone(), workers, move |key: String| {
            let controller = controller.clone();
            async move { controller.sync(&key).await.map(|()| None) }
        })
    };
    futures::join!(cron_events, job_events, workers);
    Ok(())
}

impl Controller {
    fn resolve_owner(&self, job: &Job) -> Option<Arc<CronJob>> {
        let owner = controller_of(&job.metadata)?;
        if owner.kind != "CronJob" {
            return None;
        }
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let cron_job = self
            .cron_jobs
            .get(&ObjectRef::new(&owner.name).within(namespace))?;
        (cron_job.metadata.uid.as_deref() == Some(owner.uid.as_str())).then_some(cron_job)
    }

    fn on_job_change(&self, change: Change<Job>) {
        match change {
            Change::Applied { old, new } => {
                if let Some(old) = &old {
                    if old.metadata.resource_version == new.metadata.resource_version {
                        return;
                    }
                    if controller_of(&old.metadata) != controller_of(&new.metadata)
                        && let Some(cron_job) = self.resolve_owner(old)
                    {
                        self.queue.add(key_of(&cron_job.metadata));
                    }
                }
                if let Some(cron_job) = self.resolve_owner(&new) {
                    self.queue.add(key_of(&cron_job.metadata));
                }
            }
            Change::Deleted(job) => {
                if let Some(cron_job) = self.resolve_owner(&job) {
                    self.queue.add(key_of(&cron_job.metadata));
                }
            }
        }
    }

    fn on_cron_job_change(&self, change: Change<CronJob>) {
        let (old, new) = match change {
            Change::Applied {
                old: Some(old),
                new,
            } => (old, new),
            other => return self.queue.add(key_of(&other.object().metadata)),
        };
        let key = key_of(&new.metadata);
        let (old_spec, new_spec) = (old.spec.clone(), new.spec.clone());
        if old_spec.schedule == new_spec.schedule && old_spec.time_zone == new_spec.time_zone {
            return self.queue.add(key);
        }
        // A new schedule: wake at its next time rather than the old one's.
        match cron::parse(&format_schedule(&new, None)) {
            Err(_) => self.recorder.warning(
                new.as_ref(),
                "UnParseableCronJobSchedule",
                format!("unparseable schedule for cronjob: {}", new_spec.schedule),
            ),
            Ok(schedule) => {
                if let Some(delay) = next_schedule_delay(&new, self.clock.now(), &schedule) {
                    self.timers.requeue_after(key, delay);
                }
            }
        }
    }

    fn job_api(&self, namespace: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let Some(cron_job) = self.cron_jobs.get(&ObjectRef::new(name).within(namespace)) else {
            return Ok(());
        };
        // Jobs that name this CronJob as controller, matching labels or not.
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .state()
            .into_iter()
            .filter(|job| job.metadata.namespace.as_deref() == Some(namespace))
            .filter(|job| controller_of(&job.metadata).is_some_and(|o| o.name == name))
            .collect();
        let mut working = (*cron_job).clone();
        let cleaned = self.cleanup_finished_jobs(&mut working, &jobs).await;
        let outcome = self.sync_cron_job(&mut working, &jobs).await;
        if cleaned || outcome.update_status {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), namespace);
            api.replace_status(name, &PostParams::default(), &working)
                .await?;
        }
        if let Some(delay) = outcome.requeue_after {
            self.timers.requeue_after(key.to_string(), delay);
            return Ok(());
        }
        outcome.result
    }

    async fn sync_cron_job(&self, cron_job: &mut CronJob, jobs: &[Arc<Job>]) -> SyncOutcome {
        let now = self.clock.now();
        let mut outcome = SyncOutcome::default();
        let mut children = HashSet::new();
        let namespace = cron_job.metadata.namespace.clone().unwrap_or_default();
        for job in jobs {
            let uid = job.metadata.uid.clone().unwrap_or_default();
            children.insert(uid.clone());
            let found = in_active_list(cron_job, &uid);
            if !found && !is_finished(job) {
                // Our status may lag our own create: ask the server.
                let api: Api<CronJob> = Api::namespaced(self.client.clone(), &namespace);
                match api
                    .get(cron_job.metadata.name.as_deref().unwrap_or_default())
                    .await
                {
                    Ok(fresh) if in_active_list(&fresh, &uid) => {
                        *cron_job = fresh;
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => return outcome.failed(error.into()),
                }
                self.recorder.warning(
                    cron_job,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        job.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
            } else if let Some(condition) = finished_condition_type(job) {
                if found {
                    delete_from_active_list(cron_job, &uid);
                    self.recorder.normal(
                        cron_job,
                        "SawCompletedJob",
                        format!(
                            "Saw completed job: {}, condition: {condition}",
                            job.metadata.name.as_deref().unwrap_or_default()
                        ),
                    );
                    outcome.update_status = true;
                }
                if condition == "Complete" {
                    let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
                    let status = cron_job.status.get_or_insert_with(Default::default);
                    match (&status.last_successful_time, &completed) {
                        (None, _) => {
                            status.last_successful_time = completed;
                            outcome.update_status = true;
                        }
                        (Some(last), Some(completed)) if completed.0 > last.0 => {
                            status.last_successful_time = Some(completed.clone());
                            outcome.update_status = true;
                        }
                        _ => {}
                    }
                }
            }
        }
        // An active Job that no longer exists would hold the CronJob forever.
        let active: Vec<ObjectReference> = cron_job
            .status
            .as_ref()
            .and_then(|s| s.active.clone())
            .unwrap_or_default();
        for reference in active {
            let uid = reference.uid.clone().unwrap_or_default();
            if children.contains(&uid) {
                continue;
            }
            let job_name = reference.name.clone().unwrap_or_default();
            let job_namespace = reference
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.clone());
            match self.job_api(&job_namespace).get(&job_name).await {
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.recorder.normal(
                        cron_job,
                        "MissingJob",
                        format!("Active job went missing: {job_name}"),
                    );
                    delete_from_active_list(cron_job, &uid);
                    outcome.update_status = true;
                }
                Err(error) => return outcome.failed(error.into()),
                Ok(_) => {}
            }
        }
        if cron_job.metadata.deletion_timestamp.is_some() {
            return outcome;
        }
        let spec = cron_job.spec.clone();
        if let Some(time_zone) = &spec.time_zone
            && let Err(error) = cron::load_time_zone(time_zone)
        {
            self.recorder.warning(
                cron_job,
                "UnknownTimeZone",
                format!("invalid timeZone: {time_zone:?}: {error}"),
            );
            return outcome;
        }
        if spec.suspend == Some(true) {
            return outcome;
        }
        let schedule = match cron::parse(&format_schedule(cron_job, Some(&self.recorder))) {
            Ok(schedule) => schedule,
            Err(error) => {
                self.recorder.warning(
                    cron_job,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {error}", spec.schedule),
                );
                return outcome;
            }
        };
        let scheduled = match most_recent_schedule_time(cron_job, now, &schedule, true) {
            Err(error) => {
                self.recorder.warning(
                    cron_job,
                    "InvalidSchedule",
                    format!("invalid schedule: {} : {error}", spec.schedule),
                );
                return outcome;
            }
            Ok(recent) => {
                if recent.missed == Missed::Many && recent.most_recent.is_some_and(|t| t <= now) {
                    self.recorder.warning(
                        cron_job,
                        "TooManyMissedTimes",
                        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                    );
                }
                recent.most_recent.filter(|t| *t <= now)
            }
        };
        outcome.requeue_after = next_schedule_delay(cron_job, now, &schedule);
        let Some(scheduled) = scheduled else {
            return outcome;
        };
        if let Some(deadline) = spec.starting_deadline_seconds {
            let latest = scheduled
                .checked_add(SignedDuration::from_secs(deadline))
                .unwrap_or(Timestamp::MAX);
            if latest < now {
                self.recorder.warning(
                    cron_job,
                    "MissSchedule",
                    format!(
                        "Missed scheduled time to start a job: {}",
                        rfc1123z(scheduled)
                    ),
                );
                return outcome;
            }
        }
        let job_name = job_name(cron_job, scheduled);
        let last_scheduled = cron_job
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0);
        if in_active_list_by_name(cron_job, &job_name) || last_scheduled == Some(scheduled) {
            return outcome;
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let active_count = cron_job
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .map_or(0, Vec::len);
        if policy == "Forbid" && active_count > 0 {
            self.recorder.normal(
                cron_job,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            );
            return outcome;
        }
        if policy == "Replace" {
            let active = cron_job
                .status
                .as_ref()
                .and_then(|s| s.active.clone())
                .unwrap_or_default();
            for reference in active {
                let job_namespace = reference
                    .namespace
                    .clone()
                    .unwrap_or_else(|| namespace.clone());
                let name = reference.name.clone().unwrap_or_default();
                let job = match self.job_api(&job_namespace).get(&name).await {
                    Ok(job) => job,
                    Err(error) => {
                        self.recorder
                            .warning(cron_job, "FailedGet", format!("Get job: {error}"));
                        outcome.requeue_after = None;
                        return outcome.failed(error.into());
                    }
                };
                if !self.delete_job(cron_job, &job).await {
                    outcome.requeue_after = None;
                    return outcome.failed(anyhow::anyhow!(
                        "could not replace job {job_namespace}/{name}"
                    ));
                }
                outcome.update_status = true;
            }
        }
        let request = match job_from_template(cron_job, scheduled) {
            Ok(job) => job,
            Err(error) => {
                outcome.requeue_after = None;
                return outcome.failed(error);
            }
        };
        let created = match self
            .job_api(&namespace)
            .create(&PostParams::default(), &request)
            .await
        {
            Ok(created) => {
                self.recorder.normal(
                    cron_job,
                    "SuccessfulCreate",
                    format!(
                        "Created job {}",
                        created.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
                created
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Created earlier, but the status update was lost.
                let existing = match self.job_api(&namespace).get(&job_name).await {
                    Ok(existing) => existing,
                    Err(error) => {
                        outcome.requeue_after = None;
                        return outcome.failed(error.into());
                    }
                };
                let uid = cron_job.metadata.uid.clone().unwrap_or_default();
                let existing_uid = existing.metadata.uid.clone().unwrap_or_default();
                if !is_controlled_by(&existing.metadata, &uid)
                    || in_active_list(cron_job, &existing_uid)
                {
                    outcome.requeue_after = None;
                    return outcome;
                }
                tracing::info!(job = %job_name, "job already exists");
                existing
            }
            Err(error) => {
                let terminating = matches!(&error, kube::Error::Api(s) if s.code == 403
                    && s.message.contains("because it is being terminated"));
                if !terminating {
                    self.recorder.warning(
                        cron_job,
                        "FailedCreate",
                        format!("Error creating job: {error}"),
                    );
                }
                outcome.requeue_after = None;
                return outcome.failed(error.into());
            }
        };
        let status = cron_job.status.get_or_insert_with(Default::default);
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(ObjectReference {
                api_version: Some("batch/v1".into()),
                kind: Some("Job".into()),
                name: created.metadata.name.clone(),
                namespace: created.metadata.namespace.clone(),
                uid: created.metadata.uid.clone(),
                resource_version: created.metadata.resource_version.clone(),
                ..ObjectReference::default()
            });
        status.last_schedule_time = Some(Time(scheduled));
        outcome.update_status = true;
        outcome.requeue_after = next_schedule_delay(cron_job, now, &schedule);
        outcome
    }

    /// Deletes a Job (its pods follow in the background) and drops it from
    /// the active list.
    async fn delete_job(&self, cron_job: &mut CronJob, job: &Job) -> bool {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        if let Err(error) = self.job_api(namespace).delete(name, &params).await {
            self.recorder
                .warning(cron_job, "FailedDelete", format!("Deleted job: {error}"));
            return false;
        }
        delete_from_active_list(cron_job, job.metadata.uid.as_deref().unwrap_or_default());
        self.recorder
            .normal(cron_job, "SuccessfulDelete", format!("Deleted job {name}"));
        true
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn cleanup_finished_jobs(&self, cron_job: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cron_job.spec.clone();
        if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none()
        {
            return false;
        }
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for job in jobs {
            match finished_condition_type(job) {
                Some("Complete") => successful.push(job.clone()),
                Some("Failed") => failed.push(job.clone()),
                _ => {}
            }
        }
        let mut changed = false;
        for (mut finished, limit) in [
            (successful, spec.successful_jobs_history_limit),
            (failed, spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let excess = finished.len().saturating_sub(limit.max(0) as usize);
            if excess == 0 {
                continue;
            }
            finished.sort_by(|a, b| by_start_time(a, b));
            for job in finished.into_iter().take(excess) {
                if self.delete_job(cron_job, &job).await {
                    changed = true;
                }
            }
        }
        changed
    }
}

struct SyncOutcome {
    requeue_after: Option<Duration>,
    update_status: bool,
    result: anyhow::Result<()>,
}

impl Default for SyncOutcome {
    fn default() -> Self {
        SyncOutcome {
            requeue_after: None,
            update_status: false,
            result: Ok(()),
        }
    }
}

impl SyncOutcome {
    fn failed(mut self, error: anyhow::Error) -> SyncOutcome {
        self.result = Err(error);
        self
    }
}

fn in_active_list(cron_job: &CronJob, uid: &str) -> bool {
    cron_job
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| a.iter().any(|r| r.uid.as_deref() == Some(uid)))
}

fn in_active_list_by_name(cron_job: &CronJob, name: &str) -> bool {
    cron_job
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| {
            a.iter().any(|r| {
                r.name.as_deref() == Some(name) && r.namespace == cron_job.metadata.namespace
            })
        })
}

fn delete_from_active_list(cron_job: &mut CronJob, uid: &str) {
    if let Some(active) = cron_job.status.as_mut().and_then(|s| s.active.as_mut()) {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// Oldest start time first; Jobs that never started last; names break ties.
fn by_start_time(a: &Job, b: &Job) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}

/// The schedule the controller parses: `TZ=<spec.timeZone> <schedule>`,
/// unless the schedule names a zone itself (warned about, as upstream).
pub fn format_schedule(cron_job: &CronJob, recorder: Option<&EventRecorder>) -> String {
    let spec = cron_job.spec.clone();
    if spec.schedule.contains("TZ") {
        if let Some(recorder) = recorder {
            recorder.warning(
                cron_job,
                "UnsupportedSchedule",
                format!(
                    "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                    spec.schedule
                ),
            );
        }
        return spec.schedule;
    }
    match &spec.time_zone {
        Some(zone) if cron::load_time_zone(zone).is_ok() => format!("TZ={zone} {}", spec.schedule),
        _ => spec.schedule,
    }
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cron_job: &CronJob, scheduled: Timestamp) -> String {
    format!(
        "{}-{}",
        cron_job.metadata.name.as_deref().unwrap_or_default(),
        scheduled.as_second().div_euclid(60)
    )
}

/// The Job for the run at `scheduled`: the template's labels, annotations
/// and spec, the scheduled-time annotation in the CronJob's zone, and the
/// controller reference.
pub fn job_from_template(cron_job: &CronJob, scheduled: Timestamp) -> anyhow::Result<Job> {
    let spec = cron_job.spec.clone();
    let template = spec.job_template;
    let template_meta = template.metadata.unwrap_or_default();
    let zone = cron::load_time_zone(spec.time_zone.as_deref().unwrap_or_default())
        .map_err(anyhow::Error::msg)?;
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        rfc3339_in(scheduled, &zone),
    );
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(cron_job, scheduled)),
            namespace: cron_job.metadata.namespace.clone(),
            labels: Some(template_meta.labels.unwrap_or_default()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_reference(cron_job)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// Go's RFC 3339 layout: "Z" for a zero offset, else "+hh:mm".
fn rfc3339_in(t: Timestamp, zone: &jiff::tz::TimeZone) -> String {
    let zoned = t.to_zoned(zone.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Go's RFC 1123 with a numeric zone, in UTC.
fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentSchedule {
    /// The last schedule time, or the CronJob's creation.
    pub earliest: Timestamp,
    /// The latest schedule time not after `now`, if any since `earliest`.
    pub most_recent: Option<Timestamp>,
    pub missed: Missed,
}

/// upstream's mostRecentScheduleTime: the latest schedule time in
/// (earliest, now], found without walking more than a couple of times
/// from an estimate, and how many were missed.
pub fn most_recent_schedule_time(
    cron_job: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    include_starting_deadline: bool,
) -> Result<RecentSchedule, String> {
    let too_close = || "time difference between two schedules is less than 1 second".to_string();
    let status = cron_job.status.as_ref();
    let mut earliest = status
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cron_job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    if include_starting_deadline && let Some(deadline) = cron_job.spec.starting_deadline_seconds {
        let scheduling_deadline = now
            .checked_sub(SignedDuration::from_secs(deadline))
            .unwrap_or(Timestamp::MIN);
        if scheduling_deadline > earliest {
            earliest = scheduling_deadline;
        }
    }
    let none = |earliest, missed| RecentSchedule {
        earliest,
        most_recent: None,
        missed,
    };
    let t1 = schedule.next(earliest).ok_or_else(too_close)?;
    if now < t1 {
        return Ok(none(earliest, Missed::None));
    }
    let t2 = schedule.next(t1).ok_or_else(too_close)?;
    if now < t2 {
        return Ok(RecentSchedule {
            earliest,
            most_recent: Some(t1),
            missed: Missed::None,
        });
    }
    let between = t2
        .duration_since(t1)
        .round(jiff::Unit::Second)
        .map_err(|e| e.to_string())?
        .as_secs();
    if between < 1 {
        return Err(too_close());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / between + 1;
    let potential_earliest = t1
        .checked_add(SignedDuration::from_secs(
            (missed_count - 2).saturating_mul(between),
        ))
        .unwrap_or(t1);
    let mut most_recent = None;
    let mut t = schedule.next(potential_earliest);
    while let Some(time) = t.filter(|time| *time <= now) {
        most_recent = Some(time);
        t = schedule.next(time);
    }
    let missed = if missed_count > TOO_MANY_MISSED {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok(RecentSchedule {
        earliest,
        most_recent,
        missed,
    })
}

/// How long until the next schedule time (plus a little padding), counted
/// from the last one handled, or from now when times were missed.
pub fn next_schedule_delay(
    cron_job: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
) -> Option<Duration> {
    let from = match most_recent_schedule_time(cron_job, now, schedule, false) {
        Err(_) => now,
        Ok(RecentSchedule {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(RecentSchedule {
            earliest,
            missed: Missed::None,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    let next = schedule.next(from)?;
    Some(duration_until(now, next) + NEXT_SCHEDULE_DELTA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cron_job(
        schedule: &str,
        created: &str,
        last: Option<&str>,
        deadline: Option<i64>,
    ) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "ns", "uid": "u1", "creationTimestamp": created},
            "spec": {"schedule": schedule, "startingDeadlineSeconds": deadline,
                     "jobTemplate": {"spec": {"template": {}}}},
            "status": {"lastScheduleTime": last}
        }))
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_most_recent_unmet_time_and_the_missed_count() {
        let schedule = cron::parse("*/5 * * * *").unwrap();
        let job = cron_job("*/5 * * * *", "2024-01-01T00:01:00Z", None, None);
        let before =
            most_recent_schedule_time(&job, at("2024-01-01T00:03:00Z"), &schedule, true).unwrap();
        assert_eq!((before.most_recent, before.missed), (None, Missed::None));
        let one =
            most_recent_schedule_time(&job, at("2024-01-01T00:06:00Z"), &schedule, true).unwrap();
        assert_eq!(one.most_recent, Some(at("2024-01-01T00:05:00Z")));
        let several =
            most_recent_schedule_time(&job, at("2024-01-01T00:23:00Z"), &schedule, true).unwrap();
        assert_eq!(
            (several.most_recent, several.missed),
            (Some(at("2024-01-01T00:20:00Z")), Missed::Few)
        );
        let lots =
            most_recent_schedule_time(&job, at("2024-01-02T00:00:30Z"), &schedule, true).unwrap();
        assert_eq!(
            (lots.most_recent, lots.missed),
            (Some(at("2024-01-02T00:00:00Z")), Missed::Many)
        );
    }

    #[test]
    fn the_starting_deadline_hides_older_times() {
        let schedule = cron::parse("0 * * * *").unwrap();
        let job = cron_job("0 * * * *", "2024-01-01T00:00:30Z", None, Some(60));
        let recent =
            most_recent_schedule_time(&job, at("2024-01-01T05:30:00Z"), &schedule, true).unwrap();
        assert_eq!(recent.most_recent, None);
        let recent =
            most_recent_schedule_time(&job, at("2024-01-01T05:30:00Z"), &schedule, false).unwrap();
        assert_eq!(recent.most_recent, Some(at("2024-01-01T05:00:00Z")));
    }

    #[test]
    fn an_impossible_schedule_is_invalid() {
        let schedule = cron::parse("0 0 31 2 *").unwrap();
        let job = cron_job("0 0 31 2 *", "2024-01-01T00:00:00Z", None, None);
        assert_eq!(
            most_recent_schedule_time(&job, at("2024-03-01T00:00:00Z"), &schedule, true)
                .unwrap_err(),
            "time difference between two schedules is less than 1 second"
        );
    }

    #[test]
    fn the_next_delay_counts_from_the_last_schedule_time() {
        let schedule = cron::parse("*/5 * * * *").unwrap();
        let job = cron_job(
            "*/5 * * * *",
            "2024-01-01T00:01:00Z",
            Some("2024-01-01T00:05:00Z"),
            None,
        );
        assert_eq!(
            next_schedule_delay(&job, at("2024-01-01T00:06:00Z"), &schedule),
            Some(Duration::from_secs(240) + NEXT_SCHEDULE_DELTA)
        );
    }

    #[test]
    fn jobs_are_named_by_minute_and_annotated_in_the_cron_jobs_zone() {
        let mut cron_job = cron_job("0 9 * * *", "2024-01-01T00:00:00Z", None, None);
        let scheduled = at("2024-07-01T07:00:00Z");
        assert_eq!(job_name(&cron_job, scheduled), "backup-28663620");
        let job = job_from_template(&cron_job, scheduled).unwrap();
        let annotations = job.metadata.annotations.unwrap();
        assert_eq!(
            annotations[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2024-07-01T07:00:00Z"
        );
        cron_job.spec.time_zone = Some("Europe/Berlin".into());
        let job = job_from_template(&cron_job, scheduled).unwrap();
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2024-07-01T09:00:00+02:00"
        );
        assert_eq!(
            format_schedule(&cron_job, None),
            "TZ=Europe/Berlin 0 9 * * *"
        );
        assert_eq!(rfc1123z(scheduled), "Mon, 01 Jul 2024 07:00:00 +0000");
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CronJob", Some(true))
        );
    }
}
