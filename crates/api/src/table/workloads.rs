//! Tables for workload controllers: deployments, replica sets, stateful and daemon sets, revisions, jobs, cron jobs, autoscalers and disruption budgets.

use serde_json::{Value, json};

use super::fields::{
    at, container_cells, flag, format_label_selector, format_labels, int, int_or_string,
    label_selector, list, name, object, opt_int, opt_text, optional_quantity, text,
};
use super::time::{Instant, human_duration_nanos};
use super::{AGE, Clock, NAME, Printer, WIDE_CONTAINERS, WIDE_IMAGES, column, wide};

/// `spec.replicas` as the v1 decoder defaults it.
fn desired_replicas(object: &Value) -> i64 {
    opt_int(object, &["spec", "replicas"]).unwrap_or(1)
}

pub(super) const DEPLOYMENTS: Printer = Printer::new(
    &[
        NAME,
        column("Ready", "string", "Number of the pod with ready state"),
        column(
            "Up-to-date",
            "string",
            "Number of pods running the latest pod template.",
        ),
        column(
            "Available",
            "string",
            "Number of pods available to serve for at least minReadySeconds.",
        ),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
        wide(
            "Selector",
            "string",
            "Label query over the pods the deployment manages.",
        ),
    ],
    |deployment, clock| {
        let (containers, images) = container_cells(at(deployment, &["spec", "template", "spec"]));
        // Unlike most kinds, an empty deployment selector prints as an empty cell.
        let selector = label_selector(at(deployment, &["spec", "selector"]))
            .unwrap_or_else(|_| "<invalid>".to_string());
        vec![
            name(deployment).into(),
            format!(
                "{}/{}",
                int(deployment, &["status", "readyReplicas"]),
                desired_replicas(deployment)
            )
            .into(),
            int(deployment, &["status", "updatedReplicas"]).into(),
            int(deployment, &["status", "availableReplicas"]).into(),
            clock.age(deployment).into(),
            containers.into(),
            images.into(),
            selector.into(),
        ]
    },
);

pub(super) const REPLICA_SETS: Printer = Printer::new(
    &[
        NAME,
        column("Desired", "integer", "Number of replicas wanted."),
        column(
            "Current",
            "integer",
            "Number of replicas most recently observed.",
        ),
        column("Ready", "integer", "Number of ready replicas."),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
        wide(
            "Selector",
            "string",
            "Label query over the pods the replica set manages.",
        ),
    ],
    |replica_set, clock| {
        let (containers, images) = container_cells(at(replica_set, &["spec", "template", "spec"]));
        vec![
            name(replica_set).into(),
            desired_replicas(replica_set).into(),
            int(replica_set, &["status", "replicas"]).into(),
            int(replica_set, &["status", "readyReplicas"]).into(),
            clock.age(replica_set).into(),
            containers.into(),
            images.into(),
            format_label_selector(at(replica_set, &["spec", "selector"])).into(),
        ]
    },
);

pub(super) const STATEFUL_SETS: Printer = Printer::new(
    &[
        NAME,
        column("Ready", "string", "Number of the pod with ready state"),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
    ],
    |stateful_set, clock| {
        let (containers, images) = container_cells(at(stateful_set, &["spec", "template", "spec"]));
        vec![
            name(stateful_set).into(),
            format!(
                "{}/{}",
                int(stateful_set, &["status", "readyReplicas"]),
                desired_replicas(stateful_set)
            )
            .into(),
            clock.age(stateful_set).into(),
            containers.into(),
            images.into(),
        ]
    },
);

pub(super) const DAEMON_SETS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Desired",
            "integer",
            "Number of nodes that should run the daemon pod.",
        ),
        column(
            "Current",
            "integer",
            "Number of nodes running at least one daemon pod that should.",
        ),
        column(
            "Ready",
            "integer",
            "Number of nodes whose daemon pod is ready.",
        ),
        column(
            "Up-to-date",
            "integer",
            "Number of nodes running the latest daemon pod template.",
        ),
        column(
            "Available",
            "integer",
            "Number of nodes whose daemon pod is available.",
        ),
        column(
            "Node Selector",
            "string",
            "Node labels the daemon pods are restricted to.",
        ),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
        wide(
            "Selector",
            "string",
            "Label query over the pods the daemon set manages.",
        ),
    ],
    |daemon_set, clock| {
        let (containers, images) = container_cells(at(daemon_set, &["spec", "template", "spec"]));
        vec![
            name(daemon_set).into(),
            int(daemon_set, &["status", "desiredNumberScheduled"]).into(),
            int(daemon_set, &["status", "currentNumberScheduled"]).into(),
            int(daemon_set, &["status", "numberReady"]).into(),
            int(daemon_set, &["status", "updatedNumberScheduled"]).into(),
            int(daemon_set, &["status", "numberAvailable"]).into(),
            format_labels(object(
                daemon_set,
                &["spec", "template", "spec", "nodeSelector"],
            ))
            .into(),
            clock.age(daemon_set).into(),
            containers.into(),
            images.into(),
            format_label_selector(at(daemon_set, &["spec", "selector"])).into(),
        ]
    },
);

pub(super) const CONTROLLER_REVISIONS: Printer = Printer::new(
    &[
        NAME,
        column("Controller", "string", "Controller of the object"),
        column("Revision", "string", "Revision number of the stored state."),
        AGE,
    ],
    |revision, clock| {
        vec![
            name(revision).into(),
            controller_name(revision).into(),
            int(revision, &["revision"]).into(),
            clock.age(revision).into(),
        ]
    },
);

/// The controlling owner as `kind.group/name` in lower case, `<none>` without one.
fn controller_name(object: &Value) -> String {
    let Some(owner) = list(object, &["metadata", "ownerReferences"])
        .iter()
        .find(|owner| flag(owner, &["controller"]) == Some(true))
    else {
        return "<none>".to_string();
    };
    let group = match text(owner, &["apiVersion"]).split_once('/') {
        Some((group, _version)) => group,
        None => "",
    };
    let kind = text(owner, &["kind"]);
    let owner_name = text(owner, &["name"]);
    match (kind, group) {
        ("", "") => owner_name.to_string(),
        (kind, "") => format!("{}/{owner_name}", kind.to_lowercase()),
        (kind, group) => format!(
            "{}.{}/{owner_name}",
            kind.to_lowercase(),
            group.to_lowercase()
        ),
    }
}

pub(super) const JOBS: Printer = Printer::new(
    &[
        NAME,
        column("Status", "string", "Status of the job."),
        column(
            "Completions",
            "string",
            "Succeeded pods out of the completions wanted.",
        ),
        column("Duration", "string", "Time required to complete the job."),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
        wide("Selector", "string", "Label query over the job's pods."),
    ],
    job_cells,
);

/// The status of the first condition of `condition_type` is True.
fn has_condition(object: &Value, condition_type: &str) -> bool {
    list(object, &["status", "conditions"])
        .iter()
        .find(|condition| text(condition, &["type"]) == condition_type)
        .is_some_and(|condition| text(condition, &["status"]) == "True")
}

fn job_cells(job: &Value, clock: &Clock) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(wanted) => format!("{succeeded}/{wanted}"),
        None => match opt_int(job, &["spec", "parallelism"]) {
            Some(parallelism) if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };

    let started = at(job, &["status", "startTime"]);
    let duration = match (
        started,
        Instant::from_value(at(job, &["status", "completionTime"])),
    ) {
        (None, _) => String::new(),
        (Some(started), None) => clock.since(Some(started)),
        (Some(started), Some(completed)) => {
            let started = Instant::from_value(Some(started)).unwrap_or_else(super::time::zero_time);
            human_duration_nanos(completed.0 - started.0)
        }
    };

    let status = if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if at(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };

    let (containers, images) = container_cells(at(job, &["spec", "template", "spec"]));
    vec![
        name(job).into(),
        status.into(),
        completions.into(),
        duration.into(),
        clock.age(job).into(),
        containers.into(),
        images.into(),
        format_label_selector(at(job, &["spec", "selector"])).into(),
    ]
}

pub(super) const CRON_JOBS: Printer = Printer::new(
    &[
        NAME,
        column("Schedule", "string", "The schedule in Cron format."),
        column(
            "Timezone",
            "string",
            "The time zone the schedule is interpreted in.",
        ),
        column(
            "Suspend",
            "boolean",
            "Whether subsequent executions are suspended.",
        ),
        column("Active", "integer", "Number of currently running jobs."),
        column("Last Schedule", "string", "When a job was last scheduled."),
        AGE,
        WIDE_CONTAINERS,
        WIDE_IMAGES,
        wide("Selector", "string", "Label query over the jobs' pods."),
    ],
    |cron_job, clock| {
        let last_schedule = match at(cron_job, &["status", "lastScheduleTime"]) {
            Some(scheduled) => clock.since(Some(scheduled)),
            None => "<none>".to_string(),
        };
        let suspended = flag(cron_job, &["spec", "suspend"]) == Some(true);
        let job_spec = at(cron_job, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
        let (containers, images) = container_cells(at(job_spec, &["template", "spec"]));
        vec![
            name(cron_job).into(),
            text(cron_job, &["spec", "schedule"]).into(),
            opt_text(cron_job, &["spec", "timeZone"])
                .unwrap_or("<none>")
                .into(),
            if suspended { "True" } else { "False" }.into(),
            (list(cron_job, &["status", "active"]).len() as i64).into(),
            last_schedule.into(),
            clock.age(cron_job).into(),
            containers.into(),
            images.into(),
            format_label_selector(at(job_spec, &["selector"])).into(),
        ]
    },
);

pub(super) const HORIZONTAL_POD_AUTOSCALERS: Printer = Printer::new(
    &[
        NAME,
        column("Reference", "string", "The resource being scaled."),
        column(
            "Targets",
            "string",
            "Current and target values of the scaling metrics.",
        ),
        column(
            "MinPods",
            "string",
            "Lower limit for the number of replicas.",
        ),
        column(
            "MaxPods",
            "string",
            "Upper limit for the number of replicas.",
        ),
        column("Replicas", "string", "Current number of replicas."),
        AGE,
    ],
    |autoscaler, clock| {
        let target = at(autoscaler, &["spec", "scaleTargetRef"]).unwrap_or(&Value::Null);
        vec![
            name(autoscaler).into(),
            format!("{}/{}", text(target, &["kind"]), text(target, &["name"])).into(),
            format_hpa_metrics(autoscaler).into(),
            opt_int(autoscaler, &["spec", "minReplicas"])
                .unwrap_or(1)
                .to_string()
                .into(),
            int(autoscaler, &["spec", "maxReplicas"]).into(),
            int(autoscaler, &["status", "currentReplicas"]).into(),
            clock.age(autoscaler).into(),
        ]
    },
);

/// The HPA's metric specs and statuses in autoscaling/v2 shape. An
/// autoscaling/v1 object's CPU fields become one Resource metric, and no
/// metric at all means the 80% CPU target v2 defaulting adds.
fn hpa_metrics(autoscaler: &Value) -> (Vec<Value>, Vec<Value>) {
    let specs = list(autoscaler, &["spec", "metrics"]);
    if !specs.is_empty() {
        return (
            specs.to_vec(),
            list(autoscaler, &["status", "currentMetrics"]).to_vec(),
        );
    }
    let target = opt_int(autoscaler, &["spec", "targetCPUUtilizationPercentage"]).unwrap_or(80);
    let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
    let statuses = opt_int(autoscaler, &["status", "currentCPUUtilizationPercentage"])
        .map(|current| json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}))
        .into_iter()
        .collect();
    (vec![spec], statuses)
}

fn format_hpa_metrics(autoscaler: &Value) -> String {
    const MAX_SHOWN: usize = 2;
    let (specs, statuses) = hpa_metrics(autoscaler);
    // Statuses pair with specs by position, as upstream reads them.
    let status_of =
        |index: usize, source: &str| statuses.get(index).and_then(|status| at(status, &[source]));
    let unknown = || "<unknown>".to_string();
    let entries: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(index, spec)| match text(spec, &["type"]) {
            source_type @ ("External" | "Object") => {
                let source = if source_type == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = at(spec, &[source, "target"]).unwrap_or(&Value::Null);
                let status = status_of(index, source);
                if let Some(average) = at(target, &["averageValue"]) {
                    let current = status
                        .and_then(|status| at(status, &["current", "averageValue"]))
                        .map_or_else(unknown, |value| optional_quantity(Some(value)));
                    format!("{current}/{} (avg)", optional_quantity(Some(average)))
                } else {
                    let current = status.map_or_else(unknown, |status| {
                        optional_quantity(at(status, &["current", "value"]))
                    });
                    format!("{current}/{}", optional_quantity(at(target, &["value"])))
                }
            }
            "Pods" => {
                let current = status_of(index, "pods").map_or_else(unknown, |status| {
                    optional_quantity(at(status, &["current", "averageValue"]))
                });
                format!(
                    "{current}/{}",
                    optional_quantity(at(spec, &["pods", "target", "averageValue"]))
                )
            }
            source_type @ ("Resource" | "ContainerResource") => {
                let source = if source_type == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let resource = text(spec, &[source, "name"]);
                let target = at(spec, &[source, "target"]).unwrap_or(&Value::Null);
                let status = status_of(index, source);
                if let Some(average) = at(target, &["averageValue"]) {
                    let current = status.map_or_else(unknown, |status| {
                        optional_quantity(at(status, &["current", "averageValue"]))
                    });
                    format!("{resource}: {current}/{}", optional_quantity(Some(average)))
                } else {
                    let current = status
                        .and_then(|status| opt_int(status, &["current", "averageUtilization"]))
                        .map_or_else(unknown, |percent| format!("{percent}%"));
                    let wanted = opt_int(target, &["averageUtilization"])
                        .map_or_else(|| "<auto>".to_string(), |percent| format!("{percent}%"));
                    format!("{resource}: {current}/{wanted}")
                }
            }
            _ => "<unknown type>".to_string(),
        })
        .collect();
    let shown = entries
        .iter()
        .take(MAX_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if entries.len() > MAX_SHOWN {
        format!("{shown} + {} more...", entries.len() - MAX_SHOWN)
    } else {
        shown
    }
}

pub(super) const POD_DISRUPTION_BUDGETS: Printer = Printer::new(
    &[
        NAME,
        column(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        column(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        column(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    |budget, clock| {
        let bound = |field: &str| {
            at(budget, &["spec", field]).map_or_else(|| "N/A".to_string(), int_or_string)
        };
        vec![
            name(budget).into(),
            bound("minAvailable").into(),
            bound("maxUnavailable").into(),
            int(budget, &["status", "disruptionsAllowed"]).into(),
            clock.age(budget).into(),
        ]
    },
);
