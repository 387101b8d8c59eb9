//! DefaultPreemption: when no node fits, find the node where evicting the fewest and least important lower-priority pods makes room.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rand::Rng;

use crate::framework::{CycleState, Framework};
use crate::labels::{LabelSelector, pod_labels, pod_namespace};
use crate::pod_info::{PodFacts, PodInfo, pod_start_time};
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::{Code, FitError, Status};

pub const NAME: &str = "DefaultPreemption";
pub const REASON_NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const REASON_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// What preemption decided: make room on `node` by deleting `victims`, and
/// nominate the pod there.
#[derive(Clone, Debug)]
pub struct PreemptionPlan {
    pub node: String,
    /// Pods to delete, most important first. The run loop marks each with a
    /// `DisruptionTarget` condition (reason `PreemptionByScheduler`) before
    /// deleting it, so later cycles see them as terminating by preemption.
    pub victims: Vec<Arc<Pod>>,
    /// Victims whose eviction a PodDisruptionBudget does not allow.
    pub pdb_violations: usize,
    /// Lower-priority pods nominated to `node`, whose nomination the run loop
    /// clears: the room is now for this pod.
    pub nominations_to_clear: Vec<Arc<Pod>>,
}

#[derive(Clone, Debug)]
pub enum Preemption {
    Nominate(PreemptionPlan),
    /// Nothing to do. `message` (possibly empty) is the PostFilter message
    /// for [`FitError::set_post_filter_message`], e.g. "preemption: 0/3
    /// nodes are available: 3 Preemption is not helpful for scheduling."
    Failed {
        message: String,
    },
}

impl Preemption {
    fn failed(message: impl std::fmt::Display) -> Preemption {
        Preemption::Failed {
            message: format!("preemption: {message}"),
        }
    }
}

/// A PodDisruptionBudget as preemption reads it.
struct Budget {
    namespace: String,
    selector: LabelSelector,
    disruptions_allowed: i32,
    /// Pods the budget already counts as disrupted.
    disrupted: BTreeSet<String>,
}

impl Budget {
    fn compile(pdb: &PodDisruptionBudget) -> Budget {
        let status = pdb.status.as_ref();
        Budget {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            selector: LabelSelector::from_api(pdb.spec.as_ref().and_then(|s| s.selector.as_ref())),
            disruptions_allowed: status.and_then(|s| s.disruptions_allowed).unwrap_or(0),
            disrupted: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

struct Candidate<'a> {
    node: &'a NodeInfo,
    /// Most important first.
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// Whether `a` is more important than `b`: higher priority, then started
/// earlier (a pod that has not started counts as starting now).
fn more_important(a: &PodInfo, b: &PodInfo) -> Ordering {
    b.priority.cmp(&a.priority).then_with(|| {
        match (pod_start_time(&a.pod), pod_start_time(&b.pod)) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    })
}

/// Being deleted because the scheduler preempted it.
fn terminating_by_preemption(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_none() {
        return false;
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conditions
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some("PreemptionByScheduler"))
}

impl Framework {
    /// Upstream's DefaultPreemption PostFilter for a pod that failed with
    /// `fit_error` in the same snapshot. PDBs are budgets as the disruption
    /// controller last reported them (`status.disruptionsAllowed`).
    pub fn preempt(
        &self,
        snapshot: &Snapshot,
        pod: &Pod,
        fit_error: &FitError,
        pdbs: &[PodDisruptionBudget],
        rng: &mut impl Rng,
    ) -> Preemption {
        if fit_error.no_nodes_available() {
            return Preemption::Failed {
                message: String::new(),
            };
        }
        if let Some(reason) = self.not_eligible(snapshot, pod, fit_error) {
            return Preemption::failed(reason);
        }
        let all_nodes = snapshot.num_nodes();
        let not_helpful = |statuses: Vec<(Arc<str>, Status)>| {
            let mut error = FitError::new(all_nodes);
            error.node_statuses = statuses;
            error.absent_nodes_status = Some(Status::new(
                Code::UnschedulableAndUnresolvable,
                NAME,
                REASON_NOT_HELPFUL,
            ));
            Preemption::failed(error)
        };
        // Only nodes rejected for reasons that removing pods can fix.
        let potential: Vec<&NodeInfo> = snapshot
            .nodes()
            .filter(|n| {
                fit_error
                    .status_of(n.name())
                    .is_some_and(|s| s.code == Code::Unschedulable)
            })
            .collect();
        if potential.is_empty() {
            return not_helpful(Vec::new());
        }
        let facts = PodFacts::new(pod);
        let Ok(pre_filter) = self.pre_filter(snapshot, pod, &facts) else {
            return not_helpful(Vec::new());
        };
        let budgets: Vec<Budget> = pdbs.iter().map(Budget::compile).collect();

        // Try nodes from a random offset until enough candidates are found.
        let profile = self.profile();
        let wanted = (potential.len() * profile.min_candidate_nodes_percentage as usize / 100)
            .max(profile.min_candidate_nodes_absolute as usize)
            .min(potential.len());
        let offset = rng.random_range(0..potential.len());
        let mut non_violating: Vec<Candidate<'_>> = Vec::new();
        let mut violating: Vec<Candidate<'_>> = Vec::new();
        let mut statuses: Vec<(Arc<str>, Status)> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for i in 0..potential.len() {
            let node = potential[(offset + i) % potential.len()];
            match self.select_victims_on_node(&pre_filter.state, node, &budgets) {
                Ok((victims, _)) if victims.is_empty() => {
                    errors.push(format!(
                        "expected at least one victim pod on node {:?}",
                        node.name()
                    ));
                }
                Ok((victims, pdb_violations)) => {
                    let candidate = Candidate {
                        node,
                        victims,
                        pdb_violations,
                    };
                    if pdb_violations == 0 {
                        non_violating.push(candidate)
                    } else {
                        violating.push(candidate)
                    }
                    if !non_violating.is_empty() && non_violating.len() + violating.len() >= wanted
                    {
                        break;
                    }
                }
                Err(status) => statuses.push((node.shared_name().clone(), status)),
            }
        }
        non_violating.append(&mut violating);
        let candidates = non_violating;
        if candidates.is_empty() {
            return match errors.len() {
                0 => not_helpful(statuses),
                1 => Preemption::failed(&errors[0]),
                _ => Preemption::failed(format!("[{}]", errors.join(", "))),
            };
        }
        let best = &candidates[pick_one_node(&candidates)];
        let nominations_to_clear = best
            .node
            .nominated_pods()
            .iter()
            .filter(|p| p.priority < facts.priority)
            .map(|p| p.pod.clone())
            .collect();
        Preemption::Nominate(PreemptionPlan {
            node: best.node.name().to_string(),
            victims: best.victims.iter().map(|v| v.pod.clone()).collect(),
            pdb_violations: best.pdb_violations,
            nominations_to_clear,
        })
    }

    /// Upstream's `PodEligibleToPreemptOthers`: the reason the pod may not
    /// preempt, if any.
    fn not_eligible(
        &self,
        snapshot: &Snapshot,
        pod: &Pod,
        fit_error: &FitError,
    ) -> Option<&'static str> {
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return Some("not eligible due to preemptionPolicy=Never.");
        }
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())?;
        // If the nominated node cannot take the pod whatever is removed, the
        // pod may preempt elsewhere (a node without a status counts as such).
        if fit_error
            .status_of(nominated)
            .is_none_or(|s| s.code == Code::UnschedulableAndUnresolvable)
        {
            return None;
        }
        let priority = spec.and_then(|s| s.priority).unwrap_or(0);
        let node = snapshot.node(nominated)?;
        // Victims of an earlier preemption are still leaving: wait for them.
        node.pods()
            .iter()
            .any(|p| p.priority < priority && terminating_by_preemption(&p.pod))
            .then_some("not eligible due to a terminating pod on the nominated node.")
    }

    /// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod; if
    /// the pod then fits, put back as many as possible, most important first
    /// (PDB-protected ones before the others). Returns the victims and how
    /// many of them violate a PDB.
    fn select_victims_on_node(
        &self,
        state: &CycleState<'_>,
        node: &NodeInfo,
        budgets: &[Budget],
    ) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
        let priority = state.facts.priority;
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods()
            .iter()
            .filter(|p| p.priority < priority)
            .cloned()
            .collect();
        if potential.is_empty() {
            return Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                NAME,
                REASON_NO_VICTIMS,
            ));
        }
        let mut node = node.clone();
        let mut state = state.clone();
        for victim in &potential {
            node.remove_pod(&victim.key);
            state.update(victim, &node, -1);
        }
        self.run_filters_with_nominated_pods(&state, &node)?;

        potential.sort_by(|a, b| more_important(a, b));
        let (violating, non_violating) = split_by_pdb_violation(potential, budgets);
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        let mut reprieve =
            |pod: &Arc<PodInfo>, node: &mut NodeInfo, state: &mut CycleState<'_>| -> bool {
                node.add_pod(pod.clone());
                state.update(pod, node, 1);
                if self.run_filters_with_nominated_pods(state, node).is_ok() {
                    return true;
                }
                node.remove_pod(&pod.key);
                state.update(pod, node, -1);
                victims.push(pod.clone());
                false
            };
        for pod in &violating {
            if !reprieve(pod, &mut node, &mut state) {
                pdb_violations += 1;
            }
        }
        for pod in &non_violating {
            reprieve(pod, &mut node, &mut state);
        }
        if !violating.is_empty() && !non_violating.is_empty() {
            victims.sort_by(|a, b| more_important(a, b));
        }
        Ok((victims, pdb_violations))
    }
}

/// Upstream's `filterPodsWithPDBViolation`: walking the pods in order, a pod
/// violates a budget when the budget's remaining disruptions go negative.
fn split_by_pdb_violation(
    pods: Vec<Arc<PodInfo>>,
    budgets: &[Budget],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.disruptions_allowed).collect();
    let mut violating = Vec::new();
    let mut non_violating = Vec::new();
    for pod in pods {
        let labels = pod_labels(&pod.pod);
        let mut violated = false;
        // A pod without labels matches no budget.
        if !labels.is_empty() {
            let name = pod.pod.metadata.name.as_deref().unwrap_or("");
            for (budget, allowed) in budgets.iter().zip(allowed.iter_mut()) {
                if budget.namespace != pod_namespace(&pod.pod)
                    || budget.selector.is_empty()
                    || !budget.selector.matches(labels)
                {
                    continue;
                }
                // Already counted by the API server as disrupted.
                if budget.disrupted.contains(name) {
                    continue;
                }
                *allowed -= 1;
                if *allowed < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(pod)
        } else {
            non_violating.push(pod)
        }
    }
    (violating, non_violating)
}

/// Upstream's `pickOneNodeForPreemption`: fewest PDB violations, then the
/// lowest highest-priority victim, the smallest sum of priorities, the
/// fewest victims, the latest start among the highest-priority victims,
/// then the first candidate.
fn pick_one_node(candidates: &[Candidate<'_>]) -> usize {
    let highest_priority =
        |c: &Candidate<'_>| c.victims.first().map_or(0, |v| i64::from(v.priority));
    let criteria: [&dyn Fn(&Candidate<'_>) -> i64; 5] = [
        &|c| -(c.pdb_violations as i64),
        &|c| -highest_priority(c),
        // Offset each priority by 2^31 so negative priorities still add up
        // to more for more pods.
        &|c| {
            -c.victims
                .iter()
                .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
                .sum::<i64>()
        },
        &|c| -(c.victims.len() as i64),
        &|c| earliest_start_of_most_important(&c.victims),
    ];
    let mut remaining: Vec<usize> = (0..candidates.len()).collect();
    for criterion in criteria {
        let best = remaining
            .iter()
            .map(|i| criterion(&candidates[*i]))
            .max()
            .unwrap_or(i64::MIN);
        remaining.retain(|i| criterion(&candidates[*i]) == best);
        if remaining.len() == 1 {
            break;
        }
    }
    remaining.first().copied().unwrap_or(0)
}

/// The earliest start time (ns since the epoch) among the highest-priority
/// victims; pods that have not started count as starting now (i64::MAX
/// stands in, later than any real start).
fn earliest_start_of_most_important(victims: &[Arc<PodInfo>]) -> i64 {
    let Some(highest) = victims.iter().map(|v| v.priority).max() else {
        return i64::MIN;
    };
    victims
        .iter()
        .filter(|v| v.priority == highest)
        .map(|v| {
            pod_start_time(&v.pod).map_or(i64::MAX, |t| {
                i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
            })
        })
        .min()
        .unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::framework::Profile;
    use crate::testing::snapshot_of;

    /// Schedules `pod`; on failure preempts and renders the plan as
    /// `node: victim, victim` or the whole message.
    fn preempt(
        nodes: Vec<Node>,
        pods: Vec<Pod>,
        pod: &Pod,
        pdbs: &[PodDisruptionBudget],
    ) -> Result<String, String> {
        let snapshot = snapshot_of(nodes, pods);
        let framework = Framework::new(Profile::default());
        let mut rng = StdRng::seed_from_u64(5);
        let mut error = match framework.schedule_one(&snapshot, pod, &mut rng) {
            Ok(result) => return Ok(format!("fits on {}", result.node)),
            Err(error) => error,
        };
        match framework.preempt(&snapshot, pod, &error, pdbs, &mut rng) {
            Preemption::Nominate(plan) => {
                let victims: Vec<&str> = plan
                    .victims
                    .iter()
                    .filter_map(|v| v.metadata.name.as_deref())
                    .collect();
                Ok(format!("{}: {}", plan.node, victims.join(", ")))
            }
            Preemption::Failed { message } => {
                error.set_post_filter_message(message);
                Err(error.to_string())
            }
        }
    }

    fn running(name: &str, priority: i32, cpu: &str, node: &str) -> PodBuilder {
        PodBuilder::new(name)
            .priority(priority)
            .requests(cpu, "")
            .node(node)
            .start_time(1_000)
    }

    fn two_cpu_nodes(count: usize) -> Vec<Node> {
        (1..=count)
            .map(|i| NodeBuilder::new(&format!("n{i}")).cpu("2").build())
            .collect()
    }

    fn pdb(selector: (&str, &str), allowed: i32) -> PodDisruptionBudget {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "budget", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {selector.0: selector.1}}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn evicts_lower_priority_pods_and_reprieves_the_most_important() {
        let nodes = vec![NodeBuilder::new("n1").cpu("4").build()];
        let pods = vec![
            running("p1", 1, "1", "n1").build(),
            running("p2", 2, "1", "n1").build(),
            running("p3", 3, "1", "n1").build(),
            running("p4", 4, "1", "n1").build(),
        ];
        let pod = PodBuilder::new("urgent")
            .priority(10)
            .requests("2", "")
            .build();
        // p4 and p3 fit back beside the pod; p2 and p1 must go.
        assert_eq!(preempt(nodes, pods, &pod, &[]), Ok("n1: p2, p1".into()));
    }

    #[test]
    fn cannot_preempt_equal_or_higher_priority() {
        let pods = vec![
            running("a", 10, "2", "n1").build(),
            running("b", 20, "2", "n2").build(),
        ];
        let pod = PodBuilder::new("p").priority(10).requests("1", "").build();
        assert_eq!(
            preempt(two_cpu_nodes(2), pods, &pod, &[]),
            Err("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.".into())
        );
    }

    #[test]
    fn unresolvable_nodes_are_not_helped() {
        let nodes = vec![
            NodeBuilder::new("n1").cpu("2").build(),
            NodeBuilder::new("tainted")
                .taint("k", "v", "NoSchedule")
                .build(),
        ];
        let pods = vec![running("low", 0, "2", "n1").build()];
        let pod = PodBuilder::new("p").priority(10).requests("1", "").build();
        assert_eq!(
            preempt(nodes.clone(), pods, &pod, &[]),
            Ok("n1: low".into())
        );
        let pod = PodBuilder::new("p").priority(10).requests("3", "").build();
        assert_eq!(
            preempt(nodes, vec![running("low", 0, "2", "n1").build()], &pod, &[]),
            Err("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}. preemption: 0/2 nodes are available: 1 Insufficient cpu, 1 Preemption is not helpful for scheduling.".into())
        );
    }

    #[test]
    fn preemption_policy_never() {
        let pod = PodBuilder::new("p")
            .priority(10)
            .preemption_policy("Never")
            .requests("1", "")
            .build();
        assert_eq!(
            preempt(two_cpu_nodes(1), vec![running("low", 0, "2", "n1").build()], &pod, &[]),
            Err("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.".into())
        );
    }

    #[test]
    fn waits_for_victims_still_terminating_on_the_nominated_node() {
        let mut leaving = running("leaving", 0, "2", "n1").terminating().build();
        leaving.status.get_or_insert_default().conditions = Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("PreemptionByScheduler".into()),
            ..Default::default()
        }]);
        let pod = PodBuilder::new("p")
            .priority(10)
            .requests("1", "")
            .nominated_node("n1")
            .build();
        assert_eq!(
            preempt(two_cpu_nodes(1), vec![leaving], &pod, &[]),
            Err("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to a terminating pod on the nominated node.".into())
        );
    }

    #[test]
    fn picks_the_node_by_upstream_criteria_in_order() {
        let pod = PodBuilder::new("p").priority(100).requests("2", "").build();
        let cases: Vec<(&str, Vec<Pod>, Vec<PodDisruptionBudget>, &str)> = vec![
            (
                "fewest PDB violations",
                vec![
                    running("guarded", 1, "2", "n1").label("app", "db").build(),
                    running("free", 50, "2", "n2").build(),
                ],
                vec![pdb(("app", "db"), 0)],
                "n2: free",
            ),
            (
                "lowest highest-priority victim",
                vec![
                    running("a", 5, "2", "n1").build(),
                    running("b", 3, "1", "n2").build(),
                    running("c", 2, "1", "n2").build(),
                ],
                vec![],
                "n2: b, c",
            ),
            (
                "smallest sum of priorities",
                vec![
                    running("a", 5, "1", "n1").build(),
                    running("b", 5, "1", "n1").build(),
                    running("c", 5, "2", "n2").build(),
                ],
                vec![],
                "n2: c",
            ),
            (
                "fewest victims",
                vec![
                    running("a", -5, "1", "n1").build(),
                    running("b", -5, "1", "n1").build(),
                    running("c", -5, "2", "n2").build(),
                ],
                vec![],
                "n2: c",
            ),
            (
                "latest start of the highest-priority victims",
                vec![
                    running("old", 5, "2", "n1").start_time(100).build(),
                    running("new", 5, "2", "n2").start_time(200).build(),
                ],
                vec![],
                "n2: new",
            ),
        ];
        for (name, pods, pdbs, want) in cases {
            assert_eq!(
                preempt(two_cpu_nodes(2), pods, &pod, &pdbs),
                Ok(want.to_string()),
                "{name}"
            );
        }
    }

    #[test]
    fn pdb_protected_pods_are_reprieved_first() {
        let nodes = vec![NodeBuilder::new("n1").cpu("3").build()];
        let pods = vec![
            running("guarded", 1, "1", "n1").label("app", "db").build(),
            running("free", 5, "1", "n1").build(),
            running("other", 2, "1", "n1").build(),
        ];
        let pod = PodBuilder::new("p").priority(100).requests("1", "").build();
        // Only one pod has to go; the guarded one is put back first although
        // its priority is lowest, then "free" (priority 5) fits; "other" goes.
        assert_eq!(
            preempt(nodes, pods, &pod, &[pdb(("app", "db"), 0)]),
            Ok("n1: other".into())
        );
    }

    #[test]
    fn plan_clears_lower_priority_nominations_on_the_node() {
        let mut snapshot =
            snapshot_of(two_cpu_nodes(1), vec![running("low", 0, "2", "n1").build()]);
        snapshot.nominate(
            Arc::new(PodBuilder::new("waiting").priority(1).build()),
            "n1",
        );
        let framework = Framework::new(Profile::default());
        let mut rng = StdRng::seed_from_u64(1);
        let pod = PodBuilder::new("p").priority(10).requests("1", "").build();
        let Err(error) = framework.schedule_one(&snapshot, &pod, &mut rng) else {
            panic!("the node is full");
        };
        let Preemption::Nominate(plan) = framework.preempt(&snapshot, &pod, &error, &[], &mut rng)
        else {
            panic!("low can be preempted");
        };
        assert_eq!(plan.node, "n1");
        assert_eq!(plan.pdb_violations, 0);
        let cleared: Vec<_> = plan
            .nominations_to_clear
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(cleared, ["waiting"]);
    }

    #[test]
    fn removing_victims_updates_affinity_and_spreading_counts() {
        // The only node holds a low-priority pod the incoming pod repels.
        let web = running("web", 0, "100m", "n1").label("app", "web").build();
        let pod = PodBuilder::new("p")
            .priority(10)
            .anti_affinity("app", "web", "kubernetes.io/hostname")
            .build();
        assert_eq!(
            preempt(two_cpu_nodes(1), vec![web], &pod, &[]),
            Ok("n1: web".into())
        );

        // Zone a is two pods ahead of zone b with maxSkew 1, and zone b is
        // full: evicting one low-priority spread pod from zone a makes room.
        let nodes = vec![
            NodeBuilder::new("a1").zone("a").cpu("4").build(),
            NodeBuilder::new("b1").zone("b").cpu("1").build(),
        ];
        let spread = |name: &str, priority: i32, node: &str| {
            running(name, priority, "100m", node)
                .label("app", "web")
                .build()
        };
        let pods = vec![
            spread("w1", 0, "a1"),
            spread("w2", 50, "a1"),
            spread("w3", 50, "b1"),
            running("filler", 50, "900m", "b1").build(),
        ];
        let pod = PodBuilder::new("p")
            .priority(10)
            .requests("100m", "")
            .label("app", "web")
            .spread(
                1,
                "topology.kubernetes.io/zone",
                "DoNotSchedule",
                "app",
                "web",
            )
            .build();
        assert_eq!(preempt(nodes, pods, &pod, &[]), Ok("a1: w1".into()));
    }

    #[test]
    fn nothing_to_preempt_without_nodes() {
        let snapshot = Snapshot::new();
        let framework = Framework::new(Profile::default());
        let mut rng = StdRng::seed_from_u64(1);
        let pod = PodBuilder::new("p").priority(10).build();
        let Err(error) = framework.schedule_one(&snapshot, &pod, &mut rng) else {
            panic!("no nodes");
        };
        assert!(
            matches!(framework.preempt(&snapshot, &pod, &error, &[], &mut rng), Preemption::Failed { message } if message.is_empty())
        );
    }
}
