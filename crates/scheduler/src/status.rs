//! Why a node does not fit a pod (`Status`), and the "0/3 nodes are available: ..." error that aggregates them (`FitError`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// How final a rejection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// The node could fit the pod if pods were removed from it: preemption
    /// may help.
    Unschedulable,
    /// Removing pods cannot help (labels, taints, node name...).
    UnschedulableAndUnresolvable,
    /// A plugin failed.
    Error,
}

pub type Reason = Cow<'static, str>;

/// A plugin's rejection of one node: a code and one or more reasons, in the
/// words upstream uses (they end up in the pod's events verbatim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    /// The plugin that rejected, e.g. "NodeResourcesFit".
    pub plugin: &'static str,
    reasons: Reasons,
}

/// Most rejections have one constant reason; keep that case allocation-free.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reasons {
    One(Reason),
    Many(Vec<Reason>),
}

impl Status {
    pub fn new(code: Code, plugin: &'static str, reason: impl Into<Reason>) -> Status {
        Status {
            code,
            plugin,
            reasons: Reasons::One(reason.into()),
        }
    }

    pub fn with_reasons(code: Code, plugin: &'static str, reasons: Vec<Reason>) -> Status {
        Status {
            code,
            plugin,
            reasons: Reasons::Many(reasons),
        }
    }

    pub fn reasons(&self) -> &[Reason] {
        match &self.reasons {
            Reasons::One(r) => std::slice::from_ref(r),
            Reasons::Many(v) => v,
        }
    }

    /// The reasons joined by ", " (upstream's `Status.Message()`).
    pub fn message(&self) -> String {
        self.reasons().join(", ")
    }
}

/// No node can take the pod, and why, node by node.
///
/// `Display` renders upstream's message, e.g. `0/3 nodes are available: 1
/// Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }.`
/// Reasons are counted over nodes and the `"<count> <reason>"` strings
/// sorted as strings, as upstream sorts them. After preemption failed, the
/// caller appends its message with [`FitError::set_post_filter_message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    /// Nodes in the snapshot; 0 means there were none at all.
    pub num_all_nodes: usize,
    /// Nodes that were filtered out, each with its rejection.
    pub node_statuses: Vec<(Arc<str>, Status)>,
    /// The rejection of every node not in `node_statuses` (all of them when
    /// a PreFilter rejected the pod, or those a PreFilter result excluded).
    pub absent_nodes_status: Option<Status>,
    /// A PreFilter plugin rejected the pod outright (with
    /// `absent_nodes_status`); its message replaces the per-node histogram.
    pub rejected_by_pre_filter: bool,
    /// Appended after the reasons, e.g. "preemption: 0/3 nodes are available: ...".
    pub post_filter_message: Option<String>,
}

impl FitError {
    pub(crate) fn new(num_all_nodes: usize) -> FitError {
        FitError {
            num_all_nodes,
            node_statuses: Vec::new(),
            absent_nodes_status: None,
            rejected_by_pre_filter: false,
            post_filter_message: None,
        }
    }

    /// Plugins that rejected at least one node (what the queue waits on).
    pub fn unschedulable_plugins(&self) -> BTreeSet<&'static str> {
        self.node_statuses
            .iter()
            .map(|(_, s)| s)
            .chain(&self.absent_nodes_status)
            .map(|s| s.plugin)
            .collect()
    }

    /// There are no nodes at all (upstream's `ErrNoNodesAvailable`, which is
    /// not a fit error and gets no preemption).
    pub fn no_nodes_available(&self) -> bool {
        self.num_all_nodes == 0
    }

    /// Appends the PostFilter (preemption) message; an empty one is ignored.
    pub fn set_post_filter_message(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.post_filter_message = (!message.is_empty()).then_some(message);
    }

    /// The status of one node: its own, or the status of absent nodes.
    pub fn status_of(&self, node: &str) -> Option<&Status> {
        self.node_statuses
            .iter()
            .find(|(n, _)| &**n == node)
            .map(|(_, s)| s)
            .or(self.absent_nodes_status.as_ref())
    }

    /// Reason → number of nodes that gave it.
    pub fn reason_histogram(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, status) in &self.node_statuses {
            for reason in status.reasons() {
                *counts.entry(reason).or_default() += 1;
            }
        }
        let absent = self.num_all_nodes.saturating_sub(self.node_statuses.len());
        if absent > 0 {
            for reason in self.absent_nodes_status.iter().flat_map(|s| s.reasons()) {
                *counts.entry(reason).or_default() += absent;
            }
        }
        counts
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_nodes_available() {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        match self
            .absent_nodes_status
            .as_ref()
            .filter(|_| self.rejected_by_pre_filter)
        {
            Some(status) => write!(f, " {}.", status.message())?,
            None => {
                let mut entries: Vec<String> = self
                    .reason_histogram()
                    .into_iter()
                    .map(|(reason, count)| format!("{count} {reason}"))
                    .collect();
                entries.sort();
                if !entries.is_empty() {
                    write!(f, " {}.", entries.join(", "))?;
                }
            }
        }
        if let Some(message) = &self.post_filter_message {
            write!(f, " {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_reasons_counted_and_sorted_as_strings() {
        let mut e = FitError::new(12);
        for i in 0..10 {
            e.node_statuses.push((
                format!("n{i}").into(),
                Status::new(Code::Unschedulable, "NodeResourcesFit", "Insufficient cpu"),
            ));
        }
        e.node_statuses.push((
            "a".into(),
            Status::with_reasons(
                Code::Unschedulable,
                "NodeResourcesFit",
                vec!["Insufficient cpu".into(), "Too many pods".into()],
            ),
        ));
        e.absent_nodes_status = Some(Status::new(
            Code::UnschedulableAndUnresolvable,
            "NodeAffinity",
            "node(s) didn't satisfy plugin(s) [NodeAffinity]",
        ));
        // Sorted as strings: "1 ..." before "11 ...", capitals before lower case.
        assert_eq!(
            e.to_string(),
            "0/12 nodes are available: 1 Too many pods, 1 node(s) didn't satisfy plugin(s) [NodeAffinity], 11 Insufficient cpu."
        );
        e.set_post_filter_message(
            "preemption: 0/12 nodes are available: 12 Preemption is not helpful for scheduling.",
        );
        assert!(e.to_string().ends_with("11 Insufficient cpu. preemption: 0/12 nodes are available: 12 Preemption is not helpful for scheduling."));
    }

    #[test]
    fn pre_filter_message_replaces_the_histogram() {
        let mut e = FitError::new(3);
        e.rejected_by_pre_filter = true;
        e.absent_nodes_status = Some(Status::new(
            Code::UnschedulableAndUnresolvable,
            "NodeAffinity",
            "pod affinity terms conflict",
        ));
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: pod affinity terms conflict."
        );
        assert_eq!(
            FitError::new(0).to_string(),
            "no nodes available to schedule pods"
        );
    }
}
