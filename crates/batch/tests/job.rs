//! The Job and TTL-after-finished controllers against a real API server, with the test acting as the kubelet.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch::{JobConfig, SystemClock};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

fn quick_config() -> JobConfig {
    JobConfig {
        clock: Arc::new(SystemClock),
        pod_failure_backoff: Duration::from_millis(500),
        max_pod_failure_backoff: Duration::from_secs(60),
        sync_batch_period: Duration::from_millis(20),
    }
}

async fn start_jobs(
    config: JobConfig,
) -> (
    testcluster::TestCluster,
    Client,
    tokio::task::JoinHandle<()>,
) {
    let (cluster, client, informers) = start().await.unwrap();
    let task = tokio::spawn({
        let client = client.clone();
        async move {
            batch::run_jobs(client, informers, 2, config).await.unwrap();
        }
    });
    (cluster, client, task)
}

async fn create_job(client: &Client, spec: serde_json::Value) -> Job {
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": spec["name"], "namespace": NAMESPACE},
        "spec": spec["spec"],
    }))
    .unwrap();
    Api::<Job>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &job)
        .await
        .expect("create job")
}

async fn live_pods(client: &Client, job: &str) -> Vec<Pod> {
    job_pods(client, job)
        .await
        .into_iter()
        .filter(is_live)
        .collect()
}

async fn wait_live(client: &Client, job: &str, count: usize) -> Vec<Pod> {
    eventually(&format!("{count} live pods of {job}"), WAIT, || async {
        let live = live_pods(client, job).await;
        (live.len() == count).then_some(live)
    })
    .await
}

async fn wait_condition(client: &Client, job: &str, type_: &str) -> Job {
    eventually(&format!("{job} {type_}"), WAIT, || async {
        let job = get_job(client, job).await;
        condition(&job, type_).is_some().then_some(job)
    })
    .await
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap()
}

#[tokio::test]
async fn a_job_runs_two_pods_at_a_time_until_three_complete() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    let job = create_job(
        &client,
        json!({"name": "pi", "spec": {"completions": 3, "parallelism": 2, "template": pod_template()}}),
    )
    .await;
    let first = wait_live(&client, "pi", 2).await;
    let pod = &first[0];
    let labels = pod.metadata.labels.clone().unwrap();
    let uid = job.metadata.uid.clone().unwrap();
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["job-name"], "pi");
    assert_eq!(labels["app"], "batch-test");
    assert!(name(pod).starts_with("pi-"));
    assert_eq!(
        pod.metadata.finalizers.clone().unwrap(),
        ["batch.kubernetes.io/job-tracking"]
    );
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Job", uid.as_str(), Some(true))
    );
    for pod in &first {
        run_pod(&client, &name(pod)).await;
    }
    eventually("two ready", WAIT, || async {
        let job = get_job(&client, "pi").await;
        let status = job.status.unwrap_or_default();
        (status.active == Some(2) && status.ready == Some(2)).then_some(())
    })
    .await;

    finish_pod(&client, &name(&first[0]), 0).await;
    // One completion left to start: a third pod, never more than two at once.
    let second = eventually("a replacement pod", WAIT, || async {
        let live = live_pods(&client, "pi").await;
        assert!(
            live.len() <= 2,
            "more than parallelism pods: {}",
            live.len()
        );
        live.iter().find(|p| name(p) != name(&first[1])).cloned()
    })
    .await;
    finish_pod(&client, &name(&first[1]), 0).await;
    finish_pod(&client, &name(&second), 0).await;

    let job = wait_condition(&client, "pi", "Complete").await;
    let status = job.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.active, None);
    assert_eq!(status.failed, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let met = condition(&job, "SuccessCriteriaMet").expect("interim condition");
    assert_eq!(met.reason.as_deref(), Some("CompletionsReached"));
    let complete = condition(&job, "Complete").unwrap();
    assert_eq!(
        complete.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    // Every pod was counted, so none keeps the tracking finalizer.
    let pods = job_pods(&client, "pi").await;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p.metadata.finalizers.clone().unwrap_or_default().is_empty())
    );
    let created = eventually("creation events", WAIT, || async {
        // The recorder folds repeats of a reason into one series.
        let notes = events(&client, "pi", "SuccessfulCreate").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(created.iter().all(|n| n.starts_with("Created pod: pi-")));
    eventually("completed event", WAIT, || async {
        (events(&client, "pi", "Completed").await == ["Job completed"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_indexed_job_runs_each_index_once_and_recreates_a_failed_index() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    create_job(
        &client,
        json!({"name": "idx", "spec": {"completions": 3, "parallelism": 3,
               "completionMode": "Indexed", "template": pod_template()}}),
    )
    .await;
    let pods = wait_live(&client, "idx", 3).await;
    let mut indexes = BTreeSet::new();
    for pod in &pods {
        let index =
            pod.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                .clone();
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
            index
        );
        assert!(name(pod).starts_with(&format!("idx-{index}-")));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.hostname.as_deref(),
            Some(format!("idx-{index}").as_str())
        );
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
        indexes.insert(index);
    }
    assert_eq!(
        indexes,
        BTreeSet::from(["0".into(), "1".into(), "2".into()])
    );
    let by_index = |index: &str| {
        pods.iter()
            .find(|p| {
                p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                    == index
            })
            .map(name)
            .unwrap()
    };
    finish_pod(&client, &by_index("0"), 0).await;
    finish_pod(&client, &by_index("2"), 0).await;
    finish_pod(&client, &by_index("1"), 1).await;
    eventually("completedIndexes 0,2", WAIT, || async {
        let job = get_job(&client, "idx").await;
        (job.status.and_then(|s| s.completed_indexes).as_deref() == Some("0,2")).then_some(())
    })
    .await;
    // Only index 1 is started again.
    let again = eventually("index 1 again", WAIT, || async {
        let live = live_pods(&client, "idx").await;
        (live.len() == 1).then(|| live[0].clone())
    })
    .await;
    assert_eq!(
        again.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
        "1"
    );
    finish_pod(&client, &name(&again), 0).await;
    let job = wait_condition(&client, "idx", "Complete").await;
    let status = job.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!((status.succeeded, status.failed), (Some(3), Some(1)));
}

#[tokio::test]
async fn a_failing_job_stops_at_its_backoff_limit_with_growing_delays() {
    let config = JobConfig {
        pod_failure_backoff: Duration::from_millis(800),
        ..quick_config()
    };
    let (_cluster, client, _controller) = start_jobs(config).await;
    create_job(
        &client,
        json!({"name": "flaky", "spec": {"backoffLimit": 2, "template": pod_template()}}),
    )
    .await;
    let mut gaps = Vec::new();
    let mut failed_at: Option<Instant> = None;
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let pod = eventually("the next pod", WAIT, || async {
            live_pods(&client, "flaky")
                .await
                .into_iter()
                .find(|p| !seen.contains(&name(p)))
        })
        .await;
        if let Some(failed_at) = failed_at {
            gaps.push(failed_at.elapsed());
        }
        seen.insert(name(&pod));
        finish_pod(&client, &name(&pod), 1).await;
        failed_at = Some(Instant::now());
    }
    let job = wait_condition(&client, "flaky", "Failed").await;
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert_eq!(
        condition(&job, "FailureTarget").unwrap().reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(job.status.as_ref().unwrap().failed, Some(3));
    // The second replacement waited about twice as long as the first.
    assert!(
        gaps[0] >= Duration::from_millis(300),
        "first delay {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] > gaps[0] + Duration::from_millis(300),
        "delays {gaps:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        job_pods(&client, "flaky").await.len(),
        3,
        "no pod after the limit"
    );
    eventually("failure event", WAIT, || async {
        (events(&client, "flaky", "BackoffLimitExceeded").await
            == ["Job has reached the specified backoff limit"])
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn active_deadline_seconds_fails_the_job_and_removes_its_pods() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    create_job(
        &client,
        json!({"name": "slow", "spec": {"parallelism": 2, "completions": 4,
               "activeDeadlineSeconds": 2, "template": pod_template()}}),
    )
    .await;
    let pods = wait_live(&client, "slow", 2).await;
    run_pod(&client, &name(&pods[0])).await;
    let job = wait_condition(&client, "slow", "Failed").await;
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    let status = job.status.unwrap();
    assert_eq!((status.active, status.failed), (None, Some(2)));
    eventually("pods gone", WAIT, || async {
        job_pods(&client, "slow").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn suspending_deletes_the_pods_and_resuming_restarts_the_clock() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    create_job(
        &client,
        json!({"name": "pausable", "spec": {"parallelism": 2, "completions": 2, "template": pod_template()}}),
    )
    .await;
    wait_live(&client, "pausable", 2).await;
    let started = get_job(&client, "pausable")
        .await
        .status
        .unwrap()
        .start_time
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let suspend = |value: bool| json!({"spec": {"suspend": value}});
    jobs.patch(
        "pausable",
        &PatchParams::default(),
        &Patch::Merge(suspend(true)),
    )
    .await
    .unwrap();
    let job = wait_condition(&client, "pausable", "Suspended").await;
    let suspended = condition(&job, "Suspended").unwrap();
    assert_eq!(
        (suspended.reason.as_deref(), suspended.message.as_deref()),
        (Some("JobSuspended"), Some("Job suspended"))
    );
    eventually("pods deleted", WAIT, || async {
        job_pods(&client, "pausable").await.is_empty().then_some(())
    })
    .await;
    let status = get_job(&client, "pausable").await.status.unwrap();
    assert_eq!(
        (status.active, status.failed),
        (None, None),
        "deleted pods are not failures"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    jobs.patch(
        "pausable",
        &PatchParams::default(),
        &Patch::Merge(suspend(false)),
    )
    .await
    .unwrap();
    wait_live(&client, "pausable", 2).await;
    let job = eventually("resumed", WAIT, || async {
        let job = get_job(&client, "pausable").await;
        let resumed = job.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
            c.type_ == "Suspended"
                && c.status == "False"
                && c.reason.as_deref() == Some("JobResumed")
        });
        resumed.then_some(job)
    })
    .await;
    assert!(
        job.status.unwrap().start_time.unwrap().0 > started.0,
        "startTime reset on resume"
    );
    eventually("events", WAIT, || async {
        let suspended = events(&client, "pausable", "Suspended").await;
        let resumed = events(&client, "pausable", "Resumed").await;
        (suspended == ["Job suspended"] && resumed == ["Job resumed"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_pod_failure_policy_fails_the_job_on_an_exit_code() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    create_job(
        &client,
        json!({"name": "strict", "spec": {"parallelism": 2, "completions": 2, "backoffLimit": 6,
               "podFailurePolicy": {"rules": [
                   {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                   {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}
               ]},
               "template": pod_template()}}),
    )
    .await;
    let pods = wait_live(&client, "strict", 2).await;
    // A disruption matches the Ignore rule: not counted, just replaced.
    disrupt_pod(&client, &name(&pods[1])).await;
    let pods = eventually("replacement of the disrupted pod", WAIT, || async {
        let live = live_pods(&client, "strict").await;
        (live.len() == 2 && live.iter().all(|p| name(p) != name(&pods[1]))).then_some(live)
    })
    .await;
    let status = get_job(&client, "strict").await.status.unwrap();
    assert_eq!(status.failed, None, "ignored failures are not counted");
    assert!(condition(&get_job(&client, "strict").await, "Failed").is_none());
    let culprit = name(&pods[0]);
    finish_pod(&client, &culprit, 42).await;
    let job = wait_condition(&client, "strict", "Failed").await;
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        failed.message.clone().unwrap(),
        format!(
            "Container main for pod default/{culprit} failed with exit code 42 matching FailJob rule at index 1"
        )
    );
    assert!(condition(&job, "FailureTarget").is_some());
    eventually("other pod deleted", WAIT, || async {
        live_pods(&client, "strict").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_finished_job_is_deleted_in_the_foreground_after_its_ttl() {
    let (_cluster, client, informers) = start().await.unwrap();
    let jobs_task = tokio::spawn({
        let (client, informers) = (client.clone(), informers.clone());
        async move {
            batch::run_jobs(client, informers, 1, quick_config())
                .await
                .unwrap()
        }
    });
    let ttl_task = tokio::spawn({
        let client = client.clone();
        async move {
            batch::run_ttl_after_finished(client, informers, 1, Arc::new(SystemClock))
                .await
                .unwrap()
        }
    });
    create_job(
        &client,
        json!({"name": "brief", "spec": {"ttlSecondsAfterFinished": 1, "template": pod_template()}}),
    )
    .await;
    let pods = wait_live(&client, "brief", 1).await;
    finish_pod(&client, &name(&pods[0]), 0).await;
    wait_condition(&client, "brief", "Complete").await;
    // No garbage collector runs here, so the Job stays, marked for
    // foreground deletion.
    let job = eventually("deletion", WAIT, || async {
        let job = get_job(&client, "brief").await;
        job.metadata.deletion_timestamp.is_some().then_some(job)
    })
    .await;
    assert!(
        job.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    jobs_task.abort();
    ttl_task.abort();
}

fn index_of(pod: &Pod) -> String {
    pod.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"].clone()
}

#[tokio::test]
async fn an_index_that_fails_past_its_own_backoff_limit_fails_the_job() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    create_job(
        &client,
        json!({"name": "perindex", "spec": {"completions": 2, "parallelism": 2,
               "completionMode": "Indexed", "backoffLimitPerIndex": 1, "template": pod_template()}}),
    )
    .await;
    let pods = wait_live(&client, "perindex", 2).await;
    let zero = pods.iter().find(|p| index_of(p) == "0").unwrap();
    let one = pods.iter().find(|p| index_of(p) == "1").unwrap();
    assert_eq!(
        zero.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-index-failure-count"],
        "0"
    );
    finish_pod(&client, &name(zero), 1).await;
    // Index 0 gets a second try that remembers the first failure.
    let retry = eventually("index 0 again", WAIT, || async {
        live_pods(&client, "perindex")
            .await
            .into_iter()
            .find(|p| index_of(p) == "0")
    })
    .await;
    assert_eq!(
        retry.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-index-failure-count"],
        "1"
    );
    finish_pod(&client, &name(&retry), 1).await;
    eventually("failedIndexes", WAIT, || async {
        let status = get_job(&client, "perindex").await.status?;
        (status.failed_indexes.as_deref() == Some("0")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !live_pods(&client, "perindex")
            .await
            .iter()
            .any(|p| index_of(p) == "0"),
        "a failed index is not retried"
    );
    finish_pod(&client, &name(one), 0).await;
    let job = wait_condition(&client, "perindex", "Failed").await;
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(
        (failed.reason.as_deref(), failed.message.as_deref()),
        (Some("FailedIndexes"), Some("Job has failed indexes"))
    );
    let status = job.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("1"));
    assert_eq!((status.succeeded, status.failed), (Some(1), Some(2)));
}

#[tokio::test]
async fn a_job_adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    let job = create_job(
        &client,
        json!({"name": "owner", "spec": {"parallelism": 2, "completions": 4, "template": pod_template()}}),
    )
    .await;
    let uid = job.metadata.uid.clone().unwrap();
    let pods = wait_live(&client, "owner", 2).await;
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let (first, second) = (name(&pods[0]), name(&pods[1]));
    api.patch(
        &first,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
    )
    .await
    .unwrap();
    eventually("re-adopted", WAIT, || async {
        let pod = api.get(&first).await.ok()?;
        let owners = pod.metadata.owner_references.unwrap_or_default();
        (owners.len() == 1 && owners[0].uid == uid && owners[0].controller == Some(true))
            .then_some(())
    })
    .await;

    api.patch(
        &second,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "someone-else"}}}),
        ),
    )
    .await
    .unwrap();
    let released = eventually("released", WAIT, || async {
        let pod = api.get(&second).await.ok()?;
        let unowned = pod
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty);
        let unfinalized = pod.metadata.finalizers.as_ref().is_none_or(Vec::is_empty);
        (unowned && unfinalized).then_some(pod)
    })
    .await;
    assert!(is_live(&released));
    // The Job replaces what it let go.
    eventually("replacement", WAIT, || async {
        let owned: Vec<Pod> = live_pods(&client, "owner")
            .await
            .into_iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o.uid == uid))
            })
            .collect();
        (owned.len() == 2 && owned.iter().all(|p| name(p) != second)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_success_policy_completes_an_indexed_job_early() {
    let (_cluster, client, _controller) = start_jobs(quick_config()).await;
    create_job(
        &client,
        json!({"name": "leader", "spec": {"completions": 3, "parallelism": 3, "completionMode": "Indexed",
               "successPolicy": {"rules": [{"succeededIndexes": "0"}]}, "template": pod_template()}}),
    )
    .await;
    let pods = wait_live(&client, "leader", 3).await;
    let zero = pods.iter().find(|p| index_of(p) == "0").unwrap();
    finish_pod(&client, &name(zero), 0).await;
    let job = wait_condition(&client, "leader", "Complete").await;
    for type_ in ["SuccessCriteriaMet", "Complete"] {
        let condition = condition(&job, type_).unwrap();
        assert_eq!(
            (condition.reason.as_deref(), condition.message.as_deref()),
            (Some("SuccessPolicy"), Some("Matched rules at index 0")),
            "{type_}"
        );
    }
    assert_eq!(job.status.unwrap().completed_indexes.as_deref(), Some("0"));
    assert!(
        live_pods(&client, "leader").await.is_empty(),
        "the other indexes were stopped"
    );
}
