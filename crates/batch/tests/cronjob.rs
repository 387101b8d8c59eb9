//! The CronJob controller against a real API server, driven by a fake clock: schedule times, concurrency policies, history limits, time zones and missed starts.

mod support;

use std::sync::Arc;
use std::time::Duration;

use batch::{Clock, FakeClock};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    _cluster: testcluster::TestCluster,
    client: Client,
    clock: FakeClock,
    _controller: tokio::task::JoinHandle<()>,
}

async fn harness() -> Harness {
    let (cluster, client, informers) = start().await.unwrap();
    let clock = FakeClock::new(Timestamp::now());
    let controller = tokio::spawn({
        let (client, clock) = (client.clone(), clock.clone());
        async move {
            batch::run_cronjobs(client, informers, 2, Arc::new(clock))
                .await
                .unwrap();
        }
    });
    Harness {
        _cluster: cluster,
        client,
        clock,
        _controller: controller,
    }
}

impl Harness {
    /// Creates the CronJob and moves the clock to its creation, returning
    /// the first schedule minute after it.
    async fn create(&self, name: &str, spec: serde_json::Value) -> Timestamp {
        let mut spec = spec;
        spec["jobTemplate"] = json!({
            "metadata": {"labels": {"from": "cron"}},
            "spec": {"template": pod_template()}
        });
        let cron_job: CronJob = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }))
        .unwrap();
        let created = Api::<CronJob>::namespaced(self.client.clone(), NAMESPACE)
            .create(&PostParams::default(), &cron_job)
            .await
            .expect("create cronjob");
        let created_at = created.metadata.creation_timestamp.unwrap().0;
        if created_at > self.clock.now() {
            self.clock.set(created_at);
        }
        next_minute(created_at)
    }

    fn set(&self, t: Timestamp) {
        self.clock.set(t);
    }

    async fn jobs_of(&self, cron_job: &str) -> Vec<Job> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut owned: Vec<Job> = jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|j| {
                j.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "CronJob" && o.name == cron_job)
            })
            .collect();
        owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        owned
    }

    async fn wait_jobs(&self, cron_job: &str, names: &[String]) -> Vec<Job> {
        eventually(&format!("jobs {names:?}"), WAIT, || async {
            let jobs = self.jobs_of(cron_job).await;
            let found: Vec<String> = jobs
                .iter()
                .filter_map(|j| j.metadata.name.clone())
                .collect();
            (found == names).then_some(jobs)
        })
        .await
    }

    async fn cron_job(&self, name: &str) -> CronJob {
        Api::<CronJob>::namespaced(self.client.clone(), NAMESPACE)
            .get(name)
            .await
            .unwrap()
    }

    async fn wait_event(&self, name: &str, reason: &str) -> Vec<String> {
        eventually(&format!("{reason} event"), WAIT, || async {
            let notes = events(&self.client, name, reason).await;
            (!notes.is_empty()).then_some(notes)
        })
        .await
    }

    /// Marks a Job finished as the Job controller would.
    async fn finish_job(&self, name: &str, condition: &str, started: Timestamp) {
        let now = Timestamp::now().to_string();
        let mut status = json!({
            "startTime": started.to_string(),
            "conditions": [{"type": condition, "status": "True", "lastTransitionTime": now}],
        });
        if condition == "Complete" {
            status["completionTime"] = json!(now);
        }
        Api::<Job>::namespaced(self.client.clone(), NAMESPACE)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .expect("finish job");
    }
}

fn next_minute(t: Timestamp) -> Timestamp {
    Timestamp::from_second((t.as_second().div_euclid(60) + 1) * 60).unwrap()
}

fn plus(t: Timestamp, seconds: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(seconds)).unwrap()
}

fn job_name(cron_job: &str, t: Timestamp) -> String {
    format!("{cron_job}-{}", t.as_second() / 60)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn jobs_start_at_schedule_times_and_forbid_skips_while_one_runs() {
    let h = harness().await;
    let m1 = h
        .create(
            "every",
            json!({"schedule": "*/1 * * * *", "concurrencyPolicy": "Forbid"}),
        )
        .await;
    settle().await;
    assert!(
        h.jobs_of("every").await.is_empty(),
        "nothing before the first minute"
    );

    h.set(plus(m1, 1));
    let jobs = h.wait_jobs("every", &[job_name("every", m1)]).await;
    let job = &jobs[0];
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        m1.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(job.metadata.labels.clone().unwrap()["from"], "cron");
    let owner = &job.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("CronJob", Some(true))
    );
    let status = eventually("active job in status", WAIT, || async {
        let status = h.cron_job("every").await.status?;
        (status.active.as_ref().map_or(0, Vec::len) == 1).then_some(status)
    })
    .await;
    assert_eq!(status.last_schedule_time.unwrap().0, m1);
    assert_eq!(
        h.wait_event("every", "SuccessfulCreate").await[0],
        format!("Created job {}", job_name("every", m1))
    );

    // The next minute comes while the first Job still runs.
    let m2 = plus(m1, 60);
    h.set(plus(m2, 1));
    assert_eq!(
        h.wait_event("every", "JobAlreadyActive").await[0],
        "Not starting job because prior execution is running and concurrency policy is Forbid"
    );
    assert_eq!(h.jobs_of("every").await.len(), 1);

    // Once it completes, the skipped minute is still the latest unmet
    // schedule time (no starting deadline), so it starts at once.
    h.finish_job(&job_name("every", m1), "Complete", m1).await;
    h.wait_jobs("every", &[job_name("every", m1), job_name("every", m2)])
        .await;
    let status = eventually("completion seen", WAIT, || async {
        let status = h.cron_job("every").await.status?;
        let active = status.active.clone()?;
        (active.len() == 1
            && active[0].name.as_deref() == Some(job_name("every", m2).as_str())
            && status.last_successful_time.is_some())
        .then_some(status)
    })
    .await;
    assert_eq!(status.last_schedule_time.unwrap().0, m2);
    assert_eq!(
        h.wait_event("every", "SawCompletedJob").await[0],
        format!(
            "Saw completed job: {}, condition: Complete",
            job_name("every", m1)
        )
    );
}

#[tokio::test]
async fn replace_deletes_the_running_job_for_the_new_one() {
    let h = harness().await;
    let m1 = h
        .create(
            "swap",
            json!({"schedule": "* * * * *", "concurrencyPolicy": "Replace"}),
        )
        .await;
    h.set(plus(m1, 1));
    h.wait_jobs("swap", &[job_name("swap", m1)]).await;
    eventually("active", WAIT, || async {
        h.cron_job("swap")
            .await
            .status?
            .active
            .filter(|a| a.len() == 1)
    })
    .await;
    let m2 = plus(m1, 60);
    h.set(plus(m2, 1));
    h.wait_jobs("swap", &[job_name("swap", m2)]).await;
    assert_eq!(
        h.wait_event("swap", "SuccessfulDelete").await[0],
        format!("Deleted job {}", job_name("swap", m1))
    );
    let active = eventually("only the new job active", WAIT, || async {
        let active = h.cron_job("swap").await.status?.active?;
        (active.len() == 1 && active[0].name.as_deref() == Some(job_name("swap", m2).as_str()))
            .then_some(active)
    })
    .await;
    assert_eq!(active[0].kind.as_deref(), Some("Job"));
}

#[tokio::test]
async fn allow_runs_jobs_side_by_side_and_history_limits_prune_the_oldest() {
    let h = harness().await;
    let m1 = h
        .create(
            "many",
            json!({"schedule": "* * * * *", "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
        )
        .await;
    let minutes: Vec<Timestamp> = (0..4).map(|i| plus(m1, 60 * i)).collect();
    let names: Vec<String> = minutes.iter().map(|m| job_name("many", *m)).collect();
    h.set(plus(minutes[0], 1));
    h.wait_jobs("many", &names[..1]).await;
    h.set(plus(minutes[1], 1));
    // Allow: both run at once.
    h.wait_jobs("many", &names[..2]).await;

    h.finish_job(&names[0], "Complete", minutes[0]).await;
    h.finish_job(&names[1], "Complete", minutes[1]).await;
    h.wait_jobs("many", &names[1..2]).await;

    h.set(plus(minutes[2], 1));
    h.wait_jobs("many", &names[1..3]).await;
    h.finish_job(&names[2], "Failed", minutes[2]).await;
    h.set(plus(minutes[3], 1));
    h.wait_jobs("many", &names[1..4]).await;
    h.finish_job(&names[3], "Failed", minutes[3]).await;
    // One success and one failure are kept.
    h.wait_jobs("many", &[names[1].clone(), names[3].clone()])
        .await;
}

#[tokio::test]
async fn a_time_zone_moves_the_schedule() {
    let h = harness().await;
    let created = Timestamp::now();
    h.create(
        "tokyo",
        json!({"schedule": "0 9 * * *", "timeZone": "Asia/Tokyo"}),
    )
    .await;
    // 09:00 in Tokyo is midnight UTC.
    let day = created
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    let midnight = day.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
    h.set(plus(midnight, -60));
    settle().await;
    assert!(h.jobs_of("tokyo").await.is_empty());
    h.set(plus(midnight, 1));
    let jobs = h.wait_jobs("tokyo", &[job_name("tokyo", midnight)]).await;
    assert_eq!(
        jobs[0].metadata.annotations.clone().unwrap()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        format!("{day}T09:00:00+09:00")
    );
}

#[tokio::test]
async fn a_start_missed_by_more_than_the_starting_deadline_is_skipped() {
    let h = harness().await;
    let m1 = h
        .create(
            "late",
            json!({"schedule": "* * * * *", "startingDeadlineSeconds": 10}),
        )
        .await;
    h.create("eager", json!({"schedule": "* * * * *"})).await;
    // The controller only gets to run 30 s after the minute.
    h.set(plus(m1, 30));
    h.wait_jobs("eager", &[job_name("eager", m1)]).await;
    settle().await;
    assert!(h.jobs_of("late").await.is_empty(), "too late to start");
    let m2 = plus(m1, 60);
    h.set(plus(m2, 1));
    h.wait_jobs("late", &[job_name("late", m2)]).await;
}

#[tokio::test]
async fn too_many_missed_times_are_reported_and_only_the_latest_runs() {
    let h = harness().await;
    let m1 = h.create("sleepy", json!({"schedule": "* * * * *"})).await;
    let later = plus(m1, 3 * 3600);
    h.set(plus(later, 5));
    h.wait_jobs("sleepy", &[job_name("sleepy", later)]).await;
    assert_eq!(
        h.wait_event("sleepy", "TooManyMissedTimes").await[0],
        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
    );
}

#[tokio::test]
async fn a_suspended_cron_job_starts_nothing_until_resumed() {
    let h = harness().await;
    let m1 = h
        .create("paused", json!({"schedule": "* * * * *", "suspend": true}))
        .await;
    h.set(plus(m1, 1));
    settle().await;
    assert!(h.jobs_of("paused").await.is_empty());
    Api::<CronJob>::namespaced(h.client.clone(), NAMESPACE)
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    h.wait_jobs("paused", &[job_name("paused", m1)]).await;
}

#[tokio::test]
async fn an_unknown_time_zone_is_reported() {
    let h = harness().await;
    let m1 = h
        .create(
            "lost",
            json!({"schedule": "* * * * *", "timeZone": "Mars/Olympus"}),
        )
        .await;
    h.set(plus(m1, 1));
    assert_eq!(
        h.wait_event("lost", "UnknownTimeZone").await[0],
        "invalid timeZone: \"Mars/Olympus\": unknown time zone Mars/Olympus"
    );
    assert!(h.jobs_of("lost").await.is_empty());
}
