//! The pods/eviction subresource (policy/v1 Eviction): a pod delete that first asks the pod's PodDisruptionBudget for permission, as kube-apiserver's EvictionREST does.
//!
//! Upstream's rules, reproduced here:
//! - pods that are Pending, Succeeded, Failed or already being deleted are
//!   deleted without consulting any budget (they disrupt nothing more);
//! - a pod matched by more than one budget cannot be evicted (500);
//! - a budget whose controller has not observed its latest generation, or
//!   that allows no disruption, refuses with 429 TooManyRequests;
//! - otherwise the budget's `status.disruptionsAllowed` is decremented and
//!   the pod recorded in `status.disruptedPods` with a compare-and-swap
//!   write (retried on conflict), and then the pod is deleted through the
//!   ordinary delete path, with the eviction's `deleteOptions`.
//!
//! krust has no disruption controller yet, so a budget's status stays as
//! whoever last wrote it through `poddisruptionbudgets/status` left it.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use storage::{ListRequest, Precondition, StorageError};

use super::{Reply, Rest, dry_run, name_of, parse_body};
use crate::objects::{self, meta_str};
use crate::request::Target;
use crate::status::{ApiError, from_storage};

/// How often a conflicting write is retried, as upstream's EvictionsRetry (20 steps).
const CONFLICT_RETRIES: usize = 20;
/// Upstream's MaxDisruptedPodSize: a budget recording more evictions than
/// this, not yet confirmed by its controller, refuses further ones.
const MAX_DISRUPTED_PODS: usize = 2000;
const BUDGET_VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

impl Rest {
    /// POST pods/NAME/eviction.
    pub async fn evict(
        &self,
        target: &Target,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let name = name_of(target)?.to_string();
        let eviction = parse_body(body)?;
        check_eviction_kind(&eviction)?;
        if meta_str(&eviction, "name").unwrap_or_default() != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let query_dry_run = dry_run(query)?;
        let delete_options = merged_delete_options(&eviction, query_dry_run)?;
        let evicting_dry_run = query_dry_run
            || delete_options["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let pod_target = Target {
            subresource: None,
            ..target.clone()
        };
        // With its own resourceVersion precondition the caller asked for one
        // exact pod state: a conflict is then the answer, not a reason to retry.
        let caller_pins_version = !precondition_version_unset(&delete_options);

        let mut attempts = 0;
        let (pod, pod_revision) = loop {
            attempts += 1;
            let (pod, revision) = self.read(&pod_target, &name).await?;
            if !can_ignore_budget(&pod) {
                break (pod, revision);
            }
            let mut options = delete_options.clone();
            if enforces_resource_version(&pod) && !caller_pins_version {
                // Guards against the pod turning Running (and budget-relevant) meanwhile.
                set_precondition_version(&mut options, revision);
            }
            match self.delete_pod(&pod_target, &options, query_dry_run).await {
                Err(error)
                    if is_conflict(&error)
                        && !caller_pins_version
                        && attempts < CONFLICT_RETRIES =>
                {
                    continue;
                }
                Err(error) => return Err(error),
                Ok(()) => return Ok(success()),
            }
        };

        let namespace = target.namespace.as_deref().unwrap_or_default();
        let mut budgets = self.budgets_selecting(namespace, &pod).await?;
        if budgets.len() > 1 {
            // Upstream answers this as a returned Status, hence no reason.
            return Ok(Reply::with_code(
                500,
                json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    "code": 500,
                }),
            ));
        }
        let mut options = delete_options;
        let mut pinned_by_eviction = false;
        if let Some((budget, budget_revision)) = budgets.pop() {
            let budget_name = meta_str(&budget, "name").unwrap_or_default().to_string();
            let status = &budget["status"];
            let current_healthy = status["currentHealthy"].as_i64().unwrap_or(0);
            let desired_healthy = status["desiredHealthy"].as_i64().unwrap_or(0);
            if !is_pod_ready(&pod) && current_healthy >= desired_healthy && desired_healthy > 0 {
                // An unready pod does not count as healthy, so evicting it
                // costs the budget nothing, provided it stays unready until
                // the delete: pin the pod's version for that.
                if !caller_pins_version {
                    set_precondition_version(&mut options, pod_revision);
                    pinned_by_eviction = true;
                }
            } else {
                self.take_disruption(namespace, &name, budget, budget_revision, evicting_dry_run)
                    .await?;
            }
            match self.delete_pod(&pod_target, &options, query_dry_run).await {
                Err(error) if is_conflict(&error) && pinned_by_eviction => {
                    return Err(too_many_requests_processing(&budget_name));
                }
                Err(error) => return Err(error),
                Ok(()) => return Ok(success()),
            }
        }
        self.delete_pod(&pod_target, &options, query_dry_run)
            .await
            .map(|()| success())
    }

    /// Deletes the pod through the ordinary delete path, with `options` as
    /// its DeleteOptions body; only `dryRun` carries over from the query.
    async fn delete_pod(
        &self,
        pod_target: &Target,
        options: &Value,
        query_dry_run: bool,
    ) -> Result<(), ApiError> {
        let mut query = HashMap::new();
        if query_dry_run {
            query.insert("dryRun".to_string(), "All".to_string());
        }
        let body = serde_json::to_vec(options).unwrap_or_default();
        self.delete(pod_target, &body, &query).await.map(|_| ())
    }

    /// The PodDisruptionBudgets of `namespace` whose selector matches the
    /// pod's labels, each with its storage revision. A budget with a missing,
    /// empty or unparsable selector matches nothing, as upstream.
    async fn budgets_selecting(
        &self,
        namespace: &str,
        pod: &Value,
    ) -> Result<Vec<(Value, i64)>, ApiError> {
        let budgets = budget_resource();
        let page = self
            .storage
            .list(ListRequest {
                prefix: objects::collection_prefix(budgets, Some(namespace)),
                start_after: None,
                revision: 0,
                limit: 0,
            })
            .await
            .map_err(|e| from_storage(e, budgets.group, budgets.plural, ""))?;
        let labels = objects::metadata(pod)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        Ok(page
            .kvs
            .iter()
            .filter_map(|kv| Some((objects::decode(kv)?, kv.mod_revision)))
            .filter(|(budget, _)| {
                let Some(selector) = budget["spec"].get("selector") else {
                    return false;
                };
                api::selector::LabelSelector::from_label_selector_json(selector)
                    .is_ok_and(|selector| !selector.is_everything() && selector.matches(labels))
            })
            .collect())
    }

    /// Checks that the budget allows one more disruption and records it:
    /// `disruptionsAllowed` one lower and the pod in `disruptedPods`, written
    /// as a compare-and-swap on the budget, re-read and re-checked on conflict.
    async fn take_disruption(
        &self,
        namespace: &str,
        pod_name: &str,
        mut budget: Value,
        mut revision: i64,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let budgets = budget_resource();
        let budget_name = meta_str(&budget, "name").unwrap_or_default().to_string();
        let key = objects::key(budgets, Some(namespace), &budget_name);
        for _ in 0..CONFLICT_RETRIES {
            let mut updated = budget.clone();
            record_disruption(&mut updated, pod_name, &objects::now_rfc3339())?;
            if dry_run {
                return Ok(());
            }
            match self
                .storage
                .put(
                    &key,
                    objects::encode(&updated),
                    Precondition::ModRevision(revision),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(StorageError::PreconditionFailed {
                    current: Some(_), ..
                }) => {
                    let kv = self
                        .storage
                        .get(&key, 0)
                        .await
                        .map_err(|e| from_storage(e, budgets.group, budgets.plural, &budget_name))?
                        .ok_or_else(|| {
                            ApiError::not_found(budgets.group, budgets.plural, &budget_name)
                        })?;
                    budget = objects::decode(&kv).ok_or_else(|| {
                        ApiError::internal(format!("stored object {key} is not JSON"))
                    })?;
                    revision = kv.mod_revision;
                }
                Err(error) => {
                    return Err(from_storage(
                        error,
                        budgets.group,
                        budgets.plural,
                        &budget_name,
                    ));
                }
            }
        }
        Err(ApiError {
            code: 504,
            reason: "Timeout",
            message: format!(
                "Timeout: couldn't update PodDisruptionBudget {budget_name:?} due to conflicts"
            ),
            details: Some(json!({"retryAfterSeconds": 10})),
        })
    }
}

fn budget_resource() -> &'static api::resources::Resource {
    api::resources::find("policy", "v1", "poddisruptionbudgets")
        .expect("poddisruptionbudgets are built in")
}

/// Upstream decodes the body as policy/v1 or policy/v1beta1 Eviction; a
/// body without apiVersion or kind is read as the expected kind.
fn check_eviction_kind(eviction: &Value) -> Result<(), ApiError> {
    let api_version = eviction["apiVersion"].as_str().unwrap_or_default();
    if !matches!(api_version, "" | "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (policy/v1)"
        )));
    }
    let kind = eviction["kind"].as_str().unwrap_or_default();
    if !matches!(kind, "" | "Eviction") {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind (Eviction)"
        )));
    }
    Ok(())
}

/// The eviction's `deleteOptions` with the request's dryRun folded in, as
/// upstream's propagateDryRun: either side may set it, but both setting
/// different values is an error.
fn merged_delete_options(eviction: &Value, query_dry_run: bool) -> Result<Value, ApiError> {
    let mut options = match eviction.get("deleteOptions") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(options)) => Value::Object(options.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "error decoding request body: deleteOptions must be an object",
            ));
        }
    };
    let query_values: Vec<Value> = if query_dry_run {
        vec![json!("All")]
    } else {
        Vec::new()
    };
    let body_values = options["dryRun"].as_array().cloned().unwrap_or_default();
    if body_values.is_empty() {
        if !query_values.is_empty() {
            options["dryRun"] = Value::Array(query_values);
        }
    } else if !query_values.is_empty() && body_values != query_values {
        // Upstream returns a plain error here, which renders as a 500.
        let render = |values: &[Value]| {
            let items: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            format!("[{}]", items.join(" "))
        };
        return Err(ApiError {
            code: 500,
            reason: "InternalError",
            message: format!(
                "Non-matching dry-run options in request and content: {} and {}",
                render(&query_values),
                render(&body_values)
            ),
            details: None,
        });
    }
    Ok(options)
}

fn precondition_version_unset(options: &Value) -> bool {
    options["preconditions"]["resourceVersion"].is_null()
}

fn set_precondition_version(options: &mut Value, revision: i64) {
    if !options["preconditions"].is_object() {
        options["preconditions"] = json!({});
    }
    options["preconditions"]["resourceVersion"] = json!(revision.to_string());
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn being_deleted(pod: &Value) -> bool {
    meta_str(pod, "deletionTimestamp").is_some()
}

/// Pods whose eviction disrupts nothing more: not started yet, finished,
/// or already on their way out.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Pending" | "Succeeded" | "Failed") || being_deleted(pod)
}

/// Every pod but a finished or deleting one could become ready and count
/// for a budget between the read and the delete.
fn enforces_resource_version(pod: &Value) -> bool {
    !(matches!(phase(pod), "Succeeded" | "Failed") || being_deleted(pod))
}

fn is_pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn is_conflict(error: &ApiError) -> bool {
    error.code == 409 && error.reason == "Conflict"
}

fn success() -> Reply {
    Reply::with_code(
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// The 429 upstream answers when a budget's status lags its spec.
fn too_many_requests_processing(budget_name: &str) -> ApiError {
    ApiError {
        details: Some(json!({
            "causes": [{
                "reason": "DisruptionBudget",
                "message": format!("The disruption budget {budget_name} is still being processed by the server."),
            }],
            "retryAfterSeconds": 10,
        })),
        ..ApiError::too_many_requests(BUDGET_VIOLATION)
    }
}

fn budget_forbidden(budget_name: &str, why: &str) -> ApiError {
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("poddisruptionbudget.policy {budget_name:?} is forbidden: {why}"),
        details: Some(
            json!({"name": budget_name, "group": "policy", "kind": "poddisruptionbudget"}),
        ),
    }
}

/// Upstream's checkAndDecrement on the budget object itself: refuses when
/// the budget allows no disruption, otherwise takes one and records the
/// pod (at `now`) so the controller does not count it as available.
fn record_disruption(budget: &mut Value, pod_name: &str, now: &str) -> Result<(), ApiError> {
    let budget_name = meta_str(budget, "name").unwrap_or_default().to_string();
    let generation = budget["metadata"]["generation"].as_i64().unwrap_or(0);
    let status = &budget["status"];
    let observed_generation = status["observedGeneration"].as_i64().unwrap_or(0);
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if observed_generation < generation {
        return Err(too_many_requests_processing(&budget_name));
    }
    if allowed < 0 {
        return Err(budget_forbidden(
            &budget_name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = status["disruptedPods"].as_object().map_or(0, Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(budget_forbidden(
            &budget_name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(ApiError {
            details: Some(json!({
                "causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!(
                        "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
                        status["desiredHealthy"].as_i64().unwrap_or(0),
                        status["currentHealthy"].as_i64().unwrap_or(0),
                    ),
                }],
            })),
            ..ApiError::too_many_requests(BUDGET_VIOLATION)
        });
    }
    if !budget["status"].is_object() {
        budget["status"] = json!({});
    }
    let status = &mut budget["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        set_disruption_allowed_false(status, observed_generation, now);
    }
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod_name] = json!(now);
    Ok(())
}

/// The `DisruptionAllowed` condition a budget with no disruption left
/// carries (upstream's UpdateDisruptionAllowedCondition): its transition
/// time moves only when its status changes.
fn set_disruption_allowed_false(status: &mut Value, observed_generation: i64, now: &str) {
    let wanted = json!({
        "type": "DisruptionAllowed",
        "status": "False",
        "reason": "InsufficientPods",
        "message": "",
        "observedGeneration": observed_generation,
        "lastTransitionTime": now,
    });
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"]
        .as_array_mut()
        .expect("conditions were just made a list");
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionAllowed")
    {
        Some(existing) => {
            let transition = if existing["status"] == "False" {
                existing["lastTransitionTime"].clone()
            } else {
                json!(now)
            };
            *existing = wanted;
            existing["lastTransitionTime"] = transition;
        }
        None => conditions.push(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(allowed: i64, generation: i64, observed: i64) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation},
            "status": {
                "disruptionsAllowed": allowed,
                "observedGeneration": observed,
                "desiredHealthy": 2,
                "currentHealthy": 2,
            },
        })
    }

    #[test]
    fn a_disruption_is_taken_and_the_pod_recorded() {
        let mut pdb = budget(1, 1, 1);
        record_disruption(&mut pdb, "web-1", "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            pdb["status"]["disruptedPods"]["web-1"],
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(pdb["status"]["conditions"][0]["type"], "DisruptionAllowed");
        assert_eq!(pdb["status"]["conditions"][0]["status"], "False");
        assert_eq!(pdb["status"]["conditions"][0]["reason"], "InsufficientPods");
    }

    #[test]
    fn a_budget_without_disruptions_left_refuses_with_429() {
        let error = record_disruption(&mut budget(0, 1, 1), "web-1", "t").unwrap_err();
        assert_eq!(error.code, 429);
        assert_eq!(error.reason, "TooManyRequests");
        assert_eq!(error.message, BUDGET_VIOLATION);
        let cause = &error.details.unwrap()["causes"][0];
        assert_eq!(cause["reason"], "DisruptionBudget");
        assert_eq!(
            cause["message"],
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
    }

    #[test]
    fn a_budget_not_yet_observed_refuses_with_429() {
        let error = record_disruption(&mut budget(3, 2, 1), "web-1", "t").unwrap_err();
        assert_eq!(error.code, 429);
        assert_eq!(
            error.details.unwrap()["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
    }

    #[test]
    fn a_negative_budget_is_forbidden() {
        let error = record_disruption(&mut budget(-1, 1, 1), "web-1", "t").unwrap_err();
        assert_eq!(error.code, 403);
        assert_eq!(
            error.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn dry_run_may_come_from_either_side_but_must_agree() {
        let eviction = json!({"deleteOptions": {"dryRun": ["All"]}});
        assert_eq!(
            merged_delete_options(&eviction, false).unwrap()["dryRun"],
            json!(["All"])
        );
        assert_eq!(
            merged_delete_options(&json!({}), true).unwrap()["dryRun"],
            json!(["All"])
        );
        let conflicting = json!({"deleteOptions": {"dryRun": ["Other"]}});
        assert_eq!(
            merged_delete_options(&conflicting, true).unwrap_err().code,
            500
        );
    }

    #[test]
    fn pending_finished_and_deleting_pods_skip_budgets() {
        assert!(can_ignore_budget(&json!({"status": {"phase": "Pending"}})));
        assert!(can_ignore_budget(&json!({"status": {"phase": "Failed"}})));
        assert!(can_ignore_budget(
            &json!({"metadata": {"deletionTimestamp": "t"}, "status": {"phase": "Running"}})
        ));
        assert!(!can_ignore_budget(&json!({"status": {"phase": "Running"}})));
        assert!(enforces_resource_version(
            &json!({"status": {"phase": "Pending"}})
        ));
        assert!(!enforces_resource_version(
            &json!({"status": {"phase": "Succeeded"}})
        ));
    }
}
