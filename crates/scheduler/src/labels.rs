//! Label selectors, node selectors and taint tolerations, compiled once and matched without allocating.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelector as ApiNodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;

pub type Labels = BTreeMap<String, String>;

/// Labels of an object that may have none.
pub(crate) static NO_LABELS: Labels = BTreeMap::new();

pub(crate) fn pod_labels(pod: &Pod) -> &Labels {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

pub(crate) fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    /// Node selectors only: the label is an integer greater than the value.
    Gt,
    /// Node selectors only: the label is an integer less than the value.
    Lt,
}

/// One `key op values` condition on labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
    /// The bound of Gt/Lt, parsed once.
    bound: i64,
}

impl Requirement {
    /// Builds a requirement with upstream's validity rules: In/NotIn need
    /// values, Exists/DoesNotExist none, Gt/Lt exactly one integer.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Option<Requirement> {
        let mut bound = 0;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => return None,
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => return None,
            Operator::Gt | Operator::Lt => {
                if values.len() != 1 {
                    return None;
                }
                bound = values[0].parse().ok()?;
            }
            _ => {}
        }
        Some(Requirement {
            key: key.to_string(),
            operator,
            values,
            bound,
        })
    }

    pub fn equals(key: &str, value: &str) -> Requirement {
        Requirement {
            key: key.to_string(),
            operator: Operator::In,
            values: vec![value.to_string()],
            bound: 0,
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Gt => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > self.bound),
            Operator::Lt => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < self.bound),
        }
    }
}

/// A compiled `metav1.LabelSelector`. Upstream's conversion rules hold: a
/// nil selector selects nothing, an empty one everything, and an invalid one
/// (unknown operator, In without values) nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LabelSelector {
    Nothing,
    /// All requirements must hold; no requirements select everything.
    All(Vec<Requirement>),
}

impl LabelSelector {
    pub fn everything() -> LabelSelector {
        LabelSelector::All(Vec::new())
    }

    pub fn from_api(selector: Option<&ApiLabelSelector>) -> LabelSelector {
        let Some(selector) = selector else {
            return LabelSelector::Nothing;
        };
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::equals(key, value));
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => return LabelSelector::Nothing,
            };
            match Requirement::new(
                &expression.key,
                operator,
                expression.values.clone().unwrap_or_default(),
            ) {
                Some(r) => requirements.push(r),
                None => return LabelSelector::Nothing,
            }
        }
        LabelSelector::All(requirements)
    }

    /// A selector requiring every `key=value` of a map (Service and
    /// ReplicationController selectors).
    pub fn from_map(map: &Labels) -> LabelSelector {
        LabelSelector::All(map.iter().map(|(k, v)| Requirement::equals(k, v)).collect())
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            LabelSelector::Nothing => false,
            LabelSelector::All(requirements) => requirements.iter().all(|r| r.matches(labels)),
        }
    }

    /// Upstream's `Selector.Empty()`: no requirements (selects everything).
    /// `Nothing` is not empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, LabelSelector::All(r) if r.is_empty())
    }

    /// Adds requirements (a no-op on `Nothing`, which stays nothing).
    pub fn add(&mut self, more: impl IntoIterator<Item = Requirement>) {
        if let LabelSelector::All(requirements) = self {
            requirements.extend(more);
        }
    }
}

/// One compiled `NodeSelectorTerm`: label expressions and `metadata.name`
/// field expressions, all of which must hold.
#[derive(Clone, Debug)]
struct NodeTerm {
    labels: Vec<Requirement>,
    fields: Vec<FieldRequirement>,
    /// Upstream keeps unparsable terms and never matches them.
    valid: bool,
}

impl NodeTerm {
    fn compile(term: &NodeSelectorTerm) -> Option<NodeTerm> {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if expressions.is_empty() && fields.is_empty() {
            // An empty term selects no objects and is dropped.
            return None;
        }
        let mut compiled = NodeTerm {
            labels: Vec::new(),
            fields: Vec::new(),
            valid: true,
        };
        for expression in expressions {
            match compile_node_requirement(expression) {
                Some(r) => compiled.labels.push(r),
                None => compiled.valid = false,
            }
        }
        for expression in fields {
            let values = expression.values.as_deref().unwrap_or_default();
            let equal = match expression.operator.as_str() {
                "In" => true,
                "NotIn" => false,
                _ => {
                    compiled.valid = false;
                    continue;
                }
            };
            if values.len() != 1 {
                compiled.valid = false;
                continue;
            }
            compiled.fields.push(FieldRequirement {
                on_name: expression.key == "metadata.name",
                equal,
                value: values[0].clone(),
            });
        }
        Some(compiled)
    }

    fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        self.valid
            && self.labels.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|f| f.matches(node_name))
    }
}

/// A `matchFields` expression. Nodes have one field, `metadata.name`; any
/// other key reads as the empty string, like a `fields.Set` lookup.
#[derive(Clone, Debug)]
struct FieldRequirement {
    on_name: bool,
    /// In (the field equals `value`) or NotIn (it differs).
    equal: bool,
    value: String,
}

impl FieldRequirement {
    fn matches(&self, node_name: &str) -> bool {
        let field = if self.on_name { node_name } else { "" };
        (field == self.value) == self.equal
    }
}

fn compile_node_requirement(expression: &NodeSelectorRequirement) -> Option<Requirement> {
    let operator = match expression.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::Gt,
        "Lt" => Operator::Lt,
        _ => return None,
    };
    Requirement::new(
        &expression.key,
        operator,
        expression.values.clone().unwrap_or_default(),
    )
}

/// A compiled `v1.NodeSelector`: its terms are ORed; no terms match nothing.
#[derive(Clone, Debug)]
pub struct NodeSelector {
    terms: Vec<NodeTerm>,
}

impl NodeSelector {
    pub fn compile(selector: &ApiNodeSelector) -> NodeSelector {
        NodeSelector {
            terms: selector
                .node_selector_terms
                .iter()
                .filter_map(NodeTerm::compile)
                .collect(),
        }
    }

    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        self.terms.iter().any(|t| t.matches(node_name, labels))
    }
}

/// The node constraints a pod must meet: `spec.nodeSelector` and the
/// required node affinity, both of which must hold (upstream's
/// `RequiredNodeAffinity`).
#[derive(Clone, Debug)]
pub struct RequiredNodeAffinity {
    node_selector: Option<LabelSelector>,
    affinity: Option<NodeSelector>,
}

impl RequiredNodeAffinity {
    pub fn of(pod: &Pod) -> RequiredNodeAffinity {
        let spec = pod.spec.as_ref();
        let node_selector = spec
            .and_then(|s| s.node_selector.as_ref())
            .filter(|s| !s.is_empty())
            .map(LabelSelector::from_map);
        let affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(NodeSelector::compile);
        RequiredNodeAffinity {
            node_selector,
            affinity,
        }
    }

    /// Whether the pod constrains nodes at all.
    pub fn is_set(&self) -> bool {
        self.node_selector.is_some() || self.affinity.is_some()
    }

    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        if let Some(selector) = &self.node_selector
            && !selector.matches(labels)
        {
            return false;
        }
        match &self.affinity {
            Some(affinity) => affinity.matches(node_name, labels),
            None => true,
        }
    }
}

/// The preferred node affinity terms of a pod, each with its weight.
#[derive(Clone, Debug, Default)]
pub struct PreferredNodeAffinity {
    terms: Vec<(i64, NodeTerm)>,
}

impl PreferredNodeAffinity {
    /// `None` when the pod prefers nothing (weight-0 and empty terms count
    /// for nothing, as upstream drops them).
    pub fn of(pod: &Pod) -> Option<PreferredNodeAffinity> {
        let preferred = pod
            .spec
            .as_ref()?
            .affinity
            .as_ref()?
            .node_affinity
            .as_ref()?
            .preferred_during_scheduling_ignored_during_execution
            .as_ref()?;
        let terms: Vec<(i64, NodeTerm)> = preferred
            .iter()
            .filter(|t| t.weight != 0)
            .filter_map(|t| NodeTerm::compile(&t.preference).map(|c| (i64::from(t.weight), c)))
            .collect();
        Some(PreferredNodeAffinity { terms })
    }

    /// The sum of the weights of the terms the node matches.
    pub fn score(&self, node_name: &str, labels: &Labels) -> i64 {
        self.terms
            .iter()
            .filter(|(_, t)| t.matches(node_name, labels))
            .map(|(w, _)| w)
            .sum()
    }
}

/// Whether a toleration tolerates a taint (upstream's `ToleratesTaint`): an
/// empty effect or key matches any, operator Exists ignores the value.
pub fn tolerates(toleration: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != effect)
    {
        return false;
    }
    if toleration
        .key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != key)
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == value,
        "Exists" => true,
        _ => false,
    }
}

pub fn tolerations_tolerate(tolerations: &[Toleration], taint: &Taint) -> bool {
    let value = taint.value.as_deref().unwrap_or("");
    tolerations
        .iter()
        .any(|t| tolerates(t, &taint.key, value, &taint.effect))
}

/// The first NoSchedule or NoExecute taint that no toleration tolerates.
pub fn first_untolerated_hard_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations_tolerate(tolerations, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(value: serde_json::Value) -> LabelSelector {
        let api: ApiLabelSelector = serde_json::from_value(value).unwrap_or_default();
        LabelSelector::from_api(Some(&api))
    }

    #[test]
    fn label_selectors_follow_upstream_conversion() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(
            !LabelSelector::from_api(None).matches(&l),
            "nil selects nothing"
        );
        assert!(selector(json!({})).matches(&l), "empty selects everything");
        assert!(selector(json!({"matchLabels": {"app": "web"}})).matches(&l));
        assert!(!selector(json!({"matchLabels": {"app": "db"}})).matches(&l));
        let cases = [
            (
                json!({"key": "app", "operator": "In", "values": ["web", "api"]}),
                true,
            ),
            (
                json!({"key": "app", "operator": "NotIn", "values": ["web"]}),
                false,
            ),
            (
                json!({"key": "missing", "operator": "NotIn", "values": ["x"]}),
                true,
            ),
            (json!({"key": "tier", "operator": "Exists"}), true),
            (json!({"key": "tier", "operator": "DoesNotExist"}), false),
            (json!({"key": "app", "operator": "In", "values": []}), false),
            (
                json!({"key": "app", "operator": "Gt", "values": ["1"]}),
                false,
            ),
        ];
        for (expression, want) in cases {
            let s = selector(json!({"matchExpressions": [expression.clone()]}));
            assert_eq!(s.matches(&l), want, "{expression}");
        }
    }

    #[test]
    fn node_selector_terms_are_ored_and_fields_match_the_name() {
        let api: ApiNodeSelector = serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]},
            {},
        ]}))
        .unwrap_or_default();
        let s = NodeSelector::compile(&api);
        assert!(s.matches("node-a", &labels(&[("cores", "16")])));
        assert!(!s.matches("node-a", &labels(&[("cores", "8")])));
        assert!(!s.matches("node-a", &labels(&[("cores", "many")])));
        assert!(s.matches("node-b", &labels(&[])));
        let empty: ApiNodeSelector =
            serde_json::from_value(json!({"nodeSelectorTerms": [{}]})).unwrap_or_default();
        assert!(!NodeSelector::compile(&empty).matches("node-a", &labels(&[])));
    }

    #[test]
    fn tolerations_match_like_upstream() {
        let t =
            |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap_or_default() };
        assert!(tolerates(
            &t(json!({"operator": "Exists"})),
            "any",
            "x",
            "NoSchedule"
        ));
        assert!(tolerates(
            &t(json!({"key": "k", "value": "v", "effect": "NoSchedule"})),
            "k",
            "v",
            "NoSchedule"
        ));
        assert!(!tolerates(
            &t(json!({"key": "k", "value": "v", "effect": "NoExecute"})),
            "k",
            "v",
            "NoSchedule"
        ));
        assert!(!tolerates(
            &t(json!({"key": "k", "value": "w"})),
            "k",
            "v",
            "NoSchedule"
        ));
        assert!(tolerates(
            &t(json!({"key": "k", "operator": "Exists"})),
            "k",
            "v",
            "PreferNoSchedule"
        ));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Bogus"})),
            "k",
            "",
            "NoSchedule"
        ));
    }
}
