//! The namespace deleter's status conditions (upstream's `namespaceConditionUpdater`): what went wrong or remains, as five condition types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GROUP_VERSION_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types the namespace controller owns, in upstream's order.
pub const CONDITION_TYPES: [&str; 5] = [
    DISCOVERY_FAILURE,
    GROUP_VERSION_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
];

/// The reason and message of a condition type when nothing is wrong.
fn ok_reason_and_message(condition_type: &str) -> (&'static str, &'static str) {
    match condition_type {
        DISCOVERY_FAILURE => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        GROUP_VERSION_PARSING_FAILURE => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        CONTENT_FAILURE => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        _ => ("ContentRemoved", "All content successfully removed"),
    }
}

/// What one pass over a terminating namespace found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// Discovery failed (entirely or for some groups): the message.
    pub discovery_error: Option<String>,
    /// Discovery listed a group version that does not parse.
    pub group_version_error: Option<String>,
    /// Each resource type whose content could not be deleted: the error.
    pub content_errors: Vec<String>,
    /// `plural.group` → instances still present.
    pub remaining: BTreeMap<String, usize>,
    /// finalizer → instances still carrying it.
    pub finalizers_remaining: BTreeMap<String, usize>,
}

fn condition(
    condition_type: &str,
    status: &str,
    reason: &str,
    message: String,
) -> NamespaceCondition {
    NamespaceCondition {
        type_: condition_type.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// The conditions a report asks for, failures only (upstream's
/// `Process*` steps).
pub fn failing_conditions(report: &DeletionReport) -> Vec<NamespaceCondition> {
    let mut conditions = Vec::new();
    if let Some(message) = &report.discovery_error {
        conditions.push(condition(
            DISCOVERY_FAILURE,
            "True",
            "DiscoveryFailed",
            message.clone(),
        ));
    }
    if let Some(message) = &report.group_version_error {
        conditions.push(condition(
            GROUP_VERSION_PARSING_FAILURE,
            "True",
            "GroupVersionParsingFailed",
            message.clone(),
        ));
    }
    let remaining: Vec<String> = report
        .remaining
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(resource, count)| format!("{resource} has {count} resource instances"))
        .collect();
    if !report.remaining.is_empty() {
        conditions.push(condition(
            CONTENT_REMAINING,
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", remaining.join(", ")),
        ));
    }
    let finalizers: Vec<String> = report
        .finalizers_remaining
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(finalizer, count)| format!("{finalizer} in {count} resource instances"))
        .collect();
    if !report.finalizers_remaining.is_empty() {
        conditions.push(condition(
            FINALIZERS_REMAINING,
            "True",
            "SomeFinalizerRemain",
            format!("Some finalizers are remaining: {}", finalizers.join(", ")),
        ));
    }
    if !report.content_errors.is_empty() {
        let mut messages = report.content_errors.clone();
        messages.sort();
        conditions.push(condition(
            CONTENT_FAILURE,
            "True",
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                messages.len(),
                messages.join(", ")
            ),
        ));
    }
    conditions
}

/// Brings `status`'s owned conditions in line with `report` (every owned
/// type present; the success variant where nothing failed); returns whether
/// anything changed. A condition keeps its transition time unless its
/// status flips.
pub fn update_conditions(status: &mut NamespaceStatus, report: &DeletionReport, now: Time) -> bool {
    let failing = failing_conditions(report);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for condition_type in CONDITION_TYPES {
        let wanted = failing
            .iter()
            .find(|c| c.type_ == condition_type)
            .cloned()
            .unwrap_or_else(|| {
                let (reason, message) = ok_reason_and_message(condition_type);
                condition(condition_type, "False", reason, message.into())
            });
        match conditions.iter_mut().find(|c| c.type_ == condition_type) {
            None => {
                conditions.push(NamespaceCondition {
                    last_transition_time: Some(now.clone()),
                    ..wanted
                });
                changed = true;
            }
            Some(existing) => {
                if existing.status != wanted.status
                    || existing.reason != wanted.reason
                    || existing.message != wanted.message
                {
                    if existing.status != wanted.status {
                        existing.last_transition_time = Some(now.clone());
                    }
                    existing.status = wanted.status;
                    existing.reason = wanted.reason;
                    existing.message = wanted.message;
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn find<'a>(status: &'a NamespaceStatus, condition_type: &str) -> &'a NamespaceCondition {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == condition_type)
            .unwrap()
    }

    #[test]
    fn a_clean_pass_sets_every_condition_to_its_success_variant() {
        let mut status = NamespaceStatus::default();
        assert!(update_conditions(
            &mut status,
            &DeletionReport::default(),
            now()
        ));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 5);
        let content = find(&status, CONTENT_FAILURE);
        assert_eq!(content.status, "False");
        assert_eq!(content.reason.as_deref(), Some("ContentDeleted"));
        assert_eq!(
            find(&status, CONTENT_REMAINING).reason.as_deref(),
            Some("ContentRemoved")
        );
        assert_eq!(
            find(&status, DISCOVERY_FAILURE).message.as_deref(),
            Some("All resources successfully discovered")
        );
        // A second identical pass changes nothing.
        assert!(!update_conditions(
            &mut status,
            &DeletionReport::default(),
            now()
        ));
    }

    #[test]
    fn remaining_content_and_finalizers_are_counted_in_upstream_words() {
        let mut status = NamespaceStatus::default();
        let report = DeletionReport {
            remaining: BTreeMap::from([
                ("pods.".to_string(), 2),
                ("widgets.example.com".to_string(), 1),
            ]),
            finalizers_remaining: BTreeMap::from([("example.com/hold".to_string(), 2)]),
            content_errors: vec![
                "unexpected items still remain in namespace: a for gvr: /v1, Resource=secrets"
                    .into(),
            ],
            ..DeletionReport::default()
        };
        assert!(update_conditions(&mut status, &report, now()));
        let remaining = find(&status, CONTENT_REMAINING);
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            remaining.message.as_deref(),
            Some(
                "Some resources are remaining: pods. has 2 resource instances, widgets.example.com has 1 resource instances"
            )
        );
        let finalizers = find(&status, FINALIZERS_REMAINING);
        assert_eq!(finalizers.reason.as_deref(), Some("SomeFinalizerRemain"));
        assert_eq!(
            finalizers.message.as_deref(),
            Some("Some finalizers are remaining: example.com/hold in 2 resource instances")
        );
        assert_eq!(
            find(&status, CONTENT_FAILURE).message.as_deref(),
            Some(
                "Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: a for gvr: /v1, Resource=secrets"
            )
        );
        // Content gone: back to the success variants.
        assert!(update_conditions(
            &mut status,
            &DeletionReport::default(),
            now()
        ));
        assert_eq!(find(&status, CONTENT_REMAINING).status, "False");
    }

    #[test]
    fn conditions_of_other_owners_are_kept() {
        let mut status = NamespaceStatus {
            conditions: Some(vec![condition(
                "example.com/Ready",
                "True",
                "Fine",
                "ok".into(),
            )]),
            ..NamespaceStatus::default()
        };
        update_conditions(&mut status, &DeletionReport::default(), now());
        assert_eq!(
            status.conditions.as_ref().unwrap()[0].type_,
            "example.com/Ready"
        );
        assert_eq!(status.conditions.as_ref().unwrap().len(), 6);
    }
}
